"""Every registered op against numpy: its reference meaning, its type rule, its errors.

Each test builds a one-op function with the Builder and runs it with the
interpreter, which also checks every result against the op's static type. The
expected values are computed here with numpy, never with `op.reference`: the
point is to check the reference, the executable specification of each op.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Callable

import numpy as np
import pytest

import flowc.ir as ir
from flowc.ir import Builder, DType, Function, TensorType, registry
from flowc.ir.errors import FlowcTypeError, IndexOutOfRange, RuntimeShapeError
from flowc.ir.ops import philox

TOL = {np.dtype("float16"): 2e-3, np.dtype("float32"): 1e-6, np.dtype("float64"): 1e-12}
SHORT = {d.short: d for d in ir.DTYPES}

# -- helpers -------------------------------------------------------------------


def tensor_type(text: str) -> TensorType:
    """'f32[?,3]' -> TensorType(float32, (None, 3))."""
    short, dims = text.rstrip("]").split("[")
    return TensorType(SHORT[short], tuple(None if d == "?" else int(d) for d in dims.split(",") if d))


def one_op(name: str, arg_types: list[TensorType], attrs: dict[str, Any]) -> Function:
    function = Function(name, arg_types, [])
    b = Builder.at_end(function.entry)
    result = b.create(name, function.args, attrs).result
    b.create("return", [result])
    function.result_types = [result.type]
    return function


def infer(name: str, *types: str, **attrs: Any) -> str:
    """The result type of op `name` on operands of the given types, as text."""
    return str(one_op(name, [tensor_type(t) for t in types], attrs).result_types[0])


def run(name: str, *arrays: Any, arg_shapes: list[tuple] | None = None, **attrs: Any) -> np.ndarray:
    """Op `name` on arrays; `arg_shapes` gives the argument types' shapes (None dims) if not the arrays'."""
    values = [np.asarray(a) for a in arrays]
    shapes = arg_shapes or [v.shape for v in values]
    types = [TensorType(ir.as_dtype(v.dtype), s) for v, s in zip(values, shapes)]
    [result] = ir.evaluate(one_op(name, types, attrs), values)
    return result


def check(got: np.ndarray, want: Any) -> None:
    """Same dtype, same shape, same values (floats to a few ulp; NaN equals NaN)."""
    want = np.asarray(want)
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=TOL[got.dtype], atol=0)
    else:
        np.testing.assert_array_equal(got, want)


def sample(rng: np.random.Generator, dtype: DType | str, shape: tuple, positive: bool = False) -> np.ndarray:
    """Values on a grid of quarters, so equal pairs and ties occur; `positive` keeps them > 0."""
    dtype = ir.as_dtype(dtype)
    if dtype.is_bool:
        return rng.random(shape) < 0.5
    if dtype.is_int:
        return rng.integers(1 if positive else -5, 6, shape).astype(dtype.np)
    return (rng.integers(1 if positive else -8, 9, shape) / 4).astype(dtype.np)


def raises(error: type[Exception], *words: str) -> Any:
    """pytest.raises(error) whose message holds each of `words`, in order."""
    return pytest.raises(error, match=".*".join(re.escape(w) for w in words))


# -- elementwise -------------------------------------------------------------------

UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neg": np.negative,
    "abs": np.abs,
    "square": np.square,
    "relu": lambda x: np.maximum(x, 0),
    "exp": np.exp,
    "log": np.log,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x),
    "logical_not": np.logical_not,
    "identity": lambda x: x,
}
BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
}
UNARY.update(sin=np.sin, cos=np.cos, atan=np.arctan, log1p=np.log1p, expm1=np.expm1,  # ir/ops/elementwise_math.py
             floor=np.floor, ceil=np.ceil, round=np.rint, sign=np.sign,
             erf=lambda x: np.vectorize(__import__("math").erf, otypes=[x.dtype])(x))
BINARY.update(floordiv=np.floor_divide, floormod=np.remainder)
POSITIVE = {"log", "sqrt", "rsqrt", "div", "pow"}  # operands kept inside the real domain, away from 0


def declared(arity: int) -> list[Any]:
    """(op name, dtype) for every elementwise op of that arity without attributes, each dtype it takes."""
    return [
        pytest.param(op.name, dtype, id=f"{op.name}-{dtype.short}")
        for op in registry.elementwise()
        if op.num_operands == arity and not op.attrs
        for dtype in op.dtypes
    ]


@pytest.mark.parametrize("name, dtype", declared(1))
def test_unary_matches_numpy(name: str, dtype: DType, rng: np.random.Generator) -> None:
    x = sample(rng, dtype, (3, 1, 4), positive=name in POSITIVE)
    check(run(name, x), UNARY[name](x))


@pytest.mark.parametrize("name, dtype", declared(2))
def test_binary_broadcasts_like_numpy(name: str, dtype: DType, rng: np.random.Generator) -> None:
    x = sample(rng, dtype, (3, 1, 5), positive=name in POSITIVE)
    y = sample(rng, dtype, (4, 1), positive=name in POSITIVE)
    check(run(name, x, y), BINARY[name](x, y))
    check(run(name, x[0, 0, 0], y), BINARY[name](x[0, 0, 0], y))  # a scalar operand


def test_elementwise_with_unknown_and_size_one_dims(rng: np.random.Generator) -> None:
    assert infer("add", "f32[?,5]", "f32[5]") == "f32[?,5]"
    assert infer("add", "f32[?,1]", "f32[1,?]") == "f32[?,?]"
    assert infer("mul", "f32[?]", "f32[3]") == "f32[3]"  # the unknown dim is 1 or 3 at run time
    x, y = sample(rng, "f64", (3, 5)), sample(rng, "f64", (5,))
    check(run("add", x, y, arg_shapes=[(None, 5), (5,)]), x + y)
    check(run("mul", x[:, :1], y[None], arg_shapes=[(None, 1), (1, None)]), x[:, :1] * y[None])
    empty = np.zeros((0, 5), np.float32)
    check(run("sub", empty, np.ones((1, 5), np.float32), arg_shapes=[(None, 5), (None, 5)]), empty)


def test_where_broadcasts_three_ways(rng: np.random.Generator) -> None:
    cond = sample(rng, "bool", (3, 1))
    x, y = sample(rng, "i32", (1, 4)), np.int32(7)
    check(run("where", cond, x, y), np.where(cond, x, y))
    with raises(FlowcTypeError, "condition must be bool", "f32[3]"):
        infer("where", "f32[3]", "f32[3]", "f32[3]")
    with raises(FlowcTypeError, "one dtype", "f32[3]", "i32[3]"):
        infer("where", "bool[3]", "f32[3]", "i32[3]")


@pytest.mark.parametrize("source", [d.name for d in ir.DTYPES])
def test_cast_to_every_dtype(source: str, rng: np.random.Generator) -> None:
    x = sample(rng, source, (7,))
    x = x * 1.5 if x.dtype.kind == "f" else x  # fractions of both signs: truncation toward zero
    for target in ir.DTYPES:
        if target.is_bool:
            want = x != 0
        elif x.dtype.kind == "f" and target.is_int:
            want = np.trunc(x).astype(target.np)
        else:
            want = x.astype(target.np)
        check(run("cast", x, dtype=target), want)
    assert infer("cast", "f32[?,2]", dtype="i64") == "i64[?,2]"


def test_elementwise_type_errors() -> None:
    with raises(FlowcTypeError, "add", "one dtype", "f32[3]", "i32[3]"):
        infer("add", "f32[3]", "i32[3]")
    with raises(FlowcTypeError, "exp", "float32, float64", "int32"):
        infer("exp", "i32[3]")
    with raises(FlowcTypeError, "mul", "do not broadcast"):
        infer("mul", "f32[2,3]", "f32[4]")
    with raises(FlowcTypeError, "logical_and", "bool", "f32[2]"):
        infer("logical_and", "f32[2]", "f32[2]")


# -- reductions ---------------------------------------------------------------------

REDUCTIONS: dict[str, Callable[..., Any]] = {
    "reduce_sum": np.sum,
    "reduce_mean": np.mean,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_prod": np.prod,
    "reduce_any": np.any,
    "reduce_all": np.all,
}
AXES = [(), (0,), (-1,), (0, 2), (2, 0, -2)]


@pytest.mark.parametrize(
    "name, dtype", [pytest.param(n, d, id=f"{n}-{d.short}") for n in REDUCTIONS for d in registry.get(n).dtypes]
)
def test_reductions_match_numpy(name: str, dtype: DType, rng: np.random.Generator) -> None:
    x = sample(rng, dtype, (2, 3, 4))
    for axes in AXES:
        for keepdims in (False, True):
            # astype: numpy widens int32 sums to int64; flowc keeps the operand's dtype.
            want = np.asarray(REDUCTIONS[name](x, axis=axes, keepdims=keepdims)).astype(x.dtype)
            check(run(name, x, axes=axes, keepdims=keepdims), want)


def test_reductions_of_zero_size_axes() -> None:
    x = np.zeros((0, 3), np.float32)
    check(run("reduce_sum", x, axes=(0,)), np.zeros(3, np.float32))
    check(run("reduce_sum", x, axes=(0, 1), keepdims=True), np.zeros((1, 1), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" warning leaks out
        check(run("reduce_mean", x, axes=(0,)), np.full(3, np.nan, np.float32))
    check(run("reduce_max", x, axes=(1,)), np.zeros(0, np.float32))  # no empty axis is reduced
    check(run("reduce_min", x, axes=()), x)
    # An empty axis gives the identity, as TensorFlow: the lowest value for max, the highest for min.
    check(run("reduce_max", x, axes=(-2,)), np.full(3, -np.inf, np.float32))
    check(run("reduce_min", x, axes=(0, 1), keepdims=True), np.full((1, 1), np.inf, np.float32))
    for dtype in (np.int32, np.int64):
        ints = np.zeros((2, 0), dtype)
        check(run("reduce_max", ints, axes=(1,)), np.full(2, np.iinfo(dtype).min, dtype))
        check(run("reduce_min", ints, axes=(1,)), np.full(2, np.iinfo(dtype).max, dtype))
        check(run("reduce_sum", ints, axes=(1,)), np.zeros(2, dtype))


def test_reductions_with_unknown_dims(rng: np.random.Generator) -> None:
    assert infer("reduce_sum", "f32[?,4,?]", axes=(1,)) == "f32[?,?]"
    assert infer("reduce_max", "f32[?,4,?]", axes=(0, -1), keepdims=True) == "f32[1,4,1]"
    for rows in (3, 1, 0):
        x = sample(rng, "f64", (rows, 4))
        check(run("reduce_sum", x, arg_shapes=[(None, 4)], axes=(1,)), x.sum(axis=1))
        check(run("reduce_min", x, arg_shapes=[(None, None)], axes=(-1,), keepdims=True), x.min(-1, keepdims=True))


def test_reduction_type_errors() -> None:
    with raises(FlowcTypeError, "reduce_sum", "axis 2 is out of range for rank 2"):
        infer("reduce_sum", "f32[2,3]", axes=(2,))
    with raises(FlowcTypeError, "repeated axis"):
        infer("reduce_max", "f32[2,3]", axes=(0, -2))
    with raises(FlowcTypeError, "reduce_mean", "float32, float64", "int32"):
        infer("reduce_mean", "i32[2,3]", axes=(0,))
    with raises(FlowcTypeError, "reduce_sum", "bool"):
        infer("reduce_sum", "bool[2]", axes=(0,))
    with raises(FlowcTypeError, "missing attribute axes"):
        infer("reduce_sum", "f32[2]")


@pytest.mark.parametrize("name, fn", [("argmax", np.argmax), ("argmin", np.argmin)])
def test_arg_reductions_match_numpy(name: str, fn: Callable[..., Any], rng: np.random.Generator) -> None:
    for dtype in ir.NUMERIC:
        x = sample(rng, dtype, (3, 4, 5))  # grid values: ties pick the first index
        for axis in (0, -1, 1):
            check(run(name, x, axis=axis), fn(x, axis=axis).astype(np.int64))
            check(run(name, x, axis=axis, dtype="int32"), fn(x, axis=axis).astype(np.int32))
    x = np.array([[1.0, np.nan, 3.0]])
    check(run(name, x, axis=1), np.array([1]))  # NaN wins, as in numpy
    assert infer(name, "f32[?,4]", axis=0) == "i64[4]"
    assert not registry.get(name).differentiable
    with raises(RuntimeShapeError, name, "zero-size axis 1 of shape [2, 0]", "no index"):
        run(name, np.zeros((2, 0)), axis=1, arg_shapes=[(2, None)])
    with raises(RuntimeShapeError, name, "zero-size axis 0 of shape [0, 0]"):  # even when the result is empty
        run(name, np.zeros((0, 0)), axis=0, arg_shapes=[(None, None)])
    with raises(FlowcTypeError, name, "zero-size axis 1 of shape [2, 0]"):  # a static 0: at build time
        infer(name, "f32[2,0]", axis=-1)
    with raises(FlowcTypeError, "int32 or int64", "float32"):
        infer(name, "f32[3]", axis=0, dtype="float32")
    with raises(FlowcTypeError, "axis -3 is out of range for rank 2"):
        infer(name, "f32[3,4]", axis=-3)


# -- shape ----------------------------------------------------------------------------


def test_reshape(rng: np.random.Generator) -> None:
    x = sample(rng, "f32", (2, 3, 4))
    for shape in [(4, -1), (24,), (-1,), (2, 12), (1, 2, 1, 12), (-1, 3, 2, 2)]:
        check(run("reshape", x, shape=shape), x.reshape(shape))
    check(run("reshape", np.float64(5), shape=(1, 1)), np.full((1, 1), 5.0))
    check(run("reshape", np.zeros((0, 3), np.int32), shape=(-1, 3, 1)), np.zeros((0, 3, 1), np.int32))
    assert infer("reshape", "f32[2,3,4]", shape=(-1, 6)) == "f32[4,6]"


def test_reshape_with_unknown_dims(rng: np.random.Generator) -> None:
    assert infer("reshape", "f32[?,3,4]", shape=(-1, 12)) == "f32[?,12]"
    assert infer("reshape", "f32[?,3]", shape=(6,)) == "f32[6]"
    for rows in (2, 0):
        x = sample(rng, "f32", (rows, 3, 4))
        check(run("reshape", x, arg_shapes=[(None, 3, 4)], shape=(-1, 12)), x.reshape(-1, 12))
    with raises(RuntimeShapeError, "reshape", "[3, 3]", "[6]"):
        run("reshape", np.zeros((3, 3)), arg_shapes=[(None, 3)], shape=(6,))


def test_reshape_errors() -> None:
    with raises(FlowcTypeError, "reshape", "f32[2,3]", "[4, 2]", "6 elements"):
        infer("reshape", "f32[2,3]", shape=(4, 2))
    with raises(FlowcTypeError, "f32[2,3]", "[4, -1]"):
        infer("reshape", "f32[2,3]", shape=(4, -1))
    with raises(FlowcTypeError, "f32[0,3]", "[0, -1]"):
        infer("reshape", "f32[0,3]", shape=(0, -1))  # -1 is ambiguous next to a 0
    with raises(FlowcTypeError, "one -1"):
        infer("reshape", "f32[2,3]", shape=(-1, -1))
    with raises(FlowcTypeError, "f32[?,4]", "[6]", "not a multiple of 4"):
        infer("reshape", "f32[?,4]", shape=(6,))


def test_transpose(rng: np.random.Generator) -> None:
    x = sample(rng, "i64", (2, 3, 4))
    for perm in [(2, 0, 1), (0, 1, 2), (1, 0, 2)]:
        check(run("transpose", x, perm=perm), np.transpose(x, perm))
    assert infer("transpose", "f32[?,3]", perm=(1, 0)) == "f32[3,?]"
    check(run("transpose", x[:, :0], arg_shapes=[(None, None, 4)], perm=(2, 1, 0)), np.zeros((4, 0, 2), np.int64))
    with raises(FlowcTypeError, "transpose", "perm [0, 0, 1]", "not a permutation", "f32[2,3,4]"):
        infer("transpose", "f32[2,3,4]", perm=(0, 0, 1))
    with raises(FlowcTypeError, "perm [1, 0]", "[0, 1, 2]"):
        infer("transpose", "f32[2,3,4]", perm=(1, 0))


def test_concat(rng: np.random.Generator) -> None:
    a, b, c = sample(rng, "f32", (2, 3)), sample(rng, "f32", (2, 1)), sample(rng, "f32", (2, 0))
    check(run("concat", a, b, c, axis=1), np.concatenate([a, b, c], axis=1))
    check(run("concat", a, b, axis=-1), np.concatenate([a, b], axis=-1))
    check(run("concat", a, a, axis=0), np.concatenate([a, a], axis=0))
    check(run("concat", a, axis=0), a)
    assert infer("concat", "f32[?,3]", "f32[2,?]", axis=0) == "f32[?,3]"
    assert infer("concat", "f32[?,3]", "f32[2,?]", axis=1) == "f32[2,?]"
    assert infer("concat", "bool[2,3]", "bool[2,4]", axis=1) == "bool[2,7]"
    check(run("concat", a, b, arg_shapes=[(None, None), (2, None)], axis=1), np.concatenate([a, b], axis=1))


def test_concat_errors() -> None:
    with raises(FlowcTypeError, "concat", "one dtype", "f32[2]", "i32[2]"):
        infer("concat", "f32[2]", "i32[2]", axis=0)
    with raises(FlowcTypeError, "one rank", "f32[2,3]", "f32[3]"):
        infer("concat", "f32[2,3]", "f32[3]", axis=0)
    with raises(FlowcTypeError, "dim 0 differs", "f32[2,3]", "f32[4,3]"):
        infer("concat", "f32[2,3]", "f32[4,3]", axis=1)
    with raises(FlowcTypeError, "axis 2 is out of range for rank 2"):
        infer("concat", "f32[2,3]", "f32[2,3]", axis=2)
    with raises(FlowcTypeError, "at least one operand"):
        infer("concat", axis=0)
    with raises(RuntimeShapeError, "concat", "[2, 3]", "[4, 3]"):
        run("concat", np.zeros((2, 3)), np.zeros((4, 3)), arg_shapes=[(None, 3), (None, None)], axis=1)


def test_expand_dims_and_squeeze(rng: np.random.Generator) -> None:
    x = sample(rng, "f64", (2, 3))
    for axis in (0, 1, 2, -1, -3):
        check(run("expand_dims", x, axis=axis), np.expand_dims(x, axis))
    assert infer("expand_dims", "f32[]", axis=0) == "f32[1]"
    assert infer("expand_dims", "f32[?,3]", axis=-1) == "f32[?,3,1]"
    with raises(FlowcTypeError, "expand_dims", "axis 3", "[-3, 2]", "f32[2,3]"):
        infer("expand_dims", "f32[2,3]", axis=3)
    y = sample(rng, "bool", (1, 3, 1))
    check(run("squeeze", y, axes=(0, -1)), y.reshape(3))
    check(run("squeeze", y, axes=(2,)), y.reshape(1, 3))
    assert infer("squeeze", "f32[?,3]", axes=(0,)) == "f32[3]"  # checked at run time
    check(run("squeeze", x[:1], arg_shapes=[(None, 3)], axes=(0,)), x[0])
    with raises(RuntimeShapeError, "squeeze", "axis 0", "[2, 3]"):
        run("squeeze", x, arg_shapes=[(None, 3)], axes=(0,))
    with raises(FlowcTypeError, "squeeze", "axis 1 of f32[1,3]", "not 1"):
        infer("squeeze", "f32[1,3]", axes=(1,))
    with raises(FlowcTypeError, "at least one axis"):
        infer("squeeze", "f32[1,3]", axes=())


def test_ensure_shape(rng: np.random.Generator) -> None:
    x = sample(rng, "f32", (2, 3))
    check(run("ensure_shape", x, arg_shapes=[(None, None)], shape=(2, -1)), x)
    assert infer("ensure_shape", "f32[?,?]", shape=(1, -1)) == "f32[1,?]"
    assert infer("ensure_shape", "f32[2,?]", shape=(-1, 3)) == "f32[2,3]"
    with raises(RuntimeShapeError, "ensure_shape", "[2, 3]", "axis 1", "not 4"):
        run("ensure_shape", x, arg_shapes=[(None, None)], shape=(-1, 4))
    with raises(FlowcTypeError, "ensure_shape", "f32[2,3] has 3 along axis 1, not 4"):
        infer("ensure_shape", "f32[2,3]", shape=(-1, 4))
    with raises(FlowcTypeError, "ensure_shape", "one dim >= -1 per dim"):
        infer("ensure_shape", "f32[2,3]", shape=(2,))


def test_broadcast_to(rng: np.random.Generator) -> None:
    x = sample(rng, "i32", (3, 1))
    for shape in [(2, 3, 4), (3, 5), (3, 1), (0, 3, 0)]:
        check(run("broadcast_to", x, shape=shape), np.broadcast_to(x, shape))
    check(run("broadcast_to", np.float32(2), shape=(2, 2)), np.full((2, 2), 2, np.float32))
    assert infer("broadcast_to", "f32[?,1]", shape=(4, 3, 5)) == "f32[4,3,5]"
    check(run("broadcast_to", x, arg_shapes=[(None, 1)], shape=(3, 4)), np.broadcast_to(x, (3, 4)))
    with raises(RuntimeShapeError, "broadcast_to", "[3, 1]", "[4, 4]"):
        run("broadcast_to", x, arg_shapes=[(None, 1)], shape=(4, 4))
    with raises(FlowcTypeError, "broadcast_to", "f32[3]", "[4]", "neither 1 nor 4"):
        infer("broadcast_to", "f32[3]", shape=(4,))
    with raises(FlowcTypeError, "f32[2,3]", "[3]", "rank 2 > 1"):
        infer("broadcast_to", "f32[2,3]", shape=(3,))


@pytest.mark.parametrize("name, shape, attrs", [
    ("reshape", (2, 3), {"shape": (6,)}),
    ("transpose", (2, 3), {"perm": (1, 0)}),
    ("expand_dims", (2, 3), {"axis": 0}),
    ("squeeze", (1, 6), {"axes": (0,)}),
    ("broadcast_to", (6,), {"shape": (1, 6)}),
    ("concat", (2, 3), {"axis": 0}),
    ("slice", (2, 3), {"begin": (0, 0), "end": (None, None), "strides": (1, 1)}),
    ("identity", (2, 3), {}),
])
def test_structural_results_do_not_alias_operands(name: str, shape: tuple, attrs: dict[str, Any]) -> None:
    x = np.arange(6.0).reshape(shape)
    assert not np.shares_memory(run(name, x, **attrs), x)  # Note [fresh results] in ir/ops/shape.py


# -- slicing, gather, one_hot ------------------------------------------------------


def slice_attrs(index: tuple) -> dict[str, Any]:
    """The attributes the front end writes for x[index]: one int or slice per dim."""
    begin, end, strides, squeeze = [], [], [], []
    for axis, item in enumerate(index):
        if isinstance(item, int):
            item, squeeze = slice(item, None if item == -1 else item + 1), squeeze + [axis]
        step = 1 if item.step is None else item.step
        begin.append(item.start if item.start is not None else (0 if step > 0 else -1))
        end.append(item.stop)
        strides.append(step)
    return {"begin": tuple(begin), "end": tuple(end), "strides": tuple(strides), "squeeze_dims": tuple(squeeze)}


SLICES = [
    np.s_[1:3, ::-1, -3:],
    np.s_[::2, 5:0:-2, :],
    np.s_[10:, :0, 1:2],
    np.s_[-100:100, -1:-4:-1, ::-3],
    np.s_[-1, :, 2],
    np.s_[:, 1, ::-1],
    np.s_[0, -1, -5],
    np.s_[2:0, 0:4:3, -1:],
]


def test_slice_matches_numpy_indexing(rng: np.random.Generator) -> None:
    x = sample(rng, "i32", (3, 4, 5))
    for index in SLICES:
        check(run("slice", x, **slice_attrs(index)), x[index])
    empty = np.zeros((0, 2), np.float32)
    check(run("slice", empty, **slice_attrs(np.s_[::-1, 1])), empty[::-1, 1])


def test_slice_with_unknown_dims(rng: np.random.Generator) -> None:
    index = np.s_[1:3, ::-1, -1]
    assert infer("slice", "f32[?,4,5]", **slice_attrs(index)) == "f32[?,4]"
    assert infer("slice", "f32[?,4,?]", **slice_attrs(index)) == "f32[?,4]"
    for rows in (3, 1, 0):
        x = sample(rng, "f32", (rows, 4, 5))
        check(run("slice", x, arg_shapes=[(None, 4, None)], **slice_attrs(index)), x[index])
    with raises(IndexOutOfRange, "slice", "index 2", "[-2, 2)", "axis 0"):
        run("slice", np.zeros((2, 3)), arg_shapes=[(None, 3)], **slice_attrs(np.s_[2, :]))


def test_slice_errors() -> None:
    with raises(FlowcTypeError, "slice", "index 3 is out of range [-3, 3)", "axis 1 of f32[2,3]"):
        infer("slice", "f32[2,3]", **slice_attrs(np.s_[:, 3]))
    with raises(FlowcTypeError, "index -4"):
        infer("slice", "f32[2,3]", **slice_attrs(np.s_[:, -4]))
    with raises(FlowcTypeError, "stride 0"):
        infer("slice", "f32[2,3]", begin=(0, 0), end=(None, None), strides=(1, 0))
    with raises(FlowcTypeError, "one entry per dim of f32[2,3]"):
        infer("slice", "f32[2,3]", begin=(0,), end=(None,), strides=(1,))


def test_gather(rng: np.random.Generator) -> None:
    params = sample(rng, "f32", (4, 3, 2))
    for index_dtype in ("int32", "int64"):
        indices = np.array([[3, 0], [1, 1], [2, 0]], index_dtype)
        check(run("gather", params, indices), params[indices])
        columns = np.array([2, 0, 2], index_dtype)
        check(run("gather", params, columns, axis=1), params[:, columns])
        last = np.array([[1], [0]], index_dtype)
        check(run("gather", params, last, axis=-1), params[..., last])
    check(run("gather", params, np.int64(2)), params[2])
    check(run("gather", params, np.zeros((0,), np.int32), axis=1), params[:, :0])
    assert infer("gather", "bool[?,3,2]", "i32[5,?]", axis=1) == "bool[?,5,?,2]"
    check(run("gather", params, np.array([2]), arg_shapes=[(None, 3, 2), (None,)]), params[[2]])


def test_gather_errors() -> None:
    params = np.zeros((4, 3))
    with raises(IndexOutOfRange, "gather", "index 4", "[0, 4)", "axis 0"):
        run("gather", params, np.array([0, 4]))
    with raises(IndexOutOfRange, "index -1", "[0, 3)", "axis 1"):
        run("gather", params, np.array([-1]), axis=1)  # negative indices do not count from the end
    with raises(FlowcTypeError, "gather", "indices", "integers", "uint8", "f32[2]"):
        infer("gather", "f32[4,3]", "f32[2]")
    with raises(FlowcTypeError, "axis 2 is out of range for rank 2"):
        infer("gather", "f32[4,3]", "i32[2]", axis=2)


def test_one_hot() -> None:
    indices = np.array([[0, 2], [5, -1]], np.int32)  # 5 and -1 are out of range: rows of off_value
    want = np.zeros((2, 2, 3), np.float32)
    want[0, 0, 0] = want[0, 1, 2] = 1
    check(run("one_hot", indices, depth=3), want)
    check(run("one_hot", indices, depth=3, axis=0), np.moveaxis(want, -1, 0))
    check(run("one_hot", indices, depth=3, axis=1), np.moveaxis(want, -1, 1))
    check(run("one_hot", indices.astype(np.int64), depth=3, on_value=5, off_value=-1, dtype="int32"),
          (want * 6 - 1).astype(np.int32))
    check(run("one_hot", indices, depth=0), np.zeros((2, 2, 0), np.float32))
    check(run("one_hot", np.int64(1), depth=2, dtype="float64"), np.array([0.0, 1.0]))
    assert infer("one_hot", "i32[?]", depth=4, axis=0) == "f32[4,?]"
    assert not registry.get("one_hot").differentiable
    with raises(FlowcTypeError, "one_hot", "indices", "int32, int64", "f32[2]"):
        infer("one_hot", "f32[2]", depth=3)
    with raises(FlowcTypeError, "dtype must be numeric", "bool"):
        infer("one_hot", "i32[2]", depth=3, dtype="bool")
    with raises(FlowcTypeError, "axis 2", "[-2, 1]"):
        infer("one_hot", "i32[2]", depth=3, axis=2)


# -- matmul -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [d.name for d in ir.NUMERIC])
def test_matmul_matches_numpy(dtype: str, rng: np.random.Generator) -> None:
    if ir.as_dtype(dtype) in ir.types.SMALL_INTS:  # TF1's MatMul takes none of them
        with raises(FlowcTypeError, "matmul", "a must be one of", "int64", f"got {dtype}"):
            infer("matmul", f"{ir.as_dtype(dtype).short}[3,4]", f"{ir.as_dtype(dtype).short}[4,5]")
        return
    a, b = sample(rng, dtype, (3, 4)), sample(rng, dtype, (4, 5))
    check(run("matmul", a, b), a @ b)
    check(run("matmul", a.T, b, transpose_a=True), a @ b)
    check(run("matmul", a, b.T, transpose_b=True), a @ b)
    check(run("matmul", a.T, b.T, transpose_a=True, transpose_b=True), a @ b)


def test_batched_matmul_broadcasts(rng: np.random.Generator) -> None:
    a, b = sample(rng, "f64", (2, 1, 3, 4)), sample(rng, "f64", (5, 4, 2))
    check(run("matmul", a, b), np.matmul(a, b))
    check(run("matmul", a, np.swapaxes(b, -1, -2), transpose_b=True), np.matmul(a, b))
    assert infer("matmul", "f32[2,1,3,4]", "f32[5,4,2]") == "f32[2,5,3,2]"
    assert infer("matmul", "f32[?,3]", "f32[3,?]") == "f32[?,?]"
    assert infer("matmul", "f32[?,?,3]", "f32[1,?,5]") == "f32[?,?,5]"
    check(run("matmul", a[0, 0], b[0], arg_shapes=[(None, None), (None, 2)]), a[0, 0] @ b[0])
    check(run("matmul", np.zeros((2, 0)), np.zeros((0, 3))), np.zeros((2, 3)))  # empty inner dim sums to 0


def test_matmul_errors() -> None:
    with raises(FlowcTypeError, "matmul", "inner dims differ", "a is f32[4,3]", "b is f32[5,2]", "3 != 5"):
        infer("matmul", "f32[4,3]", "f32[5,2]")
    with raises(FlowcTypeError, "inner dims differ", "a is f32[4,3] transposed"):
        infer("matmul", "f32[4,3]", "f32[3,2]", transpose_a=True)
    with raises(FlowcTypeError, "rank >= 2", "f32[3]"):
        infer("matmul", "f32[3]", "f32[3,2]")
    with raises(FlowcTypeError, "one dtype", "f32[2,2]", "f64[2,2]"):
        infer("matmul", "f32[2,2]", "f64[2,2]")
    with raises(FlowcTypeError, "batch dims do not broadcast", "f32[2,3,3]", "f32[4,3,3]"):
        infer("matmul", "f32[2,3,3]", "f32[4,3,3]")
    with raises(FlowcTypeError, "matmul", "bool"):
        infer("matmul", "bool[2,2]", "bool[2,2]")


# -- random -----------------------------------------------------------------------

KNOWN_ANSWERS = [  # Philox4x32-10 test vectors of Random123 (kat_vectors): counter, key, output
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def test_philox_known_answers() -> None:
    counters = np.array([counter for counter, _, _ in KNOWN_ANSWERS], np.uint32).T
    for i, (_, key, output) in enumerate(KNOWN_ANSWERS):
        words = philox.philox4x32(counters[:, i : i + 1], key)
        np.testing.assert_array_equal(words[:, 0], np.array(output, np.uint32))


def draw(name: str, step: int, **attrs: Any) -> np.ndarray:
    return run(name, np.int64(step), **{"seed": 7, "shape": (1000,), **attrs})


def test_random_stream_layout() -> None:
    """The element-to-word mapping of Note [random streams], rebuilt from Philox itself."""
    seed, step = 0x123456789ABCDEF0, (3 << 32) + 7
    j = np.arange(5, dtype=np.uint64)
    counter = np.stack([j & 0xFFFFFFFF, j >> 32, np.full_like(j, step & 0xFFFFFFFF), np.full_like(j, step >> 32)])
    words = philox.philox4x32(counter, (seed & 0xFFFFFFFF, seed >> 32)).T.reshape(-1).astype(np.uint64)
    u32 = (words[:10] >> 8) * 2.0**-24
    check(draw("random_uniform", step, seed=seed, shape=(2, 5)), u32.astype(np.float32).reshape(2, 5))
    u64 = ((words[0:20:2] >> 5) * 2.0**26 + (words[1:20:2] >> 6)) * 2.0**-53
    check(draw("random_uniform", step, seed=seed, shape=(10,), dtype="float64", minval=-1, maxval=3), -1 + 4 * u64)
    r, angle = np.sqrt(-2 * np.log(1 - u64[0:6:2])), 2 * np.pi * u64[1:6:2]
    normal = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1).reshape(-1)[:5]
    check(draw("random_normal", step, seed=seed, shape=(5,), dtype="float64", mean=1, stddev=2), 1 + 2 * normal)


@pytest.mark.parametrize("name", ["random_uniform", "random_normal"])
def test_random_is_a_function_of_seed_and_step(name: str) -> None:
    first = draw(name, 1)
    np.testing.assert_array_equal(draw(name, 1), first)
    assert not np.array_equal(draw(name, 2), first)
    assert not np.array_equal(draw(name, 1, seed=8), first)
    assert not np.array_equal(draw(name, 1 << 32), first)  # the step's high word counts too
    assert len(np.unique(first)) > 990
    assert not registry.get(name).differentiable


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_uniform_statistics(dtype: str) -> None:
    x = draw("random_uniform", 3, shape=(100, 1000), dtype=dtype, minval=-2, maxval=3)
    assert x.dtype == np.dtype(dtype) and x.shape == (100, 1000)
    assert x.min() >= -2 and x.max() < 3
    assert abs(x.mean() - 0.5) < 0.03  # 6 standard errors: 5 / sqrt(12 * 1e5)
    assert abs(x.std() - 5 / np.sqrt(12)) < 0.01
    assert np.histogram(x, bins=10, range=(-2, 3))[0].min() > 9500  # flat: each tenth holds ~10000


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_normal_statistics(dtype: str) -> None:
    x = draw("random_normal", 3, shape=(100001,), dtype=dtype, mean=1, stddev=2)  # odd: half a pair
    assert x.dtype == np.dtype(dtype) and np.isfinite(x).all()
    assert abs(x.mean() - 1) < 0.04  # 6 standard errors: 2 / sqrt(1e5)
    assert abs(x.std() - 2) < 0.03
    assert abs(np.mean(np.abs(x - 1) < 2) - 0.6827) < 0.01  # within one sigma


def test_random_type_rule() -> None:
    assert infer("random_normal", "i64[]", shape=(2, 3), seed=1) == "f32[2,3]"
    assert infer("random_uniform", "i64[]", shape=(), seed=1, dtype="float64") == "f64[]"
    check(run("random_uniform", np.int64(0), shape=(0, 3), seed=1), np.zeros((0, 3), np.float32))
    with raises(FlowcTypeError, "random_uniform", "step must be i64[]", "i32[]"):
        infer("random_uniform", "i32[]", shape=(2,), seed=1)
    with raises(FlowcTypeError, "float32 or float64", "int32"):
        infer("random_normal", "i64[]", shape=(2,), seed=1, dtype="int32")
    with raises(FlowcTypeError, "negative dim"):
        infer("random_normal", "i64[]", shape=(-1,), seed=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_uniform_like_is_random_uniform_in_its_operands_shape(dtype: str) -> None:
    like = np.zeros((3, 7), np.int32)
    got = run("random_uniform_like", np.int64(5), like, seed=7, dtype=dtype, minval=-1.0, maxval=2.0)
    check(got, draw("random_uniform", 5, shape=(3, 7), dtype=dtype, minval=-1.0, maxval=2.0))
    assert infer("random_uniform_like", "i64[]", "f32[?,3]", seed=1, dtype="float64") == "f64[?,3]"
    check(run("random_uniform_like", np.int64(0), np.zeros((0, 2)), seed=1), np.zeros((0, 2), np.float32))
    with raises(FlowcTypeError, "random_uniform_like", "step must be i64[]"):
        infer("random_uniform_like", "i32[]", "f32[2]", seed=1)
    with raises(FlowcTypeError, "float32 or float64", "int32"):
        infer("random_uniform_like", "i64[]", "f32[2]", seed=1, dtype="int32")


# -- every op is covered ------------------------------------------------------------

# Structure, control flow, kernels and autodiff's ops have their own tests (test_autodiff.py for the last).
NOT_HERE = {"constant", "return", "yield", "cond", "while", "call", "fusion", "gradients", "stop_gradient",
            "relax_shape",  # tests/frontend/test_control_flow_frontend.py
            "read_row", "write_row", "fill_rows",  # tests/codegen/test_rows.py
            "stack_push", "stack_read",  # tests/ir/test_stack_ops.py
            "extract_patches", "fold_patches",  # tests/codegen/test_patches.py
            "conv2d", "conv2d_backprop_filter",  # tests/codegen/test_direct_conv.py
            "shape_of", "reshape_dims", "broadcast_dims", "iota", "gather_nd", "where_indices", "data_dim",
            "pad",  # test_shape_ops_native.py
            "scatter_add",  # tests/ir/test_scatter_add.py
            "cumsum", "cumprod", "top_k",  # tests/ir/test_scan_ops.py

            "check",  # tests/frontend/test_debugging.py
            "print",  # tests/frontend/test_print_in_control_flow.py
            "send", "recv",  # tests/ir/test_transfer_ops.py
            # tests/runtime/test_distribute.py (one rank here, 2 there)
            "all_reduce", "all_reduce_start", "all_reduce_done", "broadcast"}
TESTED_BY = {
    "where": test_where_broadcasts_three_ways,
    "cast": test_cast_to_every_dtype,
    **{name: test_reductions_match_numpy for name in REDUCTIONS},
    "argmax": test_arg_reductions_match_numpy,
    "argmin": test_arg_reductions_match_numpy,
    "reshape": test_reshape,
    "transpose": test_transpose,
    "concat": test_concat,
    "expand_dims": test_expand_dims_and_squeeze,
    "squeeze": test_expand_dims_and_squeeze,
    "ensure_shape": test_ensure_shape,
    "broadcast_to": test_broadcast_to,
    "slice": test_slice_matches_numpy_indexing,
    "gather": test_gather,
    "one_hot": test_one_hot,
    "matmul": test_matmul_matches_numpy,
    "random_uniform": test_random_uniform_statistics,
    "random_normal": test_random_normal_statistics,
    "random_uniform_like": test_random_uniform_like_is_random_uniform_in_its_operands_shape,
}


def test_every_registered_op_is_tested() -> None:
    tested = set(UNARY) | set(BINARY) | set(TESTED_BY)
    assert set(registry.OPS) - NOT_HERE == tested
