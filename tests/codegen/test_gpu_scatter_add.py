"""scatter_add's gpu kernel (codegen/triton/kernels/scatters.py) in Triton's interpreter against the
reference: atomic adds into a copy of base (Note [scatter_add with atomics]), duplicate indices, no
indices, size-0 and size-1 dims, unknown dims, every axis, both index dtypes; its error flags where an
index is out of range, slices empty or not; built to PTX for sm_90."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from triton_single_harness import build, op_text, reference, run_gpu  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


def arguments(rng, shape, picks, axis, dtype, index_dtype):
    axis %= len(shape)
    scale = 1 if dtype.startswith("int") else 0.37
    base = (rng.integers(-9, 9, shape) * scale).astype(dtype)
    indices = rng.integers(0, max(shape[axis], 1), picks).astype(index_dtype)
    updates = (rng.integers(-9, 9, shape[:axis] + picks + shape[axis + 1:]) * scale).astype(dtype)
    return [base, indices, updates]


def assert_close(text, args, folder):
    """Sums of duplicates may run in another order than the reference's: floats to a few ulp."""
    run = run_gpu(text, args, folder)
    assert not run.failures, run.failures
    (got,), (want,) = run.results, reference(text, args)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol={np.float16: 4e-3, np.float32: 1e-6}.get(got.dtype.type, 1e-12))


CASES = [((7, 5), (12,), 0), ((7, 5), (3, 4), 1), ((2, 6, 3), (9,), 1), ((2, 6, 3), (4,), -1), ((1, 1), (5,), 0),
         ((4, 1), (), 0), ((3, 0), (4,), 0), ((0, 3), (2,), 1), ((5, 3), (0,), 0), ((3, 300), (40,), 0)]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "float16"])
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
@pytest.mark.parametrize("shape, picks, axis", CASES)
def test_scatter_add_matches_the_reference(dtype, index_dtype, shape, picks, axis, rng, folder):
    args = arguments(rng, shape, picks, axis, dtype, index_dtype)
    text = op_text("scatter_add", [(dtype, a.shape) for a in args[:1]] + [(index_dtype, picks)] +
                   [(dtype, args[2].shape)], axis=axis)
    assert_close(text, args, folder)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unknown_dims_fed_several_sizes(axis, rng, folder):
    text = op_text("scatter_add", [("float64", (None,) * 3), ("int64", (None,)), ("float64", (None,) * 3)], axis=axis)
    for shape, picks in [((6, 4, 3), (5,)), ((1, 2, 1), (3,)), ((4, 2, 33), (17,)), ((2, 3, 4), (0,))]:
        assert_close(text, arguments(rng, shape, picks, axis, "float64", "int64"), folder)


@pytest.mark.parametrize("shape, picks, axis", [((5, 3), [1, 5, 2], 0), ((5, 3), [-1], 1), ((5, 0), [0, 7], 0),
                                                ((0, 4), [9], 1)])
def test_an_index_out_of_range_is_flagged_even_into_empty_slices(shape, picks, axis, folder):
    indices = np.array(picks, np.int64)
    updates = np.ones(shape[:axis] + indices.shape + shape[axis + 1:], np.float32)
    text = op_text("scatter_add", [("float32", (None, None)), ("int64", (None,)), ("float32", (None, None))],
                   axis=axis)
    bad = next(p for p in picks if not 0 <= p < shape[axis])
    run = run_gpu(text, [np.zeros(shape, np.float32), indices, updates], folder)
    assert [detail for _, detail in run.failures] == [bad]


def test_scatter_add_builds_to_ptx(folder):
    text = op_text("scatter_add", [("float32", (None, 128)), ("int32", (None,)), ("float32", (None, 128))])
    assert all(".entry" in ptx for ptx in build(text, folder).ptx())
