"""Note [constants lifted out of kernels]: kernels alike but for their numbers become one kernel that
reads them at run time, and compute what the reference does."""

from __future__ import annotations

import numpy as np
import pytest
from test_compile_time import chain_with_gradient, layers, run_cpu_and_reference, unrolled_rnn
from test_kernel_dedup import emitted_functions, row_sums

import flowc as fc
from flowc.codegen.llvm import compile as llvm_compile
from flowc.ir import Module
from flowc.ir.parser import parse_module
from flowc.passes import fusion, lift_constants
from flowc.passes.lift_constants import LIFT_MIN_KERNELS, lift_in_block
from flowc.targets import cpu as cpu_target


@pytest.fixture
def small_kernels(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """Kernels of at most 12 ops (Note [kernel size limit]), so that short chains make many kernels."""
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cpu_target, "_fuse", lambda options: fusion.Fuse(12))


def steps(constants: list[float], ops: list[str] | None = None) -> Module:
    """One loop kernel per constant: y = op_k(y) * c_k + 0.5 (0.5 is every kernel's; op_k tanh by default)."""
    lines = ["func @f(%x: f32[4,8]) -> f32[4,8] {"]
    previous = "%x"
    for k, constant in enumerate(constants):
        lines.append(f"  %y{k} = fusion {previous} {{kind = \"loop\", schedule = \"loop\"}} : f32[4,8] {{")
        lines.append("  ^bb0(%a: f32[4,8]):")
        lines.append(f"    %c = constant {{value = dense<{constant}>}} : f32[]")
        lines.append("    %h = constant {value = dense<0.5>} : f32[]")
        lines.append(f"    %t = {ops[k] if ops else 'tanh'} %a : f32[4,8]")
        lines.append("    %m = mul %t, %c : f32[4,8]")
        lines.append("    %s = add %m, %h : f32[4,8]")
        lines.append("    yield %s : f32[4,8]")
        lines.append("  }")
        previous = f"%y{k}"
    lines += [f"  return {previous} : f32[4,8]", "}"]
    return parse_module("\n".join(lines))


def lifted_operands(module: Module) -> list[int]:
    return [len(op.operands) - 1 for op in module["f"].entry.ops if op.name == "fusion"]


def test_many_kernels_differing_in_a_constant_read_it_as_an_operand() -> None:
    module = steps([1.0 + k for k in range(LIFT_MIN_KERNELS)])
    assert lift_in_block(module["f"].entry)
    assert lifted_operands(module) == [1] * LIFT_MIN_KERNELS
    for op in module["f"].entry.ops:
        if op.name == "fusion":
            constants = [inner for inner in op.regions[0].entry.ops if inner.name == "constant"]
            assert [float(c.value) for c in constants] == [0.5]  # shared by all: stays in the code
            assert op.operands[1].op.name == "constant"


def test_fewer_kernels_or_equal_constants_stay_in_the_code() -> None:
    few = steps([1.0 + k for k in range(LIFT_MIN_KERNELS - 1)])
    assert not lift_in_block(few["f"].entry)
    assert lifted_operands(few) == [0] * (LIFT_MIN_KERNELS - 1)
    same = steps([2.0] * (LIFT_MIN_KERNELS + 2))
    assert not lift_in_block(same["f"].entry)


def test_kernels_of_other_code_are_not_grouped() -> None:
    count = LIFT_MIN_KERNELS
    mixed = steps([1.0 + k for k in range(count)], ops=["tanh", "exp"] * (count // 2))
    assert not lift_in_block(mixed["f"].entry)  # two groups, each under the minimum
    alike = steps([1.0 + k for k in range(count)])
    assert lift_in_block(alike["f"].entry)
    assert not lift_in_block(alike["f"].entry)  # nothing left to lift the second time


def test_a_chain_of_kernels_differing_in_constants_is_few_functions(small_kernels, monkeypatch, rng) -> None:
    counts = emitted_functions(monkeypatch)
    g, fetches, x = chain_with_gradient(400)
    feed = {x: rng.standard_normal((3, 8)).astype(np.float32)}
    cpu = fc.Session(target="cpu", graph=g).run(fetches, feed)
    reference = fc.Session(target="reference", graph=g).run(fetches, feed)
    for got, want in zip(cpu, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    monkeypatch.setattr(lift_constants, "LIFT_MIN_KERNELS", 10**9)  # the same graph with its numbers in the code
    fc.Session(target="cpu", graph=g).run(fetches, feed)
    (kernels, lifted), (_, folded) = counts[-2], counts[-1]
    assert kernels > 30 and lifted * 4 < folded, counts


def test_an_unrolled_rnn_with_its_rows_read_at_run_time_trains_as_the_reference(small_kernels, monkeypatch,
                                                                                  rng) -> None:
    counts = emitted_functions(monkeypatch)
    steps_count = 2 * LIFT_MIN_KERNELS
    g, loss, train, init, xs = unrolled_rnn(steps_count)
    feed = {xs: rng.standard_normal((steps_count, 3, 4)).astype(np.float32)}
    losses = {}
    for target in ("cpu", "reference"):
        session = fc.Session(target=target, graph=g)
        session.run(init)
        losses[target] = [session.run([loss, train], feed)[0] for _ in range(3)]
    np.testing.assert_allclose(losses["cpu"], losses["reference"], rtol=1e-4, atol=1e-6)
    kernels, functions = counts[-1]
    assert functions < kernels - 2 * steps_count, counts  # the x_t and gradient rows: no function of their own


def test_graphs_differing_only_in_lifted_values_share_their_kernel_objects(small_kernels, monkeypatch, rng) -> None:
    monkeypatch.setattr(llvm_compile, "SPLIT_CHARS", 0)
    monkeypatch.setattr(llvm_compile, "GROUP_CHARS", 0)
    feed_value = rng.standard_normal((3, 8)).astype(np.float32)
    results = []
    for scale in (0.01, 0.02):
        g = fc.Graph()
        with g.as_default():
            x = fc.placeholder(fc.float32, shape=[None, 8], name="x")
            y = x
            for i in range(1, 97):  # 192 ops: 16 kernels of 12
                y = fc.tanh(y * (1.0 + scale * i))
            y = fc.reduce_sum(y, axis=1)  # a kernel of other code: the module splits (Note [kernels compiled apart])
        cpu = fc.Session(target="cpu", graph=g).run(y, {x: feed_value})
        np.testing.assert_allclose(cpu, fc.Session(target="reference", graph=g).run(y, {x: feed_value}),
                                   rtol=1e-5, atol=1e-6)
        results.append((llvm_compile.last_build.modules, llvm_compile.last_build.compiled))
    assert results[1][1] == 1 and results[1][0] > 1, results  # only the entry point compiled again


@pytest.mark.parametrize("rows", [5, None])
def test_reduction_kernels_with_lifted_constants_compute_what_the_reference_does(small_kernels, monkeypatch,
                                                                                  rows, rng) -> None:
    counts = emitted_functions(monkeypatch)
    g, xs, ys = row_sums([0.1 * (k + 1) for k in range(2 * LIFT_MIN_KERNELS)], rows)
    feed = {x: rng.standard_normal((5, 16)).astype(np.float32) for x in xs}
    cpu, reference = run_cpu_and_reference(g, ys, feed)
    np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)
    if rows is not None:  # unknown row counts are a dims slot each: those kernels stay apart
        assert counts[-1][1] < LIFT_MIN_KERNELS // 2, counts  # (a product x * c is c * x in some kernels)


def test_product_kernels_with_lifted_constants_compute_what_the_reference_does(small_kernels, monkeypatch,
                                                                               rng) -> None:
    counts = emitted_functions(monkeypatch)
    g, x, y = layers([0.05 * (k + 1) for k in range(2 * LIFT_MIN_KERNELS)])
    cpu, reference = run_cpu_and_reference(g, y, {x: rng.standard_normal((5, 16)).astype(np.float32)})
    np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)
    assert counts[-1][1] < LIFT_MIN_KERNELS // 2, counts  # the layers' products: one function


def test_a_big_entry_point_splits_the_module_whatever_its_kernels_size(tmp_path, monkeypatch, rng) -> None:
    monkeypatch.setattr(llvm_compile, "SPLIT_CHARS", 10**12)
    g, x, y = layers([0.1, 0.2, 0.3])
    feed = {x: rng.standard_normal((5, 16)).astype(np.float32)}
    for entry_chars, split in ((10**12, False), (0, True)):
        monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / str(entry_chars)))
        monkeypatch.setattr(llvm_compile, "SPLIT_ENTRY_CHARS", entry_chars)
        cpu, reference = run_cpu_and_reference(g, y, feed)
        np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)
        assert (llvm_compile.last_build.modules > 1) == split  # split: the entry point's module and the kernels'
