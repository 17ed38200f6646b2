"""The pass manager: an ordered pipeline of named passes over a module.

After every pass it can verify the module (when asked, or FLOWC_VERIFY=1; the
tests always do) and write the IR text to FLOWC_DUMP_IR=DIR as
DIR/NNN/KK-name.ir, one folder per pipeline run, so `diff` shows what each
pass did. The wall time of each pass is kept in a report: `last_report()`.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

from flowc.ir import Module
from flowc.ir.printer import print_module
from flowc.ir.verifier import verify


class Pass:
    """A transformation of a module. `run` returns whether it changed anything."""

    name: ClassVar[str] = "<pass>"

    def run(self, module: Module) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass
class PassTiming:
    name: str
    seconds: float
    changed: bool


@dataclass
class PassReport:
    """What each pass of one pipeline run cost and whether it changed the module."""

    timings: list[PassTiming] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(t.seconds for t in self.timings)

    def __str__(self) -> str:
        lines = [f"{'pass':<16} {'ms':>9}  changed"]
        lines += [f"{t.name:<16} {t.seconds * 1e3:>9.3f}  {'yes' if t.changed else 'no'}" for t in self.timings]
        lines.append(f"{'total':<16} {self.total_seconds * 1e3:>9.3f}")
        return "\n".join(lines)


_last_report = PassReport()
_dump_runs = itertools.count()


def last_report() -> PassReport:
    """The per-pass wall times of the most recent pipeline run in this process."""
    return _last_report


class FixedPoint(Pass):
    """Runs its passes in order, again and again, until none changes the module."""

    name = "fixed-point"

    def __init__(self, passes: Sequence[Pass], max_rounds: int = 16):
        self.passes = list(passes)
        self.max_rounds = max_rounds  # a guard against two passes undoing each other forever

    def run(self, module: Module) -> bool:
        changed_any = False
        for _ in range(self.max_rounds):
            changed = False
            for p in self.passes:
                changed |= p.run(module)
            changed_any |= changed
            if not changed:
                break
        return changed_any


class PassManager:
    def __init__(self, passes: Sequence[Pass], verify_each: bool | None = None, dump_dir: str | None = None):
        self.passes = list(passes)
        self.verify_each = os.environ.get("FLOWC_VERIFY") == "1" if verify_each is None else verify_each
        self.dump_dir = dump_dir if dump_dir is not None else os.environ.get("FLOWC_DUMP_IR") or None

    def run(self, module: Module) -> PassReport:
        global _last_report
        report = PassReport()
        dump = self._dump_folder()
        if dump:
            _write(dump, 0, "input", module)
        for index, p in enumerate(self.passes, start=1):
            start = time.perf_counter()
            changed = p.run(module)
            report.timings.append(PassTiming(p.name, time.perf_counter() - start, changed))
            if self.verify_each:
                verify(module)
            if dump:
                _write(dump, index, p.name, module)
        _last_report = report
        return report

    def _dump_folder(self) -> str | None:
        if not self.dump_dir:
            return None
        folder = os.path.join(self.dump_dir, f"{next(_dump_runs):03d}")
        os.makedirs(folder, exist_ok=True)
        return folder


def _write(folder: str, index: int, name: str, module: Module) -> None:
    with open(os.path.join(folder, f"{index:02d}-{name}.ir"), "w") as f:
        f.write(print_module(module))
