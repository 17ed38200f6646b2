"""One case, run in this process on `reference` and its native target (`cpu` or `gpu`), judged: the worker's job.

A result is a dict (it crosses a pipe as JSON): `verdict` is "ok",
"mismatch", "raw-exception" (an exception that is not a FlowcError escaped
flowc), "build-rejected" (the front end refused the generated graph with a
FlowcError: the generator's fault, counted apart) or "spec-mismatch" (the
front end inferred another static shape or dtype than the generator tracked).
`signature` names the failure's kind, which the minimizer keeps.
"""

from __future__ import annotations

import gc
import time
import traceback
from typing import Any

import flowc as fc
import numpy as np

from . import data
from .build import Built, SpecMismatch, build
from .compare import GRADIENT_TOLERANCE, TOLERANCE, difference
from .spec import EXACT, F32, F64, Case, GraphSpec

def attempt(session: fc.Session, fetches: list, feed: dict) -> tuple[str, Any]:
    """("values", arrays), ("flowc", Error) or ("raw", Error) of one run."""
    try:
        return "values", [np.asarray(v) for v in session.run(fetches, feed)]
    except fc.FlowcError as error:
        return "flowc", Error.of(error)
    except Exception as error:  # noqa: BLE001 - anything else escaping flowc is a failure of its own kind
        return "raw", Error.of(error)


def probe_heap() -> None:
    """Free and allocate a spread of sizes, so that a heap the last native run wrote past fails now,
    while its case is the one running (runner.py confirms crashes, but the sooner the better)."""
    gc.collect()
    for shift in range(4, 22, 3):
        np.ones(1 << shift).sum()
        bytes(1 << shift)


class Error:
    """What a run raised: `tag` (the class, and the op kind of a FlowcError) goes into a failure's signature."""

    def __init__(self, tag: str, text: str):
        self.tag, self.text = tag, text

    @staticmethod
    def of(error: Exception) -> Error:
        kind = type(error).__name__
        op = getattr(error, "op", None)
        if isinstance(error, fc.FlowcError):
            return Error(f"{kind}:{op.split()[0]}" if op else kind, f"{kind}: {error}")
        return Error(kind, f"{kind}: {error}\n{traceback.format_exc(limit=8)}")


def feeds(case: Case, built: Built, run: int, wide: bool = False) -> dict:
    feed = {}
    for item in case.spec.inputs:
        array = data.input_array(case, run, item)
        feed[built.tensors[item.value.name]] = array.astype(np.float64) if wide and array.dtype == np.float32 else array
    for output in case.spec.outputs:
        name = f"w_{output}"
        if name in built.weights:
            value = case.spec.value(output)
            shape = data.concrete_shape(value, case.sizes[run])
            weights = data.weight_array(case, run, name, shape, value.dtype)
            feed[built.weights[name]] = weights.astype(np.float64) if wide else weights
    return feed


def gradient_level(spec: GraphSpec) -> int:
    dtypes = {i.value.dtype for i in spec.inputs} | {r.result.dtype for r in spec.ops}
    return F32 if "float32" in dtypes else F64


class CaseRun:
    """The sessions of one case and what was learned so far."""

    def __init__(self, case: Case):
        self.case = case
        self.built = build(case.spec)
        self.native = case.target
        self.targets = ("reference", case.target)
        self.sessions = {t: fc.Session(graph=self.built.graph, target=t) for t in self.targets}
        self.with_gradients = bool(self.built.gradients)
        self.gradients_rejected = False
        self.both_raised = 0
        self.wide: tuple[Built, fc.Session] | None = None

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        if self.wide:
            self.wide[1].close()

    def fetches(self, built: Built) -> list:
        return built.outputs + (built.gradients if self.with_gradients else [])

    def run(self, index: int) -> dict | None:
        """None if the targets agree on run `index`, else the failure."""
        results = self.attempts(index)
        if self.with_gradients and all(kind == "flowc" for kind, _ in results.values()):
            self.with_gradients, self.gradients_rejected = False, True  # e.g. no gradient rule: try without
            results = self.attempts(index)
        for target, (kind, error) in results.items():
            if kind == "raw":
                return failure("raw-exception", f"raw-exception:{target}:{error.tag}", f"{target} raised {error.text}",
                               index)
        kinds = {t: kind for t, (kind, _) in results.items()}
        if kinds[self.native] == kinds["reference"] == "flowc":
            self.both_raised += 1
            return None
        for target, (kind, error) in results.items():
            if kind == "flowc":
                return failure("mismatch", f"mismatch:{target}-raised:{error.tag}", f"{target} raised {error.text}; "
                               "the other target returned values", index)
        return self.compare(results[self.native][1], results["reference"][1], index)

    def attempts(self, index: int) -> dict[str, tuple[str, Any]]:
        feed = feeds(self.case, self.built, index)
        results = {t: attempt(self.sessions[t], self.fetches(self.built), feed) for t in self.targets}
        probe_heap()
        return results

    def compare(self, native: list, reference: list, index: int) -> dict | None:
        spec = self.case.spec
        levels = [spec.value(name).error for name in spec.outputs]
        levels += [gradient_level(spec)] * (len(native) - len(levels))
        wide = self.wide_values(index) if any(level != EXACT for level in levels) else None
        for position, (c, r, level) in enumerate(zip(native, reference, levels)):
            is_gradient = position >= len(spec.outputs)
            w = wide[position] if wide is not None and position < len(wide) else None
            why = difference(c, r, level, GRADIENT_TOLERANCE if is_gradient else TOLERANCE, w, self.native)
            if why is not None:
                if is_gradient:
                    what = f"the gradient by {self.built.gradient_of[position - len(spec.outputs)]}"
                else:
                    what = f"output {spec.outputs[position]}"
                return failure("mismatch", f"mismatch:values:{'gradient' if is_gradient else 'forward'}",
                               f"{what} differs {why}", index)
        return None

    def wide_values(self, index: int) -> list | None:
        """The reference's results with float32 replaced by float64, or None if that run raises."""
        if self.wide is None:
            built = build(self.case.spec, wide=True)
            self.wide = built, fc.Session(graph=built.graph, target="reference")
        built, session = self.wide
        kind, values = attempt(session, self.fetches(built), feeds(self.case, built, index, wide=True))
        return values if kind == "values" else None


def failure(verdict: str, signature: str, detail: str, run: int) -> dict:
    return {"verdict": verdict, "signature": signature, "detail": detail, "run": run}


def run_case(case: Case) -> dict:
    """Build the case's graph, run each of its size assignments on both targets, and judge."""
    start = time.perf_counter()
    result = judge(case)
    result.setdefault("signature", result["verdict"])
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def judge(case: Case) -> dict:
    try:
        runner = CaseRun(case)
    except fc.FlowcError as error:
        return {"verdict": "build-rejected", "detail": f"{type(error).__name__}: {error}"}
    except SpecMismatch as error:
        return {"verdict": "spec-mismatch", "detail": str(error)}
    except Exception as error:  # noqa: BLE001
        return failure("raw-exception", f"raw-exception:build:{type(error).__name__}",
                       f"building raised {type(error).__name__}: {error}\n{traceback.format_exc(limit=8)}", -1)
    try:
        for index in range(len(case.sizes)):
            found = runner.run(index)
            if found is not None:
                return {**found, "gradients": runner.with_gradients}
        return {"verdict": "ok", "both_raised": runner.both_raised, "gradients": runner.with_gradients,
                "gradients_rejected": runner.gradients_rejected}
    finally:
        runner.close()
