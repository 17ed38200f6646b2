"""Math ops of the public API: elementwise, comparisons, reductions, matmul.

Each function adds one graph op whose kind is the IR op of the same meaning;
the IR type rule checks the operands where the user calls the function.
Python numbers take the dtype of the tensor they meet (`x * 2` stays f32):
there is no implicit promotion between tensors, as in TensorFlow.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import DType, as_dtype, int64

from .graph import Tensor, get_default_graph
from .sources import user_location


def convert_to_tensor(value: Any, dtype: DType | str | None = None, name: str | None = None) -> Tensor:
    """A Tensor from a Tensor, a Variable (its value), or a Python/numpy value (a constant)."""
    read = getattr(value, "_as_tensor", None)  # Variable
    if read is not None:
        value = read()
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype != as_dtype(dtype):
            raise FlowcTypeError(f"expected a {as_dtype(dtype).name} tensor, got {value.name!r} of {value.type}",
                                 where=user_location())
        return value
    return constant(value, dtype=dtype, name=name)


def constant(value: Any, dtype: DType | str | None = None, shape: Sequence[int] | None = None,
             name: str | None = None) -> Tensor:
    """A tensor with a fixed value.

    >>> import flowc as fc
    >>> fc.constant([1, 2]).dtype
    fc.int32
    """
    array = _as_array(value, as_dtype(dtype) if dtype is not None else None)
    if shape is not None:
        array = np.broadcast_to(array, tuple(shape)) if array.size == 1 else array.reshape(shape)
    op = get_default_graph().create_op("Const", (), {"value": array}, name=name or "Const",
                                       output_types=[_type_of(array)])
    return op.outputs[0]


def _as_array(value: Any, dtype: DType | None) -> np.ndarray:
    array = np.asarray(value)
    if dtype is None:
        # Python floats are f32 and ints i32, as in TensorFlow; numpy arrays keep their dtype.
        if not isinstance(value, np.ndarray) and not isinstance(value, np.generic):
            if array.dtype.kind == "f":
                return array.astype(np.float32)
            if array.dtype.kind in "iu":
                return array.astype(np.int32)
        as_dtype(array.dtype)  # rejects dtypes flowc does not have
        return array
    if array.dtype.kind == "f" and dtype.kind in ("int", "bool") and not np.all(np.isfinite(array) & (array == np.round(array))):
        raise FlowcTypeError(f"cannot make a {dtype.name} constant from non-integer value {value!r}",
                             where=user_location())
    if dtype.is_int and array.dtype.kind in "iuf" and array.size and not _fits(array, dtype):
        info = np.iinfo(dtype.np)  # astype would wrap 300 to 44 in uint8 without a word
        raise FlowcTypeError(f"cannot make a {dtype.name} constant from {value!r}: {dtype.name} holds "
                             f"{info.min} to {info.max}", where=user_location())
    return array.astype(dtype.np)


def _fits(array: np.ndarray, dtype: DType) -> bool:
    info = np.iinfo(dtype.np)
    return bool(info.min <= array.min() and array.max() <= info.max)


def _type_of(array: np.ndarray) -> Any:
    from flowc.ir import TensorType

    return TensorType(as_dtype(array.dtype), array.shape)


def apply(kind: str, inputs: Sequence[Tensor], name: str | None = None, rank_rules: dict[str, str] | None = None,
          **attrs: Any) -> Tensor:
    """Add a graph op of IR kind `kind` and return its single output. `rank_rules`: the attributes that
    follow from the inputs' ranks (Note [placeholders of unknown rank] in unknown_rank.py)."""
    return get_default_graph().create_op(kind, inputs, attrs, name=name, rank_rules=rank_rules).outputs[0]


def _operands(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    """Both as tensors; a Python value takes the dtype of the tensor beside it."""
    x_is = isinstance(x, Tensor) or hasattr(x, "_as_tensor")
    y_is = isinstance(y, Tensor) or hasattr(y, "_as_tensor")
    if x_is and not y_is:
        x = convert_to_tensor(x)
        return x, convert_to_tensor(y, dtype=x.dtype)
    if y_is and not x_is:
        y = convert_to_tensor(y)
        return convert_to_tensor(x, dtype=y.dtype), y
    return convert_to_tensor(x), convert_to_tensor(y)


def _binary(kind: str, default_name: str):  # type: ignore[no-untyped-def]
    def build(x: Any, y: Any, name: str | None = None) -> Tensor:
        a, b = _operands(x, y)
        return apply(kind, (a, b), name=name or default_name)

    build.__name__ = default_name
    build.__doc__ = f"Elementwise `{kind}` of x and y, with numpy broadcasting."
    return build


def _unary(kind: str, default_name: str):  # type: ignore[no-untyped-def]
    def build(x: Any, name: str | None = None) -> Tensor:
        return apply(kind, (convert_to_tensor(x),), name=name or default_name)

    build.__name__ = default_name
    build.__doc__ = f"Elementwise `{kind}` of x."
    return build


add = _binary("add", "add")
subtract = _binary("sub", "sub")
multiply = _binary("mul", "mul")
maximum = _binary("maximum", "Maximum")
minimum = _binary("minimum", "Minimum")
pow = _binary("pow", "Pow")
equal = _binary("equal", "Equal")
not_equal = _binary("not_equal", "NotEqual")
less = _binary("less", "Less")
less_equal = _binary("less_equal", "LessEqual")
greater = _binary("greater", "Greater")
greater_equal = _binary("greater_equal", "GreaterEqual")
logical_and = _binary("logical_and", "LogicalAnd")
logical_or = _binary("logical_or", "LogicalOr")

negative = _unary("neg", "Neg")
abs = _unary("abs", "Abs")
square = _unary("square", "Square")
exp = _unary("exp", "Exp")
log = _unary("log", "Log")
tanh = _unary("tanh", "Tanh")
sigmoid = _unary("sigmoid", "Sigmoid")
relu = _unary("relu", "Relu")
sqrt = _unary("sqrt", "Sqrt")
rsqrt = _unary("rsqrt", "Rsqrt")
logical_not = _unary("logical_not", "LogicalNot")
identity = _unary("identity", "Identity")


def divide(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y, as Python 3's `/` on TF1 tensors (truediv): integers are divided as floats wide enough to
    hold each of their values exactly, float32 for int8, int16, uint8 and uint16, float64 for wider
    ones; fc.div and `//` keep TF1's integer floor division."""
    a, b = _operands(x, y)
    if a.dtype.is_bool:
        raise FlowcTypeError(f"x / y needs numbers, got {a.type} and {b.type}; cast them to a number first",
                             op="div", where=user_location())
    if not a.dtype.is_float:
        exact = as_dtype("float32" if a.dtype.itemsize <= 2 else "float64")
        a, b = cast(a, exact), cast(b, exact)
    return apply("div", (a, b), name=name or "truediv")


def where(condition: Any, x: Any, y: Any, name: str | None = None) -> Tensor:
    """x where condition is true, else y; the three broadcast together."""
    a, b = _operands(x, y)
    return apply("where", (convert_to_tensor(condition), a, b), name=name or "Where")


def cast(x: Any, dtype: DType | str, name: str | None = None) -> Tensor:
    """x converted to `dtype` (float to int truncates toward zero)."""
    return apply("cast", (convert_to_tensor(x),), name=name or "Cast", dtype=as_dtype(dtype))


def _axes(x: Tensor, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.type.rank))
    if isinstance(axis, (int, np.integer)):
        return (int(axis),)
    return tuple(int(a) for a in axis)


ALL_AXES = {"axes": "all_axes"}  # the rank rule of a reduction over every axis (unknown_rank.py)


def _reduction(kind: str, default_name: str):  # type: ignore[no-untyped-def]
    def build(input_tensor: Any, axis: int | Sequence[int] | None = None, keepdims: bool | None = None,
              name: str | None = None, reduction_indices: int | Sequence[int] | None = None,
              keep_dims: bool | None = None) -> Tensor:
        # TF1's deprecated spellings: reduction_indices is axis, keep_dims is keepdims.
        axis = _one_of("axis", axis, "reduction_indices", reduction_indices, kind)
        keepdims = bool(_one_of("keepdims", keepdims, "keep_dims", keep_dims, kind))
        x = convert_to_tensor(input_tensor)
        if kind == "reduce_mean" and x.dtype.kind in ("int", "uint"):
            from .reduction_ops import integer_mean  # composed of ops declared after this module's

            return integer_mean(x, axis, keepdims, name)
        rules = ALL_AXES if axis is None else None  # Note [placeholders of unknown rank] in unknown_rank.py
        return apply(kind, (x,), name=name or default_name, rank_rules=rules, axes=_axes(x, axis), keepdims=keepdims)

    build.__name__ = kind
    build.__doc__ = f"`{kind}` over `axis` (all axes when None); reduced axes stay as size 1 with `keepdims`."
    return build


reduce_sum = _reduction("reduce_sum", "Sum")
reduce_mean = _reduction("reduce_mean", "Mean")
reduce_max = _reduction("reduce_max", "Max")
reduce_min = _reduction("reduce_min", "Min")


def _one_of(name: str, value: Any, old_name: str, old_value: Any, op: str) -> Any:
    """The argument given under its name or under TF1's deprecated one; both given is an error."""
    if old_value is None:
        return value
    if value is not None:
        raise FlowcTypeError(f"give {name} or its deprecated spelling {old_name}, not both", op=op,
                             where=user_location())
    return old_value


def argmax(input: Any, axis: int | None = None, name: str | None = None, dimension: int | None = None,
           output_type: DType | str = int64) -> Tensor:
    """Index of the largest value along `axis` (0 when None; `dimension` is its old name), the first
    one on ties; TensorFlow 1's signature."""
    return apply("argmax", (convert_to_tensor(input),), name=name or "ArgMax", axis=_arg_axis(axis, dimension),
                 dtype=as_dtype(output_type))


def argmin(input: Any, axis: int | None = None, name: str | None = None, dimension: int | None = None,
           output_type: DType | str = int64) -> Tensor:
    """Index of the smallest value along `axis` (as argmax)."""
    return apply("argmin", (convert_to_tensor(input),), name=name or "ArgMin", axis=_arg_axis(axis, dimension),
                 dtype=as_dtype(output_type))


def _arg_axis(axis: int | None, dimension: int | None) -> int:
    if axis is not None and dimension is not None:
        raise FlowcTypeError("give axis or dimension, not both", where=user_location())
    chosen = axis if axis is not None else dimension
    return 0 if chosen is None else int(chosen)


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False, name: str | None = None) -> Tensor:
    """Matrix product of the last two axes; leading (batch) axes broadcast.

    >>> import flowc as fc
    >>> fc.matmul(fc.zeros([8, 3]), fc.zeros([3, 4])).shape
    (8, 4)
    """
    x, y = _operands(a, b)
    return apply("matmul", (x, y), name=name or "MatMul", transpose_a=bool(transpose_a),
                 transpose_b=bool(transpose_b))
