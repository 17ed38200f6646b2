"""Loop kernels: elementwise chains (with broadcasts and several outputs) as one loop nest.

The iteration space is the outputs' shape, its axes merged where every
input moves alike (`broadcast_axes`), so the innermost loop is as long as
possible and every input is either contiguous or fixed along it: the shape
LLVM's loop vectorizer wants. The work [begin, end) is a range of the linear
output index, so the thread pool can cut it anywhere; each stretch of it is
walked row by row.
"""

from __future__ import annotations

from typing import Sequence

from llvmlite import ir as ll

from flowc.ir import Value

from ..body import Body
from ..kernel import Kernel, broadcast_axes, decompose, dot, for_range, operand_strides
from ..launch import elementwise_work, kernel_kind
from ..parallel_loop import mark_parallel
from ..types import I64, load_value, store_value


@kernel_kind("loop", elementwise_work)
def emit_loop_kernel(kernel: Kernel) -> None:
    block = kernel.op.regions[0].entry
    inputs = [(arg, kernel.operand_pointer(i, arg.type.dtype)) for i, arg in enumerate(block.args)]
    outputs = [(value, kernel.result_pointer(i, value.type.dtype))
               for i, value in enumerate(block.terminator.operands)]
    elementwise_loop(kernel, inputs, outputs, kernel.begin, kernel.end)


def elementwise_loop(kernel: Kernel, inputs: Sequence[tuple[Value, ll.Value]],
                     outputs: Sequence[tuple[Value, ll.Value]], begin: ll.Value, end: ll.Value) -> None:
    """Compute `outputs` (values of one shape) at every linear index in [begin, end).

    `inputs` are the values read from memory, each with its buffer; they
    broadcast against the outputs' shape.
    """
    b = kernel.b
    values = [value for value, _ in inputs]
    pointers = {value: pointer for value, pointer in inputs}
    axes = broadcast_axes(kernel, outputs[0][0], values)
    if not axes:  # a single element
        body = Body(b, lambda v: load_value(b, pointers[v], v.type.dtype), loaded=set(values))
        _store_all(b, body, outputs, ll.Constant(I64, 0))
        return
    strides = operand_strides(b, axes, len(values))
    position = {value: k for k, value in enumerate(values)}
    inner = axes[-1].size
    outer_sizes = [axis.size for axis in axes[:-1]]

    # while i < end: one stretch of a row per turn
    start = b.block
    header, row_body, done = (b.append_basic_block(n) for n in ("rows.header", "rows.body", "rows.done"))
    b.branch(header)
    b.position_at_end(header)
    i = b.phi(I64, name="i")
    i.add_incoming(begin, start)
    b.cbranch(b.icmp_signed("<", i, end), row_body, done)
    b.position_at_end(row_body)
    row = b.udiv(i, inner, name="row")
    first = b.sub(i, b.mul(row, inner), name="first")
    count = _min(b, b.sub(inner, first), b.sub(end, i))
    coordinates = decompose(b, row, outer_sizes) if outer_sizes else []
    bases = [dot(b, coordinates, [axis_strides[k] for axis_strides in strides[:-1]]) for k in range(len(values))]
    out_base = b.mul(row, inner)
    first_block = len(kernel.function.blocks)
    with for_range(b, first, b.add(first, count), "j") as j:
        def load(value: Value) -> ll.Value:
            k = position[value]
            offset = b.add(bases[k], b.mul(j, strides[-1][k]))
            return load_value(b, b.gep(pointers[value], [offset]), value.type.dtype)

        _store_all(b, Body(b, load, loaded=set(values)), outputs, b.add(out_base, j))
        latch = b.block
    # Each j writes its own elements and reads its own or unwritten ones (Note [independent iterations]).
    mark_parallel(kernel.function, kernel.function.blocks[first_block:], latch)
    i.add_incoming(b.add(i, count), b.block)
    b.branch(header)
    b.position_at_end(done)


def _store_all(b: ll.IRBuilder, body: Body, outputs: Sequence[tuple[Value, ll.Value]], offset: ll.Value) -> None:
    # Every output computed (every input element read) before any is stored: the memory plan may write a
    # loop's new state into the bytes of the old state that the same kernel reads at the same index
    # (Note [control flow storage] in passes/memory.py).
    computed = [body.value(value) for value, _ in outputs]
    for (value, pointer), element in zip(outputs, computed):
        store_value(b, element, b.gep(pointer, [offset]), value.type.dtype)


def _min(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)
