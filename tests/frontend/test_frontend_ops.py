"""The public ops of flowc, built in a Graph and run on the reference target.

Each test builds a small graph with placeholders, runs it with feeds and
compares with numpy written here: exact for ints and bools, rtol 1e-6 for
float32 (1e-12 for float64) unless a comment says why a looser one is right.
"""

from __future__ import annotations

import inspect
import operator
import os

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FeedError, FetchError, FlowcError, FlowcTypeError, GraphError, UninitializedVariableError

FLOAT_TOL = {np.float32: dict(rtol=1e-6, atol=0.0), np.float64: dict(rtol=1e-12, atol=0.0)}
INT_DTYPES = [fc.int32, fc.int64]
FLOAT_DTYPES = [fc.float32, fc.float64]


@pytest.fixture
def g():
    graph = fc.Graph()
    with graph.as_default():
        yield graph


def run(graph, fetches, feeds=None):
    with fc.Session(graph=graph) as sess:
        return sess.run(fetches, feeds)


def check(actual, expected, **tolerance):
    """Same dtype, same shape, same values (exact unless float)."""
    expected = np.asarray(expected)
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(actual, expected, **(tolerance or FLOAT_TOL[expected.dtype.type]))
    else:
        np.testing.assert_array_equal(actual, expected)


def next_line() -> str:
    """'test_frontend_ops.py:N' for the line after the caller's: where the op under test is made."""
    frame = inspect.currentframe().f_back
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno + 1}"


def next_line_of(where: str, offset: int) -> str:
    """`where` moved down `offset` lines."""
    name, line = where.rsplit(":", 1)
    return f"{name}:{int(line) + offset}"


def assert_message(info, *fragments: str) -> None:
    """Each fragment is in the error's message; shapes may be written "[4, 3]" or "f32[4,3]"."""
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message or fragment.replace(", ", ",") in message, f"{fragment!r} not in {message!r}"


def sample(rng, shape, dtype, low=-4.0, high=4.0):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "i":
        return rng.integers(int(low), int(high) + 1, shape).astype(dtype)
    return rng.uniform(low, high, shape).astype(dtype)


# -- elementwise ------------------------------------------------------------------

UNARY = [
    # name, fc op, numpy meaning (computed in float64), dtypes, input range
    ("negative", fc.negative, np.negative, FLOAT_DTYPES + INT_DTYPES, (-4, 4)),
    ("abs", fc.abs, np.abs, FLOAT_DTYPES + INT_DTYPES, (-4, 4)),
    ("square", fc.square, np.square, FLOAT_DTYPES + INT_DTYPES, (-4, 4)),
    ("relu", fc.relu, lambda x: np.maximum(x, 0), FLOAT_DTYPES + INT_DTYPES, (-4, 4)),
    ("exp", fc.exp, np.exp, FLOAT_DTYPES, (-10, 10)),
    ("log", fc.log, np.log, FLOAT_DTYPES, (0.01, 100)),
    ("tanh", fc.tanh, np.tanh, FLOAT_DTYPES, (-5, 5)),
    ("sigmoid", fc.sigmoid, lambda x: 1 / (1 + np.exp(-x)), FLOAT_DTYPES, (-30, 30)),
    ("sqrt", fc.sqrt, np.sqrt, FLOAT_DTYPES, (0, 100)),
    ("rsqrt", fc.rsqrt, lambda x: 1 / np.sqrt(x), FLOAT_DTYPES, (0.01, 100)),
    ("identity", fc.identity, lambda x: x, FLOAT_DTYPES + INT_DTYPES, (-4, 4)),
    ("nn.relu", fc.nn.relu, lambda x: np.maximum(x, 0), FLOAT_DTYPES, (-4, 4)),
    ("nn.sigmoid", fc.nn.sigmoid, lambda x: 1 / (1 + np.exp(-x)), FLOAT_DTYPES, (-4, 4)),
    ("nn.tanh", fc.nn.tanh, np.tanh, FLOAT_DTYPES, (-4, 4)),
]


@pytest.mark.parametrize(
    "fn, meaning, dtype, bounds",
    [pytest.param(fn, meaning, dtype, bounds, id=f"{name}-{dtype.name}")
     for name, fn, meaning, dtypes, bounds in UNARY for dtype in dtypes],
)
def test_unary(g, rng, fn, meaning, dtype, bounds):
    x = fc.placeholder(dtype, shape=[None, 4], name="x")
    y = fn(x)
    assert (y.shape, y.dtype) == ((None, 4), dtype)
    data = sample(rng, (3, 4), dtype.np, *bounds)
    expected = meaning(data.astype(np.float64) if dtype.is_float else data).astype(dtype.np)
    check(run(g, y, {x: data}), expected)


BINARY = [
    ("add", fc.add, np.add, FLOAT_DTYPES + INT_DTYPES),
    ("subtract", fc.subtract, np.subtract, FLOAT_DTYPES + INT_DTYPES),
    ("multiply", fc.multiply, np.multiply, FLOAT_DTYPES + INT_DTYPES),
    ("divide", fc.divide, np.divide, FLOAT_DTYPES),
    ("maximum", fc.maximum, np.maximum, FLOAT_DTYPES + INT_DTYPES),
    ("minimum", fc.minimum, np.minimum, FLOAT_DTYPES + INT_DTYPES),
    ("pow", fc.pow, np.power, FLOAT_DTYPES),
]


@pytest.mark.parametrize(
    "fn, meaning, dtype",
    [pytest.param(fn, meaning, dtype, id=f"{name}-{dtype.name}")
     for name, fn, meaning, dtypes in BINARY for dtype in dtypes],
)
def test_binary_broadcasts(g, rng, fn, meaning, dtype):
    x = fc.placeholder(dtype, shape=[None, 1, 3], name="x")
    y = fc.placeholder(dtype, shape=[4, 1], name="y")
    z = fn(x, y)
    assert (z.shape, z.dtype) == ((None, 4, 3), dtype)
    a = sample(rng, (2, 1, 3), dtype.np, 0.5, 3)  # positive: pow of a fractional exponent
    b = sample(rng, (4, 1), dtype.np, 1, 3)  # nonzero: divide
    expected = meaning(a.astype(np.float64), b.astype(np.float64)).astype(dtype.np) if dtype.is_float else meaning(a, b)
    check(run(g, z, {x: a, y: b}), expected)


COMPARISONS = [
    ("less", fc.less, np.less, operator.lt),
    ("less_equal", fc.less_equal, np.less_equal, operator.le),
    ("greater", fc.greater, np.greater, operator.gt),
    ("greater_equal", fc.greater_equal, np.greater_equal, operator.ge),
    ("equal", fc.equal, np.equal, None),
    ("not_equal", fc.not_equal, np.not_equal, None),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("name, fn, meaning, python_operator", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparisons(g, name, fn, meaning, python_operator, dtype):
    x = fc.placeholder(dtype, shape=[None], name="x")
    y = fc.placeholder(dtype, shape=[], name="y")
    outs = [fn(x, y)]
    if python_operator is not None:  # == and != keep Python's identity meaning, as in TensorFlow 1
        outs.append(python_operator(x, y))
    a = np.array([-2, 0, 1, 3, 1], dtype.np)
    for out in outs:
        assert (out.shape, out.dtype) == ((None,), fc.bool)
    for value in run(g, outs, {x: a, y: np.array(1, dtype.np)}):
        check(value, meaning(a, 1))


def test_equal_on_bools(g):
    x = fc.placeholder(fc.bool, shape=[4], name="x")
    y = fc.placeholder(fc.bool, shape=[4], name="y")
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    eq, ne = run(g, [fc.equal(x, y), fc.not_equal(x, y)], {x: a, y: b})
    check(eq, a == b)
    check(ne, a != b)


def test_logical_ops_and_operators(g):
    x = fc.placeholder(fc.bool, shape=[None], name="x")
    y = fc.placeholder(fc.bool, shape=[None], name="y")
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    outs = run(g, [fc.logical_and(x, y), fc.logical_or(x, y), fc.logical_not(x), x & y, x | y, ~x, x & True, False | y],
               {x: a, y: b})
    for out, expected in zip(outs, [a & b, a | b, ~a, a & b, a | b, ~a, a, b]):
        check(out, expected)


def test_arithmetic_operators(g, rng):
    x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
    w = fc.placeholder(fc.float32, shape=[3, 2], name="w")
    a = sample(rng, (4, 3), np.float32, 0.5, 2)
    m = sample(rng, (3, 2), np.float32)
    exprs = [x + x, x - 1, 1 - x, x * x, 2 * x, x / 2, 2 / x, x @ w, x**2, 2**x, -x, +x, abs(x)]
    expected = [a + a, a - 1, 1 - a, a * a, 2 * a, a / 2, 2 / a, a @ m, a**2, 2**a, -a, a, np.abs(a)]
    for out, want, expr in zip(run(g, exprs, {x: a, w: m}), expected, exprs):
        assert expr.dtype == fc.float32
        # a @ m accumulates in another order than numpy's BLAS: a few ulps of the sum, hence atol
        check(out, want.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_numpy_arrays_and_scalars_meet_tensors(g):
    x = fc.placeholder(fc.float32, shape=[3], name="x")
    a = np.array([1.0, 2.0, 3.0], np.float32)
    exprs = [np.ones(3, np.float32) + x, np.float32(2.0) * x, x * np.float64(0.5), x - np.array([1, 1, 1], np.float32)]
    for expr in exprs:
        assert expr.dtype == fc.float32
    outs = run(g, exprs, {x: a})
    for out, want in zip(outs, [1 + a, 2 * a, 0.5 * a, a - 1]):
        check(out, want.astype(np.float32))


def test_python_scalars_take_the_tensors_dtype(g):
    x = fc.placeholder(fc.float32, shape=[2], name="x")
    d = fc.placeholder(fc.float64, shape=[2], name="d")
    i = fc.placeholder(fc.int32, shape=[2], name="i")
    k = fc.placeholder(fc.int64, shape=[2], name="k")
    exprs = {"x*2": x * 2, "x+0.1": x + 0.1, "d*2": d * 2, "d+0.1": d + 0.1, "i+1": i + 1, "1+i": 1 + i,
             "i*3": i * 3, "k-1": k - 1, "i>1": i > 1}
    dtypes = {"x*2": fc.float32, "x+0.1": fc.float32, "d*2": fc.float64, "d+0.1": fc.float64, "i+1": fc.int32,
              "1+i": fc.int32, "i*3": fc.int32, "k-1": fc.int64, "i>1": fc.bool}
    assert {key: e.dtype for key, e in exprs.items()} == dtypes
    feeds = {x: np.array([1, 2], np.float32), d: np.array([1, 2], np.float64), i: np.array([1, 2], np.int32),
             k: np.array([2**40, 0], np.int64)}
    out = run(g, exprs, feeds)
    check(out["x*2"], np.array([2, 4], np.float32))
    check(out["x+0.1"], np.array([1, 2], np.float32) + np.float32(0.1))
    check(out["d*2"], np.array([2, 4], np.float64))
    check(out["d+0.1"], np.array([1.1, 2.1]))  # 0.1 stays a float64 constant, not a rounded float32
    check(out["i+1"], np.array([2, 3], np.int32))
    check(out["1+i"], np.array([2, 3], np.int32))
    check(out["i*3"], np.array([3, 6], np.int32))
    check(out["k-1"], np.array([2**40 - 1, -1], np.int64))
    check(out["i>1"], np.array([False, True]))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES + [fc.bool], ids=lambda d: d.name)
def test_where_broadcasts(g, rng, dtype):
    c = fc.placeholder(fc.bool, shape=[None, 1], name="c")
    x = fc.placeholder(dtype, shape=[None, 3], name="x")
    other = fc.placeholder(dtype, shape=[3], name="other")
    y = fc.where(c, x, other)
    z = fc.where(c, x, 0 if dtype != fc.bool else False)  # a Python scalar takes x's dtype
    assert [(t.shape, t.dtype) for t in (y, z)] == [((None, 3), dtype)] * 2
    cond = np.array([[True], [False]])
    a, b = sample(rng, (2, 3), dtype.np), sample(rng, (3,), dtype.np)
    got_y, got_z = run(g, [y, z], {c: cond, x: a, other: b})
    check(got_y, np.where(cond, a, b))
    check(got_z, np.where(cond, a, np.zeros((), dtype.np)))


@pytest.mark.parametrize("src, dst", [
    (fc.float32, fc.int32), (fc.float64, fc.int64), (fc.float32, fc.bool), (fc.int32, fc.float32),
    (fc.int64, fc.int32), (fc.bool, fc.float32), (fc.bool, fc.int64), (fc.float64, fc.float32), (fc.int32, fc.bool),
], ids=lambda d: d.name)
def test_cast(g, src, dst):
    x = fc.placeholder(src, shape=[None], name="x")
    y = fc.cast(x, dst)
    assert (y.shape, y.dtype) == ((None,), dst)
    values = {"float": [-2.7, -0.5, 0.0, 0.5, 2.7, 1 / 3], "int": [-3, -1, 0, 1, 2, 7],
              "bool": [True, False, True, True, False, False]}[src.kind]
    data = np.array(values, src.np)
    check(run(g, y, {x: data}), data.astype(dst.np))  # float -> int truncates toward zero, as numpy


# -- reductions -------------------------------------------------------------------

REDUCTIONS = [
    ("reduce_sum", fc.reduce_sum, np.sum, FLOAT_DTYPES + INT_DTYPES),
    ("reduce_mean", fc.reduce_mean, np.mean, FLOAT_DTYPES),
    ("reduce_max", fc.reduce_max, np.max, FLOAT_DTYPES + INT_DTYPES),
    ("reduce_min", fc.reduce_min, np.min, FLOAT_DTYPES + INT_DTYPES),
]
AXES = [None, 0, 1, -1, -3, (0, 2), (-1, 0), [1, 2]]


@pytest.mark.parametrize("keepdims", [False, True], ids=["flat", "keepdims"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize(
    "fn, meaning, dtype",
    [pytest.param(fn, meaning, dtype, id=f"{name}-{dtype.name}")
     for name, fn, meaning, dtypes in REDUCTIONS for dtype in dtypes],
)
def test_reductions(g, rng, fn, meaning, dtype, axis, keepdims):
    x = fc.placeholder(dtype, shape=[None, 3, 4], name="x")
    y = fn(x, axis=axis, keepdims=keepdims)
    data = sample(rng, (2, 3, 4), dtype.np)
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    expected = meaning(data.astype(np.float64) if dtype.is_float else data, axis=np_axis, keepdims=keepdims)
    expected = np.asarray(expected).astype(dtype.np)  # flowc keeps the operand's dtype (numpy widens int32 sums)
    # float32 accumulates in float32: a few ulps of the partial sums (|x| <= 4, <= 24 terms), so
    # an absolute tolerance where a sum cancels to near 0; max and min are exact.
    tolerance = dict(rtol=1e-6, atol=1e-5) if dtype == fc.float32 and fn in (fc.reduce_sum, fc.reduce_mean) else {}
    reduced = {0, 1, 2} if axis is None else {a % 3 for a in (axis if isinstance(axis, (tuple, list)) else [axis])}
    static = tuple(1 if i in reduced else d for i, d in enumerate(x.shape) if keepdims or i not in reduced)
    assert (y.shape, y.dtype) == (static, dtype)
    check(run(g, y, {x: data}), expected, **tolerance)


def test_reduction_static_shapes(g):
    x = fc.placeholder(fc.float32, shape=[None, 3, 4], name="x")
    assert fc.reduce_sum(x).shape == ()
    assert fc.reduce_sum(x, keepdims=True).shape == (1, 1, 1)
    assert fc.reduce_sum(x, axis=0).shape == (3, 4)
    assert fc.reduce_mean(x, axis=-1).shape == (None, 3)
    assert fc.reduce_max(x, axis=(0, 2), keepdims=True).shape == (1, 3, 1)
    assert fc.reduce_min(x, axis=[1, 2], keepdims=True).shape == (None, 1, 1)


def test_int_sums_stay_int32_and_wrap(g):
    x = fc.placeholder(fc.int32, shape=[None], name="x")
    y = fc.reduce_sum(x)
    assert y.dtype == fc.int32
    check(run(g, y, {x: np.array([2**30, 2**30], np.int32)}), np.int32(-(2**31)))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES, ids=lambda d: d.name)
def test_argmax_argmin(g, dtype):
    x = fc.placeholder(dtype, shape=[None, 4], name="x")
    data = np.array([[1, 3, 3, 0], [5, -1, 5, -1], [0, 0, 0, 0]], dtype.np)  # ties: the first index
    outs = [fc.argmax(x, axis=1), fc.argmax(x, axis=0), fc.argmin(x, axis=-1),
            fc.argmin(x, 0, output_type=fc.int32), fc.argmax(x, -2, output_type=fc.int32)]
    assert [(o.shape, o.dtype) for o in outs] == [((None,), fc.int64), ((4,), fc.int64), ((None,), fc.int64),
                                                  ((4,), fc.int32), ((4,), fc.int32)]
    values = run(g, outs, {x: data})
    check(values[0], np.argmax(data, 1))
    check(values[1], np.argmax(data, 0))
    check(values[2], np.argmin(data, -1))
    check(values[3], np.argmin(data, 0).astype(np.int32))
    check(values[4], np.argmax(data, 0).astype(np.int32))


# -- matmul -------------------------------------------------------------------------

# float32 products sum in another order than numpy's BLAS: a few ulps of the largest
# partial sum, so an absolute tolerance on the scale of the inputs (|x| <= 4, k <= 5).
MATMUL_TOL = {np.float32: dict(rtol=1e-6, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES, ids=lambda d: d.name)
def test_matmul(g, rng, dtype):
    a = fc.placeholder(dtype, shape=[None, 5], name="a")
    b = fc.placeholder(dtype, shape=[5, 2], name="b")
    bt = fc.placeholder(dtype, shape=[2, 5], name="bt")
    batch = fc.placeholder(dtype, shape=[3, None, 5], name="batch")
    at = fc.transpose(a)
    outs = [fc.matmul(a, b), a @ b, fc.matmul(a, bt, transpose_b=True), fc.matmul(at, b, transpose_a=True),
            fc.matmul(at, bt, transpose_a=True, transpose_b=True), fc.matmul(bt, a, transpose_b=True),
            fc.matmul(batch, b), batch @ fc.transpose(bt)]
    assert [o.shape for o in outs] == [(None, 2)] * 5 + [(2, None), (3, None, 2), (3, None, 2)]
    assert all(o.dtype == dtype for o in outs)
    va, vb, vbatch = sample(rng, (4, 5), dtype.np), sample(rng, (5, 2), dtype.np), sample(rng, (3, 4, 5), dtype.np)
    vbt = np.ascontiguousarray(vb.T)
    values = run(g, outs, {a: va, b: vb, bt: vbt, batch: vbatch})
    wide = (lambda v: v.astype(np.float64)) if dtype.is_float else (lambda v: v)
    expected = [wide(va) @ wide(vb)] * 5 + [(wide(va) @ wide(vb)).T, wide(vbatch) @ wide(vb), wide(vbatch) @ wide(vb)]
    for value, want in zip(values, expected):
        check(value, want.astype(dtype.np), **MATMUL_TOL.get(dtype.np.type, {}))


def test_matmul_batch_dims_broadcast(g, rng):
    a = fc.placeholder(fc.float64, shape=[2, 1, 3, 4], name="a")
    b = fc.placeholder(fc.float64, shape=[5, 4, 2], name="b")
    c = fc.matmul(a, b)
    assert c.shape == (2, 5, 3, 2)
    va, vb = sample(rng, (2, 1, 3, 4), np.float64), sample(rng, (5, 4, 2), np.float64)
    check(run(g, c, {a: va, b: vb}), va @ vb)


# -- shapes and indexing -------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES + INT_DTYPES + [fc.bool], ids=lambda d: d.name)
def test_shape_ops_keep_every_dtype(g, rng, dtype):
    x = fc.placeholder(dtype, shape=[None, 2, 3], name="x")
    data = sample(rng, (4, 2, 3), dtype.np)
    exprs = {
        "reshape": fc.reshape(x, [-1, 3]),
        "reshape_none": fc.reshape(x, [None, 6]),
        "reshape_static": fc.reshape(x, [4, 6]),
        "transpose": fc.transpose(x),
        "transpose_perm": fc.transpose(x, [1, 0, 2]),
        "concat0": fc.concat([x, x[:1]], 0),
        "concat_neg": fc.concat([x, x], -1),
        "stack": fc.stack([x, x], axis=1),
        "expand0": fc.expand_dims(x, 0),
        "expand_neg": fc.expand_dims(x, -1),
        "squeeze": fc.squeeze(fc.expand_dims(x, 2), 2),
        "squeeze_none": fc.squeeze(fc.reshape(x, [-1, 1, 6, 1])),
        "broadcast": fc.broadcast_to(fc.reshape(x[:1, :1], [1, 1, 3]), [5, 2, 3]),  # static 1s: compiled code broadcasts only those
        "gather": fc.gather(x, fc.constant([3, 0, 0])),
        "gather_axis": fc.gather(x, fc.constant([[2, 1], [0, 0]], dtype=fc.int64), axis=-1),
        "identity": fc.identity(x),
    }
    shapes = {"reshape": (None, 3), "reshape_none": (None, 6), "reshape_static": (4, 6), "transpose": (3, 2, None),
              "transpose_perm": (2, None, 3), "concat0": (None, 2, 3), "concat_neg": (None, 2, 6),
              "stack": (None, 2, 2, 3), "expand0": (1, None, 2, 3), "expand_neg": (None, 2, 3, 1),
              "squeeze": (None, 2, 3), "squeeze_none": (None, 6), "broadcast": (5, 2, 3), "gather": (3, 2, 3),
              "gather_axis": (None, 2, 2, 2), "identity": (None, 2, 3)}
    assert {k: e.shape for k, e in exprs.items()} == shapes
    assert all(e.dtype == dtype for e in exprs.values())
    expected = {
        "reshape": data.reshape(-1, 3), "reshape_none": data.reshape(-1, 6), "reshape_static": data.reshape(4, 6),
        "transpose": data.T, "transpose_perm": data.transpose(1, 0, 2),
        "concat0": np.concatenate([data, data[:1]], 0), "concat_neg": np.concatenate([data, data], -1),
        "stack": np.stack([data, data], 1), "expand0": data[None], "expand_neg": data[..., None],
        "squeeze": data, "squeeze_none": data.reshape(-1, 6), "broadcast": np.broadcast_to(data[:1, :1], (5, 2, 3)),
        "gather": data[[3, 0, 0]], "gather_axis": np.take(data, np.array([[2, 1], [0, 0]]), axis=-1),
        "identity": data,
    }
    out = run(g, exprs, {x: data})
    assert out.keys() == expected.keys()
    for key in expected:
        check(out[key], expected[key])


def test_filled_tensors_and_constants(g):
    exprs = [fc.zeros([2, 3]), fc.ones([2], fc.int32), fc.zeros([2], fc.bool), fc.fill([2, 2], 7, fc.int64),
             fc.fill([3], 0.5), fc.constant(2.0, shape=[2, 2]), fc.constant([[1, 2]], dtype=fc.float64),
             fc.zeros_like(fc.constant([1, 2])), fc.ones_like(fc.constant([1.0, 2.0]), dtype=fc.int64),
             fc.constant(True), fc.constant(np.array([1, 2], np.int64)), fc.constant([1.5, 2])]
    expected = [np.zeros((2, 3), np.float32), np.ones(2, np.int32), np.zeros(2, bool), np.full((2, 2), 7, np.int64),
                np.full(3, 0.5, np.float32), np.full((2, 2), 2, np.float32), np.array([[1, 2]], np.float64),
                np.zeros(2, np.int32), np.ones(2, np.int64), np.array(True), np.array([1, 2], np.int64),
                np.array([1.5, 2], np.float32)]
    dtypes = [fc.float32, fc.int32, fc.bool, fc.int64, fc.float32, fc.float32, fc.float64, fc.int32, fc.int64,
              fc.bool, fc.int64, fc.float32]
    assert [(e.shape, e.dtype) for e in exprs] == [(w.shape, d) for w, d in zip(expected, dtypes)]
    for value, want in zip(run(g, exprs), expected):
        check(value, want)


@pytest.mark.parametrize("dtype", [fc.float32, fc.int32, fc.float64], ids=lambda d: d.name)
def test_one_hot(g, dtype):
    i = fc.placeholder(fc.int32, shape=[None], name="i")
    k = fc.placeholder(fc.int64, shape=[2, 2], name="k")
    outs = [fc.one_hot(i, 4, dtype=dtype), fc.one_hot(i, 3, on_value=5, off_value=-1, dtype=dtype),
            fc.one_hot(k, 3, axis=0, dtype=dtype), fc.one_hot(k, 2, axis=1, dtype=dtype)]
    assert [(o.shape, o.dtype) for o in outs] == [((None, 4), dtype), ((None, 3), dtype), ((3, 2, 2), dtype),
                                                  ((2, 2, 2), dtype)]
    indices = np.array([0, 3, -1, 7, 2], np.int32)  # outside [0, depth): a row of off_value, as in TensorFlow
    kk = np.array([[0, 2], [1, 1]], np.int64)
    values = run(g, outs, {i: indices, k: kk})

    def hot(ix, depth, on=1, off=0):
        return np.where(ix[..., None] == np.arange(depth), on, off).astype(dtype.np)

    check(values[0], hot(indices, 4))
    check(values[1], hot(indices, 3, 5, -1))
    check(values[2], np.moveaxis(hot(kk, 3), -1, 0))
    check(values[3], np.moveaxis(hot(kk, 2), -1, 1))


def test_gather_dtypes_and_index_dtypes(g, rng):
    params = fc.placeholder(fc.bool, shape=[None, 3], name="params")
    i32 = fc.placeholder(fc.int32, shape=[None], name="i32")
    i64 = fc.placeholder(fc.int64, shape=[2, 2], name="i64")
    outs = [fc.gather(params, i32), fc.gather(params, i64, axis=1), fc.gather(fc.constant([10, 20, 30]), i32)]
    assert [(o.shape, o.dtype) for o in outs] == [((None, 3), fc.bool), ((None, 2, 2), fc.bool), ((None,), fc.int32)]
    p = rng.random((4, 3)) < 0.5
    a, b = np.array([2, 0, 1, 1], np.int32), np.array([[2, 0], [1, 1]], np.int64)
    values = run(g, outs, {params: p, i32: a, i64: b})
    check(values[0], p[a])
    check(values[1], p[:, b])
    check(values[2], np.array([10, 20, 30], np.int32)[a])


SLICES = [
    ("t[1:3, :]", lambda t: t[1:3, :], (None, 4)),
    ("t[..., None]", lambda t: t[..., None], (None, 4, 1)),
    ("t[None]", lambda t: t[None], (1, None, 4)),
    ("t[-1]", lambda t: t[-1], (4,)),
    ("t[0]", lambda t: t[0], (4,)),
    ("t[:, -1]", lambda t: t[:, -1], (None,)),
    ("t[:, 1]", lambda t: t[:, 1], (None,)),
    ("t[::-1]", lambda t: t[::-1], (None, 4)),
    ("t[:, ::-1]", lambda t: t[:, ::-1], (None, 4)),
    ("t[:, ::-2]", lambda t: t[:, ::-2], (None, 2)),
    ("t[:, 3:0:-1]", lambda t: t[:, 3:0:-1], (None, 3)),
    ("t[:, -1:-5:-2]", lambda t: t[:, -1:-5:-2], (None, 2)),
    ("t[:, 1::2]", lambda t: t[:, 1::2], (None, 2)),
    ("t[-100:100, -100:100]", lambda t: t[-100:100, -100:100], (None, 4)),
    ("t[:, 5:]", lambda t: t[:, 5:], (None, 0)),
    ("t[..., 2]", lambda t: t[..., 2], (None,)),
    ("t[1, ...]", lambda t: t[1, ...], (4,)),
    ("t[None, 0, None]", lambda t: t[None, 0, None], (1, 1, 4)),
    ("t[:, None, 1:3]", lambda t: t[:, None, 1:3], (None, 1, 2)),
    ("t[...]", lambda t: t[...], (None, 4)),
    ("t[np.int64(2)]", lambda t: t[np.int64(2)], (4,)),
]


@pytest.mark.parametrize("index, shape", [(s[1], s[2]) for s in SLICES], ids=[s[0] for s in SLICES])
def test_slicing(g, index, shape):
    t = fc.placeholder(fc.int32, shape=[None, 4], name="t")
    y = index(t)
    assert (y.shape, y.dtype) == (shape, fc.int32)
    with fc.Session(graph=g) as sess:
        for rows in (3, 5):  # one compile, two sizes of the None dim
            data = np.arange(rows * 4, dtype=np.int32).reshape(rows, 4)
            check(sess.run(y, {t: data}), index(data))
        assert len(sess._cache) == 1


def test_slicing_static_shapes_and_float64(g):
    t = fc.placeholder(fc.float64, shape=[5, 4, 3], name="t")
    assert t[1:3].shape == (2, 4, 3)
    assert t[::-2, 1].shape == (3, 3)
    assert t[..., ::2].shape == (5, 4, 2)
    assert t[-1, None, :, -1].shape == (1, 4)
    data = np.arange(60, dtype=np.float64).reshape(5, 4, 3) / 7
    values = run(g, [t[1:3], t[::-2, 1], t[..., ::2], t[-1, None, :, -1]], {t: data})
    for value, want in zip(values, [data[1:3], data[::-2, 1], data[..., ::2], data[-1, None, :, -1]]):
        check(value, want)


# -- zero-size and None dims ---------------------------------------------------------


def test_zero_size_batch(g):
    x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
    w = fc.ones([3, 2])
    exprs = {"matmul": fc.matmul(x, w), "softmax": fc.nn.softmax(x), "sum1": fc.reduce_sum(x, 1),
             "sum0": fc.reduce_sum(x, 0), "mean0": fc.reduce_mean(x, 0), "slice": x[1:, ::-1],
             "concat": fc.concat([x, x], 0), "reshape": fc.reshape(x, [-1]), "exp": fc.exp(x) + 1,
             "argmax1": fc.argmax(x, 1)}
    with fc.Session(graph=g) as sess:
        out = sess.run(exprs, {x: np.zeros((0, 3), np.float32)})
        check(out["matmul"], np.zeros((0, 2), np.float32))
        check(out["softmax"], np.zeros((0, 3), np.float32))
        check(out["sum1"], np.zeros((0,), np.float32))
        check(out["sum0"], np.zeros(3, np.float32))  # an empty sum is 0
        check(out["mean0"], np.full(3, np.nan, np.float32))  # 0 / 0, as numpy's mean
        check(out["slice"], np.zeros((0, 3), np.float32))
        check(out["concat"], np.zeros((0, 3), np.float32))
        check(out["reshape"], np.zeros((0,), np.float32))
        check(out["exp"], np.zeros((0, 3), np.float32))
        check(out["argmax1"], np.zeros((0,), np.int64))
        # the same compiled run serves a non-empty batch
        data = np.arange(6, dtype=np.float32).reshape(2, 3)
        check(sess.run(exprs, {x: data})["sum0"], data.sum(0))
        assert len(sess._cache) == 1


def test_none_batch_compiles_once(g, rng):
    x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
    y = fc.placeholder(fc.int32, shape=[None], name="y")
    weights = rng.normal(size=(4, 3)).astype(np.float32)
    w = fc.constant(weights)
    loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x @ w))
    with fc.Session(graph=g) as sess:
        for batch in (1, 7, 3, 0, 7):
            xs = rng.normal(size=(batch, 4)).astype(np.float32)
            ys = rng.integers(0, 3, batch).astype(np.int32)
            got = sess.run(loss, {x: xs, y: ys})
            logits = xs.astype(np.float64) @ weights.astype(np.float64)
            want = np.mean(-_log_softmax(logits)[np.arange(batch), ys]) if batch else np.nan
            check(got, np.float32(want), rtol=1e-5, atol=1e-6)  # float32 matmul + log-sum-exp vs float64 numpy
        assert len(sess._cache) == 1  # the key holds no fed sizes


# -- fc.nn ---------------------------------------------------------------------------


def _log_softmax(z, axis=-1):
    z = np.asarray(z, np.float64)
    shifted = z - z.max(axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))


# Each value is rounded to float32 after a few float32 ops (max, sub, exp, sum, log):
# a few ulps, and an absolute term for log-softmax values near 0.
NN_TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
def test_softmax_family(g, rng, dtype):
    x = fc.placeholder(dtype, shape=[None, 5], name="x")
    soft = fc.placeholder(dtype, shape=[None, 5], name="soft")
    y = fc.placeholder(fc.int32, shape=[None], name="y")
    outs = [fc.nn.softmax(x), fc.nn.log_softmax(x), fc.nn.softmax(x, axis=0), fc.nn.log_softmax(x, axis=0),
            fc.nn.softmax_cross_entropy_with_logits(labels=soft, logits=x),
            fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x)]
    assert [o.shape for o in outs] == [(None, 5)] * 4 + [(None,)] * 2
    assert all(o.dtype == dtype for o in outs)
    logits = (rng.normal(size=(6, 5)) * 3).astype(dtype.np)
    labels = rng.random((6, 5)).astype(dtype.np)
    labels /= labels.sum(1, keepdims=True)
    classes = rng.integers(0, 5, 6).astype(np.int32)
    lsm = _log_softmax(logits)
    expected = [np.exp(lsm), lsm, np.exp(_log_softmax(logits, 0)), _log_softmax(logits, 0),
                -(labels * lsm).sum(-1), -lsm[np.arange(6), classes]]
    values = run(g, outs, {x: logits, soft: labels, y: classes})
    tol = NN_TOL if dtype == fc.float32 else dict(rtol=1e-12, atol=1e-12)
    for value, want in zip(values, expected):
        check(value, want.astype(dtype.np), **tol)
    np.testing.assert_allclose(values[0].sum(1), 1, rtol=1e-6)


def test_softmax_family_large_logits_are_finite(g, rng):
    x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
    soft = fc.placeholder(fc.float32, shape=[None, 4], name="soft")
    y = fc.placeholder(fc.int64, shape=[None], name="y")
    outs = [fc.nn.softmax(x), fc.nn.log_softmax(x), fc.nn.softmax_cross_entropy_with_logits(labels=soft, logits=x),
            fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x)]
    logits = np.array([[1e4, 0, -1e4, 1e4], [-1e4] * 4, [1e4, 1e4 - 1, 0, 0], [3e4, -3e4, 0, 5]], np.float32)
    labels = np.full((4, 4), 0.25, np.float32)
    classes = np.array([2, 0, 1, 3], np.int64)
    values = run(g, outs, {x: logits, soft: labels, y: classes})
    for value in values:
        assert np.isfinite(value).all(), value
    lsm = _log_softmax(logits)
    expected = [np.exp(lsm), lsm, -(labels * lsm).sum(-1), -lsm[np.arange(4), classes]]
    for value, want in zip(values, expected):
        check(value, want.astype(np.float32), **NN_TOL)
    by_hand = [2e4 + np.log(2), np.log(4), 1 + np.log1p(np.exp(-1)), 3e4 - 5]  # -log p(class), worked out
    check(values[3], np.array(by_hand, np.float32), rtol=1e-6)


# -- random --------------------------------------------------------------------------


def _random_graph(graph_seed=11):
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(graph_seed)
        n = fc.random_normal([10000], mean=2.0, stddev=3.0, seed=5)
        u = fc.random_uniform([100, 100], minval=-1.0, maxval=3.0, seed=6, dtype=fc.float64)
        n2 = fc.random_normal([10000], seed=7)
        auto = fc.random_uniform([8])  # graph seed only: still reproducible in the same program
    return g, (n, u, n2, auto)


def test_random_shapes_dtypes_and_statistics():
    g, (n, u, n2, auto) = _random_graph()
    assert [(t.shape, t.dtype) for t in (n, u, n2, auto)] == [((10000,), fc.float32), ((100, 100), fc.float64),
                                                             ((10000,), fc.float32), ((8,), fc.float32)]
    vn, vu, vn2, vauto = run(g, [n, u, n2, auto])
    assert (vn.dtype, vu.dtype, vn2.dtype, vauto.dtype) == (np.float32, np.float64, np.float32, np.float32)
    assert vu.shape == (100, 100)
    # 10k samples: the standard error of the mean is stddev / 100
    assert abs(vn.mean() - 2.0) < 0.1 and abs(vn.std() - 3.0) < 0.1
    assert abs(vn2.mean()) < 0.05 and abs(vn2.std() - 1.0) < 0.05
    assert abs(np.mean(np.abs(vn2) < 1) - 0.6827) < 0.02  # the normal's one-sigma mass
    assert vu.min() >= -1.0 and vu.max() < 3.0
    assert abs(vu.mean() - 1.0) < 0.05 and abs(vu.var() - 16 / 12) < 0.05
    assert np.histogram(vu, bins=4, range=(-1, 3))[0].min() > 2300  # each quarter holds ~2500
    assert ((vauto >= 0) & (vauto < 1)).all()
    assert not np.array_equal(vn2, (vn - 2) / 3)  # different op seeds, different streams


def test_random_reproducible_across_sessions_and_graphs():
    g1, fetches1 = _random_graph()
    g2, fetches2 = _random_graph()
    with fc.Session(graph=g1) as a, fc.Session(graph=g1) as b, fc.Session(graph=g2) as c:
        first = [a.run(list(fetches1)), b.run(list(fetches1)), c.run(list(fetches2))]
        second = a.run(list(fetches1))
    for value_a, value_b, value_c in zip(*first):
        np.testing.assert_array_equal(value_a, value_b)
        np.testing.assert_array_equal(value_a, value_c)
    for before, after in zip(first[0], second):  # every run draws new numbers
        assert not np.array_equal(before, after)
        assert np.mean(before == after) < 0.01
    g3, fetches3 = _random_graph(graph_seed=12)
    other = run(g3, list(fetches3))
    for mine, theirs in zip(first[0], other):
        assert not np.array_equal(mine, theirs)


# -- shape inference at build time ----------------------------------------------------


def test_build_time_shapes_and_dtypes(g):
    x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
    i = fc.placeholder(fc.int64, shape=[None], name="i")
    w = fc.Variable(fc.zeros([3, 5]), name="w")
    table = {
        "x": (x, (None, 3), fc.float32),
        "x@w": (x @ w, (None, 5), fc.float32),
        "x+1": (x + 1, (None, 3), fc.float32),
        "broadcast": (x[:, None, :] * fc.ones([4, 1]), (None, 4, 3), fc.float32),
        "cmp": (x > 0, (None, 3), fc.bool),
        "cast": (fc.cast(i, fc.float64), (None,), fc.float64),
        "argmax": (fc.argmax(x, 1), (None,), fc.int64),
        "one_hot": (fc.one_hot(i, 7), (None, 7), fc.float32),
        "gather": (fc.gather(w, i), (None, 5), fc.float32),
        "sce": (fc.nn.sparse_softmax_cross_entropy_with_logits(labels=i, logits=x @ w), (None,), fc.float32),
        "transpose": (fc.transpose(x), (3, None), fc.float32),
        "reshape": (fc.reshape(x, [-1, 1, 3]), (None, 1, 3), fc.float32),
        "reshape_static": (fc.reshape(w, [-1]), (15,), fc.float32),
        "concat": (fc.concat([x, x], 1), (None, 6), fc.float32),
        "concat_static": (fc.concat([w, w], 0), (6, 5), fc.float32),
        "mean": (fc.reduce_mean(x), (), fc.float32),
        "where": (fc.where(x > 0, x, fc.zeros([3])), (None, 3), fc.float32),
        "slice": (w[1:, ::2], (2, 3), fc.float32),
    }
    for key, (tensor, shape, dtype) in table.items():
        assert (tensor.shape, tensor.get_shape(), tensor.dtype) == (shape, shape, dtype), key
    assert w.shape == (3, 5) and w.dtype == fc.float32 and w.name == "w:0"
    assert x.name == "x:0" and repr(x) == "<fc.Tensor 'x:0' shape=[None, 3] dtype=float32>"
    assert len(w @ fc.ones([5, 2])) == 3


# -- errors ---------------------------------------------------------------------------


def test_error_add_shapes(g):
    a = fc.placeholder(fc.float32, shape=[3], name="a")
    b = fc.placeholder(fc.float32, shape=[4], name="b")
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        a + b
    assert_message(info, "add 'add'", "[3]", "[4]", "do not broadcast", where)


def test_error_matmul_inner_dims(g):
    a = fc.placeholder(fc.float32, shape=[None, 3], name="a")
    b = fc.placeholder(fc.float32, shape=[4, 5], name="b")
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.matmul(a, b, name="dense")
    assert_message(info, "matmul 'dense'", "f32[?,3]", "f32[4,5]", "3 != 4", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        a @ b
    assert_message(info, "matmul 'MatMul'", "f32[?,3]", "f32[4,5]", where)


def test_error_dtype_mix(g):
    x = fc.placeholder(fc.float32, shape=[2], name="x")
    i = fc.placeholder(fc.int32, shape=[2], name="i")
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        x + i
    assert_message(info, "add 'add'", "f32[2]", "i32[2]", "one dtype", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.matmul(fc.reshape(x, [1, 2]), fc.cast(fc.reshape(i, [2, 1]), fc.float64))
    assert_message(info, "matmul", "f32[1,2]", "f64[2,1]", where)
    with pytest.raises(FlowcTypeError) as info:  # a Python float does not fit an int tensor
        where = next_line()
        i + 1.5
    assert_message(info, "int32", "1.5", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.exp(i)
    assert_message(info, "exp 'Exp'", "float32", "int32", where)
    assert isinstance(info.value, TypeError)  # a FlowcTypeError is also a Python TypeError


def test_error_bool_division(g):
    """`/` on integers is TF1's truediv (tests/codegen/test_integer_tf1_ops.py); on bools an error."""
    b = fc.placeholder(fc.bool, shape=[2], name="b")
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        b / b
    assert_message(info, "div", "bool[2]", "a number", where)
    i = fc.placeholder(fc.int32, shape=[2], name="i")
    assert (i / 2).dtype == fc.float64


def test_error_missing_feed(g):
    where = next_line()
    x = fc.placeholder(fc.float32, shape=[None, 2], name="x")
    y = fc.reduce_sum(x * 2)
    with fc.Session(graph=g) as sess, pytest.raises(FeedError) as info:
        sess.run(y)
    assert_message(info, "Placeholder 'x'", "f32[?,2]", "fed", where)


def test_error_feed_wrong_dtype(g):
    where = next_line()
    i = fc.placeholder(fc.int32, shape=[3], name="i")
    b = fc.placeholder(fc.bool, shape=[2], name="b")
    with fc.Session(graph=g) as sess:
        with pytest.raises(FeedError) as info:
            sess.run(i + 1, {i: np.array([0.5, 1.0, 2.0])})
        assert_message(info, "Placeholder 'i'", "int32", "float64", where)
        with pytest.raises(FeedError) as info:
            sess.run(i + 1, {i: np.array([1, 2, 3], np.float32)})  # floats do not become ints quietly
        assert_message(info, "Placeholder 'i'", "int32", "float32", where)
        with pytest.raises(FeedError) as info:
            sess.run(i + 1, {i: np.array([2**40, 0, 0], np.int64)})  # does not fit int32
        assert_message(info, "Placeholder 'i'", "int32", "int64", where)
        with pytest.raises(FeedError) as info:
            sess.run(~b, {b: np.array([1, 0])})
        assert_message(info, "Placeholder 'b'", "bool", "int64", next_line_of(where, 1))
        # conversions that lose nothing are made: int64 labels that fit, float64 data into float32
        check(sess.run(i + 1, {i: np.array([1, 2, 3], np.int64)}), np.array([2, 3, 4], np.int32))
        check(sess.run(i + 1, {i: [1, 2, 3]}), np.array([2, 3, 4], np.int32))


def test_error_feed_wrong_shape(g):
    where = next_line()
    x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
    y = x * 2
    with fc.Session(graph=g) as sess:
        with pytest.raises(FeedError) as info:
            sess.run(y, {x: np.ones((2, 4), np.float32)})
        assert_message(info, "Placeholder 'x'", "[None, 3]", "[2, 4]", where)
        with pytest.raises(FeedError) as info:
            sess.run(y, {x: np.ones(3, np.float32)})
        assert_message(info, "Placeholder 'x'", "[None, 3]", "[3]", where)


def test_error_fetch_not_in_graph(g):
    x = fc.constant(1.0, name="x")
    other = fc.Graph()
    with other.as_default():
        where = next_line()
        foreign = fc.constant(2.0, name="foreign")
    with fc.Session(graph=g) as sess:
        check(sess.run(x), np.float32(1.0))
        with pytest.raises(FetchError) as info:
            sess.run("nothing:0")
        assert_message(info, "'nothing'")
        with pytest.raises(FetchError) as info:
            sess.run("x:1")
        assert_message(info, "'x:1'", "1 outputs")
        with pytest.raises(FetchError) as info:
            sess.run("y")
        assert_message(info, "'y'")
        with pytest.raises(FetchError) as info:
            sess.run(foreign)
        assert_message(info, "'foreign:0'", "another graph", where)
        with pytest.raises(FetchError) as info:
            sess.run(x, {foreign: 1.0})
        assert_message(info, "'foreign:0'", "another graph", where)
    with pytest.raises(GraphError) as info:  # mixing graphs while building
        where = next_line()
        x + foreign
    assert_message(info, "'foreign:0'", "another graph", where)


def test_error_uninitialized_variable(g):
    where = next_line()
    v = fc.Variable(fc.zeros([2]), name="v")
    y = v * 2
    with fc.Session(graph=g) as sess:
        with pytest.raises(UninitializedVariableError) as info:
            sess.run(y)
        assert_message(info, "Variable 'v'", "initializ", where)
        sess.run(v.initializer)
        check(sess.run(y), np.zeros(2, np.float32))


@pytest.mark.parametrize("build, fragments", [
    (lambda x: fc.reduce_sum(x, axis=2), ["reduce_sum 'Sum'", "axis 2", "rank 2"]),
    (lambda x: fc.reduce_max(x, axis=-3), ["reduce_max 'Max'", "axis -3", "rank 2"]),
    (lambda x: fc.argmax(x, axis=5), ["argmax 'ArgMax'", "axis 5"]),
    (lambda x: fc.concat([x, x], 2), ["concat 'concat'", "axis 2"]),
    (lambda x: fc.expand_dims(x, 4), ["expand_dims 'ExpandDims'", "axis 4", "f32[?,3]"]),
    (lambda x: fc.squeeze(x, 1), ["squeeze 'Squeeze'", "axis 1", "f32[?,3]"]),
    (lambda x: fc.transpose(x, [0, 0]), ["transpose 'transpose'", "[0, 0]"]),
    (lambda x: fc.gather(x, fc.constant([0]), axis=2), ["gather 'Gather'", "axis 2"]),
    (lambda x: fc.nn.softmax(x, axis=2), ["reduce_max", "axis 2"]),
    (lambda x: x[:, 3], ["slice", "index 3", "f32[?,3]"]),
    (lambda x: x[1, 2, 3], ["slice", "too many indices"]),
], ids=["sum", "max", "argmax", "concat", "expand_dims", "squeeze", "transpose", "gather", "softmax", "index",
        "too_many"])
def test_error_bad_axis(g, build, fragments):
    x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
    with pytest.raises(FlowcTypeError) as info:
        build(x)
    # the innermost line of user code is the lambda in the parameter list above
    assert_message(info, *fragments, f"test_frontend_ops.py:{build.__code__.co_firstlineno}")


def test_error_reshape_count(g):
    w = fc.placeholder(fc.float32, shape=[2, 3], name="w")
    x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.reshape(w, [4, 2])
    assert_message(info, "reshape 'Reshape'", "f32[2,3]", "[4, 2]", "6 elements", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.reshape(w, [4, -1])
    assert_message(info, "reshape", "f32[2,3]", "[4, -1]", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.reshape(x, [3, 5])  # 15 is no multiple of 4, whatever the batch
    assert_message(info, "reshape", "f32[?,4]", "[3, 5]", where)
    y = fc.reshape(x, [-1, 3])  # only the run knows: 8 rows of 4 fit, 3 rows do not
    with fc.Session(graph=g) as sess:
        check(sess.run(y, {x: np.ones((3, 4))}), np.ones((4, 3), np.float32))
        with pytest.raises(FlowcError) as info:
            sess.run(y, {x: np.ones((2, 4))})
        assert_message(info, "reshape", "[2, 4]", "[-1, 3]")


def test_error_other_build_checks(g):
    x = fc.placeholder(fc.float32, shape=[3], name="x")
    i = fc.placeholder(fc.int32, shape=[3], name="i")
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.where(x, x, x)
    assert_message(info, "where 'Where'", "bool", "f32[3]", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        x & x
    assert_message(info, "logical_and", "bool", "float32", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.one_hot(x, 3)
    assert_message(info, "one_hot", "int32", "float32", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.nn.sparse_softmax_cross_entropy_with_logits(labels=x, logits=fc.reshape(x, [1, 3]))
    assert_message(info, "sparse_softmax_cross_entropy_with_logits", "f32[3]", "f32[1,3]", where)
    with pytest.raises(FlowcTypeError) as info:
        where = next_line()
        fc.reduce_mean(i > 0)  # integers have TF1's truncated mean; bools none
    assert_message(info, "reduce_mean 'Mean'", "bool", where)
    with pytest.raises(GraphError) as info:
        where = next_line()
        bool(x > 0)
    assert_message(info, "truth value", where.split(":")[0])


def test_run_time_index_errors_are_flowc_errors(g):
    params = fc.placeholder(fc.float32, shape=[None, 2], name="params")
    i = fc.placeholder(fc.int32, shape=[None], name="i")
    picked = fc.gather(params, i)
    last = params[-1]
    best = fc.argmax(params, axis=0)
    data = np.arange(6, dtype=np.float32).reshape(3, 2)
    with fc.Session(graph=g) as sess:
        check(sess.run(picked, {params: data, i: np.array([2, 0], np.int32)}), data[[2, 0]])
        for bad in (3, -1):  # a negative gather index is out of range, as in TensorFlow
            with pytest.raises(FlowcError) as info:
                sess.run(picked, {params: data, i: np.array([0, bad], np.int32)})
            assert isinstance(info.value, IndexError)
            assert_message(info, "gather", f"index {bad}", "[0, 3)")
        with pytest.raises(FlowcError) as info:
            sess.run(last, {params: np.zeros((0, 2), np.float32)})
        assert_message(info, "slice", "index -1")
        with pytest.raises(FlowcError) as info:  # the index of the best of nothing has no value (TensorFlow raises too)
            sess.run(best, {params: np.zeros((0, 2), np.float32)})
        assert_message(info, "argmax", "zero-size axis 0 of shape [0, 2]")


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_run_time_broadcast_mismatch_is_a_flowc_error(g, target):
    a = fc.placeholder(fc.float32, shape=[None, 3], name="a")
    b = fc.placeholder(fc.float32, shape=[None, 3], name="b")
    where = next_line()
    total = a + b
    with fc.Session(graph=g, target=target) as sess:
        if target == "reference":  # numpy's rule: a None dim that is 1 at run time broadcasts
            check(sess.run(total, {a: np.ones((1, 3)), b: np.ones((4, 3))}), np.full((4, 3), 2, np.float32))
        else:  # compiled code: a None dim must match (as under JAX's shape polymorphism)
            with pytest.raises(FlowcError) as info:
                sess.run(total, {a: np.ones((1, 3)), b: np.ones((4, 3))})
            assert_message(info, "add 'add'", "[1, 3]", "[4, 3]", "static 1", where)
        with pytest.raises(FlowcError) as info:
            sess.run(total, {a: np.ones((4, 3)), b: np.ones((5, 3))})
        assert isinstance(info.value, ValueError)
        assert_message(info, "add 'add'", "[4, 3]", "[5, 3]", where)


@pytest.mark.parametrize("build, message", [
    (lambda a, w: fc.matmul(a, w), ["matmul", "[4, 3]", "[4, 2]"]),
    (lambda a, w: fc.where(a > 0, a, w[:, :1]), ["where", "[4, 3]", "[5, 1]"]),
], ids=["matmul", "where"])
def test_run_time_mismatch_in_other_ops_is_a_flowc_error(g, build, message):
    a = fc.placeholder(fc.float32, shape=[None, 3], name="a")
    w = fc.placeholder(fc.float32, shape=[None, 2], name="w")
    y = build(a, w)
    with fc.Session(graph=g) as sess, pytest.raises(FlowcError) as info:
        sess.run(y, {a: np.ones((4, 3)), w: np.ones((4 if "matmul" in message else 5, 2))})
    assert_message(info, *message)


def test_run_time_errors_name_the_users_line(g):
    params = fc.placeholder(fc.float32, shape=[None, 2], name="params")
    where = next_line()
    picked = fc.gather(params, fc.constant([5]), name="pick")
    with fc.Session(graph=g) as sess, pytest.raises(FlowcError) as info:
        sess.run(picked, {params: np.ones((3, 2))})
    assert_message(info, "gather 'pick'", where)
