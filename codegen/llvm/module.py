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

import numpy as np
from llvmlite import ir as ll

from flowc.ir import Function, Operation, Value

from . import kernels  # noqa: F401  (registers every (kind, schedule) in launch.EMITTERS)
from .blas import calls_blas
from .dedup import kernel_key
from .kernel import Kernel
from .kernels.matmul import emit_openblas_adoption
from .launch import EMITTERS, LAUNCHERS, PARALLEL_FOR, WORK, Launch, context_of
from .program import ENTRY, PROFILE_SYMBOL, Program, schedule_of
from .types import I8, I32, I64, PTR

ENTRY_TYPE = ll.FunctionType(I32, [PTR.as_pointer(), I64.as_pointer()])


def emit_module(program: Program, name: str = "flowc") -> ll.Module:
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
    emitted: dict[tuple, Kernel] = {}
    for number, op in enumerate(program.kernel_ops):
        emit, work = EMITTERS[op.kind, schedule_of(op)["schedule"]], WORK[op.kind]
        shared = {(r, o) for r, result in enumerate(op.results) for o, operand in enumerate(op.operands)
                  if plan.buffer_of(result) == plan.buffer_of(operand)}
        # Note [one step]: a kernel the entry point hands work known to be 1 gets [0, 1) as constants.
        n_grain = None if op.kind in LAUNCHERS else work(b, dims, dims_pointer, op)
        one_step = n_grain is not None and isinstance(n_grain[0], ll.Constant) and n_grain[0].constant == 1
        key = kernel_key(op, dims, shared, one_step)  # Note [kernels emitted once]
        if key is not None and key in emitted:
            kernel = emitted[key]
            function_pointer = kernel.function
        else:
            kernel = Kernel(module, dims, op, f"kernel{number}_{op.kind}", number, program.error_slot,
                            program.fast_math, shared, one_step)
            emit(kernel)
            function_pointer = kernel.finish()
            if key is not None:
                emitted[key] = kernel
        pointers_of_op = [buffer(v) for v in (*op.operands, *op.results)]
        context = context_of(b, pointers_of_op, dims_pointer)
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
