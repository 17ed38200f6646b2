"""Dead code elimination: pure ops whose results nobody uses are removed.

Blocks are walked backwards, so a whole dead chain goes in one pass; inside
regions too. Terminators and impure ops always stay.
"""

from __future__ import annotations

from flowc.ir import Block, Module

from .manager import Pass
from .rewrite import compact, is_dead, unlink


class DCE(Pass):
    name = "dce"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= _dce_block(function.entry)
        return changed


def _dce_block(block: Block) -> bool:
    erased = changed = False
    for op in reversed(block.ops):
        if is_dead(op):
            unlink(op)  # and compact once below: Note [linear rewriting]
            erased = True
            continue
        for region in op.regions:
            for inner in region.blocks:
                changed |= _dce_block(inner)
    if erased:
        compact(block)
    return changed or erased
