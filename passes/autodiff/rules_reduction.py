"""Gradient rules of the reductions and of matmul."""

from __future__ import annotations

import math

from flowc.ir import Builder, Operation, Value
from flowc.ir.op import normalize_axes

from .build import broadcast_like, ones_like, unbroadcast
from .rules import Grads, number, vjp


def reduced_axes(op: Operation) -> tuple[int, ...]:
    return normalize_axes(op.name, op.axes, op.operands[0].type.rank)


def keep_dims(b: Builder, op: Operation, value: Value) -> Value:
    """A reduction's result (or its cotangent) with the reduced axes back as size 1."""
    if op.keepdims:
        return value
    for axis in reduced_axes(op):  # ascending, so each axis lands where it was
        value = b.expand_dims(value, axis=axis)
    return value


@vjp("reduce_sum")
def reduce_sum_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [broadcast_like(b, keep_dims(b, op, dy), op.operands[0])]


@vjp("reduce_mean")
def reduce_mean_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands
    sizes = [x.type.shape[a] for a in reduced_axes(op)]
    if None in sizes:  # the count is only known at run time: sum ones (Note [unknown dims in gradients])
        count = b.reduce_sum(ones_like(b, x), axes=reduced_axes(op), keepdims=True)
    else:
        count = number(b, math.prod(sizes), x)
    return [broadcast_like(b, b.div(keep_dims(b, op, dy), count), x)]  # divide before the broadcast: fewer


@vjp("reduce_max", "reduce_min")
def reduce_extremum_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands  # shared equally among ties, as TensorFlow's _MaxGrad and _MinGrad
    chosen = b.cast(b.equal(x, keep_dims(b, op, op.result)), dtype=x.type.dtype)
    ties = b.reduce_sum(chosen, axes=reduced_axes(op), keepdims=True)
    return [b.mul(b.div(chosen, ties), keep_dims(b, op, dy))]


@vjp("matmul")
def matmul_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    x, y = op.operands
    if not op.transpose_a and not op.transpose_b:  # x @ y
        grads = [b.matmul(dy, y, transpose_b=True), b.matmul(x, dy, transpose_a=True)]
    elif not op.transpose_a:  # x @ y^T
        grads = [b.matmul(dy, y), b.matmul(dy, x, transpose_a=True)]
    elif not op.transpose_b:  # x^T @ y
        grads = [b.matmul(y, dy, transpose_b=True), b.matmul(x, dy)]
    else:  # x^T @ y^T
        grads = [b.matmul(y, dy, transpose_a=True, transpose_b=True),
                 b.matmul(dy, x, transpose_a=True, transpose_b=True)]
    return [unbroadcast(b, g, v.type) for g, v in zip(grads, op.operands)]  # batch dims that broadcast
