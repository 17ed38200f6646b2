"""Common subexpression elimination.

Two pure ops with the same name, operands, attributes and result types
compute the same value; the later one is replaced by the earlier. Side
effects need no special case: state is explicit in this IR (Note [variables
as arguments]), so two reads of a variable separated by an assign are
different SSA values already, and random ops differ by their `seed`
attribute (two with the same seed and counter do draw the same numbers).
Each block is its own scope: regions are isolated from above.
"""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from flowc.ir import Block, Module, Operation

from .manager import Pass
from .rewrite import compact, unlink


def attribute_key(value: Any) -> Hashable:
    """A hashable stand-in for an attribute value (arrays by dtype, shape and bytes)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, tuple):
        return tuple(attribute_key(v) for v in value)
    if isinstance(value, float):
        # By bits, not ==: 0.0 == -0.0 (one_hot's off_value = -0.0 is another op), and NaN != NaN.
        return ("float", value.hex())
    return (type(value).__name__, value)


def op_key(op: Operation) -> Hashable:
    attributes = tuple(sorted((k, attribute_key(v)) for k, v in op.attributes.items()))
    return (op.name, tuple(id(v) for v in op.operands), attributes, tuple(r.type for r in op.results))


class CSE(Pass):
    name = "cse"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= _cse_block(function.entry)
        return changed


def _cse_block(block: Block) -> bool:
    erased = changed = False
    seen: dict[Hashable, Operation] = {}
    for op in block.ops:
        for region in op.regions:
            for inner in region.blocks:
                changed |= _cse_block(inner)
        if not op.pure or op.is_terminator or op.regions:
            continue
        key = op_key(op)
        first = seen.setdefault(key, op)
        if first is not op:
            for old, new in zip(op.results, first.results):
                old.replace_all_uses_with(new)
            unlink(op)  # and compact once below: Note [linear rewriting]
            erased = True
    if erased:
        compact(block)
    return changed or erased
