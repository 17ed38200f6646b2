"""Asynchronous data parallelism with a parameter server: Downpour SGD (Dean et al., 2012).

One rank (`ps_rank`, the job's "/job:ps") owns the variables and applies updates; every other rank is
a worker that, step after step, computes a gradient on its own data from the parameters it last
pulled, pushes it to the server and pulls the parameters back, never waiting for the other workers.
The server applies each gradient as it arrives, with the wrapped optimizer, in arrival order.

    trainer = fc.distribute.DownpourTrainer(fc.train.GradientDescentOptimizer(0.1), loss)
    init = fc.global_variables_initializer()
    with fc.Session(graph=g) as sess:
        sess.run(init)
        report = trainer.run(sess, feeds)   # the server serves until every worker is done; workers train

Note [the trade-off of asynchronous updates]
Against DistributedOptimizer (synchronous all_reduce, every step waits for the slowest rank):
  + no rank waits for another: a slow or paused worker delays only its own gradients, and workers
    may run different numbers of steps;
  - gradients are stale: a worker's gradient was computed from parameters that the server has since
    updated with up to (workers - 1) other gradients (`report.staleness` measures it), so the same
    learning rate converges more noisily, or diverges, and is usually lowered as workers are added;
  - the result depends on arrival order: two runs differ, and none equals a single process (with one
    worker it does, exactly, which the tests check);
  - the server is a hot spot: each worker step moves the gradient in and the parameters out through
    the server's one link, 2 * bytes * workers per round, where a ring all_reduce moves
    2 * bytes * (p - 1) / p per rank; sharding the variables over several servers (not done here)
    is the usual remedy.
The exchange is MPI point-to-point from Python (mpi4py), between Session runs: the compiled graph
computes the gradients (workers) and applies them (server); no collective is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from flowc.ir.errors import GraphError

from ..array_ops import placeholder
from ..gradients import gradients
from ..graph import Tensor
from ..sources import user_location
from ..state_ops import Variable, trainable_variables
from ..train import Optimizer
from .topology import rank, size

PUSH, PULL, DONE, PARAMETERS = 1, 2, 3, 4  # message tags


@dataclass
class DownpourReport:
    """What a run did on this rank: the server counts updates and their staleness (how many updates
    the server applied between a worker's pull and the arrival of its gradient); a worker its steps."""

    role: str  # "server", "worker" or "alone"
    steps: int  # gradients computed (worker, alone) or applied (server)
    staleness: float = 0.0  # mean over the server's updates
    max_staleness: int = 0


class DownpourTrainer:
    """Downpour SGD over the job's ranks: `ps_rank` serves the variables, the others train
    (Note [the trade-off of asynchronous updates]). Built in the graph of `loss`, on every rank alike."""

    def __init__(self, optimizer: Optimizer, loss: Tensor, var_list: Sequence[Variable] | None = None,
                 ps_rank: int = 0):
        self._variables = list(trainable_variables() if var_list is None else var_list)
        if not self._variables:
            raise GraphError("no variables to train: the graph has no trainable Variables", op="DownpourTrainer",
                             where=user_location())
        if not 0 <= ps_rank < max(size(), 1):
            raise GraphError(f"ps_rank {ps_rank} is not a rank of this job of {size()}", op="DownpourTrainer",
                             where=user_location())
        self._ps_rank = ps_rank
        self._gradients = gradients(loss, self._variables)
        missing = [v.name for v, g in zip(self._variables, self._gradients) if g is None]
        if missing:
            raise GraphError(f"the loss does not depend on {', '.join(missing)}", op="DownpourTrainer",
                             where=user_location())
        # The server applies a pushed gradient through placeholders shaped like the variables.
        self._pushed = [placeholder(v.dtype, list(v.type.shape), name="pushed_gradient") for v in self._variables]
        self._apply = optimizer.apply_gradients(list(zip(self._pushed, self._variables)))

    @property
    def is_server(self) -> bool:
        return size() > 1 and rank() == self._ps_rank

    def run(self, session: Any, feeds: Iterable[dict]) -> DownpourReport:
        """Serve (the server; `feeds` unused) or train on `feeds`, one step per feed dict (a worker).
        Alone (one process) it is plain SGD with the optimizer: gradient, then update, per feed."""
        if size() == 1:
            steps = 0
            for feed in feeds:
                values = session.run(self._gradients, feed)
                session.run(self._apply, dict(zip(self._pushed, values)))
                steps += 1
            return DownpourReport("alone", steps)
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        return self._serve(session, comm, MPI) if self.is_server else self._work(session, feeds, comm)

    def _serve(self, session: Any, comm: Any, MPI: Any) -> DownpourReport:
        version, updates, stale = 0, 0, []
        working = comm.size - 1
        status = MPI.Status()
        while working:
            tag_and_payload = comm.recv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
            worker, tag = status.Get_source(), status.Get_tag()
            if tag == DONE:
                working -= 1
                continue
            if tag == PUSH:
                pulled_at, values = tag_and_payload
                session.run(self._apply, dict(zip(self._pushed, values)))
                stale.append(version - pulled_at)
                version += 1
                updates += 1
            comm.send((version, session.run(self._variables)), dest=worker, tag=PARAMETERS)  # PUSH and PULL
        return DownpourReport("server", updates, float(np.mean(stale)) if stale else 0.0, max(stale, default=0))

    def _work(self, session: Any, feeds: Iterable[dict], comm: Any) -> DownpourReport:
        server = self._ps_rank
        comm.send(None, dest=server, tag=PULL)
        version, values = comm.recv(source=server, tag=PARAMETERS)
        steps = 0
        for feed in feeds:
            self._load(session, values)
            grads = session.run(self._gradients, feed)
            comm.send((version, grads), dest=server, tag=PUSH)
            version, values = comm.recv(source=server, tag=PARAMETERS)
            steps += 1
        self._load(session, values)  # the server's parameters as this worker left them
        comm.send(None, dest=server, tag=DONE)
        return DownpourReport("worker", steps)

    def _load(self, session: Any, values: list[np.ndarray]) -> None:
        for variable, value in zip(self._variables, values):
            variable.load(value, session)
