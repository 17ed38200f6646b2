"""The GPU's single kernels that read elements picked by indices (codegen/triton/kernels/gathers.py):
gather, gather_nd, read_row, write_row and check, in Triton's interpreter against the reference, and
their error flags (Note [error flags] in codegen/triton/kernel.py) where an index is out of range or a
check is false, slices empty or not (Note [indices of empty slices]); built to PTX for sm_90."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from triton_single_harness import assert_same, build, op_text, run_gpu  # noqa: E402

DTYPES = ["float32", "float64", "int32", "int64", "bool"]


def values(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return (rng.standard_normal(shape) * 10).astype(dtype)


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_gather_rows_of_a_table(dtype, index_dtype, rng, folder):
    text = op_text("gather", [(dtype, (None, None)), (index_dtype, (None,))], axis=0)
    for rows, columns, picks in [(7, 5, [6, 0, 3, 3]), (1, 300, [0, 0]), (4, 1, [3]), (3, 0, [2, 1]), (5, 3, [])]:
        assert_same(text, [values((rows, columns), dtype, rng), np.array(picks, index_dtype)], folder)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_gather_on_inner_axes_with_indices_of_rank_two(axis, rng, folder):
    text = op_text("gather", [("float64", (None, 4, None)), ("int64", (2, None))], axis=axis)
    params = values((3, 4, 5), "float64", rng)
    size = params.shape[axis]
    for picks in (3, 1, 0):
        assert_same(text, [params, rng.integers(0, size, (2, picks))], folder)


def test_gather_of_many_positions(rng, folder):
    """More positions than one program takes: 1024 / 64 per program, with a slice length unknown."""
    text = op_text("gather", [("float32", (None, None)), ("int32", (None,))], axis=0)
    assert_same(text, [values((50, 3), "float32", rng), rng.integers(0, 50, 40).astype(np.int32)], folder)


@pytest.mark.parametrize("shape, picks", [((5, 3), [1, 5, 2]), ((5, 3), [-1]), ((5, 0), [0, 7]), ((0, 4), [0])])
def test_gather_flags_an_index_out_of_range_even_of_empty_slices(shape, picks, folder):
    text = op_text("gather", [("float32", (None, None)), ("int64", (None,))], axis=0)
    bad = next(p for p in picks if not 0 <= p < shape[0])
    run = run_gpu(text, [np.ones(shape, np.float32), np.array(picks)], folder)
    assert [detail for _, detail in run.failures] == [bad]


def test_gather_along_an_axis_after_empty_dims_checks_its_indices(folder):
    """params [0, 5], axis 1: no position to copy, and index 7 is still an error."""
    text = op_text("gather", [("float32", (None, 5)), ("int32", (None,))], axis=1)
    run = run_gpu(text, [np.ones((0, 5), np.float32), np.array([1, 7, 2], np.int32)], folder)
    assert [detail for _, detail in run.failures] == [7]
    assert_same(text, [np.ones((0, 5), np.float32), np.array([1, 4], np.int32)], folder)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_nd_picks_elements_and_slices(dtype, rng, folder):
    params = values((4, 3, 5), dtype, rng)
    for depth in (1, 2, 3):
        text = op_text("gather_nd", [(dtype, (None, 3, None)), ("int32", (None, depth))])
        for count in (6, 1, 0):
            indices = np.stack([rng.integers(0, params.shape[k], count) for k in range(depth)], axis=-1)
            assert_same(text, [params, indices.astype(np.int32).reshape(count, depth)], folder)


def test_gather_nd_of_empty_index_vectors_picks_everything(rng, folder):
    text = op_text("gather_nd", [("float32", (2, 3)), ("int64", (None, 0))])
    assert_same(text, [values((2, 3), "float32", rng), np.zeros((4, 0), np.int64)], folder)


@pytest.mark.parametrize("params_shape, indices, bad", [
    ((4, 3), [[1, 2], [4, 0]], 4), ((4, 3), [[0, -3]], -3), ((4, 0), [[1], [9]], 9)])
def test_gather_nd_flags_an_index_out_of_range(params_shape, indices, bad, folder):
    depth = len(indices[0])
    text = op_text("gather_nd", [("float64", (None, None)), ("int64", (None, depth))])
    run = run_gpu(text, [np.ones(params_shape), np.array(indices)], folder)
    assert [detail for _, detail in run.failures] == [bad]


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_and_write_rows(dtype, rng, folder):
    read = op_text("read_row", [(dtype, (None, 3, None)), ("int32", ())])
    write = op_text("write_row", [(dtype, (None, 3, None)), ("int64", ()), (dtype, (3, None))])
    for rows, last in [(4, 5), (1, 1), (3, 0)]:
        buffer = values((rows, 3, last), dtype, rng)
        assert_same(read, [buffer, np.array(rows - 1, np.int32)], folder)
        assert_same(write, [buffer, np.array(rows // 2), values((3, last), dtype, rng)], folder)


@pytest.mark.parametrize("rows, index", [(4, 4), (4, -1), (0, 0), (3, 100)])
def test_row_ops_flag_a_row_out_of_range(rows, index, folder):
    read = op_text("read_row", [("float32", (None, 2)), ("int64", ())])
    write = op_text("write_row", [("float32", (None, 2)), ("int64", ()), ("float32", (2,))])
    buffer = np.ones((rows, 2), np.float32)
    assert [d for _, d in run_gpu(read, [buffer, np.array(index)], folder).failures] == [index]
    run = run_gpu(write, [buffer, np.array(index), np.zeros(2, np.float32)], folder)
    assert [d for _, d in run.failures] == [index]
    np.testing.assert_array_equal(run.results[0], buffer)  # nothing written where the row is bad


def test_check_copies_its_condition_and_flags_a_false_element(folder):
    text = op_text("check", [("bool", (None, 3))], message="x must be positive")
    condition = np.ones((4, 3), bool)
    assert_same(text, [condition], folder)
    assert_same(text, [condition[:0]], folder)
    condition[2, 1] = False
    run = run_gpu(text, [condition], folder)
    assert [d for _, d in run.failures] == [7]  # row-major element 2 * 3 + 1


@pytest.mark.parametrize("text", [
    op_text("gather", [("float32", (None, 5)), ("int32", (None,))], axis=1),
    op_text("gather", [("bool", (None, None)), ("int64", (None,))], axis=0),
    op_text("gather_nd", [("float64", (None, 3, None)), ("int32", (None, 2))]),
    op_text("read_row", [("int64", (None, 3, None)), ("int32", ())]),
    op_text("write_row", [("float32", (None, 3)), ("int64", ()), ("float32", (3,))]),
    op_text("check", [("bool", (None, 3))], message="m"),
], ids=["gather-axis-1", "gather-bool", "gather_nd", "read_row", "write_row", "check"])
def test_builds_to_ptx_for_an_h100(text, folder):
    built = build(text, folder)
    for ptx in built.ptx() + built.ptx_of_unit_sizes():
        assert ".target sm_90" in ptx


def test_check_of_a_scalar_condition(folder):
    text = op_text("check", [("bool", ())], message="m")
    assert_same(text, [np.array(True)], folder)
    assert [d for _, d in run_gpu(text, [np.array(False)], folder).failures] == [0]


def test_gather_with_a_scalar_index_drops_the_axis(rng, folder):
    text = op_text("gather", [("int64", (None, 4, None)), ("int32", ())], axis=-2)
    params = values((3, 4, 2), "int64", rng)
    for index in (0, 3):
        assert_same(text, [params, np.array(index, np.int32)], folder)
