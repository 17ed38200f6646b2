"""Line ops of the single kernel (Note [line ops] in single.py): cumsum and cumprod, and top_k.

Each work item is one line of the operand along the op's axis; the lines are split across threads
like any kernel's work. A scan walks its line serially, in the order of the walk (reversed for
`reverse`), keeping the running value in a register: the reference's order (numpy's accumulate),
so float results agree bit for bit. top_k keeps the k best entries seen so far sorted in the
output row itself: each new entry that beats the last of them is put in place by moving the worse
ones down one slot (an insertion sort cut at k), so equal values keep the order of their indices.
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation, Value

from ..elementwise import float_flags
from ..kernel import Kernel, decompose, dot, for_range
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


def _combine(b: ll.IRBuilder, name: str, x: ll.Value, y: ll.Value, is_float: bool) -> ll.Value:
    if name == "cumsum":
        return b.fadd(x, y, flags=float_flags(b)) if is_float else b.add(x, y)
    return b.fmul(x, y, flags=float_flags(b)) if is_float else b.mul(x, y)


LINE_EMITTERS["cumsum"] = LINE_EMITTERS["cumprod"] = (lambda op: op.scan_axis(), emit_scan_line)


# -- top_k ----------------------------------------------------------------------------------------


def emit_top_k_line(kernel: Kernel, op: Operation, line: ll.Value) -> None:
    if op.k == 0:
        return  # nothing to write: the results have no element
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
             dtype) -> ll.Value:  # type: ignore[no-untyped-def]
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


LINE_EMITTERS["top_k"] = (lambda op: op.operands[0].type.rank - 1, emit_top_k_line)
