"""The interface every target implements (the package's docstring says how the driver uses it)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, Sequence

import numpy as np

from flowc.ir import Module
from flowc.passes import Pass

from ..options import CompileOptions


class Executable(Protocol):
    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class Target(ABC):
    """A backend. Subclasses set `name` and implement build and load (and passes, if they have any)."""

    name: str = "<target>"
    # Whether a value's size may be data (fill_rows: the stack of a loop's gradient); else every
    # size follows from the fed shapes, and gradients avoid such values (passes.expand_gradients).
    sized_by_data: bool = False
    # Whether a run is cut at each top-level data_dim, the host reading the count between the parts
    # (Note [data-dependent sizes] in compiler/data_sized_run.py); else a data_dim is refused.
    cuts_at_data_dims: bool = False

    def passes(self, options: CompileOptions) -> list[Pass]:
        """The passes this target appends to the shared pipeline, fresh for each compile."""
        return []

    def driven_from_host(self, lowered: Any, options: CompileOptions) -> Executable | None:
        """An executable that runs `lowered` (through the shared pipeline) in pieces from the host, where
        one build cannot run it (the CPU target's loops whose values change shape); None: one build."""
        return None

    @abstractmethod
    def build(self, module: Module, options: CompileOptions) -> Any:
        """The artifact of a module that went through the shared pipeline and `passes`."""

    @abstractmethod
    def load(self, artifact: Any, options: CompileOptions) -> Executable:
        """Something to call on the function's arguments, from what `build` made."""

    def load_quick(self, module: Module, options: CompileOptions) -> Executable | None:
        """A quick tier of the built module (Note [tiered compilation] in passes/schedule.py), to run while
        build makes the optimized code; None where there is none (here: never), or build needs no compiling."""
        return None

    def __repr__(self) -> str:
        return f"<target {self.name}>"


def pieces_driven_from_host(lowered: Any, target: Target, options: CompileOptions) -> Executable | None:
    """`lowered` (through the shared pipeline) as pieces driven from the host where mark-host-driven marks a
    loop or cond of it (Note [loops driven from the host], Note [conds driven from the host] in
    compiler/host_driven.py); None where it marks none: one build, as before. The cpu and gpu targets'
    driven_from_host. The imports are late: most programs mark nothing and never need them."""
    from dataclasses import replace

    from flowc.passes.host_driven import MarkHostDriven, contains_host_driven
    from flowc.passes.inline import Inline

    from ..driver import pass_manager

    module, quiet = lowered.module, replace(options, dump_dir=None)
    pass_manager([MarkHostDriven()], quiet, record=False).run(module)  # callees too: they are functions
    if not any(contains_host_driven(op) for op in module.walk()):
        return None  # the module as it came: one build
    pass_manager([Inline()], quiet, record=False).run(module)  # a marked loop of a callee, into main
    if not any(contains_host_driven(op) for op in lowered.function.entry.ops):
        return None
    pass_manager([], options, record=False).run(module)  # FLOWC_DUMP_IR: the marked program, before the cut
    from ..host_driven import HostDrivenExecutable

    return HostDrivenExecutable(lowered.function, target, options)
