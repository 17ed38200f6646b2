"""The entry point's code: the kernels of a block in order, each launched through the thread pool,
and the cond and while ops as branches and loops around their regions' kernels (control.py); a
loop marked `threads = "gang"` is emitted by gang.py. module.py makes the module around it."""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir as ll

from flowc.ir import Block, Operation, Value

from .control import CONTROL_EMITTERS, control_kind, emit_row_read, row_read
from .dedup import kernel_key
from .kernel import Kernel, alloca_at_start
from .launch import EMITTERS, LAUNCHERS, PARALLEL_FOR, WORK, Launch, context_of
from .program import PROFILE_SYMBOL, Program, schedule_of
from .types import I8, I32, I64, PTR, declared


class EntryEmitter:
    """Emits the entry point: the kernels of a block in order, and the branches and loops of its cond
    and while ops around their regions' kernels (control.py).

    Every buffer pointer is made in the entry block, where it dominates every use whichever branch
    or loop turn first asks for it; the code itself starts in the block `start`.
    """

    def __init__(self, program: Program, module: ll.Module, entry: ll.Function):
        self.program, self.plan, self.dims = program, program.plan, program.dims
        self.module, self.entry = module, entry
        self.buffers, self.dims_pointer = entry.args
        self.at_entry = ll.IRBuilder(entry.append_basic_block("entry"))
        self.start = entry.append_basic_block("start")
        self.b = ll.IRBuilder(self.start)
        self.parallel_for = ll.Function(module, PARALLEL_FOR, name="flowc_parallel_for")
        function = program.function
        self.n_args = len(function.args)
        returned = function.entry.ops[-1].operands
        arena_slot = self.at_entry.gep(self.buffers, [ll.Constant(I64, self.n_args + len(returned))])
        self.arena = self.at_entry.load(arena_slot, name="arena")
        self.pointers: dict[Value, ll.Value] = {}
        self.numbers = {op: number for number, op in enumerate(program.kernel_ops)}
        self.timer = Timer(module, self.b, len(program.kernel_ops)) if program.profile else None
        self.scratch: list[ll.Value] = []  # the entry's Launch.scratch, made by the first kernel that asks
        self.emitted: dict[tuple, Kernel] = {}  # Note [kernels emitted once]: one LLVM function per distinct kernel

    def buffer(self, value: Value) -> ll.Value:
        """The address of `value`'s bytes (its storage in the memory plan), made in the entry block."""
        if value in self.pointers:
            return self.pointers[value]
        b, storage = self.at_entry, self.plan.storage[value]
        b.position_at_end(b.block)  # stack slots made at the block's start since: after them
        if storage.kind == "arg":
            pointer = b.load(b.gep(self.buffers, [ll.Constant(I64, storage.index)]))
        elif storage.kind == "result":
            pointer = b.load(b.gep(self.buffers, [ll.Constant(I64, self.n_args + storage.index)]))
        elif storage.kind == "temp":
            offset = b.load(b.gep(self.dims_pointer, [ll.Constant(I64, len(self.dims) + storage.index)]))
            pointer = b.gep(self.arena, [offset])
        elif storage.kind == "local":
            size = math.prod(value.type.shape) * value.type.dtype.itemsize
            slot = alloca_at_start(b, self.entry.entry_basic_block, ll.ArrayType(I8, max(size, 1)), "local", 64)
            pointer = b.bitcast(slot, PTR)
        elif storage.kind == "view":
            pointer = self.buffer(storage.of)
        else:
            pointer = b.bitcast(_global_constant(self.module, value), PTR)
        self.pointers[value] = pointer
        return pointer

    def emit_block(self, block: Block, in_control: bool = False) -> None:
        """The block's kernels and region ops in order (constants and views have no code); after each
        kernel that runs while a split all_reduce is in flight, a turn of MPI's progress engine (Note
        [progress of split collectives])."""
        in_flight = 0
        for op in block.ops:
            if op.name == "fusion":
                self.emit_kernel(op, in_control)
                names = {o.name for o in op.walk()}
                in_flight += ("all_reduce_start" in names) - ("all_reduce_done" in names)
                if in_flight > 0 and not names & {"all_reduce_start", "all_reduce_done"}:
                    progress = self.module.globals.get("flowc_mpi_progress") or \
                        ll.Function(self.module, ll.FunctionType(ll.VoidType(), []), name="flowc_mpi_progress")
                    self.b.call(progress, [])
            elif op.name in ("cond", "while"):
                CONTROL_EMITTERS[control_kind(op)](self, op)

    def emit_kernel(self, op: Operation, in_control: bool) -> None:
        b, dims, dims_pointer = self.b, self.dims, self.dims_pointer
        number = self.numbers[op]
        if row_read(op) is not None:  # Note [a row read]
            start = self.timer.now() if self.timer else None
            emit_row_read(self, op, number)
            if self.timer:
                self.timer.record(number, start)
            return_on_error(b, self.entry, dims_pointer, self.program.error_slot)
            return
        work = WORK[op.kind]
        # Note [one step]: a kernel the entry point hands work known to be 1 gets [0, 1) as constants.
        n_grain = None if op.kind in LAUNCHERS else work(b, dims, dims_pointer, op)
        kernel = self.kernel_of(op, in_control, n_grain)
        function_pointer = kernel.function
        pointers_of_op = [self.buffer(v) for v in (*op.operands, *op.results)]
        context = context_of(b, pointers_of_op, dims_pointer)
        start = self.timer.now() if self.timer else None

        def default(given: ll.Value | None = None, function: ll.Function = function_pointer,
                    context: ll.Value = context, op: Operation = op,
                    n_grain: tuple[ll.Value, ll.Value] | None = n_grain) -> None:
            n, grain = n_grain or work(b, dims, dims_pointer, op)
            if in_control and known_small(n, grain):  # Note [kernels in loops]: no thread pool round trip
                if n.constant > 0:
                    b.call(function, [given or context, ll.Constant(I64, 0), n])
                return
            b.call(self.parallel_for, [function, given or context, n, grain])

        if op.kind in LAUNCHERS:
            LAUNCHERS[op.kind](Launch(kernel, b, self.entry, pointers_of_op, dims_pointer, self.parallel_for, default,
                                      self.scratch))
        else:
            default()
        if self.timer:
            self.timer.record(number, start)
        if op.kind != "loop":  # a loop kernel is pointwise ops only, none of which can fail
            return_on_error(b, self.entry, dims_pointer, self.program.error_slot)

    def kernel_of(self, op: Operation, in_control: bool, n_grain: tuple[ll.Value, ll.Value] | None) -> Kernel:
        """Kernel op's LLVM function, emitted on first use (Note [kernels emitted once]); `n_grain`, the
        entry point's work for it (None: its kind's launch decides), tells whether it runs one step."""
        plan, dims, number = self.plan, self.dims, self.numbers[op]
        shared = {(r, o) for r, result in enumerate(op.results) for o, operand in enumerate(op.operands)
                  if plan.buffer_of(result) == plan.buffer_of(operand)}
        one_step = n_grain is not None and isinstance(n_grain[0], ll.Constant) and n_grain[0].constant == 1
        # Note [kernels in loops]: a kernel of a cond or while region is named apart from the others, so
        # that split.py leaves it in the entry point's module, where LLVM may inline it.
        prefix = "local" if in_control else "kernel"
        key = kernel_key(op, dims, shared, one_step)  # Note [kernels emitted once]
        key = key and (prefix, key)
        if key is not None and key in self.emitted:
            return self.emitted[key]
        kernel = Kernel(self.module, dims, op, f"{prefix}{number}_{op.kind}", number, self.program.error_slot,
                        self.program.fast_math, shared, one_step)
        EMITTERS[op.kind, schedule_of(op)["schedule"]](kernel)
        kernel.finish()
        if key is not None:
            self.emitted[key] = kernel
        return kernel


# Note [progress of split collectives]
# MPICH moves the bytes of a nonblocking all_reduce (Note [split collectives] in ir/ops/collective.py)
# only while some thread is inside MPI. Without help, that is the next start and the wait: the
# reduction of a bucket barely advances while the backward kernels run, and the wait does most of it.
# MPICH can run a progress thread of its own (MPIR_CVAR_ASYNC_PROGRESS=1, which needs the
# MPI_THREAD_MULTIPLE that mpi4py asks for), but that thread spins on a core of its own: on a machine
# with no core to spare it takes time from the kernels (bench/bench_dist.py --overlap measured it
# slower than no overlap at all). So the entry point itself calls the shim's flowc_mpi_progress (one
# MPI_Test, well under a microsecond when nothing arrived) after each kernel that runs while a start
# is in flight: the reduction advances between kernels, on the thread that runs the graph.


# Note [kernels in loops]
# A while loop of a million turns over a scalar state runs a few tiny kernels per turn: called
# through flowc_parallel_for (an external call, its chunk plan, a function pointer) each costs more
# than the work. So a kernel of a cond or while region whose work is known at compile time to fit
# one thread is called directly, and lives in the entry point's own LLVM module even when a big
# module is split (split.py splits off only `kernel{N}_*`): LLVM inlines it, and the state, kept in
# stack slots (Note [control flow storage] in passes/memory.py), ends in registers.


def known_small(n: ll.Value, grain: ll.Value) -> bool:
    """Work known at compile time that flowc_parallel_for would run on the calling thread anyway (and
    a gang on member 0 alone)."""
    return isinstance(n, ll.Constant) and isinstance(grain, ll.Constant) and n.constant < 2 * max(grain.constant, 1)


class Timer:
    """FLOWC_PROFILE=1: nanoseconds and calls of each kernel, added up in the exported PROFILE_SYMBOL."""

    def __init__(self, module: ll.Module, b: ll.IRBuilder, kernels: int):
        self.b = b
        self.clock = declared(module, "flowc_now_ns", I64, [])
        array = ll.ArrayType(I64, 2 * max(kernels, 1))
        self.table = module.globals.get(PROFILE_SYMBOL)  # the entry's, for a gang loop's function (gang.py)
        if self.table is None:
            self.table = ll.GlobalVariable(module, array, name=PROFILE_SYMBOL)
            self.table.initializer = ll.Constant(array, None)

    def now(self) -> ll.Value:
        return self.b.call(self.clock, [])

    def record(self, kernel: int, start: ll.Value) -> None:
        b = self.b
        spent = b.sub(self.now(), start)
        for slot, amount in ((2 * kernel, spent), (2 * kernel + 1, ll.Constant(I64, 1))):
            pointer = b.gep(self.table, [ll.Constant(I32, 0), ll.Constant(I32, slot)])
            b.store(b.add(b.load(pointer), amount), pointer)  # not atomic: profile one thread at a time


def return_on_error(b: ll.IRBuilder, entry: ll.Function, dims_pointer: ll.Value, slot: int) -> None:
    code = b.load(b.gep(dims_pointer, [ll.Constant(I64, slot)]))
    failed = b.append_basic_block("failed")
    going = b.append_basic_block("ok")
    b.cbranch(b.icmp_signed("!=", code, ll.Constant(I64, 0)), failed, going)
    b.position_at_end(failed)
    b.ret(b.trunc(code, I32))
    b.position_at_end(going)


def _global_constant(module: ll.Module, value: Value) -> ll.GlobalVariable:
    data = np.ascontiguousarray(value.op.value).tobytes() or b"\0"
    array_type = ll.ArrayType(I8, len(data))
    name = f"const{len(module.globals)}"
    variable = ll.GlobalVariable(module, array_type, name=name)
    variable.initializer = ll.Constant(array_type, bytearray(data))
    variable.global_constant = True
    variable.linkage = "internal"
    variable.align = 64
    return variable
