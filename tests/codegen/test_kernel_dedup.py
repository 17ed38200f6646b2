"""Note [kernels emitted once]: fusion ops that would be the same LLVM function are emitted once
and called for each; ops that differ in anything an emitter reads are not."""

from __future__ import annotations

import re

import numpy as np
from test_compile_time import run_cpu_and_reference, unrolled_rnn

import flowc as fc
from flowc.codegen.llvm import module as llvm_module

KERNEL_FUNCTION = re.compile(r'^define internal void @"kernel\d+_[a-z]+"\(', re.MULTILINE)


def emitted_functions(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """Records, for each module emitted, (its kernels, the kernel functions in its text)."""
    counts: list[tuple[int, int]] = []
    original = llvm_module.emit_module

    def recording(program, *args, **kwargs):  # type: ignore[no-untyped-def]
        module = original(program, *args, **kwargs)
        counts.append((len(program.kernel_ops), len(KERNEL_FUNCTION.findall(str(module)))))
        return module

    monkeypatch.setattr(llvm_module, "emit_module", recording)  # the CPU target looks it up at each compile
    return counts


def test_the_steps_of_an_rnn_share_their_kernels(monkeypatch, tmp_path, rng) -> None:
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    counts = emitted_functions(monkeypatch)
    g, loss, train, init, xs = unrolled_rnn(6)
    feed = {xs: rng.standard_normal((6, 3, 4)).astype(np.float32)}
    losses = {}
    for target in ("cpu", "reference"):
        session = fc.Session(target=target, graph=g)
        session.run(init)
        losses[target] = [session.run([loss, train], feed)[0] for _ in range(3)]
    kernels, functions = counts[-1]
    assert functions <= kernels - 5, counts  # the steps' products repeat (split-k ones are never shared)
    np.testing.assert_allclose(losses["cpu"], losses["reference"], rtol=1e-4, atol=1e-6)


def row_sums(constants: list[float], rows: int | None = 5):  # type: ignore[no-untyped-def]
    """reduce_sum(tanh(x_k * c_k), axis=1) of one placeholder per constant: a reduction kernel each."""
    g = fc.Graph()
    with g.as_default():
        xs = [fc.placeholder(fc.float32, shape=[rows, 16], name=f"x{k}") for k in range(len(constants))]
        ys = [fc.reduce_sum(fc.tanh(x * c), axis=1) for x, c in zip(xs, constants)]
    return g, xs, ys


def test_kernels_that_differ_in_a_constant_or_a_dims_slot_are_not_shared(monkeypatch, tmp_path, rng) -> None:
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    counts = emitted_functions(monkeypatch)
    # Unknown row counts, one per placeholder, are four dims slots: four functions again.
    for constants, rows, functions in (([0.1, 0.2, 0.3, 0.4], 5, 4), ([0.5] * 4, 5, 1), ([0.5] * 4, None, 4)):
        g, xs, ys = row_sums(constants, rows)
        feed = {x: rng.standard_normal((5, 16)).astype(np.float32) for x in xs}
        cpu, reference = run_cpu_and_reference(g, ys, feed)
        np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)
        assert counts[-1] == (4, functions), constants
