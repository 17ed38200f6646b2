"""Targets: what each backend adds after the shared pipeline, and how it builds and loads.

A target is one object (XLA's Compiler, MLIR's pass pipeline plus its
translation): `passes(options)` are the target's own passes, which the driver
runs after the shared pipeline, timed, verified and dumped like every other
pass; `build(module, options)` turns the module they leave into an artifact
(for the CPU: a shared library in the disk cache); `load(artifact, options)`
makes it something to call, `executable(args) -> results`. `Session` (and the
driver's `compile_lowered`) use nothing else of a target.
"""

from __future__ import annotations

from flowc.ir.errors import TargetError

from .base import Executable, Target
from .cpu import CpuTarget
from .gpu import GpuTarget
from .reference import ReferenceTarget

TARGETS: dict[str, Target] = {target.name: target for target in (ReferenceTarget(), CpuTarget(), GpuTarget())}


def target_named(name: str) -> Target:
    """The registered target called `name`; an unknown name is a TargetError listing the known ones."""
    if name not in TARGETS:
        raise TargetError(f"unknown target {name!r}; available: {', '.join(sorted(TARGETS))}")
    return TARGETS[name]


__all__ = ["TARGETS", "CpuTarget", "GpuTarget", "Executable", "ReferenceTarget", "Target", "target_named"]
