"""TF1's slicing and indexing ops, composed from the IR's slices, concats, broadcasts and gathers:
range, tile, pad, slice, split, unstack, reverse, eye, sequence_mask, linspace, gather (with
batch_dims), gather_nd, where (one argument) and boolean_mask; scatter_nd, tensor_scatter_nd_add and the
segment sums are scatter_adds (ir/ops/indexing.py).

Each is written with the ops whose gradients and native kernels exist (a slice's gradient puts
elements back, a concat's slices them apart). The ops of their own (ir/ops/dims.py) are gather_nd,
iota (a range whose length is a dim read at run time) and where_indices, whose result's size is
data: where(cond) counts cond's true elements first and makes the count a dim (data_dim), then
writes the coordinates sized by it (Note [data-dependent sizes] in compiler/data_sized_run.py).
range and linspace whose bounds or count are computed at run time are sized the same way: their
count, a data_dim of it, an iota over that dim. gather with batch_dims is one plain gather of
shifted indices (_batched_gather).
"""

from __future__ import annotations

import builtins
import math
from typing import Any, Sequence

import numpy as np

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import INTS, DType, as_dtype, bool_, float32, float64, int32, int64

from . import array_ops
from .gradients import stop_gradient
from .graph import Tensor, control_dependencies
from .math_ops import (add, apply, cast, constant, convert_to_tensor, divide, equal, greater, greater_equal, identity,
                       less, logical_and, maximum, multiply, negative, not_equal, reduce_sum)
from .math_ops import where as where_selected
from .shape_ops import Entry, broadcast_to, fill, reshape, scalar_entry, shape, static_dims, zeros_like
from .sources import user_location


_builtin_slice, builtin_range = builtins.slice, builtins.range  # this module defines fc.slice and fc.range


def _error(op: str, message: str) -> FlowcTypeError:
    return FlowcTypeError(message, op=op, where=user_location())


def _static_value(value: Any, op: str, what: str) -> np.ndarray:
    """A Python number, numpy value or constant tensor as an array; a run-time tensor is refused."""
    if isinstance(value, Tensor):
        if value.op.type != "Const":
            raise _error(op, f"{what} {value.name!r} is computed at run time; {op} needs it when the graph is built "
                             "(its result's size depends on it)")
        return np.asarray(value.op.attrs["value"])
    return np.asarray(value)


def range(start: Any, limit: Any = None, delta: Any = 1, dtype: DType | str | None = None,
          name: str | None = None) -> Tensor:
    """[start, start + delta, ...) up to `limit`, as Python's range (limit alone counts from 0). Bounds known
    when the graph is built give a constant; a bound computed at run time gives a result whose length,
    ceil((limit - start) / delta) (0 when that is negative), is data (Note [data-dependent sizes]).

    >>> import flowc as fc
    >>> n = fc.placeholder(fc.int32, [])
    >>> with fc.Session(target="cpu") as sess:
    ...     sess.run(fc.range(1, n, 2), {n: 8})
    array([1, 3, 5, 7], dtype=int32)
    """
    if limit is None:
        start, limit = 0, start
    length = _run_time_length(start, limit, delta)
    if length is not None:  # range(fc.shape(x)[i]): its length is read at run time
        tensor, axis = length
        return apply("iota", (tensor,), name=name or "range", shape=(0,), source=(1,), source_axis=(axis,),
                     dtype=as_dtype(dtype or int32))
    if any(isinstance(v, Tensor) and v.op.type != "Const" for v in (start, limit, delta)):
        return _data_sized_range(start, limit, delta, dtype, name or "range")
    values = [_static_value(v, "range", what) for v, what in ((start, "start"), (limit, "limit"), (delta, "delta"))]
    if float(values[2]) == 0:
        raise _error("range", "delta must not be 0")
    if dtype is None:  # TF1's: float32 if a bound is a float, else int32
        dtype = float32 if any(v.dtype.kind == "f" for v in values) else int32
    dtype = as_dtype(dtype)
    array = np.arange(*(v.item() for v in values)).astype(dtype.np)
    return constant(array, name=name or "range")


RANGE_DTYPES = (int32, int64, float32, float64)  # TF1's order: a range takes the last of its bounds' dtypes


def _data_sized_range(start: Any, limit: Any, delta: Any, dtype: DType | str | None, name: str) -> Tensor:
    """range with a bound computed at run time: its count first, made a dim by data_dim, then start + iota * delta
    sized by it (Note [data-dependent sizes]); a delta of 0 stops the run, naming range and the line."""
    bounds = [v if isinstance(v, Tensor) else convert_to_tensor(v) for v in (start, limit, delta)]
    for what, bound in zip(("start", "limit", "delta"), bounds):
        if bound.type.rank != 0 or bound.dtype not in RANGE_DTYPES:
            raise _error("range", f"{what} must be a scalar of {', '.join(d.name for d in RANGE_DTYPES)}, got "
                                  f"{bound.type} ({bound.name!r})")
    kind = as_dtype(dtype) if dtype is not None else max((b.dtype for b in bounds), key=RANGE_DTYPES.index)
    if kind not in RANGE_DTYPES:
        raise _error("range", f"dtype must be one of {', '.join(d.name for d in RANGE_DTYPES)}, got {kind.name}")
    first, last, step = (b if b.dtype == kind else cast(b, kind) for b in bounds)
    zero = constant(0, dtype=kind)
    nonzero = not_equal(step, zero)
    check = apply("check", (nonzero,), name=f"{name}_delta_check", message="range: delta must not be 0")
    safe = where_selected(nonzero, step, constant(1, dtype=kind))  # no division by 0 before the check stops the run
    if kind.is_float:
        count = cast(apply("ceil", (divide(last - first, safe),)), int64)
    else:  # ceil(a / d) = -floor(-a / d), exact in integers
        count = cast(negative(apply("floordiv", (negative(last - first), safe))), int64)
    count = maximum(count, constant(0, dtype=int64), name=f"{name}_count")
    with control_dependencies([check]):
        rows = apply("data_dim", (count,), name=f"{name}_rows")
    steps = apply("iota", (rows,), name=f"{name}_iota", shape=(0,), source=(1,), source_axis=(0,), dtype=kind)
    return stop_gradient(add(first, multiply(steps, step)), name=name)  # TF1's Range has no gradient


def _run_time_length(start: Any, limit: Any, delta: Any) -> tuple[Tensor, int] | None:
    """(tensor, axis) when range counts 0, 1, ... up to an unknown dim of fc.shape(tensor), else None."""
    if not isinstance(limit, Tensor) or limit.type.rank != 0:
        return None
    entry = scalar_entry(limit)
    if not isinstance(entry, tuple) or not (_is_number(start, 0) and _is_number(delta, 1)):
        return None
    return entry


def _is_number(value: Any, number: int) -> bool:
    try:
        return bool(_static_value(value, "range", "start and delta") == number)
    except FlowcTypeError:
        return False


def tile(input: Any, multiples: Sequence[int], name: str | None = None) -> Tensor:
    """`input` repeated `multiples[i]` times along axis i: a broadcast over a new axis before each, merged
    (with None dims: copies concatenated along each tiled axis)."""
    x = convert_to_tensor(input)
    counts = [int(m) for m in _static_value(multiples, "tile", "multiples").reshape(-1)]
    if len(counts) != x.type.rank or any(m < 0 for m in counts):
        raise _error("tile", f"multiples {counts} need one count >= 0 per dim of {x.name!r} ({x.type})")
    if all(m == 1 for m in counts):
        return x
    if not x.type.is_static:  # copies joined along each tiled axis: sizes known only at run time stay so
        for axis, count in enumerate(counts):
            if count == 0:  # no copies: the axis is empty (a concat of none would be an error)
                x = array_ops.strided_slice(x, tuple(builtins.slice(0, 0) if a == axis else builtins.slice(None)
                                                     for a in builtins.range(x.type.rank)))
            elif count != 1:
                x = array_ops.concat([x] * count, axis=axis, name=name or "Tile")
        return x
    dims = static_dims(x, "tile")
    spread = array_ops.reshape(x, [d for size in dims for d in (1, size)])
    wide = array_ops.broadcast_to(spread, [d for m, size in zip(counts, dims) for d in (m, size)])
    return array_ops.reshape(wide, [m * size for m, size in zip(counts, dims)], name=name or "Tile")


def pad(tensor: Any, paddings: Any, mode: str = "CONSTANT", name: str | None = None,
        constant_values: Any = 0) -> Tensor:
    """`tensor` with paddings[i] = [before, after] elements added around axis i: `constant_values`
    (CONSTANT), a mirror without the edge (REFLECT) or with it (SYMMETRIC)."""
    x = convert_to_tensor(tensor)
    widths = _static_value(paddings, "pad", "paddings")
    mode = mode.upper()
    if widths.shape != (x.type.rank, 2) or (widths < 0).any():
        raise _error("pad", f"paddings {widths.tolist()} need a pair [before, after] of counts >= 0 per dim of "
                            f"{x.name!r} ({x.type})")
    if mode not in ("CONSTANT", "REFLECT", "SYMMETRIC"):
        raise _error("pad", f"mode must be 'CONSTANT', 'REFLECT' or 'SYMMETRIC', got {mode!r}")
    if mode == "CONSTANT" and not isinstance(constant_values, Tensor):  # one pass: the pad op
        before, after = tuple(int(w) for w in widths[:, 0]), tuple(int(w) for w in widths[:, 1])
        return apply("pad", (x,), name=name or "Pad", before=before, after=after, value=float(constant_values))
    out = x
    for axis, (before, after) in enumerate(widths.tolist()):
        if before == 0 and after == 0:
            continue
        if mode == "CONSTANT":
            out = _pad_constant(out, axis, before, after, constant_values)
        else:
            out = _pad_mirror(out, axis, before, after, mode == "SYMMETRIC")
    return out


def _pad_constant(x: Tensor, axis: int, before: int, after: int, value: Any) -> Tensor:
    def block(width: int) -> Tensor:
        dims: list[Entry] = [(x, a) if d is None else d for a, d in enumerate(x.type.shape)]
        dims[axis] = width
        if isinstance(value, Tensor):  # a scalar tensor of x's dtype
            return broadcast_to(convert_to_tensor(value, dtype=x.dtype), dims, name="Pad/value")
        return fill(dims, value, x.dtype, name="Pad/value")

    parts = ([block(before)] if before else []) + [x] + ([block(after)] if after else [])
    return array_ops.concat(parts, axis=axis, name="Pad")


def _pad_mirror(x: Tensor, axis: int, before: int, after: int, symmetric: bool) -> Tensor:
    size = x.type.shape[axis]
    if size is None:
        raise _error("pad", f"mirror padding of axis {axis} needs its size when the graph is built ({x.type})")
    most = size if symmetric else size - 1
    if before > most or after > most:
        raise _error("pad", f"{'SYMMETRIC' if symmetric else 'REFLECT'} padding of axis {axis} by [{before}, "
                            f"{after}] needs at most {most} on each side for a size of {size}")
    skip = 0 if symmetric else 1  # REFLECT leaves the edge element out of the mirror
    parts = []
    if before:  # indices before-1+skip down to skip
        parts.append(_take(x, axis, before - 1 + skip, skip - 1))
    parts.append(x)
    if after:  # indices size-1-skip down to size-skip-after
        parts.append(_take(x, axis, size - 1 - skip, size - 1 - skip - after))
    return array_ops.concat(parts, axis=axis, name="Pad")


def _take(x: Tensor, axis: int, begin: int, end: int) -> Tensor:
    """x along `axis` from `begin` down to `end` (exclusive; -1: through index 0)."""
    index: list[Any] = [_builtin_slice(None)] * x.type.rank
    index[axis] = _builtin_slice(begin, None if end < 0 else end, -1)
    return array_ops.strided_slice(x, tuple(index))


def slice(input_: Any, begin: Sequence[int], size: Sequence[int], name: str | None = None) -> Tensor:
    """input_[begin[i] : begin[i] + size[i]] on every axis; a size of -1 takes the rest."""
    x = convert_to_tensor(input_)
    begins = [int(b) for b in _static_value(begin, "slice", "begin").reshape(-1)]
    sizes = [int(s) for s in _static_value(size, "slice", "size").reshape(-1)]
    if not len(begins) == len(sizes) == x.type.rank:
        raise _error("slice", f"begin {begins} and size {sizes} need one entry per dim of {x.name!r} ({x.type})")
    for axis, (b, s) in enumerate(zip(begins, sizes)):
        dim = x.type.shape[axis]
        if b < 0 or s < -1 or (dim is not None and b + max(s, 0) > dim) or (dim is not None and b > dim):
            raise _error("slice", f"begin {b} and size {s} leave axis {axis} of {x.name!r} ({x.type})")
    index = tuple(_builtin_slice(b, None if s == -1 else b + s) for b, s in zip(begins, sizes))
    return array_ops.strided_slice(x, index, name=name or "Slice")


def split(value: Any, num_or_size_splits: Any, axis: int = 0, num: int | None = None,
          name: str | None = None) -> list[Tensor]:
    """Pieces of `value` along `axis`: a count of equal pieces, or their sizes (one may be -1)."""
    x = convert_to_tensor(value)
    axis = _axis("split", axis, x)
    size = x.type.shape[axis]
    sizes_given = np.asarray(_static_value(num_or_size_splits, "split", "num_or_size_splits"))
    if sizes_given.ndim == 0:
        count = int(sizes_given)
        if count <= 0 or size is None or size % count:
            raise _error("split", f"cannot split axis {axis} of {x.name!r} ({x.type}) into {count} equal pieces")
        sizes = [size // count] * count
    else:
        sizes = [int(s) for s in sizes_given]
        if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
            raise _error("split", f"sizes {sizes} may hold one -1, the others >= 0")
        if -1 in sizes:
            if size is None:
                raise _error("split", f"a size of -1 needs axis {axis} of {x.name!r} ({x.type}) known")
            sizes[sizes.index(-1)] = size - sum(s for s in sizes if s != -1)
        if (size is not None and sum(sizes) != size) or any(s < 0 for s in sizes):
            raise _error("split", f"sizes {sizes} do not add up to axis {axis} of {x.name!r} ({x.type})")
        if size is None:  # checked when it runs (TF1 raises too), never pieces that miss part of the axis
            dims = [d if i != axis else sum(sizes) for i, d in enumerate(x.type.shape)]
            x = array_ops.ensure_shape(x, dims, name=f"{name or 'split'}_sizes")
    pieces, start = [], 0
    for piece in sizes:
        index: list[Any] = [_builtin_slice(None)] * x.type.rank
        index[axis] = _builtin_slice(start, start + piece)
        pieces.append(array_ops.strided_slice(x, tuple(index), name=name or "split"))
        start += piece
    return pieces


def _axis(op: str, axis: int, x: Tensor) -> int:
    if not -x.type.rank <= axis < x.type.rank:
        raise _error(op, f"axis {axis} is out of range for {x.name!r} ({x.type})")
    return axis % x.type.rank


def unstack(value: Any, num: int | None = None, axis: int = 0, name: str | None = None) -> list[Tensor]:
    """The slices of `value` along `axis`, that axis removed."""
    x = convert_to_tensor(value)
    axis = _axis("unstack", axis, x)
    count = x.type.shape[axis] if num is None else int(num)
    if count is None or (x.type.shape[axis] is not None and count != x.type.shape[axis]):
        raise _error("unstack", f"cannot unstack axis {axis} of {x.name!r} ({x.type}) into {count} tensors: its "
                                "size must be known when the graph is built")
    pieces = []
    for i in builtin_range(count):
        index: list[Any] = [_builtin_slice(None)] * x.type.rank
        index[axis] = i
        pieces.append(array_ops.strided_slice(x, tuple(index), name=name or "unstack"))
    return pieces


def reverse(tensor: Any, axis: Sequence[int], name: str | None = None) -> Tensor:
    """`tensor` with the order of elements along each axis of `axis` reversed (a slice of stride -1)."""
    x = convert_to_tensor(tensor)
    axes = [int(a) for a in _static_value(axis, "reverse", "axis").reshape(-1)]
    normalized = {_axis("reverse", a, x) for a in axes}
    if len(normalized) != len(axes):
        raise _error("reverse", f"axis {axes} names an axis twice")
    index = tuple(_builtin_slice(None, None, -1) if a in normalized else _builtin_slice(None)
                  for a in builtin_range(x.type.rank))
    return array_ops.strided_slice(x, index, name=name or "ReverseV2")


def eye(num_rows: int, num_columns: int | None = None, batch_shape: Sequence[int] | None = None,
        dtype: DType | str = float32, name: str | None = None) -> Tensor:
    """Identity matrices of [num_rows, num_columns], stacked to `batch_shape`; a constant."""
    rows = int(num_rows)
    columns = rows if num_columns is None else int(num_columns)
    if rows < 0 or columns < 0:
        raise _error("eye", f"num_rows {rows} and num_columns {columns} must be >= 0")
    matrix = np.eye(rows, columns, dtype=as_dtype(dtype).np)
    batch = tuple(int(d) for d in (batch_shape or ()))
    return constant(np.broadcast_to(matrix, batch + matrix.shape).copy(), name=name or "eye")


def sequence_mask(lengths: Any, maxlen: Any = None, dtype: DType | str = bool_, name: str | None = None) -> Tensor:
    """mask[..., j] = j < lengths[...], over j in [0, maxlen); maxlen must be known when the graph is built
    (the mask's last dim), or lengths a constant."""
    lengths = convert_to_tensor(lengths)
    if lengths.dtype not in INTS:
        raise _error("sequence_mask", f"lengths must be int32 or int64, got {lengths.type}")
    if maxlen is None:
        maxlen = int(_static_value(lengths, "sequence_mask", "lengths (with maxlen None)").max(initial=0))
    count = int(_static_value(maxlen, "sequence_mask", "maxlen"))
    if count < 0:
        raise _error("sequence_mask", f"maxlen must be >= 0, got {count}")
    positions = constant(np.arange(count, dtype=lengths.dtype.np))
    mask = less(positions, array_ops.expand_dims(lengths, -1), name=name or "SequenceMask")
    return mask if as_dtype(dtype) == bool_ else cast(mask, dtype)


def linspace(start: Any, stop: Any, num: Any, name: str | None = None) -> Tensor:
    """`num` evenly spaced values from start to stop, both included: start + range(num) * step. A `num`
    computed at run time gives a result whose length is data (Note [data-dependent sizes]).

    >>> import flowc as fc
    >>> n = fc.placeholder(fc.int32, [])
    >>> with fc.Session(target="cpu") as sess:
    ...     sess.run(fc.linspace(0.0, 1.0, n), {n: 5})
    array([0.  , 0.25, 0.5 , 0.75, 1.  ], dtype=float32)
    """
    first = convert_to_tensor(start)
    if not first.dtype.is_float:
        raise _error("linspace", f"start must be float16, float32 or float64, got {first.type}")
    last = convert_to_tensor(stop, dtype=first.dtype)
    if first.type.rank or last.type.rank:
        raise _error("linspace", f"start and stop must be scalars, got {first.type} and {last.type}")
    if isinstance(num, Tensor) and num.op.type != "Const":
        return _data_sized_linspace(first, last, num, name or "LinSpace")
    count = int(_static_value(num, "linspace", "num"))
    if count <= 0:
        raise _error("linspace", f"num must be > 0, got {count}")
    if count == 1:
        return array_ops.reshape(first, [1], name=name or "LinSpace")
    step = (last - first) / constant(count - 1, dtype=first.dtype)
    steps = constant(np.arange(count - 1, dtype=first.dtype.np))
    head = first + steps * step
    return array_ops.concat([head, array_ops.reshape(last, [1])], axis=0, name=name or "LinSpace")


def _data_sized_linspace(first: Tensor, last: Tensor, num: Tensor, name: str) -> Tensor:
    """linspace of a run-time `num`: a data_dim of it sizes the steps; the last value is `stop` itself, as
    the static form's (a single value is `start`); num <= 0 stops the run, naming linspace and the line."""
    if num.type.rank != 0 or num.dtype not in INTS:
        raise _error("linspace", f"num must be an int32 or int64 scalar, got {num.type} ({num.name!r})")
    count = cast(num, int64)
    positive = greater(count, constant(0, dtype=int64))
    check = apply("check", (positive,), name=f"{name}_num_check", message="linspace: num must be > 0")
    with control_dependencies([check]):
        rows = apply("data_dim", (count,), name=f"{name}_rows")
    index = apply("iota", (rows,), name=f"{name}_iota", shape=(0,), source=(1,), source_axis=(0,), dtype=int64)
    intervals = maximum(count - constant(1, dtype=int64), constant(1, dtype=int64))
    step = divide(last - first, cast(intervals, first.dtype))
    inner = add(first, multiply(cast(index, first.dtype), step))
    at_stop = logical_and(equal(index, count - constant(1, dtype=int64)), greater(count, constant(1, dtype=int64)))
    return where_selected(at_stop, last, inner, name=name)


def gather(params: Any, indices: Any, validate_indices: Any = None, name: str | None = None,
           axis: int | None = None, batch_dims: int = 0) -> Tensor:
    """Slices of `params` along `axis` picked by `indices` (in range, checked at run time). The first
    `batch_dims` dims of both are batch dims: each batch entry picks from its own slice of params, and
    `axis` (by default batch_dims) must come after them, as in TF 1.14's tf.gather.

    >>> import flowc as fc
    >>> picked = fc.gather(fc.constant([[1, 2, 3], [4, 5, 6]]), fc.constant([[2, 0], [1, 1]]), axis=1, batch_dims=1)
    >>> with fc.Session() as sess:
    ...     sess.run(picked)
    array([[3, 1],
           [5, 5]], dtype=int32)
    """
    if batch_dims == 0:
        return array_ops.gather(params, indices, axis=0 if axis is None else axis, name=name)
    return _batched_gather(convert_to_tensor(params), convert_to_tensor(indices), axis, batch_dims, name or "GatherV2")


def _batched_gather(params: Tensor, indices: Tensor, axis: int | None, batch_dims: int, name: str) -> Tensor:
    """gather with batch dims, as one plain gather: params' batch dims and `axis` merged into one axis
    (a transpose first where other dims lie between them), each index shifted by its batch entry's
    offset in it; a check first that every index is in range for its own axis (a shifted one out of
    range would read another batch entry's slice). Then the result's dims back in TF's order."""
    rank = indices.type.rank
    batch = batch_dims + rank if batch_dims < 0 else batch_dims
    axis = batch if axis is None else (axis + params.type.rank if axis < 0 else axis)
    if indices.dtype not in INTS or not 0 <= batch <= rank or not batch <= axis < params.type.rank:
        raise _error("gather", f"batch_dims={batch_dims}, axis={axis}: needs int32 or int64 indices (got "
                               f"{indices.type}), 0 <= batch_dims <= their rank and batch_dims <= axis < the rank of "
                               f"params ({params.type})")
    for d, (p, i) in enumerate(zip(params.type.shape[:batch], indices.type.shape[:batch])):
        if p is not None and i is not None and p != i:
            raise _error("gather", f"batch dim {d} of params ({params.type}) and indices ({indices.type}) differ")
    order = [*builtin_range(batch), axis, *builtin_range(batch, axis), *builtin_range(axis + 1, params.type.rank)]
    moved = params if order == sorted(order) else array_ops.transpose(params, order)
    rest: list[Entry] = [(moved, a) if d is None else d for a, d in enumerate(moved.type.shape) if a > batch]
    merged = reshape(moved, [-1, *rest])
    lead = moved.type.shape[:batch + 1]
    small = None not in lead and math.prod(lead) < 2**31  # type: ignore[arg-type]
    kind = indices.dtype if small else int64  # a shifted index may pass int32's range
    sizes = shape(indices, out_type=kind)
    length = shape(params, out_type=kind)[axis]
    wide = indices if indices.dtype == kind else cast(indices, kind)
    checks = _check_batched_indices(params, wide, sizes, axis, batch, length)
    offset = constant(0, dtype=kind)
    for d in builtin_range(batch):
        entry = (indices, d) if indices.type.shape[d] is None else indices.type.shape[d]
        along = _iota(entry, kind)
        offset = offset * sizes[d] + reshape(along, [1] * d + [-1] + [1] * (batch - d - 1))
    offset = reshape(offset, [(indices, d) if n is None else n for d, n in enumerate(indices.type.shape[:batch])]
                     + [1] * (rank - batch))
    with control_dependencies(checks):
        picked = array_ops.gather(merged, wide + offset * length, axis=0)
    middle = axis - batch  # params' dims between the batch dims and axis: before the indices' own in TF's order
    back = [*builtin_range(batch), *builtin_range(rank, rank + middle), *builtin_range(batch, rank),
            *builtin_range(rank + middle, picked.type.rank)]
    return array_ops.transpose(picked, back, name=name) if back != sorted(back) else identity(picked, name=name)


def _iota(entry: Entry, dtype: DType) -> Tensor:
    """[0, 1, ..., n - 1] for a static n or a dim (tensor, axis) read at run time."""
    if isinstance(entry, int):
        return constant(np.arange(entry, dtype=dtype.np))
    tensor, axis = entry
    return apply("iota", (tensor,), name="range", shape=(0,), source=(1,), source_axis=(axis,), dtype=dtype)


def _check_batched_indices(params: Tensor, indices: Tensor, sizes: Tensor, axis: int, batch: int,
                           length: Tensor) -> list[Tensor]:
    """Run-time checks of gather with batch dims (impure), for the gather to run after."""
    ok = logical_and(greater_equal(indices, constant(0, dtype=indices.dtype)), less(indices, length))
    checks = [apply("check", (ok,), name="gather_index_check",
                    message=f"gather: an index is out of range for axis {axis} of params ({params.type})")]
    if any(p is None or i is None for p, i in zip(params.type.shape[:batch], indices.type.shape[:batch])):
        same = equal(shape(params, out_type=indices.dtype)[:batch], sizes[:batch])
        checks.append(apply("check", (same,), name="gather_batch_check",
                            message=f"gather: the batch dims of params ({params.type}) and indices (shape {indices.type.shape}) "
                                    f"differ, batch_dims={batch}"))
    return checks


def gather_nd(params: Any, indices: Any, name: str | None = None, batch_dims: int = 0) -> Tensor:
    """result[i...] = params[indices[i..., 0], ..., indices[i..., K-1], ...] (in range, checked at run time)."""
    params, indices = convert_to_tensor(params), convert_to_tensor(indices)
    if not isinstance(batch_dims, bool) and isinstance(batch_dims, (int, np.integer)) and batch_dims == 0:
        return apply("gather_nd", (params, indices), name=name or "GatherNd")
    return _batched_gather_nd(params, indices, batch_dims, name or "GatherNd")


def _batched_gather_nd(params: Tensor, indices: Tensor, batch_dims: Any, name: str) -> Tensor:
    """gather_nd with batch dims (TF 1.14): result[b..., i...] = params[b..., indices[b..., i..., :]], as
    one plain gather_nd whose index vectors get their batch entry's coordinates in front (so the range
    check of gather_nd covers them too); a check first that None batch dims of params and indices agree."""
    rank = indices.type.rank
    if (isinstance(batch_dims, bool) or not isinstance(batch_dims, (int, np.integer)) or indices.dtype not in INTS
            or not 0 < batch_dims < rank or batch_dims >= params.type.rank):
        raise _error("gather_nd", f"batch_dims={batch_dims!r}: needs int32 or int64 indices (got {indices.type}) and "
                                  f"0 <= batch_dims < the rank of indices and of params ({params.type})")
    batch = int(batch_dims)
    for d, (p, i) in enumerate(zip(params.type.shape[:batch], indices.type.shape[:batch])):
        if p is not None and i is not None and p != i:
            raise _error("gather_nd", f"batch dim {d} of params ({params.type}) and indices ({indices.type}) differ")
    column = zeros_like(array_ops.strided_slice(indices, (Ellipsis, builtins.slice(0, 1))))  # [b..., i..., 1]
    columns = []
    for d in builtin_range(batch):
        along = _iota((indices, d) if indices.type.shape[d] is None else indices.type.shape[d], indices.dtype)
        columns.append(column + reshape(along, [1] * d + [-1] + [1] * (rank - 1 - d)))
    coordinates = array_ops.concat([*columns, indices], rank - 1)
    checks = []
    if any(p is None or i is None for p, i in zip(params.type.shape[:batch], indices.type.shape[:batch])):
        same = equal(shape(params, out_type=indices.dtype)[:batch], shape(indices, out_type=indices.dtype)[:batch])
        checks.append(apply("check", (same,), name="gather_nd_batch_check",
                            message=f"gather_nd: the batch dims of params ({params.type}) and indices (shape "
                                    f"{indices.type.shape}) differ, batch_dims={batch}"))
    with control_dependencies(checks):
        return apply("gather_nd", (params, coordinates), name=name)


def where(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Tensor:
    """x where condition is true, else y (the three broadcast); with condition alone, the coordinates of
    its true elements, int64 [n, rank] (n known only from the data: Note [data-dependent sizes])."""
    if x is None and y is None:
        return _where_indices(convert_to_tensor(condition), name or "Where")
    if x is None or y is None:
        raise _error("where", "give both x and y, or neither")
    return where_selected(condition, x, y, name=name)


def boolean_mask(tensor: Any, mask: Any, name: str | None = None, axis: int | None = None) -> Tensor:
    """The elements (or slices) of `tensor` where the bool `mask` over its dims axis, ..., axis + rank(mask) - 1
    is true, in row-major order, those dims becoming one: gather_nd at where(mask), between transposes
    for an axis other than 0. Its size is data (Note [data-dependent sizes]): compiled code counts the
    true elements first, then sizes the result by that count.

    >>> import flowc as fc, numpy as np
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.float32, [None, 2])
    ...     rows = fc.boolean_mask(x, fc.reduce_sum(x, 1) > 0)
    >>> with fc.Session(graph=g, target="cpu") as sess:
    ...     sess.run(rows, {x: np.array([[1, 2], [-3, 1], [0, 5]], np.float32)})
    array([[1., 2.],
           [0., 5.]], dtype=float32)
    """
    x, mask = convert_to_tensor(tensor), convert_to_tensor(mask)
    rank, start = mask.type.rank, 0 if axis is None else axis
    if not isinstance(start, int) or not 0 <= start <= x.type.rank - max(rank, 1):
        raise _error("boolean_mask", f"axis={axis}: needs 0 <= axis <= {x.type.rank - max(rank, 1)} for a mask of "
                                     f"rank {rank} over {x.name!r} ({x.type})")
    masked = x.type.shape[start:start + rank]
    if mask.dtype != bool_ or rank == 0 or any(
            m is not None and d is not None and m != d for m, d in zip(mask.type.shape, masked)):
        raise _error("boolean_mask", f"mask {mask.type} must be bool, of rank >= 1, matching the leading dims "
                                     f"of {x.name!r} ({x.type}) from axis {start}")
    if start == 0:
        return gather_nd(x, _where_indices(mask, "Where"), name=name or "boolean_mask")
    front = [*builtin_range(start, start + rank), *builtin_range(start), *builtin_range(start + rank, x.type.rank)]
    picked = gather_nd(array_ops.transpose(x, front), _where_indices(mask, "Where"))
    back = [*builtin_range(1, start + 1), 0, *builtin_range(start + 1, picked.type.rank)]
    return array_ops.transpose(picked, back, name=name or "boolean_mask")


def _where_indices(condition: Tensor, name: str) -> Tensor:
    """Note [data-dependent sizes]: the count of true (nonzero, NaN included) elements first, a reduction
    that compiles to native code; data_dim makes it the dim that the coordinates are sized by."""
    flags = condition if condition.dtype == bool_ else not_equal(condition, constant(0, dtype=condition.dtype))
    count = reduce_sum(cast(flags, int64), name=f"{name}_count")
    return apply("where_indices", (condition, apply("data_dim", (count,), name=f"{name}_rows")), name=name)


def scatter_nd(indices: Any, updates: Any, shape: Sequence[int], name: str | None = None) -> Tensor:
    """Zeros of `shape`, plus each slice of `updates` at its index vector (duplicates summed)."""
    indices, updates = convert_to_tensor(indices), convert_to_tensor(updates)
    dims = [int(d) for d in _static_value(shape, "scatter_nd", "shape").reshape(-1)]
    zeros = fill(dims, 0, updates.dtype, name=f"{name or 'ScatterNd'}/zeros")
    return _scatter_vectors("scatter_nd", zeros, indices, updates, name or "ScatterNd")


def tensor_scatter_nd_add(tensor: Any, indices: Any, updates: Any, name: str | None = None) -> Tensor:
    """`tensor` plus each slice of `updates` at its index vector (the last dim of `indices` indexes
    the first dims of `tensor`; duplicates summed; in range, checked at run time)."""
    tensor = convert_to_tensor(tensor)
    indices, updates = convert_to_tensor(indices), convert_to_tensor(updates, dtype=tensor.dtype)
    return _scatter_vectors("tensor_scatter_nd_add", tensor, indices, updates, name or "TensorScatterAdd")


tensor_scatter_add = tensor_scatter_nd_add  # TF 1.15's name


def _scatter_vectors(op: str, base: Tensor, indices: Tensor, updates: Tensor, name: str) -> Tensor:
    """scatter_add of `updates` at the index vectors `indices` into `base`: the vectors index base's
    first K dims, merged into one for the scatter (K = 1: the vectors are the rows already; else their
    row numbers come from a gather_nd from a table of them, which also checks them)."""
    if indices.dtype not in INTS or indices.type.rank < 1 or indices.type.shape[-1] is None:
        raise _error(op, f"indices need an int dtype and a static last dim, got {indices.type}")
    depth = indices.type.shape[-1]
    lead, trailing = base.type.shape[:depth], base.type.shape[depth:]
    want = indices.type.shape[:-1] + trailing
    if depth > base.type.rank or updates.dtype != base.dtype or len(want) != updates.type.rank or any(
            w is not None and u is not None and w != u for w, u in zip(want, updates.type.shape)):
        raise _error(op, f"updates {updates.type} do not fit indices {indices.type} into {base.type}: they need "
                         f"{base.type.with_shape(want)}")
    if depth == 1:
        rows = array_ops.squeeze(indices, [indices.type.rank - 1])
        return apply("scatter_add", (base, rows, updates), name=name, axis=0)
    if None in lead:
        raise _error(op, f"index vectors of {depth} entries need the first {depth} dims of {base.type} known "
                         "when the graph is built")
    count = math.prod(lead)
    table = constant(np.arange(count, dtype=indices.dtype.np).reshape(lead))
    rows = gather_nd(table, indices)
    merged = reshape(base, [count, *((base, depth + a) if d is None else d for a, d in enumerate(trailing))])
    added = apply("scatter_add", (merged, rows, updates), name=name, axis=0)
    return reshape(added, [(base, a) if d is None else d for a, d in enumerate(base.type.shape)], name=name)


def unsorted_segment_sum(data: Any, segment_ids: Any, num_segments: Any, name: str | None = None) -> Tensor:
    """result[s, ...] = the sum of the data[i..., ...] whose segment_ids[i...] is s, for s in
    [0, num_segments) (0 where none is): a scatter_add into zeros. Every id must be in range
    (IndexOutOfRange, where TF1 drops a negative id)."""
    data, ids = convert_to_tensor(data), convert_to_tensor(segment_ids)
    count = int(_static_value(num_segments, "unsorted_segment_sum", "num_segments"))
    rank = ids.type.rank
    if ids.dtype not in INTS or rank > data.type.rank or any(
            i is not None and d is not None and i != d for i, d in zip(ids.type.shape, data.type.shape)) or count < 0:
        raise _error("unsorted_segment_sum", f"segment_ids {ids.type} must be int32 or int64 of a shape that "
                                             f"begins {data.name!r} ({data.type}), num_segments >= 0 (got {count})")
    dims = [count, *((data, rank + a) if d is None else d for a, d in enumerate(data.type.shape[rank:]))]
    zeros = fill(dims, 0, data.dtype, name=f"{name or 'UnsortedSegmentSum'}/zeros")
    return apply("scatter_add", (zeros, ids, data), name=name or "UnsortedSegmentSum", axis=0)


def segment_sum(data: Any, segment_ids: Any, name: str | None = None) -> Tensor:
    """unsorted_segment_sum over segments 0 .. the last id, for sorted ids known when the graph is built
    (the result's size is the last id + 1)."""
    ids = _static_value(segment_ids, "segment_sum", "segment_ids (the result's size is the last one + 1)")
    if ids.ndim != 1 or (ids.size and ((np.diff(ids) < 0).any() or ids[0] < 0)):
        raise _error("segment_sum", f"segment_ids must be a vector of sorted ids >= 0, got {ids.tolist()}")
    return unsorted_segment_sum(data, segment_ids, int(ids[-1]) + 1 if ids.size else 0, name=name or "SegmentSum")


__all__ = ["boolean_mask", "eye", "gather", "gather_nd", "linspace", "pad", "range", "reverse", "scatter_nd",
           "segment_sum", "sequence_mask", "slice", "split", "tensor_scatter_add", "tensor_scatter_nd_add", "tile",
           "unsorted_segment_sum", "unstack", "where"]
