"""fc.math: TensorFlow's `tf.math` names of ops that flowc has at the top level (or in fc.nn).

>>> import flowc as fc
>>> fc.math.reduce_prod is fc.reduce_prod
True
"""

from .math_ops import (abs, add, argmax, argmin, equal, exp, greater, greater_equal, less, less_equal, log,
                       logical_and, logical_not, logical_or, maximum, minimum, multiply, negative, not_equal, pow,
                       reduce_max, reduce_mean, reduce_min, reduce_sum, rsqrt, sigmoid, sqrt, square, subtract,
                       tanh)
from .math_ops import divide
from .reduction_ops import (add_n, cumprod, cumsum, in_top_k, reduce_all, reduce_any, reduce_logsumexp, reduce_prod,
                            top_k)

__all__ = ["abs", "add", "add_n", "argmax", "argmin", "cumprod", "cumsum", "divide", "equal", "exp", "greater",
           "greater_equal", "in_top_k", "less", "less_equal", "log", "logical_and", "logical_not", "logical_or",
           "maximum", "minimum", "multiply", "negative", "not_equal", "pow", "reduce_all", "reduce_any",
           "reduce_logsumexp", "reduce_max", "reduce_mean", "reduce_min", "reduce_prod", "reduce_sum", "rsqrt",
           "sigmoid", "sqrt", "square", "subtract", "tanh", "top_k"]
