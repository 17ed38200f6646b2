"""The default pipeline and the passes by their CLI names."""

from __future__ import annotations

from typing import Callable, Sequence

from flowc.ir import Module
from flowc.ir.errors import FlowcError

from .autodiff import Autodiff
from .canonicalize import Canonicalize
from .collective_placement import PlaceCollectives
from .cse import CSE
from .expand_convolutions import ExpandConvolutions
from .dce import DCE
from .fold import ConstantFold
from .fusion import Fuse
from .gang_loops import GangLoops
from .host_driven import MarkHostDriven
from .inline import Inline
from .licm import LICM
from .manager import FixedPoint, Pass, PassManager, PassReport
from .schedule_gpu import GpuSchedule
from .simplify import Simplify
from .widen_half_products import WidenHalfProducts


def default_pipeline(fast_math: bool = False) -> list[Pass]:
    return [
        Autodiff(),                   # first: its rules emit ops that the cleanups below simplify
        FixedPoint([
            Canonicalize(fast_math),  # folding + algebraic patterns, to a fixed point
            CSE(),                    # merged duplicates may make new patterns match
            DCE(),                    # after CSE, whose merged duplicates are left without uses
        ]),
    ]


# CLI name -> a factory taking the fast-math flag (passes without unsafe rewrites ignore it).
PASSES: dict[str, Callable[[bool], Pass]] = {
    "autodiff": lambda fast_math: Autodiff(),
    "canonicalize": Canonicalize,
    "fold": lambda fast_math: ConstantFold(),
    "simplify": Simplify,
    "cse": lambda fast_math: CSE(),
    "dce": lambda fast_math: DCE(),
    "expand-convolutions": lambda fast_math: ExpandConvolutions(),  # every conv2d, as the gpu target's
    "fuse": lambda fast_math: Fuse(),  # not in default_pipeline: each target's pipeline adds it
    "inline": lambda fast_math: Inline(),  # the CPU target's, as are the two below
    "licm": lambda fast_math: LICM(),
    "mark-host-driven": lambda fast_math: MarkHostDriven(),
    "gang-loops": lambda fast_math: GangLoops(),  # the CPU target's, after its schedule pass
    "schedule-gpu": lambda fast_math: GpuSchedule(),  # the gpu target's last pass, for IR tests
    "place-collectives": lambda fast_math: PlaceCollectives(),  # the CPU target's, after fusion
    "widen-half-products": lambda fast_math: WidenHalfProducts(),  # the CPU target's, before fusion
}


def passes_by_name(names: Sequence[str], fast_math: bool = False) -> list[Pass]:
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise FlowcError(f"unknown pass {', '.join(unknown)}; passes are {', '.join(sorted(PASSES))}")
    return [PASSES[n](fast_math) for n in names]


def optimize(module: Module, fast_math: bool = False, verify_each: bool = False,
             dump_dir: str | None = None) -> PassReport:
    """Run the target-independent pipeline on `module` in place (verified, dumped: see PassManager)."""
    return PassManager(default_pipeline(fast_math), verify_each=verify_each, dump_dir=dump_dir).run(module)
