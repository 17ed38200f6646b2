"""fc.range and fc.linspace whose bounds or count are computed at run time, and fc.nn.top_k of a run-time k
(issue 19): their result's size is data (Note [data-dependent sizes] in compiler/data_sized_run.py). Values
against numpy on both targets over counts of 0, 1 and odd sizes, every dtype TF1 takes, and bad input stopping
the run with an error that names the op and the user's line."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcError, FlowcTypeError

TARGETS = ("reference", "cpu")
LINE = r"test_data_sized_ranges.py:\d+"


def run(fetches, feeds: dict, target: str, graph: fc.Graph):  # type: ignore[no-untyped-def]
    with fc.Session(graph=graph, target=target) as sess:
        return sess.run(fetches, feeds)


# -- range -------------------------------------------------------------------------------------------


RANGES = [(0, 5, 1), (0, 0, 1), (0, 1, 1), (2, 17, 3), (5, 0, 1), (5, 0, -2), (-3, 4, 2), (7, 7, -1), (0, 10, 4),
          (10, -11, -7)]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("target", TARGETS)
def test_range_of_integer_bounds_fed_at_run_time(dtype, target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        start, limit, delta = (fc.placeholder(fc.as_dtype(dtype), []) for _ in range(3))
        both = fc.range(start, limit, delta)
        alone = fc.range(limit)
        doubled = fc.reduce_sum(alone * 2)
    with fc.Session(graph=g, target=target) as sess:  # one Session: each count a new size of the same program
        for a, b, d in RANGES:
            got, counted, total = sess.run([both, alone, doubled], {start: a, limit: b, delta: d})
            assert got.dtype == dtype and counted.dtype == dtype
            np.testing.assert_array_equal(got, np.arange(a, b, d, dtype=dtype))
            np.testing.assert_array_equal(counted, np.arange(max(b, 0), dtype=dtype))
            assert total == 2 * np.arange(max(b, 0)).sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", TARGETS)
def test_range_of_float_bounds_fed_at_run_time(dtype, target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        start, limit = fc.placeholder(fc.as_dtype(dtype), []), fc.placeholder(fc.as_dtype(dtype), [])
        stepped = fc.range(start, limit, 0.25 if dtype == np.float32 else np.float64(0.3))
        counted = fc.range(limit)
    step = 0.25 if dtype == np.float32 else 0.3
    for a, b in [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0), (-1.1, 2.3), (0.0, 0.1)]:
        got, up_to = run([stepped, counted], {start: a, limit: b}, target, g)
        want = np.arange(dtype(a), dtype(b), dtype(step)).astype(dtype)
        assert got.dtype == dtype and got.shape == want.shape, (got, want)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(up_to, np.arange(dtype(b)).astype(dtype))


@pytest.mark.parametrize("target", TARGETS)
def test_range_dtype_follows_tf1(target: str) -> None:
    """The last of int32, int64, float32, float64 among the bounds; or `dtype` given."""
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, [])
        wide = fc.placeholder(fc.int64, [])
        x = fc.placeholder(fc.float32, [None])
        cases = [fc.range(n), fc.range(0, wide), fc.range(0.5, n), fc.range(n, dtype=fc.float64),
                 fc.range(fc.shape(x)[0] * n), fc.range(1, fc.shape(x)[0])]
        feeds = {n: 3, wide: 4, x: np.ones(2, np.float32)}
    got = run(cases, feeds, target, g)
    assert [a.dtype for a in got] == [np.int32, np.int64, np.float32, np.float64, np.int32, np.int32]
    np.testing.assert_array_equal(got[5], [1])  # a dim of fc.shape, not counted from 0: data sized too
    np.testing.assert_array_equal(got[2], [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(got[4], np.arange(6))


def test_a_run_time_range_has_no_gradient_as_tf1s() -> None:
    """TF1's Range is not differentiable; the constant range of static bounds has none either."""
    with fc.Graph().as_default():
        start = fc.placeholder(fc.float32, [])
        assert fc.gradients(fc.reduce_sum(fc.range(start, 4.0, 0.5)), [start]) == [None]


def test_t4_reproducers() -> None:
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, [])
        s = fc.placeholder(fc.float32, [])
        doubled = fc.range(n) * 2
        spaced = fc.linspace(s, 1.0, n)
        x = fc.placeholder(fc.float32, [None, 6])
        best = fc.nn.top_k(x, n - 1).values
    for target in TARGETS:
        a, b, c = run([doubled, spaced, best], {n: 4, s: 0.0, x: np.arange(12, dtype=np.float32).reshape(2, 6)},
                      target, g)
        np.testing.assert_array_equal(a, [0, 2, 4, 6])
        np.testing.assert_allclose(b, [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
        np.testing.assert_array_equal(c, [[5, 4, 3], [11, 10, 9]])


@pytest.mark.parametrize("target", TARGETS)
def test_range_errors_name_the_op_and_the_line(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        d = fc.placeholder(fc.int32, [])
        r = fc.range(0, 5, d)
        with pytest.raises(FlowcTypeError, match=rf"range.*{LINE}.*limit must be a scalar"):
            fc.range(fc.placeholder(fc.int32, [2]))
        with pytest.raises(FlowcTypeError, match=rf"range.*{LINE}.*start must be a scalar of int32"):
            fc.range(fc.placeholder(fc.bool_, []), 4)
    with fc.Session(graph=g, target=target) as sess:
        with pytest.raises(FlowcError, match=rf"{LINE}.*range: delta must not be 0"):
            sess.run(r, {d: 0})
        np.testing.assert_array_equal(sess.run(r, {d: -1}), [])
        np.testing.assert_array_equal(sess.run(r, {d: 2}), [0, 2, 4])


# -- linspace ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("target", TARGETS)
def test_linspace_of_a_run_time_num(dtype, num_dtype, target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        num = fc.placeholder(fc.as_dtype(num_dtype), [])
        start, stop = fc.placeholder(fc.as_dtype(dtype), []), fc.placeholder(fc.as_dtype(dtype), [])
        spaced = fc.linspace(start, stop, num)
        total = fc.reduce_sum(spaced)
    with fc.Session(graph=g, target=target) as sess:
        for count, a, b in [(1, 2.0, 5.0), (2, 2.0, 5.0), (5, 0.0, 1.0), (17, -3.0, 0.7), (4, 1.0, -1.0), (3, 1, 1)]:
            got, summed = sess.run([spaced, total], {num: count, start: a, stop: b})
            want = np.linspace(a, b, count).astype(dtype)
            assert got.dtype == dtype and got.shape == (count,)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
            assert got[0] == dtype(a) and got[-1] == (dtype(b) if count > 1 else dtype(a))
            np.testing.assert_allclose(summed, want.sum(), rtol=1e-5, atol=1e-5)
        for bad in (0, -2):
            with pytest.raises(FlowcError, match=rf"{LINE}.*linspace: num must be > 0"):
                sess.run(spaced, {num: bad, start: 0.0, stop: 1.0})


def test_linspace_of_a_run_time_num_refuses_a_bad_num_when_built() -> None:
    with fc.Graph().as_default():
        with pytest.raises(FlowcTypeError, match=rf"linspace.*{LINE}.*num must be an int32 or int64 scalar"):
            fc.linspace(0.0, 1.0, fc.placeholder(fc.float32, []))


# -- top_k of a run-time k ---------------------------------------------------------------------------


def top_k_reference(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest first, the lower index first among equal values, NaN above every number."""
    order = np.argsort(-np.where(np.isnan(x), np.inf, x.astype(np.float64)), axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, order, axis=-1), order.astype(np.int32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.float16, np.int8, np.uint8,
                                   np.int16])
@pytest.mark.parametrize("target", TARGETS)
def test_top_k_of_a_run_time_k_in_every_dtype(dtype, target: str, rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.as_dtype(dtype), [None, None])
        k = fc.placeholder(fc.int32, [])
        values, indices = fc.nn.top_k(x, k)
        total = fc.reduce_sum(fc.cast(values, fc.float64))
    with fc.Session(graph=g, target=target) as sess:  # one Session: each (shape, k) a new size
        for shape, count in [((3, 7), 3), ((3, 7), 0), ((3, 7), 7), ((1, 1), 1), ((0, 5), 2), ((2, 6), 1), ((4, 0), 0)]:
            data = rng.integers(0, 5, shape).astype(dtype)  # ties: the lower index first
            got_values, got_indices, got_total = sess.run([values, indices, total], {x: data, k: count})
            want_values, want_indices = top_k_reference(data, count)
            assert got_values.dtype == dtype and got_indices.dtype == np.int32
            np.testing.assert_array_equal(got_values, want_values)
            np.testing.assert_array_equal(got_indices, want_indices)
            np.testing.assert_allclose(got_total, want_values.astype(np.float64).sum())


@pytest.mark.parametrize("target", TARGETS)
def test_top_k_of_a_run_time_k_over_several_none_dims(target: str, rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, None, None])
        k = fc.placeholder(fc.int64, [])
        picked = fc.nn.top_k(x, k)
        doubled = picked.values * 2.0
    with fc.Session(graph=g, target=target) as sess:
        for shape, count in [((2, 3, 9), 4), ((1, 5, 2), 2), ((3, 1, 33), 17), ((2, 2, 1), 0)]:
            data = rng.standard_normal(shape).astype(np.float32)
            data.flat[:: 7] = np.nan
            got, twice, order = sess.run([picked.values, doubled, picked.indices], {x: data, k: count})
            want, want_order = top_k_reference(data, count)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(twice, want * 2)
            np.testing.assert_array_equal(order, want_order)


@pytest.mark.parametrize("target", TARGETS)
def test_top_k_of_a_run_time_k_refuses_k_outside_the_row(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 6])
        k = fc.placeholder(fc.int32, [])
        values = fc.nn.top_k(x, k).values
        with pytest.raises(FlowcTypeError, match=rf"top_k.*{LINE}.*k must be an int32 or int64 scalar"):
            fc.nn.top_k(x, fc.placeholder(fc.int32, [1]))
    with fc.Session(graph=g, target=target) as sess:
        for bad in (7, -1):
            with pytest.raises(FlowcError, match=rf"{LINE}.*top_k: k must be >= 0 and at most the size of the last"):
                sess.run(values, {x: np.ones((2, 6), np.float32), k: bad})
        assert sess.run(values, {x: np.ones((2, 6), np.float32), k: 6}).shape == (2, 6)


def test_top_k_of_a_run_time_k_gradient_against_central_differences(rng) -> None:
    x0 = rng.permutation(24).reshape(4, 6).astype(np.float64) / 7.0  # distinct: no tie to break
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None, 6])
        k = fc.placeholder(fc.int32, [])
        values = fc.nn.top_k(x, k).values
        loss = fc.reduce_sum(values * values * fc.range(fc.cast(k, fc.float64)))
        (grad,) = fc.gradients(loss, [x])
    for count in (0, 1, 4):
        with fc.Session(graph=g, target="reference") as sess:
            want = np.zeros_like(x0)
            for index in np.ndindex(*x0.shape):
                up, down = x0.copy(), x0.copy()
                up[index] += 1e-6
                down[index] -= 1e-6
                want[index] = (sess.run(loss, {x: up, k: count}) - sess.run(loss, {x: down, k: count})) / 2e-6
            np.testing.assert_allclose(sess.run(grad, {x: x0, k: count}), want, rtol=1e-6, atol=1e-6)
        with fc.Session(graph=g, target="cpu") as sess:
            np.testing.assert_allclose(sess.run(grad, {x: x0, k: count}), want, rtol=1e-6, atol=1e-6)


def test_inside_a_while_loop_a_run_time_range_runs_from_the_host() -> None:
    """The host reads a count inside a loop body by running the loop from the host (Note [conds driven from
    the host]: a while whose body holds a data_dim is marked): cpu gives the reference's sums."""
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, [])
        _, total = fc.while_loop(lambda i, t: i < 2, lambda i, t: (i + 1, t + fc.reduce_sum(fc.range(n + i))),
                                 [fc.constant(0), fc.constant(0)])
    for count in (0, 1, 3):
        want = sum(range(count)) + sum(range(count + 1))
        assert run(total, {n: count}, "reference", g) == want
        assert run(total, {n: count}, "cpu", g) == want
