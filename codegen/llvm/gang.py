"""A while loop run by a gang (Note [loops run by a gang] in passes/gang_loops.py): its code. (A loop
marked `threads = "rows"`, whose members own rows and meet at no barrier, is gang_rows.py's.)

The entry point hands the loop's buffers and the dims to one function, `gang<N>`, that
flowc_run_gang runs on every member of a gang at once, or on the calling thread alone (a gang of
one, whose barriers return at once) where a turn's products at the fed shapes stay under
GANG_MIN_MULTIPLY_ADDS or the pool has one thread:

    entry point:  context <- dims, every buffer the loop touches
                  flowc_run_gang(gang<N>, context, products >= GANG_MIN_MULTIPLY_ADDS)
                  return on a kernel's error
    gang<N>(context, gang, member, members):
                  member 0: state <- init
                  loop: <cond kernels>; barrier; if !flag: return
                        <body kernels>; member 0: state <- yields; loop

A kernel whose work splits (a product by rows, any kind the pool may split by its work) runs on
every member, each on its own slice of [0, n) (member 0 all of it when n is under two gang
grains), and a barrier follows it: the next kernel may read any of its rows. A row read and a big
copy of the state are shared out by bytes the same way. Everything else (a small kernel, a kind
whose launch is its own, a small copy) runs on member 0 alone, with no barrier until another
member needs what it wrote: before the next split kernel and before the flag is read. A turn holds
at least one barrier, so member 0 never writes the next turn's flag before every member has read
this one.

A kernel's error stops every member at the same barrier: each member reports on arriving whether
it finds the error slot set, and all of them stop where one did (flowc_gang_barrier); member 0,
finding its own kernel failed, goes to a barrier and returns. The entry point then returns the
kernel's number as it would. Only member 0 counts a kernel's time (FLOWC_PROFILE=1).
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation, Value
from flowc.ir.ops.kernel_space import GANG_MIN_MULTIPLY_ADDS, GANG_PRODUCTS, contraction_axis, gang_products

from .control import CONTROL_EMITTERS, bytes_of, copy_bytes, emit_loop_header, emit_row_read, row_read
from .entry import EntryEmitter, Timer, known_small, return_on_error
from .kernel import alloca_at_start, emit_dim, min_of, product
from .kernels.matmul import matmul_work
from .launch import LAUNCHERS, WORK, Launch, context_of
from .program import DimTable, schedule_of
from .types import I32, I64, PTR, declared

GANG_TASK = ll.FunctionType(ll.VoidType(), [PTR, PTR, I64, I64])
# A gang splits a kernel at a grain this many times finer than a parallel_for's (launch.GRAIN and
# each kind's own): a split costs a barrier here, not a job on the pool.
GRAIN_DIVISOR = 8
PRODUCT_ROWS = 4  # the fewest rows of a BLAS product a member takes (one sgemm call per member)
SPLIT_COPY_BYTES = 8192  # a state copy this big is shared out; a smaller one is member 0's


def emit_gang_while(outer: EntryEmitter, op: Operation) -> None:
    """The entry point's call of loop `op`'s gang function, on every thread where the fed shapes
    make a turn's products worth it (passes/gang_loops.py) and the pool has more than one, else
    on this one alone; and the gang function."""
    b = outer.b
    threads = b.call(declared(outer.module, "flowc_num_threads", I32, []), [])
    worth = b.and_(b.icmp_signed(">=", _turn_multiply_adds(outer, op), ll.Constant(I64, GANG_MIN_MULTIPLY_ADDS)),
                   b.icmp_signed(">", threads, ll.Constant(I32, 1)))
    values = _touched(op, outer)
    count = len([g for g in outer.module.functions if g.name.startswith("gang")])
    function = ll.Function(outer.module, GANG_TASK, name=f"gang{count}")
    function.linkage = "internal"
    slots = alloca_at_start(b, outer.entry.entry_basic_block, ll.ArrayType(PTR, len(values) + 1), "gang_context")
    for index, pointer in enumerate([outer.dims_pointer, *(outer.buffer(v) for v in values)]):
        b.store(b.bitcast(pointer, PTR), b.gep(slots, [ll.Constant(I32, 0), ll.Constant(I32, index)]))
    run_gang = declared(outer.module, "flowc_run_gang", ll.VoidType(), [GANG_TASK.as_pointer(), PTR, I32])
    b.call(run_gang, [function, b.bitcast(slots, PTR), b.zext(worth, I32)])
    return_on_error(b, outer.entry, outer.dims_pointer, outer.program.error_slot)
    GANG_EMITTERS[op.attributes["threads"]](outer, function, values, op).emit_loop(op)


def _turn_multiply_adds(outer: EntryEmitter, op: Operation) -> ll.Value:
    """The multiply-adds of a turn's products that a gang splits, at the fed shapes."""
    b, total = outer.b, ll.Constant(I64, 0)
    for _, matmul in gang_products(op):
        a, c = matmul.operands[0], matmul.result
        sizes = [emit_dim(b, outer.dims, outer.dims_pointer, c, axis) for axis in range(c.type.rank)]
        sizes.append(emit_dim(b, outer.dims, outer.dims_pointer, a, contraction_axis(matmul)))
        total = b.add(total, product(b, sizes))
    return total


def _touched(op: Operation, outer: EntryEmitter) -> list[Value]:
    """Every value with storage that loop `op`'s code reads or writes, in a fixed order."""
    seen: dict[Value, None] = {}
    for value in (*op.operands, *op.results):
        seen[value] = None
    for region in op.regions:
        for value in region.entry.args:
            seen[value] = None
        for inner in region.entry.ops:
            for value in (*inner.operands, *inner.results):
                seen[value] = None
    return [v for v in seen if v in outer.plan.storage]


class GangEmitter(EntryEmitter):
    """Emits one member's code of a gang loop: EntryEmitter's, with each kernel launched on the
    member's slice or on member 0, and the barriers between (module docstring)."""

    def __init__(self, outer: EntryEmitter, function: ll.Function, values: list[Value], op: Operation):
        self.program, self.plan, self.dims, self.module = outer.program, outer.plan, outer.dims, outer.module
        self.entry, self.numbers, self.emitted = function, outer.numbers, outer.emitted
        self.parallel_for, self.n_args = outer.parallel_for, outer.n_args
        context, self.gang, self.member, self.members = function.args
        self.at_entry = ll.IRBuilder(function.append_basic_block("entry"))
        self.start = function.append_basic_block("start")
        self.b = ll.IRBuilder(self.start)
        slots = self.at_entry.bitcast(context, PTR.as_pointer())
        loaded = [self.at_entry.load(self.at_entry.gep(slots, [ll.Constant(I64, i)])) for i in range(len(values) + 1)]
        self.dims_pointer = self.at_entry.bitcast(loaded[0], I64.as_pointer())
        self.pointers = dict(zip(values, loaded[1:]))
        self.timer = Timer(self.module, self.b, len(self.program.kernel_ops)) if self.program.profile else None
        self.scratch = []
        self.pending = False  # member 0 wrote something since the last barrier
        self.barriers = 0  # barriers emitted so far

    def buffer(self, value: Value) -> ll.Value:
        return self.pointers[value]

    def emit_loop(self, op: Operation) -> None:
        b = self.b
        body = op.regions[1].entry
        self._copy_state(op.operands, op.results)
        self.pending = True  # the state's copies, on entry and after a turn
        header, done = emit_loop_header(self, op, "gang", self._sync)
        barriers = self.barriers
        self.emit_block(body, in_control=True)
        if self.barriers == barriers:  # every member reads this turn's flag before member 0 writes the next
            self._barrier()
        self._copy_state(body.terminator.operands, op.results)
        b.branch(header)
        b.position_at_end(done)
        b.ret_void()
        self.at_entry.position_at_end(self.at_entry.block)
        self.at_entry.branch(self.start)

    def emit_kernel(self, op: Operation, in_control: bool) -> None:
        number = self.numbers[op]
        if row_read(op) is not None:  # Note [a row read]: every member checks the index, copies a slice
            self._sync()
            start = self.timer.now() if self.timer else None
            emit_row_read(self, op, number, self._copy_slice)
            self._record(number, start)
            self._barrier()
            return
        b = self.b
        split = _split_work(op)
        n_grain = split(b, self.dims, self.dims_pointer, op) if split is not None else None
        if n_grain is None or known_small(*n_grain):
            self._launch_on_member_zero(op, number)
            return
        n, grain = n_grain
        entry_work = None if op.kind in LAUNCHERS else WORK[op.kind](b, self.dims, self.dims_pointer, op)
        kernel = self.kernel_of(op, True, entry_work)
        context = context_of(b, [self.buffer(v) for v in (*op.operands, *op.results)], self.dims_pointer)
        if self.pending:
            self._barrier()
        start = self.timer.now() if self.timer else None
        begin, end = self._share(n, b.icmp_signed(">=", n, b.mul(grain, ll.Constant(I64, 2))))
        with b.if_then(b.icmp_signed("<", begin, end)):
            b.call(kernel.function, [context, begin, end])
        self._record(number, start)
        self._barrier()

    def _copy_state(self, sources: list[Value], targets: list[Value]) -> None:
        """targets[i] <- sources[i] where the plan did not put them in the same bytes (control.py's
        _copy_into): a copy of fewer than SPLIT_COPY_BYTES (known) by member 0, a bigger one in a
        slice per member, 64-byte aligned, so that each member copies the rows it computed when a
        product split them alike."""
        plan = self.plan
        split = []
        for source, target in zip(sources, targets, strict=True):
            if plan.buffer_of(source) == plan.buffer_of(target):
                continue
            nbytes = bytes_of(self, source)
            if isinstance(nbytes, ll.Constant) and nbytes.constant < SPLIT_COPY_BYTES:
                if nbytes.constant > 0:
                    self._on_member_zero(lambda s=source, t=target, n=nbytes: copy_bytes(
                        self, self.buffer(t), self.buffer(s), n))
            else:
                split.append((source, target, nbytes))
        if not split:
            return
        self._sync()
        for source, target, nbytes in split:
            self._copy_slice(self.buffer(target), self.buffer(source), nbytes)
        self._barrier()

    def _copy_slice(self, to: ll.Value, source: ll.Value, nbytes: ll.Value) -> None:
        """This member's slice of a copy of `nbytes`: all of it on member 0 under SPLIT_COPY_BYTES, else
        a 64-byte aligned share."""
        b = self.b
        begin, end = self._share(nbytes, b.icmp_signed(">=", nbytes, ll.Constant(I64, SPLIT_COPY_BYTES)), align=64)
        with b.if_then(b.icmp_signed("<", begin, end)):
            copy_bytes(self, b.gep(to, [begin]), b.gep(source, [begin]), b.sub(end, begin))

    def _share(self, n: ll.Value, split: ll.Value, align: int = 1) -> tuple[ll.Value, ll.Value]:
        """This member's [begin, end) of [0, n): an equal share, rounded up to `align`, where `split`,
        else all of it on member 0."""
        b, one = self.b, ll.Constant(I64, 1)
        parts = b.select(split, self.members, one)
        chunk = b.sdiv(b.add(n, b.sub(parts, one)), parts)
        if align > 1:
            chunk = b.mul(b.sdiv(b.add(chunk, ll.Constant(I64, align - 1)), ll.Constant(I64, align)),
                          ll.Constant(I64, align))
        begin = min_of(b, b.mul(self.member, chunk), n)
        return begin, min_of(b, b.add(begin, chunk), n)

    def _launch_on_member_zero(self, op: Operation, number: int) -> None:
        """A kernel that does not split here: member 0 launches it as the entry point would (its
        parallel_for runs inline, inside the gang's task)."""
        # a loop kernel is pointwise ops only, none of which can fail
        self._on_member_zero(lambda: self._launch(op, direct=False), number, failable=op.kind != "loop")

    def _launch(self, op: Operation, direct: bool) -> None:
        """Kernel `op`'s launch as the entry point makes it, through its kind's launch or the default:
        flowc_parallel_for, or with `direct` one call over all its work (no pool round trip: a rows
        gang's private kernels, which LLVM may then inline)."""
        b = self.b
        n_grain = None if op.kind in LAUNCHERS else WORK[op.kind](b, self.dims, self.dims_pointer, op)
        kernel = self.kernel_of(op, True, n_grain)
        pointers = [self.buffer(v) for v in (*op.operands, *op.results)]
        context = context_of(b, pointers, self.dims_pointer)

        def default(given: ll.Value | None = None) -> None:
            n, grain = n_grain or WORK[op.kind](b, self.dims, self.dims_pointer, op)
            if not direct:
                b.call(self.parallel_for, [kernel.function, given or context, n, grain])
                return
            with b.if_then(b.icmp_signed(">", n, ll.Constant(I64, 0))):
                b.call(kernel.function, [given or context, ll.Constant(I64, 0), n])

        if op.kind in LAUNCHERS:
            LAUNCHERS[op.kind](Launch(kernel, b, self.entry, pointers, self.dims_pointer, self.parallel_for,
                                      default, self.scratch))
        else:
            default()

    def _on_member_zero(self, emit: Callable[[], None], number: int | None = None, failable: bool = False) -> None:
        """Code that member 0 alone runs: kernel `number`'s launch (timed), or copies (None); member 0
        looks for a failable kernel's error."""
        b = self.b
        with b.if_then(b.icmp_signed("==", self.member, ll.Constant(I64, 0))):
            start = self.timer.now() if self.timer and number is not None else None
            emit()
            if number is not None:
                self._record(number, start)
            if failable:
                code = b.load(b.gep(self.dims_pointer, [ll.Constant(I64, self.program.error_slot)]))
                with b.if_then(b.icmp_signed("!=", code, ll.Constant(I64, 0)), likely=False):
                    self._wait()
                    b.ret_void()
        self.pending = True

    def _record(self, number: int, start: ll.Value | None) -> None:
        if self.timer and start is not None:
            with self.b.if_then(self.b.icmp_signed("==", self.member, ll.Constant(I64, 0))):
                self.timer.record(number, start)

    def _sync(self) -> None:
        if self.pending:
            self._barrier()

    def _barrier(self) -> None:
        """Every member here, then out if a kernel failed (module docstring)."""
        b = self.b
        with b.if_then(b.icmp_signed("!=", self._wait(), ll.Constant(I32, 0)), likely=False):
            b.ret_void()
        self.pending = False
        self.barriers += 1

    def _wait(self) -> ll.Value:
        """The barrier; whether the gang stops there. Each member reports the error slot as it finds
        it on arriving, and the runtime judges from the reports: a member reading the slot after the
        barrier could see one that another, already past it, set in the next kernel, and leave one
        barrier early (flowc_gang_barrier)."""
        barrier = declared(self.module, "flowc_gang_barrier", I32, [PTR, I64, I64.as_pointer()])
        error = self.b.gep(self.dims_pointer, [ll.Constant(I64, self.program.error_slot)])
        return self.b.call(barrier, [self.gang, self.member, error])


def _split_work(op: Operation) -> Callable | None:
    """How a gang splits kernel `op`: (n, grain) of its work, or None for member 0 alone: a product
    by rows (BLAS: at least PRODUCT_ROWS a member; narrow: its tiles), any kind without a launch of
    its own by its work at a finer grain."""
    if op.kind == "matmul":
        schedule = schedule_of(op)["schedule"]
        if schedule not in GANG_PRODUCTS:
            return None
        if schedule == "blas":
            return lambda b, dims, dims_pointer, op: (matmul_work(b, dims, dims_pointer, op)[0],
                                                      ll.Constant(I64, PRODUCT_ROWS))
        return _finer(matmul_work)  # narrow: its tiles
    if op.kind in LAUNCHERS:
        return None
    return _finer(WORK[op.kind])


def _finer(work: Callable) -> Callable:
    def split(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, op: Operation) -> tuple[ll.Value, ll.Value]:
        n, grain = work(b, dims, dims_pointer, op)
        if isinstance(grain, ll.Constant):
            return n, ll.Constant(I64, max(1, grain.constant // GRAIN_DIVISOR))  # kept constant: known_small
        finer = b.sdiv(grain, ll.Constant(I64, GRAIN_DIVISOR))
        return n, b.select(b.icmp_signed(">", finer, ll.Constant(I64, 1)), finer, ll.Constant(I64, 1))
    return split


CONTROL_EMITTERS["gang"] = emit_gang_while
# By the loop's `threads`: "gang" here, "rows" in gang_rows.py (Note [a gang that owns rows]).
GANG_EMITTERS: dict[str, type[GangEmitter]] = {"gang": GangEmitter}
