"""The driver: from a lowered IR module to something a Session can call, per target.

A target is a function `Lowered -> Executable`; gradient requests are
expanded before any target sees the module. `reference` evaluates the IR
with each op's numpy meaning; `cpu` compiles it to native code (native.py).
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from flowc.ir import Interpreter
from flowc.ir.errors import TargetError
from flowc.passes import expand_gradients

from .lowering import Lowered
from .native import NativeExecutable  # the default target; it loads llvmlite and the C compiler only to build


class Executable(Protocol):
    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class ReferenceExecutable:
    """Runs the lowered function in the reference interpreter."""

    def __init__(self, lowered: Lowered, fast_math: bool = False):  # numpy is IEEE whatever the flag
        self.lowered = lowered
        self._interpreter = Interpreter(lowered.module)

    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._interpreter.run_function(self.lowered.function, args)


def native_cpu(lowered: Lowered, fast_math: bool = False) -> Executable:
    return NativeExecutable(lowered, fast_math)


TARGETS: dict[str, Callable[[Lowered, bool], Executable]] = {"reference": ReferenceExecutable, "cpu": native_cpu}


def compile_lowered(lowered: Lowered, target: str, fast_math: bool = False) -> Executable:
    # Gradient requests have no executable meaning: they are expanded even when the Session runs
    # unoptimized (optimize=False, FLOWC_OPT=0), where the pipeline that starts with Autodiff did not run.
    expand_gradients(lowered.module)
    return TARGETS[check_target(target)](lowered, fast_math)


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise TargetError(f"unknown target {target!r}; available: {', '.join(sorted(TARGETS))}")
    return target
