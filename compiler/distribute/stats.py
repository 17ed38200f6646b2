"""What compiled graphs spent in MPI: the counters of the shim that their collectives call
(runtime/native/flowc_mpi.c). The reference target's collectives (mpi4py from numpy) are not counted."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from flowc.runtime.build import mpi_library


@dataclass(frozen=True)
class CommunicationStats:
    calls: int  # collectives called by compiled code in this process
    bytes: int  # their buffers' bytes (each rank's own message, not the bytes on the wire)
    seconds: float  # wall time inside MPI, the waits for slower ranks included


def communication_stats(reset: bool = False) -> CommunicationStats:
    """This process's counters since it started (or since the last `reset=True`)."""
    library = ctypes.CDLL(mpi_library())  # the same copy the graphs link: one soname, loaded once
    counters = (ctypes.c_int64 * 3)()
    library.flowc_mpi_stats(counters, ctypes.c_int32(1 if reset else 0))
    return CommunicationStats(counters[0], counters[1], counters[2] / 1e9)
