"""Line ops of the single kernel (Note [line ops] in single.py): cumsum and cumprod, and top_k.

Each work item is one line of the operand along the op's axis; the lines are split across threads
like any kernel's work. A scan combines each line's elements serially, in the order of the walk
(reversed for `reverse`): the reference's order (numpy's accumulate), so float results agree bit
for bit. Along the last axis a line is contiguous and is walked with the running value in a
register. Along another axis the lines of a kernel's range that lie side by side (consecutive
indices after the axis) advance together, one step of the walk at a time over all of them: each
step reads a contiguous run of x and of the previous step's results, which LLVM vectorizes, where
walking one strided line after another read a new cache line per element (cumsum over axis 0 of
a [2000, 2000] took 120 ms that way, numpy 90). top_k keeps the k best entries seen so far sorted in the
output row itself: each new entry that beats the last of them is put in place by moving the worse
ones down one slot (an insertion sort cut at k), so equal values keep the order of their indices.
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation, Value
from flowc.ir.types import DType

from ..elementwise import float_flags
from ..kernel import Kernel, decompose, dot, for_range, min_of, product
from ..types import I64, compute_type, constant_of, load_value, store_value
from .single import LINE_EMITTERS, strides_of


def line_start(kernel: Kernel, x: Value, axis: int, line: ll.Value) -> tuple[ll.Value, ll.Value, ll.Value]:
    """(offset of the line's first element, the line's length, the step between its elements) in x."""
    b = kernel.b
    rank = x.type.rank
    sizes = [kernel.dim(x, a) for a in range(rank)]
    strides = strides_of(kernel, x)
    others = [a for a in range(rank) if a != axis]
    coordinates = decompose(b, line, [sizes[a] for a in others]) if others else []
    return dot(b, coordinates, [strides[a] for a in others]), sizes[axis], strides[axis]


# -- scans ----------------------------------------------------------------------------------------


def emit_scan(kernel: Kernel, op: Operation) -> None:
    x = op.operands[0]
    axis = op.scan_axis()
    if all(d == 1 for d in x.type.shape[axis + 1:]):  # the last axis, in effect: contiguous lines
        with for_range(kernel.b, kernel.begin, kernel.end, "line") as line:
            emit_scan_line(kernel, op, line)
    else:
        emit_scan_side_by_side(kernel, op, axis)


def emit_scan_line(kernel: Kernel, op: Operation, line: ll.Value) -> None:
    b = kernel.b
    x = op.operands[0]
    dtype = x.type.dtype
    value_type = compute_type(dtype)
    start, length, step = line_start(kernel, x, op.scan_axis(), line)
    source, target = kernel.operand_pointer(x.index, dtype), kernel.result_pointer(0, dtype)
    running = kernel.alloca(value_type, f"{op.name}.running")
    b.store(constant_of(value_type, type(op).identity), running)
    with for_range(b, ll.Constant(I64, 0), length, "k") as k:
        position = b.sub(b.sub(length, ll.Constant(I64, 1)), k) if op.reverse else k
        offset = b.add(start, b.mul(position, step))
        before = b.load(running)
        total = _combine(b, op.name, before, load_value(b, b.gep(source, [offset]), dtype), dtype.is_float)
        store_value(b, before if op.exclusive else total, b.gep(target, [offset]), dtype)
        b.store(total, running)


def emit_scan_side_by_side(kernel: Kernel, op: Operation, axis: int) -> None:
    """The kernel's lines in runs of neighbours: line = before * inner + after, and a run is the lines
    of one `before` from the kernel's range (so at most inner of them), walked together."""
    b = kernel.b
    x = op.operands[0]
    dtype = x.type.dtype
    sizes = [kernel.dim(x, a) for a in range(x.type.rank)]
    length, inner = sizes[axis], product(b, sizes[axis + 1:])
    source, target = kernel.operand_pointer(x.index, dtype), kernel.result_pointer(0, dtype)
    identity = constant_of(compute_type(dtype), type(op).identity)
    before_block = b.block
    header, body, done = (b.append_basic_block(f"run.{name}") for name in ("header", "body", "done"))
    b.branch(header)
    b.position_at_end(header)
    start = b.phi(I64, "run.start")
    start.add_incoming(kernel.begin, before_block)
    b.cbranch(b.icmp_signed("<", start, kernel.end), body, done)
    b.position_at_end(body)
    first_after = b.urem(start, inner)
    count = min_of(b, b.sub(inner, first_after), b.sub(kernel.end, start))
    base = b.add(b.mul(b.udiv(start, inner), b.mul(length, inner)), first_after)
    with for_range(b, ll.Constant(I64, 0), length, "k") as k:
        position = b.sub(b.sub(length, ll.Constant(I64, 1)), k) if op.reverse else k
        row = b.add(base, b.mul(position, inner))
        first = b.icmp_signed("==", k, ll.Constant(I64, 0))
        # The previous step's row; on the first step, this row itself (read, then not used).
        previous = b.select(first, row, b.add(row, inner) if op.reverse else b.sub(row, inner))
        with for_range(b, ll.Constant(I64, 0), count, "after") as after:
            here, there = b.add(row, after), b.add(previous, after)
            term = load_value(b, b.gep(source, [there if op.exclusive else here]), dtype)
            running = load_value(b, b.gep(target, [there]), dtype)
            total = _combine(b, op.name, running, term, dtype.is_float)
            store_value(b, b.select(first, identity if op.exclusive else term, total), b.gep(target, [here]), dtype)
    start.add_incoming(b.add(start, count), b.block)
    b.branch(header)
    b.position_at_end(done)


def _combine(b: ll.IRBuilder, name: str, x: ll.Value, y: ll.Value, is_float: bool) -> ll.Value:
    if name == "cumsum":
        return b.fadd(x, y, flags=float_flags(b)) if is_float else b.add(x, y)
    return b.fmul(x, y, flags=float_flags(b)) if is_float else b.mul(x, y)


LINE_EMITTERS["cumsum"] = LINE_EMITTERS["cumprod"] = (lambda op: op.scan_axis(), emit_scan)


# -- top_k ----------------------------------------------------------------------------------------


def emit_top_k(kernel: Kernel, op: Operation) -> None:
    if op.k == 0:
        return  # nothing to write: the results have no element
    # A row shorter than k: the type rule on the fed shapes refuses it before a Session's run; an
    # exported library has no type rules, so the kernel stops the run (its entry point's error code).
    x = op.operands[0]
    length = kernel.dim(x, x.type.rank - 1)
    kernel.fail_if(kernel.b.icmp_signed("<", length, ll.Constant(I64, op.k)), length)
    with for_range(kernel.b, kernel.begin, kernel.end, "line") as line:
        emit_top_k_line(kernel, op, line)


def emit_top_k_line(kernel: Kernel, op: Operation, line: ll.Value) -> None:
    b = kernel.b
    x = op.operands[0]
    dtype = x.type.dtype
    start, length, _ = line_start(kernel, x, x.type.rank - 1, line)
    source = kernel.operand_pointer(x.index, dtype)
    first = b.mul(line, ll.Constant(I64, op.k))
    values = b.gep(kernel.result_pointer(0, dtype), [first])
    indices = b.gep(kernel.result_pointer(1, op.results[1].type.dtype), [first])
    index_type = compute_type(op.results[1].type.dtype)
    filled = kernel.alloca(I64, "top_k.filled")
    b.store(ll.Constant(I64, 0), filled)
    last = ll.Constant(I64, op.k - 1)
    with for_range(b, ll.Constant(I64, 0), length, "j") as j:
        value = load_value(b, b.gep(source, [b.add(start, j)]), dtype)
        count = b.load(filled)
        full = b.icmp_signed("==", count, ll.Constant(I64, op.k))
        # A full row takes the value only if it beats the last kept one (read only when full).
        beats_last = _better(b, value, load_value(b, b.gep(values, [last]), dtype), dtype.is_float)
        with b.if_then(b.or_(b.not_(full), beats_last)):
            slot = _sift_up(b, values, indices, b.select(full, last, count), value, dtype)
            store_value(b, value, b.gep(values, [slot]), dtype)
            b.store(b.trunc(j, index_type), b.gep(indices, [slot]))
            b.store(b.select(full, count, b.add(count, ll.Constant(I64, 1))), filled)


def _sift_up(b: ll.IRBuilder, values: ll.Value, indices: ll.Value, slot: ll.Value, value: ll.Value,
             dtype: DType) -> ll.Value:
    """Move the kept entries worse than `value` down one slot, from `slot` up; the slot left for it."""
    before = b.block
    header, body, done = (b.append_basic_block(f"top_k.{name}") for name in ("header", "body", "done"))
    b.branch(header)
    b.position_at_end(header)
    position = b.phi(I64, "top_k.slot")
    position.add_incoming(slot, before)
    above = b.sub(position, ll.Constant(I64, 1))
    # Slot `above` is read only where position > 0 (the and below); at 0 the read is of slot 0, harmless.
    safe = b.select(b.icmp_signed(">", position, ll.Constant(I64, 0)), above, ll.Constant(I64, 0))
    neighbour = load_value(b, b.gep(values, [safe]), dtype)
    moves = b.and_(b.icmp_signed(">", position, ll.Constant(I64, 0)), _better(b, value, neighbour, dtype.is_float))
    b.cbranch(moves, body, done)
    b.position_at_end(body)
    store_value(b, neighbour, b.gep(values, [position]), dtype)
    b.store(b.load(b.gep(indices, [safe])), b.gep(indices, [position]))
    position.add_incoming(above, body)
    b.branch(header)
    b.position_at_end(done)
    return position


def _better(b: ll.IRBuilder, x: ll.Value, y: ll.Value, is_float: bool) -> ll.Value:
    """x comes before y: larger, or NaN against a number (ir/ops/selection.py); never on a tie."""
    if not is_float:
        return b.icmp_signed(">", x, y)
    x_is_nan, y_is_nan = b.fcmp_unordered("uno", x, x), b.fcmp_unordered("uno", y, y)
    return b.or_(b.fcmp_ordered(">", x, y), b.and_(x_is_nan, b.not_(y_is_nan)))


LINE_EMITTERS["top_k"] = (lambda op: op.operands[0].type.rank - 1, emit_top_k)
