"""TensorShape and Dimension: a tensor's static shape as TensorFlow 1 code reads it.

A TensorShape is a tuple of its dims, each a Dimension: a known dim is an int
that also has TF1's `.value`; a dim only known at run time is `Dimension(None)`,
TF1's unknown dim, whose `.value` is None (`batch = x.get_shape()[0].value`).

The unknown dim stands in for the None that flowc's shapes held before, so code
that compares shapes as tuples keeps working: it is equal to None and to any
other unknown dim (TF1 answers None there, "not known"), hashes as None, is
falsy and prints as None, so `x.shape == (None, 64)`, `None in x.shape`,
`x.shape[1] == None` and `repr(x.shape)` read as before. One thing does change:
it is not the object None, so `x.shape[1] is None` is False; test
`x.shape[1].value is None` (TF1's idiom), or read `x.type.shape`, the IR's
tuple, whose unknown dims are None (what flowc's own code reads). `int()` and
arithmetic on an unknown dim raise TypeError, as on None (TF1 would carry the
unknown through `+` and `*`; flowc has never done so).

A shape of unknown rank (a placeholder made with `shape=None`) is
`TensorShape(None)`: `ndims` is None and `as_list()` raises, as in TF1; as a
tuple it is empty (Note [placeholders of unknown rank] in array_ops.py).
"""

from __future__ import annotations

from typing import Any, Iterable

from flowc.ir.errors import FlowcTypeError


class _DimensionType(type):
    """Dimension's metaclass: the unknown dim counts as a Dimension too (`isinstance(d, Dimension)`)."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return type.__instancecheck__(cls, instance) or isinstance(instance, UnknownDimension)


class Dimension(int, metaclass=_DimensionType):
    """A known dim: an int with TF1's `.value`; `Dimension(None)` is the unknown dim."""

    def __new__(cls, value: Any) -> Any:
        value = getattr(value, "value", value)
        if value is None:
            return UNKNOWN
        return super().__new__(cls, value)

    @property
    def value(self) -> int:
        return int(self)

    __repr__ = int.__repr__


class UnknownDimension:
    """TF1's `Dimension(None)`: a dim known only at run time; equal to None (see the module docstring)."""

    __slots__ = ()

    @property
    def value(self) -> None:
        return None

    def __eq__(self, other: Any) -> bool:
        return other is None or isinstance(other, UnknownDimension)

    def __ne__(self, other: Any) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(None)

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "None"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN = object.__new__(UnknownDimension)


def _dim(d: Any) -> Dimension:
    if d is None or d == -1:
        return UNKNOWN
    return Dimension(d)


class TensorShape(tuple):
    """A static shape: a tuple of Dimensions (`Dimension(None)` unknown); `TensorShape(None)` has unknown rank."""

    def __new__(cls, dims: Iterable[Any] | None) -> TensorShape:
        shape = super().__new__(cls, () if dims is None else (_dim(d) for d in dims))
        shape._known_rank = dims is not None
        return shape

    @property
    def ndims(self) -> int | None:
        return len(self) if self._known_rank else None

    rank = ndims

    @property
    def dims(self) -> list[Dimension] | None:
        return list(self) if self._known_rank else None

    def as_list(self) -> list[int | None]:
        if not self._known_rank:
            raise ValueError("as_list() is not defined on a shape of unknown rank")
        return [d.value for d in self]

    def is_fully_defined(self) -> bool:
        return self._known_rank and all(d.value is not None for d in self)

    def num_elements(self) -> int | None:
        if not self.is_fully_defined():
            return None
        count = 1
        for d in self:
            count *= int(d)
        return count

    def is_compatible_with(self, other: Any) -> bool:
        other = as_shape(other)
        if not self._known_rank or not other._known_rank:
            return True
        return len(self) == len(other) and all(a.value is None or b.value is None or a == b
                                               for a, b in zip(self, other))

    def merge_with(self, other: Any) -> TensorShape:
        """The dims both shapes know, together; FlowcTypeError where they disagree."""
        other = as_shape(other)
        if not self.is_compatible_with(other):
            raise FlowcTypeError(f"shapes {self} and {other} are not compatible")
        if not self._known_rank:
            return other
        if not other._known_rank:
            return self
        return TensorShape(a if a.value is not None else b for a, b in zip(self, other))

    def __str__(self) -> str:
        if not self._known_rank:
            return "<unknown>"
        return "(" + ", ".join("?" if d.value is None else str(d) for d in self) + ("," if len(self) == 1 else "") + ")"

    def __repr__(self) -> str:  # a tuple's, as flowc has always shown shapes: (None, 64)
        return "TensorShape(None)" if not self._known_rank else tuple.__repr__(self)

    def __getitem__(self, key: Any) -> Any:
        item = super().__getitem__(key)
        return TensorShape(item) if isinstance(key, slice) else item

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, TensorShape) and self._known_rank != other._known_rank:
            return False
        return tuple.__eq__(self, tuple(other) if isinstance(other, list) else other)

    def __ne__(self, other: Any) -> bool:
        return not self == other

    __hash__ = tuple.__hash__


def as_shape(shape: Any) -> TensorShape:
    """A TensorShape from a TensorShape, a list/tuple of dims, or None (unknown rank)."""
    if isinstance(shape, TensorShape):
        return shape
    return TensorShape(shape)


def plain_dim(d: Any) -> Any:
    """None for an unknown Dimension, else d as given: how code that reads a shape argument with
    `d is None` takes a TensorShape's dims (`fc.zeros(x.shape)`, `shape_invariants=[x.shape]`)."""
    return None if isinstance(d, UnknownDimension) else d
