"""Copying region bodies and sweeping what is left unused, for the rules of region ops."""

from __future__ import annotations

from typing import Sequence

from flowc.ir import Block, Builder, Function, Operation, Region, Value

from ..rewrite import compact, is_dead, unlink


def clone_block(b: Builder, block: Block, args: Sequence[Value]) -> tuple[list[Operation], list[Value]]:
    """Copy `block`'s ops (not its terminator) where `b` inserts, its arguments taken to be `args`.

    Returns the copies, in order, and the copied values that the terminator yields.
    """
    mapping: dict[Value, Value] = dict(zip(block.args, args, strict=True))
    copies = []
    for op in block.ops:
        if op.is_terminator:
            return copies, [mapping[v] for v in op.operands]
        copies.append(b.insert(clone_op(op, mapping)))
    raise ValueError("block has no terminator")


def outline(body: Sequence[Operation], inputs: Sequence[Value], outputs: Sequence[Value],
            name: str = "main") -> Function:
    """A function of `inputs` returning `outputs`, its ops copies of `body` (which reads nothing else but
    values it defines): a piece of a program compiled apart (partitioned, data-sized and host-driven runs)."""
    function = Function(name, [v.type for v in inputs], [v.type for v in outputs], [v.name for v in inputs])
    mapping: dict[Value, Value] = dict(zip(inputs, function.args))
    b = Builder.at_end(function.entry)
    for op in body:
        b.insert(clone_op(op, mapping))
    b.create("return", [mapping[v] for v in outputs])
    return function


def clone_op(op: Operation, mapping: dict[Value, Value]) -> Operation:
    """A copy of `op` reading `mapping`'s values; its results join the mapping."""
    copy = type(op)([mapping.get(v, v) for v in op.operands], dict(op.attributes), [r.type for r in op.results],
                    [clone_region(r) for r in op.regions], loc=op.loc, result_names=[r.name for r in op.results])
    mapping.update(zip(op.results, copy.results))
    return copy


def clone_region(region: Region) -> Region:
    """A deep copy: regions are isolated from above, so nothing outside needs mapping."""
    blocks = []
    for block in region.blocks:
        new = Block(block.arg_types, [a.name for a in block.args])
        mapping: dict[Value, Value] = dict(zip(block.args, new.args))
        for op in block.ops:
            new.append(clone_op(op, mapping))
        blocks.append(new)
    return Region(blocks)


def drop_dead(block: Block) -> None:
    """Remove the ops of `block` (and of its regions) that nothing uses: the parts of a copied
    forward body that a gradient does not read. Its prints go too: the forward run printed
    (Note [printing inside control flow] in ir/ops/checks.py), a gradient's copy must not print again."""
    for op in reversed(block.ops):
        if is_dead(op) or (op.name == "print" and not op.results[0].uses):
            unlink(op)
        else:
            for region in op.regions:
                drop_dead(region.entry)
    compact(block)
