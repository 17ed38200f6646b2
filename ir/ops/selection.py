"""top_k: the k largest entries of each row (the last axis), and their indices.

The values come sorted, largest first; among equal values the lower index comes first, as in
TensorFlow. NaN counts as larger than every number (numpy's sort puts it last, so a descending
sort puts it first), so the reference and the CPU kernel agree on rows that hold one.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import FlowcTypeError, RuntimeShapeError
from ..op import Op
from ..types import NUMERIC, DType, TensorType, int32


class TopK(Op):
    """`values, indices = top_k %x {k}`: values T[..., k] and int32 indices [..., k] along the last axis.

    `k` is known when the graph is built; it must be in [0, n] for a last axis of size n (checked
    at build time where n is known, on the fed shapes otherwise). `sorted = false` is accepted, as
    TensorFlow's, and gives them sorted all the same (TensorFlow leaves that order unspecified).
    """

    name = "top_k"
    attrs = {"k": int, "sorted": bool}
    defaults = {"sorted": True}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = NUMERIC

    def infer_type(self, x: TensorType) -> tuple[TensorType, TensorType]:
        self.check_dtype(x, "input")
        if x.rank == 0:
            raise FlowcTypeError(f"input must have at least one dim, got a scalar {x}", op=self.name)
        self.check_k(x.shape[-1], FlowcTypeError)
        shape = (*x.shape[:-1], self.k)
        return TensorType(x.dtype, shape), TensorType(int32, shape)

    def check_k(self, size: int | None, error: type[FlowcTypeError] | type[RuntimeShapeError]) -> None:
        if self.k < 0:
            raise error(f"k must be >= 0, got {self.k}", op=self.name)
        if size is not None and self.k > size:
            raise error(f"k = {self.k} is more than the {size} entries of the last axis", op=self.name)

    def reference(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.check_k(x.shape[-1], RuntimeShapeError)
        n = x.shape[-1]
        # A stable ascending sort of the reversed row, read backwards: descending values, and among
        # equal ones the lower index first.
        order = np.argsort(x[..., ::-1], axis=-1, kind="stable")[..., ::-1][..., : self.k]
        indices = (n - 1 - order).astype(np.int32)
        return np.take_along_axis(x, indices, axis=-1).copy(), indices
