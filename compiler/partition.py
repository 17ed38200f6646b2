"""Partitioning: a run placed on several tasks becomes one IR function per task, joined by send/recv.

Note [partitions and stages]
`place` (placement.py) puts each top-level op of the run's function (gradients
already expanded, so a layer's backward ops are placed with it) on a rank. Each
value used on another rank than the one that makes it is an edge; each edge gets
an index, the same on every rank, because every rank partitions the same function
the same way. Rank T's partition holds T's ops, a `recv` for each edge into T and
a `send` for each edge out of T (ir/ops/transfer.py).

Ops are ordered by stage: an op's stage is the largest over its operands of the
operand's stage, plus one where the operand comes from another rank. A partition
lists per stage the recvs of the stage, the ops of the stage that its sends need,
the sends, then the stage's other ops. The executor cuts a partition into segments
before each group of recvs and after each group of sends, and runs each rank's
segments in order: the values a segment of stage s waits for were made at stages
below s, whose segments every rank has run, and sent, before it waits (by
induction on s), so no rank waits on a rank that waits on it. A send goes out as
soon as the segment that makes its value returns, before the rest of its stage
runs (the critical path: another rank waits for it); a recv is waited on just
before the segment that needs it.

The run function's results are fetches, then the new values of the variables
the run assigns (lowering.py). A fetch is returned by the partition that makes
it (a fed value is on every rank); a variable's new value by the partition of
the rank where the variable lives, through an edge when another rank made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowc.ir import Builder, Function, Operation, TensorType, Value, print_function
from flowc.ir.core import BlockArgument, OpResult
from flowc.passes.autodiff.clone import clone_op

from .lowering import Lowered
from .placement import EVERYWHERE, Cluster, Placement, place


@dataclass(frozen=True)
class Edge:
    """A value made on rank `source` and used on rank `target`."""

    index: int  # the same on every rank; with the run's number, the MPI tag
    source: int
    target: int
    type: TensorType
    label: str  # which ops and tasks it joins, for the IR and for errors
    value: Value = field(compare=False, repr=False)  # in the run's function


@dataclass
class Partition:
    """Rank `rank`'s part of the run: a function with its sends and recvs."""

    rank: int
    function: Function
    arguments: list[int]  # per argument of `function`: its index among the run function's arguments
    results: list[int]  # per result of `function`: its index among the run function's results


@dataclass
class Partitioned:
    partitions: list[Partition]  # one per task of the cluster, in rank order
    edges: list[Edge]
    fetch_ranks: list[int]  # per fetch: the rank whose partition returns it; EVERYWHERE: a fed value
    callees: list[Function]  # the run module's other functions (fc.function), for segments that call them
    cluster: Cluster

    def text(self) -> str:
        """Every partition's IR, each under a comment naming its task and rank."""
        return "\n".join(f"// {self.cluster.task_name(p.rank)} (rank {p.rank})\n{print_function(p.function)}"
                         for p in self.partitions)


def partition(lowered: Lowered, cluster: Cluster) -> Partitioned:
    """The run's function cut into one function per task of `cluster` (Note [partitions and stages])."""
    function, signature = lowered.function, lowered.signature
    placement = place(function, signature, cluster)
    plan = _Plan(function, placement, len(signature.fetches), cluster)
    plan.find_edges([(cluster.rank_of(var.device) or 0, var.name) for var in signature.updates])
    partitions = [plan.build(rank, cluster) for rank in range(len(cluster.tasks))]
    callees = [f for f in lowered.module if f is not function]
    return Partitioned(partitions, plan.edges, plan.fetch_ranks(), callees, cluster)


class _Plan:
    """The stages and edges of one run function, and the partitions built from them."""

    def __init__(self, function: Function, placement: Placement, fetch_count: int, cluster: Cluster):
        self.function = function
        self.cluster = cluster
        self.placement = placement
        self.fetch_count = fetch_count
        self.ops = [op for op in function.entry.ops if not op.is_terminator]
        self.returned = function.entry.ops[-1].operands
        self.stage: dict[Operation, int] = {}
        for op in self.ops:
            rank = placement.of_op[op]
            self.stage[op] = max((self.value_stage(v) + self.crosses(v, rank) for v in op.operands), default=0)
        self.edges: list[Edge] = []
        self.edge_of: dict[tuple[Value, int], Edge] = {}
        self.receive_stage: dict[Edge, int] = {}  # the stage of the edge's first consumer
        self.update_ranks: list[int] = []

    def value_stage(self, value: Value) -> int:
        return self.stage[value.op] if isinstance(value, OpResult) else 0

    def crosses(self, value: Value, rank: int) -> bool:
        made = self.placement.of_value(value)
        return made != EVERYWHERE and made != rank

    def find_edges(self, updates: list[tuple[int, str]]) -> None:
        """The edges into ops, then those of the variables' new values: (rank, name) of each updated variable."""
        self.update_ranks = [rank for rank, _ in updates]
        for op in self.ops:
            rank = self.placement.of_op[op]
            for value in op.operands:
                if self.crosses(value, rank):
                    self._edge(value, rank, _describe(op), self.stage[op])
        for j, (rank, name) in enumerate(updates):
            value = self.returned[self.fetch_count + j]
            if self.crosses(value, rank):
                self._edge(value, rank, f"the new value of Variable '{name}'", self.value_stage(value) + 1)

    def _edge(self, value: Value, rank: int, consumer: str, stage: int) -> None:
        edge = self.edge_of.get((value, rank))
        if edge is None:
            source = self.placement.of_value(value)
            producer = _describe(value.op) if isinstance(value, OpResult) else f"Variable '{value.name}'"
            label = f"{producer} -> {consumer} ({self.cluster.task_name(source)} -> {self.cluster.task_name(rank)})"
            edge = Edge(len(self.edges), source, rank, value.type, label, value)
            self.edges.append(edge)
            self.edge_of[value, rank] = edge
            self.receive_stage[edge] = stage
        self.receive_stage[edge] = min(self.receive_stage[edge], stage)

    def fetch_ranks(self) -> list[int]:
        ranks = []
        for value in self.returned[: self.fetch_count]:
            made = self.placement.of_value(value)
            if made == EVERYWHERE and isinstance(value, OpResult):
                made = 0  # a constant fetched: rank 0 returns it
            ranks.append(made)
        return ranks

    def owned_results(self, rank: int) -> list[int]:
        fetches = [i for i, r in enumerate(self.fetch_ranks()) if r == rank]
        return fetches + [self.fetch_count + j for j, r in enumerate(self.update_ranks) if r == rank]

    def build(self, rank: int, cluster: Cluster) -> Partition:
        results = self.owned_results(rank)
        events = self._events(rank)
        used = self._arguments_used(rank, events, results)
        args = [self.function.args[i] for i in used]
        task = cluster.tasks[rank]
        function = Function(f"{task[0]}_{task[1]}", [a.type for a in args], [self.returned[i].type for i in results],
                            [a.name for a in args])
        mapping: dict[Value, Value] = dict(zip(args, function.args))
        b = Builder.at_end(function.entry)
        for kind, item in events:
            if kind == "recv":
                recv = b.create("recv", (), _transfer_attributes(item, item.source), result_types=[item.type],
                                result_names=[_name_of(item.value)])
                mapping[item.value] = recv.result
            elif kind == "op":
                self._copy_constants(b, item.operands, mapping)
                b.insert(clone_op(item, mapping))
            else:
                b.create("send", [mapping[item.value]], _transfer_attributes(item, item.target))
        returned = [self.returned[i] for i in results]
        self._copy_constants(b, returned, mapping)
        b.create("return", [mapping[v] for v in returned])
        return Partition(rank, function, used, results)

    def _events(self, rank: int) -> list[tuple[str, object]]:
        """What `rank`'s partition does, in order: per stage its recvs, the ops that its sends need,
        the sends, then the stage's other ops (Note [partitions and stages])."""
        ops: dict[int, list[Operation]] = {}
        receives: dict[int, list[Edge]] = {}
        sends: dict[int, list[Edge]] = {}
        for op in self.ops:
            if self.placement.of_op[op] == rank:
                ops.setdefault(self.stage[op], []).append(op)
        for edge in self.edges:
            if edge.target == rank:
                receives.setdefault(self.receive_stage[edge], []).append(edge)
            if edge.source == rank:
                sends.setdefault(self.value_stage(edge.value), []).append(edge)
        events: list[tuple[str, object]] = []
        for stage in sorted({*ops, *receives, *sends}):
            early = _needed_by([e.value for e in sends.get(stage, [])], set(ops.get(stage, [])))
            events += [("recv", e) for e in receives.get(stage, [])]
            events += [("op", op) for op in ops.get(stage, []) if op in early]
            events += [("send", e) for e in sends.get(stage, [])]
            events += [("op", op) for op in ops.get(stage, []) if op not in early]
        return events

    def _arguments_used(self, rank: int, events: list[tuple[str, object]], results: list[int]) -> list[int]:
        values: list[Value] = [self.returned[i] for i in results]
        for kind, item in events:
            if kind == "op":
                values += item.operands  # type: ignore[attr-defined]
            elif kind == "send":
                values.append(item.value)  # type: ignore[attr-defined]
        # An argument another rank has (a Variable living there) comes by its edge's recv instead.
        return sorted({v.index for v in values if isinstance(v, BlockArgument) and not self.crosses(v, rank)})

    def _copy_constants(self, b: Builder, operands: list[Value], mapping: dict[Value, Value]) -> None:
        """Each partition makes its own copy of the constants it reads (Note [placement])."""
        for value in operands:
            if value not in mapping and isinstance(value, OpResult) and value.op.name == "constant":
                b.insert(clone_op(value.op, mapping))


def _needed_by(values: list[Value], ops: set[Operation]) -> set[Operation]:
    """The ops of `ops` that the `values` depend on."""
    needed: set[Operation] = set()
    stack = [v.op for v in values if isinstance(v, OpResult) and v.op in ops]
    while stack:
        op = stack.pop()
        if op not in needed:
            needed.add(op)
            stack += [v.op for v in op.operands if isinstance(v, OpResult) and v.op in ops]
    return needed


def _describe(op: Operation) -> str:
    """An op as an edge's label names it: kind and name, or kind and line for one the compiler made."""
    if op.results and op.results[0].name or not op.loc:
        return op.display_name
    return f"{op.name} (for {op.loc})"


def _transfer_attributes(edge: Edge, peer: int) -> dict[str, object]:
    return {"peer": peer, "edge": edge.index, "label": edge.label}


def _name_of(value: Value) -> str | None:
    return value.name
