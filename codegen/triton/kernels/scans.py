"""Single kernels of the line ops: cumsum and cumprod (ir/ops/scan.py), top_k (ir/ops/selection.py).

Each works on lines of its operand along one axis, a lane of a program per line, BLOCK lines per
program. A scan walks its lines serially, in the reference's order (numpy's accumulate), so float
results agree bit for bit, as the CPU's do (codegen/llvm/kernels/scan.py); lines side by side
(consecutive positions after the axis) are neighbouring lanes, so each step of the walk reads and
writes contiguous memory wherever the axis is not the last.
"""

from __future__ import annotations

from flowc.ir import Operation

from ..expressions import triton_dtype
from ..kernel import GridAxis, TritonKernel, emits_single, helper, single_op
from .single import SingleWriter, extents

LINES = 256  # lines per program


@emits_single("cumsum", "cumprod")
def emit_scan(op: Operation, name: str) -> TritonKernel:
    inner = single_op(op)
    x = inner.operands[0]
    axis = inner.scan_axis()
    dtype = triton_dtype(x.type.dtype)
    floating = x.type.dtype.kind == "float"
    writer = SingleWriter(op, name)
    writer.constants["LINES"] = LINES
    outer = writer.size_of(x, range(axis))
    length = writer.dim(x, axis)
    after = writer.size_of(x, range(axis + 1, x.type.rank))
    combine = "+" if inner.name == "cumsum" else "*"
    # The running value starts at the identity; an inclusive float sum starts at -0.0, which adds
    # to every x exactly (0.0 + -0.0 is 0.0, yet numpy's first element is x[0] itself).
    start = ("-0.0" if floating and not inner.exclusive else "0") if combine == "+" else "1"
    lines = writer.lines
    lines.append("line = tl.program_id(0).to(tl.int64) * LINES + tl.arange(0, LINES)")
    lines.append(f"inside = line < {outer} * {after}")
    lines.append(f"base = (line // tl.maximum({after}, 1)) * {length} * {after} + line % tl.maximum({after}, 1)")
    lines.append(f"running = tl.full([LINES], {start}, {dtype})")
    lines.append(f"for walked in range(0, {length}):")
    position = f"({length} - 1 - walked)" if inner.reverse else "walked"
    lines.append(f"    offset = base + {position} * {after}")
    lines.append(f"    element = tl.load({writer.pointer(x)} + offset, mask=inside)")
    result = writer.pointer(op.results[0])
    if inner.exclusive:
        lines.append(f"    tl.store({result} + offset, running, mask=inside)")
        lines.append(f"    running = running {combine} element")
    else:
        lines.append(f"    running = running {combine} element")
        lines.append(f"    tl.store({result} + offset, running, mask=inside)")
    grid = GridAxis(tuple(e for a, e in enumerate(extents(writer, x)) if a != axis), LINES)
    return writer.kernel((grid,))


COMES_BEFORE = helper("flowc_comes_before", '''
@triton.jit
def flowc_comes_before(a, a_index, b, b_index):
    """Entry (a, a_index) comes before (b, b_index) in top_k's order: larger, NaN above every number,
    the lower index first among equal values (ir/ops/selection.py)."""
    a_nan = a != a
    b_nan = b != b
    larger = (a > b) | (a_nan & (b_nan == 0))
    tie = (a == b) | (a_nan & b_nan)
    return larger | (tie & (a_index < b_index))
''')


@emits_single("top_k")
def emit_top_k(op: Operation, name: str) -> TritonKernel:
    """A lane per row picks the k entries one after another: pick t is the first entry, in top_k's
    order, of those after pick t - 1 (a walk of the row per pick: O(n k), no memory but registers)."""
    inner = single_op(op)
    x = inner.operands[0]
    dtype = triton_dtype(x.type.dtype)
    writer = SingleWriter(op, name)
    writer.constants["LINES"] = LINES
    rows = writer.size_of(x, range(x.type.rank - 1))
    length = writer.dim(x, x.type.rank - 1)
    values, indices = writer.pointer(op.results[0]), writer.pointer(op.results[1])
    k = writer.dim(op.results[0], x.type.rank - 1)  # the attribute, or a run-time dim where k is data
    lines = writer.lines
    lines.append("line = tl.program_id(0).to(tl.int64) * LINES + tl.arange(0, LINES)")
    lines.append(f"inside = line < {rows}")
    lines.append(f"last = tl.zeros([LINES], {dtype})")
    lines.append("last_index = line * 0 - 1")
    lines.append(f"for pick in range(0, {k}):")
    lines.append(f"    best = tl.zeros([LINES], {dtype})")
    lines.append("    best_index = line * 0 - 1")
    lines.append(f"    for position in range(0, {length}):")
    lines.append("        entry_index = line * 0 + position")
    lines.append(f"        entry = tl.load({writer.pointer(x)} + line * {length} + position, mask=inside)")
    lines.append("        after = (last_index < 0) | flowc_comes_before(last, last_index, entry, entry_index)")
    lines.append("        take = after & ((best_index < 0) | flowc_comes_before(entry, entry_index, best, best_index))")
    lines.append("        best = tl.where(take, entry, best)")
    lines.append("        best_index = tl.where(take, entry_index, best_index)")
    lines.append(f"    tl.store({values} + line * {k} + pick, best, mask=inside)")
    lines.append(f"    tl.store({indices} + line * {k} + pick, best_index.to(tl.int32), mask=inside)")
    lines.append("    last = best")
    lines.append("    last_index = best_index")
    grid = GridAxis(extents(writer, x)[:-1], LINES)
    return writer.kernel((grid,))
