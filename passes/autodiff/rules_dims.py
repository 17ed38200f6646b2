"""Gradient rules of reshape_dims, broadcast_dims, pad and gather_nd (ir/ops/dims.py).

The operands that only lend their dims (Note [dims from operands]) get no gradient; shape_of
is not differentiable.
"""

from __future__ import annotations

import math

import numpy as np

from flowc.ir import Builder, Operation, OpResult, Value
from flowc.ir.types import bool_, int64

from .build import unbroadcast, zeros_like
from .rules import Grads, unsupported, vjp


@vjp("reshape_dims")
def reshape_dims_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    x = op.operands[0]
    return [reshape_like(b, dy, x), *[None] * (len(op.operands) - 1)]


def reshape_like(b: Builder, value: Value, like: Value) -> Value:
    """`value` reshaped to `like`'s shape, whose unknown dims `like` itself lends at run time."""
    shape = like.type.shape
    if None not in shape:
        return b.reshape(value, shape=shape)
    return b.reshape_dims(value, like, shape=tuple(0 if d is None else d for d in shape),
                          source=tuple(0 if d is not None else 1 for d in shape),
                          source_axis=tuple(0 if d is not None else a for a, d in enumerate(shape)))


@vjp("broadcast_dims")
def broadcast_dims_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [unbroadcast(b, dy, op.operands[0].type), *[None] * (len(op.operands) - 1)]


@vjp("pad")
def pad_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    """The slice of dy where x sat (from the end where x's size is known only at run time)."""
    return [b.slice(dy, begin=op.before, end=tuple(-after if after else None for after in op.after),
                    strides=(1,) * len(op.before), squeeze_dims=())]


@vjp("gather_nd")
def gather_nd_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    """dy's slices added back at their index vectors: a scatter_add along the params' first `depth`
    dims merged into one (the row numbers of the vectors), duplicates summed."""
    params, indices = op.operands  # indices are integers: no gradient
    if isinstance(indices, OpResult) and indices.op.name == "where_indices":  # boolean_mask
        return [unmask(b, indices.op.operands[0], dy, params), None]
    depth = indices.type.shape[-1]
    if depth == 1:  # the index vectors are the rows already
        rows = b.squeeze(indices, axes=(indices.type.rank - 1,))
        return [b.scatter_add(zeros_like(b, params), rows, dy, axis=0), None]
    if None in params.type.shape[:depth]:
        raise unsupported(op, f"the gradient of gather_nd needs the first {depth} dims of the params, "
                              f"{params.type}, when the graph is built")
    return [reshape_like(b, scatter_rows(b, zeros_like(b, params), indices, dy), params), None]


def unmask(b: Builder, cond: Value, dy: Value, params: Value) -> Value:
    """The gradient of gather_nd(params, where_indices(cond)), boolean_mask: dy's rows back at cond's true
    elements, zeros elsewhere, in params' shape (known only at run time, as dy's rows are: Note
    [data-dependent sizes] in compiler/data_sized_run.py). No scatter: the row of dy that a true element
    went to is the count of true elements before it (an exclusive cumsum), so each element gathers
    its row from dy with one zero row added at the end (where the false ones after the last true one
    point), and a select keeps the true ones. The select takes cond in its own shape against the rows
    in params' shape, so a cond whose dims are not params' leading dims is a shape error at run time,
    never a gradient at the wrong places."""
    flags = cond if cond.type.dtype == bool_ else b.cast(cond, dtype=bool_)
    position = b.cumsum(b.cast(b.reshape(flags, shape=(-1,)), dtype=int64), axis=0, exclusive=True)
    trailing = dy.type.rank - 1
    padded = b.pad(dy, before=(0,) * dy.type.rank, after=(1,) + (0,) * trailing, value=0.0)
    rows = reshape_like(b, b.gather(padded, position, axis=0), params)
    keep = flags
    for _ in range(trailing):
        keep = b.expand_dims(keep, axis=-1)
    return b.where(keep, rows, b.constant(np.zeros((), dy.type.dtype.np)))


def scatter_rows(b: Builder, base: Value, indices: Value, updates: Value) -> Value:
    """scatter_add of `updates` at the index vectors `indices` (last dim K) into `base`, its first K
    dims (static) merged into one: the vectors become row numbers by a gather_nd from a table of row
    numbers, which also checks them. The result has that merged shape."""
    depth = indices.type.shape[-1]
    lead, trailing = base.type.shape[:depth], base.type.shape[depth:]
    rows = math.prod(lead)  # type: ignore[arg-type]
    table = b.constant(np.arange(rows).reshape(lead), dtype=indices.type.dtype)
    row = b.gather_nd(table, indices)
    if None not in trailing:
        merged = b.reshape(base, shape=(rows, *trailing))
    else:  # base lends its unknown trailing dims
        merged = b.reshape_dims(base, base, shape=(rows, *(0 if d is None else d for d in trailing)),
                                source=(0, *(0 if d is not None else 1 for d in trailing)),
                                source_axis=(0, *(0 if d is not None else depth + a for a, d in enumerate(trailing))))
    return b.scatter_add(merged, row, updates, axis=0)
