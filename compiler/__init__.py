"""flowc: a compiler from dataflow graphs to fused native code.

>>> import flowc as fc
>>> g = fc.Graph()
>>> with g.as_default():
...     x = fc.placeholder(fc.float32, shape=[None, 2], name="x")
...     s = fc.reduce_sum(x * x, axis=1)
>>> with fc.Session(graph=g) as sess:
...     sess.run(s, {"x:0": [[1.0, 2.0], [3.0, 4.0]]})
array([ 5., 25.], dtype=float32)
"""

from flowc.ir.types import (DType, as_dtype, bool_, float16, float32, float64, int8, int16, int32, int64, uint8,
                            uint16)

from . import errors, nest, nn
from .array_ops import (
    broadcast_to,
    concat,
    ensure_shape,
    expand_dims,
    fill,
    gather,
    one_hot,
    ones,
    ones_like,
    placeholder,
    reshape,
    squeeze,
    stack,
    strided_slice,
    transpose,
    zeros,
    zeros_like,
)
from .control_flow import case, cond, while_loop
from .errors import FlowcError
from .function import custom_gradient, function, recompute_grad
from .gradients import gradients, stop_gradient
from .jit import TensorSpec, jit
from .jit_grad import grad, value_and_grad
from .graph import (
    Graph,
    Operation,
    Tensor,
    control_dependencies,
    device,
    get_default_graph,
    name_scope,
    reset_default_graph,
    set_random_seed,
)
from .graph_def import import_graph_def, write_graph
from .math_ops import (
    abs,
    add,
    argmax,
    argmin,
    cast,
    constant,
    convert_to_tensor,
    divide,
    equal,
    exp,
    greater,
    greater_equal,
    identity,
    less,
    less_equal,
    log,
    logical_and,
    logical_not,
    logical_or,
    matmul,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    pow,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_sum,
    relu,
    rsqrt,
    sigmoid,
    sqrt,
    square,
    subtract,
    tanh,
    where,
)
from .random_ops import multinomial, random_normal, random_shuffle, random_uniform, truncated_normal
from .nn_ops import clip_by_global_norm, clip_by_norm, clip_by_value, global_norm
from . import random  # noqa: E402  (fc.random.categorical etc.)
from .reduction_ops import add_n, cumprod, cumsum, reduce_all, reduce_any, reduce_logsumexp, reduce_prod
from .elementwise_math_ops import (acos, asin, atan, atan2, ceil, cos, cosh, erf, expm1, floor, floor_div, floordiv,
                                   floormod, log1p, mod, reciprocal, round, sign, sin, sinh, squared_difference, tan,
                                   truediv)
from .session import Session
from .state_ops import (
    Variable,
    assign,
    assign_add,
    assign_sub,
    global_variables,
    global_variables_initializer,
    group,
    no_op,
    trainable_variables,
    variables_initializer,
)
from . import train  # noqa: E402  (fc.train.AdamOptimizer etc., built on the ops above)
from .aot import export  # noqa: E402  (ahead of time: DIR/libNAME.so + DIR/NAME.h)
from flowc.runtime.exported import load  # noqa: E402  (an exported library, called from Python)
from .tensor_array import TensorArray  # noqa: E402  (built on while_loop and cond)
from .functional_ops import foldl, foldr, map_fn, scan  # noqa: E402  (built on while_loop and TensorArray)
# Shapes read at run time, and TF1's indexing ops (these replace array_ops' static-shape versions).
from .shape_ops import broadcast_to, fill, ones, ones_like, rank, reshape, shape, size, zeros, zeros_like  # noqa: E402,F811
from .index_ops import (  # noqa: E402,F811
    boolean_mask, eye, gather, gather_nd, linspace, pad, range, reverse, scatter_nd, sequence_mask, slice, split, tile,
    unstack, where,
)
from .index_ops import segment_sum, tensor_scatter_add, tensor_scatter_nd_add, unsorted_segment_sum  # noqa: E402
from .einsum import einsum  # noqa: E402
from . import math  # noqa: E402  (fc.math.*: TensorFlow's aliases of the ops above)
from . import summary  # noqa: E402  (fc.summary.scalar, FileWriter: TensorBoard event files)
from . import debugging  # noqa: E402  (fc.debugging.assert_equal etc.: run-time checks)
from . import distribute  # noqa: E402  (fc.distribute.rank, DistributedOptimizer: data parallelism over MPI)
from .debugging import Assert, Print, check_numerics  # noqa: E402
from .debugging import print  # noqa: E402,A004  (fc.print, as tf.print)
from .initializers import *  # noqa: E402,F401,F403  (TF1's initializers: fc.zeros_initializer etc.)
from .variable_scope import AUTO_REUSE, VariableScope, get_variable, get_variable_scope, variable_scope  # noqa: E402
from . import contrib, layers, losses  # noqa: E402  (fc.layers.dense, fc.losses.*, fc.contrib.layers.l2_regularizer)
# TF1's session conveniences, shapes and deprecated spellings (issue 20 item 1).
from .session import InteractiveSession  # noqa: E402
from .tensor_shape import Dimension, TensorShape  # noqa: E402
from .tf1_session import (  # noqa: E402
    ConfigProto, GPUOptions, GraphKeys, add_to_collection, add_to_collections, get_collection, get_collection_ref,
    get_default_session,
)
from .tf1_compat import arg_max, arg_min, div, to_double, to_float, to_int32, to_int64  # noqa: E402
from .device_spec import DeviceSpec  # noqa: E402  (placement: fc.device; issue 22)

__version__ = "0.1.0"
bool = bool_  # fc.bool, as tf.bool
half = float16  # fc.half, as tf.half

__all__ = [
    "DType", "FlowcError", "Graph", "Operation", "Session", "Tensor", "Variable", "abs", "add", "argmax", "argmin",
    "assign", "assign_add", "assign_sub", "bool", "bool_", "broadcast_to", "cast", "concat", "constant",
    "control_dependencies", "convert_to_tensor", "device", "divide", "ensure_shape", "equal", "errors", "exp", "expand_dims", "fill",
    "float16", "float32", "float64", "gather", "get_default_graph", "global_variables", "global_variables_initializer",
    "greater", "greater_equal", "group", "half", "identity", "import_graph_def", "int32", "int64", "less", "less_equal",
    "log", "logical_and", "logical_not", "logical_or", "matmul", "maximum", "minimum", "multiply", "name_scope",
    "negative", "nn", "no_op", "not_equal", "one_hot", "ones", "ones_like", "placeholder", "pow", "random_normal",
    "random_uniform", "reduce_max", "reduce_mean", "reduce_min", "reduce_sum", "relu", "reset_default_graph",
    "reshape", "rsqrt", "set_random_seed", "sigmoid", "sqrt", "square", "squeeze", "stack", "strided_slice",
    "subtract", "tanh", "trainable_variables", "train", "transpose", "variables_initializer", "where", "write_graph",
    "zeros", "zeros_like",
    "as_dtype", "int8", "int16", "uint8", "uint16",  # the small integers of TF1
    "gradients", "stop_gradient",  # autodiff
    "TensorSpec", "grad", "jit", "value_and_grad",  # jit
    "case", "cond", "nest", "while_loop",  # control flow
    "custom_gradient", "function", "recompute_grad",  # functions
    "export", "load",  # ahead of time
    "TensorArray", "foldl", "foldr", "map_fn", "scan",  # built on control flow
    "boolean_mask", "einsum", "eye", "gather_nd", "linspace", "pad", "range", "rank", "reverse", "scatter_nd", "sequence_mask", "shape",
    "size", "slice", "split", "tile", "unstack",  # shapes and indexing
    "segment_sum", "tensor_scatter_add", "tensor_scatter_nd_add", "unsorted_segment_sum",  # scatter_adds
    "clip_by_global_norm", "clip_by_norm", "clip_by_value", "global_norm",  # nn helpers
    "multinomial", "random", "random_shuffle", "truncated_normal",  # sampling
    "add_n", "cumprod", "cumsum", "math", "reduce_all", "reduce_any", "reduce_logsumexp", "reduce_prod",  # reductions
    "acos", "asin", "atan", "atan2", "ceil", "cos", "cosh", "erf", "expm1", "floor", "floor_div", "floordiv", "floormod",
    "log1p", "mod", "reciprocal", "round", "sign", "sin", "sinh", "squared_difference", "tan", "truediv",
    "Assert", "Print", "check_numerics", "debugging", "print", "summary",  # checks, printing, TensorBoard
    "AUTO_REUSE", "VariableScope", "contrib", "get_variable", "get_variable_scope", "layers", "losses",
    "variable_scope", *initializers.__all__,  # TF1 variables, layers and losses
    "ConfigProto", "Dimension", "GPUOptions", "GraphKeys", "InteractiveSession", "TensorShape", "add_to_collection",
    "add_to_collections", "arg_max", "arg_min", "div", "get_collection", "get_collection_ref", "get_default_session",
    "to_double", "to_float", "to_int32", "to_int64",  # TF1's session API and deprecated spellings
    "DeviceSpec",  # placement
]
