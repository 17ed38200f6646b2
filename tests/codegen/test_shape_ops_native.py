"""The cpu target's shape_of, reshape_dims, broadcast_dims, iota, gather_nd and where_indices (ir/ops/dims.py)
against the reference, op by op: every dtype, odd shapes, size-0 and size-1 dims, and unknown dims
fed several sizes; a bad gather_nd index is IndexOutOfRange on both."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_native import assert_matches, native_run

from flowc.ir import Builder, Function, Module, TensorType, evaluate
from flowc.ir.errors import FlowcError, FlowcTypeError, IndexOutOfRange
from flowc.ir.types import as_dtype

DTYPES = ("float32", "float64", "int32", "int64", "bool")


def values(rng: np.random.Generator, shape: tuple, dtype: str) -> np.ndarray:
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.startswith("int"):
        return np.asarray(rng.integers(-50, 50, shape).astype(dtype))
    return np.asarray(rng.standard_normal(shape).astype(dtype))


def one_op(name: str, args: list[np.ndarray], declared: list[tuple], **attrs: Any) -> Module:
    types = [TensorType(as_dtype(a.dtype), d) for a, d in zip(args, declared)]
    function = Function("f", types, [])
    b = Builder.at_end(function.entry)
    result = b.create(name, list(function.args), attrs).results[0]
    b.create("return", [result])
    function.result_types = [result.type]
    return Module([function])


def both(name: str, args: list[np.ndarray], declared: list[tuple], **attrs: Any) -> np.ndarray:
    module = one_op(name, args, declared, **attrs)
    (want,) = evaluate(module["f"], args)
    (got,) = native_run(one_op(name, args, declared, **attrs), args)
    assert_matches(got, want, f"{name} {attrs} on {[a.shape for a in args]}")
    return want


def unknown(shape: tuple) -> tuple:
    return (None,) * len(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 0, 5), (7, 1, 33)])
def test_shape_of(dtype: str, shape: tuple, rng) -> None:
    x = values(rng, shape, dtype)
    for out in ("int32", "int64"):
        got = both("shape_of", [x], [unknown(shape)], dtype=as_dtype(out))
        np.testing.assert_array_equal(got, np.array(shape, out))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [0, 1, 5, 33])
def test_reshape_dims_and_broadcast_dims(dtype: str, rows: int, rng) -> None:
    x = values(rng, (rows, 6), dtype)
    other = values(rng, (2, rows), "float32")
    got = both("reshape_dims", [x, other], [(None, 6), (2, None)], shape=(0, 3, -1 if rows else 2), source=(1, 0, 0),
               source_axis=(1, 0, 0))
    np.testing.assert_array_equal(got, x.reshape(rows, 3, 2))
    scalar, row = values(rng, (), dtype), values(rng, (1, 3), dtype)
    np.testing.assert_array_equal(both("broadcast_dims", [scalar, x], [(), (None, 6)], shape=(0, 2, 0),
                                       source=(1, 0, 1), source_axis=(0, 0, 1)), np.full((rows, 2, 6), scalar))
    np.testing.assert_array_equal(both("broadcast_dims", [row, other, x], [(1, 3), (2, None), (None, None)],
                                       shape=(0, 0, 3), source=(2, 1, 0), source_axis=(1, 1, 0)),
                                  np.broadcast_to(row, (6, rows, 3)))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("size", [0, 1, 9])
def test_iota(dtype: str, size: int, rng) -> None:
    x = values(rng, (2, size), "bool")
    got = both("iota", [x], [(2, None)], shape=(0,), source=(1,), source_axis=(1,), dtype=as_dtype(dtype))
    np.testing.assert_array_equal(got, np.arange(size).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params_shape, indices_shape", [((5, 3, 4), (6, 2)), ((5, 3, 4), (2, 3, 3)),
                                                         ((5, 3), (0, 1)), ((1, 1), (4, 2)), ((3, 0, 2), (2, 1)),
                                                         ((4, 7), (3, 0))])
def test_gather_nd(dtype: str, params_shape: tuple, indices_shape: tuple, rng) -> None:
    params = values(rng, params_shape, dtype)
    depth = indices_shape[-1]
    high = np.array(params_shape[:depth]).reshape((1,) * (len(indices_shape) - 1) + (depth,))
    for index_dtype in ("int32", "int64"):
        indices = (rng.integers(0, 1 << 20, indices_shape) % np.maximum(high, 1)).astype(index_dtype)
        for declared in ([params_shape, indices_shape], [unknown(params_shape), (None,) * (len(indices_shape) - 1) + (depth,)]):
            got = both("gather_nd", [params, indices], declared)
            want = params[tuple(indices[..., k] for k in range(depth))] if depth else \
                np.broadcast_to(params, indices_shape[:-1] + params_shape)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", [[[0, 3]], [[-1, 0]], [[5, 0]]])
def test_gather_nd_index_out_of_range(bad: list) -> None:
    params = np.zeros((5, 3), np.float32)
    indices = np.array([[1, 1], *bad], np.int64)
    for run in (lambda m: evaluate(m["f"], [params, indices]), lambda m: native_run(m, [params, indices])):
        with pytest.raises(IndexOutOfRange, match=rf"gather_nd.*index {bad[0][0] if bad[0][1] == 0 else bad[0][1]}"):
            run(one_op("gather_nd", [params, indices], [(None, 3), (None, 2)]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (4,), (3, 5), (2, 0, 3), (), (2, 3, 4)])
def test_where_indices(dtype: str, shape: tuple, rng) -> None:
    """Its rows operand is the data_dim of the count (Note [data-dependent sizes]): given here as an
    argument, as the segment after a cut takes it. NaN is nonzero, as numpy says."""
    cond = values(rng, shape, dtype)
    if dtype.startswith("float") and cond.size:
        cond.flat[0], cond.flat[-1] = np.nan, 0.0
    rows = np.empty((np.count_nonzero(cond), 0), np.int64)
    got = both("where_indices", [cond, rows], [unknown(shape), (None, 0)])
    np.testing.assert_array_equal(got, np.argwhere(cond))
    assert got.shape[1] == len(shape)
    assert got.dtype == np.int64


@pytest.mark.parametrize("wrong", [-1, 1])
def test_where_indices_whose_rows_are_another_count_is_an_error_on_both(wrong: int) -> None:
    cond = np.array([True, False, True, True])
    rows = np.empty((3 + wrong, 0), np.int64)
    for run in (lambda m: evaluate(m["f"], [cond, rows]), lambda m: native_run(m, [cond, rows])):
        with pytest.raises(FlowcError, match="where_indices"):
            run(one_op("where_indices", [cond, rows], [(None,), (None, 0)]))


def test_type_rules_refuse_bad_attributes_naming_the_op() -> None:
    x, i = np.zeros((4, 6), np.float32), np.zeros((2, 3), np.int32)
    cases = [
        ("reshape_dims", [x, x], dict(shape=(0, -1, -1), source=(1, 0, 0), source_axis=(0, 0, 0)), "one -1"),
        ("reshape_dims", [x, x], dict(shape=(0, 5), source=(1, 0), source_axis=(0, 0)), "24 elements, not 20"),
        ("reshape_dims", [x, x], dict(shape=(0, 5), source=(2, 0), source_axis=(0, 0)), "does not exist"),
        ("reshape_dims", [x, x], dict(shape=(0,), source=(1, 0), source_axis=(0, 0)), "one entry per result dim"),
        ("broadcast_dims", [x, x], dict(shape=(0, 5), source=(1, 0), source_axis=(0, 0)), "neither 1 nor 5"),
        ("iota", [x], dict(shape=(0, 0), source=(1, 1), source_axis=(0, 1), dtype=as_dtype("int32")), "one length"),
        ("iota", [x], dict(shape=(0,), source=(1,), source_axis=(0,), dtype=as_dtype("bool")), "numeric"),
        ("shape_of", [x], dict(dtype=as_dtype("float32")), "int32 or int64"),
        ("gather_nd", [x, i], {}, "3 entries"),
        ("gather_nd", [x, x], {}, "indices must be integers"),
    ]
    for name, args, attrs, words in cases:
        with pytest.raises(FlowcTypeError, match=rf"{name}.*{words}"):
            one_op(name, args, [a.shape for a in args], **attrs)


@pytest.mark.parametrize("declared", [[(5, 0), (2, 1)], [(None, None), (None, 1)]])
def test_gather_nd_checks_indices_of_empty_slices(declared: list) -> None:
    """Note [indices of empty slices]: the result is empty, the bad index is still an error."""
    params, indices = np.zeros((5, 0), np.float32), np.array([[1], [5]], np.int32)
    for run in (lambda m: evaluate(m["f"], [params, indices]), lambda m: native_run(m, [params, indices])):
        with pytest.raises(IndexOutOfRange, match="gather_nd.*index 5"):
            run(one_op("gather_nd", [params, indices], declared))
    good = np.array([[1], [4]], np.int32)
    assert both("gather_nd", [params, good], declared).shape == (2, 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 0, 5), (7, 1, 33)])
@pytest.mark.parametrize("value", [0.0, -2.5, 0.5])
def test_pad(dtype: str, shape: tuple, value: float, rng) -> None:
    x = values(rng, shape, dtype)
    before, after = tuple(range(len(shape))), tuple(2 - a % 3 for a in range(len(shape)))
    for declared in (shape, unknown(shape)):
        got = both("pad", [x], [declared], before=before, after=after, value=value)
        want = np.pad(x, list(zip(before, after)), constant_values=np.array(value).astype(x.dtype)) if shape else x
        np.testing.assert_array_equal(got, want)
