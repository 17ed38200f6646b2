"""Compile time linear in the graph (issue 16, part 5): fusion's incremental checks decide as the
full ones did, and big modules compile per kernel, each object cached (Note [kernels compiled apart])."""

from __future__ import annotations

import numpy as np
import pytest
from test_fusion import RowGraph

import flowc as fc
from flowc.codegen.llvm import compile as llvm_compile
from flowc.ir.errors import IndexOutOfRange
from flowc.lowering import lower
from flowc.passes import PassManager, expand_gradients, optimize
from flowc.passes import fusion
from flowc.passes.fusion import Fuse, Group, Planner, same_loop_shape, valid_kernel


class CheckingPlanner(Planner):
    """Asks every question of the plan both ways: incrementally (as Fuse does) and as before,
    from the whole union and by a search from the first group."""

    decisions = 0

    def union_is_kernel(self, kind: str, a: Group, b: Group) -> bool:
        answer = super().union_is_kernel(kind, a, b)
        ops = sorted(a.ops + b.ops, key=self.index.__getitem__)
        full = (kind == "loop" and same_loop_shape(a, b, self.ties)) or valid_kernel(kind, ops, self.ties)
        assert answer == full, (kind, [op.name for op in ops])
        CheckingPlanner.decisions += 1
        return answer

    def descendants_before(self, first: Group, second: Group, direct_ok: bool) -> list[Group] | None:
        answer = super().descendants_before(first, second, direct_ok)
        if second not in first.successors or direct_ok:
            start, stop = self.span(first, second)
            assert answer == self.descendants_by_search(first, second)
            assert answer == self.descendants_in_span(first, second, start, stop)
        return answer


def chain_with_gradient(n: int):  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 8], name="x")
        y = x
        for i in range(n):
            y = [fc.tanh(y), y * (1.0 + 0.01 * i), fc.sigmoid(y), y + x][i % 4]
        loss = fc.reduce_mean(y)
        (grad,) = fc.gradients(loss, [x])
    return g, [loss, grad], x


def unrolled_rnn(steps: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    g = fc.Graph()
    with g.as_default():
        xs = fc.placeholder(fc.float32, shape=[steps, None, 4], name="xs")
        w_in = fc.Variable((rng.standard_normal((4, 8)) * 0.3).astype(np.float32), name="w_in")
        w_h = fc.Variable((rng.standard_normal((8, 8)) * 0.3).astype(np.float32), name="w_h")
        bias = fc.Variable(np.full(8, 0.1, np.float32), name="b")
        h = fc.tanh(fc.matmul(xs[0], w_in) + bias)
        outputs = [h]
        for t in range(1, steps):
            h = fc.tanh(fc.matmul(xs[t], w_in) + fc.matmul(h, w_h) + bias)
            outputs.append(h)
        loss = fc.reduce_mean(fc.square(fc.stack(outputs)))
        train = fc.train.AdamOptimizer(0.01).minimize(loss)
        init = fc.global_variables_initializer()
    return g, loss, train, init, xs


def fused_with_checks(monkeypatch, graph, tensors, targets=(), feeds=()) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(fusion, "Planner", CheckingPlanner)
    lowered = lower(graph, list(tensors), list(targets), list(feeds))
    optimize(lowered.module)
    expand_gradients(lowered.module)
    PassManager([Fuse()], verify_each=True).run(lowered.module)


def test_incremental_fusion_decides_as_the_full_check_on_a_long_chain(monkeypatch) -> None:
    g, fetches, x = chain_with_gradient(120)
    CheckingPlanner.decisions = 0
    fused_with_checks(monkeypatch, g, fetches, feeds=[x])
    assert CheckingPlanner.decisions > 200  # the chain and its gradient grow one kernel op by op


def test_incremental_fusion_decides_as_the_full_check_on_an_rnn(monkeypatch) -> None:
    g, loss, train, _, xs = unrolled_rnn(6)
    CheckingPlanner.decisions = 0
    fused_with_checks(monkeypatch, g, [loss], [train.op if hasattr(train, "op") else train], [xs])
    assert CheckingPlanner.decisions > 20


@pytest.mark.parametrize("seed", range(30))
def test_incremental_fusion_decides_as_the_full_check_on_row_graphs(monkeypatch, seed: int) -> None:
    monkeypatch.setattr(fusion, "Planner", CheckingPlanner)
    rng = np.random.default_rng(seed)
    graph = RowGraph(rng, None if seed % 2 else 3)
    for _ in range(int(rng.integers(3, 16))):
        graph.step()
    PassManager([Fuse()], verify_each=True).run(graph.finish())


# -- per-kernel modules -----------------------------------------------------------------------------


def layers(constants: list[float]):  # type: ignore[no-untyped-def]
    """Layers tanh(h @ w_k + c_k) and a row sum: one matmul kernel (with its epilogue) per layer."""
    rng = np.random.default_rng(1)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 16], name="x")
        h = x
        for k, constant in enumerate(constants):
            w = fc.constant((rng.standard_normal((16, 16)) * 0.3).astype(np.float32), name=f"w{k}")
            h = fc.tanh(fc.matmul(h, w) + constant)
        y = fc.reduce_sum(h, axis=1)
    return g, x, y


def run_cpu_and_reference(graph, fetches, feeds):  # type: ignore[no-untyped-def]
    return [fc.Session(target=t, graph=graph).run(fetches, feeds) for t in ("cpu", "reference")]


@pytest.fixture
def split_everything(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Every module of two kernels or more compiles per kernel, in worker processes, in a fresh cache."""
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(llvm_compile, "SPLIT_CHARS", 0)
    monkeypatch.setattr(llvm_compile, "PARALLEL_CHARS", 0)
    monkeypatch.setattr(llvm_compile, "GROUP_CHARS", 0)  # and each kernel in a module of its own


def test_per_kernel_modules_compute_what_the_reference_does(split_everything, rng) -> None:
    g, x, y = layers([0.1, 0.2, 0.3, 0.4])
    feed = {x: rng.standard_normal((5, 16)).astype(np.float32)}
    cpu, reference = run_cpu_and_reference(g, y, feed)
    assert llvm_compile.last_build.modules == 6  # four layers, the row sum and the entry point
    np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)


def test_per_kernel_modules_of_an_rnn_train_as_the_reference(split_everything, rng) -> None:
    g, loss, train, init, xs = unrolled_rnn(5)
    feed = {xs: rng.standard_normal((5, 3, 4)).astype(np.float32)}
    losses = {}
    for target in ("cpu", "reference"):
        session = fc.Session(target=target, graph=g)
        session.run(init)
        losses[target] = [session.run([loss, train], feed)[0] for _ in range(3)]
    assert llvm_compile.last_build.modules > 3
    np.testing.assert_allclose(losses["cpu"], losses["reference"], rtol=1e-4, atol=1e-6)


def test_a_kernel_of_a_split_module_reports_a_bad_index(split_everything) -> None:
    g = fc.Graph()
    with g.as_default():
        table = fc.placeholder(fc.float32, shape=[None, 4], name="table")
        index = fc.placeholder(fc.int32, shape=[None], name="index")
        y = fc.reduce_sum(fc.tanh(fc.gather(fc.exp(table) * 2.0, index)), axis=1)
    session = fc.Session(target="cpu", graph=g)
    values = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    good = session.run(y, {table: values, index: np.array([2, 0], np.int32)})
    assert llvm_compile.last_build.modules >= 3
    np.testing.assert_allclose(good, np.tanh(np.exp(values) * 2)[[2, 0]].sum(axis=1), rtol=1e-5)
    with pytest.raises(IndexOutOfRange, match="index 7 is out of range"):
        session.run(y, {table: values, index: np.array([7], np.int32)})


def test_an_edited_layer_recompiles_that_layer_and_the_entry_point(split_everything, rng) -> None:
    feed_value = rng.standard_normal((5, 16)).astype(np.float32)
    g, x, y = layers([0.1, 0.2, 0.3, 0.4])
    fc.Session(target="cpu", graph=g).run(y, {x: feed_value})
    assert (llvm_compile.last_build.modules, llvm_compile.last_build.compiled) == (6, 6)
    g, x, y = layers([0.1, 0.2, 0.35, 0.4])  # the third layer's constant changes
    cpu, reference = run_cpu_and_reference(g, y, {x: feed_value})
    assert (llvm_compile.last_build.modules, llvm_compile.last_build.compiled) == (6, 2)
    np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)


def test_kernels_that_are_the_same_code_compile_once(split_everything, rng) -> None:
    g, x, y = layers([0.5, 0.5, 0.5, 0.5])  # same shapes, same constant: one kernel's code four times
    cpu, reference = run_cpu_and_reference(g, y, {x: rng.standard_normal((5, 16)).astype(np.float32)})
    assert llvm_compile.last_build.modules < 5
    np.testing.assert_allclose(cpu, reference, rtol=1e-5, atol=1e-6)
