"""More elementwise math (TF1's tf.math): trigonometry, erf, log1p / expm1, rounding, floor division.

Each function is the numpy meaning of the op it declares, as in elementwise.py. The rounding ops
and `sign` are piecewise constant, so they carry no gradient (TensorFlow's Floor, Ceil and Round
have none, Sign's is zero); floordiv has none either, floormod has one.

Integer floordiv and floormod follow Python (and TensorFlow): the quotient rounds toward -inf and
the remainder takes the divisor's sign. Division by zero is defined rather than a trap, as numpy
defines it: x // 0 = 0 and x % 0 = 0. The most negative integer // -1 wraps to itself (numpy's
result too), and its % -1 is 0.
"""

from __future__ import annotations

import math

import numpy as np

from ..op import binary, unary
from ..types import FLOATS, NUMERIC

# -- transcendentals: native approximations in codegen/llvm/mathlib_special.py -----------------


@unary("sin", dtypes=FLOATS, transcendental=True)
def sin(x: np.ndarray) -> np.ndarray:
    """Sine; NaN at +-inf."""
    return np.sin(x)


@unary("cos", dtypes=FLOATS, transcendental=True)
def cos(x: np.ndarray) -> np.ndarray:
    """Cosine; NaN at +-inf."""
    return np.cos(x)


@unary("atan", dtypes=FLOATS, transcendental=True)
def atan(x: np.ndarray) -> np.ndarray:
    """Arctangent, in (-pi/2, pi/2); +-pi/2 at +-inf."""
    return np.arctan(x)


@unary("erf", dtypes=FLOATS, transcendental=True)
def erf(x: np.ndarray) -> np.ndarray:
    """The error function 2/sqrt(pi) * integral of exp(-t^2) from 0 to x; +-1 at +-inf."""
    return _erf(x)


def _erf(x: np.ndarray) -> np.ndarray:
    # numpy has no erf: math.erf (C99's, correctly rounded to a few ulp in float64) per element.
    flat = np.asarray(x).ravel()
    result = np.fromiter((math.erf(float(v)) for v in flat), dtype=np.float64, count=flat.size)
    return result.astype(x.dtype).reshape(np.shape(x))


@unary("log1p", dtypes=FLOATS, transcendental=True)
def log1p(x: np.ndarray) -> np.ndarray:
    """log(1 + x), accurate for small |x|; -inf at -1, NaN below."""
    return np.log1p(x)


@unary("expm1", dtypes=FLOATS, transcendental=True)
def expm1(x: np.ndarray) -> np.ndarray:
    """e ** x - 1, accurate for small |x|; -1 at -inf."""
    return np.expm1(x)


# -- rounding and sign: exact, no gradient --------------------------------------------------------


@unary("floor", dtypes=FLOATS, differentiable=False)
def floor(x: np.ndarray) -> np.ndarray:
    """The largest integer <= x; -0.0, infinities and NaN stay."""
    return np.floor(x)


@unary("ceil", dtypes=FLOATS, differentiable=False)
def ceil(x: np.ndarray) -> np.ndarray:
    """The smallest integer >= x; ceil(-0.5) = -0.0."""
    return np.ceil(x)


@unary("round", dtypes=FLOATS, differentiable=False)
def round_(x: np.ndarray) -> np.ndarray:
    """The nearest integer, halves to even (banker's rounding, as TensorFlow's Round): 2.5 -> 2."""
    return np.rint(x)


@unary("sign", dtypes=NUMERIC, differentiable=False)
def sign(x: np.ndarray) -> np.ndarray:
    """-1, 0 or 1 by the sign of x; sign(-0.0) = 0 and NaN stays NaN."""
    return np.sign(x)


# -- floor division --------------------------------------------------------------------------------


@binary("floordiv", dtypes=NUMERIC, differentiable=False, costly=True)
def floordiv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """floor(x / y), Python's //; for floats, numpy's floor_divide (x // 0 is +-inf or NaN)."""
    return np.floor_divide(x, y)


@binary("floormod", dtypes=NUMERIC, costly=True)
def floormod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x - floor(x / y) * y, Python's %: the result has the sign of y; x % 0 is 0 (integers), NaN (floats)."""
    return np.remainder(x, y)
