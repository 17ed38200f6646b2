"""A fuzz campaign: many seeds through the worker pool, then the failures minimized.

Used by `python -m flowc.fuzz` and by tests/frontend/test_fuzz.py.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .generate import Config, make_case
from .minimize import minimize
from .runner import Pool, Task
from .spec import Case

FAILURES = ("mismatch", "crash", "hang", "raw-exception", "spec-mismatch")


@dataclass
class Failure:
    case: Case
    result: dict
    minimized: Case | None = None
    minimized_result: dict | None = None


@dataclass
class Summary:
    verdicts: Counter = field(default_factory=Counter)
    both_raised: int = 0  # runs in which both targets raised a FlowcError (agreement)
    gradients_compared: int = 0
    gradients_rejected: int = 0  # graphs whose gradient request both targets refused (compared without)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    verdict_of: dict[int, str] = field(default_factory=dict)  # seed -> verdict

    @property
    def graphs(self) -> int:
        return sum(self.verdicts.values())

    def add(self, case: Case, result: dict) -> None:
        self.verdict_of[case.seed] = result["verdict"]
        self.verdicts[result["verdict"]] += 1
        self.both_raised += result.get("both_raised", 0)
        self.gradients_compared += bool(result.get("gradients"))
        self.gradients_rejected += bool(result.get("gradients_rejected"))
        if result["verdict"] in FAILURES:
            self.failures.append(Failure(case, result))

    def reassign(self, case: Case, result: dict) -> None:
        """A crash found to be `case`'s after its own run was counted (runner.py: culprits)."""
        self.verdicts[self.verdict_of[case.seed]] -= 1
        self.failures = [f for f in self.failures if f.case.seed != case.seed]
        self.add(case, result)

    def line(self) -> str:
        v = self.verdicts
        rate = self.graphs / self.seconds if self.seconds else 0.0
        return (f"graphs {self.graphs}, mismatches {v['mismatch']}, crashes {v['crash']}, hangs {v['hang']}, "
                f"raw exceptions {v['raw-exception']}, build-time rejections {v['build-rejected']}, "
                f"spec mismatches {v['spec-mismatch']}; both targets raised in {self.both_raised} runs; "
                f"gradients compared in {self.gradients_compared} graphs, refused by both in "
                f"{self.gradients_rejected}; {rate:.2f} graphs/s")


def single(case: Case) -> Task:
    result = yield case
    return case, result


def run_seeds(pool: Pool, seeds: Iterable[int], config: Config,
              progress: Callable[[Summary], None] = lambda s: None) -> Summary:
    summary = Summary()
    start = time.perf_counter()
    pool.find_culprits = True
    for case, result in pool.run(single(make_case(seed, config)) for seed in seeds):
        summary.add(case, result)
        while pool.culprits:
            summary.reassign(*pool.culprits.pop(0))
        summary.seconds = time.perf_counter() - start
        progress(summary)
    pool.find_culprits = False
    summary.failures.sort(key=lambda f: f.case.seed)
    return summary


def first_of_each_kind(failures: list[Failure], per_signature: int) -> list[Failure]:
    chosen: list[Failure] = []
    seen: Counter = Counter()
    for failure in failures:
        if failure.result["signature"].endswith(":unconfirmed"):
            continue  # it does not fail alone: nothing to shrink
        seen[failure.result["signature"]] += 1
        if seen[failure.result["signature"]] <= per_signature:
            chosen.append(failure)
    return chosen


def minimize_failures(pool: Pool, chosen: list[Failure], budget: int, progress: Callable[[], None] = lambda: None):
    """Shrink each of `chosen` in place (failure.minimized), several at once on the pool's workers."""

    def task(failure: Failure) -> Iterator:
        case, result = yield from minimize(failure.case, failure.result, budget)
        failure.minimized, failure.minimized_result = case, result
        return failure

    for _ in pool.run(task(f) for f in chosen):
        progress()
