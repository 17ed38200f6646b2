"""The CPU code of the collectives (ir/ops/collective.py): a "single" kernel that copies the operand
into the result buffer, then one call from the entry point, on its own thread, of the MPI shim
(runtime/native/flowc_mpi.c) on that buffer, in place. A non-zero return (MPI's error code, or the
shim's own: MPI not initialized, a root that is no rank) goes into the error slots with this kernel's
number, and compiler/native.py raises CollectiveError naming the op.

all_reduce_start calls the shim's MPI_Iallreduce after its copy, and all_reduce_done its MPI_Wait on
the operand (the start's buffer) before its copy (Note [split collectives] in ir/ops/collective.py).

The calls run in block order with the other kernels, so every rank, running the same code, calls
its collectives in the same order (Note [collectives are ordered effects]).
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, emit_dim, product
from ..launch import Launch
from ..types import I32, I64, PTR
from ..mpi import COLLECTIVES
from .single import AFTER_CHECKS, BEFORE_CALLS, read, single

DTYPE_CODES = {"float32": 0, "float64": 1, "int32": 2, "int64": 3, "bool": 4}  # as flowc_mpi.c's enum
REDUCTION_CODES = {"sum": 0, "max": 1, "min": 2}
CALL_TYPE = ll.FunctionType(I32, [PTR, I64, I32, I32])
WAIT_TYPE = ll.FunctionType(I32, [PTR])
CALLS = {"all_reduce": "flowc_mpi_allreduce", "all_reduce_start": "flowc_mpi_iallreduce",
         "broadcast": "flowc_mpi_bcast"}  # the shim's function each calls after its copy


@single(*COLLECTIVES)
def emit_copy(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    """The operand's element: the collective then works on the result in place."""
    return read(kernel, op.operands[0], coordinates)


def call_mpi(launch: Launch, op: Operation) -> None:
    b, kernel = launch.b, launch.kernel
    module = b.module
    name = CALLS[op.name]
    last = op.root if op.name == "broadcast" else REDUCTION_CODES[op.reduction]
    function = module.globals.get(name) or ll.Function(module, CALL_TYPE, name=name)
    result = kernel.op.results[0]  # the fusion op's result: its dims are the entry point's
    count = product(b, [emit_dim(b, kernel.dims, launch.dims_pointer, result, a) for a in range(result.type.rank)])
    buffer = b.bitcast(launch.buffers[-1], PTR)
    status = b.call(function, [buffer, count, ll.Constant(I32, DTYPE_CODES[result.type.dtype.name]),
                               ll.Constant(I32, last)])
    report_failure(launch, status)


def wait_mpi(launch: Launch, op: Operation) -> None:
    """all_reduce_done: wait for the start that writes the operand's buffer, before the copy reads it."""
    b = launch.b
    function = b.module.globals.get("flowc_mpi_wait") or ll.Function(b.module, WAIT_TYPE, name="flowc_mpi_wait")
    report_failure(launch, b.call(function, [b.bitcast(launch.buffers[0], PTR)]))


def report_failure(launch: Launch, status: ll.Value) -> None:
    b, kernel = launch.b, launch.kernel
    with b.if_then(b.icmp_signed("!=", status, ll.Constant(I32, 0)), likely=False):
        b.store(ll.Constant(I64, kernel.number + 1), b.gep(launch.dims_pointer, [ll.Constant(I64, kernel.error_slot)]))
        b.store(b.sext(status, I64), b.gep(launch.dims_pointer, [ll.Constant(I64, kernel.error_slot + 1)]))


AFTER_CHECKS.update(dict.fromkeys(CALLS, call_mpi))
BEFORE_CALLS["all_reduce_done"] = wait_mpi
