"""TF1's deprecated op spellings that most TF1 code still uses, built on today's ops."""

from __future__ import annotations

from typing import Any

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import float32, float64, int32, int64

from .graph import Tensor
from .elementwise_math_ops import floordiv
from .math_ops import _operands, argmax, argmin, cast, divide
from .sources import user_location

arg_max = argmax  # tf.arg_max(input, dimension)
arg_min = argmin


def to_float(x: Any, name: str = "ToFloat") -> Tensor:
    """x as float32 (TF1's tf.to_float)."""
    return cast(x, float32, name=name)


def to_int32(x: Any, name: str = "ToInt32") -> Tensor:
    return cast(x, int32, name=name)


def to_int64(x: Any, name: str = "ToInt64") -> Tensor:
    return cast(x, int64, name=name)


def to_double(x: Any, name: str = "ToDouble") -> Tensor:
    return cast(x, float64, name=name)


def div(x: Any, y: Any, name: str | None = None) -> Tensor:
    """TF1's tf.div, Python 2's `/`: x / y for floats, floor division for integers (x // 0 is 0, as
    fc.floordiv's)."""
    a, b = _operands(x, y)
    if a.dtype.is_bool:
        raise FlowcTypeError("fc.div of bool tensors: cast them to a number first", op="div", where=user_location())
    if not a.dtype.is_float:
        return floordiv(a, b, name=name)
    return divide(a, b, name=name)
