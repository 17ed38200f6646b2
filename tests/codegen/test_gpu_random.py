"""The GPU's random ops (codegen/triton/kernels/random.py): the bits of Note [random streams]
(ir/ops/philox.py), in Triton's interpreter against the reference bit for bit, for each dtype,
steps across the 32-bit boundary and negative, seeds of 64 bits, element counts that are not a
multiple of the words per block; built to PTX for sm_90."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from triton_single_harness import assert_same, build, op_text  # noqa: E402

from flowc.ir import as_dtype  # noqa: E402

STEPS = [0, 1, 2**32 + 5, -3]


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3, 7), (1,), (0, 4), (), (1100,)])
def test_random_uniform_matches_the_reference_bit_for_bit(dtype, shape, folder):
    text = op_text("random_uniform", [("int64", ())], shape=shape, dtype=as_dtype(dtype), seed=2**40 + 77,
                   minval=-1.5, maxval=4.0)
    for step in STEPS:
        assert_same(text, [np.array(step, np.int64)], folder)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(5, 3), (1,), (0,), ()])
def test_random_normal_matches_the_reference_bit_for_bit(dtype, shape, folder):
    text = op_text("random_normal", [("int64", ())], shape=shape, dtype=as_dtype(dtype), seed=12345,
                   mean=0.5, stddev=2.0)
    for step in STEPS:
        assert_same(text, [np.array(step, np.int64)], folder)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("like", ["bool", "int32"])
def test_random_uniform_like_of_unknown_dims(dtype, like, folder):
    text = op_text("random_uniform_like", [("int64", ()), (like, (None, None))], dtype=as_dtype(dtype),
                   seed=-9, minval=0.0, maxval=1.0)
    for shape in [(3, 5), (7, 2), (0, 3), (1, 1)]:
        assert_same(text, [np.array(11, np.int64), np.zeros(shape, like)], folder)


def test_draws_change_with_the_step(folder):
    from triton_single_harness import run_gpu
    text = op_text("random_uniform", [("int64", ())], shape=(64,), dtype=as_dtype("float32"), seed=1,
                   minval=0.0, maxval=1.0)
    first, second = (run_gpu(text, [np.array(s, np.int64)], folder).results[0] for s in (1, 2))
    assert not np.array_equal(first, second) and len(set(first.tolist())) == 64


@pytest.mark.parametrize("text", [
    op_text("random_uniform", [("int64", ())], shape=(3, 7), dtype=as_dtype("float32"), seed=5, minval=0.0,
            maxval=1.0),
    op_text("random_normal", [("int64", ())], shape=(9,), dtype=as_dtype("float64"), seed=5, mean=0.0, stddev=1.0),
    op_text("random_uniform_like", [("int64", ()), ("float32", (None, 4))], dtype=as_dtype("float64"), seed=5,
            minval=0.0, maxval=1.0),
], ids=["uniform-f32", "normal-f64", "uniform-like-f64"])
def test_builds_to_ptx_for_an_h100(text, folder):
    built = build(text, folder)
    for ptx in built.ptx() + built.ptx_of_unit_sizes():
        assert ".target sm_90" in ptx
