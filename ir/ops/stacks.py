"""A stack whose entries may differ in shape: stack_push, stack_read. The reverse mode of a loop whose
values change shape from turn to turn keeps each turn's values on one (Note [while gradients of
loops whose values change shape] in passes/autodiff/rules_while.py).

Note [stacks of entries of any shape]
A stack is a value of type u8[?]: the bytes of its entries, one after another, each entry the
int64 dims of the value (its rank is the stack's, fixed by its first push) and then the value's own
bytes in C order. `constant u8[0]` is the empty stack. stack_push is functional, as every op is:
its result is a new stack, one entry longer. stack_read gives entry `index` (the first pushed is 0),
of the dtype and shape that its attributes declare (the pushed value's type: unknown dims where the
entries differ).

That byte form is the meaning, which the reference target computes (pushing n entries copies
O(n^2) bytes: the oracle is simple, not fast). The cpu target never lays such a stack out: a loop
that holds a stack op runs from the host (Note [loops driven from the host] in
compiler/host_driven.py), which keeps a stack as a Python list of the entries' arrays (HostStack
there), so a push or a read is O(1) there. Neither op is folded: a folded push would be a byte
constant that a host-side stack would have to decode (it can, but nothing gains from it).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import FlowcTypeError, IndexOutOfRange
from ..op import Op
from ..types import DTYPES, INT_NAMES, INTS, DType, TensorType, as_dtype, uint8

HEADER_DTYPE = np.dtype("<i8")  # an entry's dims, before its bytes


def check_stack(op: str, stack: TensorType) -> None:
    if stack.dtype != uint8 or stack.rank != 1:
        raise FlowcTypeError(f"the stack must be a u8[?] (Note [stacks of entries of any shape]), got {stack}", op=op)


def entries(stack: np.ndarray, rank: int, dtype: np.dtype) -> list[np.ndarray]:
    """The arrays of a stack in its byte form, the first pushed first."""
    found, offset, data = [], 0, stack.tobytes()
    while offset < len(data):
        dims = tuple(int(d) for d in np.frombuffer(data, HEADER_DTYPE, rank, offset))
        offset += rank * HEADER_DTYPE.itemsize
        size = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
        found.append(np.frombuffer(data, dtype, size // dtype.itemsize, offset).reshape(dims).copy())
        offset += size
    return found


def entry_bytes(value: np.ndarray) -> np.ndarray:
    """One entry of a stack in its byte form: the value's dims, then its bytes."""
    header = np.asarray(value.shape, HEADER_DTYPE).tobytes()
    return np.frombuffer(header + np.ascontiguousarray(value).tobytes(), np.uint8)


class StackPush(Op):
    """`stack_push %stack, %value`: the stack u8[?] with `value` (any dtype, any shape) as its new top entry."""

    name = "stack_push"
    num_operands = 2
    foldable = False
    differentiable = False  # the loop's gradient reads the stack; a second derivative is refused (rules_while.py)

    def infer_type(self, stack: TensorType, value: TensorType) -> TensorType:
        check_stack(self.name, stack)
        return stack.with_shape((None,))

    def reference(self, stack: np.ndarray, value: np.ndarray) -> np.ndarray:
        return np.concatenate([stack, entry_bytes(value)])


class StackRead(Op):
    """`stack_read %stack, %index {dtype, shape}`: entry `index` of the stack (0: the first pushed), a
    value of type dtype[shape]; an index outside [0, entries) is an IndexOutOfRange error."""

    name = "stack_read"
    num_operands = 2
    foldable = False
    differentiable = False
    attrs = {"dtype": DType, "shape": tuple[int | None, ...]}
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES

    @classmethod
    def normalize_attributes(cls, attributes: dict) -> dict:
        attributes = super().normalize_attributes(attributes)
        return {**attributes, "dtype": as_dtype(attributes["dtype"]), "shape": tuple(attributes["shape"])}

    def infer_type(self, stack: TensorType, index: TensorType) -> TensorType:
        check_stack(self.name, stack)
        if index.dtype not in INTS or index.rank != 0:
            raise FlowcTypeError(f"the index must be a scalar integer ({INT_NAMES}), got {index}", op=self.name)
        return TensorType(self.dtype, self.shape)

    def reference(self, stack: np.ndarray, index: np.ndarray) -> np.ndarray:
        found = entries(stack, len(self.shape), self.dtype.np)
        return read_entry(self.name, found, index)


def read_entry(op: str, found: list[np.ndarray], index: np.ndarray, size: int | None = None,
               where: str | None = None) -> np.ndarray:
    """Entry `index` of a stack's entries (the first `size` of `found`, or all), or an IndexOutOfRange error
    naming the op (and the user's line `where`, for a caller that is not the interpreter, which adds it)."""
    position, size = int(index), len(found) if size is None else size
    if not 0 <= position < size:
        raise IndexOutOfRange(f"entry {position} is out of range [0, {size}) of the stack", op=op, where=where)
    return found[position].copy()  # Note [fresh results] in shape.py
