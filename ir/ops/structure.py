"""Constants and terminators."""

from __future__ import annotations

import numpy as np

from ..errors import FlowcTypeError
from ..op import Op
from ..types import INTS, TensorType, as_dtype


class Constant(Op):
    """A tensor known at compile time; `value` is an ndarray of the result type."""

    name = "constant"
    attrs = {"value": np.ndarray}
    num_operands = 0
    differentiable = False

    @classmethod
    def normalize_attributes(cls, attributes: dict) -> dict:
        attributes = super().normalize_attributes(attributes)
        value = np.asarray(attributes["value"])
        if value.dtype.kind in "c":
            raise FlowcTypeError(f"constants of dtype {value.dtype} are not supported", op=cls.name)
        if value.dtype.kind in "iu" and value.dtype not in [d.np for d in INTS]:
            value = value.astype(np.int64)  # uint32 and uint64, which flowc has no dtype for
        as_dtype(value.dtype)  # rejects strings and objects with a FlowcError
        value = np.array(value, copy=True)
        value.flags.writeable = False  # shared by every op that folds from it
        return {"value": value}

    def infer_type(self) -> TensorType:
        value = self.value
        return TensorType(as_dtype(value.dtype), value.shape)

    def reference(self) -> np.ndarray:
        return self.value


class Return(Op):
    """Ends a function; its operands are the function's results."""

    name = "return"
    is_terminator = True
    differentiable = False
    pure = False  # never removed: it is what the function computes

    def infer_type(self, *types: TensorType) -> tuple[TensorType, ...]:
        return ()


class Yield(Op):
    """Ends a region of a region op; its operands are the region's results."""

    name = "yield"
    is_terminator = True
    differentiable = False
    pure = False

    def infer_type(self, *types: TensorType) -> tuple[TensorType, ...]:
        return ()
