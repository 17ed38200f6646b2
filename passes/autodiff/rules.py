"""Gradient rules, found by op name, and the rules of the elementwise ops.

A rule gets a builder, the forward op and the cotangent of its result (for
rules registered with `all_results=True`: a list with one entry per result,
None where no gradient flows) and returns one gradient per operand, None for
an operand that gets none (an index, a condition). Rules emit plain IR ops,
so the cleanups after autodiff simplify them, and reuse forward values where
that is both cheaper and stable (tanh' = 1 - y^2 from y itself).

Gradients follow TensorFlow at the kinks: relu'(0) = 0, abs'(0) = 0,
maximum and minimum send the whole gradient to x on a tie, sqrt'(0) = inf,
and reduce_max / reduce_min share it equally among tied elements
(rules_reduction.py).
Broadcasting is undone by summing (build.unbroadcast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from flowc.ir import Builder, Operation, Value
from flowc.ir.errors import FlowcError

from ..simplify import splat
from .build import scalar, unbroadcast

Grads = Sequence[Value | None]


@dataclass(frozen=True)
class Rule:
    fn: Callable[[Builder, Operation, Any], Grads]
    all_results: bool  # the rule takes a list of cotangents, one per result


VJP_RULES: dict[str, Rule] = {}


def vjp(*names: str, all_results: bool = False) -> Callable[[Callable[..., Grads]], Callable[..., Grads]]:
    """Register the gradient rule (vector-Jacobian product) of the ops of these names."""

    def register(fn: Callable[..., Grads]) -> Callable[..., Grads]:
        for name in names:
            if name in VJP_RULES:
                raise ValueError(f"op {name!r} has two gradient rules")
            VJP_RULES[name] = Rule(fn, all_results)
        return fn

    return register


def unbroadcast_all(b: Builder, op: Operation, grads: Grads) -> list[Value | None]:
    """Each operand's gradient summed back to the operand's shape."""
    return [None if g is None else unbroadcast(b, g, x.type) for g, x in zip(grads, op.operands)]


def number(b: Builder, value: float, like: Value) -> Value:
    return scalar(b, value, like.type.dtype)


def unsupported(op: Operation, why: str) -> FlowcError:
    """The error of a gradient that a rule cannot build, naming the forward op and its line."""
    return FlowcError(f"no gradient: {why}", op=op.display_name, where=op.loc)


# -- unary ----------------------------------------------------------------------


@vjp("identity")
def identity_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [dy]


@vjp("neg")
def neg_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [b.neg(dy)]


@vjp("abs")
def abs_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands  # sign(x) * dy, and 0 at x = 0 (TensorFlow's choice)
    zero = number(b, 0, x)
    return [b.where(b.greater(x, zero), dy, b.where(b.less(x, zero), b.neg(dy), zero))]


@vjp("square")
def square_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands
    return [b.mul(dy, b.mul(x, number(b, 2, x)))]


@vjp("relu")
def relu_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands  # relu'(0) = 0, and NaN lets nothing through, as TensorFlow's ReluGrad
    zero = number(b, 0, x)
    return [b.where(b.greater(x, zero), dy, zero)]


@vjp("exp")
def exp_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [b.mul(dy, op.result)]


@vjp("log")
def log_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [b.div(dy, op.operands[0])]


@vjp("tanh")
def tanh_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    y = op.result  # reuse the forward value: 1 - tanh(x)^2
    return [b.mul(dy, b.sub(number(b, 1, y), b.mul(y, y)))]


@vjp("sigmoid")
def sigmoid_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    y = op.result  # s * (1 - s): no exp of a large |x| to overflow
    return [b.mul(dy, b.mul(y, b.sub(number(b, 1, y), y)))]


@vjp("sqrt")
def sqrt_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    y = op.result  # dy / (2 sqrt(x)): inf at 0, as TensorFlow's SqrtGrad
    return [b.div(dy, b.mul(y, number(b, 2, y)))]


@vjp("rsqrt")
def rsqrt_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    y = op.result  # d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
    return [b.mul(dy, b.mul(b.mul(y, b.mul(y, y)), number(b, -0.5, y)))]


@vjp("cast")
def cast_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands  # only between floats: an integer or bool carries no gradient
    if not (x.type.dtype.is_float and op.result.type.dtype.is_float):
        return [None]
    return [b.cast(dy, dtype=x.type.dtype)]


# -- binary -------------------------------------------------------------------------


@vjp("add")
def add_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return unbroadcast_all(b, op, [dy, dy])


@vjp("sub")
def sub_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return unbroadcast_all(b, op, [dy, b.neg(dy)])


@vjp("mul")
def mul_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    x, y = op.operands
    return unbroadcast_all(b, op, [b.mul(dy, y), b.mul(dy, x)])


@vjp("div")
def div_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    _, y = op.operands  # d(x/y)/dy = -(x/y) / y
    return unbroadcast_all(b, op, [b.div(dy, y), b.div(b.neg(b.mul(dy, op.result)), y)])


@vjp("pow")
def pow_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    x, y = op.operands
    dx = b.mul(dy, b.mul(y, b.pow(x, b.sub(y, number(b, 1, y)))))
    # d/dy = x^y log(x), taken as 0 where x <= 0 (TensorFlow's choice); the log only ever sees x > 0,
    # so a second derivative is finite too.
    positive = b.greater(x, number(b, 0, x))
    log_x = b.where(positive, b.log(b.where(positive, x, number(b, 1, x))), number(b, 0, x))
    return unbroadcast_all(b, op, [dx, b.mul(dy, b.mul(op.result, log_x))])


@vjp("maximum", "minimum")
def min_max_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    x, y = op.operands  # a tie sends the gradient to x, as TensorFlow's _MaximumGrad
    pick_x = b.greater_equal(x, y) if op.name == "maximum" else b.less_equal(x, y)
    zero = number(b, 0, dy)
    return unbroadcast_all(b, op, [b.where(pick_x, dy, zero), b.where(pick_x, zero, dy)])


@vjp("where")
def where_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    condition, _, _ = op.operands
    zero = number(b, 0, dy)
    known = splat(condition)  # where(true, v, like) broadcasts v (build.filled): `like` gets nothing
    d_then = None if known is not None and not bool(known) else b.where(condition, dy, zero)
    d_else = None if known is not None and bool(known) else b.where(condition, zero, dy)
    return unbroadcast_all(b, op, [None, d_then, d_else])
