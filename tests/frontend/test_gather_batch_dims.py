"""fc.gather with batch_dims (TF 1.14's tf.gather; issue 19): values against a numpy statement of TF's rule on
both targets, shapes with 0, 1 and odd sizes, None batch dims fed several sizes, every dtype, the gradient
against central differences, and bad input as errors that name gather and the user's line."""

from __future__ import annotations

import numpy as np
import pytest
from test_shape_ops import DTYPES, check_gradient, run_both, sample

import flowc as fc
from flowc.errors import FlowcError, FlowcTypeError


def batched_gather(params: np.ndarray, indices: np.ndarray, axis: int, batch_dims: int) -> np.ndarray:
    """TF's rule: each batch entry takes from its own slice of params along axis."""
    rank = indices.ndim
    batch = batch_dims % rank if batch_dims < 0 else batch_dims
    axis = axis % params.ndim
    out = np.empty(params.shape[:axis] + indices.shape[batch:] + params.shape[axis + 1:], params.dtype)
    for entry in np.ndindex(*params.shape[:batch]):
        out[entry] = np.take(params[entry], indices[entry], axis=axis - batch)
    return out


CASES = [  # params shape, indices shape, axis, batch_dims
    ((2, 3, 4), (2, 2), 1, 1), ((2, 3, 4), (2, 5), 2, 1), ((3, 2, 5, 4), (3, 2, 6), 2, 2), ((2, 3), (2,), 1, 1),
    ((0, 3, 2), (0, 4), 1, 1), ((1, 1), (1, 1), 1, 1), ((4, 3, 5, 2), (4, 7, 1), 3, 1), ((3, 5), (3, 2, 2), -1, -2),
    ((2, 5, 3), (2, 0), 1, 1), ((5, 7, 3), (5, 3, 2), None, 1)]


@pytest.mark.parametrize("params_shape, indices_shape, axis, batch_dims", CASES)
def test_gather_with_batch_dims_against_numpy(params_shape, indices_shape, axis, batch_dims, rng) -> None:
    x = sample(rng, params_shape)
    size = params_shape[(batch_dims % len(indices_shape) if batch_dims < 0 else batch_dims) if axis is None else axis]
    i = rng.integers(0, max(size, 1), indices_shape).astype(np.int32)
    (got,) = run_both(lambda x, i: [fc.gather(x, i, axis=axis, batch_dims=batch_dims)], {"x": x, "i": i})
    want = batched_gather(x, i, (batch_dims if batch_dims >= 0 else batch_dims % i.ndim) if axis is None else axis,
                          batch_dims)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_gather_with_batch_dims_in_every_dtype(dtype, index_dtype, rng) -> None:
    x = sample(rng, (3, 4, 5), dtype)
    i = rng.integers(0, 5, (3, 4, 2)).astype(index_dtype)
    (got,) = run_both(lambda x, i: [fc.gather(x, i, axis=2, batch_dims=2)], {"x": x, "i": i})
    np.testing.assert_array_equal(got, batched_gather(x, i, 2, 2))


@pytest.mark.parametrize("batch", [(0, 3), (1, 1), (5, 2), (2, 7)])
def test_gather_with_batch_dims_over_none_dims(batch: tuple, rng) -> None:
    """Batch dims and the gathered axis declared None, fed several sizes (t4.py's reproducer among them)."""
    x = sample(rng, (*batch, 6))
    i = rng.integers(0, 6, (*batch, 3)).astype(np.int32)
    declared = {"x": (None, None, None), "i": (None, None, 3)}
    got = run_both(lambda x, i: [fc.gather(x, i, axis=2, batch_dims=2), fc.gather(x, i[:, 0], axis=2, batch_dims=1)],
                   {"x": x, "i": i}, declared)
    np.testing.assert_array_equal(got[0], batched_gather(x, i, 2, 2))
    np.testing.assert_array_equal(got[1], batched_gather(x, i[:, 0], 2, 1))


def test_t4_reproducer() -> None:
    p = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    i = np.array([[0, 2], [1, 1]], np.int32)
    (got,) = run_both(lambda p, i: [fc.gather(p, i, axis=1, batch_dims=1)], {"p": p, "i": i})
    np.testing.assert_array_equal(got, [[p[0, 0], p[0, 2]], [p[1, 1], p[1, 1]]])


@pytest.mark.parametrize("axis, batch_dims, declared", [(1, 1, None), (2, 1, None), (2, 2, (None, None, 4))])
def test_gather_with_batch_dims_gradient_against_central_differences(axis, batch_dims, declared, rng) -> None:
    x = sample(rng, (2, 3, 4), np.float64)
    size = x.shape[axis]
    i = rng.integers(0, size, (2, 3)[:batch_dims] + (5,)).astype(np.int32)  # repeats: their slopes add up
    check_gradient(lambda x: fc.gather(x, fc.constant(i), axis=axis, batch_dims=batch_dims), x, declared)


def test_gather_with_batch_dims_errors_name_the_op_and_the_line() -> None:
    line = r"test_gather_batch_dims.py:\d+"
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [2, 3, 4])
        for make in (lambda: fc.gather(x, fc.constant([[0]]), axis=0, batch_dims=1),  # axis before the batch dims
                     lambda: fc.gather(x, fc.constant([[0], [1], [1]]), axis=1, batch_dims=1),  # batch 2 against 3
                     lambda: fc.gather(x, fc.constant([0, 1]), axis=1, batch_dims=2),  # more than the indices' rank
                     lambda: fc.gather(x, fc.constant([[0.5]]), axis=1, batch_dims=1)):
            with pytest.raises(FlowcTypeError, match=rf"gather.*{line}"):
                make()


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_gather_with_batch_dims_checks_indices_and_batch_sizes_when_it_runs(target: str) -> None:
    """An index out of range for its axis would read another batch entry's slice: an error naming gather."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        i = fc.placeholder(fc.int32, [None, 2])
        picked = fc.gather(x, i, axis=1, batch_dims=1)
    with fc.Session(graph=g, target=target) as sess:
        ones = np.ones((2, 3), np.float32)
        for bad in ([[0, 3], [0, 0]], [[0, 0], [-1, 0]]):
            with pytest.raises(FlowcError, match=r"gather.*test_gather_batch_dims.py:\d+.*out of range") as info:
                sess.run(picked, {x: ones, i: bad})
        with pytest.raises(FlowcError, match=r"gather.*test_gather_batch_dims.py:\d+.*batch dims"):
            sess.run(picked, {x: ones, i: np.zeros((1, 2), np.int32)})
        assert "axis 1" in str(info.value)
        np.testing.assert_array_equal(sess.run(picked, {x: ones, i: [[2, 0], [1, 1]]}), np.ones((2, 2)))


# -- gather_nd with batch_dims ----------------------------------------------------------------------


def batched_gather_nd(params: np.ndarray, indices: np.ndarray, batch_dims: int) -> np.ndarray:
    """TF's rule, written out: result[b..., i...] = params[b..., indices[b..., i..., :]]."""
    depth = indices.shape[-1]
    out = np.empty(indices.shape[:-1] + params.shape[batch_dims + depth:], params.dtype)
    for position in np.ndindex(*indices.shape[:-1]):
        out[position] = params[tuple(position[:batch_dims]) + tuple(indices[position])]
    return out


ND_CASES = [  # params shape, indices shape, batch_dims
    ((2, 3, 4), (2, 1), 1), ((2, 3, 4), (2, 5, 2), 1), ((3, 2, 5, 4), (3, 2, 6, 1), 2), ((2, 3, 4), (2, 3, 1), 2),
    ((0, 3, 2), (0, 4, 1), 1), ((1, 1, 1), (1, 1, 2), 1), ((4, 3, 5), (4, 0, 2), 1), ((5, 7, 3), (5, 2, 3, 1), 1)]


@pytest.mark.parametrize("params_shape, indices_shape, batch_dims", ND_CASES)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_gather_nd_with_batch_dims_against_numpy(params_shape, indices_shape, batch_dims, index_dtype, rng) -> None:
    x = sample(rng, params_shape)
    limits = params_shape[batch_dims: batch_dims + indices_shape[-1]]
    i = np.stack([rng.integers(0, max(n, 1), indices_shape[:-1]) for n in limits], -1).astype(index_dtype)
    declared = {"x": (None,) * batch_dims + params_shape[batch_dims:], "i": (None,) * (len(indices_shape) - 1)
                + indices_shape[-1:]}
    for shapes in (None, declared):  # static, then every batch and index dim None
        (got,) = run_both(lambda x, i: [fc.gather_nd(x, i, batch_dims=batch_dims)], {"x": x, "i": i}, shapes)
        np.testing.assert_array_equal(got, batched_gather_nd(x, i, batch_dims))


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.bool_])
def test_gather_nd_with_batch_dims_in_other_dtypes(dtype, rng) -> None:
    x = sample(rng, (3, 4, 2), dtype)
    i = rng.integers(0, 4, (3, 5, 1)).astype(np.int32)
    (got,) = run_both(lambda x, i: [fc.gather_nd(x, i, batch_dims=1)], {"x": x, "i": i})
    np.testing.assert_array_equal(got, batched_gather_nd(x, i, 1))


def test_gather_nd_with_batch_dims_gradient_against_central_differences(rng) -> None:
    i = rng.integers(0, 3, (2, 4, 1)).astype(np.int32)  # repeats: their slopes add up
    check_gradient(lambda x: fc.gather_nd(x, fc.constant(i), batch_dims=1), sample(rng, (2, 3, 2), np.float64))


def test_gather_nd_with_batch_dims_errors_name_the_op_and_the_line() -> None:
    line = r"test_gather_batch_dims.py:\d+"
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [2, 3, 4])
        for make in (lambda: fc.gather_nd(x, fc.constant([[[0]], [[1]], [[1]]]), batch_dims=1),  # batch 2 against 3
                     lambda: fc.gather_nd(x, fc.constant([[0], [1]]), batch_dims=2),  # not below the indices' rank
                     lambda: fc.gather_nd(x, fc.constant([[0.5], [1.0]]), batch_dims=1),
                     lambda: fc.gather_nd(x, fc.constant([[0], [1]]), batch_dims=True)):
            with pytest.raises(FlowcTypeError, match=rf"gather_nd.*{line}"):
                make()


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_gather_nd_with_batch_dims_checks_ranges_and_batch_sizes_when_it_runs(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        i = fc.placeholder(fc.int32, [None, 2, 1])
        picked = fc.gather_nd(x, i, batch_dims=1)
    ones = np.ones((2, 3), np.float32)
    with fc.Session(graph=g, target=target) as sess:
        with pytest.raises(FlowcError, match=r"gather_nd.*test_gather_batch_dims.py:\d+"):
            sess.run(picked, {x: ones, i: [[[0], [3]], [[0], [0]]]})
        with pytest.raises(FlowcError, match=r"gather_nd.*test_gather_batch_dims.py:\d+.*batch dims"):
            sess.run(picked, {x: ones, i: np.zeros((1, 2, 1), np.int32)})
        np.testing.assert_array_equal(sess.run(picked, {x: ones, i: [[[2], [0]], [[1], [1]]]}), np.ones((2, 2)))
