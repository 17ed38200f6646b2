"""Every tuning candidate of a kernel (Note [tuning candidates] in passes/schedule_gpu.py) computes what the
heuristic's configuration does: each is launched in Triton's interpreter, chosen by a tuner whose timer
says it is the fastest, and matches the reference target; and each builds to PTX for sm_90 (an H100)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402
from flowc.codegen.triton.autotune import Tuner, configurations, describe  # noqa: E402
from flowc.codegen.triton.kernel import TritonModule, slot_dtypes  # noqa: E402
from flowc.driver import compile_lowered  # noqa: E402
from flowc.lowering import lower  # noqa: E402
from flowc.options import CompileOptions  # noqa: E402


class PickTimer:
    """A fake timer under which configuration `index` (in Tuner's order: the heuristic's first) is the
    fastest; it runs nothing."""

    def __init__(self, index: int):
        self.index, self.calls = index, 0

    def __call__(self, run: Callable[[], None]) -> float:
        self.calls += 1
        return 0.5 if self.calls - 1 == self.index else 1.0


# Each builds one graph of one tuned kernel: (its placeholders, their values' shapes, the fetch).
def matmul_bias_relu():
    x, w = fc.placeholder(fc.float32, [None, 20]), fc.placeholder(fc.float32, [20, 10])
    b = fc.placeholder(fc.float32, [10])
    return [x, w, b], [(37, 20), (20, 10), (10,)], fc.nn.relu(fc.matmul(x, w) + b)


def matmul_float16():  # tensor-core tiles of 128 x 128 x 32 on 8 warps, and their neighbours
    a, b = fc.placeholder(fc.float16, [None, None]), fc.placeholder(fc.float16, [None, None])
    return [a, b], [(40, 24), (24, 150)], fc.matmul(a, b)


def matmul_float64():
    a, b = fc.placeholder(fc.float64, [None, None]), fc.placeholder(fc.float64, [None, None])
    return [a, b], [(33, 40), (40, 17)], fc.matmul(a, b)


def matmul_int32():
    a, b = fc.placeholder(fc.int32, [None, 9]), fc.placeholder(fc.int32, [9, 5])
    return [a, b], [(21, 9), (9, 5)], fc.matmul(a, b)


def softmax_rows():
    x = fc.placeholder(fc.float32, [None, 10])
    return [x], [(37, 10)], fc.nn.softmax(x)


def layer_norm_rows():
    x = fc.placeholder(fc.float32, [None, 300])
    centered = x - fc.reduce_mean(x, axis=-1, keepdims=True)
    variance = fc.reduce_mean(fc.square(centered), axis=-1, keepdims=True)
    return [x], [(5, 300)], centered * fc.rsqrt(variance + 1e-5)


def walked_row_sums():  # rows of unknown length: walked in blocks, whose width is a candidate's too
    x = fc.placeholder(fc.float32, [None, None])
    return [x], [(3, 2500)], fc.reduce_sum(x, axis=1)


def column_sums():  # 41 reduced rows, walked 32 at a time; a candidate of 64 keeps them: its own function
    x = fc.placeholder(fc.float32, [41, 300])
    return [x], [(41, 300)], fc.reduce_sum(x, axis=0)


BUILDS = [matmul_bias_relu, matmul_float16, matmul_float64, matmul_int32, softmax_rows, layer_norm_rows,
          walked_row_sums, column_sums]


def compiled(build, target: str, folder: str, rng: np.random.Generator):
    """The executable of `build`'s graph on `target`, and arguments for it."""
    graph = fc.Graph()
    with graph.as_default():
        placeholders, shapes, fetch = build()
    lowered = lower(graph, [fetch], [], placeholders)
    executable = compile_lowered(lowered, target, CompileOptions(verify=True, cache_dir=folder))
    dtypes = [p.dtype.np for p in placeholders]
    arguments = [(rng.integers(-9, 9, shape) if np.dtype(dtype).kind == "i" else rng.standard_normal(shape))
                 .astype(dtype) for shape, dtype in zip(shapes, dtypes)]
    return executable, arguments


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("autotune"))


@pytest.mark.parametrize("build", BUILDS, ids=lambda b: b.__name__)
def test_every_candidate_matches_the_reference_and_builds_to_ptx(build, folder: str, rng) -> None:
    executable, arguments = compiled(build, "gpu", folder, rng)
    (want,) = compiled(build, "reference", folder, rng)[0](arguments)
    module: TritonModule = executable.kernels
    assert module.tuner is None  # the interpreter: nothing is timed, the heuristic's configuration runs
    tuned = [(op, name) for op, name in executable.names.items() if module.kernels[name].variants]
    assert len(tuned) == 1, tuned
    op, name = tuned[0]
    options = configurations(module.kernels[name])
    assert len(options) >= 3  # the heuristic's and at least two candidates
    if build is column_sums:
        assert any(variant.source for variant in module.kernels[name].variants)
    for index in range(len(options)):
        module.tuner = Tuner(f"fake GPU {index}", folder, PickTimer(index))
        (got,) = executable(arguments)
        assert module.configuration(name) == f"{describe(options[index])} (tuned: {index} of {len(options)}, " \
                                             "0 the heuristic's)"
        if want.dtype.kind == "f":
            tolerance = 2e-2 if want.dtype == np.float16 else 2e-5
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
        else:
            np.testing.assert_array_equal(got, want)
        assert ".target sm_90" in module.ptx(name, slot_dtypes(op), variant=index)
    module.tuner = None
