"""scatter_add on the gpu (ir/ops/indexing.py is the specification): the slices of updates added
into a copy of base at the positions the indices pick.

Note [scatter_add with atomics]: the launcher copies base into the result first (TritonKernel's
starts_as), then the kernel runs over positions m = p * I + i as gather's does (p: base's dims
before the axis, i: the indices' elements), each position adding its slice of updates, BLOCK_Q
elements at a time, into the row its index picks with tl.atomic_add: two indices that pick the
same row add both, in whichever order the programs run (floats may differ from the reference's
order in the last bits). An index out of range is flagged and adds nothing; where base's dims
before the axis hold no element the one program launched checks every index (Note [indices of
empty slices], as gather).
"""

from __future__ import annotations

from flowc.ir import Operation

from ..kernel import TritonKernel, emits_single, single_op
from .gathers import indexed_grid, indexed_positions
from .single import SingleWriter


@emits_single("scatter_add")
def emit_scatter_add(op: Operation, name: str) -> TritonKernel:
    """result = base; result[p, indices[i], q] += updates[p, i, q] (Note [scatter_add with atomics])."""
    inner = single_op(op)
    base, indices, updates = inner.operands
    axis = inner.axis % base.type.rank
    writer = SingleWriter(op, name)
    outer, limit, slice_size = indexed_positions(writer, base, indices, axis, "addable")
    result = op.results[0]
    lines = writer.lines
    lines.append(f"target = (p * {limit} + index) * {slice_size}")
    lines.append(f"source = offsets * {slice_size}")
    lines.append(f"for start in range(0, {slice_size}, BLOCK_Q):")
    lines.append("    q = start + tl.arange(0, BLOCK_Q)")
    lines.append(f"    both = addable[:, None] & (q < {slice_size})[None, :]")
    lines.append(f"    values = tl.load({writer.pointer(updates)} + source[:, None] + q[None, :], mask=both, other=0)")
    lines.append(f"    tl.atomic_add({writer.pointer(result)} + target[:, None] + q[None, :], values, mask=both)")
    kernel = writer.kernel((indexed_grid(writer, base, indices, axis, outer, limit),))
    return TritonKernel(kernel.name, kernel.source, kernel.parameters, kernel.grid, kernel.constants,
                        kernel.num_warps, starts_as=((writer.slot(result), writer.slot(base)),))
