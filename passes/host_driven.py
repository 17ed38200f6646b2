"""MarkHostDriven: which while loops the CPU target runs from the host.

A while loop whose loop values may change shape between turns cannot live in
the CPU entry point, which sizes every buffer before it runs (Note [fixed
shapes in control flow] in ir/shapes.py); such a loop gets `driven = "host"`
and runs turn by turn from Python (Note [loops driven from the host] in
compiler/host_driven.py). Every other loop stays compiled.

A loop value keeps its shape when the body yields its own argument back, or
when each of its unknown dims is tied, by the body's own ops, to the same dim
of the argument (Note [unknown dims in a kernel] in ir/ops/fusion.py): a tanh
RNN's state h[?, 128] -> tanh(x @ W + h @ U) keeps its rows. A value whose
yielded dim the body does not tie to its argument's (concat(acc, x) grows it,
acc[1:] shrinks it) may change, and the loop is marked. Loops nested in a
body or branch are marked first, so that an outer loop does not take an inner
marked loop's result as tied to its initial value.

The pass errs on the side of marking: a body whose dims it cannot tie (a
reshape ties nothing) runs from the host, correct but a native call per turn.
"""

from __future__ import annotations

from flowc.ir import Block, Module, Operation
from flowc.ir.ops.fusion import DimTies

from .manager import Pass

HOST = "host"


class MarkHostDriven(Pass):
    """Set `driven = "host"` on every while loop whose loop values may change shape (module docstring)."""

    name = "mark-host-driven"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= _mark_block(function.entry)
        return changed


def _mark_block(block: Block) -> bool:
    changed = False
    for op in block.ops:
        if op.name == "fusion":
            continue
        for region in op.regions:
            changed |= _mark_block(region.entry)
        if op.name == "while" and op.attributes.get("driven") != HOST and changing_loop_values(op):
            op.attributes = op.attributes | {"driven": HOST}
            changed = True
    return changed


def changing_loop_values(loop: Operation) -> list[int]:
    """The positions of `loop`'s values whose shape the body may change (empty: it keeps every shape)."""
    body = loop.regions[1].entry
    ties = DimTies(body.ops)
    changing = []
    for index, (arg, yielded) in enumerate(zip(body.args, body.terminator.operands)):
        if yielded is arg or None not in arg.type.shape:
            continue
        if ties.shape(arg) != ties.shape(yielded):
            changing.append(index)
    return changing


def contains_host_driven(op: Operation) -> bool:
    """Whether `op` is, or holds in its regions, a loop driven from the host."""
    return any(inner.name == "while" and inner.attributes.get("driven") == HOST for inner in op.walk())
