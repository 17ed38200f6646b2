"""Gradient rules of the collectives (ir/ops/collective.py).

all_reduce(sum) is linear in every rank's operand: y = sum_r x_r on every rank, so the gradient of
rank r's x is the sum over ranks of each rank's cotangent of y, another all_reduce(sum). Every rank
that ran the forward op runs its backward op too, in reverse order, so the ranks' collectives stay
matched (Note [collectives are ordered effects]).

A max or min reduction is refused (the gradient would need the arg-max rank). broadcast is not
differentiable (its `differentiable` is off, so no gradient flows through it, as through
stop_gradient): it is how ranks start from one set of values (broadcast_global_variables), not a
step of a loss, and its gradient would need a reduction to the root alone, an op of its own for a
use no model has.
"""

from __future__ import annotations

from flowc.ir import Builder, Operation, Value

from .build import match_type
from .rules import Grads, unsupported, vjp


@vjp("all_reduce")
def all_reduce_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    if op.reduction != "sum":
        raise unsupported(op, f"all_reduce's {op.reduction} reduction is not differentiated; only sum is")
    return [b.all_reduce(match_type(b, dy, op.result), reduction="sum")]

