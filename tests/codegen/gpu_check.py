"""The standard check of the gpu target: a graph runs on target "gpu" (Triton's interpreter on CPU torch
tensors, or a GPU) and matches target "reference", and every kernel of that compile builds to PTX for
sm_90 (an H100), so a kernel that would not build for the GPU fails here, on a machine without one.

    def test_relu_of_sum():
        def build():
            x = fc.placeholder(fc.float32, [None, 3], name="x")
            return fc.nn.relu(x + 1.0)
        assert_gpu_matches(build, {"x": np.ones((2, 3), np.float32)})

`build` is called inside a fresh graph and returns the fetches (a tensor, an op or a list of them);
feeds are keyed by placeholder name. Variables are initialized first; `runs` repeats the run (a
training step), comparing every run.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import flowc as fc
from flowc.codegen.triton.kernel import slot_dtypes

_BUILT: set[tuple[str, str]] = set()  # (module key, kernel) already built to PTX in this process


def assert_gpu_matches(build: Callable[[], Any], feeds: dict[str, np.ndarray] | None = None, rtol: float = 1e-6,
                       atol: float = 0.0, runs: int = 1, ptx: bool = True) -> list:
    """Run `build`'s graph on gpu and reference with `feeds`, `runs` times, assert the fetched values are
    equal (same dtype and shape, values within rtol/atol), build every gpu kernel to PTX; returns the
    gpu results of the last run."""
    graph = fc.Graph()
    with graph.as_default():
        fetches = build()
        init = fc.global_variables_initializer() if fc.global_variables() else None
    sessions = [fc.Session(target=name, graph=graph) for name in ("gpu", "reference")]
    try:
        for session in sessions:
            if init is not None:
                session.run(init)
        for _ in range(runs):
            gpu, reference = (session.run(fetches, dict(feeds or {})) for session in sessions)
            _assert_same(gpu, reference, rtol, atol)
        if ptx:
            build_ptx(sessions[0])
        return gpu
    finally:
        for session in sessions:
            session.close()


def build_ptx(session: fc.Session) -> int:
    """Build every kernel the gpu Session compiled to PTX for sm_90; returns how many were built."""
    built = 0
    for compiled in session._cache.values():
        executable = compiled.executable
        module = executable.kernels
        for op, name in executable.names.items():
            if (module.key, name) in _BUILT:
                continue
            text = module.ptx(name, slot_dtypes(op))
            assert ".target sm_90" in text and f".entry {name}" in text, name
            _BUILT.add((module.key, name))
            built += 1
    return built


def _assert_same(gpu: Any, reference: Any, rtol: float, atol: float) -> None:
    if isinstance(reference, (list, tuple)):
        assert isinstance(gpu, type(reference)) and len(gpu) == len(reference)
        for g, r in zip(gpu, reference):
            _assert_same(g, r, rtol, atol)
        return
    if reference is None:
        assert gpu is None
        return
    gpu, reference = np.asarray(gpu), np.asarray(reference)
    assert gpu.dtype == reference.dtype, (gpu.dtype, reference.dtype)
    assert gpu.shape == reference.shape, (gpu.shape, reference.shape)
    if reference.dtype.kind in "fc":
        np.testing.assert_allclose(gpu, reference, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(gpu, reference)
