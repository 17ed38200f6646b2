"""Constant folding: an op whose operands are all constants becomes a constant.

The value comes from the op's own numpy reference (one definition of each
op's meaning), through the interpreter so it is checked against the result
type. Never folded: impure ops, ops marked `foldable = False` (random ops:
their operand is the run counter, even when a hand-written module makes it a
constant), ops with regions, and folds that would bloat the module.

Note [fold size cap]: a result is folded only if it has at most
max(FOLD_MAX_ELEMENTS, elements of the largest constant operand) elements.
So `reduce_sum` of a big constant folds (the module shrinks) but
`broadcast_to(0.0, [784, 256])` stays a scalar and a broadcast instead of
becoming 200k stored zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowc.ir import Interpreter, Module, Operation, OpResult
from flowc.ir.errors import FlowcError

from .manager import Pass
from .rewrite import ANY_OP, Rewriter, apply_patterns, pattern, pattern_table

FOLD_MAX_ELEMENTS = 1024


def constant_value(value: Any) -> np.ndarray | None:
    """The array a value holds if a `constant` op defines it, else None."""
    if isinstance(value, OpResult) and value.op.name == "constant":
        return value.op.value
    return None


@pattern(ANY_OP)
def fold_constants(op: Operation, rw: Rewriter) -> None:
    """op(constants...) -> constant. Exact: the reference computes it."""
    if not op.pure or op.is_terminator or op.regions or op.name == "constant" or not op.foldable:
        return  # random ops are not foldable: the numbers a run draws are not compile-time data
    values = [constant_value(v) for v in op.operands]
    if any(v is None for v in values):
        return
    limit = max([FOLD_MAX_ELEMENTS] + [v.size for v in values])
    if any(r.type.size is None or r.type.size > limit for r in op.results):
        return
    try:
        results = Interpreter().run_op(op, values)
    except FlowcError:
        return  # e.g. an index out of range: leave it to fail at run time, with the op's name
    b = rw.builder_before(op)
    rw.replace_op(op, [b.constant(r) for r in results])


class ConstantFold(Pass):
    """Fold every op whose operands are constants (see Note [fold size cap])."""

    name = "fold"

    def run(self, module: Module) -> bool:
        return apply_patterns(module, pattern_table([fold_constants]))
