"""Issue 19's TF1 forms on the gpu target: top_k of a k that is data (a data_dim operand) in Triton's
interpreter against the reference, bit for bit, and built to PTX for sm_90; whole runs of range, linspace
and top_k sized by run-time values, gather with batch_dims and einsum with '...', against the reference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402
from flowc.errors import FlowcError  # noqa: E402
from triton_single_harness import assert_same, build, op_text  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("k", [0, 1, 4, 6])
def test_top_k_kernel_of_a_k_that_is_data(dtype, k, rng, folder):
    text = op_text("top_k", [(dtype, (None, None)), ("int64", (None, 0))], k=-1)
    for rows in (5, 1, 0):
        x = rng.integers(-3, 3, (rows, 6)).astype(dtype)  # many ties
        assert_same(text, [x, np.empty((k, 0), np.int64)], folder)


def test_top_k_of_a_k_that_is_data_builds_to_ptx_for_an_h100(folder):
    built = build(op_text("top_k", [("float32", (None, None)), ("int64", (None, 0))], k=-1), folder)
    for ptx in built.ptx() + built.ptx_of_unit_sizes():
        assert ".target sm_90" in ptx


def test_issue_19_forms_on_the_gpu_target_match_the_reference(rng):
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, [])
        s = fc.placeholder(fc.float32, [])
        x = fc.placeholder(fc.float32, [None, 6])
        i = fc.placeholder(fc.int32, [None, 2])
        a = fc.placeholder(fc.float32, [None, 2, 3])
        b = fc.placeholder(fc.float32, [None, 3, 4])
        top = fc.nn.top_k(x, n)
        outs = [fc.range(n) * 2, fc.range(s, 4.0, 0.5), fc.linspace(s, 1.0, n + 1), top.values, top.indices,
                fc.gather(x, i, axis=1, batch_dims=1), fc.einsum("...ij,...jk->...ik", a, b)]
        (grad,) = fc.gradients(fc.reduce_sum(top.values * top.values), [x])
        outs.append(grad)
    for count, rows in ((4, 3), (0, 1), (6, 0)):
        feeds = {n: count, s: -0.25, x: rng.standard_normal((rows, 6)).astype(np.float32),
                 i: rng.integers(0, 6, (rows, 2)).astype(np.int32),
                 a: rng.standard_normal((rows, 2, 3)).astype(np.float32),
                 b: rng.standard_normal((rows, 3, 4)).astype(np.float32)}
        with fc.Session(target="gpu", graph=g) as sess:
            got = sess.run(outs, feeds)
        with fc.Session(target="reference", graph=g) as sess:
            want = sess.run(outs, feeds)
        for one, other in zip(got, want):
            assert one.shape == other.shape and one.dtype == other.dtype
            np.testing.assert_allclose(one, other, rtol=1e-5, atol=1e-6)


def test_run_time_checks_stop_a_gpu_run_naming_the_op():
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 6])
        k = fc.placeholder(fc.int32, [])
        values = fc.nn.top_k(x, k).values
        delta = fc.placeholder(fc.int32, [])
        counted = fc.range(0, 5, delta)
    with fc.Session(target="gpu", graph=g) as sess:
        with pytest.raises(FlowcError, match=r"test_gpu_tf1_gaps.py:\d+.*top_k: k must be >= 0"):
            sess.run(values, {x: np.ones((2, 6), np.float32), k: 7})
        with pytest.raises(FlowcError, match=r"test_gpu_tf1_gaps.py:\d+.*range: delta must not be 0"):
            sess.run(counted, {delta: 0})
