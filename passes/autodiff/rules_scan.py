"""Gradient rules of reduce_prod, the scans (cumsum, cumprod) and top_k.

Note [products without division]
TensorFlow 1's cumprod gradient divides by x (NaN where x is 0), and its reduce_prod gradient takes
the product of the others from two exclusive cumprods. Both rules here are exact at zeros:
reduce_prod's takes the product of all other elements from exclusive cumprods (one axis at a
time), never dividing; cumprod's divides only by non-zero x, and at the first zero along a line
(the only zero whose gradient is not 0) sums the products of the line with that zero taken as 1.
"""

from __future__ import annotations

from flowc.ir import Builder, Operation, Value
from flowc.ir.types import int32

from .build import broadcast_like, ones_like, scalar, zeros_like
from .rules import Grads, vjp
from .rules_reduction import keep_dims, reduced_axes


@vjp("reduce_prod")
def reduce_prod_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands
    axes = reduced_axes(op)
    others: Value | None = None  # the product of every other element of each one's group
    for number, axis in enumerate(axes):
        # Over the axes after this one, each group's partial products; along this one, all but self.
        later = axes[number + 1:]
        partial = b.reduce_prod(x, axes=later, keepdims=True) if later else x
        before = b.cumprod(partial, axis=axis, exclusive=True)
        after = b.cumprod(partial, axis=axis, exclusive=True, reverse=True)
        part = b.mul(before, after)
        others = part if others is None else b.mul(others, part)
    grad = keep_dims(b, op, dy) if others is None else b.mul(others, keep_dims(b, op, dy))
    return [broadcast_like(b, grad, x)]


@vjp("cumsum")
def cumsum_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    """Each x reaches the outputs after it on the walk: the same scan, walked the other way."""
    return [b.cumsum(dy, axis=op.axis, exclusive=op.exclusive, reverse=not op.reverse)]


@vjp("cumprod")
def cumprod_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    """Note [products without division]."""
    (x,) = op.operands
    if not x.type.dtype.is_float:
        return [None]

    def back(value: Value) -> Value:  # sum over the outputs each x reaches, as cumsum's rule
        return b.cumsum(value, axis=op.axis, exclusive=op.exclusive, reverse=not op.reverse)

    ones = ones_like(b, x)
    zero = b.equal(x, zeros_like(b, x))
    seen = b.cumsum(b.cast(zero, dtype=x.type.dtype), axis=op.axis, reverse=op.reverse)  # zeros so far
    first = b.logical_and(zero, b.equal(seen, ones))
    plain = b.div(back(b.mul(dy, op.result)), b.where(zero, ones, x))
    without = b.cumprod(b.where(first, ones, x), axis=op.axis, exclusive=op.exclusive, reverse=op.reverse)
    at_first = back(b.mul(dy, without))
    return [b.where(first, at_first, b.where(zero, zeros_like(b, x), plain))]


@vjp("top_k", all_results=True)
def top_k_vjp(b: Builder, op: Operation, douts: list[Value | None]) -> Grads:
    """Each value's cotangent goes back to the entry it was taken from: a one-hot of its index
    over the row, summed over the k values (the indices are distinct within a row). A k that is data
    (a data_dim operand) gets none."""
    dvalues = douts[0]
    sizes = [None] * (len(op.operands) - 1)
    if dvalues is None:
        return [None, *sizes]
    x = op.operands[0]
    rank = x.type.rank
    # Each entry's index along the row, from a scan of ones: no static row length needed.
    positions = b.cumsum(b.cast(ones_like(b, x), dtype=int32), axis=rank - 1, exclusive=True)
    hit = b.equal(b.expand_dims(positions, axis=rank), b.expand_dims(op.results[1], axis=rank - 1))  # [..., n, k]
    picked = b.where(hit, b.expand_dims(dvalues, axis=rank - 1), scalar(b, 0, x.type.dtype))
    return [b.reduce_sum(picked, axes=(rank,), keepdims=False), *sizes]



