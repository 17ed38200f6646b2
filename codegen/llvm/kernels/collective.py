"""The CPU code of the collectives (ir/ops/collective.py): a "single" kernel that copies the operand
into the result buffer, then one call from the entry point, on its own thread, of the MPI shim
(runtime/native/flowc_mpi.c) on that buffer, in place. A non-zero return (MPI's error code, or the
shim's own: MPI not initialized, a root that is no rank) goes into the error slots with this kernel's
number, and compiler/native.py raises CollectiveError naming the op.

The call runs in block order with the other kernels, so every rank, running the same code, calls
its collectives in the same order (Note [collectives are ordered effects]).
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, emit_dim, product
from ..launch import Launch
from ..types import I32, I64, PTR
from ..mpi import COLLECTIVES
from .single import AFTER_CHECKS, read, single

DTYPE_CODES = {"float32": 0, "float64": 1, "int32": 2, "int64": 3, "bool": 4}  # as flowc_mpi.c's enum
REDUCTION_CODES = {"sum": 0, "max": 1, "min": 2}
CALL_TYPE = ll.FunctionType(I32, [PTR, I64, I32, I32])


@single(*COLLECTIVES)
def emit_copy(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    """The operand's element: the collective then works on the result in place."""
    return read(kernel, op.operands[0], coordinates)


def call_mpi(launch: Launch, op: Operation) -> None:
    b, kernel = launch.b, launch.kernel
    module = b.module
    name, last = ("flowc_mpi_allreduce", REDUCTION_CODES[op.reduction]) if op.name == "all_reduce" \
        else ("flowc_mpi_bcast", op.root)
    function = module.globals.get(name) or ll.Function(module, CALL_TYPE, name=name)
    result = kernel.op.results[0]  # the fusion op's result: its dims are the entry point's
    count = product(b, [emit_dim(b, kernel.dims, launch.dims_pointer, result, a) for a in range(result.type.rank)])
    buffer = b.bitcast(launch.buffers[-1], PTR)
    status = b.call(function, [buffer, count, ll.Constant(I32, DTYPE_CODES[result.type.dtype.name]),
                               ll.Constant(I32, last)])
    with b.if_then(b.icmp_signed("!=", status, ll.Constant(I32, 0)), likely=False):
        b.store(ll.Constant(I64, kernel.number + 1), b.gep(launch.dims_pointer, [ll.Constant(I64, kernel.error_slot)]))
        b.store(b.sext(status, I64), b.gep(launch.dims_pointer, [ll.Constant(I64, kernel.error_slot + 1)]))


AFTER_CHECKS.update(dict.fromkeys(COLLECTIVES, call_mpi))
