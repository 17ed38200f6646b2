"""The CPU kernel of `check` (ir/ops/checks.py): a copy of the condition that, at a false element,
records the kernel and that element's row-major index in the error slots; the entry point then stops
and compiler/native.py raises CheckFailed with the op's message and the user's line. Threads share
the slots, so with several false elements the index is one of them, not always the first."""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, dot
from .single import read, single, strides_of


@single("check")
def emit_check(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    b = kernel.b
    condition = op.operands[0]
    value = read(kernel, condition, coordinates)
    index = dot(b, coordinates, strides_of(kernel, condition)) if coordinates else ll.Constant(ll.IntType(64), 0)
    kernel.fail_if(b.icmp_unsigned("==", value, ll.Constant(value.type, 0)), index)
    return value
