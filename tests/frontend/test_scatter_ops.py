"""TF1's scatter-adds and the gradients built on scatter_add (ir/ops/indexing.py): the gradients of
gather, gather_nd and scatter_nd against central differences, on None dims fed several sizes and on
every target; fc.tensor_scatter_nd_add (tensor_scatter_add), fc.math.unsorted_segment_sum and
segment_sum against numpy; their errors; and the result in base's bytes only where nothing reads
base after (Note [rows written in place] in passes/memory.py)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcTypeError, IndexOutOfRange

TARGETS = ("reference", "cpu") + (("gpu",) if importlib.util.find_spec("torch") and
                                  importlib.util.find_spec("triton") else ())


def check_gradient(build, xs: list[np.ndarray], declared: tuple) -> None:  # type: ignore[no-untyped-def]
    """d sum(build(x)^2) / dx on every target against central differences in float64, for each x
    fed to one placeholder of shape `declared` (None dims: sizes that vary from feed to feed)."""
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.float64, shape=declared, name="x")
        out = build(p)
        loss = fc.reduce_sum(out * out)
        (grad,) = fc.gradients(loss, [p])
    sessions = {target: fc.Session(target=target, graph=g) for target in TARGETS}
    try:
        for x in xs:
            want = np.zeros_like(x)
            for index in np.ndindex(*x.shape):
                up, down = x.copy(), x.copy()
                up[index] += 1e-6
                down[index] -= 1e-6
                run = sessions["reference"].run
                want[index] = (run(loss, {p: up}) - run(loss, {p: down})) / 2e-6
            for target, sess in sessions.items():
                np.testing.assert_allclose(sess.run(grad, {p: x}), want, rtol=1e-6, atol=1e-6, err_msg=target)
    finally:
        for sess in sessions.values():
            sess.close()


def test_the_gradient_of_gather_on_none_dims(rng) -> None:
    """The issue's reproducer: FlowcError ("needs the shape of the params") before scatter_add."""
    xs = [rng.standard_normal((n, 3)) for n in (4, 2, 7)]
    check_gradient(lambda x: fc.gather(x, [0, 0, 1]) ** 2, xs, (None, 3))
    check_gradient(lambda x: fc.gather(x, [2, 0], axis=1) ** 2, xs, (None, 3))
    check_gradient(lambda x: fc.gather(x, [[1, 1], [0, 2]], axis=-1), [rng.standard_normal((2, n, 3)) for n in (1, 4)],
                   (2, None, None))


def test_the_gradient_of_gather_with_no_indices_and_empty_params(rng) -> None:
    check_gradient(lambda x: fc.gather(x, np.zeros(0, np.int32)), [rng.standard_normal((3, 2))], (None, 2))
    check_gradient(lambda x: fc.gather(x, [0, 0], axis=1), [rng.standard_normal((0, 2))], (None, 2))


def test_the_gradients_of_gather_nd_and_scatter_nd(rng) -> None:
    check_gradient(lambda x: fc.gather_nd(x, [[2, 1], [0, 0], [2, 1]]), [rng.standard_normal((3, 2, n)) for n in (1, 3)],
                   (3, 2, None))
    check_gradient(lambda x: fc.gather_nd(x, [[1], [1], [0]]), [rng.standard_normal((n, 2)) for n in (2, 5)], (None, None))
    check_gradient(lambda x: fc.scatter_nd([[1, 2], [1, 2], [0, 0]], x, [3, 4, 2]), [rng.standard_normal((3, 2))],
                   (3, 2))
    check_gradient(lambda x: fc.scatter_nd([[4], [0], [4]], x, [5, 2]), [rng.standard_normal((3, 2))], (None, 2))


def test_the_gradients_of_tensor_scatter_add_and_the_segment_sums(rng) -> None:
    updates = rng.standard_normal((3, 2))
    check_gradient(lambda x: fc.tensor_scatter_nd_add(x, [[1], [1], [3]], updates) * x,
                   [rng.standard_normal((4, 2))], (None, 2))
    base = rng.standard_normal((4, 2))
    check_gradient(lambda x: fc.tensor_scatter_add(base, [[1], [1], [3]], x), [rng.standard_normal((3, 2))], (3, None))
    check_gradient(lambda x: fc.math.unsorted_segment_sum(x, [2, 0, 2], 4), [rng.standard_normal((3, n)) for n in (2, 1)],
                   (3, None))
    check_gradient(lambda x: fc.segment_sum(x, [0, 0, 1]), [rng.standard_normal((3, 2))], (3, 2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_tensor_scatter_add_and_segment_sums_against_numpy(dtype, rng) -> None:
    data = rng.integers(-9, 9, (6, 3)).astype(dtype)
    ids = np.array([3, 0, 3, 3, 1, 0], np.int64)
    vectors = np.array([[1, 2], [1, 2], [0, 0]], np.int32)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder({np.float32: fc.float32, np.float64: fc.float64, np.int32: fc.int32}[dtype], [None, None])
        outs = [fc.math.unsorted_segment_sum(x, ids, 5), fc.unsorted_segment_sum(x, ids.astype(np.int32), 4),
                fc.segment_sum(x, [0, 0, 1, 1, 1, 4]), fc.math.segment_sum(x, [0, 0, 0, 0, 0, 0]),
                fc.tensor_scatter_nd_add(fc.reshape(x, [6, 3]), vectors, fc.constant(np.arange(3, dtype=dtype))),
                fc.tensor_scatter_add(x, [[5], [0], [5]], fc.ones_like(x[:3]))]
    segments = np.zeros((5, 3), dtype)
    np.add.at(segments, ids, data)
    by_sorted = np.zeros((5, 3), dtype)
    np.add.at(by_sorted, [0, 0, 1, 1, 1, 4], data)
    added = data.copy()
    np.add.at(added, (vectors[:, 0], vectors[:, 1]), np.arange(3, dtype=dtype))
    rows = data.copy()
    np.add.at(rows, [5, 0, 5], 1)
    wants = [segments, segments[:4], by_sorted, data.sum(0, keepdims=True).astype(dtype), added, rows]
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            for got, want in zip(sess.run(outs, {x: data}), wants, strict=True):
                assert got.dtype == want.dtype
                np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=target)


def test_an_id_out_of_range_raises_on_every_target_naming_the_op_and_line() -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, None])
        ids = fc.placeholder(fc.int32, [None])
        sums = fc.math.unsorted_segment_sum(x, ids, 3, name="sums")
        grad, = fc.gradients(fc.reduce_sum(fc.gather(x, ids, name="picked")), [x])
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            for bad in (3, -1):
                with pytest.raises(IndexOutOfRange, match=rf"scatter_add 'sums'.*test_scatter_ops.py:\d+.*index {bad}"):
                    sess.run(sums, {x: np.ones((2, 2)), ids: [0, bad]})
            with pytest.raises(IndexOutOfRange, match=r"index 5"):
                sess.run(grad, {x: np.ones((4, 2)), ids: [5]})
            with pytest.raises(IndexOutOfRange, match=r"index 9"):  # empty slices: checked all the same
                sess.run(sums, {x: np.ones((1, 0)), ids: [9]})


def test_bad_arguments_are_flowc_errors_naming_the_op_and_the_line() -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        ids = fc.placeholder(fc.int32, [None])
        for words, make in [
            ("segment_sum.*computed at run time", lambda: fc.segment_sum(x, ids)),
            ("segment_sum.*sorted", lambda: fc.segment_sum(x, [1, 0])),
            ("unsorted_segment_sum.*segment_ids", lambda: fc.math.unsorted_segment_sum(x, [[0, 1]], 2)),
            ("unsorted_segment_sum.*segment_ids", lambda: fc.math.unsorted_segment_sum(x, [0.5], 2)),
            ("tensor_scatter_nd_add.*need f32\\[2,3\\]", lambda: fc.tensor_scatter_nd_add(x, [[0], [1]], fc.ones([2, 4]))),
            ("tensor_scatter_nd_add.*first 2 dims", lambda: fc.tensor_scatter_nd_add(x, [[0, 1]], fc.ones([1]))),
            ("scatter_nd.*need f32\\[1,4\\]", lambda: fc.scatter_nd([[0]], fc.ones([2, 4]), [3, 4])),
        ]:
            with pytest.raises(FlowcTypeError, match=words) as raised:
                make()
            assert "test_scatter_ops.py:" in str(raised.value), raised.value


@pytest.mark.parametrize("read_after", [False, True])
def test_a_scatter_add_into_a_temp_matches_whether_or_not_base_is_read_after(read_after, rng) -> None:
    """Into a temp that nothing reads after, the result takes its bytes; a later read of the temp must
    see it unchanged (no in place then)."""
    data = rng.standard_normal((5, 3)).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        temp = x * 2.0
        added = fc.tensor_scatter_add(temp, [[4], [1], [4]], fc.ones([3, 3]))
        out = added + temp if read_after else added
    want = data * 2
    np.add.at(want, [4, 1, 4], 1)
    want = want + data * 2 if read_after else want
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            np.testing.assert_allclose(sess.run(out, {x: data}), want, rtol=1e-6, err_msg=target)


def test_the_gradient_of_a_gather_inside_a_while_loop(rng) -> None:
    """A scatter_add per turn of the backward loop (indices that change from turn to turn)."""
    def build(x):  # type: ignore[no-untyped-def]
        def body(i, acc):  # type: ignore[no-untyped-def]
            picked = fc.gather(x, fc.stack([i % 2, 0, i % 3]))
            return i + 1, acc * 0.5 + fc.reduce_sum(picked ** 2) * 0.1
        return fc.while_loop(lambda i, a: i < 3, body, [fc.constant(0), fc.constant(1.0, fc.float64)])[1]

    check_gradient(build, [rng.standard_normal((n, 3)) for n in (4, 3)], (None, 3))
