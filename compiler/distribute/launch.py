"""`flowc run -n N script.py [args]`: N ranks of a script under the mpich wheel's mpiexec.

Each rank runs `python -m mpi4py script.py args` (the same interpreter as flowc's), so that an
uncaught exception on one rank aborts the whole job (MPI_Abort) instead of leaving the others waiting
in a collective that rank will never reach. mpiexec (mpich's hydra) ends every rank when one dies
and exits with that rank's status; this passes the status on with a line that says what happened,
and with `timeout` ends a job that runs longer (a hang) rather than waiting for ever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Sequence

from flowc.ir.errors import FlowcError

HUNG = 124  # the status of a job ended for its timeout, as timeout(1)'s


class LaunchError(FlowcError):
    """No mpiexec to start the ranks with: the mpich wheel is not installed."""


def mpiexec_path() -> str:
    """The mpiexec of the environment flowc runs in (the mpich wheel puts it beside the interpreter)."""
    path = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(path):
        raise LaunchError(f"no mpiexec beside {sys.executable}: pip install mpi4py mpich (flowc's 'dist' extra)",
                          op="flowc run")
    return path


def command(ranks: int, script: str, arguments: Sequence[str]) -> list[str]:
    return [mpiexec_path(), "-n", str(ranks), sys.executable, "-m", "mpi4py", script, *arguments]


def run(ranks: int, script: str, arguments: Sequence[str] = (), timeout: float | None = None) -> int:
    """Run the job and return its status; a failure or a timeout also writes one line to stderr."""
    if ranks < 1:
        raise FlowcError(f"the number of ranks must be at least 1, got {ranks}", op="flowc run")
    if not os.path.exists(script):
        raise FlowcError(f"no script {script!r}", op="flowc run")
    # A session of its own: on a timeout the whole job (mpiexec, its proxy, every rank) is ended at once.
    job = subprocess.Popen(command(ranks, script, arguments), start_new_session=True)
    try:
        status = job.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _end(job)
        print(f"flowc run: the job of {ranks} ranks did not finish in {timeout:g} s and was ended (a rank waiting "
              "on a collective that another rank never calls?)", file=sys.stderr)
        return HUNG
    except KeyboardInterrupt:
        _end(job)
        raise
    if status != 0:
        print(f"flowc run: the job of {ranks} ranks failed: {describe(status)}; mpiexec ended the other ranks",
              file=sys.stderr)
    return status


def describe(status: int) -> str:
    """What mpiexec's exit status says about the rank that failed."""
    if status < 0 or status > 128:
        number = -status if status < 0 else status - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"a rank was killed by {name} (exit status {status})"
    return f"a rank exited with status {status}"


def _end(job: subprocess.Popen) -> None:
    try:
        os.killpg(job.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    job.wait()
