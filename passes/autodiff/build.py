"""Shape-polymorphic helpers that gradient rules build with.

Note [unknown dims in gradients]
Placeholders may have unknown (None) dims, so a rule never bakes in a size it
does not know:
  - a filled tensor of a value's type is a constant when the type is static,
    else `where(true, fill, like)`, which takes `like`'s shape and `fill`'s
    values (the select reads nothing of `like` that matters, NaN included).
    `like` is traced back through elementwise ops to the earliest value of
    its type (`shape_source`), so a forward value kept only for its shape
    (the squares of a mean squared error, say) need not be computed;
  - undoing a broadcast sums over axes chosen from the static types: the
    leading axes the operand lacks, and the axes where the operand has a
    static 1. An unknown operand dim is taken to equal the result's, which is
    what compiled code requires at run time (ir/shapes.py,
    check_no_hidden_broadcast);
  - where elements go back to positions that depend on a size known only at
    run time (a slice or reversal of an unknown dim, a concat at run-time
    offsets), the positions are computed when the graph runs, from `shape_of`
    and `iota`, and gathered (Note [a slice's gradient along an unknown dim]
    in rules_shape.py).
"""

from __future__ import annotations

import numpy as np

from flowc.ir import Builder, OpResult, Value
from flowc.ir.errors import FlowcError
from flowc.ir.types import DType, TensorType, bool_

from ..fold import FOLD_MAX_ELEMENTS
from ..simplify import splat


def scalar(b: Builder, number: float | bool, dtype: DType) -> Value:
    return b.constant(np.asarray(number, dtype=dtype.np))


def filled(b: Builder, number: float, like: Value) -> Value:
    """A tensor of `like`'s type holding `number`: Note [unknown dims in gradients]."""
    t = like.type
    if t.is_static and t.size <= FOLD_MAX_ELEMENTS:
        return b.constant(np.full(t.shape, number, dtype=t.dtype.np))
    if t.is_static:  # a broadcast scalar, not a big stored constant (Note [fold size cap] in fold.py)
        return b.broadcast_to(scalar(b, number, t.dtype), shape=t.shape)
    return b.where(scalar(b, True, bool_), scalar(b, number, t.dtype), shape_source(like))


def zeros_like(b: Builder, like: Value) -> Value:
    return filled(b, 0, like)


def ones_like(b: Builder, like: Value) -> Value:
    return filled(b, 1, like)


def broadcast_like(b: Builder, value: Value, like: Value) -> Value:
    """`value` broadcast to `like`'s shape (they broadcast together; `like` is at least as big)."""
    if value.type.shape == like.type.shape:
        return value
    if like.type.is_static:
        return b.broadcast_to(value, shape=like.type.shape)
    return b.where(scalar(b, True, bool_), value, shape_source(like))


def shape_source(value: Value) -> Value:
    """The earliest value of `value`'s type on a chain of elementwise ops that ends at `value`.

    Elementwise results have their operands' shape, so for a value read only
    for its shape any of these will do (a dim unknown in both is taken to be
    the same, as compiled code requires).
    """
    while isinstance(value, OpResult) and value.op.elementwise:
        same = [v for v in value.op.operands if v.type == value.type]
        if not same:
            break
        value = same[0]
    return value


def unbroadcast(b: Builder, grad: Value, target: TensorType) -> Value:
    """Sum `grad` over the axes that broadcasting added to a value of type `target`."""
    lead = grad.type.rank - target.rank
    if lead > 0:
        grad = b.reduce_sum(grad, axes=tuple(range(lead)), keepdims=False)
    axes = tuple(i for i, (want, have) in enumerate(zip(target.shape, grad.type.shape)) if want == 1 and have != 1)
    if axes:
        grad = b.reduce_sum(grad, axes=axes, keepdims=True)
    return grad


def refine_type(b: Builder, grad: Value, like: Value) -> Value:
    """`grad` knowing every static dim of `like` (a gradient of like): a slice of an unknown dim
    loses its size (concat's gradient takes dy[0:1] for an operand of one row), and a rule that
    then trusts the type, such as a reduction's broadcast back, would not broadcast."""
    want = [-1 if w is None or h is not None else w for h, w in zip(grad.type.shape, like.type.shape)]
    return grad if all(w == -1 for w in want) else b.create("ensure_shape", [grad], {"shape": tuple(want)}).result


def match_type(b: Builder, grad: Value, like: Value) -> Value:
    """`grad` with exactly `like`'s type, when its static dims are merely more or less known.

    A gradient can know a dim that its value does not (x: f32[?] times c: f32[5]
    gives dx: f32[5]), or the other way round; the request's results and the
    regions of cond and while need the value's own type.
    """
    target = like.type
    if grad.type == target:
        return grad
    grad = refine_type(b, grad, like)
    for axis, (have, want) in enumerate(zip(grad.type.shape, target.shape)):
        if want is None and have is not None:
            grad = b.concat(grad, _empty_along(b, like, axis), axis=axis)  # an unknown dim joined makes it unknown
    if grad.type != target:
        raise FlowcError(f"internal error: a gradient of type {grad.type} for a value of type {target}")
    return grad


def _empty_along(b: Builder, like: Value, axis: int) -> Value:
    """like[..., 0:0, ...]: no elements, and of unknown size along `axis` as like is."""
    rank = like.type.rank
    return b.slice(like, begin=(0,) * rank, end=tuple(0 if i == axis else None for i in range(rank)),
                   strides=(1,) * rank)


def accumulate(b: Builder, total: Value | None, grad: Value) -> Value:
    """total + grad. Where one is a single row written into zeros (read_row's gradient), only that
    row is added: the cotangent of a sequence an RNN reads a row of per step then costs a row per
    step, not the whole sequence (the other rows keep their values, bar the sign of a zero)."""
    if total is None:
        return grad
    for row, dense in ((grad, total), (total, grad)):
        if _one_row(row) and row.type == dense.type:
            _, index, value = row.op.operands
            return b.write_row(dense, index, b.add(b.read_row(dense, index), value))
    return b.add(total, grad)


def _one_row(value: Value) -> bool:
    """Whether `value` is write_row(zeros, index, row)."""
    return isinstance(value, OpResult) and value.op.name == "write_row" and _is_zeros(value.op.operands[0])


def _is_zeros(value: Value) -> bool:
    """Zeros as `filled` makes them: a constant, a broadcast scalar, or where(true, 0, like)."""

    def zero(v: Value) -> bool:
        number = splat(v)
        return number is not None and number == 0

    if zero(value):
        return True
    if not isinstance(value, OpResult):
        return False
    if value.op.name == "broadcast_to":
        return zero(value.op.operands[0])
    if value.op.name == "where":
        condition, then, _ = value.op.operands
        known = splat(condition)
        return known is not None and bool(known) and zero(then)
    return False
