"""TF1's elementwise math beyond the basics: trigonometry, erf, log1p / expm1, rounding, floor division.

sin, cos, atan, erf, log1p, expm1, floor, ceil, round, sign, floordiv and floormod are IR ops
(ir/ops/elementwise_math.py); the rest are composed here from IR ops, which fuse into the same loop
and differentiate through their parts: tan = sin / cos, asin and acos through atan, sinh and cosh
through expm1 and exp, atan2 through atan with C99's quadrants, reciprocal = 1 / x,
squared_difference = (x - y)^2.
"""

from __future__ import annotations

import math
from typing import Any

from flowc.ir.errors import FlowcTypeError

from .graph import Tensor, name_scope
from .math_ops import (_binary, _operands, _unary, abs, apply, convert_to_tensor, divide, equal, exp, less,
                       logical_and, logical_or, multiply, negative, sqrt, square, subtract, where)
from .sources import user_location

sin = _unary("sin", "Sin")
cos = _unary("cos", "Cos")
atan = _unary("atan", "Atan")
erf = _unary("erf", "Erf")
log1p = _unary("log1p", "Log1p")
expm1 = _unary("expm1", "Expm1")
floor = _unary("floor", "Floor")
ceil = _unary("ceil", "Ceil")
_round = _unary("round", "Round")
sign = _unary("sign", "Sign")
floordiv = _binary("floordiv", "floordiv")
floormod = _binary("floormod", "floormod")
floor_div = floordiv
mod = floormod
floordiv.__doc__ = ("x // y, rounded toward -inf (Python's //). Integer x // 0 is 0 (numpy's value, "
                    "where TensorFlow raises), never a trap.")
floormod.__doc__ = "x % y with the sign of y (Python's %). Integer x % 0 is 0 (numpy's value), never a trap."


def round(x: Any, name: str | None = None) -> Tensor:
    """x rounded to the nearest integer, halves to even (TF1's tf.round): 0.5 -> 0, 1.5 -> 2, -2.5 -> -2.
    An integer tensor is returned as it is (an identity op), as TF1's Round does for integers."""
    x = convert_to_tensor(x)
    if x.dtype.is_int:
        return apply("identity", (x,), name=name or "Round")
    return _round(x, name=name)


def _float(x: Any, op: str) -> Tensor:
    x = convert_to_tensor(x)
    if not x.dtype.is_float:
        raise FlowcTypeError(f"{op} needs a float tensor, got {x.type}; use fc.cast(x, fc.float32) first",
                             op=op, where=user_location())
    return x


def reciprocal(x: Any, name: str | None = None) -> Tensor:
    """1 / x, elementwise, for floats."""
    x = _float(x, "reciprocal")
    with name_scope(name or "Reciprocal"):
        return divide(1.0, x)


def squared_difference(x: Any, y: Any, name: str | None = None) -> Tensor:
    """(x - y)^2, elementwise, with broadcasting."""
    a, b = _operands(x, y)
    with name_scope(name or "SquaredDifference"):
        return square(subtract(a, b))


def truediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y; integers are cast to a float first, as TF1's truediv does (fc.divide says which)."""
    a, b = _operands(x, y)
    if a.dtype != b.dtype:
        raise FlowcTypeError(f"x and y must have one dtype, got {a.type} and {b.type}", op="truediv",
                             where=user_location())
    if a.dtype.is_bool:
        raise FlowcTypeError(f"truediv needs numbers, got {a.type}", op="truediv", where=user_location())
    return divide(a, b, name=name or "truediv")


def tan(x: Any, name: str | None = None) -> Tensor:
    """sin(x) / cos(x)."""
    x = _float(x, "tan")
    with name_scope(name or "Tan"):
        return divide(sin(x), cos(x))


def asin(x: Any, name: str | None = None) -> Tensor:
    """Arcsine: atan(x / sqrt((1 - x)(1 + x))); +-pi/2 at +-1, NaN beyond."""
    x = _float(x, "asin")
    with name_scope(name or "Asin"):
        return atan(divide(x, sqrt(multiply(subtract(1.0, x), x + 1.0))))


def acos(x: Any, name: str | None = None) -> Tensor:
    """Arccosine: 2 atan(sqrt((1 - x) / (1 + x))); pi at -1, NaN beyond +-1."""
    x = _float(x, "acos")
    with name_scope(name or "Acos"):
        return multiply(2.0, atan(sqrt(divide(subtract(1.0, x), x + 1.0))))


def sinh(x: Any, name: str | None = None) -> Tensor:
    """(e^x - e^-x) / 2 from e = expm1(|x|): (e + e / (e + 1)) / 2, sign restored (exact for small |x|)."""
    x = _float(x, "sinh")
    with name_scope(name or "Sinh"):
        e = expm1(abs(x))
        shrunk = where(equal(e, float("inf")), 1.0, divide(e, e + 1.0))  # e^-|x| - 1 = -e / (e + 1); not inf/inf
        magnitude = multiply(0.5, e + shrunk)
        return where(x < 0.0, -magnitude, where(apply("equal", (x, convert_to_tensor(0.0, x.dtype))), x, magnitude))


def cosh(x: Any, name: str | None = None) -> Tensor:
    """(e^x + e^-x) / 2 from e = exp(|x|); overflows to inf where e does (|x| > ~709.78 in float64)."""
    x = _float(x, "cosh")
    with name_scope(name or "Cosh"):
        e = exp(abs(x))
        return multiply(0.5, e) + divide(0.5, e)


def _sign_bit(x: Tensor) -> Tensor:
    """x < 0, or x is -0.0 (1 / -0.0 is -inf)."""
    zero = convert_to_tensor(0.0, x.dtype)
    return logical_or(less(x, zero), logical_and(equal(x, zero), less(divide(1.0, x), zero)))


def atan2(y: Any, x: Any, name: str | None = None) -> Tensor:
    """The angle of the point (x, y), in [-pi, pi], with C99's (and numpy's) signed zeros and infinities:
    atan2(+-0, -0) = +-pi, atan2(+-inf, -inf) = +-3pi/4, atan2(+-inf, +inf) = +-pi/4.

    atan(|y| / |x|), pi/4 where both are infinite and 0 where both are zero, reflected to pi - a
    where x's sign bit is set, then given y's sign."""
    y, x = _operands(y, x)
    _float(y, "atan2")
    with name_scope(name or "Atan2"):
        magnitude_y, magnitude_x = abs(y), abs(x)
        inf = convert_to_tensor(float("inf"), x.dtype)
        angle = atan(divide(magnitude_y, magnitude_x))
        angle = where(logical_and(equal(magnitude_y, inf), equal(magnitude_x, inf)), math.pi / 4, angle)
        zero = convert_to_tensor(0.0, x.dtype)
        angle = where(logical_and(equal(magnitude_y, zero), equal(magnitude_x, zero)), 0.0, angle)
        angle = where(_sign_bit(x), subtract(math.pi, angle), angle)
        return where(_sign_bit(y), negative(angle), angle)
