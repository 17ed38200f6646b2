"""Python operators on tensors and variables: `x @ W + b`, `-x`, `x < 0`, `x[1:3, :]`.

`==` and `!=` keep Python's identity meaning, as in TensorFlow 1, so tensors
can be dict keys; use fc.equal for the elementwise comparison.
"""

from __future__ import annotations

from typing import Any


def _math() -> Any:
    from . import math_ops  # late: math_ops builds on graph, which builds on this mixin

    return math_ops


class TensorOperators:
    __slots__ = ()

    def __add__(self, other: Any) -> Any:
        return _math().add(self, other)

    def __radd__(self, other: Any) -> Any:
        return _math().add(other, self)

    def __sub__(self, other: Any) -> Any:
        return _math().subtract(self, other)

    def __rsub__(self, other: Any) -> Any:
        return _math().subtract(other, self)

    def __mul__(self, other: Any) -> Any:
        return _math().multiply(self, other)

    def __rmul__(self, other: Any) -> Any:
        return _math().multiply(other, self)

    def __truediv__(self, other: Any) -> Any:
        return _math().divide(self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return _math().divide(other, self)

    def __floordiv__(self, other: Any) -> Any:
        from . import elementwise_math_ops

        return elementwise_math_ops.floordiv(self, other)

    def __rfloordiv__(self, other: Any) -> Any:
        from . import elementwise_math_ops

        return elementwise_math_ops.floordiv(other, self)

    def __mod__(self, other: Any) -> Any:
        from . import elementwise_math_ops

        return elementwise_math_ops.floormod(self, other)

    def __rmod__(self, other: Any) -> Any:
        from . import elementwise_math_ops

        return elementwise_math_ops.floormod(other, self)

    def __pow__(self, other: Any) -> Any:
        return _math().pow(self, other)

    def __rpow__(self, other: Any) -> Any:
        return _math().pow(other, self)

    def __matmul__(self, other: Any) -> Any:
        return _math().matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        return _math().matmul(other, self)

    def __neg__(self) -> Any:
        return _math().negative(self)

    def __pos__(self) -> Any:
        return self

    def __abs__(self) -> Any:
        return _math().abs(self)

    def __invert__(self) -> Any:
        return _math().logical_not(self)

    def __and__(self, other: Any) -> Any:
        return _math().logical_and(self, other)

    def __rand__(self, other: Any) -> Any:
        return _math().logical_and(other, self)

    def __or__(self, other: Any) -> Any:
        return _math().logical_or(self, other)

    def __ror__(self, other: Any) -> Any:
        return _math().logical_or(other, self)

    def __lt__(self, other: Any) -> Any:
        return _math().less(self, other)

    def __le__(self, other: Any) -> Any:
        return _math().less_equal(self, other)

    def __gt__(self, other: Any) -> Any:
        return _math().greater(self, other)

    def __ge__(self, other: Any) -> Any:
        return _math().greater_equal(self, other)

    def __getitem__(self, index: Any) -> Any:
        from .array_ops import strided_slice

        return strided_slice(self, index)
