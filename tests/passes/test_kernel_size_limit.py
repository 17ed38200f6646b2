"""Note [kernel size limit]: fusion stops growing a kernel at max_kernel_size, which changes where
values go through memory, never what is computed; the chain and the RNN of bench/bench_compile.py
become kernels of bounded size (tests/filecheck/fusion_size_limit.ir shows the cut as IR)."""

from __future__ import annotations

import numpy as np
import pytest
from test_compile_time import chain_with_gradient, unrolled_rnn
from test_fusion import RowGraph, fuse_and_compare
from test_pass_properties import assert_same_bits

import flowc as fc
from flowc.ir import Module, Operation
from flowc.ir.interpreter import evaluate
from flowc.lowering import lower
from flowc.passes import PassManager, expand_gradients, optimize
from flowc.passes.fusion import MAX_KERNEL_REDUCTIONS, MAX_KERNEL_SIZE, REDUCTION_SIZE, Fuse, kernel_size


def size_of(kernel: Operation) -> int:
    """What the kernel holds, counted as the limit counts it (cloned splat constants are immediates)."""
    return sum(kernel_size(op) for op in kernel.regions[0].entry.ops if op.name not in ("constant", "yield"))


def kernel_sizes(module: Module) -> list[int]:
    return [size_of(op) for op in module["main"].entry.ops if op.name == "fusion"]


def fused(graph: fc.Graph, tensors, feeds, targets=(), limit: int = MAX_KERNEL_SIZE) -> Module:  # type: ignore[no-untyped-def]
    module = lower(graph, list(tensors), list(targets), list(feeds)).module
    optimize(module)
    expand_gradients(module)
    PassManager([Fuse(limit)], verify_each=True).run(module)
    return module


def test_a_long_chain_with_its_gradient_is_cut_into_kernels_within_the_limit() -> None:
    g, fetches, x = chain_with_gradient(300)
    sizes = kernel_sizes(fused(g, fetches, [x]))
    assert max(sizes) <= MAX_KERNEL_SIZE, sizes
    assert len(sizes) >= 2 * 300 // MAX_KERNEL_SIZE, sizes  # the chain and its gradient, both cut
    # Without the limit the same graph is one kernel (the figure that made the limit: bench/RESULTS.md).
    assert len(kernel_sizes(fused(g, fetches, [x], limit=10**9))) == 1


def test_the_sums_of_an_unrolled_rnn_are_cut_within_the_limit() -> None:
    """The bias gradient sums one column reduction per step: 40 steps are 40 * REDUCTION_SIZE."""
    g, loss, train, _, xs = unrolled_rnn(40)
    module = fused(g, [loss], [xs], [train])
    sizes = kernel_sizes(module)
    assert max(sizes) <= MAX_KERNEL_SIZE < 40 * REDUCTION_SIZE, sizes


def reductions_of(kernel: Operation) -> int:
    return sum(op.is_reduction for op in kernel.regions[0].entry.ops)


def test_the_sums_of_an_unrolled_rnn_make_kernels_of_at_most_max_kernel_reductions() -> None:
    """The 40 column sums of the bias gradient are cut every MAX_KERNEL_REDUCTIONS sums, not by size."""
    g, loss, train, _, xs = unrolled_rnn(40)
    kernels = [op for op in fused(g, [loss], [xs], [train])["main"].entry.ops if op.name == "fusion"]
    counts = [reductions_of(op) for op in kernels]
    assert max(counts) == MAX_KERNEL_REDUCTIONS, counts
    assert counts.count(MAX_KERNEL_REDUCTIONS) >= 40 // MAX_KERNEL_REDUCTIONS - 1, counts


def test_many_column_sums_cut_into_kernels_compute_what_numpy_does(rng: np.random.Generator) -> None:
    """Ten column sums added up (as an unrolled RNN's bias gradient): four kernels on the CPU target."""
    values = [rng.standard_normal((5, 7)).astype(np.float32) for _ in range(10)]
    g = fc.Graph()
    with g.as_default():
        inputs = [fc.placeholder(fc.float32, shape=[5, 7]) for _ in values]
        total = fc.reduce_sum(inputs[0], axis=0)
        for x in inputs[1:]:
            total = total + fc.reduce_sum(x, axis=0)
    got = fc.Session(target="cpu", graph=g).run(total, dict(zip(inputs, values)))
    np.testing.assert_allclose(got, np.sum(values, axis=(0, 1)), rtol=1e-5, atol=1e-5)
    module = fused(g, [total], inputs)
    kernels = [op for op in module["main"].entry.ops if op.name == "fusion"]
    assert [reductions_of(op) for op in kernels] == [3, 3, 3, 1]


@pytest.mark.parametrize("limit", [1, 2, 9, 20])
@pytest.mark.parametrize("seed", range(12))
def test_any_limit_keeps_the_results_of_row_graphs(seed: int, limit: int) -> None:
    rng = np.random.default_rng(seed)
    graph = RowGraph(rng, None if seed % 2 else 3)
    for _ in range(int(rng.integers(6, 20))):
        graph.step()
    module = graph.finish()
    args = [rng.standard_normal(s).astype(np.float32) for s in [(3, 5), (5,), (3, 1)]]
    before = evaluate(module["f"], args)
    PassManager([Fuse(limit)], verify_each=True).run(module)
    assert_same_bits(before, evaluate(module["f"], args), "")
    for op in module["f"].entry.ops:
        if op.name == "fusion":  # a lone op bigger than the limit (a reduction) is a kernel still
            assert size_of(op) <= max(limit, REDUCTION_SIZE)


def test_the_default_limit_keeps_row_graphs_whole(rng: np.random.Generator) -> None:
    """The checks of test_fusion (each op computed once, nothing left to fuse) with the default limit."""
    graph = RowGraph(rng, 3)
    for _ in range(15):
        graph.step()
    fuse_and_compare(graph.finish(), [rng.standard_normal(s).astype(np.float32) for s in [(3, 5), (5,), (3, 1)]])


def test_a_chain_cut_into_kernels_computes_what_the_reference_does(rng: np.random.Generator) -> None:
    g, fetches, x = chain_with_gradient(250)
    feed = {x: rng.standard_normal((3, 8)).astype(np.float32)}
    cpu, reference = (fc.Session(target=t, graph=g).run(fetches, feed) for t in ("cpu", "reference"))
    for got, want in zip(cpu, reference):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_the_cli_and_the_options_set_the_limit() -> None:
    from flowc.options import CompileOptions
    from flowc.targets import target_named

    (fuse,) = [p for p in target_named("cpu").passes(CompileOptions(max_kernel_size=7)) if isinstance(p, Fuse)]
    assert fuse.max_kernel_size == 7
    (fuse,) = [p for p in target_named("cpu").passes(CompileOptions()) if isinstance(p, Fuse)]
    assert fuse.max_kernel_size == MAX_KERNEL_SIZE
