"""Conds whose branches yield different shapes, and dynamic TensorArrays grown in a loop, on the cpu target
against the reference target (Note [conds driven from the host] in compiler/host_driven.py; issue 17).

Each graph runs on both targets with the same feeds; the cpu target reads the marked cond's predicate on
the host and calls the chosen branch, and keeps every other cond in native code.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import flowc as fc
from flowc.host_driven import HostDrivenExecutable
from flowc.aot.dims import ExportShapeError
from flowc.ir.errors import GraphError, UnsupportedOpError
from flowc.native import NativeExecutable
from numeric_gradients import central_differences

F32 = np.float32
SIZES = (0, 1, 5)


def both(build: Callable[[], tuple[Any, list[dict]]], rtol: float = 1e-5) -> list[Any]:
    """`build()` makes (fetches, feed sets) in a fresh graph; each feed set runs on reference and cpu (one
    Session each); returns the cpu Session's executables."""
    g = fc.Graph()
    with g.as_default():
        fetches, feeds_list = build()
    with fc.Session(graph=g, target="reference") as ref, fc.Session(graph=g, target="cpu") as cpu:
        for feeds in feeds_list:
            want, got = ref.run(fetches, feeds), cpu.run(fetches, feeds)
            for w, o in zip(_flat(want), _flat(got)):
                assert o.shape == w.shape and o.dtype == w.dtype, (o.shape, w.shape)
                np.testing.assert_allclose(o, w, rtol=rtol, atol=1e-6)
        return [compiled.executable for compiled in cpu._cache.values()]


def _flat(values: Any) -> list[np.ndarray]:
    return [np.asarray(v) for v in (values if isinstance(values, (list, tuple)) else [values])]


def _feeds(x: Any, p: Any, dtype: Any = F32) -> list[dict]:
    return [{x: np.arange(n, dtype=dtype) + 0.5, p: flag} for n in SIZES for flag in (True, False)]


# -- conds ----------------------------------------------------------------------------------------


def test_the_reproducer_a_cond_of_different_shapes_runs_from_the_host() -> None:
    def build() -> tuple[Any, list[dict]]:
        x, p = fc.placeholder(fc.float32, [None]), fc.placeholder(fc.bool, [])
        y = fc.cond(p, lambda: x * 2.0, lambda: fc.concat([x, x], 0))
        return [y, fc.reduce_sum(y)], _feeds(x, p)

    (executable,) = both(build)
    assert isinstance(executable, HostDrivenExecutable)


def test_a_cond_of_equal_shapes_stays_one_native_call() -> None:
    def build() -> tuple[Any, list[dict]]:
        x, p = fc.placeholder(fc.float32, [None]), fc.placeholder(fc.bool, [])
        return fc.cond(p, lambda: x * 2.0, lambda: fc.exp(x)), _feeds(x, p)

    (executable,) = both(build)
    assert isinstance(executable, NativeExecutable)


def test_a_cond_of_two_placeholders_of_sizes_that_differ_runs_from_the_host() -> None:
    """x and z: nothing ties their sizes, so the cond is driven from the host (one size for both would not
    see it); a cond on x and exp(x), of one size, stays native."""
    def build() -> tuple[Any, list[dict]]:
        x, z, p = fc.placeholder(fc.float32, [None]), fc.placeholder(fc.float32, [None]), fc.placeholder(fc.bool, [])
        y = fc.cond(p, lambda: x + 1.0, lambda: z * 2.0)
        feeds = [{x: np.ones(n, F32), z: np.arange(m, dtype=F32), p: flag}
                 for n, m in ((3, 4), (0, 1), (5, 5)) for flag in (True, False)]
        return y, feeds

    (executable,) = both(build)
    assert isinstance(executable, HostDrivenExecutable)

    def tied() -> tuple[Any, list[dict]]:
        x, p = fc.placeholder(fc.float32, [None]), fc.placeholder(fc.bool, [])
        z = fc.exp(x)
        return fc.cond(p, lambda: x + 1.0, lambda: z * 2.0), _feeds(x, p)

    (executable,) = both(tied)
    assert isinstance(executable, NativeExecutable)


def test_fc_case_and_a_cond_nested_in_a_branch_of_different_shapes() -> None:
    def build() -> tuple[Any, list[dict]]:
        x, k, p = fc.placeholder(fc.float32, [None]), fc.placeholder(fc.int32, []), fc.placeholder(fc.bool, [])
        y = fc.case([(k < 0, lambda: x[:1]), (k > 0, lambda: fc.concat([x, x, x], 0))], default=lambda: x)
        z = fc.cond(p, lambda: fc.cond(k > 0, lambda: x * 2.0, lambda: x[1:]),
                    lambda: fc.reduce_sum(x, keepdims=True))
        feeds = [{x: np.arange(n, dtype=F32), k: step, p: flag} for n in (1, 4) for step in (-1, 0, 1)
                 for flag in (True, False)]
        return [y, z], feeds

    both(build)


def test_a_cond_reading_a_value_shaped_by_another_runs_from_the_host_too() -> None:
    """z's then branch adds y to x: sized natively for a run that took y's else branch (y twice x's size)
    it would be a shape error, though that branch does not run. So z is driven from the host too."""
    def build() -> tuple[Any, list[dict]]:
        x, p = fc.placeholder(fc.float32, [None]), fc.placeholder(fc.bool, [])
        y = fc.cond(p, lambda: x * 2.0, lambda: fc.concat([x, x], 0))
        z = fc.cond(p, lambda: y + x, lambda: y * 3.0)
        return z, _feeds(x, p)

    both(build)


def test_a_cond_of_different_shapes_in_a_loop_body_and_a_loop_value_grown_by_one() -> None:
    def build() -> tuple[Any, list[dict]]:
        x, p = fc.placeholder(fc.float32, [None]), fc.placeholder(fc.bool, [])

        def body(i: Any, total: Any, acc: Any) -> Any:
            even = fc.equal(i % 2, 0)
            y = fc.cond(even, lambda: x * fc.cast(i, fc.float32), lambda: fc.concat([x, x[:1]], 0))
            grown = fc.cond(p, lambda: fc.concat([acc, y[:1]], 0), lambda: acc)
            return i + 1, total + fc.reduce_sum(y), grown

        start = [fc.constant(0), fc.constant(0.0), fc.zeros([0])]
        invariants = [fc.TensorShape([]), fc.TensorShape([]), fc.TensorShape([None])]
        _, total, acc = fc.while_loop(lambda i, t, a: i < 5, body, start, shape_invariants=invariants)
        return [total, acc], [feeds for feeds in _feeds(x, p) if feeds[x].size]  # y[:1] of nothing is nothing

    (executable,) = both(build)
    assert isinstance(executable, HostDrivenExecutable)


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize("size", [1, 3])
def test_gradients_through_a_cond_no_probe_sizes(target: str, flag: bool, size: int, rng: Any) -> None:
    """w is fed twice x's size: a probe of one size, or of one per untied dim, cannot size the else branch.
    At the top level such a cond is driven from the host all the same."""
    value, weight = rng.standard_normal(size), rng.standard_normal(2 * size)
    g = fc.Graph()
    with g.as_default():
        x, p = fc.placeholder(fc.float64, [None]), fc.placeholder(fc.bool, [])
        w = fc.placeholder(fc.float64, [None])
        y = fc.cond(p, lambda: fc.sin(x) * 2.0, lambda: fc.concat([x, x * x], 0) * w)
        gx, gw = fc.gradients(fc.reduce_sum(y * y), [x, w])
    with fc.Session(graph=g, target=target) as sess:
        got_x, got_w = sess.run([gx, gw], {x: value, p: flag, w: weight})

    def np_loss() -> float:
        y = np.sin(value) * 2.0 if flag else np.concatenate([value, value * value]) * weight
        return float(np.sum(y * y))

    np.testing.assert_allclose(got_x, central_differences(np_loss, value), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got_w, central_differences(np_loss, weight), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize("size", [1, 3])
def test_gradients_through_a_cond_of_different_shapes(target: str, flag: bool, size: int, rng: Any) -> None:
    value = rng.standard_normal(size)
    weight = rng.standard_normal(size)
    g = fc.Graph()
    with g.as_default():
        x, p = fc.placeholder(fc.float64, [None]), fc.placeholder(fc.bool, [])
        w = fc.placeholder(fc.float64, [None])
        y = fc.cond(p, lambda: fc.sin(x) * 2.0, lambda: fc.concat([x * w, x * x], 0))
        loss = fc.reduce_sum(y * y)
        gx, gw = fc.gradients(loss, [x, w])
    with fc.Session(graph=g, target=target) as sess:
        got_x, got_w = sess.run([gx, gw], {x: value, p: flag, w: weight})

    def np_loss() -> float:
        y = np.sin(value) * 2.0 if flag else np.concatenate([value * weight, value * value])
        return float(np.sum(y * y))

    np.testing.assert_allclose(got_x, central_differences(np_loss, value), rtol=1e-6, atol=1e-8)
    want_w = central_differences(np_loss, weight) if not flag else np.zeros_like(weight)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_gradients_through_a_cond_of_different_shapes_in_a_loop_body(target: str, rng: Any) -> None:
    value = rng.standard_normal(3)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None])

        def body(i: Any, total: Any) -> Any:
            y = fc.cond(fc.equal(i % 2, 0), lambda: fc.sin(x) * fc.cast(i + 1, fc.float64),
                        lambda: fc.concat([x, x * x], 0))
            return i + 1, total + fc.reduce_sum(y * y)

        _, total = fc.while_loop(lambda i, t: i < 3, body, [0, fc.constant(0.0, fc.float64)])
        (gx,) = fc.gradients(total, [x])
    with fc.Session(graph=g, target=target) as sess:
        got = sess.run(gx, {x: value})

    def np_loss() -> float:
        return float(np.sum(np.sin(value) ** 2) * (1 + 9) + np.sum(value ** 2 + value ** 4))

    np.testing.assert_allclose(got, central_differences(np_loss, value), rtol=1e-6, atol=1e-8)


def test_a_cond_of_different_shapes_under_fc_jit() -> None:
    @fc.jit
    def chosen(x: Any, p: Any) -> Any:
        return fc.cond(p, lambda: x * 2.0, lambda: fc.concat([x, x], 0))

    x = np.arange(3, dtype=F32)
    np.testing.assert_array_equal(chosen(x, np.array(True)), x * 2)
    np.testing.assert_array_equal(chosen(x, np.array(False)), np.concatenate([x, x]))


def test_training_through_a_cond_of_different_shapes_updates_the_variable() -> None:
    """The branch read of w and the update by its gradient, with the branch changing each step."""
    g = fc.Graph()
    with g.as_default():
        x, p = fc.placeholder(fc.float32, [None]), fc.placeholder(fc.bool, [])
        w = fc.Variable(fc.constant(2.0))
        y = fc.cond(p, lambda: x * w, lambda: fc.concat([x, x * w], 0))
        loss = fc.reduce_sum(y * y)
        train = fc.train.GradientDescentOptimizer(0.01).minimize(loss)
        init = fc.global_variables_initializer()
    results = []
    for target in ("reference", "cpu"):
        with fc.Session(graph=g, target=target) as sess:
            sess.run(init)
            losses = [sess.run([loss, train], {x: np.arange(3, dtype=F32), p: step % 2 == 0})[0] for step in range(4)]
            results.append([*losses, sess.run(w)])
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)
    assert results[0][-1] != 2.0


# -- dynamic TensorArrays ---------------------------------------------------------------------------


def _written(n: Any, element_shape: Any = (2,)) -> Any:
    ta = fc.TensorArray(fc.float32, size=0, dynamic_size=True, element_shape=element_shape)

    def body(i: Any, ta: Any) -> Any:
        return i + 1, ta.write(i, fc.cast(i, fc.float32) * fc.ones([2]))

    _, ta = fc.while_loop(lambda i, ta: i < n, body, [0, ta])
    return ta


def test_the_reproducer_a_dynamic_array_written_at_run_time_indices_in_a_loop() -> None:
    def build() -> tuple[Any, list[dict]]:
        n = fc.placeholder(fc.int32, [])
        ta = _written(n)
        return [ta.stack(), ta.size()], [{n: count} for count in SIZES]

    (executable,) = both(build)
    assert isinstance(executable, HostDrivenExecutable)


def test_a_dynamic_array_grown_in_an_inner_loop_of_an_outer_one() -> None:
    """Turn k of the outer loop writes k + 1 rows into a fresh array and adds up its stack."""
    def build() -> tuple[Any, list[dict]]:
        n = fc.placeholder(fc.int32, [])

        def outer(k: Any, total: Any) -> Any:
            ta = _written(k + 1)
            return k + 1, total + fc.reduce_sum(ta.stack()) + fc.cast(ta.size(), fc.float32)

        _, total = fc.while_loop(lambda k, t: k < n, outer, [0, fc.constant(0.0)])
        return total, [{n: count} for count in SIZES]

    both(build)


def test_a_dynamic_array_of_unknown_element_shape_takes_the_first_write_s() -> None:
    """TF1's infer_shape: an array made without element_shape enters the loop; the body's first write fixes it."""
    def build() -> tuple[Any, list[dict]]:
        n = fc.placeholder(fc.int32, [])
        ta = _written(n, element_shape=None)
        assert ta.element_shape == (2,)
        return [ta.stack(), ta.size()], [{n: count} for count in SIZES]

    both(build)


def test_a_fixed_size_array_of_unknown_element_shape_takes_the_first_write_s_too() -> None:
    def build() -> tuple[Any, list[dict]]:
        x = fc.placeholder(fc.float32, [3])
        ta = fc.TensorArray(fc.float32, size=4)
        _, ta = fc.while_loop(lambda i, t: i < 4, lambda i, t: (i + 1, t.write(i, x * fc.cast(i, fc.float32))),
                              [0, ta])
        return ta.stack(), [{x: np.arange(3, dtype=F32) + 1}]

    (executable,) = both(build)
    assert isinstance(executable, NativeExecutable)  # fixed sizes: one native call


def test_an_array_whose_first_write_has_unknown_dims_is_still_refused_by_name() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [None])
        ta = fc.TensorArray(fc.float32, size=0, dynamic_size=True)
        with pytest.raises(GraphError, match=r"TensorArray 'TensorArray'.loop variable.*cannot carry it through a "
                                             r"loop or cond: its element shape is unknown"):
            fc.while_loop(lambda i, t: i < 2, lambda i, t: (i + 1, t.write(i, x)), [0, ta])


# -- fc.export: no host to drive from ------------------------------------------------------------------


def test_export_refuses_a_cond_of_different_shapes(tmp_path: Any) -> None:
    def chosen(x: Any, p: Any) -> Any:
        return fc.cond(p, lambda: x * 2.0, lambda: fc.concat([x, x], 0))

    with pytest.raises(ExportShapeError, match=r"cond 'cond'.*would be \[\d+\] from the then branch and \[\d+\] "
                                               r"from the else branch"):
        fc.export(str(tmp_path / "chosen"), chosen, fc.TensorSpec([None], fc.float32), fc.TensorSpec([], fc.bool))


def test_export_refuses_a_dynamic_array_grown_in_a_loop(tmp_path: Any) -> None:
    def stacked(n: Any) -> Any:
        return _written(n).stack()

    with pytest.raises(UnsupportedOpError, match=r"data_dim 'extra_rows'.*an exported function cannot have a "
                                                 r"result size that is data"):
        fc.export(str(tmp_path / "stacked"), stacked, fc.TensorSpec([], fc.int32))
