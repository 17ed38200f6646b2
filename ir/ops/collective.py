"""Collectives across the processes of an MPI job: all_reduce, its split form all_reduce_start and
all_reduce_done, and broadcast.

Each rank runs the same compiled graph; a collective is a point where every rank's copy of the op
exchanges its operand with the others' (MPI Allreduce, MPI Bcast on COMM_WORLD). With one process,
or where mpi4py is not installed, the job is one rank and each op is the identity.

Note [collectives are ordered effects]
A collective is a rendezvous: every rank must call the same collectives in the same order, or the
job deadlocks (or, worse, pairs up the wrong buffers). So every collective is impure: CSE never merges two
of them, DCE never drops one whose result is unused, constant folding never evaluates one at compile
time (its value depends on the other ranks), and LICM never moves one out of a loop (the number of
calls would then depend on the trip count). Fusion gives each a kernel of its own ("single"), run in
block order by the entry point, the same order on every rank, since each rank compiles the same IR.

Note [split collectives]
`%h = all_reduce_start %x` starts the reduction of x and returns at once; `%y = all_reduce_done %h`
waits for it and yields the result (the CPU: MPI_Iallreduce on the start's result buffer, MPI_Wait
before the done's copy). Between the two, kernels that neither read h nor feed x run while the
bytes move: data-parallel training starts each bucket of gradients as soon as the backward pass has
computed it and waits only before the update that reads it (passes/collective_placement.py places
them so). h is the buffer MPI writes into, so only all_reduce_done reads it (the front end builds no other
reader). Both are impure like every collective; what every
rank must agree on is the order of the starts (and of the blocking collectives): MPI matches
collectives by the order they are started in, while the waits may come in any order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import FlowcError, FlowcTypeError
from ..op import Op
from ..types import FLOATS, INDEX_DTYPES, DType, TensorType

# What flowc_mpi.c's enum names (codegen/llvm/kernels/collective.py): no small integers.
COLLECTIVE_DTYPES = FLOATS + INDEX_DTYPES

REDUCTIONS = ("sum", "max", "min")  # all_reduce's `reduction`; a mean is a sum the front end divides


class CollectiveError(FlowcError, RuntimeError):
    """A collective could not run: MPI failed, or the ranks disagree about the buffer."""


def world() -> Any:
    """mpi4py's COMM_WORLD, or None where mpi4py is not installed (one process: rank 0 of 1).

    Imported on first use: importing mpi4py.MPI initializes MPI, which a graph without collectives
    should never pay for."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    if not _hooked and MPI.COMM_WORLD.size > 1:
        _abort_on_uncaught_exceptions(MPI.COMM_WORLD)
    return MPI.COMM_WORLD


_hooked: list[bool] = []


# Note [a rank that fails ends the job]
# A rank that stops with an uncaught exception would, by Python's normal exit, call MPI_Finalize and
# wait there for the other ranks, which wait in their next collective for it: the job hangs. So the
# first use of MPI in a job of several ranks wraps sys.excepthook: after the traceback is printed,
# MPI_Abort ends every rank, and mpiexec exits with a failure. (`python -m mpi4py`, which `flowc run`
# uses, does the same and also covers sys.exit with a non-zero status.)


def _abort_on_uncaught_exceptions(comm: Any) -> None:
    import sys

    _hooked.append(True)
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
        previous(kind, error, traceback)
        sys.stderr.flush()
        comm.Abort(1)

    sys.excepthook = hook


def _mpi_op(reduction: str) -> Any:
    from mpi4py import MPI

    return {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[reduction]


class AllReduce(Op):
    """`all_reduce %x {reduction = "sum"}`: every rank gets the elementwise reduction of all ranks' x."""

    name = "all_reduce"
    attrs = {"reduction": str}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = COLLECTIVE_DTYPES
    pure = False  # Note [collectives are ordered effects]
    foldable = False

    def infer_type(self, x: TensorType) -> TensorType:
        self.check_dtype(x)
        if self.reduction not in REDUCTIONS:
            raise FlowcTypeError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}",
                                 op=self.name)
        return x

    def reference(self, x: np.ndarray) -> np.ndarray:
        result = np.ascontiguousarray(x).copy()
        comm = world()
        if comm is None or comm.size == 1:
            return result
        from mpi4py import MPI

        comm.Allreduce(MPI.IN_PLACE, result, op=_mpi_op(self.reduction))
        return result


class AllReduceStart(Op):
    """`all_reduce_start %x {reduction = "sum"}`: the reduction begins; its result is read only by
    all_reduce_done, which holds the value (Note [split collectives])."""

    name = "all_reduce_start"
    attrs = {"reduction": str}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = COLLECTIVE_DTYPES
    pure = False  # Note [collectives are ordered effects]
    foldable = False
    differentiable = False  # built after the gradients (compiler/distribute/optimizer.py), never through

    def infer_type(self, x: TensorType) -> TensorType:
        return AllReduce.infer_type(self, x)  # type: ignore[arg-type]

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The whole reduction, at once: the reference runs op by op, so there is nothing to overlap
        with, and the done that follows returns this value (the same numbers as a split one)."""
        return AllReduce.reference(self, x)  # type: ignore[arg-type]


class AllReduceDone(Op):
    """`all_reduce_done %h`: waits for the reduction that `all_reduce_start` began and yields its
    result (Note [split collectives])."""

    name = "all_reduce_done"
    num_operands = 1
    pure = False  # a wait: never dropped, or the start's request would stay open
    foldable = False
    differentiable = False

    def infer_type(self, handle: TensorType) -> TensorType:
        return handle

    def reference(self, handle: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(handle).copy()


class Broadcast(Op):
    """`broadcast %x {root = 0}`: every rank gets rank `root`'s x (the ranks' x agree in type)."""

    name = "broadcast"
    attrs = {"root": int}
    num_operands = 1
    pure = False  # Note [collectives are ordered effects]
    foldable = False
    differentiable = False  # no gradient flows through it (passes/autodiff/rules_collective.py says why)

    def infer_type(self, x: TensorType) -> TensorType:
        self.check_dtype(x)
        if self.root < 0:
            raise FlowcTypeError(f"root must be a rank (at least 0), got {self.root}", op=self.name)
        return x

    def reference(self, x: np.ndarray) -> np.ndarray:
        result = np.ascontiguousarray(x).copy()
        comm = world()
        if comm is None or comm.size == 1:
            if self.root != 0:
                raise CollectiveError(f"root {self.root} is not a rank of a job of 1 process", op=self.name)
            return result
        if self.root >= comm.size:
            raise CollectiveError(f"root {self.root} is not a rank of a job of {comm.size} processes", op=self.name)
        comm.Bcast(result, root=self.root)
        return result


def collective_failure(code: int) -> str:
    """What a failed collective of compiled code says, from the MPI shim's return code
    (runtime/native/flowc_mpi.c: its own codes are negative, MPI's positive)."""
    own = {-1: "MPI is not initialized (import mpi4py.MPI before running the graph)",
           -2: "the root is not a rank of this job",
           -3: "the dtype has no MPI reduction",
           -4: "too many all_reduce_starts in flight (more than the MPI shim's table holds)",
           -5: "no all_reduce_start is in flight on this buffer"}
    return own.get(code, f"MPI failed with error code {code}")
