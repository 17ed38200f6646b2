"""where(cond) and boolean_mask on the gpu target (Note [data-dependent sizes] in compiler/data_sized_run.py):
where_indices' Triton kernel (codegen/triton/kernels/gathers.py) in Triton's interpreter against the
reference, bit for bit, and built to PTX for sm_90; whole runs cut at the count, against the reference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402
from triton_single_harness import assert_same, build, op_text, run_gpu  # noqa: E402

DTYPES = ["float32", "float64", "int32", "int64", "bool"]


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


def condition(shape: tuple, dtype: str, rng: np.random.Generator, truth: float = 0.5) -> np.ndarray:
    flags = rng.random(shape) < truth
    return flags if dtype == "bool" else (flags * rng.integers(1, 9, shape)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 3, 4), (0, 3), (), (1500,)])
def test_where_indices_kernel(dtype, shape, rng, folder):
    """(1500,): more than one block of the walk, the running count carried from one to the next."""
    text = op_text("where_indices", [(dtype, (None,) * len(shape)), ("int64", (None, 0))])
    for truth in (0.5, 0.0, 1.0):
        cond = condition(shape, dtype, rng, truth)
        assert_same(text, [cond, np.empty((np.count_nonzero(cond), 0), np.int64)], folder)


def test_where_indices_kernel_flags_a_count_that_disagrees(folder):
    text = op_text("where_indices", [("bool", (None,)), ("int64", (None, 0))])
    cond = np.array([True, False, True, True])
    for rows in (2, 4):
        assert [d for _, d in run_gpu(text, [cond, np.empty((rows, 0), np.int64)], folder).failures] == [3]


def test_where_indices_builds_to_ptx_for_an_h100(folder):
    built = build(op_text("where_indices", [("float32", (None, 3)), ("int64", (None, 0))]), folder)
    for ptx in built.ptx() + built.ptx_of_unit_sizes():
        assert ".target sm_90" in ptx


def test_boolean_mask_and_its_gradient_on_the_gpu_target_match_the_reference(rng):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        keep = fc.reduce_sum(x, 1) > 0
        masked = fc.boolean_mask(x, keep)
        (grad,) = fc.gradients(fc.reduce_sum(masked * masked), [x])
        outs = [masked, fc.where(keep), fc.where(x > 0), grad]
    for rows in (5, 0, 9):
        value = rng.standard_normal((rows, 3)).astype(np.float32)
        with fc.Session(target="gpu", graph=g) as sess:
            got = sess.run(outs, {x: value})
        with fc.Session(target="reference", graph=g) as sess:
            want = sess.run(outs, {x: value})
        for a, b in zip(got, want):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_inside_a_while_loop_the_gpu_target_runs_it_from_the_host():
    """The loop holds a data_dim: driven from the host, its body cut at the count (Note [conds driven from
    the host] in compiler/host_driven.py)."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None])
        _, total = fc.while_loop(lambda i, t: i < 2, lambda i, t: (i + 1, t + fc.reduce_sum(fc.boolean_mask(x, x > 0))),
                                 [fc.constant(0), fc.constant(0.0)])
    value = np.array([1.0, -2.0, 3.0], np.float32)
    with fc.Session(target="gpu", graph=g) as sess:
        np.testing.assert_allclose(sess.run(total, {x: value}), 8.0)
        np.testing.assert_allclose(sess.run(total, {x: -value}), 4.0)
