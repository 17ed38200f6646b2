"""Linear algebra: matmul."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import FlowcTypeError, RuntimeShapeError
from ..op import Op, broadcast_shapes, check_broadcast
from ..types import FLOATS, INDEX_DTYPES, Dim, DType, Shape, TensorType

# TF1's MatMul: floats, int32 and int64; int8, int16, uint8 and uint16 are refused by the type rule.
MATMUL_DTYPES = FLOATS + INDEX_DTYPES


def matrix_dims(shape: Shape, transpose: bool) -> tuple[Dim, Dim]:
    """(rows, columns) of the matrices in the last two dims, after the optional transpose."""
    rows, columns = shape[-2], shape[-1]
    return (columns, rows) if transpose else (rows, columns)


class MatMul(Op):
    """a @ b on the last two dims, batch dims broadcast (numpy's matmul, rank >= 2).

    `transpose_a` / `transpose_b` swap the last two dims of that operand first.
    Integers wrap on overflow, as in numpy and C.
    """

    name = "matmul"
    attrs = {"transpose_a": bool, "transpose_b": bool}
    defaults = {"transpose_a": False, "transpose_b": False}
    num_operands = 2
    dtypes: ClassVar[tuple[DType, ...]] = MATMUL_DTYPES

    def infer_type(self, a: TensorType, b: TensorType) -> TensorType:
        self.check_dtype(a, "a")
        self.check_dtype(b, "b")
        if a.dtype != b.dtype:
            raise FlowcTypeError(f"operands must have one dtype: a is {a}, b is {b}", op=self.name)
        if a.rank < 2 or b.rank < 2:
            raise FlowcTypeError(f"operands must have rank >= 2: a is {a}, b is {b}", op=self.name)
        rows, inner_a = matrix_dims(a.shape, self.transpose_a)
        inner_b, columns = matrix_dims(b.shape, self.transpose_b)
        if inner_a is not None and inner_b is not None and inner_a != inner_b:
            raise FlowcTypeError(f"inner dims differ: a is {a}{self.shown('a')}, b is {b}{self.shown('b')} "
                                 f"({inner_a} != {inner_b})", op=self.name)
        return TensorType(a.dtype, self.batch_shape(a, b) + (rows, columns))

    def shown(self, operand: str) -> str:
        return " transposed" if self.attributes[f"transpose_{operand}"] else ""

    def batch_shape(self, a: TensorType, b: TensorType) -> Shape:
        try:
            return broadcast_shapes(self.name, a.shape[:-2], b.shape[:-2])
        except FlowcTypeError:  # restate with the whole types, not just their batch dims
            raise FlowcTypeError(f"batch dims do not broadcast: a is {a}, b is {b}", op=self.name) from None

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.transpose_a:
            a = np.swapaxes(a, -1, -2)
        if self.transpose_b:
            b = np.swapaxes(b, -1, -2)
        if a.shape[-1] != b.shape[-2]:  # only unknown dims can disagree here: the type rule checked the rest
            raise RuntimeShapeError(f"inner dims differ at run time: {list(a.shape)} @ {list(b.shape)}", op=self.name)
        check_broadcast(self.name, (a[..., :1, :1], b[..., :1, :1]))
        if a.dtype == np.float16:  # products summed in float32, rounded to half once (tl.dot, sgemm, TF's kernels)
            with np.errstate(over="ignore"):
                return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
        return np.matmul(a, b)
