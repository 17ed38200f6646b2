"""Gradient rules of the ops that move elements: shape ops, slice, gather, scatter_add.

Their gradients put each element of the cotangent back where it came from,
with zeros where nothing came from (Note [unknown dims in gradients] says how
sizes that are only known at run time are kept out of the rules).
"""

from __future__ import annotations


import numpy as np

from flowc.ir import Builder, Operation, Value
from flowc.ir.op import normalize_axes, normalize_axis
from flowc.ir.types import bool_, int64

from .build import match_type, scalar, unbroadcast, zeros_like
from .rules_dims import reshape_like
from .rules import Grads, vjp


@vjp("reshape")
def reshape_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands
    if x.type.shape.count(None) > 1:  # x lends its sizes at run time (rules_dims.py)
        return [reshape_like(b, dy, x)]
    return [b.reshape(dy, shape=tuple(-1 if d is None else d for d in x.type.shape))]


@vjp("ensure_shape")
def ensure_shape_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [dy]  # the same elements; dy knows what the result knows, which is at least x's


@vjp("relax_shape")
def relax_shape_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [match_type(b, dy, op.operands[0])]  # the same elements; x's sizes known again


@vjp("transpose")
def transpose_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    inverse = [0] * len(op.perm)
    for i, p in enumerate(op.perm):
        inverse[p] = i
    return [b.transpose(dy, perm=tuple(inverse))]


@vjp("expand_dims")
def expand_dims_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [b.squeeze(dy, axes=(op.axis % (op.operands[0].type.rank + 1),))]


@vjp("squeeze")
def squeeze_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    for axis in normalize_axes(op.name, op.axes, op.operands[0].type.rank):  # ascending: each lands in place
        dy = b.expand_dims(dy, axis=axis)
    return [dy]


@vjp("broadcast_to")
def broadcast_to_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [unbroadcast(b, dy, op.operands[0].type)]


@vjp("concat")
def concat_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    axis = normalize_axis(op.name, op.axis, dy.type.rank)
    sizes = [v.type.shape[axis] for v in op.operands]
    grads: list[Value | None] = []
    for index, x in enumerate(op.operands):
        if sizes[index] == 0:
            grads.append(zeros_like(b, x))
            continue
        bounds = _concat_bounds(sizes, index)
        if bounds is None:
            grads.append(_take_at_run_time_offset(b, dy, op.operands, index, axis))
            continue
        grads.append(_take(b, dy, axis, *bounds, 1))
    return grads


def _concat_bounds(sizes: list[int | None], index: int) -> tuple[int, int | None] | None:
    """Where operand `index` sits along the axis: counted from the start if the sizes before it
    are known, else from the end if those after it (and its own) are; None if neither."""
    before, size, after = sizes[:index], sizes[index], sizes[index + 1:]
    if None not in before:
        begin = sum(before)  # type: ignore[arg-type]
        if size is not None:
            return begin, begin + size
        if not after:
            return begin, None
        if None not in after:
            return begin, -sum(after) or None  # type: ignore[arg-type]
    elif size is not None and None not in after:
        tail = sum(after)  # type: ignore[arg-type]
        return -(tail + size), -tail or None
    return None


def _take_at_run_time_offset(b: Builder, dy: Value, operands: tuple[Value, ...], index: int, axis: int) -> Value:
    """dy's run of operand `index` along `axis` when sizes on both sides of it are known only at run time:
    a gather of the positions offset + [0, size), the offset summed from the operands' run-time dims."""
    positions = b.iota(operands[index], shape=(0,), source=(1,), source_axis=(axis,), dtype=int64)
    offset = sum((x.type.shape[axis] for x in operands[:index] if x.type.shape[axis] is not None), 0)
    total = scalar(b, offset, int64)
    for x in operands[:index]:
        if x.type.shape[axis] is None:
            total = b.add(total, _run_time_dim(b, x, axis))
    return b.gather(dy, b.add(positions, total), axis=axis)


def _take(b: Builder, x: Value, axis: int, begin: int, end: int | None, stride: int) -> Value:
    """x[..., begin:end:stride, ...] along `axis`, every other axis whole."""
    rank = x.type.rank
    starts = tuple(begin if i == axis else 0 for i in range(rank))
    ends = tuple(end if i == axis else None for i in range(rank))
    return b.slice(x, begin=starts, end=ends, strides=tuple(stride if i == axis else 1 for i in range(rank)))


# -- slice ------------------------------------------------------------------------------


@vjp("slice")
def slice_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands
    if 0 in op.result.type.shape:
        return [zeros_like(b, x)]  # nothing was taken
    squeezed = normalize_axes(op.name, op.squeeze_dims, x.type.rank)
    grad = dy
    for axis in squeezed:  # ascending: each indexed dim comes back as size 1 where it was
        grad = b.expand_dims(grad, axis=axis)
    for axis in range(x.type.rank):
        grad = _unslice(b, op, grad, axis, axis in squeezed)
    return [grad]


def _unslice(b: Builder, op: Operation, grad: Value, axis: int, squeezed: bool) -> Value:
    """The gradient spread back over `axis` of x: zeros where the slice skipped elements."""
    size = op.operands[0].type.shape[axis]
    begin, end, stride = op.begin[axis], op.end[axis], op.strides[axis]
    if size is None:
        if not squeezed and stride == 1 and end is None and begin == 0:
            return grad  # x[0:], all of it (x[begin:] is not begin zeros and grad: x may have fewer rows)
        if not squeezed and stride == -1 and begin == -1 and end is None:
            return _take(b, grad, axis, -1, None, -1)  # x[::-1], a whole reversal: reversed back, no size needed
        return _unslice_at_run_time(b, op.operands[0], grad, axis, begin, 1 if squeezed else stride)
    kept = range(begin % size, begin % size + 1) if squeezed else range(*slice(begin, end, stride).indices(size))
    if kept == range(size):
        return grad
    if kept.step == 1:
        return _pad(b, grad, axis, kept.start, size - kept.stop)
    if kept.step == -1:  # reversed: un-reverse, then pad
        return _pad(b, _take(b, grad, axis, -1, None, -1), axis, kept[-1], size - 1 - kept[0])
    return _spread_by_gather(b, grad, axis, kept, size)


def _unslice_at_run_time(b: Builder, x: Value, grad: Value, axis: int, begin: int, stride: int) -> Value:
    """x[begin::stride]'s gradient along `axis`, whose size is known only at run time.

    Note [a slice's gradient along an unknown dim]
    x's size n along the axis is known only at run time, so where each of grad's m elements goes
    is too (Python's clamping of begin depends on n). Position j of x took element (j - start) /
    stride of grad when that is a whole number in [0, m), else nothing: the gradient is a gather
    from grad with one row of zeros appended (row m), at indices computed from n, start and m when
    the graph runs. An end needs no bound of its own: m, the slice's run-time size, holds it.
    """
    n = _run_time_dim(b, x, axis)
    m = _run_time_dim(b, grad, axis)
    start = scalar(b, begin, int64) if begin >= 0 else b.add(n, scalar(b, begin, int64))
    low, high = (0, n) if stride > 0 else (-1, b.sub(n, scalar(b, 1, int64)))  # Python's clamping
    start = b.minimum(b.maximum(start, scalar(b, low, int64)), high)
    offset = b.sub(b.iota(x, shape=(0,), source=(1,), source_axis=(axis,), dtype=int64), start)
    if stride < 0:
        offset = b.sub(scalar(b, 0, int64), offset)
    taken = b.greater_equal(offset, scalar(b, 0, int64))
    row = offset
    if abs(stride) > 1:
        step = scalar(b, abs(stride), int64)
        row = b.floordiv(offset, step)
        taken = b.logical_and(taken, b.equal(b.floormod(offset, step), scalar(b, 0, int64)))
    taken = b.logical_and(taken, b.less(row, m))
    padded = b.concat(grad, _zeros_along(b, grad, axis, 1), axis=axis)
    return b.gather(padded, b.where(taken, row, m), axis=axis)


def _run_time_dim(b: Builder, x: Value, axis: int) -> Value:
    """x's size along `axis` as an int64 scalar tensor."""
    if x.type.shape[axis] is not None:
        return scalar(b, x.type.shape[axis], int64)
    return b.slice(b.shape_of(x, dtype=int64), begin=(axis,), end=(axis + 1,), strides=(1,), squeeze_dims=(0,))


def _pad(b: Builder, grad: Value, axis: int, before: int, after: int) -> Value:
    parts = [_zeros_along(b, grad, axis, before)] if before else []
    parts.append(grad)
    if after:
        parts.append(_zeros_along(b, grad, axis, after))
    return parts[0] if len(parts) == 1 else b.concat(*parts, axis=axis)


def _zeros_along(b: Builder, grad: Value, axis: int, count: int) -> Value:
    """Zeros shaped like `grad` but of size `count` along `axis`."""
    shape = list(grad.type.shape)
    shape[axis] = count
    dtype = grad.type.dtype
    if None not in shape:
        return b.constant(np.zeros(shape, dtype=dtype.np))
    block = [1] * len(shape)
    block[axis] = count
    size = grad.type.shape[axis]  # a size-1 stand-in for grad along the axis, to take its other dims from
    thin = _take(b, grad, axis, 0, 1, 1) if size else b.reduce_sum(grad, axes=(axis,), keepdims=True)
    return b.where(scalar(b, False, bool_), thin, b.constant(np.zeros(block, dtype=dtype.np)))


def _spread_by_gather(b: Builder, grad: Value, axis: int, kept: range, size: int) -> Value:
    """A strided slice's gradient, its size known: position j of x gathers grad's element kept.index(j),
    or row len(kept), a row of zeros appended, where the slice skipped j (as the run-time form, Note [a
    slice's gradient along an unknown dim], with the positions a constant). A NaN of grad stays where
    it came from, which a product by a 0/1 placement matrix would spread along its column."""
    rows = np.full(size, len(kept), dtype=np.int64)
    rows[list(kept)] = np.arange(len(kept))
    padded = b.concat(grad, _zeros_along(b, grad, axis, 1), axis=axis)
    return b.gather(padded, b.constant(rows), axis=axis)


# -- gather -----------------------------------------------------------------------------


@vjp("gather")
def gather_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    """dy's slices added back where they were taken (duplicates summed): a scatter_add into zeros of
    the params' type, whose sizes the params lend at run time where they are unknown."""
    params, indices = op.operands  # indices are integers: no gradient
    return [b.scatter_add(zeros_like(b, params), indices, dy, axis=op.axis), None]


@vjp("scatter_add")
def scatter_add_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    """base passes straight through; each update reaches the result once, at its index."""
    _, indices, _ = op.operands
    return [dy, None, b.gather(dy, indices, axis=op.axis)]
