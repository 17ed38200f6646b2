"""Note [kernels grouped into modules]: small kernels share LLVM modules, cut where their contents
say, so that the per-module cost is paid once per group and an edit recompiles its own group."""

from __future__ import annotations

import numpy as np
import pytest
from test_compile_time import layers, run_cpu_and_reference

from flowc.codegen.llvm import compile as llvm_compile
from flowc.codegen.llvm import split


@pytest.fixture
def grouped(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Every module of two kernels or more is split, its kernels in one group, in a fresh cache."""
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(llvm_compile, "SPLIT_CHARS", 0)
    monkeypatch.setattr(llvm_compile, "PARALLEL_CHARS", 0)
    monkeypatch.setattr(split, "KERNELS_PER_GROUP", 10**9)  # no cut by contents
    monkeypatch.setattr(llvm_compile, "GROUP_CHARS", 10**9)  # nor by size


def test_grouped_kernels_compute_what_the_reference_does(grouped, rng) -> None:
    g, x, y = layers([0.1 * k for k in range(1, 9)])
    cpu, reference = run_cpu_and_reference(g, y, {x: rng.standard_normal((5, 16)).astype(np.float32)})
    assert llvm_compile.last_build.modules == 2  # nine small kernels in one group, and the entry point
    np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)


def test_a_group_is_cut_at_group_chars(grouped, monkeypatch, rng) -> None:
    g, x, y = layers([0.1 * k for k in range(1, 9)])
    monkeypatch.setattr(llvm_compile, "GROUP_CHARS", 1)  # every kernel is as big as a group: alone
    cpu, reference = run_cpu_and_reference(g, y, {x: rng.standard_normal((5, 16)).astype(np.float32)})
    assert llvm_compile.last_build.modules == 10
    np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)


def kernel(name: str, size: int) -> split._Kernel:
    return split._Kernel(name, [], "x" * size)


def test_cuts_follow_the_kernels_names_so_an_edit_moves_no_later_cut(monkeypatch) -> None:
    monkeypatch.setattr(split, "KERNELS_PER_GROUP", 4)
    names = [f"flowc_k{index:04x}" for index in range(1, 14)]  # cuts after ...0004, ...0008, ...000c
    before = split._groups([kernel(name, 10) for name in names], 1000)
    assert [[k.name[-1] for k in group] for group in before] == [list("1234"), list("5678"), list("9abc"), ["d"]]
    edited = [kernel(name, 10) for name in names]
    edited[1] = kernel("flowc_kffff", 10)  # kernel 2 edited: another name
    after = split._groups(edited, 1000)
    assert [[k.name for k in group] for group in after[1:]] == [[k.name for k in group] for group in before[1:]]


def test_a_big_kernel_is_a_module_of_its_own_and_a_full_group_ends() -> None:
    kernels = [kernel("flowc_k0001", 40), kernel("flowc_k0003", 500), kernel("flowc_k0005", 60),
               kernel("flowc_k0007", 50), kernel("flowc_k0009", 10)]
    groups = split._groups(kernels, 100)
    assert [[k.name[-1] for k in group] for group in groups] == [["3"], ["1", "5"], ["7", "9"]]
