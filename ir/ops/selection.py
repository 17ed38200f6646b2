"""top_k: the k largest entries of each row (the last axis), and their indices.

The values come sorted, largest first; among equal values the lower index comes first, as in
TensorFlow. NaN counts as larger than every number (numpy's sort puts it last, so a descending
sort puts it first), so the reference and the CPU kernel agree on rows that hold one.

A k computed at run time (fc.nn.top_k(x, k) of a tensor k) is a second operand, a data_dim of k
(Note [data-dependent sizes] in compiler/data_sized_run.py): the results' last dim is its dim 0, and
the attribute k is -1. The front end checks 0 <= k <= n before the data_dim, naming top_k.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import FlowcTypeError, RuntimeShapeError
from ..op import Op
from ..types import NUMERIC, DType, TensorType, int32


class TopK(Op):
    """`values, indices = top_k %x {k}`: values T[..., k] and int32 indices [..., k] along the last axis.

    `k` is known when the graph is built, or (k = -1) dim 0 of a second operand `rows`, a data_dim;
    it must be in [0, n] for a last axis of size n (checked at build time where both are known, on the
    fed shapes otherwise). `sorted = false` is accepted, as TensorFlow's, and gives them sorted all the
    same (TensorFlow leaves that order unspecified).
    """

    name = "top_k"
    attrs = {"k": int, "sorted": bool}
    defaults = {"sorted": True}
    num_operands = None  # x, and `rows` where k is data
    dtypes: ClassVar[tuple[DType, ...]] = NUMERIC

    def infer_type(self, x: TensorType, *rows: TensorType) -> tuple[TensorType, TensorType]:
        self.check_dtype(x, "input")
        if x.rank == 0:
            raise FlowcTypeError(f"input must have at least one dim, got a scalar {x}", op=self.name)
        if len(rows) > 1 or (rows and (rows[0].rank != 2 or rows[0].shape[1] != 0 or self.k != -1)):
            raise FlowcTypeError(f"takes x and at most one data_dim (of shape [k, 0], with the attribute k = -1); got "
                                 f"{len(rows)} more, {', '.join(map(str, rows))}, k = {self.k}", op=self.name)
        k = rows[0].shape[0] if rows else self.k
        self.check_k(k, x.shape[-1], FlowcTypeError)
        shape = (*x.shape[:-1], k)
        return TensorType(x.dtype, shape), TensorType(int32, shape)

    def check_k(self, k: int | None, size: int | None,
                error: type[FlowcTypeError] | type[RuntimeShapeError]) -> None:
        if k is None:
            return
        if k < 0:
            raise error(f"k must be >= 0, got {k}", op=self.name)
        if size is not None and k > size:
            raise error(f"k = {k} is more than the {size} entries of the last axis", op=self.name)

    def reference(self, x: np.ndarray, *rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = rows[0].shape[0] if rows else self.k
        self.check_k(k, x.shape[-1], RuntimeShapeError)
        n = x.shape[-1]
        # A stable ascending sort of the reversed row, read backwards: descending values, and among
        # equal ones the lower index first.
        order = np.argsort(x[..., ::-1], axis=-1, kind="stable")[..., ::-1][..., :k]
        indices = (n - 1 - order).astype(np.int32)
        return np.take_along_axis(x, indices, axis=-1).copy(), indices
