"""TF1's deprecated op spellings that most TF1 code still uses, built on today's ops."""

from __future__ import annotations

from typing import Any

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import float32, float64, int32, int64

from .graph import Tensor
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
    """TF1's tf.div: x / y for floats. TF1 divides integers with floor division, which flowc's IR has
    no op for: integers are a FlowcTypeError that says to cast to float first."""
    a, b = _operands(x, y)
    if not a.dtype.is_float:
        raise FlowcTypeError(f"fc.div of {a.dtype.name} tensors is integer (floor) division, which flowc does not "
                             "have; cast both to float (fc.to_float) and divide", op="div", where=user_location())
    return divide(a, b, name=name)
