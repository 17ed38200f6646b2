"""Gradient rules of the row ops: read_row, write_row, fill_rows (ir/ops/rows.py).

Each is the other's transpose: the gradient of reading a row is a buffer of zeros with that row
written; of writing one, the row read back (for the value) and the buffer's cotangent with that
row zeroed (for the old buffer, whose row was overwritten). The index is an integer: no gradient.
"""

from __future__ import annotations

from flowc.ir import Builder, Operation, Value

from .build import match_type, zeros_like
from .rules import Grads, vjp


@vjp("read_row")
def read_row_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    buffer, index = op.operands
    row = match_type(b, dy, op.result)
    return [b.write_row(zeros_like(b, buffer), index, row), None]


@vjp("write_row")
def write_row_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    buffer, index, value = op.operands
    dy = match_type(b, dy, op.result)
    d_value = match_type(b, b.read_row(dy, index), value)
    return [b.write_row(dy, index, zeros_like(b, value)), None, d_value]


@vjp("fill_rows")
def fill_rows_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [None, b.reduce_sum(dy, axes=(0,), keepdims=False)]
