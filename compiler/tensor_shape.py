"""TensorShape and Dimension: a tensor's static shape as TensorFlow 1 code reads it.

A TensorShape is a tuple of its dims, each a Dimension (an int that also has
TF1's `.value`) or None where the size is only known at run time, so code that
indexes or compares shapes as tuples (`x.shape == (None, 64)`,
`x.shape[1] is None`) keeps working beside TF1's `as_list()`, `ndims` and
`x.get_shape()[1].value`. An unknown dim is None, not a Dimension: TF1's
`shape[0].value` on an unknown dim has no counterpart here (test `is None`).

A shape of unknown rank (a placeholder made with `shape=None`) is
`TensorShape(None)`: `ndims` is None and `as_list()` raises, as in TF1; as a
tuple it is empty (Note [placeholders of unknown rank] in array_ops.py).
"""

from __future__ import annotations

from typing import Any, Iterable

from flowc.ir.errors import FlowcTypeError


class Dimension(int):
    """A known dim: an int with TF1's `.value`."""

    @property
    def value(self) -> int:
        return int(self)

    __repr__ = int.__repr__


def _dim(d: Any) -> Dimension | None:
    if d is None or d == -1:
        return None
    return Dimension(getattr(d, "value", d))


class TensorShape(tuple):
    """A static shape: dims are Dimension or None; `TensorShape(None)` has unknown rank."""

    def __new__(cls, dims: Iterable[Any] | None) -> TensorShape:
        shape = super().__new__(cls, () if dims is None else (_dim(d) for d in dims))
        shape._known_rank = dims is not None
        return shape

    @property
    def ndims(self) -> int | None:
        return len(self) if self._known_rank else None

    rank = ndims

    @property
    def dims(self) -> list[Dimension | None] | None:
        return list(self) if self._known_rank else None

    def as_list(self) -> list[int | None]:
        if not self._known_rank:
            raise ValueError("as_list() is not defined on a shape of unknown rank")
        return [None if d is None else int(d) for d in self]

    def is_fully_defined(self) -> bool:
        return self._known_rank and all(d is not None for d in self)

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
        return len(self) == len(other) and all(a is None or b is None or a == b for a, b in zip(self, other))

    def merge_with(self, other: Any) -> TensorShape:
        """The dims both shapes know, together; FlowcTypeError where they disagree."""
        other = as_shape(other)
        if not self.is_compatible_with(other):
            raise FlowcTypeError(f"shapes {self} and {other} are not compatible")
        if not self._known_rank:
            return other
        if not other._known_rank:
            return self
        return TensorShape(a if a is not None else b for a, b in zip(self, other))

    def __str__(self) -> str:
        if not self._known_rank:
            return "<unknown>"
        return "(" + ", ".join("?" if d is None else str(d) for d in self) + ("," if len(self) == 1 else "") + ")"

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
