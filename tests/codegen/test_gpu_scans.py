"""The GPU's line ops (codegen/triton/kernels/scans.py): cumsum and cumprod on every axis, exclusive
and reversed, bit for bit with the reference (a serial walk per line, as numpy's); top_k with ties
and NaN in TensorFlow's order; in Triton's interpreter, and built to PTX for sm_90."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from triton_single_harness import assert_same, build, op_text  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


def values(shape, dtype, rng):
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(-5, 6, shape).astype(dtype)


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive, reverse", [(False, False), (True, False), (False, True), (True, True)])
def test_scans_on_every_axis(name, dtype, axis, exclusive, reverse, rng, folder):
    text = op_text(name, [(dtype, (None, 3, None))], axis=axis, exclusive=exclusive, reverse=reverse)
    for shape in [(4, 3, 5), (1, 3, 1), (0, 3, 2), (2, 3, 0)]:
        assert_same(text, [values(shape, dtype, rng)], folder)


def test_cumsum_keeps_a_leading_negative_zero_and_wraps_integers(folder):
    text = op_text("cumsum", [("float32", (None,))], axis=0)
    assert_same(text, [np.array([-0.0, -0.0, 1.0, np.nan], np.float32)], folder)
    text = op_text("cumsum", [("int32", (None,))], axis=0)
    assert_same(text, [np.array([2**31 - 1, 1, 5], np.int32)], folder)


def test_cumsum_of_many_lines(rng, folder):
    text = op_text("cumsum", [("float32", (None, 7))], axis=1)
    assert_same(text, [values((300, 7), "float32", rng)], folder)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
@pytest.mark.parametrize("k", [0, 1, 3, 6])
def test_top_k_of_rows_with_ties(dtype, k, rng, folder):
    text = op_text("top_k", [(dtype, (None, None))], k=k)
    for rows in (5, 1, 0):
        x = rng.integers(-3, 3, (rows, 6)).astype(dtype)  # many ties
        assert_same(text, [x], folder)


def test_top_k_puts_nan_first(folder):
    text = op_text("top_k", [("float64", (2, 5))], k=4)
    x = np.array([[1.0, np.nan, 3.0, np.nan, -np.inf], [0.0, -0.0, 2.0, np.inf, 2.0]])
    assert_same(text, [x], folder)


def test_top_k_of_a_vector_and_of_rank_three(rng, folder):
    assert_same(op_text("top_k", [("float32", (None,))], k=2), [values((9,), "float32", rng)], folder)
    assert_same(op_text("top_k", [("int64", (2, None, 4))], k=4), [values((2, 3, 4), "int64", rng)], folder)


@pytest.mark.parametrize("text", [
    op_text("cumsum", [("float32", (None, 3, None))], axis=1, exclusive=True, reverse=False),
    op_text("cumprod", [("int64", (None, None))], axis=-1, exclusive=False, reverse=True),
    op_text("top_k", [("float32", (None, None))], k=3),
    op_text("top_k", [("int32", (None, 7))], k=2),
], ids=["cumsum", "cumprod", "top_k-f32", "top_k-i32"])
def test_builds_to_ptx_for_an_h100(text, folder):
    built = build(text, folder)
    for ptx in built.ptx() + built.ptx_of_unit_sizes():
        assert ".target sm_90" in ptx
