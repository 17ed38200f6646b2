"""Shrink a failing case while it fails the same way (the same `signature`).

A minimization is a task for the pool (runner.py): it yields candidate cases
and receives their results. Candidates, tried in order, each kept if the
failure stays: only the failing run's sizes; no gradients; fewer outputs;
a value on the way fetched instead of the output; an op bypassed (its uses
read one of its operands of the same dtype and shape instead); no special
float values; smaller sizes. Ops and inputs that nothing reads any more are
dropped after each step.
"""

from __future__ import annotations

import copy
from collections.abc import Generator, Iterator

from .runner import same_failure
from .spec import Case, GraphSpec

Minimization = Generator[Case, dict, tuple[Case, dict]]


def pruned(spec: GraphSpec) -> GraphSpec:
    """`spec` without the ops and inputs that no output needs."""
    live = set(spec.outputs)
    for record in reversed(spec.ops):
        if record.result.name in live:
            live.update(record.args)
    ops = [r for r in spec.ops if r.result.name in live]
    inputs = [i for i in spec.inputs if i.value.name in live]
    return GraphSpec(spec.symbols, inputs, ops, spec.outputs, spec.gradients)


def variant(case: Case, spec: GraphSpec | None = None, **changes: object) -> Case:
    new = copy.deepcopy(case)
    if spec is not None:
        new.spec = pruned(spec)
    for key, value in changes.items():
        setattr(new, key, value)
    return new


def without_outputs(case: Case) -> Iterator[Case]:
    for name in list(case.spec.outputs):
        if len(case.spec.outputs) > 1:
            spec = copy.deepcopy(case.spec)
            spec.outputs.remove(name)
            yield variant(case, spec)


def earlier_outputs(case: Case) -> Iterator[Case]:
    """A value computed on the way, fetched instead of the outputs: earliest first, the smallest graphs."""
    for record in case.spec.ops:
        if record.result.name not in case.spec.outputs and not record.guard:
            spec = copy.deepcopy(case.spec)
            spec.outputs = [record.result.name]
            yield variant(case, spec)


def bypasses(case: Case) -> Iterator[Case]:
    """Each op, last first, replaced by an operand that looks the same to its users."""
    for record in reversed(case.spec.ops):
        if record.guard:
            continue
        for operand in dict.fromkeys(record.args):
            source = case.spec.value(operand)
            result = record.result
            if source.dtype != result.dtype or source.shape != result.shape or source.error > result.error:
                continue
            spec = copy.deepcopy(case.spec)
            spec.outputs = list(dict.fromkeys(operand if n == result.name else n for n in spec.outputs))
            for other in spec.ops:
                other.args = [operand if a == result.name else a for a in other.args]
            yield variant(case, spec)
            break


def smaller_sizes(case: Case) -> Iterator[Case]:
    for symbol, size in case.sizes[0].items():
        for smaller in sorted({0, 1, 2, 3, size // 2, size - 1}):
            if 0 <= smaller < size:
                yield variant(case, sizes=[{**case.sizes[0], symbol: smaller}])


def candidates(case: Case, run: int | None) -> Iterator[Case]:
    if len(case.sizes) > 1:  # the failing run alone; for a crash or a hang, which run it was is unknown
        for index in range(len(case.sizes)) if run is None else [run]:
            yield variant(case, sizes=[case.sizes[index]])
    if case.spec.gradients:
        spec = copy.deepcopy(case.spec)
        spec.gradients = False
        yield variant(case, spec)
    yield from without_outputs(case)
    if len(case.spec.outputs) == 1:
        yield from earlier_outputs(case)
    yield from bypasses(case)
    if case.specials:
        yield variant(case, specials=False)
    if len(case.sizes) == 1:
        yield from smaller_sizes(case)


def minimize(case: Case, result: dict, budget: int = 60) -> Minimization:
    """The smallest case found within `budget` trials that fails with `result`'s signature."""
    signature = result["signature"]
    spec = copy.deepcopy(case.spec)
    spec.gradients = spec.gradients and result.get("gradients", True)  # off if both targets refused them
    best, best_result = variant(case, spec), result
    tried = 0
    improved = True
    while improved and tried < budget:
        improved = False
        for candidate in candidates(best, best_result.get("run")):
            if tried >= budget:
                break
            tried += 1
            outcome = yield candidate
            if same_failure(outcome, signature):
                best, best_result, improved = candidate, outcome, True
                break  # start over from the smaller case
    return best, best_result
