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
  start its collectives in one order, and the pass keeps the order they had. Its pure producers
  (the bucket's concat, the views and the gradient kernels it reads) move up first, each to just
  after its own producers: fusion may have put them after kernels of earlier layers;
- each done down, to just before the first op that reads its result (the terminator at the latest),
  after its pure readers (the slices of the bucket, the update of its variables) have moved down the
  same way. The dones are taken in order, so the first bucket started is waited for and applied
  first, while the others are still on the wire. A wait issues nothing, so it may pass other
  collectives.

An op moves only up to just after its producers or down to just before its readers, so the order
stays a topological one; an op with an effect (a check, a send) other than a split collective never
moves. Ops are found
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
    kinds = [collective_of(op) for op in ops]
    if "all_reduce_start" not in kinds and "all_reduce_done" not in kinds:
        return changed  # the common case: nothing to place, nothing walked
    terminator = block.ops[len(ops):]
    placed = sink_dones(hoist_starts(ops))
    if placed != ops:
        block.ops = []
        for op in [*placed, *terminator]:
            block.append(op)
        changed = True
    return changed


def hoist_starts(ops: list[Operation]) -> list[Operation]:
    """Each start, with the pure ops that compute its operand, as early as they may run."""
    ops = list(ops)
    members, hoisted = set(ops), set()
    for op in [o for o in ops if collective_of(o) == "all_reduce_start"]:
        hoist(op, ops, issued_before(op, ops), members, hoisted)
    return ops


def issued_before(op: Operation, ops: list[Operation]) -> int:
    """The position of the last collective that issues before `op` (-1 if none)."""
    index = ops.index(op)
    return next((p for p in range(index - 1, -1, -1) if collective_of(ops[p]) in ISSUING), -1)


def hoist(op: Operation, ops: list[Operation], floor: int, members: set[Operation], hoisted: set[Operation]) -> None:
    """Move `op` up to just after its last producer (and after position `floor`), having moved
    up first those of its producers that are pure (views, the bucket's concat, gradient kernels).
    Each op moves once (`hoisted`): an op reached again by another path is already in place."""
    hoisted.add(op)
    for producer in producers(op, members):
        if producer not in hoisted and movable(producer) and ops.index(producer) > floor:
            hoist(producer, ops, floor, members, hoisted)
    target = max([floor, *(ops.index(p) for p in producers(op, members))]) + 1
    index = ops.index(op)
    if target < index:
        ops.insert(target, ops.pop(index))


def sink_dones(ops: list[Operation]) -> list[Operation]:
    """Each done, with the pure ops that read its result (the update of its bucket's variables), as
    late as they may run; the dones in their order, so the first started is waited for first."""
    ops = list(ops)
    members, sunk = set(ops), set()
    for op in [o for o in ops if collective_of(o) == "all_reduce_done"]:
        sink(op, ops, members, sunk)
    return ops


def sink(op: Operation, ops: list[Operation], members: set[Operation], sunk: set[Operation]) -> None:
    """Move `op` down to just before its first reader, having moved down first its pure readers
    (each op once, as in hoist)."""
    sunk.add(op)
    for reader in readers(op, members):
        if reader not in sunk and movable(reader):
            sink(reader, ops, members, sunk)
    index = ops.index(op)
    target = min([len(ops), *(ops.index(r) for r in readers(op, members))]) - 1
    if target > index:
        ops.insert(target, ops.pop(index))


def movable(op: Operation) -> bool:
    """Whether an op may run earlier or later than fusion put it: nothing in it has an effect."""
    return all(o.pure or o.is_terminator for o in op.walk())


def producers(op: Operation, members: set[Operation]) -> list[Operation]:
    """The ops of the block (`members`) whose results `op` (or an op in its regions) reads."""
    found = {v.op for inner in op.walk() for v in inner.operands if isinstance(v, OpResult)}
    return [p for p in {top_level(f, op.parent) for f in found} if p in members and p is not op]


def readers(op: Operation, members: set[Operation]) -> list[Operation]:
    """The ops of the block (`members`) that read a result of `op`."""
    found = {top_level(user, op.parent) for result in op.results for user in result.users}
    return [r for r in found if r in members and r is not op]


def top_level(op: Operation, block: Block | None) -> Operation:
    """The op of `block` that is `op` or holds it in a region."""
    while op.parent is not block and op.parent_op is not None:
        op = op.parent_op
    return op
