"""Rows of a buffer: read_row, write_row, fill_rows. The stack of a loop's states in reverse mode
(Note [while gradients with a stack] in passes/autodiff/rules_while.py) and TensorArray are
built on them.

A buffer is a tensor T[n, d...] read as n rows of type T[d...]. The row index is a scalar int32
or int64 read at run time; one outside [0, n) is an error (IndexOutOfRange naming the op, the
index and n), never counted from the end.

write_row is functional, as every op is: its result is a new buffer. Compiled code writes the
row into the operand's own buffer when nothing reads that operand afterwards (Note [rows written
in place] in passes/memory.py), so a loop that fills a buffer row by row costs one row per step.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import FlowcTypeError, IndexOutOfRange, RuntimeShapeError
from ..op import Op
from ..types import DTYPES, INT_NAMES, INTS, DType, TensorType


def check_buffer(op: str, buffer: TensorType) -> None:
    if buffer.rank == 0:
        raise FlowcTypeError(f"the buffer must have a row dim, got a scalar {buffer}", op=op)


def check_index_type(op: str, index: TensorType) -> None:
    if index.dtype not in INTS or index.rank != 0:
        raise FlowcTypeError(f"the row index must be a scalar integer ({INT_NAMES}), got {index}", op=op)


def check_row(op: str, index: np.ndarray, rows: int) -> int:
    """The row index as an int, in [0, rows) or an IndexOutOfRange error naming both."""
    row = int(index)
    if not 0 <= row < rows:
        raise IndexOutOfRange(f"row index {row} is out of range [0, {rows})", op=op)
    return row


class ReadRow(Op):
    """`read_row %buffer, %index`: row `index` of buffer T[n, d...], a T[d...]."""

    name = "read_row"
    num_operands = 2
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES

    def infer_type(self, buffer: TensorType, index: TensorType) -> TensorType:
        self.check_dtype(buffer, "buffer")
        check_buffer(self.name, buffer)
        check_index_type(self.name, index)
        return buffer.with_shape(buffer.shape[1:])

    def reference(self, buffer: np.ndarray, index: np.ndarray) -> np.ndarray:
        return buffer[check_row(self.name, index, buffer.shape[0])].copy()  # Note [fresh results] in shape.py


class WriteRow(Op):
    """`write_row %buffer, %index, %value`: buffer T[n, d...] with row `index` replaced by value T[d...]."""

    name = "write_row"
    num_operands = 3
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES

    def infer_type(self, buffer: TensorType, index: TensorType, value: TensorType) -> TensorType:
        self.check_dtype(buffer, "buffer")
        check_buffer(self.name, buffer)
        check_index_type(self.name, index)
        row = buffer.shape[1:]
        fits = value.dtype == buffer.dtype and value.rank == len(row) and all(
            a is None or b is None or a == b for a, b in zip(value.shape, row))
        if not fits:
            raise FlowcTypeError(f"the value must be a row of {buffer}, got {value}", op=self.name)
        return buffer

    def reference(self, buffer: np.ndarray, index: np.ndarray, value: np.ndarray) -> np.ndarray:
        row = check_row(self.name, index, buffer.shape[0])
        if value.shape != buffer.shape[1:]:
            raise RuntimeShapeError(f"a value of shape {list(value.shape)} is not a row of a buffer of shape "
                                  f"{list(buffer.shape)}", op=self.name)
        result = buffer.copy()
        result[row] = value
        return result


class FillRows(Op):
    """`fill_rows %count, %row`: a buffer of `count` rows (a scalar int >= 0 read at run time), each
    a copy of row T[d...]: a T[?, d...]. How a loop's stack starts, and grows (concat with another)."""

    name = "fill_rows"
    num_operands = 2
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES

    def infer_type(self, count: TensorType, row: TensorType) -> TensorType:
        if count.dtype not in INTS or count.rank != 0:
            raise FlowcTypeError(f"the count must be a scalar integer ({INT_NAMES}), got {count}", op=self.name)
        self.check_dtype(row, "row")
        return row.with_shape((None, *row.shape))

    def reference(self, count: np.ndarray, row: np.ndarray) -> np.ndarray:
        if int(count) < 0:
            raise RuntimeShapeError(f"the count of rows must be >= 0, got {int(count)}", op=self.name)
        return np.broadcast_to(row, (int(count), *row.shape)).copy()
