"""Shapes as run-time tensors: fc.shape, size, rank, and the ops that take a shape (reshape, fill,
zeros, ones, broadcast_to, zeros_like, ones_like) given one whose dims are known only at run time.

A shape whose entries are ints, or dims taken from fc.shape(x) (indexed, sliced, stacked or
concatenated), is traced back here to the dims it names; reshape_dims and broadcast_dims then
take those tensors as operands and read the dims at run time (Note [dims from operands] in
ir/ops/dims.py). A shape computed from data (fc.shape(x)[0] * 2, a placeholder) is refused
with a FlowcTypeError: compiled code sizes every buffer from the fed shapes.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import numpy as np

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import INTS, DType, as_dtype, float32, int32

from . import array_ops
from .graph import Tensor
from .math_ops import apply, constant, convert_to_tensor
from .sources import user_location
from .tensor_shape import plain_dim

# One entry of a shape: a static size (-1: inferred by reshape), or dim `axis` of a tensor.
Entry = Union[int, tuple[Tensor, int]]


def shape(input: Any, name: str | None = None, out_type: DType | str = int32) -> Tensor:
    """The dims of `input` as an int32 (or int64) vector; a None dim is read at run time."""
    x = convert_to_tensor(input)
    dtype = as_dtype(out_type)
    if x.type.is_static and not x.has_unknown_rank:  # Note [placeholders of unknown rank] in unknown_rank.py
        return constant(np.array(x.type.shape, dtype.np), name=name or "Shape")
    return apply("shape_of", (x,), name=name or "Shape", dtype=dtype)


def size(input: Any, name: str | None = None, out_type: DType | str = int32) -> Tensor:
    """The number of elements of `input` as a scalar; read at run time where a dim is None."""
    x = convert_to_tensor(input)
    dtype = as_dtype(out_type)
    if x.has_unknown_rank:  # the product of however many dims it is fed (unknown_rank.py)
        return apply("reduce_prod", (shape(x, out_type=dtype),), name=name or "Size", axes=(0,), keepdims=False)
    if x.type.is_static:
        return constant(np.array(x.type.size, dtype.np), name=name or "Size")
    dims = shape(x, out_type=dtype)
    total = dims[0]
    for axis in range(1, x.type.rank):
        total = total * dims[axis]
    return total


def rank(input: Any, name: str | None = None) -> Tensor:
    """The rank of `input`: known when the graph is built, except for a placeholder made without a shape
    and what follows from it, whose rank is read when the graph runs (unknown_rank.py)."""
    x = convert_to_tensor(input)
    if x.has_unknown_rank:
        return size(shape(x), name=name or "Rank")
    return constant(np.int32(x.type.rank), name=name or "Rank")


def reshape(tensor: Any, shape: Any, name: str | None = None) -> Tensor:
    """The same elements in a new shape; one dim may be -1 (inferred), dims may come from fc.shape."""
    x = convert_to_tensor(tensor)
    entries = shape_entries(shape, "reshape")
    if all(isinstance(e, int) for e in entries):
        return array_ops.reshape(x, entries, name=name)
    return _from_dims("reshape_dims", x, entries, name or "Reshape")


def broadcast_to(input: Any, shape: Any, name: str | None = None) -> Tensor:
    """`input` broadcast to `shape` (numpy rules); dims may come from fc.shape."""
    x = convert_to_tensor(input)
    entries = shape_entries(shape, "broadcast_to")
    if all(isinstance(e, int) for e in entries):
        return array_ops.broadcast_to(x, entries, name=name)
    return _from_dims("broadcast_dims", x, entries, name or "BroadcastTo")


def fill(dims: Any, value: Any, dtype: DType | str | None = None, name: str | None = None) -> Tensor:
    """A tensor of shape `dims` holding `value` everywhere; dims may come from fc.shape."""
    entries = shape_entries(dims, "fill")
    if all(isinstance(e, int) for e in entries):
        return array_ops.fill(entries, value, dtype, name=name)
    scalar = constant(value, dtype=dtype, name=f"{name or 'fill'}/value")
    return _from_dims("broadcast_dims", scalar, entries, name or "fill")


def zeros(shape: Any, dtype: DType | str = float32, name: str | None = None) -> Tensor:
    """A tensor of zeros; dims may come from fc.shape."""
    return fill(shape, 0, dtype, name=name or "zeros")


def ones(shape: Any, dtype: DType | str = float32, name: str | None = None) -> Tensor:
    """A tensor of ones; dims may come from fc.shape."""
    return fill(shape, 1, dtype, name=name or "ones")


def zeros_like(tensor: Any, dtype: DType | str | None = None, name: str | None = None) -> Tensor:
    """Zeros of `tensor`'s shape (None dims read at run time) and dtype (or `dtype`)."""
    x = convert_to_tensor(tensor)
    if x.has_unknown_rank:
        return _filled_like(x, 0, dtype, name or "zeros_like")
    return fill(_own_dims(x), 0, dtype or x.dtype, name=name or "zeros_like")


def ones_like(tensor: Any, dtype: DType | str | None = None, name: str | None = None) -> Tensor:
    """Ones of `tensor`'s shape (None dims read at run time) and dtype (or `dtype`)."""
    x = convert_to_tensor(tensor)
    if x.has_unknown_rank:
        return _filled_like(x, 1, dtype, name or "ones_like")
    return fill(_own_dims(x), 1, dtype or x.dtype, name=name or "ones_like")


def _filled_like(x: Tensor, value: Any, dtype: DType | str | None, name: str) -> Tensor:
    """`value` in the shape of x, whose rank is known only when the graph runs (unknown_rank.py): a `where`
    that never picks x, broadcast to x's shape whatever rank it is fed."""
    dtype = as_dtype(dtype) if dtype is not None else x.dtype
    shaped = x if dtype == x.dtype else apply("cast", (x,), dtype=dtype)
    never = constant(False)
    return apply("where", (never, shaped, constant(value, dtype=dtype)), name=name)


def _own_dims(x: Tensor) -> list[Entry]:
    return [(x, axis) if d is None else d for axis, d in enumerate(x.type.shape)]


def _from_dims(kind: str, x: Tensor, entries: list[Entry], name: str) -> Tensor:
    """reshape_dims or broadcast_dims of x, the tensors the entries name as operands after x."""
    sources: list[Tensor] = []
    sizes, source, source_axis = [], [], []
    for entry in entries:
        if isinstance(entry, int):
            sizes.append(entry), source.append(0), source_axis.append(0)
            continue
        tensor, axis = entry
        if tensor.type.shape[axis] is not None:  # known after all
            sizes.append(tensor.type.shape[axis]), source.append(0), source_axis.append(0)
            continue
        if not any(t is tensor for t in sources):
            sources.append(tensor)
        index = next(i for i, t in enumerate(sources) if t is tensor)
        sizes.append(0), source.append(index + 1), source_axis.append(axis)
    return apply(kind, (x, *sources), name=name, shape=tuple(sizes), source=tuple(source),
                 source_axis=tuple(source_axis))


# -- tracing a shape back to dims ------------------------------------------------------------


def shape_entries(shape: Any, op: str) -> list[Entry]:
    """The entries of a shape argument: a list of ints, None (-1) and scalar dims of fc.shape,
    or a vector tensor built from fc.shape and constants."""
    if isinstance(shape, Tensor) or hasattr(shape, "_as_tensor"):
        tensor = convert_to_tensor(shape)
        entries = _vector_entries(tensor) if tensor.type.rank == 1 else None
        if entries is None:
            raise _untraceable(op, tensor)
        return entries
    if isinstance(shape, np.ndarray):
        shape = shape.tolist()
    if isinstance(shape, (int, np.integer)):
        shape = [shape]
    result: list[Entry] = []
    for item in map(plain_dim, shape):
        if item is None:
            result.append(-1)
        elif isinstance(item, (int, np.integer)):
            result.append(int(item))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Tensor):
            result.append(item)  # an entry traced already (zeros_like, pad)
        else:
            tensor = convert_to_tensor(item)
            entry = scalar_entry(tensor) if tensor.type.rank == 0 else None
            if entry is None:
                raise _untraceable(op, tensor)
            result.append(entry)
    return result


def _untraceable(op: str, tensor: Tensor) -> FlowcTypeError:
    return FlowcTypeError(
        f"the shape {tensor.name!r} ({tensor.type}) is computed from data at run time; a shape must hold ints, "
        "None, and entries of fc.shape(x) (indexed, sliced, stacked or concatenated), which compiled code "
        "reads from the fed shapes", op=op, where=user_location())


def _vector_entries(tensor: Tensor) -> list[Entry] | None:
    """The entries of a rank-1 int tensor built from fc.shape and constants, else None."""
    op = tensor.op
    if tensor.dtype not in INTS:
        return None
    if op.type == "shape_of":
        return _own_dims(op.inputs[0])
    if op.type == "Const":
        return [int(v) for v in np.asarray(op.attrs["value"]).reshape(-1)]
    if op.type == "slice" and not op.attrs.get("squeeze_dims"):
        entries = _vector_entries(op.inputs[0])
        if entries is None:
            return None
        return entries[slice(op.attrs["begin"][0], op.attrs["end"][0], op.attrs["strides"][0])]
    if op.type == "concat":
        parts = [_vector_entries(t) for t in op.inputs]
        return None if any(p is None for p in parts) else [e for p in parts for e in p]  # type: ignore[union-attr]
    if op.type in ("expand_dims", "reshape") and op.inputs[0].type.rank == 0:
        entry = scalar_entry(op.inputs[0])
        return None if entry is None else [entry]
    if op.type in ("cast", "identity"):
        return _vector_entries(op.inputs[0])
    return None


def scalar_entry(tensor: Tensor) -> Entry | None:
    """The entry a scalar int tensor names: fc.shape(x)[i] or a constant, else None."""
    op = tensor.op
    if tensor.dtype not in INTS:
        return None
    if op.type == "Const":
        return int(np.asarray(op.attrs["value"]))
    if op.type == "slice" and op.attrs.get("squeeze_dims") == (0,):
        entries = _vector_entries(op.inputs[0])
        index = op.attrs["begin"][0]
        if entries is None or not -len(entries) <= index < len(entries):
            return None
        return entries[index]
    if op.type in ("cast", "identity"):
        return scalar_entry(op.inputs[0])
    if op.type == "reshape" and op.inputs[0].type.size == 1:
        vector = _vector_entries(op.inputs[0])
        return None if vector is None else vector[0]
    return None


def static_dims(x: Tensor, op: str, axes: Sequence[int] | None = None) -> tuple[int, ...]:
    """x's dims (those on `axes`), which `op` needs known when the graph is built."""
    shape = x.type.shape
    wanted = range(len(shape)) if axes is None else axes
    if any(shape[a] is None for a in wanted):
        raise FlowcTypeError(f"needs the sizes of {x.name!r} ({x.type}) on axes {list(wanted)} when the graph is "
                             "built", op=op, where=user_location())
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


def product(dims: Sequence[int]) -> int:
    return math.prod(dims)
