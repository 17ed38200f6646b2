"""Which programs call MPI (their library links runtime/native/flowc_mpi.c); no LLVM here, as in blas.py,
so that a disk cache hit never imports llvmlite."""

from __future__ import annotations

from typing import Iterable

from flowc.ir import Operation

COLLECTIVES = ("all_reduce", "all_reduce_start", "all_reduce_done", "broadcast")  # ir/ops/collective.py; their
# code: kernels/collective.py


def calls_mpi(kernel_ops: Iterable[Operation]) -> bool:
    """Whether any of a program's kernels holds a collective."""
    return any(o.name in COLLECTIVES for kernel in kernel_ops for o in kernel.walk())
