"""Line ops of the single kernel (Note [line ops] in single.py): cumsum and cumprod, and top_k.

Each work item is one line of the operand along the op's axis; the lines are split across threads
like any kernel's work. A scan combines each line's elements serially, in the order of the walk
(reversed for `reverse`): the reference's order (numpy's accumulate), so float results agree bit
for bit. Along the last axis a line is contiguous and is walked with the running value in a
register. Along another axis the lines of a kernel's range that lie side by side (consecutive
indices after the axis) advance together, one step of the walk at a time over all of them: each
step reads a contiguous run of x and of the previous step's results, which LLVM vectorizes, where
walking one strided line after another read a new cache line per element (cumsum over axis 0 of
a [2000, 2000] took 120 ms that way, numpy 90). top_k keeps the k best entries seen so far in the
output row itself, as a heap whose root is the worst of them (KeptEntries): a new entry that beats
the root replaces it, then the heap is sorted in place: O(n log k) per row of n. (Kept sorted by
insertion instead, a row in ascending order cost O(n k): k = n = 2000 took 3.3 s for 500 rows.)
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation, Value
from flowc.ir.types import DType

from ..elementwise import float_flags
from ..kernel import Kernel, decompose, dot, for_range, min_of, product
from ..types import I64, as_index, compare_ints, compute_type, constant_of, load_value, rounded, store_value
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
        term = load_value(b, b.gep(source, [offset]), dtype)
        total = rounded(b, _combine(b, op.name, before, term, dtype.is_float), dtype)  # float16: as stored
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
    # A k that is data (a data_dim operand) is the results' last dim, read at run time like any dim.
    x = op.operands[0]
    length = kernel.dim(x, x.type.rank - 1)
    k = kept_count(kernel, op)
    kernel.fail_if(kernel.b.icmp_signed("<", length, k), length)
    with kernel.b.if_then(kernel.b.icmp_signed(">", k, ll.Constant(I64, 0))):  # k = 0: no slot to keep an entry in
        with for_range(kernel.b, kernel.begin, kernel.end, "line") as line:
            emit_top_k_line(kernel, op, line, k)


def kept_count(kernel: Kernel, op: Operation) -> ll.Value:
    """top_k's k: its attribute, or the results' last dim where k is data (ir/ops/selection.py)."""
    if op.k >= 0:
        return ll.Constant(I64, op.k)
    return kernel.dim(op.results[0], op.results[0].type.rank - 1)


def emit_top_k_line(kernel: Kernel, op: Operation, line: ll.Value, k: ll.Value) -> None:
    """A heap of the k best entries so far, worst at the root, in the output row; then sorted in place."""
    b = kernel.b
    x = op.operands[0]
    start, length, _ = line_start(kernel, x, x.type.rank - 1, line)
    source = kernel.operand_pointer(x.index, x.type.dtype)
    heap = KeptEntries(kernel, op, b.mul(line, k))
    with for_range(b, ll.Constant(I64, 0), length, "j") as j:
        value = load_value(b, b.gep(source, [b.add(start, j)]), x.type.dtype)
        with b.if_else(b.icmp_signed("<", j, k)) as (filling, full):
            with filling:
                heap.sift_up(j, value, j)
            with full:  # a new entry replaces the worst kept one if it beats it
                worst_value, worst_index = heap.load(ll.Constant(I64, 0))
                with b.if_then(heap.better(value, j, worst_value, worst_index)):
                    heap.sift_down(value, j, k)
    # Heap sort: the worst goes to the end of the row, the heap shrinks, until the best is first.
    with for_range(b, ll.Constant(I64, 1), k, "sorted") as done:
        end = b.sub(k, done)
        worst_value, worst_index = heap.load(ll.Constant(I64, 0))
        last_value, last_index = heap.load(end)
        heap.store(end, worst_value, worst_index)
        heap.sift_down(last_value, last_index, end)


class KeptEntries:
    """The output row of top_k as a binary heap of (value, index) entries whose root is the worst.

    Entries are ordered by value, NaN above every number, and among equal values the lower index is
    better (ir/ops/selection.py): a strict order, so the heap's result is exact whatever order the
    entries came in. Each operation walks one path of the heap: O(log k) per entry kept."""

    def __init__(self, kernel: Kernel, op: Operation, first: ll.Value):
        self.b = kernel.b
        self.dtype = op.operands[0].type.dtype
        self.index_dtype = op.results[1].type.dtype
        self.values = self.b.gep(kernel.result_pointer(0, self.dtype), [first])
        self.indices = self.b.gep(kernel.result_pointer(1, self.index_dtype), [first])

    def load(self, slot: ll.Value) -> tuple[ll.Value, ll.Value]:
        b = self.b
        index = load_value(b, b.gep(self.indices, [slot]), self.index_dtype)
        return load_value(b, b.gep(self.values, [slot]), self.dtype), as_index(b, index, self.index_dtype)

    def store(self, slot: ll.Value, value: ll.Value, index: ll.Value) -> None:
        b = self.b
        store_value(b, value, b.gep(self.values, [slot]), self.dtype)
        store_value(b, b.trunc(index, compute_type(self.index_dtype)), b.gep(self.indices, [slot]), self.index_dtype)

    def better(self, value: ll.Value, index: ll.Value, other: ll.Value, other_index: ll.Value) -> ll.Value:
        b = self.b
        worse_by_value = _better(b, other, value, self.dtype)
        by_index = b.and_(b.not_(worse_by_value), b.icmp_signed("<", index, other_index))
        return b.or_(_better(b, value, other, self.dtype), by_index)

    def sift_up(self, slot: ll.Value, value: ll.Value, index: ll.Value) -> None:
        """Put the entry in slot `slot` (the heap's new last one), moving better parents down."""
        b = self.b

        def step(position: ll.Value):  # type: ignore[no-untyped-def]
            above = b.icmp_signed(">", position, ll.Constant(I64, 0))
            parent = b.select(above, b.ashr(b.sub(position, ll.Constant(I64, 1)), ll.Constant(I64, 1)),
                              ll.Constant(I64, 0))
            parent_value, parent_index = self.load(parent)
            moves = b.and_(above, self.better(parent_value, parent_index, value, index))
            return moves, parent, lambda: self.store(position, parent_value, parent_index)

        self.store(self._walk("up", slot, step), value, index)

    def sift_down(self, value: ll.Value, index: ll.Value, size: ll.Value) -> None:
        """Put the entry at the root of the heap's first `size` slots, moving worse children up."""
        b = self.b

        def step(position: ll.Value):  # type: ignore[no-untyped-def]
            left = b.add(b.add(position, position), ll.Constant(I64, 1))
            inside = b.icmp_signed("<", left, size)
            left = b.select(inside, left, ll.Constant(I64, 0))  # slot 0 is read, not used, past the end
            right = b.add(left, ll.Constant(I64, 1))
            has_right = b.and_(inside, b.icmp_signed("<", right, size))
            right = b.select(has_right, right, left)
            left_value, left_index = self.load(left)
            right_value, right_index = self.load(right)
            right_worse = b.and_(has_right, self.better(left_value, left_index, right_value, right_index))
            child = b.select(right_worse, right, left)
            child_value = b.select(right_worse, right_value, left_value)
            child_index = b.select(right_worse, right_index, left_index)
            moves = b.and_(inside, self.better(value, index, child_value, child_index))
            return moves, child, lambda: self.store(position, child_value, child_index)

        self.store(self._walk("down", ll.Constant(I64, 0), step), value, index)

    def _walk(self, name: str, start: ll.Value, step) -> ll.Value:  # type: ignore[no-untyped-def]
        """Positions from `start`: step(position) gives (moves, next, move); while moves, move() runs and
        the walk goes on at next. Returns the position where it stopped."""
        b = self.b
        before = b.block
        header, moving, done = (b.append_basic_block(f"heap.{name}.{part}") for part in ("header", "move", "done"))
        b.branch(header)
        b.position_at_end(header)
        position = b.phi(I64, f"heap.{name}")
        position.add_incoming(start, before)
        moves, following, move = step(position)
        b.cbranch(moves, moving, done)
        b.position_at_end(moving)
        move()
        position.add_incoming(following, b.block)
        b.branch(header)
        b.position_at_end(done)
        return position


def _better(b: ll.IRBuilder, x: ll.Value, y: ll.Value, dtype: DType) -> ll.Value:
    """x comes before y: larger, or NaN against a number (ir/ops/selection.py); never on a tie."""
    if not dtype.is_float:
        return compare_ints(b, ">", x, y, dtype)
    x_is_nan, y_is_nan = b.fcmp_unordered("uno", x, x), b.fcmp_unordered("uno", y, y)
    return b.or_(b.fcmp_ordered(">", x, y), b.and_(x_is_nan, b.not_(y_is_nan)))


LINE_EMITTERS["top_k"] = (lambda op: op.operands[0].type.rank - 1, emit_top_k)
