"""PlaceCollectives: each all_reduce_start as early and each all_reduce_done as late as it may run.

Note [placing split collectives]
Fusion orders the kernels of a block by its own merges (passes/fusion.py emit(): a merged group
takes the later group's place, and what depends on it follows), so a start may end up long after
the kernel that computed its operand, and a done long before the first kernel that reads it. Both
cost the overlap that the split collective is for (Note [split collectives] in ir/ops/collective.py).
So after fusion, and before the memory plan (which reads the final order), this pass moves, in the
top level of each block:

- each start up, to just after the last op that produces one of its operands, but never above the
  collective that issues before it (a start or a blocking all_reduce or broadcast): every rank must
  start its collectives in one order, and the pass keeps the order they had;
- each done down, to just before the first op that reads its result (the terminator at the latest).
  A wait issues nothing, so it may pass other collectives; it never passes a reader of its result.

Nothing else moves, so every other op keeps its order and its producers before it. Ops are found
inside kernels: a fusion op holding a start is a start (fusion gives each collective a kernel of
its own). Blocks nested in regions are placed the same way, each on its own.
"""

from __future__ import annotations

from flowc.ir import Block, Module, Operation, OpResult

from .manager import Pass

ISSUING = ("all_reduce", "all_reduce_start", "broadcast")  # collectives that every rank starts in one order


class PlaceCollectives(Pass):
    """Move split collectives for overlap (Note [placing split collectives])."""

    name = "place-collectives"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= place_block(function.entry)
        return changed


def collective_of(op: Operation) -> str | None:
    """The name of the collective `op` is or holds as its kernel, else None."""
    if op.name != "fusion":
        return op.name if op.name in (*ISSUING, "all_reduce_done") else None
    names = [o.name for o in op.walk() if o.name in (*ISSUING, "all_reduce_done")]
    return names[0] if len(names) == 1 else None


def place_block(block: Block) -> bool:
    changed = False
    for op in block.ops:
        if op.name != "fusion":
            for region in op.regions:
                for inner in region.blocks:
                    changed |= place_block(inner)
    ops = [op for op in block.ops if not op.is_terminator]
    terminator = block.ops[len(ops):]
    placed = sink_dones(hoist_starts(ops))
    if placed != ops:
        block.ops = []
        for op in [*placed, *terminator]:
            block.append(op)
        changed = True
    return changed


def hoist_starts(ops: list[Operation]) -> list[Operation]:
    """Each start just after its last producer, below the collective that issues before it."""
    ops = list(ops)
    for op in [o for o in ops if collective_of(o) == "all_reduce_start"]:
        index = ops.index(op)
        producers = {v.op for v in op.operands if isinstance(v, OpResult)}
        floor = -1
        for position in range(index - 1, -1, -1):
            if ops[position] in producers or collective_of(ops[position]) in ISSUING:
                floor = position
                break
        ops.insert(floor + 1, ops.pop(index))
    return ops


def sink_dones(ops: list[Operation]) -> list[Operation]:
    """Each done just before the first op that reads its result (else at the end)."""
    ops = list(ops)
    for op in [o for o in ops if collective_of(o) == "all_reduce_done"][::-1]:
        index = ops.index(op)
        readers = {top_level(user, op.parent) for result in op.results for user in result.users}
        ceiling = len(ops)
        for position in range(index + 1, len(ops)):
            if ops[position] in readers:
                ceiling = position
                break
        ops.insert(ceiling - 1, ops.pop(index))
    return ops


def top_level(op: Operation, block: Block | None) -> Operation:
    """The op of `block` that is `op` or holds it in a region."""
    while op.parent is not block and op.parent_op is not None:
        op = op.parent_op
    return op
