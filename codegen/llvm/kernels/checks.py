"""The CPU kernel of `check` (ir/ops/checks.py): a copy of the condition that, at a false element,
records the kernel and that element's row-major index in the error slots; the entry point then stops
and compiler/native.py raises CheckFailed with the op's message and the user's line. Threads share
the slots, so with several false elements the index is one of them, not always the first."""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation
from flowc.ir.ops.checks import PRINT_DTYPES

from ..kernel import Kernel, alloca_at_start, dot, emit_dim
from ..launch import Launch
from ..types import I32, I64, PTR
from .single import AFTER_CHECKS, read, single, strides_of


@single("check")
def emit_check(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    b = kernel.b
    condition = op.operands[0]
    value = read(kernel, condition, coordinates)
    index = dot(b, coordinates, strides_of(kernel, condition)) if coordinates else ll.Constant(ll.IntType(64), 0)
    kernel.fail_if(b.icmp_unsigned("==", value, ll.Constant(value.type, 0)), index)
    return value


# `print` (Note [printing inside control flow] in ir/ops/checks.py): a kernel that copies the operand into
# the result, then one call from the entry point of the support library's flowc_print on the result.
PRINT_TYPE = ll.FunctionType(ll.VoidType(), [I64, I64, I64, I64, PTR, I64.as_pointer(), I64])


@single("print")
def emit_print_copy(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    return read(kernel, op.operands[0], coordinates)


def call_print(launch: Launch, op: Operation) -> None:
    b, kernel = launch.b, launch.kernel
    function = b.module.globals.get("flowc_print") or ll.Function(b.module, PRINT_TYPE, name="flowc_print")
    result = kernel.op.results[0]  # the fusion op's result: its dims are the entry point's
    rank = result.type.rank
    # In the entry block, so a print in a loop takes its slot once, in the frame.
    slot = alloca_at_start(b, b.function.entry_basic_block, ll.ArrayType(I64, max(rank, 1)), "print_dims")
    dims = b.gep(slot, [ll.Constant(I32, 0), ll.Constant(I32, 0)])
    for axis in range(rank):
        b.store(emit_dim(b, kernel.dims, launch.dims_pointer, result, axis), b.gep(dims, [ll.Constant(I64, axis)]))
    code = PRINT_DTYPES.index(result.type.dtype.name)
    b.call(function, [ll.Constant(I64, op.key), ll.Constant(I64, op.part), ll.Constant(I64, op.parts),
                      ll.Constant(I64, code), b.bitcast(launch.buffers[-1], PTR), dims, ll.Constant(I64, rank)])


AFTER_CHECKS["print"] = call_print
