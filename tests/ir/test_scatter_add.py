"""scatter_add's type rule and numpy meaning (ir/ops/indexing.py): the adjoint of gather along an axis."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_ops import infer, raises, run

from flowc.ir.errors import FlowcTypeError, IndexOutOfRange


def added_by_loops(base: np.ndarray, indices: np.ndarray, updates: np.ndarray, axis: int) -> np.ndarray:
    """The meaning written out: every index position's slice added, one at a time."""
    axis %= base.ndim
    result = base.copy()
    for p in itertools.product(*map(range, base.shape[:axis])):
        for i in itertools.product(*map(range, indices.shape)):
            result[(*p, indices[i])] += updates[(*p, *i)]
    return result


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "float16"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_add_sums_duplicates_along_the_axis(dtype: str, axis: int, rng: np.random.Generator) -> None:
    base = rng.integers(-5, 5, (3, 4, 2)).astype(dtype)
    size = base.shape[axis]
    for shape in [(5,), (2, 3), (), (0,)]:
        indices = rng.integers(0, size, shape)
        updates_shape = base.shape[:axis % 3] + shape + base.shape[axis % 3 + 1:]
        updates = rng.integers(-5, 5, updates_shape).astype(dtype)
        got = run("scatter_add", base, indices.astype(np.int32), updates, axis=axis)
        np.testing.assert_array_equal(got, added_by_loops(base, indices, updates, axis))
        assert got.dtype == base.dtype


def test_scatter_add_of_the_same_index_twice_adds_both() -> None:
    got = run("scatter_add", np.zeros((3, 2)), np.array([1, 1, 1]), np.ones((3, 2)))
    np.testing.assert_array_equal(got, [[0, 0], [3, 3], [0, 0]])


def test_scatter_add_type_rule() -> None:
    assert infer("scatter_add", "f32[?,3]", "i32[5]", "f32[5,3]") == "f32[?,3]"
    assert infer("scatter_add", "f64[2,?,4]", "i64[?,2]", "f64[2,?,2,4]", axis=1) == "f64[2,?,4]"
    assert infer("scatter_add", "i32[4]", "i32[]", "i32[]") == "i32[4]"
    assert infer("scatter_add", "f32[?,?]", "i32[?]", "f32[?,?]", axis=-1) == "f32[?,?]"


def test_scatter_add_refuses_what_does_not_fit() -> None:
    with raises(FlowcTypeError, "scatter_add", "updates must be f32[5,3]", "got f32[5,4]"):
        infer("scatter_add", "f32[4,3]", "i32[5]", "f32[5,4]")
    with raises(FlowcTypeError, "scatter_add", "updates must be f32[4,2]", "got f64[4,2]"):
        infer("scatter_add", "f32[4,3]", "i32[2]", "f64[4,2]", axis=1)
    with raises(FlowcTypeError, "scatter_add", "updates must be f32[2,3]", "got f32[2]"):
        infer("scatter_add", "f32[4,3]", "i32[2]", "f32[2]")
    with raises(FlowcTypeError, "scatter_add", "indices", "int32 or int64", "f32[2]"):
        infer("scatter_add", "f32[4,3]", "f32[2]", "f32[2,3]")
    with raises(FlowcTypeError, "scatter_add", "base must be one of", "bool"):
        infer("scatter_add", "bool[4]", "i32[2]", "bool[2]")
    with raises(FlowcTypeError, "scatter_add", "axis"):
        infer("scatter_add", "f32[4,3]", "i32[2]", "f32[2,3]", axis=2)


def test_scatter_add_refuses_an_index_out_of_range_even_into_empty_slices() -> None:
    with raises(IndexOutOfRange, "scatter_add", "index 4", "[0, 4)", "axis 0"):
        run("scatter_add", np.zeros((4, 3)), np.array([0, 4]), np.zeros((2, 3)))
    with raises(IndexOutOfRange, "scatter_add", "index -1", "[0, 3)", "axis 1"):
        run("scatter_add", np.zeros((4, 3)), np.array([-1]), np.zeros((4, 1)), axis=1)  # no count from the end
    with raises(IndexOutOfRange, "scatter_add", "index 7"):
        run("scatter_add", np.zeros((5, 0)), np.array([1, 7]), np.zeros((2, 0)))
