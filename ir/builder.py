"""Builder: creates ops at an insertion point.

Every registered op is a method by its name, taking operands positionally
and attributes by keyword, returning the result (or a tuple of results):

    b = Builder.at_end(function.entry)
    y = b.tanh(b.add(x, b.constant(1.0, float32)))
    s = b.reduce_sum(y, axes=(1,), keepdims=False)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from . import op as registry
from .core import Block, Operation, Region, Value
from .types import DType, TensorType, as_dtype


class Builder:
    def __init__(self, block: Block | None = None, index: int | None = None, loc: str | None = None):
        self.block = block
        self.index = index  # None: append at the end of the block
        self.loc = loc  # stamped on every op created, for error messages
        self.device: str | None = None  # stamped on every op created where set (Operation.device)

    @classmethod
    def at_end(cls, block: Block, loc: str | None = None) -> Builder:
        return cls(block, None, loc)

    @classmethod
    def before(cls, op: Operation, loc: str | None = None) -> Builder:
        assert op.parent is not None, "op is not in a block"
        return cls(op.parent, op.parent.ops.index(op), loc or op.loc)

    def insert(self, op: Operation) -> Operation:
        if self.block is None:
            raise ValueError("builder has no insertion point")
        if self.index is None:
            self.block.append(op)
        else:
            self.block.insert(self.index, op)
            self.index += 1
        return op

    def create(
        self,
        name: str,
        operands: Sequence[Value] = (),
        attributes: dict[str, Any] | None = None,
        result_types: Sequence[TensorType] | None = None,
        regions: Sequence[Region] = (),
        result_names: Sequence[str | None] | None = None,
    ) -> Operation:
        cls = registry.get(name)
        op = cls(operands, attributes, result_types, regions, loc=self.loc, result_names=result_names)
        if self.device:
            op.device = self.device
        return self.insert(op)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in registry.OPS:
            raise AttributeError(name)

        def build(*operands: Value, **attributes: Any) -> Any:
            op = self.create(name, operands, attributes)
            return op.results[0] if len(op.results) == 1 else tuple(op.results)

        return build

    # -- helpers that are not one op ---------------------------------------

    def constant(self, value: Any, dtype: DType | str | None = None) -> Value:
        array = np.asarray(value, dtype=as_dtype(dtype).np if dtype is not None else None)
        return self.create("constant", (), {"value": array}).result

    def splat(self, value: float | int | bool, like: TensorType) -> Value:
        """A constant of `like`'s dtype broadcast to its shape (scalar if dims are unknown)."""
        if like.is_static:
            return self.constant(np.full(like.shape, value, dtype=like.dtype.np))
        scalar = self.constant(np.asarray(value, dtype=like.dtype.np))
        return scalar

    def ones_like(self, x: Value) -> Value:
        return self.splat(1, x.type)

    def zeros_like(self, x: Value) -> Value:
        return self.splat(0, x.type)
