"""Array ops of the public API: placeholders, filled tensors, shape and indexing ops."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from flowc.ir import TensorType
from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import DType, as_dtype, float32

from .graph import PLACEHOLDER, Tensor, get_default_graph
from .math_ops import apply, constant, convert_to_tensor
from .sources import user_location
from .tensor_shape import plain_dim


def placeholder(dtype: DType | str, shape: Sequence[int | None] | None = None, name: str | None = None) -> Tensor:
    """A tensor that every run must feed. `None` dims take any size at run time; without a shape it
    takes arrays of any rank, each run typed for the ranks it is fed (Note [placeholders of unknown
    rank] in unknown_rank.py).

    >>> import flowc as fc
    >>> x = fc.placeholder(fc.float32, shape=[None, 64], name="x")
    >>> x.name, x.shape
    ('x:0', (None, 64))
    """
    unknown_rank = shape is None or getattr(shape, "ndims", 0) is None
    known = () if unknown_rank else shape
    dims = tuple(None if d is None or d == -1 else int(d) for d in map(plain_dim, known))  # type: ignore[union-attr]
    out_type = TensorType(as_dtype(dtype), dims)
    attrs = {"dtype": out_type.dtype, "shape": out_type.shape}
    if unknown_rank:
        attrs["unknown_rank"] = True  # Note [placeholders of unknown rank] in unknown_rank.py
    return get_default_graph().create_op(PLACEHOLDER, (), attrs, name=name or PLACEHOLDER,
                                         output_types=[out_type]).outputs[0]


def fill(shape: Sequence[int], value: Any, dtype: DType | str | None = None, name: str | None = None) -> Tensor:
    """A tensor of `shape` holding `value` everywhere; stored as one scalar, broadcast."""
    shape = tuple(int(d) for d in shape)
    scalar = constant(value, dtype=dtype, name=f"{name or 'fill'}/value")
    if shape == ():
        return scalar
    return apply("broadcast_to", (scalar,), name=name or "fill", shape=shape)


def zeros(shape: Sequence[int], dtype: DType | str = float32, name: str | None = None) -> Tensor:
    """A tensor of zeros.

    >>> import flowc as fc
    >>> fc.zeros([2, 3]).shape
    (2, 3)
    """
    return fill(shape, 0, dtype, name=name or "zeros")


def ones(shape: Sequence[int], dtype: DType | str = float32, name: str | None = None) -> Tensor:
    """A tensor of ones."""
    return fill(shape, 1, dtype, name=name or "ones")


def _static_like(tensor: Any, what: str) -> Tensor:
    x = convert_to_tensor(tensor)
    if not x.type.is_static:
        raise FlowcTypeError(f"{what} needs a static shape, {x.name!r} is {x.type}", where=user_location())
    return x


def zeros_like(tensor: Any, dtype: DType | str | None = None, name: str | None = None) -> Tensor:
    x = _static_like(tensor, "zeros_like")
    return zeros(x.type.shape, dtype or x.dtype, name=name)


def ones_like(tensor: Any, dtype: DType | str | None = None, name: str | None = None) -> Tensor:
    x = _static_like(tensor, "ones_like")
    return ones(x.type.shape, dtype or x.dtype, name=name)


def reshape(tensor: Any, shape: Sequence[int | None], name: str | None = None) -> Tensor:
    """The same elements in a new shape; one dim may be -1 (inferred)."""
    dims = tuple(-1 if d is None else int(d) for d in map(plain_dim, shape))
    return apply("reshape", (convert_to_tensor(tensor),), name=name or "Reshape", shape=dims)


def transpose(a: Any, perm: Sequence[int] | None = None, name: str | None = None) -> Tensor:
    """Axes permuted by `perm` (reversed when None)."""
    x = convert_to_tensor(a)
    rules = {"perm": "reversed_axes"} if perm is None else None  # Note [placeholders of unknown rank]
    perm = tuple(range(x.type.rank))[::-1] if perm is None else tuple(int(p) for p in perm)
    return apply("transpose", (x,), name=name or "transpose", rank_rules=rules, perm=perm)


def concat(values: Sequence[Any], axis: int, name: str | None = None) -> Tensor:
    """Tensors joined along `axis`."""
    tensors = [convert_to_tensor(v) for v in values]
    if not tensors:
        raise GraphError("concat of no tensors", op="concat", where=user_location())
    return apply("concat", tensors, name=name or "concat", axis=int(axis))


def stack(values: Sequence[Any], axis: int = 0, name: str | None = None) -> Tensor:
    """Tensors of one shape stacked along a new axis."""
    tensors = [convert_to_tensor(v) for v in values]
    if not tensors:
        raise GraphError("stack of no tensors", op="stack", where=user_location())
    rank = tensors[0].type.rank
    if not -rank - 1 <= axis <= rank:
        raise FlowcTypeError(f"axis {axis} is out of range for stacking rank-{rank} tensors", op="stack",
                             where=user_location())
    return concat([expand_dims(t, axis) for t in tensors], axis=axis, name=name or "stack")


def expand_dims(input: Any, axis: int, name: str | None = None) -> Tensor:
    """A new axis of size 1 inserted at `axis`."""
    return apply("expand_dims", (convert_to_tensor(input),), name=name or "ExpandDims", axis=int(axis))


def squeeze(input: Any, axis: int | Sequence[int] | None = None, name: str | None = None) -> Tensor:
    """Axes of size 1 removed: those in `axis`, or every static size-1 axis when None."""
    x = convert_to_tensor(input)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.type.shape) if d == 1)
    elif isinstance(axis, (int, np.integer)):
        axes = (int(axis),)
    else:
        axes = tuple(int(a) for a in axis)
    if not axes:
        return x
    return apply("squeeze", (x,), name=name or "Squeeze", axes=axes)


def ensure_shape(x: Any, shape: Sequence[int | None], name: str | None = None) -> Tensor:
    """`x`, whose dims are checked against `shape` (None: any size) and known from then on.

    >>> import flowc as fc
    >>> fc.ensure_shape(fc.placeholder(fc.float32, [None, 3]), [2, None]).shape
    (2, 3)
    """
    x = convert_to_tensor(x)
    dims = tuple(-1 if d is None else int(d) for d in map(plain_dim, shape))
    return apply("ensure_shape", (x,), name=name or "EnsureShape", shape=dims)


def broadcast_to(input: Any, shape: Sequence[int], name: str | None = None) -> Tensor:
    """`input` broadcast to `shape` (numpy rules)."""
    return apply("broadcast_to", (convert_to_tensor(input),), name=name or "BroadcastTo",
                 shape=tuple(int(d) for d in shape))


def one_hot(indices: Any, depth: int, on_value: float = 1.0, off_value: float = 0.0, axis: int = -1,
            dtype: DType | str = float32, name: str | None = None) -> Tensor:
    """A new axis of size `depth` holding on_value at each index, off_value elsewhere.

    Indices outside [0, depth) give a row of off_value, as in TensorFlow.
    """
    return apply("one_hot", (convert_to_tensor(indices),), name=name or "one_hot", depth=int(depth),
                 on_value=float(on_value), off_value=float(off_value), axis=int(axis), dtype=as_dtype(dtype))


def gather(params: Any, indices: Any, axis: int = 0, name: str | None = None) -> Tensor:
    """Slices of `params` along `axis` picked by `indices` (in range, checked at run time)."""
    return apply("gather", (convert_to_tensor(params), convert_to_tensor(indices)), name=name or "Gather",
                 axis=int(axis))


def strided_slice(tensor: Any, index: Any, name: str | None = None) -> Tensor:
    """numpy basic indexing: ints, slices, `...` and `None` (a new axis)."""
    x = convert_to_tensor(tensor)
    items = list(index) if isinstance(index, tuple) else [index]
    rules = _unknown_rank_rules(x, items)
    indexed = sum(1 for item in items if item is not None and item is not Ellipsis)
    items = _expand_ellipsis(items, max(x.type.rank, indexed) if rules else x.type.rank)
    begin, end, strides, squeeze_dims, new_axes = [], [], [], [], []
    out_axis = 0
    dim = 0
    for item in items:
        if item is None:
            new_axes.append(out_axis)
            out_axis += 1
            continue
        if isinstance(item, (int, np.integer)):
            i = int(item)
            begin.append(i), end.append(None if i == -1 else i + 1), strides.append(1)
            squeeze_dims.append(dim)
        elif isinstance(item, slice):
            step = 1 if item.step is None else int(item.step)
            start = item.start if item.start is not None else (0 if step > 0 else -1)
            begin.append(int(start)), end.append(None if item.stop is None else int(item.stop)), strides.append(step)
            out_axis += 1
        else:
            raise FlowcTypeError(f"index {item!r} is not an int, slice, ... or None; use fc.gather for "
                                 "tensor indices", op="slice", where=user_location())
        dim += 1
    out = x
    if any((b, e, s) != (0, None, 1) for b, e, s in zip(begin, end, strides)) or squeeze_dims:
        out = apply("slice", (x,), name=name or "strided_slice", rank_rules=rules, begin=tuple(begin), end=tuple(end),
                    strides=tuple(strides), squeeze_dims=tuple(squeeze_dims))
    for axis in new_axes:
        out = expand_dims(out, axis)
    return out


def _unknown_rank_rules(x: Tensor, items: list[Any]) -> dict[str, str] | None:
    """For x of unknown rank (Note [placeholders of unknown rank] in unknown_rank.py): the rank rules that
    index its leading axes and keep the rest whole, whatever rank it is fed; None for x of known rank."""
    if not x.has_unknown_rank:
        return None
    if Ellipsis in items and any(item is not None for item in items[items.index(Ellipsis) + 1:]):
        raise FlowcTypeError(f"{x.name!r} has unknown rank (a placeholder made without a shape, or an op on one), "
                             "so the axes after '...' are not known; give the placeholder a shape",
                             op="slice", where=user_location())
    leading = sum(1 for item in items if item is not None and item is not Ellipsis)
    return {key: f"slice_{key}:{leading}" for key in ("begin", "end", "strides")}


def _expand_ellipsis(items: list[Any], rank: int) -> list[Any]:
    indexed = sum(1 for item in items if item is not None and item is not Ellipsis)
    if sum(1 for item in items if item is Ellipsis) > 1:
        raise FlowcTypeError("an index can only have one '...'", op="slice", where=user_location())
    if indexed > rank:
        raise FlowcTypeError(f"too many indices ({indexed}) for a tensor of rank {rank}", op="slice",
                             where=user_location())
    fill = [slice(None)] * (rank - indexed)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        return items[:at] + fill + items[at + 1:]
    return items + fill
