"""The Target interface (compiler/targets/) and CompileOptions (compiler/options.py)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import flowc as fc
from flowc.ir import Module, TensorType, float64
from flowc.ir.errors import TargetError, VerifyError
from flowc.options import CompileOptions
from flowc.passes import Pass
from flowc.targets import TARGETS, ReferenceTarget, target_named


def graph() -> tuple[fc.Graph, fc.Tensor, fc.Tensor, fc.Operation, fc.Operation]:
    """A training step: a matmul with an epilogue that updates its own variable (the donation case)."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
        w = fc.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, name="w")
        y = fc.matmul(x, w)
        step = fc.assign_sub(w, 0.1 * fc.matmul(fc.transpose(x), fc.tanh(y)))
        init = fc.global_variables_initializer()
    return g, x, y, step, init


def run_steps(target: str) -> list[np.ndarray]:
    g, x, y, step, init = graph()
    data = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        return [sess.run([y, step], {x: data})[0] for _ in range(3)]


def test_unknown_target_names_the_known_ones() -> None:
    with pytest.raises(TargetError) as info:
        fc.Session(graph=fc.Graph(), target="tpu")
    assert str(info.value) == "unknown target 'tpu'; available: cpu, gpu, reference"
    assert isinstance(info.value, fc.errors.FlowcError)


def test_the_targets_are_registered_targets() -> None:
    assert sorted(TARGETS) == ["cpu", "gpu", "reference"]
    assert [p.name for p in target_named("gpu").passes(CompileOptions())] == [
        "check-supported-gpu", "inline", "licm", "expand-convolutions", "fuse", "materialize-results",
        "check-gpu-kernels", "schedule-gpu", "check-gpu-kernels"]
    assert [p.name for p in target_named("cpu").passes(CompileOptions())] == [
        "check-supported", "inline", "licm", "expand-convolutions", "widen-half-products", "fuse", "materialize-results",
        "separate-products", "schedule", "gang-loops", "lift-constants", "place-collectives", "plan-memory"]
    assert target_named("reference").passes(CompileOptions()) == []


class Recording(ReferenceTarget):
    """The reference target, noting each step the driver asks of it."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def passes(self, options: CompileOptions) -> list[Pass]:
        self.calls.append(f"passes fast_math={options.fast_math}")
        return []

    def build(self, module: Module, options: CompileOptions) -> Module:
        self.calls.append("build")
        return super().build(module, options)

    def load(self, artifact: Module, options: CompileOptions):  # type: ignore[no-untyped-def]
        self.calls.append("load")
        return super().load(artifact, options)


def test_a_session_compiles_through_the_target_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    target = Recording()
    monkeypatch.setitem(TARGETS, target.name, target)
    got = run_steps("recording")
    # One compile for the initializer, one for the step, reused by every later run.
    assert target.calls == ["passes fast_math=False", "build", "load"] * 2
    for recorded, reference, cpu in zip(got, run_steps("reference"), run_steps("cpu")):
        np.testing.assert_array_equal(recorded, reference)
        np.testing.assert_allclose(cpu, reference, rtol=1e-5)


def test_dump_shows_every_cpu_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))
    run_steps("cpu")
    # One folder per pipeline run: the shared one and the target's, for the initializer and for the step.
    shared, cpu = sorted(tmp_path.iterdir())[2:]
    assert (shared / "01-autodiff.ir").exists()
    assert sorted(p.name for p in cpu.iterdir()) == [
        "00-input.ir", "01-check-supported.ir", "02-inline.ir", "03-licm.ir", "04-expand-convolutions.ir",
        "05-widen-half-products.ir", "06-fuse.ir", "07-materialize-results.ir", "08-separate-products.ir",
        "09-schedule.ir", "10-gang-loops.ir", "11-lift-constants.ir",
        "12-place-collectives.ir", "13-plan-memory.ir", "13-plan-memory.txt", "layouts.txt"]
    separated = (cpu / "08-separate-products.ir").read_text()
    # Results: y, the assign's own value, then w's update, which may take the old w's buffer (argument 1).
    assert "donate = [[2, 1]]" in separated
    plan = (cpu / "13-plan-memory.txt").read_text()
    assert "written in place of arg 1" in plan  # the update is written into the variable's own buffer


def test_options_are_read_when_the_session_is_made(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("FLOWC_DUMP_IR", raising=False)
    monkeypatch.setenv("FLOWC_FAST_MATH", "1")
    g, x, y, step, init = graph()
    sess = fc.Session(graph=g, optimize=False)
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))  # too late for this Session
    monkeypatch.setenv("FLOWC_FAST_MATH", "0")
    with sess:
        sess.run(init)
        sess.run(y, {x: np.ones((2, 4), np.float32)})
    assert list(tmp_path.iterdir()) == []
    assert sess.options.fast_math and not sess.options.optimize and sess.fast_math and not sess.optimize


def test_options_from_the_environment_and_overrides() -> None:
    environ = {"FLOWC_OPT": "0", "FLOWC_FAST_MATH": "1", "FLOWC_PROFILE": "1", "FLOWC_VERIFY": "1",
               "FLOWC_DUMP_IR": "/tmp/d", "FLOWC_LOG": "x,compile", "FLOWC_CACHE_DIR": "/tmp/c"}
    assert CompileOptions.from_environment(environ) == CompileOptions(
        optimize=False, fast_math=True, profile=True, verify=True, dump_dir="/tmp/d", log_compile=True,
        cache_dir="/tmp/c")
    assert CompileOptions.from_environment({}) == CompileOptions()
    chosen = CompileOptions.from_environment(environ, optimize=True, fast_math=None)  # None: the variable says
    assert chosen.optimize and chosen.fast_math


class RetypeTanh(Pass):
    """Breaks the IR: gives the tanh inside a kernel a result type its type rule does not give."""

    name = "retype-tanh"

    def run(self, module: Module) -> bool:
        op = next((op for op in module.walk() if op.name == "tanh"), None)
        if op is None:  # the initializer's run
            return False
        op.results[0].type = TensorType(float64, op.results[0].type.shape)
        return True


def test_target_passes_are_verified_under_flowc_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    base = target_named("cpu")

    class Broken(type(base)):  # type: ignore[misc]
        name = "broken"

        def passes(self, options: CompileOptions) -> list[Pass]:
            return [*super().passes(options)[:1], RetypeTanh(), *super().passes(options)[1:]]

    monkeypatch.setitem(TARGETS, "broken", Broken())
    monkeypatch.setenv("FLOWC_VERIFY", "1")
    g, x, y, step, init = graph()
    with fc.Session(graph=g, target="broken") as sess, pytest.raises(VerifyError) as info:
        sess.run(init)
        sess.run(step, {x: np.ones((2, 4), np.float32)})
    assert "the verifier failed after pass 'retype-tanh'" in info.value.__notes__
