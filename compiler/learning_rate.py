"""TF1's learning-rate schedules (tf.train.exponential_decay and the others): graph ops of the global step.

Each schedule is a scalar tensor computed from `global_step` (usually the Variable that
`minimize(global_step=)` increments), in the dtype of `learning_rate` (float32 for a Python
number), as TF1 computes it; pass it to an optimizer as its learning rate.

    >>> import flowc as fc
    >>> with fc.Graph().as_default():
    ...     step = fc.Variable(0, trainable=False, name="global_step", dtype=fc.int64)
    ...     lr = fc.train.exponential_decay(0.1, step, decay_steps=10, decay_rate=0.5, staircase=True)
    ...     with fc.Session() as sess:
    ...         _ = sess.run(fc.global_variables_initializer())
    ...         _ = sess.run(fc.assign(step, 25))
    ...         round(float(sess.run(lr)), 6)   # 0.1 * 0.5^floor(25 / 10)
    0.025
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from flowc.ir.errors import GraphError
from flowc.ir.types import float64, int64

from .graph import Tensor
from .elementwise_math_ops import cos
from .math_ops import cast, convert_to_tensor, equal, exp, greater, less_equal, minimum, pow, where
from .sources import user_location


def exponential_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any, staircase: bool = False,
                      name: str | None = None) -> Tensor:
    """learning_rate * decay_rate ^ (global_step / decay_steps); the exponent floored when `staircase`."""
    lr, step, steps = _operands(learning_rate, global_step, decay_steps, "exponential_decay")
    p = _floor(step / steps) if staircase else step / steps
    return lr * pow(_like(decay_rate, lr), p)


def natural_exp_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any, staircase: bool = False,
                      name: str | None = None) -> Tensor:
    """learning_rate * exp(-decay_rate * global_step / decay_steps); the quotient floored when `staircase`."""
    lr, step, steps = _operands(learning_rate, global_step, decay_steps, "natural_exp_decay")
    p = _floor(step / steps) if staircase else step / steps
    return lr * exp(-_like(decay_rate, lr) * p)


def inverse_time_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                       staircase: bool = False, name: str | None = None) -> Tensor:
    """learning_rate / (1 + decay_rate * global_step / decay_steps); the quotient floored when `staircase`."""
    lr, step, steps = _operands(learning_rate, global_step, decay_steps, "inverse_time_decay")
    p = _floor(step / steps) if staircase else step / steps
    return lr / (_like(1.0, lr) + _like(decay_rate, lr) * p)


def polynomial_decay(learning_rate: Any, global_step: Any, decay_steps: Any, end_learning_rate: Any = 0.0001,
                     power: Any = 1.0, cycle: bool = False, name: str | None = None) -> Tensor:
    """(learning_rate - end) * (1 - step / decay_steps)^power + end, the step capped at decay_steps; with
    `cycle`, decay_steps grows to the first multiple of itself at or past the step (1 at step 0)."""
    lr, step, steps = _operands(learning_rate, global_step, decay_steps, "polynomial_decay")
    end, one = _like(end_learning_rate, lr), _like(1.0, lr)
    if cycle:
        multiplier = where(equal(step, _like(0.0, lr)), one, _ceil(step / steps))
        steps = steps * multiplier
    else:
        step = minimum(step, steps)
    return (lr - end) * pow(one - step / steps, _like(power, lr)) + end


def cosine_decay(learning_rate: Any, global_step: Any, decay_steps: Any, alpha: float = 0.0,
                 name: str | None = None) -> Tensor:
    """learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha)."""
    lr, step, steps = _operands(learning_rate, global_step, decay_steps, "cosine_decay")
    fraction = minimum(step, steps) / steps
    cosine = cast(_cos_of_pi_times(cast(fraction, float64)), lr.dtype)
    half, one, a = _like(0.5, lr), _like(1.0, lr), _like(alpha, lr)
    return lr * ((one - a) * half * (one + cosine) + a)


def piecewise_constant(x: Any, boundaries: Sequence[Any], values: Sequence[Any], name: str | None = None) -> Tensor:
    """values[0] while x <= boundaries[0], values[i] while boundaries[i-1] < x <= boundaries[i], and values[-1]
    past the last boundary."""
    if len(values) != len(boundaries) + 1:
        raise GraphError(f"piecewise_constant needs one value more than boundaries; got {len(boundaries)} "
                         f"boundaries and {len(values)} values", op="piecewise_constant", where=user_location())
    x = convert_to_tensor(x)
    constants = [convert_to_tensor(v) for v in values]
    if len({c.dtype for c in constants}) > 1:
        raise GraphError(f"the values of piecewise_constant must have one dtype, got "
                         f"{', '.join(str(c.dtype) for c in constants)}", op="piecewise_constant",
                         where=user_location())
    result = constants[-1]
    for boundary, value in reversed(list(zip(boundaries, constants))):
        result = where(less_equal(x, convert_to_tensor(boundary, dtype=x.dtype)), value, result)
    return result


# -- helpers -------------------------------------------------------------------


def _operands(learning_rate: Any, global_step: Any, decay_steps: Any, what: str) -> tuple[Tensor, Tensor, Tensor]:
    """The learning rate as a tensor, and the step and decay_steps cast to its dtype (as TF1 does)."""
    if global_step is None:
        raise GraphError(f"global_step is required for {what}", op=what, where=user_location())
    lr = convert_to_tensor(learning_rate)
    if not lr.dtype.is_float:
        lr = cast(lr, "float32")
    return lr, cast(global_step, lr.dtype), _like(decay_steps, lr)


def _like(value: Any, lr: Tensor) -> Tensor:
    return cast(value, lr.dtype) if isinstance(value, Tensor) else convert_to_tensor(value, dtype=lr.dtype)


def _floor(x: Tensor) -> Tensor:
    """floor(x) from a truncating cast (steps stay far inside int64's range): truncation, less one where it
    rounded a negative value up."""
    truncated = cast(cast(x, int64), x.dtype)
    return where(greater(truncated, x), truncated - _like(1.0, x), truncated)


def _ceil(x: Tensor) -> Tensor:
    return -_floor(-x)


def _cos_of_pi_times(fraction: Tensor) -> Tensor:
    """cos(pi * fraction) in float64, by the native cos (elementwise_math_ops.py)."""
    return cos(fraction * math.pi)