"""fc.math: TensorFlow's `tf.math` names of ops that flowc has at the top level (or in fc.nn).

>>> import flowc as fc
>>> fc.math.reduce_prod is fc.reduce_prod
True
"""

from .elementwise_math_ops import (acos, asin, atan, atan2, ceil, cos, cosh, erf, expm1, floor, floordiv, floormod,
                                   log1p, reciprocal, round, sign, sin, sinh, squared_difference, tan, truediv)
from .math_ops import (abs, add, argmax, argmin, divide, equal, exp, greater, greater_equal, less, less_equal, log,
                       logical_and, logical_not, logical_or, maximum, minimum, multiply, negative, not_equal, pow,
                       reduce_max, reduce_mean, reduce_min, reduce_sum, rsqrt, sigmoid, sqrt, square, subtract,
                       tanh)
from .reduction_ops import (add_n, cumprod, cumsum, in_top_k, reduce_all, reduce_any, reduce_logsumexp, reduce_prod,
                            top_k)
from .index_ops import segment_sum, unsorted_segment_sum

mod = floormod
floor_div = floordiv

__all__ = ["abs", "acos", "add", "add_n", "argmax", "argmin", "asin", "atan", "atan2", "ceil", "cos", "cosh",
           "cumprod", "cumsum", "divide", "equal", "erf", "exp", "expm1", "floor", "floor_div", "floordiv",
           "floormod", "greater", "greater_equal", "in_top_k", "less", "less_equal", "log", "log1p", "logical_and",
           "logical_not", "logical_or", "maximum", "minimum", "mod", "multiply", "negative", "not_equal", "pow",
           "reciprocal", "reduce_all", "reduce_any", "reduce_logsumexp", "reduce_max", "reduce_mean", "reduce_min",
           "reduce_prod", "reduce_sum", "round", "rsqrt", "segment_sum", "sigmoid", "sign", "sin", "sinh", "sqrt", "square",
           "squared_difference", "subtract", "tan", "tanh", "top_k", "truediv", "unsorted_segment_sum"]
