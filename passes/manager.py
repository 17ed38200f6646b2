"""The pass manager: an ordered pipeline of named passes over a module.

After every pass (each run of a pass inside a FixedPoint too) it can verify
the module (`verify_each`: FLOWC_VERIFY=1; the tests always do) and write the
IR text to `dump_dir` (FLOWC_DUMP_IR=DIR) as DIR/NNN/KK-name.ir, one folder per
pipeline run, so `diff` shows what each pass did (and, for a pass that finds more
than IR, such as memory planning, what it found in KK-name.txt). The driver and
`flowc opt` pass both settings from their CompileOptions (compiler/options.py);
a PassManager made without them neither verifies nor dumps: no pass reads the
environment. The wall time of each pass is kept
in a report: `last_report()`, or `flowc opt --timing`.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

from flowc.ir import Module, VerifyError
from flowc.ir.printer import print_module
from flowc.ir.verifier import verify


class Pass:
    """A transformation of a module. `run` returns whether it changed anything."""

    name: ClassVar[str] = "<pass>"

    def run(self, module: Module) -> bool:
        raise NotImplementedError

    def describe(self, module: Module) -> str | None:
        """What the pass found that is not IR (a memory plan, say), for FLOWC_DUMP_IR to write in
        KK-name.txt beside the IR; None: nothing."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass
class PassTiming:
    name: str
    seconds: float
    changed: bool
    depth: int = 0  # 1 for a pass run inside a FixedPoint, whose own line sums its passes


@dataclass
class PassReport:
    """What each pass of one pipeline run cost and whether it changed the module.

    A FixedPoint's passes are listed, indented, under it, one line per run of
    each (so per round); the total counts each pass once.
    """

    timings: list[PassTiming] = field(default_factory=list)
    dump_folder: str | None = None  # where FLOWC_DUMP_IR wrote this run's files, if it did

    @property
    def changed(self) -> bool:
        """Whether any pass of the pipeline changed the module."""
        return any(t.changed for t in self.timings if t.depth == 0)

    @property
    def total_seconds(self) -> float:
        return sum(t.seconds for t in self.timings if t.depth == 0)

    def __str__(self) -> str:
        lines = [f"{'pass':<16} {'ms':>9}  changed"]
        for t in self.timings:
            name = "  " * t.depth + t.name
            lines.append(f"{name:<16} {t.seconds * 1e3:>9.3f}  {'yes' if t.changed else 'no'}")
        lines.append(f"{'total':<16} {self.total_seconds * 1e3:>9.3f}")
        return "\n".join(lines)


_last_report = PassReport()
_dump_runs = itertools.count()

RunPass = Callable[[Pass, Module], bool]


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
        return self.run_with(module, lambda p, m: p.run(m))

    def run_with(self, module: Module, run_pass: RunPass) -> bool:
        """The loop, running each pass through `run_pass` (the PassManager's: it times, verifies and dumps)."""
        changed_any = False
        for _ in range(self.max_rounds):
            changed = False
            for p in self.passes:
                changed |= run_pass(p, module)
            changed_any |= changed
            if not changed:
                break
        return changed_any


class PassManager:
    """Runs passes in order. Each pass, those inside a FixedPoint included, is timed,
    verified (when asked) and dumped (FLOWC_DUMP_IR) on its own."""

    def __init__(self, passes: Sequence[Pass], verify_each: bool = False, dump_dir: str | None = None,
                 record: bool = True):
        self.passes = list(passes)
        self.record = record  # becomes last_report(); a target's own passes (fusion) keep the pipeline's
        self.verify_each = verify_each
        self.dump_dir = dump_dir or None

    def run(self, module: Module) -> PassReport:
        global _last_report
        folder = self._dump_folder()
        run = _Run(PassReport(dump_folder=folder), folder, self.verify_each)
        if run.dump:
            _write(run.dump, 0, "input", module)
        for p in self.passes:
            run.run_pass(p, module)
        if self.record:
            _last_report = run.report
        return run.report

    def _dump_folder(self) -> str | None:
        if not self.dump_dir:
            return None
        folder = os.path.join(self.dump_dir, f"{next(_dump_runs):03d}")
        os.makedirs(folder, exist_ok=True)
        return folder


@dataclass
class _Run:
    """One pipeline run: its report and its numbered dump files."""

    report: PassReport
    dump: str | None
    verify_each: bool
    dumped: int = 0
    depth: int = 0

    def run_pass(self, p: Pass, module: Module) -> bool:
        if isinstance(p, FixedPoint):
            return self.run_fixed_point(p, module)
        start = time.perf_counter()
        changed = p.run(module)
        self.report.timings.append(PassTiming(p.name, time.perf_counter() - start, changed, self.depth))
        if self.verify_each:
            try:
                verify(module)
            except VerifyError as error:
                error.add_note(f"the verifier failed after pass '{p.name}'")
                raise
        if self.dump:
            self.dumped += 1
            _write(self.dump, self.dumped, p.name, module)
            text = p.describe(module)
            if text is not None:
                with open(os.path.join(self.dump, f"{self.dumped:02d}-{p.name}.txt"), "w") as f:
                    f.write(text)
        return changed

    def run_fixed_point(self, p: FixedPoint, module: Module) -> bool:
        line = PassTiming(p.name, 0.0, False, self.depth)
        self.report.timings.append(line)
        first = len(self.report.timings)
        self.depth += 1
        try:
            line.changed = p.run_with(module, self.run_pass)
        finally:
            self.depth -= 1
        line.seconds = sum(t.seconds for t in self.report.timings[first:] if t.depth == self.depth + 1)
        return line.changed


def _write(folder: str, index: int, name: str, module: Module) -> None:
    with open(os.path.join(folder, f"{index:02d}-{name}.ir"), "w") as f:
        f.write(print_module(module))
