"""scatter_add on the CPU (ir/ops/indexing.py): a copy of base, then each slice of updates added
into the result at its index.

Note [scatter_add without races]: two indices may pick the same slice, so the work is never split
by index: a thread owns a share of the lines (p, q) that run along the axis (p: base's dims before
it, q: its dims after it, numbered row-major, so consecutive lines are consecutive elements of a
row) and walks every index for its share, adding the run of inner elements it owns to the row the
index picks. No two threads write an element, and an element's updates are added in the order of
the indices, as np.add.at adds them (float sums agree with the reference bit for bit). The inner
run is a plain loop of loads, adds and stores that LLVM vectorizes. The copy of base is a kernel of
its own over every element, before; it is left out where the memory plan gave the result base's
bytes (Note [rows written in place] in passes/memory.py), so a gradient of gather into zeros costs
the fill and the adds, not also a copy of the table.
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation, Value

from ..kernel import Kernel, emit_dim, for_range, min_of, product
from ..launch import GRAIN, Launch
from ..program import DimTable
from ..types import I64, compute_type, load_value, store_value
from .single import SINGLE_KERNELS, SINGLE_LAUNCHES, SINGLE_WORK, check_indices_of_empty_slices, writes_in_place

Dim = Callable[[Value, int], ll.Value]
LINES_PER_SHARE = 16  # 64 bytes of float32


def _i64(value: int) -> ll.Constant:
    return ll.Constant(I64, value)


def _max(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _sizes(b: ll.IRBuilder, dim: Dim, op: Operation) -> tuple[ll.Value, ll.Value, ll.Value, ll.Value]:
    """(outer, axis size, inner, index count) of a scatter_add."""
    base, indices, _ = op.operands
    axis = op.axis % base.type.rank
    sizes = [dim(base, a) for a in range(base.type.rank)]
    count = product(b, [dim(indices, a) for a in range(indices.type.rank)])
    return product(b, sizes[:axis]), sizes[axis], product(b, sizes[axis + 1:]), count


def scatter_work(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, op: Operation) -> tuple[ll.Value, ll.Value]:
    """Work = the lines along the axis (Note [scatter_add without races]); a line costs one add per index.
    A share holds at least LINES_PER_SHARE lines, so that a thread's runs are a cache line or more
    rather than single elements strided across the table (many indices, few lines)."""
    outer, _, inner, count = _sizes(b, lambda value, axis: emit_dim(b, dims, dims_pointer, value, axis), op)
    grain = b.sdiv(_i64(GRAIN), _max(b, count, _i64(1)))
    return b.mul(outer, inner), _max(b, grain, _i64(LINES_PER_SHARE))


def emit_scatter_add(kernel: Kernel, op: Operation) -> None:
    """The adds of lines [begin, end): per outer position p that the share meets, its run of inner
    positions [low, high), then every index's run of updates added into the row it picks."""
    b = kernel.b
    base, indices, updates = op.operands
    dtype = base.type.dtype
    outer, limit, inner, count = _sizes(b, kernel.dim, op)
    width = _max(b, inner, _i64(1))  # no inner element: no lines, so no turn; only avoid / 0
    index_pointer = kernel.operand_pointer(1, indices.type.dtype)
    source, target = kernel.operand_pointer(2, dtype), kernel.result_pointer(0, dtype)
    is_float = isinstance(compute_type(dtype), (ll.HalfType, ll.FloatType, ll.DoubleType))
    first = b.sdiv(kernel.begin, width)
    last = b.sdiv(b.add(kernel.end, b.sub(width, _i64(1))), width)
    with for_range(b, first, last, "p") as p:
        start = b.mul(p, width)
        low = _max(b, b.sub(kernel.begin, start), _i64(0))
        high = min_of(b, b.sub(kernel.end, start), inner)
        with for_range(b, _i64(0), count, "i") as i:
            index = load_value(b, b.gep(index_pointer, [i]), indices.type.dtype)
            if indices.type.dtype.itemsize < 8:
                index = b.sext(index, I64)
            bad = b.or_(b.icmp_signed("<", index, _i64(0)), b.icmp_signed(">=", index, limit))
            kernel.fail_if(bad, index)
            with b.if_then(b.not_(bad), likely=True):  # a bad index adds nothing (the run stops after)
                row = b.mul(b.add(b.mul(p, limit), index), inner)
                run = b.mul(b.add(b.mul(p, count), i), inner)
                with for_range(b, low, high, "q") as q:
                    into = b.gep(target, [b.add(row, q)])
                    old = load_value(b, into, dtype)
                    new = load_value(b, b.gep(source, [b.add(run, q)]), dtype)
                    store_value(b, b.fadd(old, new) if is_float else b.add(old, new), into, dtype)


def _emit_copy(kernel: Kernel, op: Operation) -> ll.Function:
    """result[e] = base[e] for the elements [begin, end)."""
    b = kernel.b
    dtype = op.operands[0].type.dtype
    source, target = kernel.operand_pointer(0, dtype), kernel.result_pointer(0, dtype)
    with for_range(b, kernel.begin, kernel.end, "e") as element:
        store_value(b, load_value(b, b.gep(source, [element]), dtype), b.gep(target, [element]), dtype)
    return kernel.finish()


def launch_scatter_add(launch: Launch, op: Operation) -> None:
    """The copy (unless in place), the adds, and the indices checked where no line holds them."""
    b, kernel = launch.b, launch.kernel
    if not writes_in_place(kernel):
        base = op.operands[0]
        size = product(b, [emit_dim(b, kernel.dims, launch.dims_pointer, base, a) for a in range(base.type.rank)])
        copy = _emit_copy(kernel.sibling("copy"), op)
        b.call(launch.parallel_for, [copy, launch.context([]), size, _i64(GRAIN)])
    launch.default()
    check_indices_of_empty_slices(launch, op)


SINGLE_KERNELS["scatter_add"] = emit_scatter_add
SINGLE_WORK["scatter_add"] = scatter_work
SINGLE_LAUNCHES["scatter_add"] = launch_scatter_add
