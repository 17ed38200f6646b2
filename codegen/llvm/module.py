"""A fused function as one LLVM module with one C entry point.

    int32_t flowc_main(void **buffers, int64_t *dims);

`buffers` holds the arguments, then the results, then the scratch arena;
`dims` holds the run-time dims (Note [dims vector] in kernel.py), then the
arena offset of each temp, then two error slots that a kernel sets when it
finds bad data (a gather index out of range): the kernel's number + 1 and the
offending value. The entry point returns 0, or that kernel's number + 1.
One Session.run is one call of it; it runs the kernels in order, each
through the thread pool (`flowc_parallel_for`), which runs small work inline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from llvmlite import ir as ll

from flowc.ir import Function, Operation, Value
from .blas import calls_blas
from .kernel import KERNEL_TYPE, Kernel, alloca_at_start, emit_dim, product
from .program import ENTRY, PROFILE_SYMBOL, DimTable, Program, schedule_of
from .types import I8, I32, I64, PTR

ENTRY_TYPE = ll.FunctionType(I32, [PTR.as_pointer(), I64.as_pointer()])
PARALLEL_FOR = ll.FunctionType(ll.VoidType(), [KERNEL_TYPE.as_pointer(), PTR, I64, I64])
GRAIN = 32768  # elements of work below which splitting across threads costs more than it gains

SCRATCH_BYTES = 1 << 16  # the entry point's stack area that kernels may share (Launch.scratch)

KernelEmitter = Callable[[Kernel], None]
WorkFn = Callable[[ll.IRBuilder, DimTable, ll.Value, Operation], tuple[ll.Value, ll.Value]]
# The backend's table: (kind, schedule) -> emitter, the schedule as the schedule pass recorded it
# (passes/schedule.py); how much parallel work a kernel has and how it is launched go by kind.
EMITTERS: dict[tuple[str, str], KernelEmitter] = {}
WORK: dict[str, WorkFn] = {}
LAUNCHERS: dict[str, Callable[["Launch"], None]] = {}


def kernel_kind(kind: str, work: WorkFn, launch: Callable[["Launch"], None] | None = None,
                schedules: tuple[str, ...] | None = None) -> Callable[[KernelEmitter], KernelEmitter]:
    """Register how much parallel work a fusion kind has and the emitter of its `schedules` (by
    default the one named like the kind); `launch`, if given, emits the entry point's calls of such
    a kernel in place of one flowc_parallel_for over its work."""

    def register(fn: KernelEmitter) -> KernelEmitter:
        WORK[kind] = work
        for schedule in schedules or (kind,):
            EMITTERS[kind, schedule] = fn
        if launch is not None:
            LAUNCHERS[kind] = launch
        return fn

    return register


def emits(kind: str, schedule: str) -> Callable[[type], type]:
    """Register an emitter class (built on the kernel, then `emit()`) for one schedule of a kind."""

    def register(cls: type) -> type:
        EMITTERS[kind, schedule] = lambda kernel: cls(kernel).emit()
        return cls

    return register


@dataclass
class Launch:
    """One kernel's call from the entry point, for a kind that makes its own (kernel_kind's `launch`):
    `default(context=None)` emits the usual flowc_parallel_for of `kernel` over its work (with the
    given context, else the plain one); `context` makes a context with extra pointers, for the
    kernel or its siblings (Kernel.sibling); `scratch` is a stack area of the entry point,
    SCRATCH_BYTES, 64-byte aligned, that any kernel may use while it runs."""

    kernel: Kernel
    b: ll.IRBuilder
    entry: ll.Function
    buffers: list[ll.Value]  # the op's operand and result pointers, the kernel's context order
    dims_pointer: ll.Value
    parallel_for: ll.Function
    default: Callable[..., None]
    _scratch: list[ll.Value] = field(default_factory=list)

    def context(self, extra: list[ll.Value]) -> ll.Value:
        """The kernel's context with `extra` pointers after the dims pointer (Kernel.extra_pointer)."""
        return _context(self.b, self.buffers, self.dims_pointer, extra)

    def scratch(self) -> ll.Value:
        if not self._scratch:
            area = ll.ArrayType(I8, SCRATCH_BYTES)
            self._scratch.append(alloca_at_start(self.b, self.entry.entry_basic_block, area, "scratch", 64))
        return self.b.bitcast(self._scratch[0], PTR)

    def local(self, type: ll.Type, name: str) -> ll.Value:
        """A stack slot of the entry point."""
        return alloca_at_start(self.b, self.entry.entry_basic_block, type, name)


def elementwise_work(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, op: Operation) -> tuple[ll.Value, ll.Value]:
    """Work = every element of the first result, any split allowed."""
    shape_of = op.results[0]
    sizes = [emit_dim(b, dims, dims_pointer, shape_of, axis) for axis in range(shape_of.type.rank)]
    return product(b, sizes), ll.Constant(I64, GRAIN)


def emit_module(program: Program, name: str = "flowc") -> ll.Module:
    from . import kernels  # noqa: F401  (registers every kind)
    from .kernels.matmul import emit_openblas_adoption

    function, plan, dims = program.function, program.plan, program.dims
    module = ll.Module(name=name)
    entry = ll.Function(module, ENTRY_TYPE, name=ENTRY)
    buffers, dims_pointer = entry.args
    b = ll.IRBuilder(entry.append_basic_block("entry"))
    parallel_for = ll.Function(module, PARALLEL_FOR, name="flowc_parallel_for")
    returned = function.entry.ops[-1].operands
    n_args = len(function.args)
    arena = b.load(b.gep(buffers, [ll.Constant(I64, n_args + len(returned))]), name="arena")
    pointers: dict[Value, ll.Value] = {}

    def buffer(value: Value) -> ll.Value:
        if value in pointers:
            return pointers[value]
        storage = plan.storage[value]
        if storage.kind == "arg":
            pointer = b.load(b.gep(buffers, [ll.Constant(I64, storage.index)]))
        elif storage.kind == "result":
            pointer = b.load(b.gep(buffers, [ll.Constant(I64, n_args + storage.index)]))
        elif storage.kind == "temp":
            offset = b.load(b.gep(dims_pointer, [ll.Constant(I64, len(dims) + storage.index)]))
            pointer = b.gep(arena, [offset])
        elif storage.kind == "view":
            pointer = buffer(storage.of)
        else:
            pointer = b.bitcast(_global_constant(module, value), PTR)
        pointers[value] = pointer
        return pointer

    timer = _Timer(module, b, len(program.kernel_ops)) if program.profile else None
    scratch: list[ll.Value] = []  # the entry's Launch.scratch, made by the first kernel that asks
    for number, op in enumerate(program.kernel_ops):
        emit, work = EMITTERS[op.kind, schedule_of(op)["schedule"]], WORK[op.kind]
        shared = {(r, o) for r, result in enumerate(op.results) for o, operand in enumerate(op.operands)
                  if plan.buffer_of(result) == plan.buffer_of(operand)}
        # Note [one step]: a kernel the entry point hands work known to be 1 gets [0, 1) as constants.
        n_grain = None if op.kind in LAUNCHERS else work(b, dims, dims_pointer, op)
        one_step = n_grain is not None and isinstance(n_grain[0], ll.Constant) and n_grain[0].constant == 1
        kernel = Kernel(module, dims, op, f"kernel{number}_{op.kind}", number, program.error_slot, program.fast_math,
                        shared, one_step)
        emit(kernel)
        function_pointer = kernel.finish()
        pointers_of_op = [buffer(v) for v in (*op.operands, *op.results)]
        context = _context(b, pointers_of_op, dims_pointer)
        start = timer.now() if timer else None

        def default(given: ll.Value | None = None, function: ll.Function = function_pointer,
                    context: ll.Value = context, op: Operation = op,
                    n_grain: tuple[ll.Value, ll.Value] | None = n_grain) -> None:
            n, grain = n_grain or work(b, dims, dims_pointer, op)
            b.call(parallel_for, [function, given or context, n, grain])

        if op.kind in LAUNCHERS:
            LAUNCHERS[op.kind](Launch(kernel, b, entry, pointers_of_op, dims_pointer, parallel_for, default, scratch))
        else:
            default()
        if timer:
            timer.record(number, start)
        _return_on_error(b, entry, dims_pointer, program.error_slot)
    b.ret(ll.Constant(I32, 0))
    if any(calls_blas(op) for op in program.kernel_ops):
        emit_openblas_adoption(module)
    return module


class _Timer:
    """FLOWC_PROFILE=1: nanoseconds and calls of each kernel, added up in the exported PROFILE_SYMBOL."""

    def __init__(self, module: ll.Module, b: ll.IRBuilder, kernels: int):
        self.b = b
        self.clock = ll.Function(module, ll.FunctionType(I64, []), name="flowc_now_ns")
        array = ll.ArrayType(I64, 2 * max(kernels, 1))
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


def _context(b: ll.IRBuilder, pointers: list[ll.Value], dims_pointer: ll.Value,
             extra: list[ll.Value] | None = None) -> ll.Value:
    extra = [b.bitcast(pointer, PTR) for pointer in extra or []]
    slots = b.alloca(ll.ArrayType(PTR, len(pointers) + 1 + len(extra)))
    for index, pointer in enumerate([*pointers, b.bitcast(dims_pointer, PTR), *extra]):
        b.store(pointer, b.gep(slots, [ll.Constant(I32, 0), ll.Constant(I32, index)]))
    return b.bitcast(slots, PTR)


def _return_on_error(b: ll.IRBuilder, entry: ll.Function, dims_pointer: ll.Value, slot: int) -> None:
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
