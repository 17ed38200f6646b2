"""Elementwise ops: each function is the numpy meaning of the op it declares.

Binary ops take operands of one dtype (as TensorFlow does: no implicit
promotion) and broadcast like numpy. Float-only ops list FLOATS.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import FlowcTypeError
from ..op import TernaryOp, UnaryOp, binary, broadcast_shapes, check_broadcast, comparison, unary
from ..types import DTYPES, FLOATS, NUMERIC, DType, TensorType, as_dtype, bool_

BOOL = (bool_,)

# -- unary --------------------------------------------------------------------


@unary("neg")
def neg(x: np.ndarray) -> np.ndarray:
    """-x."""
    return np.negative(x)


@unary("abs")
def abs_(x: np.ndarray) -> np.ndarray:
    """|x|."""
    return np.abs(x)


@unary("square")
def square(x: np.ndarray) -> np.ndarray:
    """x * x."""
    return np.multiply(x, x)


@unary("relu")
def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0); NaN stays NaN."""
    return np.where(x < 0, np.zeros_like(x), x)


@unary("exp", dtypes=FLOATS, transcendental=True)
def exp(x: np.ndarray) -> np.ndarray:
    """e ** x."""
    return np.exp(x)


@unary("log", dtypes=FLOATS, transcendental=True)
def log(x: np.ndarray) -> np.ndarray:
    """Natural logarithm; -inf at 0, NaN below."""
    return np.log(x)


@unary("tanh", dtypes=FLOATS, transcendental=True)
def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


@unary("sigmoid", dtypes=FLOATS, transcendental=True)
def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e**-x), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@unary("sqrt", dtypes=FLOATS, costly=True)
def sqrt(x: np.ndarray) -> np.ndarray:
    """Square root; NaN below 0."""
    return np.sqrt(x)


@unary("rsqrt", dtypes=FLOATS, costly=True)
def rsqrt(x: np.ndarray) -> np.ndarray:
    """1 / sqrt(x)."""
    return np.divide(1, np.sqrt(x)).astype(x.dtype, copy=False)


@unary("logical_not", dtypes=BOOL, differentiable=False)
def logical_not(x: np.ndarray) -> np.ndarray:
    """not x."""
    return np.logical_not(x)


@unary("identity", dtypes=DTYPES)
def identity(x: np.ndarray) -> np.ndarray:
    """x itself; the front end's tf.identity and snapshot of a variable read."""
    return np.array(x, copy=True)


# -- binary -------------------------------------------------------------------


@binary("add")
def add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y."""
    return np.add(x, y)


@binary("sub")
def sub(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x - y."""
    return np.subtract(x, y)


@binary("mul")
def mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * y."""
    return np.multiply(x, y)


@binary("div", dtypes=FLOATS, costly=True)
def div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x / y, IEEE: x/0 is +-inf or NaN. Floats only: cast integers first."""
    return np.divide(x, y)


@binary("pow", dtypes=FLOATS, transcendental=True)
def pow_(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y, with every special case of C99 Annex F (F.9.4.4), as IEEE 754's pow:

    - pow(x, +-0) = 1 for any x, even NaN; pow(+1, y) = 1 for any y, even NaN; pow(-1, +-inf) = 1;
    - pow(x, y) = NaN for finite x < 0 and finite non-integer y;
    - pow(+-0, y) = +-inf for y an odd integer < 0, +inf for other y < 0 (and -inf), +-0 for y an
      odd integer > 0, +0 for other y > 0;
    - pow(+-inf, y): -inf to an odd integer y > 0 is -inf, to an odd integer y < 0 is -0; otherwise
      +inf for y > 0 and +0 for y < 0;
    - pow(x, -inf) = +inf for |x| < 1 and +0 for |x| > 1; pow(x, +inf) the other way round;
    - otherwise NaN in, NaN out.

    numpy alone is not this: its scalar path (the 0-d arrays of a folded constant) takes sqrt for
    y = 0.5, giving pow(-inf, 0.5) = NaN and pow(-0, 0.5) = -0, where its array loops give C's
    +inf and +0. So the cases are set here, whichever loop numpy picks.
    """
    x, y = np.broadcast_arrays(x, y)
    result = np.asarray(np.power(x, y))
    inf, zero, one = x.dtype.type(np.inf), x.dtype.type(0), x.dtype.type(1)
    y_integer = np.floor(y) == y  # true for +-inf, false for NaN
    y_odd = y_integer & (np.floor(y / 2) != y / 2)
    x_zero_or_inf = (x == 0) | np.isinf(x)
    # +-0 and +-inf bases: a zero or infinite magnitude, signed as x only for an odd integer y.
    magnitude = np.where((x == 0) == (y < 0), inf, zero)
    edge = np.where(y_odd, np.copysign(magnitude, x), magnitude)
    result = np.where(x_zero_or_inf & ~np.isnan(y), edge, result)
    # Infinite exponents of other bases: |x| < 1 shrinks to 0 under +inf, |x| > 1 grows.
    grows = np.where((np.abs(x) > 1) == (y > 0), inf, zero)
    result = np.where(np.isinf(y) & np.isfinite(x) & (x != 0) & (np.abs(x) != 1), grows, result)
    result = np.where((x < 0) & np.isfinite(x) & np.isfinite(y) & ~y_integer, x.dtype.type(np.nan), result)
    return np.where((y == 0) | (x == 1) | ((x == -1) & np.isinf(y)), one, result)


@binary("maximum")
def maximum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Larger of x and y; NaN if either is NaN."""
    return np.maximum(x, y)


@binary("minimum")
def minimum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smaller of x and y; NaN if either is NaN."""
    return np.minimum(x, y)


@binary("logical_and", dtypes=BOOL, differentiable=False)
def logical_and(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x and y."""
    return np.logical_and(x, y)


@binary("logical_or", dtypes=BOOL, differentiable=False)
def logical_or(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x or y."""
    return np.logical_or(x, y)


# -- comparisons: bool results ----------------------------------------------


@comparison("equal", dtypes=DTYPES)
def equal(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x == y."""
    return np.equal(x, y)


@comparison("not_equal", dtypes=DTYPES)
def not_equal(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x != y."""
    return np.not_equal(x, y)


@comparison("less")
def less(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x < y."""
    return np.less(x, y)


@comparison("less_equal")
def less_equal(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x <= y."""
    return np.less_equal(x, y)


@comparison("greater")
def greater(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x > y."""
    return np.greater(x, y)


@comparison("greater_equal")
def greater_equal(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x >= y."""
    return np.greater_equal(x, y)


# -- ops with their own type rule ---------------------------------------------


class Where(TernaryOp):
    """where(cond, x, y): x where cond is true, else y; all three broadcast."""

    name = "where"

    def infer_type(self, cond: TensorType, x: TensorType, y: TensorType) -> TensorType:
        if cond.dtype != bool_:
            raise FlowcTypeError(f"condition must be bool, got {cond}", op=self.name)
        if x.dtype != y.dtype:
            raise FlowcTypeError(f"branches must have one dtype, got {x} and {y}", op=self.name)
        return TensorType(x.dtype, broadcast_shapes(self.name, cond.shape, x.shape, y.shape))

    def reference(self, cond: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        check_broadcast(self.name, (cond, x, y))
        return np.where(cond, x, y)


class Cast(UnaryOp):
    """cast(x) to `dtype`; float to int truncates toward zero, to bool is x != 0."""

    name = "cast"
    attrs = {"dtype": DType}
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES

    @classmethod
    def normalize_attributes(cls, attributes: dict) -> dict:
        attributes = super().normalize_attributes(attributes)
        return {**attributes, "dtype": as_dtype(attributes["dtype"])}

    def infer_type(self, x: TensorType) -> TensorType:
        return x.with_dtype(self.dtype)

    def reference(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):  # a float too big for float16 becomes inf
            return x.astype(self.dtype.np)


__all__ = ["NUMERIC"]
