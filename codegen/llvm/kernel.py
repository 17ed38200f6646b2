"""What every kernel shares: its function, buffers, dims, loops and broadcast indexing.

A kernel is `void kernel(i8* context, i64 begin, i64 end)`: it computes the
iterations [begin, end) of its work, so the thread pool can split the work
(flowc_parallel_for in runtime/native/flowc_rt.c) or the entry point can call
it once for everything. `context` points to the kernel's buffer pointers
(operands, then results), followed by the pointer to the dims vector.

Note [dims vector]: a dim that is unknown at compile time (None in a type) is
read at run time from `dims[slot]`; the slot of each (value, axis) is fixed
at compile time by `DimTable`, and the Python side fills the vector for each
new set of fed shapes. So one compiled artifact serves every batch size.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

from llvmlite import ir as ll

from flowc.ir import Operation, Value
from flowc.ir.types import DType

from .elementwise import KernelBuilder
from .program import DimTable
from .types import I64, PTR, storage_type

KERNEL_TYPE = ll.FunctionType(ll.VoidType(), [PTR, I64, I64])


def emit_dim(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, value: Value, axis: int) -> ll.Value:
    """A dim of `value`: a constant when known at compile time, else read from its slot."""
    dim = value.type.shape[axis]
    if dim is not None:
        return ll.Constant(I64, dim)
    return b.load(b.gep(dims_pointer, [ll.Constant(I64, dims.slots[value, axis])]))


def product(b: ll.IRBuilder, values: Sequence[ll.Value]) -> ll.Value:
    total: ll.Value = ll.Constant(I64, 1)
    for value in values:
        total = _mul(b, total, value)
    return total


def _mul(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    if isinstance(x, ll.Constant) and isinstance(y, ll.Constant):
        return ll.Constant(I64, x.constant * y.constant)
    if isinstance(x, ll.Constant) and x.constant == 1:
        return y
    if isinstance(y, ll.Constant) and y.constant == 1:
        return x
    return b.mul(x, y)


def min_of(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    """The smaller of two signed integers."""
    return b.select(b.icmp_signed("<", x, y), x, y)


def alloca_at_start(b: ll.IRBuilder, block: ll.Block, type: ll.Type, name: str = "",
                    align: int | None = None) -> ll.AllocaInstr:
    """A stack slot made at the start of `block` (a function's entry block, so LLVM makes it once, in
    the frame), while `b` goes on emitting where it was."""
    at_start = ll.IRBuilder(block)
    at_start.position_at_start(block)
    slot = at_start.alloca(type, name=name)
    if align is not None:
        slot.align = align
    if b.block is block:  # b's insertion index is now one short: back to the end
        b.position_at_end(block)
    return slot


@contextlib.contextmanager
def for_range(b: ll.IRBuilder, start: ll.Value, stop: ll.Value, name: str = "i") -> Iterator[ll.Value]:
    """A counted loop start <= i < stop; the body is emitted inside the `with`."""
    before = b.block
    header = b.append_basic_block(f"{name}.header")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start, before)
    b.cbranch(b.icmp_signed("<", index, stop), body, done)
    b.position_at_end(body)
    yield index
    index.add_incoming(b.add(index, ll.Constant(I64, 1), name=f"{name}.next"), b.block)
    b.branch(header)
    b.position_at_end(done)


class Kernel:
    """The LLVM function of one fusion op, with access to its buffers and dims.

    Note [one step]: when the entry point hands a kernel all its work and that work is known to be
    1 (a reduction to one element, a softmax over a [1, 1]), the kernel's [begin, end) is the
    constant [0, 1) (flowc_parallel_for calls it so), and its loops over the work fold away. Left as
    arguments, they made a loop whose trip count LLVM could not bound around a body that, with its
    size-1 axes read at index 0, loads the same elements on every turn: the loop vectorizer took
    all of that body as uniform values, and LLVM 22's check of uniformity walks every path through
    such a chain (vputils::isUniformAcrossVFsAndUFs, unmemoized), exponential in its depth: the
    log_softmax of an exp over a [1, 1] never finished compiling.
    """

    def __init__(self, module: ll.Module, dims: DimTable, op: Operation, name: str, number: int = 0,
                 error_slot: int = 0, fast_math: bool = False, shared: set[tuple[int, int]] | None = None,
                 one_step: bool = False):
        self.module = module
        # (result, operand) index pairs whose buffers may be the same bytes (the memory plan's
        # buffer_of); None: unknown, any may.
        self.shared = shared
        self.number = number  # its place in the entry point's order, reported back on a run-time error
        self.error_slot = error_slot
        self.dims = dims
        self.op = op
        self.region_args = op.regions[0].entry.args if op.regions else []
        self.function = ll.Function(module, KERNEL_TYPE, name=name)
        self.function.linkage = "internal"
        context, self.begin, self.end = self.function.args
        if one_step:  # Note [one step]
            self.begin, self.end = ll.Constant(I64, 0), ll.Constant(I64, 1)
        self.b = KernelBuilder(self.function.append_basic_block("entry"), fast_math)
        self._alloca_block = self.b.block
        self.slots = self.b.bitcast(context, PTR.as_pointer())
        count = len(op.operands) + len(op.results)
        # Every buffer pointer is loaded here, once: loaded inside a loop, LLVM could not hoist it past
        # the loop's stores (they might alias the context) and would not vectorize the loop.
        self._buffers = [self.b.load(self._slot(index)) for index in range(count)]
        self.dims_pointer = self.b.bitcast(self.b.load(self._slot(count)), I64.as_pointer())

    def _slot(self, index: int) -> ll.Value:
        return self.b.gep(self.slots, [ll.Constant(I64, index)])

    def operand_pointer(self, index: int, dtype: DType) -> ll.Value:
        return self.b.bitcast(self._buffers[index], storage_type(dtype).as_pointer())

    def result_pointer(self, index: int, dtype: DType) -> ll.Value:
        return self.operand_pointer(len(self.op.operands) + index, dtype)

    def sibling(self, suffix: str) -> "Kernel":
        """Another function for the same op, taking the same context (or one with extra pointers)."""
        return Kernel(self.module, self.dims, self.op, f"{self.function.name}_{suffix}", self.number,
                      self.error_slot, self.b.fast_math, self.shared)

    def may_share(self, result: int, operand: int) -> bool:
        """Whether result `result` may be written into operand `operand`'s bytes."""
        return self.shared is None or (result, operand) in self.shared

    def extra_pointer(self, index: int) -> ll.Value:
        """The index-th pointer after the dims pointer in the context (module.Launch.context)."""
        return self.b.load(self._slot(len(self.op.operands) + len(self.op.results) + 1 + index))

    def dim(self, value: Value, axis: int) -> ll.Value:
        """A dim of a value of this kernel: a region value's dims are its operand's or result's."""
        return emit_dim(self.b, self.dims, self.dims_pointer, value, axis)

    def alloca(self, type: ll.Type, name: str = "", align: int | None = None) -> ll.Value:
        """A stack slot in the entry block (LLVM promotes it to a register)."""
        return alloca_at_start(self.b, self._alloca_block, type, name, align)

    def fail_if(self, bad: ll.Value, detail: ll.Value) -> None:
        """Where `bad` holds, record this kernel and `detail` in the error slots (the entry point then stops)."""
        b = self.b
        with b.if_then(bad, likely=False):
            b.store(ll.Constant(I64, self.number + 1), b.gep(self.dims_pointer, [ll.Constant(I64, self.error_slot)]))
            b.store(detail, b.gep(self.dims_pointer, [ll.Constant(I64, self.error_slot + 1)]))

    def finish(self) -> ll.Function:
        self.b.ret_void()
        return self.function


@dataclass
class BroadcastAxis:
    """One loop axis of an iteration space: its size and, per operand, whether it moves along it."""

    size: ll.Value
    moves: tuple[bool, ...]  # per operand: False = broadcast along this axis (stride 0)


def broadcast_axes(kernel: Kernel, shape_of: Value, operands: Sequence[Value]) -> list[BroadcastAxis]:
    """The axes of `shape_of`'s shape, each operand right-aligned against it; size-1 axes dropped and
    neighbouring axes merged where every operand moves (or stays) along both, so a plain elementwise
    kernel becomes one long loop that LLVM vectorizes."""
    rank = shape_of.type.rank
    axes: list[tuple[list[ll.Value], tuple[bool, ...]]] = []
    for axis in range(rank):
        if shape_of.type.shape[axis] == 1:
            continue
        moves = tuple(_moves(v, axis - rank + v.type.rank, shape_of.type.shape[axis]) for v in operands)
        size = kernel.dim(shape_of, axis)
        if axes and axes[-1][1] == moves:
            axes[-1][0].append(size)
        else:
            axes.append(([size], moves))
    return [BroadcastAxis(product(kernel.b, sizes), moves) for sizes, moves in axes]


def _moves(value: Value, axis: int, full: int | None) -> bool:
    """Whether `value` steps along this axis; a dim statically 1 under a bigger one is a broadcast.

    An unknown dim counts as moving: the runtime checks it equals the full dim (Note [dims vector]).
    """
    if axis < 0:
        return False
    dim = value.type.shape[axis]
    return not (dim == 1 and full != 1)


def operand_strides(b: ll.IRBuilder, axes: Sequence[BroadcastAxis], count: int) -> list[list[ll.Value]]:
    """strides[k][operand]: elements to step in operand's buffer per step along axis k (0 if broadcast)."""
    strides = [[ll.Constant(I64, 0)] * count for _ in axes]
    for operand in range(count):
        running: ll.Value = ll.Constant(I64, 1)
        for k in range(len(axes) - 1, -1, -1):
            if axes[k].moves[operand]:
                strides[k][operand] = running
                running = _mul(b, running, axes[k].size)
    return strides


def decompose(b: ll.IRBuilder, index: ll.Value, sizes: Sequence[ll.Value]) -> list[ll.Value]:
    """Row-major coordinates of a linear index over `sizes`."""
    coordinates = []
    for size in reversed(sizes[1:]):
        coordinates.append(b.urem(index, size))
        index = b.udiv(index, size)
    coordinates.append(index)
    return coordinates[::-1]


def dot(b: ll.IRBuilder, coordinates: Sequence[ll.Value], strides: Sequence[ll.Value]) -> ll.Value:
    offset: ll.Value = ll.Constant(I64, 0)
    for coordinate, stride in zip(coordinates, strides):
        if isinstance(stride, ll.Constant) and stride.constant == 0:
            continue
        offset = b.add(offset, _mul(b, coordinate, stride))
    return offset

