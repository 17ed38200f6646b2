"""fc.layers: TensorFlow 1's functional layers (tf.layers.dense, conv2d, batch_normalization, ...).

Each layer opens a variable scope (its `name`, else its kind made unique: "dense", "dense_1")
and makes its Variables there with get_variable, so they are named as TensorFlow names them
("dense/kernel", "dense/bias", "conv2d/kernel", "batch_normalization/gamma") and `reuse=True`
(or an enclosing reusing scope) shares them. The computation is built on fc.nn's ops.

Note [batch norm updates]: in training, batch_normalization moves its moving mean and variance
towards the batch's by assign ops that nothing fetched depends on; as in TensorFlow, they are
put in the UPDATE_OPS collection, and a training step runs them when the user makes it depend
on them (`with fc.control_dependencies(fc.get_collection(fc.GraphKeys.UPDATE_OPS)):
train = opt.minimize(loss)`). `training` may be a bool tensor: then the update's step is
(1 - momentum) times training, zero at inference, so one graph serves both.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from flowc.ir.errors import FlowcTypeError, GraphError

from .conv_ops import avg_pool, conv2d as nn_conv2d, max_pool
from .graph import Tensor, get_default_graph, name_scope
from .initializers import Ones, Zeros
from .math_ops import cast, convert_to_tensor, matmul, rsqrt
from .nn_ops import fused_batch_norm, moments
from .random_ops import dropout as nn_dropout
from .shape_ops import reshape
from .sources import user_location
from .state_ops import assign_sub
from .variable_scope import get_variable, variable_scope

UPDATE_OPS = "update_ops"

__all__ = ["average_pooling2d", "batch_normalization", "conv2d", "dense", "dropout", "flatten", "max_pooling2d"]


def _float_input(inputs: Any, op: str) -> Tensor:
    x = convert_to_tensor(inputs)
    if not x.dtype.is_float:
        raise FlowcTypeError(f"inputs must be float16, float32 or float64, got {x.type}", op=op, where=user_location())
    return x


def _activity(x: Tensor, activation: Callable[[Tensor], Tensor] | None,
              activity_regularizer: Callable[[Tensor], Any] | None) -> Tensor:
    if activation is not None:
        x = activation(x)
    if activity_regularizer is not None:
        loss = activity_regularizer(x)
        if loss is not None:
            get_default_graph().add_to_collection("regularization_losses", loss)
    return x


def dense(inputs: Any, units: int, activation: Callable[[Tensor], Tensor] | None = None, use_bias: bool = True,
          kernel_initializer: Any = None, bias_initializer: Any = Zeros(), kernel_regularizer: Any = None,
          bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
          bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
          reuse: Any = None) -> Tensor:
    """activation(inputs @ kernel + bias) over the last axis of `inputs`; kernel [depth, units]."""
    op = "dense"
    x = _float_input(inputs, op)
    depth = x.type.shape[-1] if x.type.rank >= 1 else None
    if depth is None:
        raise FlowcTypeError(f"the last dim of the inputs must be known, got {x.type}", op=op, where=user_location())
    with variable_scope(name, default_name="dense", values=[x], reuse=reuse):
        kernel = get_variable("kernel", [depth, units], x.dtype, kernel_initializer, kernel_regularizer, trainable)
        bias = (get_variable("bias", [units], x.dtype, bias_initializer, bias_regularizer, trainable)
                if use_bias else None)
        if x.type.rank == 2:
            y = matmul(x, kernel)
        else:  # over the last axis: rows of all the leading dims (only the first may be unknown)
            leading = list(x.type.shape[:-1])
            if any(d is None for d in leading[1:]):
                raise FlowcTypeError(f"only the first dim of the inputs may be unknown, got {x.type}", op=op,
                                     where=user_location())
            y = reshape(matmul(reshape(x, [-1, depth]), kernel), [-1, *leading[1:], units])
        if bias is not None:
            y = y + bias
        return _activity(y, activation, activity_regularizer)


def _pair(value: Any, what: str, op: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2:
        raise GraphError(f"{what} must be an int or a pair, got {value!r}", op=op, where=user_location())
    return int(pair[0]), int(pair[1])


def _nn_layout(data_format: str, op: str) -> str:
    layouts = {"channels_last": "NHWC", "channels_first": "NCHW"}
    if data_format not in layouts:
        raise GraphError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}", op=op,
                         where=user_location())
    return layouts[data_format]


def _padding(padding: str, op: str) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise GraphError(f"padding must be 'valid' or 'same', got {padding!r}", op=op, where=user_location())
    return padding.upper()


def conv2d(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1), padding: str = "valid",
           data_format: str = "channels_last", dilation_rate: Any = (1, 1),
           activation: Callable[[Tensor], Tensor] | None = None, use_bias: bool = True, kernel_initializer: Any = None,
           bias_initializer: Any = Zeros(), kernel_regularizer: Any = None, bias_regularizer: Any = None,
           activity_regularizer: Any = None, kernel_constraint: Any = None, bias_constraint: Any = None,
           trainable: bool = True, name: str | None = None, reuse: Any = None) -> Tensor:
    """A 2-D convolution layer: kernel [kh, kw, in_channels, filters], bias [filters]."""
    op = "conv2d"
    x = _float_input(inputs, op)
    layout = _nn_layout(data_format, op)
    if x.type.rank != 4:
        raise FlowcTypeError(f"inputs must be 4-D, got {x.type}", op=op, where=user_location())
    channels = x.type.shape[3 if layout == "NHWC" else 1]
    if channels is None:
        raise FlowcTypeError(f"the channel dim of the inputs must be known, got {x.type}", op=op,
                             where=user_location())
    kh, kw = _pair(kernel_size, "kernel_size", op)
    with variable_scope(name, default_name="conv2d", values=[x], reuse=reuse):
        kernel = get_variable("kernel", [kh, kw, channels, filters], x.dtype, kernel_initializer,
                              kernel_regularizer, trainable)
        y = nn_conv2d(x, kernel, strides=_pair(strides, "strides", op), padding=_padding(padding, op),
                      data_format=layout, dilations=_pair(dilation_rate, "dilation_rate", op))
        if use_bias:
            bias = get_variable("bias", [filters], x.dtype, bias_initializer, bias_regularizer, trainable)
            y = y + (bias if layout == "NHWC" else reshape(bias, [filters, 1, 1]))
        return _activity(y, activation, activity_regularizer)


def _pooling(pool: Callable[..., Tensor], op: str, inputs: Any, pool_size: Any, strides: Any, padding: str,
             data_format: str, name: str | None) -> Tensor:
    x = _float_input(inputs, op)
    return pool(x, ksize=_pair(pool_size, "pool_size", op), strides=_pair(strides, "strides", op),
                padding=_padding(padding, op), data_format=_nn_layout(data_format, op), name=name)


def max_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None) -> Tensor:
    """The maximum over each pool_size window (fc.nn.max_pool)."""
    return _pooling(max_pool, "max_pooling2d", inputs, pool_size, strides, padding, data_format,
                    name or "max_pooling2d")


def average_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None) -> Tensor:
    """The mean over each pool_size window, padding not counted (fc.nn.avg_pool)."""
    return _pooling(avg_pool, "average_pooling2d", inputs, pool_size, strides, padding, data_format,
                    name or "average_pooling2d")


def _training_flag(training: Any, dtype: Any) -> Tensor | bool:
    """A Python bool as is; a bool tensor as 0.0 / 1.0 of `dtype`."""
    if isinstance(training, (bool, np.bool_)):
        return bool(training)
    flag = convert_to_tensor(training)
    if flag.type.rank != 0:
        raise FlowcTypeError(f"training must be a bool or a scalar bool tensor, got {flag.type}", op="training",
                             where=user_location())
    return cast(flag, dtype)


def _blend(on: Tensor, off: Tensor, flag: Tensor) -> Tensor:
    """on where flag is 1, off where it is 0 (flag a 0/1 scalar)."""
    return on * flag + off * (1.0 - flag)


def dropout(inputs: Any, rate: float = 0.5, noise_shape: Sequence[int] | None = None, seed: int | None = None,
            training: Any = False, name: str | None = None) -> Tensor:
    """inputs with a fraction `rate` zeroed and the rest scaled by 1 / (1 - rate), when `training`
    (a bool or a bool tensor); else inputs as they are."""
    with name_scope(name or "dropout"):
        x = _float_input(inputs, "dropout")
        flag = _training_flag(training, x.dtype)
        if flag is False:
            return x
        dropped = nn_dropout(x, rate=rate, noise_shape=noise_shape, seed=seed)
        return dropped if flag is True else _blend(dropped, x, flag)


def flatten(inputs: Any, name: str | None = None) -> Tensor:
    """[batch, d1, d2, ...] -> [batch, d1 * d2 * ...] (the dims after the first must be known)."""
    x = convert_to_tensor(inputs)
    rest = x.type.shape[1:]
    if x.type.rank < 1 or any(d is None for d in rest):
        raise FlowcTypeError(f"the dims after the first must be known, got {x.type}", op="flatten",
                             where=user_location())
    with name_scope(name or "flatten"):
        return reshape(x, [-1, int(np.prod(rest, dtype=np.int64))])


def batch_normalization(inputs: Any, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                        center: bool = True, scale: bool = True, beta_initializer: Any = Zeros(),
                        gamma_initializer: Any = Ones(), moving_mean_initializer: Any = Zeros(),
                        moving_variance_initializer: Any = Ones(), beta_regularizer: Any = None,
                        gamma_regularizer: Any = None, beta_constraint: Any = None, gamma_constraint: Any = None,
                        training: Any = False, trainable: bool = True, name: str | None = None, reuse: Any = None,
                        renorm: bool = False, renorm_clipping: Any = None, renorm_momentum: float = 0.99,
                        fused: bool | None = None, virtual_batch_size: Any = None, adjustment: Any = None) -> Tensor:
    """Normalize over every axis but `axis` by the batch's statistics (training) or the moving ones.

    Variables gamma, beta (trainable), moving_mean, moving_variance (not). In training, the
    moving averages' updates go to UPDATE_OPS (Note [batch norm updates]); the moving variance
    follows the batch variance as TensorFlow's fused kernel gives it for 4-D inputs normalized
    over all but the channels (unbiased: times n / (n - 1)), the biased one otherwise.
    """
    op = "batch_normalization"
    if renorm or virtual_batch_size is not None or adjustment is not None:
        raise GraphError("renorm, virtual_batch_size and adjustment are not supported", op=op, where=user_location())
    x = _float_input(inputs, op)
    rank = x.type.rank
    if not -rank <= axis < rank:
        raise GraphError(f"axis {axis} is out of range for inputs {x.type}", op=op, where=user_location())
    axis %= rank
    depth = x.type.shape[axis]
    if depth is None:
        raise FlowcTypeError(f"the dim of axis {axis} must be known, got {x.type}", op=op, where=user_location())
    reduced = [a for a in range(rank) if a != axis]
    broadcast = [1] * rank
    broadcast[axis] = depth
    with variable_scope(name, default_name="batch_normalization", values=[x], reuse=reuse):
        gamma = (get_variable("gamma", [depth], x.dtype, gamma_initializer, gamma_regularizer, trainable)
                 if scale else None)
        beta = (get_variable("beta", [depth], x.dtype, beta_initializer, beta_regularizer, trainable)
                if center else None)
        moving_mean = get_variable("moving_mean", [depth], x.dtype, moving_mean_initializer, trainable=False)
        moving_variance = get_variable("moving_variance", [depth], x.dtype, moving_variance_initializer,
                                       trainable=False)
        flag = _training_flag(training, x.dtype)

        def normalized(mean: Tensor, variance: Tensor) -> Tensor:
            inverse = rsqrt(reshape(variance, broadcast) + epsilon)
            if gamma is not None:
                inverse = inverse * reshape(gamma, broadcast)
            y = (x - reshape(mean, broadcast)) * inverse
            return y + reshape(beta, broadcast) if beta is not None else y

        inference = normalized(moving_mean, moving_variance)
        if flag is False:
            return inference
        if rank == 4 and axis in (1, 3):
            ones = gamma if gamma is not None else Ones()([depth], x.dtype)
            zeros = beta if beta is not None else Zeros()([depth], x.dtype)
            trained, mean, variance = fused_batch_norm(x, ones, zeros, epsilon=epsilon,
                                                       data_format="NHWC" if axis == 3 else "NCHW")
        else:
            mean, variance = moments(x, reduced)
            trained = normalized(mean, variance)
        step = 1.0 - momentum if flag is True else (1.0 - momentum) * flag
        graph = get_default_graph()
        with name_scope("AssignMovingAvg"):
            graph.add_to_collection(UPDATE_OPS, assign_sub(moving_mean, (moving_mean - mean) * step))
            graph.add_to_collection(UPDATE_OPS, assign_sub(moving_variance, (moving_variance - variance) * step))
        return trained if flag is True else _blend(trained, inference, flag)


