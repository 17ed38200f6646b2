"""Note [tiered compilation] in passes/schedule.py: a jitted function with a narrow product runs a quick
tier (those products as OpenBLAS calls) on its first call while the optimized tier compiles, which then
takes its place; the disk cache serves the optimized tier first."""

from __future__ import annotations

import threading
from typing import Any

import flowc as fc
import numpy as np
import pytest
from flowc.options import CompileOptions
from flowc.passes.schedule import quick_schedule
from flowc.targets.cpu import CpuTarget


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> list[list[tuple[Any, ...]]]:
    """Per CpuTarget.build or in-process link (a quick tier's) in this test (a fresh disk cache): each matmul
    kernel's (schedule, quick)."""
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    seen: list[list[tuple[Any, ...]]] = []
    for method in ("build", "_load_linked"):
        monkeypatch.setattr(CpuTarget, method, recording(getattr(CpuTarget, method), seen))
    return seen


def recording(method: Any, seen: list) -> Any:
    def recorded(self: CpuTarget, module: Any, options: CompileOptions) -> Any:
        kernels = [op for op in module.walk() if op.name == "fusion" and op.kind == "matmul"]
        seen.append([(op.attributes["schedule"], op.attributes.get("quick", False)) for op in kernels])
        return method(self, module, options)

    return recorded


def classifier() -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
    """x @ W + b with 10 columns (a narrow product) after a wide one (BLAS in both tiers), and numpy's answer."""
    rng = np.random.default_rng(0)
    params = {"v": rng.standard_normal((64, 96), dtype=np.float32) / 8,
              "w": rng.standard_normal((96, 10), dtype=np.float32) / 8,
              "b": rng.standard_normal(10, dtype=np.float32)}
    x = rng.standard_normal((50, 64), dtype=np.float32)

    def fn(params: dict, x: Any) -> Any:
        return fc.matmul(fc.relu(fc.matmul(x, params["v"])), params["w"]) + params["b"]

    want = np.maximum(x @ params["v"], 0) @ params["w"] + params["b"]
    return fn, params, x, want  # type: ignore[return-value]


def wait_for_tiers(jitted: Any) -> None:
    for thread in jitted._tier_threads:
        thread.join(timeout=120)
        assert not thread.is_alive()


def test_the_first_call_runs_the_quick_tier_then_the_optimized(builds: list) -> None:
    fn, params, x, want = classifier()
    jitted = fc.jit(fn)
    np.testing.assert_allclose(jitted(params, x), want, rtol=1e-5, atol=1e-5)
    (quick,) = jitted._cache.values()
    wait_for_tiers(jitted)
    # The quick tier: the narrow product an OpenBLAS call that says why; then the optimized tier's schedules.
    assert builds == [[("blas", False), ("blas", True)], [("blas", False), ("narrow", False)]]
    (optimized,) = jitted._cache.values()
    assert optimized is not quick and optimized.tier_up is None
    assert optimized.executable.library_path != quick.executable.library_path
    for _ in range(3):  # the keyed path once, then the optimized tier's hot path
        np.testing.assert_allclose(jitted(params, x), want, rtol=1e-5, atol=1e-5)
    assert jitted._hot is not None and jitted._hot.fast is optimized.fast
    assert jitted.compiles == 1  # a tier is no recompile: nothing to explain
    assert jitted.explain() is None


def test_the_disk_cache_serves_the_optimized_tier(builds: list) -> None:
    fn, params, x, want = classifier()
    first = fc.jit(fn)
    first(params, x)
    wait_for_tiers(first)
    second = fc.jit(fn)  # as another process would: the same code, a new function
    np.testing.assert_allclose(second(params, x), want, rtol=1e-5, atol=1e-5)
    (compiled,) = second._cache.values()
    assert compiled.tier_up is None and not second._tier_threads
    assert compiled.executable.was_cached
    assert builds[-1] == [("blas", False), ("narrow", False)]


def test_one_tier_without_narrow_products_or_when_asked(builds: list, monkeypatch: pytest.MonkeyPatch) -> None:
    fn, params, x, want = classifier()
    monkeypatch.setenv("FLOWC_TIERS", "0")
    assert not CompileOptions.from_environment().tiers
    jitted = fc.jit(fn)
    np.testing.assert_allclose(jitted(params, x), want, rtol=1e-5, atol=1e-5)
    assert not jitted._tier_threads and builds == [[("blas", False), ("narrow", False)]]
    monkeypatch.delenv("FLOWC_TIERS")
    wide = fc.jit(lambda x, v: fc.relu(fc.matmul(x, v)))
    np.testing.assert_allclose(wide(x, params["v"]), np.maximum(x @ params["v"], 0), rtol=1e-5, atol=1e-5)
    assert not wide._tier_threads and builds[-1] == [("blas", False)]


def test_calls_from_threads_across_the_swap(builds: list) -> None:
    """Threads call while the optimized tier compiles and takes the quick one's place: every answer right."""
    fn, params, x, want = classifier()
    jitted = fc.jit(fn)
    errors: list[BaseException] = []

    def calls() -> None:
        try:
            for _ in range(200):
                np.testing.assert_allclose(jitted(params, x), want, rtol=1e-5, atol=1e-5)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=calls) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for_tiers(jitted)
    assert not errors, errors[0]
    assert len(builds) == 2 and jitted.compiles == 1
    np.testing.assert_allclose(jitted(params, x), want, rtol=1e-5, atol=1e-5)


def test_donated_updates_in_either_tier(builds: list) -> None:
    """A training step (the narrow x @ W and x^T @ dz, the update accumulated into W) donating its
    parameters gives numpy's values in the quick tier and after the optimized one took over."""
    rng = np.random.default_rng(1)
    x, y = rng.random((100, 64), dtype=np.float32), rng.integers(0, 10, 100).astype(np.int32)

    def loss_fn(params: dict, x: Any, y: Any) -> Any:
        logits = fc.matmul(x, params["W"]) + params["b"]
        return fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    @fc.jit(donate_argnums=0)
    def step(params: dict, x: Any, y: Any) -> Any:
        loss, grads = fc.value_and_grad(loss_fn)(params, x, y)
        return loss, {k: params[k] - 0.5 * grads[k] for k in params}

    def numpy_step(params: dict) -> tuple[float, dict]:
        logits = x @ params["W"] + params["b"]
        shifted = logits - logits.max(1, keepdims=True)
        p = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(100), y]))
        dz = p.copy()
        dz[np.arange(100), y] -= 1
        dz /= 100
        return loss, {"W": params["W"] - 0.5 * x.T @ dz, "b": params["b"] - 0.5 * dz.sum(0)}

    params = {"W": rng.standard_normal((64, 10)).astype(np.float32) * 0.01, "b": np.zeros(10, np.float32)}
    want_params = {k: v.copy() for k, v in params.items()}
    for call in range(6):
        if call == 1:
            wait_for_tiers(step)  # call 0 ran the quick tier; the rest run the optimized one
        loss, params = step(params, x, y)
        want_loss, want_params = numpy_step(want_params)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-4)
        for k in params:
            np.testing.assert_allclose(params[k], want_params[k], rtol=1e-4, atol=1e-6)
    assert [quick for kernels in builds for _, quick in kernels].count(True) >= 2  # both products were quick
    assert not any(quick for _, quick in builds[-1])


def test_quick_schedule_of_each_matmul_schedule() -> None:
    """Only narrow and split-k float products differ in the quick tier; an update stays accumulated."""
    from flowc.ir.parser import parse_module

    text = """func @main(%x: f32[100,64], %w: f32[64,10], %v: f32[64,64]) -> (f32[100,10], f32[100,64]) {
  %p = fusion %x, %w {kind = "matmul", partial_bytes = 65536, schedule = "split_k", tile = [2, 10, 16], \
tiling = "dot"} : f32[100,10] {
  ^bb0(%a: f32[100,64], %b: f32[64,10]):
    %m = matmul %a, %b {transpose_a = false, transpose_b = false} : f32[100,10]
    yield %m : f32[100,10]
  }
  %q = fusion %x, %v {kind = "matmul", schedule = "blas"} : f32[100,64] {
  ^bb0(%a: f32[100,64], %b: f32[64,64]):
    %m = matmul %a, %b {transpose_a = false, transpose_b = false} : f32[100,64]
    yield %m : f32[100,64]
  }
  return %p, %q : f32[100,10], f32[100,64]
}
"""
    module = parse_module(text)
    narrow, wide = [op for op in module.walk() if op.name == "fusion"]
    assert quick_schedule(narrow) == {"schedule": "blas", "quick": True}
    assert quick_schedule(wide) is None


def test_the_quick_tier_is_linked_in_process_as_ld_would(builds: list, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Any) -> None:
    """Note [the quick tier linked in process] in codegen/llvm/jit_link.py: the quick tier runs from memory that
    LLVM linked, no file; where that link fails, from a library that ld linked, with the very same answer."""
    from flowc.codegen.llvm import jit_link

    linked: list = []
    link = jit_link.link_in_process
    monkeypatch.setattr(jit_link, "link_in_process", lambda *args: linked.append(link(*args)) or linked[-1])
    fn, params, x, want = classifier()
    in_process = fc.jit(fn)
    got = in_process(params, x)
    wait_for_tiers(in_process)
    assert [type(library).__name__ for library in linked] == ["LinkedLibrary"]  # the quick tier's; not the other
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path / "by-ld"))  # nothing compiled yet
    monkeypatch.setattr(jit_link, "link_in_process", lambda *args: None)  # as where a symbol is missing
    by_ld = fc.jit(fn)
    np.testing.assert_array_equal(by_ld(params, x), got)  # one tier's code, bit for bit, however linked
    wait_for_tiers(by_ld)
    assert builds[-2:] == [[("blas", False), ("blas", True)], [("blas", False), ("narrow", False)]]


def test_a_quick_tier_from_the_disk_cache(builds: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """A process that finds the quick tier's object in the disk cache but not the optimized tier's library
    links that object instead of compiling it again; the optimized tier is compiled anew."""
    from flowc.codegen.llvm import compile as llvm_compile

    fn, params, x, want = classifier()
    first = fc.jit(fn)
    got = first(params, x)
    wait_for_tiers(first)
    libraries = [path for path in tmp_path.glob("*.so") if len(path.stem) == 64]  # a key's name: the built ones
    assert len(libraries) == 1 and len(list(tmp_path.glob("quick-*.o"))) == 1
    libraries[0].unlink()
    compiled: list[bool] = []
    compile_kernels = llvm_compile.compile_kernels

    def recorded(*args: Any, **kwargs: Any) -> Any:
        compiled.append(args[4] if len(args) > 4 else kwargs.get("quick_tier", False))
        return compile_kernels(*args, **kwargs)

    monkeypatch.setattr(llvm_compile, "compile_kernels", recorded)
    second = fc.jit(fn)
    np.testing.assert_array_equal(second(params, x), got)
    wait_for_tiers(second)
    assert compiled == [False]  # the optimized tier only
    np.testing.assert_allclose(second(params, x), want, rtol=1e-5, atol=1e-5)


def test_quick_tiers_linked_from_threads_at_once(builds: list) -> None:
    """Threads compile functions of their own at once: their quick tiers are linked in process while others'
    optimized tiers compile; every answer right, in either tier."""
    fn, params, x, want = classifier()
    errors: list[BaseException] = []

    def compile_and_call(rows: int) -> None:
        try:
            jitted = fc.jit(fn)
            for _ in range(20):
                np.testing.assert_allclose(jitted(params, x[:rows]), want[:rows], rtol=1e-5, atol=1e-5)
            wait_for_tiers(jitted)
            np.testing.assert_allclose(jitted(params, x[:rows]), want[:rows], rtol=1e-5, atol=1e-5)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=compile_and_call, args=(rows,)) for rows in (50, 49, 31, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert sum(quick for kernels in builds for _, quick in kernels) == 4  # a quick tier each


def test_the_profile_of_a_quick_tier(builds: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """FLOWC_PROFILE=1: the quick tier, linked in process, has its kernels' table too."""
    monkeypatch.setenv("FLOWC_PROFILE", "1")
    fn, params, x, want = classifier()
    jitted = fc.jit(fn)
    np.testing.assert_allclose(jitted(params, x), want, rtol=1e-5, atol=1e-5)
    (compiled,) = jitted._cache.values()
    rows = compiled.executable.profile()
    wait_for_tiers(jitted)
    assert [row["kind"] for row in rows] == ["matmul", "matmul"] and all(row["calls"] == 1 for row in rows)


def test_an_object_this_process_cannot_link_is_refused_quietly(capfd: pytest.CaptureFixture) -> None:
    """link_in_process says None for an object that calls a symbol nowhere in this process (CpuTarget then
    links it by ld), and LLVM prints nothing about it."""
    import llvmlite.binding as llvm
    from flowc.codegen.llvm.compile import quick_target_machine
    from flowc.codegen.llvm.jit_link import link_in_process

    machine = quick_target_machine()
    module = llvm.parse_assembly('declare void @"flowc_nowhere"()\n'
                                 'define void @"flowc_main"() {\n  call void @"flowc_nowhere"()\n  ret void\n}\n')
    module.triple = machine.triple
    assert link_in_process([machine.emit_object(module)], ["flowc_main"], calls_blas=False) is None
    assert "flowc_nowhere" not in capfd.readouterr().err
