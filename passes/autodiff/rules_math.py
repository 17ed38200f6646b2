"""Gradient rules of the elementwise math of ir/ops/elementwise_math.py.

The rounding ops, sign and floordiv carry none (not differentiable, as TensorFlow's Floor, Ceil,
Round and FloorDiv; Sign's gradient is zero there too).
"""

from __future__ import annotations

import math

from flowc.ir import Builder, Operation, Value

from .rules import Grads, number, unbroadcast_all, vjp


@vjp("sin")
def sin_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [b.mul(dy, b.cos(op.operands[0]))]


@vjp("cos")
def cos_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [b.neg(b.mul(dy, b.sin(op.operands[0])))]


@vjp("atan")
def atan_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands  # 1 / (1 + x^2)
    return [b.div(dy, b.add(number(b, 1, x), b.mul(x, x)))]


@vjp("erf")
def erf_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands  # 2/sqrt(pi) * exp(-x^2)
    return [b.mul(dy, b.mul(number(b, 2 / math.sqrt(math.pi), x), b.exp(b.neg(b.mul(x, x)))))]


@vjp("log1p")
def log1p_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands
    return [b.div(dy, b.add(number(b, 1, x), x))]


@vjp("expm1")
def expm1_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    y = op.result  # e^x = expm1(x) + 1, from the forward value
    return [b.mul(dy, b.add(y, number(b, 1, y)))]


@vjp("floormod")
def floormod_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    x, y = op.operands  # x % y = x - floor(x / y) * y: dx = dy, dy = -floor(x / y) * dy (TensorFlow's)
    if not x.type.dtype.is_float:
        return [None, None]
    return unbroadcast_all(b, op, [dy, b.neg(b.mul(dy, b.floordiv(x, y)))])
