"""fc.math: TF1's tf.math namespace, the aliases of functions defined elsewhere."""

from .elementwise_math_ops import (acos, asin, atan, atan2, ceil, cos, cosh, erf, expm1, floor,  # noqa: F401
                                   floordiv, floormod, log1p, reciprocal, round, sign, sin, sinh,
                                   squared_difference, tan, truediv)
from .math_ops import (abs, add, divide, equal, exp, greater, greater_equal, less, less_equal, log,  # noqa: F401
                       logical_and, logical_not, logical_or, maximum, minimum, multiply, negative, not_equal, pow,
                       reduce_max, reduce_mean, reduce_min, reduce_sum, rsqrt, sigmoid, sqrt, square, subtract, tanh)
from .math_ops import argmax, argmin  # noqa: F401

mod = floormod
floor_div = floordiv
