"""scatter_add on the cpu target (codegen/llvm/kernels/scatter.py) against the reference: duplicate
indices, no indices, size-0 and size-1 dims, unknown dims fed several sizes, every axis, both index
dtypes; its index check (IndexOutOfRange naming the op and the line) with slices empty or not; and
the result written into base's bytes where the memory plan allows (Note [scatter_add without races])."""

from __future__ import annotations

import numpy as np
import pytest
from test_native import native_run
from test_native_control import assert_same, compile_cpu
from test_shape_ops_native import one_op

from flowc.ir import evaluate
from flowc.ir.errors import IndexOutOfRange
from flowc.passes.memory import memory_plan


def same(args: list[np.ndarray], declared: list[tuple], axis: int) -> np.ndarray:
    """Native and reference agree bit for bit (the adds run in the order of the indices on both)."""
    (want,) = evaluate(one_op("scatter_add", args, declared, axis=axis)["f"], args)
    (got,) = native_run(one_op("scatter_add", args, declared, axis=axis), args)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want, err_msg=f"axis {axis} on {[a.shape for a in args]}")
    return got


def arguments(rng: np.random.Generator, shape: tuple, picks: tuple, axis: int, dtype: str,
              index_dtype: str) -> list[np.ndarray]:
    axis %= len(shape)
    updates_shape = shape[:axis] + picks + shape[axis + 1:]
    size = shape[axis]
    indices = rng.integers(0, max(size, 1), picks).astype(index_dtype)
    scale = 1 if dtype.startswith("int") else 0.37
    base = (rng.integers(-9, 9, shape) * scale).astype(dtype)
    return [base, indices, (rng.integers(-9, 9, updates_shape) * scale).astype(dtype)]


CASES = [((7, 5), (12,), 0), ((7, 5), (3, 4), 1), ((2, 6, 3), (9,), 1), ((2, 6, 3), (4,), -1), ((1, 1), (5,), 0),
         ((4, 1), (), 0), ((3, 0), (4,), 0), ((0, 3), (2,), 1), ((5, 3), (0,), 0), ((3, 70), (40,), 0),
         ((300, 2), (9, 1), 0)]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])  # the cpu target has no float16
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
@pytest.mark.parametrize("shape, picks, axis", CASES)
def test_scatter_add_matches_the_reference(dtype, index_dtype, shape, picks, axis, rng) -> None:
    args = arguments(rng, shape, picks, axis, dtype, index_dtype)
    same(args, [a.shape for a in args], axis)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unknown_dims_fed_several_sizes(axis, rng) -> None:
    """One compiled function per set of shapes, each from the same IR of unknown dims."""
    for shape, picks in [((6, 4, 3), (5,)), ((1, 2, 1), (3,)), ((3, 5, 0), (2,)), ((2, 3, 4), (0,)),
                         ((4, 2, 33), (17,))]:
        if shape[axis] == 0:  # no index is in range (the next test)
            continue
        args = arguments(rng, shape, picks, axis, "float32", "int64")
        same(args, [(None,) * 3, (None,), (None,) * 3], axis)


def test_many_duplicates_of_one_row_sum_in_order(rng) -> None:
    """A word2vec-like gradient: a large table, few rows picked, most of them the same."""
    base = np.zeros((5000, 16), np.float32)
    indices = np.concatenate([np.full(100, 7), rng.integers(0, 5000, 28)]).astype(np.int32)
    updates = rng.standard_normal((128, 16)).astype(np.float32)
    got = same([base, indices, updates], [(None, 16), (None,), (None, 16)], 0)
    np.testing.assert_allclose(got[7], updates[:100].sum(0) + updates[100:][indices[100:] == 7].sum(0), rtol=1e-5)


@pytest.mark.parametrize("shape, picks, axis, declared", [
    ((5, 3), [1, 5, 2], 0, [(None, None), (None,), (None, None)]),
    ((5, 3), [-1], 1, [(5, 3), (1,), (5, 1)]),
    ((5, 0), [0, 7], 0, [(None, None), (None,), (None, None)]),  # empty slices: the entry point checks
    ((0, 4), [9], 1, [(None, 4), (1,), (None, 1)]),
    ((3, 4, 0), [1, 6], 1, [(3, 4, 0), (2,), (3, 2, 0)])])
def test_an_index_out_of_range_raises_even_into_empty_slices(shape, picks, axis, declared) -> None:
    indices = np.array(picks, np.int64)
    updates_shape = tuple(shape[:axis]) + indices.shape + tuple(shape[axis + 1:])
    args = [np.zeros(shape, np.float32), indices, np.ones(updates_shape, np.float32)]
    bad = next(p for p in picks if not 0 <= p < shape[axis])
    for run in (lambda m: evaluate(m["f"], args), lambda m: native_run(m, args)):
        with pytest.raises(IndexOutOfRange, match=rf"scatter_add.*index {bad}"):
            run(one_op("scatter_add", args, declared, axis=axis))


IN_PLACE = """\
func @main(%x: f32[?,3], %i: i32[5], %u: f32[5,3]) -> f32[?,3] {
  %two = constant {value = dense<2.0>} : f32[]
  %t = mul %x, %two : f32[?,3]
  %s = scatter_add %t, %i, %u {axis = 0} : f32[?,3]
  %r = READ : f32[?,3]
  return %r : f32[?,3]
}
"""


@pytest.mark.parametrize("read", ["exp %s", "add %s, %t"])
def test_a_scatter_add_into_a_temp_takes_its_bytes_unless_the_temp_is_read_after(read, rng) -> None:
    """Note [rows written in place]: into a temp nothing reads later, the result is a view of it and
    the kernel only adds; where the temp is read after (add %s, %t), it has bytes of its own."""
    text = IN_PLACE.replace("READ", read)
    cases = [[rng.standard_normal((n, 3)).astype(np.float32), rng.integers(0, n, 5).astype(np.int32),
              rng.standard_normal((5, 3)).astype(np.float32)] for n in (1, 6, 40)]
    assert_same(text, *cases)
    function = compile_cpu(text).function
    plan = memory_plan(function)
    (scatter,) = [op for op in function.walk() if op.name == "fusion" and
                  any(inner.name == "scatter_add" for inner in op.regions[0].entry.ops)]
    in_place = plan.storage[scatter.result].kind == "view"
    assert in_place == (read == "exp %s"), plan.describe(function)
