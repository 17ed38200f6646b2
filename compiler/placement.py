"""Placement: which task runs each op of a run, and which MPI rank runs each task.

Note [placement]
`with fc.device("/job:worker/task:1"):` records a device on each op made inside
(device_spec.py). Only the job and the task say where an op runs; a device type
inside a task ("/job:worker/task:1/gpu:0") is recorded and the Session's target
runs it. The rules, after TensorFlow 1's placer:

- An op whose device names a task runs on that task.
- A Variable's reads and assigns run where the Variable lives, whatever scope
  made them; an optimizer's slots live with their variable (train.py).
- Gradient ops run where the op they differentiate runs (passes/autodiff:
  TF1's colocate_gradients_with_ops).
- Any other op follows its first input that has a task (colocation); an op none
  of whose inputs has one (it reads only feeds, the run counter or constants)
  runs where its first user runs.
- Constants have no task: each partition that uses one makes its own copy, and
  feeds and the run counter are given on every rank, so none of them is sent.
- A Variable no scope placed lives on the first task.

Tasks map to MPI ranks in one fixed order, over every task the graph names:
the tasks of /job:worker by index, then those of /job:ps, then other jobs by
name. So /job:worker/task:K is rank K when the workers are tasks 0..n-1, and
/job:ps/task:0 comes after them. A spec naming a task without a job means
/job:worker; one naming a job without a task means its task 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from flowc.ir import Function, Operation, Value
from flowc.ir.core import BlockArgument, OpResult

from .device_spec import DeviceSpec
from .graph import ASSIGN_KINDS, READ, Graph
from .graph import Operation as GraphOperation

if TYPE_CHECKING:
    from .lowering import Signature

EVERYWHERE = -1  # a value every rank has: a feed, the run counter, a constant
_JOB_ORDER = {"worker": 0, "ps": 1}


def graph_device(op: GraphOperation) -> str:
    """The device lowering stamps on `op`'s IR: a Variable's reads and assigns run where it lives."""
    if op.type == READ or op.type in ASSIGN_KINDS:
        var = op.attrs["var"]
        if var.device and DeviceSpec.parse(var.device).task_key is not None:
            return var.device
    return op.device


@dataclass(frozen=True)
class Cluster:
    """The tasks a graph names, in rank order (Note [placement])."""

    tasks: tuple[tuple[str, int], ...]

    def rank_of(self, device: str | None) -> int | None:
        """The rank of the task `device` names; None when it names none."""
        if not device:
            return None
        key = DeviceSpec.parse(device).task_key
        return None if key is None else self.tasks.index(key)

    def task_name(self, rank: int) -> str:
        job, task = self.tasks[rank]
        return f"/job:{job}/task:{task}"


def cluster_of(graph: Graph) -> Cluster:
    """Every task that an op of `graph` is placed on, in rank order."""
    keys = {DeviceSpec.parse(op.device).task_key for op in graph.get_operations() if op.device}
    keys.discard(None)
    return Cluster(tuple(sorted(keys, key=lambda k: (_JOB_ORDER.get(k[0], 2), k[0], k[1]))))  # type: ignore[index]


@dataclass
class Placement:
    """The rank of each top-level op of a run's function, and of each of its arguments."""

    of_op: dict[Operation, int]
    of_arg: list[int]  # per function argument: the rank that has it, or EVERYWHERE

    def of_value(self, value: Value) -> int:
        if isinstance(value, BlockArgument):
            return self.of_arg[value.index]
        assert isinstance(value, OpResult)
        return self.of_op[value.op]


def place(function: Function, signature: Signature, cluster: Cluster) -> Placement:
    """Each top-level op of `function` (a lowered run, gradients expanded) on a rank (Note [placement])."""
    of_arg = [EVERYWHERE] * len(signature.feeds)
    of_arg += [cluster.rank_of(var.device) or 0 for var in signature.variables]
    of_arg += [EVERYWHERE] * (len(function.args) - len(of_arg))  # the run counter
    placement = Placement({}, of_arg)
    ops = [op for op in function.entry.ops if not op.is_terminator]
    deferred: list[Operation] = []
    for op in ops:
        rank = _own_rank(op, cluster, placement)
        if rank is None:
            deferred.append(op)
            placement.of_op[op] = EVERYWHERE  # for now: its users look further
        else:
            placement.of_op[op] = rank
    position = {op: i for i, op in enumerate(function.entry.ops)}
    for op in reversed(deferred):  # no input has a task: the first user's (users come later)
        placement.of_op[op] = _first_user_rank(op, placement, signature, cluster, position)
    return placement


def _own_rank(op: Operation, cluster: Cluster, placement: Placement) -> int | None:
    if op.name == "constant":
        return EVERYWHERE
    rank = cluster.rank_of(op.device)
    if rank is not None:
        return rank
    for operand in op.operands:
        placed = placement.of_value(operand)
        if placed != EVERYWHERE:
            return placed
    return None


def _first_user_rank(op: Operation, placement: Placement, signature: Signature, cluster: Cluster,
                     position: dict[Operation, int]) -> int:
    users: Sequence[tuple[Operation, int]] = [use for result in op.results for use in result.uses]
    for user, index in sorted(users, key=lambda use: position[use[0]]):
        if user.is_terminator:
            updated = index - len(signature.fetches)  # a variable's new value goes where it lives
            if updated >= 0:
                return cluster.rank_of(signature.updates[updated].device) or 0
            continue
        rank = placement.of_op[user]
        if rank != EVERYWHERE:
            return rank
    return 0
