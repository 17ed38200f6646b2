"""Canonicalize: constant folding and the algebraic patterns, applied together to a fixed point.

Together, because each feeds the other: folding makes the constants that
`x * 1 -> x` looks for, and a simplification can leave an op whose operands
are all constants.
"""

from __future__ import annotations

from flowc.ir import Module

from .fold import fold_constants
from .manager import Pass
from .rewrite import apply_patterns, pattern_table
from .simplify import SIMPLIFY_PATTERNS


class Canonicalize(Pass):
    name = "canonicalize"

    def __init__(self, fast_math: bool = False):
        self.fast_math = fast_math

    def run(self, module: Module) -> bool:
        table = pattern_table([fold_constants, *SIMPLIFY_PATTERNS])
        return apply_patterns(module, table, fast_math=self.fast_math)
