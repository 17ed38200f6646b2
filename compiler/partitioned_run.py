"""Running a partitioned run: each rank compiles its partition's segments and runs them, over MPI.

Note [partitioned runs]
A run whose graph names tasks (`fc.device("/job:worker/task:1")`), in a process that
mpiexec started with several ranks, is partitioned (partition.py); each rank runs the
partition of its task (rank K runs task K, placement.py), and a rank beyond the last
task runs none. One process (no mpiexec, or `-n 1`) runs the same script unpartitioned,
every task in it: same results, bit for bit; with FLOWC_PARTITION=1 it runs the partitions
one after another, values passing through a dict (LocalWorld), to show them without MPI.

Each partition is cut into segments before its recvs and after its sends; each segment is
an ordinary function compiled by the Session's target through the normal pipeline
(driver.compile_lowered), its arguments what it reads from elsewhere and its results what
others read. Python drives them with mpi4py: a segment's sends are posted (isend) as soon
as it returns, and a recv is waited for just before the segment that needs it, for at most
the Session's timeout (`fc.ConfigProto(operation_timeout_in_ms=...)`, 60 s when unset):
one that never comes is a DeadlineExceededError naming the edge, never a hang. (The wait
starts when the recv does, and a plan's first run is also when each rank compiles its
segments: a peer that compiles a big partition slowly can make that first run time out;
raise the timeout for such graphs.) A message's tag is its edge's index plus the run's
number times the run's edge count: every rank numbers its partitioned runs alike, so a
late message of one run never matches a recv of another.

Every rank returns every fetch, as TF1 returns every fetch to its client: after its last
segment, the rank whose partition made a fetch sends it to every other rank (a fed value
is on every rank already). Feeds are given on every rank; each partition takes those it
reads. A Variable lives on the rank of its task: read, initialized and updated only there.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from flowc.ir import Function, Module, Operation, Value, parse_module, print_function
from flowc.ir.errors import DeadlineExceededError, FlowcError
from flowc.passes import DCE, expand_gradients
from flowc.passes.autodiff.clone import outline

from .driver import compile_lowered
from .graph import Graph
from .lowering import Lowered, Signature
from .options import CompileOptions
from .partition import Edge, Partition, Partitioned, partition
from .placement import EVERYWHERE, cluster_of

DEFAULT_TIMEOUT = 60.0  # seconds a recv waits when the Session's config sets none
_NO_SIGNATURE = Signature((), (), False, (), ())  # a segment's arguments are not feeds or variables
_run_numbers = itertools.count()  # per process; every rank runs the same partitioned runs in order
_dumps = itertools.count()


# -- worlds: who this process is, and how values travel -----------------------------------------


class MpiWorld:
    """This process as one rank of MPI_COMM_WORLD (mpi4py)."""

    def __init__(self, comm: Any, tag_limit: int):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.tag_limit = tag_limit

    def owned(self, tasks: int) -> list[int]:
        return [self.rank] if self.rank < tasks else []

    def send(self, value: np.ndarray, target: int, tag: int) -> Any:
        return self.comm.isend(value, dest=target, tag=tag)

    def receive(self, source: int, tag: int, deadline: float) -> np.ndarray | None:
        """The value sent with `tag`, or None if none arrived by `deadline` (time.monotonic)."""
        delay = 0.0
        while not self.comm.Iprobe(source=source, tag=tag):
            if time.monotonic() > deadline:
                return None
            time.sleep(delay)
            delay = min(2 * delay or 1e-6, 2e-4)  # sleep, so the ranks sharing a core can run
        return self.comm.recv(source=source, tag=tag)

    def finished(self, request: Any, deadline: float) -> bool:
        delay = 0.0
        while not request.Test():
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(2 * delay or 1e-6, 2e-4)
        return True


class LocalWorld:
    """Every task in this one process, a value going from one partition to the next through a dict:
    a partitioned run without MPI (for tests and for reading the partitions)."""

    rank, size, tag_limit = 0, 1, 2**31 - 1

    def __init__(self) -> None:
        self.mailbox: dict[int, np.ndarray] = {}

    def owned(self, tasks: int) -> list[int]:
        return list(range(tasks))

    def send(self, value: np.ndarray, target: int, tag: int) -> None:
        self.mailbox[tag] = value

    def receive(self, source: int, tag: int, deadline: float) -> np.ndarray | None:
        return self.mailbox.pop(tag, None)

    def finished(self, request: Any, deadline: float) -> bool:
        return True


_world: list[Any] = []


def current_world() -> MpiWorld | None:
    """The MPI world when mpiexec started this process with several ranks; None for one process."""
    size = os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE") or "1"
    if int(size) <= 1:
        return None
    if not _world:
        try:
            from mpi4py import MPI
        except ImportError:
            raise FlowcError(f"this process is one of {size} MPI ranks, but mpi4py is not installed: "
                             "pip install 'flowc[dist]'") from None
        _world.append(MpiWorld(MPI.COMM_WORLD, MPI.COMM_WORLD.Get_attr(MPI.TAG_UB)))
    return _world[0]


# -- segments -----------------------------------------------------------------------------------


@dataclass
class Segment:
    """The ops of a partition between two cuts (`split`), compiled as one function."""

    receives: list[tuple[Edge, Value]]  # waited for before it runs; the values are the partition's
    inputs: list[Value]
    outputs: list[Value]
    sends: list[tuple[Edge, Value]]  # posted when it has run
    function: Function | None = None  # None: nothing to compute (its recvs feed later segments)
    callees: list[Function] = field(default_factory=list)  # copies of the functions it calls
    executable: Any = None


def split(partition: Partition, edges: Sequence[Edge], callees: Sequence[Function]) -> list[Segment]:
    """`partition` cut before each group of recvs that follows other ops, and after each group of sends
    that other ops follow (Note [partitions and stages])."""
    ops = [op for op in partition.function.entry.ops if not op.is_terminator]
    groups: list[list[Operation]] = [[]]
    for op in ops:
        group = groups[-1]
        after_sends = bool(group) and group[-1].name == "send" and op.name != "send"
        if after_sends or op.name == "recv" and any(o.name != "recv" for o in group):
            groups.append([])
        groups[-1].append(op)
    return [_segment(group, edges, callees) for group in groups if group]


def _segment(group: list[Operation], edges: Sequence[Edge], callees: Sequence[Function]) -> Segment:
    receives = [(edges[op.attributes["edge"]], op.result) for op in group if op.name == "recv"]
    sends = [(edges[op.attributes["edge"]], op.operands[0]) for op in group if op.name == "send"]
    body = [op for op in group if op.name not in ("recv", "send")]
    inside = set(body)
    defined = {r for op in body for r in op.results}
    inputs = list(dict.fromkeys(v for op in body for v in op.operands if v not in defined))
    outputs = [r for op in body for r in op.results if any(user not in inside for user, _ in r.uses)]
    segment = Segment(receives, inputs, outputs, sends)
    if outputs or any(not op.pure for op in body):
        segment.function = outline(body, inputs, outputs)
        segment.callees = [copy_function(f) for f in callees] if _calls(body) else []
    return segment


def _calls(body: list[Operation]) -> bool:
    return any(inner.name == "call" for op in body for inner in op.walk())


def copy_function(function: Function) -> Function:
    """A copy of a module function (fc.function's), for another module: each segment's pipeline changes its own."""
    return parse_module(print_function(function)).functions[function.name]


# -- the executable -----------------------------------------------------------------------------


@dataclass
class PartitionedExecutable:
    """A partitioned run as the Session calls it: `run(session, feeds)` gives the fetched values."""

    partitioned: Partitioned
    signature: Signature
    world: Any
    timeout: float
    segments: dict[int, list[Segment]] = field(default_factory=dict)  # by rank: this process's

    def close(self) -> None:
        for segments in self.segments.values():
            for segment in segments:
                close = getattr(segment.executable, "close", None)
                if close is not None:
                    close()
        self.segments.clear()

    def run(self, session: Any, feeds: list[np.ndarray]) -> list[np.ndarray]:
        sig, partitioned = self.signature, self.partitioned
        number = next(_run_numbers)
        step = None
        if sig.uses_step:
            step = session._step.copy()
            session._step += 1  # in place, as Session._call: every rank counts every run
        run = _Run(self, number, time.monotonic)
        for rank in self.segments:
            partition = partitioned.partitions[rank]
            run.envs[rank] = {arg: self._argument(session, index, feeds, step)
                              for arg, index in zip(partition.function.args, partition.arguments)}
        run.segments(self.segments)
        fetched: list[np.ndarray | None] = [None] * len(sig.fetches)
        for rank in self.segments:
            self._results(session, rank, run.envs[rank], fetched)
        run.deliver(fetched, feeds)
        run.wait_for_sends()
        return fetched  # type: ignore[return-value]

    def _argument(self, session: Any, index: int, feeds: list[np.ndarray], step: np.ndarray | None) -> np.ndarray:
        sig = self.signature
        if index < len(sig.feeds):
            return feeds[index]
        if index < len(sig.feeds) + len(sig.variables):
            return session._value_of(sig.variables[index - len(sig.feeds)])
        assert step is not None
        return step

    def _results(self, session: Any, rank: int, env: dict[Value, np.ndarray], fetched: list[Any]) -> None:
        partition = self.partitioned.partitions[rank]
        returned = partition.function.entry.ops[-1].operands
        fetches = len(self.signature.fetches)
        for value, index in zip(returned, partition.results):
            array = np.array(env[value], copy=True)  # the user's and the Session's own, aliasing nothing
            if index < fetches:
                fetched[index] = array
            else:
                session._store(self.signature.updates[index - fetches], array)


class _Run:
    """One run of a PartitionedExecutable in this process: the values of its partitions, its sends."""

    def __init__(self, executable: PartitionedExecutable, number: int, clock: Any):
        self.executable = executable
        self.world = executable.world
        self.clock = clock
        edges = executable.partitioned.edges
        self.count = len(edges) + len(executable.signature.fetches)  # tags per run: edges, then fetches
        self.base = (number * self.count) % max(1, self.world.tag_limit + 1 - self.count)
        self.envs: dict[int, dict[Value, np.ndarray]] = {}
        self.pending: list[tuple[str, Any]] = []  # (what, request) of each send posted

    def tag(self, index: int) -> int:
        return self.base + index

    def segments(self, by_rank: dict[int, list[Segment]]) -> None:
        """Every segment of this process, each when its recvs are there (in order, per rank)."""
        queues = {rank: list(segments) for rank, segments in by_rank.items()}
        local = isinstance(self.world, LocalWorld)
        while any(queues.values()):
            progressed = False
            for rank, queue in queues.items():
                while queue and (not local or all(self.tag(e.index) in self.world.mailbox for e, _ in
                                                  queue[0].receives)):
                    self._run_segment(rank, queue.pop(0))
                    progressed = True
            if not progressed:
                raise FlowcError("the partitions of this run wait on each other; this is a bug in partition.py")

    def _run_segment(self, rank: int, segment: Segment) -> None:
        env = self.envs[rank]
        for edge, value in segment.receives:
            env[value] = self.receive(edge.source, edge.index, edge.label)
        if segment.executable is not None:
            outputs = segment.executable([env[v] for v in segment.inputs])
            env.update(zip(segment.outputs, outputs))
        for edge, value in segment.sends:
            self.pending.append((edge.label, self.world.send(np.ascontiguousarray(env[value]), edge.target,
                                                             self.tag(edge.index))))

    def receive(self, source: int, index: int, what: str) -> np.ndarray:
        timeout = self.executable.timeout
        value = self.world.receive(source, self.tag(index), self.clock() + timeout)
        if value is None:
            raise DeadlineExceededError(f"rank {self.world.rank} waited {timeout:g} s for edge {what} and nothing "
                                        f"came; is rank {source} running the same script, and did it fail?",
                                        op=f"recv of edge {index}")
        return value

    def deliver(self, fetched: list[Any], feeds: list[np.ndarray]) -> None:
        """Every fetch on every rank: the rank that made it sends it to the others."""
        partitioned, edges = self.executable.partitioned, len(self.executable.partitioned.edges)
        for i, rank in enumerate(partitioned.fetch_ranks):
            if rank == EVERYWHERE:
                fetched[i] = np.array(feeds[self._fed_index(i)], copy=True)
            elif rank in self.envs:
                for other in range(self.world.size):
                    if other != rank and other not in self.envs:
                        label = f"fetch {i} (rank {rank} -> rank {other})"
                        self.pending.append((label, self.world.send(fetched[i], other, self.tag(edges + i))))
            else:
                fetched[i] = self.receive(rank, edges + i, f"fetch {i} of the run (rank {rank} -> rank "
                                          f"{self.world.rank})")

    def _fed_index(self, fetch: int) -> int:
        tensor = self.executable.signature.fetches[fetch]
        return self.executable.signature.feeds.index(tensor)

    def wait_for_sends(self) -> None:
        deadline = self.clock() + self.executable.timeout
        for what, request in self.pending:
            if request is not None and not self.world.finished(request, deadline):
                raise DeadlineExceededError(f"rank {self.world.rank} sent over edge {what} and no rank received "
                                            f"it within {self.executable.timeout:g} s", op="send")


# -- building -----------------------------------------------------------------------------------


def partitioned_executable(graph: Graph, lowered: Lowered, target: Any, options: CompileOptions,
                           timeout: float | None) -> PartitionedExecutable | None:
    """The run as this process's part of a partitioned run, where it is one (Note [partitioned runs]);
    None where the run is not partitioned: one process, or a graph that names no task."""
    world = current_world() or (LocalWorld() if options.partition else None)
    if world is None:
        return None
    cluster = cluster_of(graph)
    if not cluster.tasks:
        return None  # every rank runs the whole graph (data parallel: fc.distribute)
    if isinstance(world, MpiWorld) and len(cluster.tasks) > world.size:
        names = ", ".join(cluster.task_name(rank) for rank in range(len(cluster.tasks)))
        raise FlowcError(f"the graph places ops on {len(cluster.tasks)} tasks ({names}) but this run has "
                         f"{world.size} MPI ranks; start it with mpiexec -n {len(cluster.tasks)}")
    # Gradients first, so that a layer's backward ops are placed with it (passes/autodiff/reverse.py);
    # then dead code goes, so that no value crosses to a rank only for an op that nothing uses.
    expand_gradients(lowered.module, sized_by_data=target.sized_by_data)
    DCE().run(lowered.module)
    return build(partition(lowered, cluster), lowered, world, target, options, timeout or DEFAULT_TIMEOUT)


def build(partitioned: Partitioned, lowered: Lowered, world: Any, target: Any, options: CompileOptions,
          timeout: float) -> PartitionedExecutable:
    """This process's segments of `partitioned`, compiled for `target`."""
    executable = PartitionedExecutable(partitioned, lowered.signature, world, timeout)
    owned = world.owned(len(partitioned.partitions))
    if options.dump_dir:
        _dump(partitioned, owned, options.dump_dir)
    for rank in owned:
        segments = split(partitioned.partitions[rank], partitioned.edges, partitioned.callees)
        for segment in segments:
            if segment.function is not None:
                module = Module([segment.function, *segment.callees])
                segment.executable = compile_lowered(Lowered(module, _NO_SIGNATURE), target, options)
        executable.segments[rank] = segments
    return executable


def _dump(partitioned: Partitioned, owned: list[int], dump_dir: str) -> None:
    """FLOWC_DUMP_IR=DIR: each partition this process runs, with its sends and recvs, as DIR/partitions-NNN/."""
    folder = os.path.join(dump_dir, f"partitions-{next(_dumps):03d}")
    os.makedirs(folder, exist_ok=True)
    for rank in owned:
        partition = partitioned.partitions[rank]
        with open(os.path.join(folder, f"rank{rank}-{partition.function.name}.ir"), "w") as f:
            f.write(f"// {partitioned.cluster.task_name(rank)} (rank {rank})\n{print_function(partition.function)}")
