"""Where this process stands in its MPI job: rank, size, local rank (Horovod's names).

mpi4py is imported on the first question, which initializes MPI: a script that never asks pays
nothing. Run without mpiexec (or without mpi4py installed) a process is rank 0 of 1, so the same
script runs unchanged on one process and under `flowc run -n N`.
"""

from __future__ import annotations

import os

from flowc.ir.ops.collective import world


def init() -> None:
    """Start MPI (Horovod's hvd.init): importing mpi4py does it; every question below calls this too."""
    world()


def available() -> bool:
    """Whether mpi4py is installed, so that collectives can run (else each is the identity)."""
    return world() is not None


def rank() -> int:
    """This process's rank in COMM_WORLD, 0 .. size() - 1.

    >>> import flowc as fc
    >>> fc.distribute.rank() < fc.distribute.size()
    True
    """
    comm = world()
    return 0 if comm is None else comm.rank


def size() -> int:
    """The number of processes in the job (1 without mpiexec)."""
    comm = world()
    return 1 if comm is None else comm.size


def local_rank() -> int:
    """This process's rank among the job's processes on its machine (to pick a GPU, say).

    Read from the launcher's environment (MPICH's hydra sets MPI_LOCALRANKID, Open MPI
    OMPI_COMM_WORLD_LOCAL_RANK) rather than computed with a collective, which every rank would have to
    call at the same point."""
    for variable in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return rank() if size() == 1 else _shared_memory_rank()


def local_size() -> int:
    """The number of the job's processes on this machine."""
    for variable in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        if variable in os.environ:
            return int(os.environ[variable])
    return size() if size() == 1 else _shared_memory_size()


_node: list[object] = []


def _node_comm() -> object:
    """The communicator of the ranks on this machine; a collective, so only reached where the
    launcher left no environment, and then by every rank alike (they all ask the same question)."""
    if not _node:
        from mpi4py import MPI

        _node.append(world().Split_type(MPI.COMM_TYPE_SHARED))
    return _node[0]


def _shared_memory_rank() -> int:
    return _node_comm().rank  # type: ignore[attr-defined]


def _shared_memory_size() -> int:
    return _node_comm().size  # type: ignore[attr-defined]
