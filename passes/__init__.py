"""flowc.passes: the optimizer between lowering and codegen.

A pass is a class with a `name` (its CLI name) and `run(module) -> changed`;
local rewrites are patterns (rewrite.py), global ones plain functions.
"""

from .autodiff import Autodiff, expand_gradients
from .canonicalize import Canonicalize
from .cse import CSE
from .dce import DCE
from .fold import FOLD_MAX_ELEMENTS, ConstantFold
from .manager import FixedPoint, Pass, PassManager, PassReport, last_report
from .pipeline import PASSES, default_pipeline, optimize, passes_by_name
from .simplify import Simplify

__all__ = [
    "Autodiff", "CSE", "DCE", "FOLD_MAX_ELEMENTS", "Canonicalize", "ConstantFold", "FixedPoint", "PASSES", "Pass",
    "PassManager", "PassReport", "Simplify", "default_pipeline", "expand_gradients", "last_report", "optimize",
    "passes_by_name",
]
