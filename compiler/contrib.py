"""fc.contrib.layers: the regularizers (and initializer) TensorFlow 1 code takes from tf.contrib.layers.

A regularizer is a function of a weights tensor that gives a scalar loss; get_variable and the
layers call it on each Variable they make and put the loss in REGULARIZATION_LOSSES.
"""

from __future__ import annotations

import numbers
import types
from typing import Any, Callable

from flowc.ir.errors import GraphError

from .graph import Tensor, name_scope
from .initializers import TRUNCATED_STDDEV, VarianceScaling, glorot_uniform_initializer
from .math_ops import abs, convert_to_tensor, reduce_sum, square
from .sources import user_location

Regularizer = Callable[[Any], "Tensor | None"]


def _checked_scale(scale: Any, op: str) -> float:
    if isinstance(scale, numbers.Integral):
        raise GraphError(f"scale cannot be an integer: {scale}", op=op, where=user_location())
    if not isinstance(scale, numbers.Real):
        raise GraphError(f"scale must be a float, got {scale!r}", op=op, where=user_location())
    if scale < 0.0:
        raise GraphError(f"setting a scale less than 0 on a regularizer: {scale}", op=op, where=user_location())
    return float(scale)


def _regularizer(op: str, scale: Any, scope: str | None, penalty: Callable[[Tensor], Tensor]) -> Regularizer:
    factor = _checked_scale(scale, op)
    if factor == 0.0:
        return lambda _: None  # a scale of 0 disables the regularizer, as in TensorFlow

    def regularize(weights: Any) -> Tensor:
        with name_scope(scope or op):
            w = convert_to_tensor(weights)
            return factor * penalty(w)

    return regularize


def l1_regularizer(scale: float, scope: str | None = None) -> Regularizer:
    """weights -> scale * sum(|weights|)."""
    return _regularizer("l1_regularizer", scale, scope, lambda w: reduce_sum(abs(w)))


def l2_regularizer(scale: float, scope: str | None = None) -> Regularizer:
    """weights -> scale * sum(weights^2) / 2 (as fc.nn.l2_loss)."""
    return _regularizer("l2_regularizer", scale, scope, lambda w: reduce_sum(square(w)) / 2.0)


def xavier_initializer(uniform: bool = True, seed: int | None = None, dtype: Any = "float32") -> VarianceScaling:
    """Glorot's initializer: uniform (glorot_uniform_initializer), or a truncated normal whose
    underlying normal has stddev sqrt(1.3 / fan_avg), as tf.contrib's."""
    if uniform:
        return glorot_uniform_initializer(seed, dtype)
    return VarianceScaling(1.3 * TRUNCATED_STDDEV ** 2, "fan_avg", "truncated_normal", seed, dtype)


layers = types.SimpleNamespace(l1_regularizer=l1_regularizer, l2_regularizer=l2_regularizer,
                               xavier_initializer=xavier_initializer)
