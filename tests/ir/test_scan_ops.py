"""cumsum, cumprod and top_k against their definitions written out as loops (never `op.reference`),
their type rules and errors; and the empty reductions of reduce_prod / any / all."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import flowc.ir as ir
from flowc.ir import Builder, Function, TensorType
from flowc.ir.errors import FlowcTypeError, RuntimeShapeError


def run(name: str, x: np.ndarray, shape: tuple | None = None, **attrs) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    function = Function(name, [TensorType(ir.as_dtype(x.dtype), shape if shape is not None else x.shape)], [])
    b = Builder.at_end(function.entry)
    results = b.create(name, function.args, attrs).results
    b.create("return", list(results))
    function.result_types = [r.type for r in results]
    return ir.evaluate(function, [x])


def scan_by_loops(x: np.ndarray, axis: int, exclusive: bool, reverse: bool, product: bool) -> np.ndarray:
    out = np.empty_like(x)
    n = x.shape[axis]
    for index in np.ndindex(*x.shape):
        i = index[axis]
        if reverse:
            chosen = range(i + 1 if exclusive else i, n)
        else:
            chosen = range(0, i if exclusive else i + 1)
        total = x.dtype.type(1 if product else 0)
        for j in (reversed(chosen) if reverse else chosen):  # in the order of the walk
            element = x[index[:axis] + (j,) + index[axis + 1:]]
            total = total * element if product else total + element
        out[index] = total
    return out


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_scans_match_their_definition(name: str, dtype: str) -> None:
    rng = np.random.default_rng(1)
    for shape in [(2, 3, 4), (5,), (0, 3), (3, 0), (1, 1)]:
        x = rng.integers(-3, 4, shape).astype(dtype)
        for axis, exclusive, reverse in itertools.product(range(-len(shape), len(shape)), (False, True), (False, True)):
            with np.errstate(all="ignore"):
                want = scan_by_loops(x, axis % len(shape), exclusive, reverse, name == "cumprod")
            [got] = run(name, x, axis=axis, exclusive=exclusive, reverse=reverse)
            assert got.dtype == x.dtype and got.shape == x.shape
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {axis} {exclusive} {reverse}")


def test_scan_type_rule_and_errors() -> None:
    x = np.zeros((2, 3), np.float32)
    [got] = run("cumsum", x, shape=(None, 3), axis=0)
    assert got.shape == (2, 3)
    with pytest.raises(FlowcTypeError, match="cumsum.*axis 2 is out of range for rank 2"):
        run("cumsum", x, axis=2)
    with pytest.raises(FlowcTypeError, match="cumprod.*axis 0 is out of range for rank 0"):
        run("cumprod", np.float32(1), axis=0)
    with pytest.raises(FlowcTypeError, match="cumsum.*bool"):
        run("cumsum", np.zeros(3, bool), axis=0)
    with pytest.raises(FlowcTypeError, match="cumsum.*missing attribute axis"):
        run("cumsum", x)


def top_k_by_loops(row: list[float], k: int) -> list[int]:
    """Repeatedly the first index of the largest value not taken yet; NaN above every number."""
    taken: list[int] = []
    for _ in range(k):
        best = None
        for index, value in enumerate(row):
            if index in taken:
                continue
            if best is None:
                best = index
                continue
            current = row[best]
            if (np.isnan(value) and not np.isnan(current)) or value > current:
                best = index
        taken.append(best)  # type: ignore[arg-type]
    return taken


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_top_k_matches_its_definition(dtype: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 4, (3, 2, 7)).astype(dtype)
    if dtype.startswith("float"):
        x[0, 0, [1, 4]] = np.nan
        x[1, 1, 2] = -np.inf
    for k in range(8):
        values, indices = run("top_k", x, k=k)
        assert values.dtype == x.dtype and indices.dtype == np.int32 and indices.shape == (3, 2, k)
        for index in np.ndindex(3, 2):
            want = top_k_by_loops(list(x[index]), k)
            np.testing.assert_array_equal(indices[index], want)
            np.testing.assert_array_equal(values[index], x[index][want])


def test_top_k_type_rule_and_errors() -> None:
    x = np.zeros((2, 3), np.float32)
    values, indices = run("top_k", x, shape=(None, None), k=3)
    assert values.shape == indices.shape == (2, 3)
    with pytest.raises(FlowcTypeError, match="top_k.*k = 4 is more than the 3 entries"):
        run("top_k", x, k=4)
    with pytest.raises(RuntimeShapeError, match="top_k.*k = 4 is more than the 3 entries"):
        run("top_k", x, shape=(2, None), k=4)  # known only at run time
    with pytest.raises(FlowcTypeError, match="top_k.*k must be >= 0"):
        run("top_k", x, k=-1)
    with pytest.raises(FlowcTypeError, match="top_k.*input must be one of"):
        run("top_k", np.zeros(3, bool), k=1)
    assert run("top_k", np.zeros((4, 0), np.int64), k=0)[0].shape == (4, 0)


def test_empty_reductions_give_the_identities() -> None:
    empty = {"f": np.zeros((0, 2), np.float32), "i": np.zeros((0, 2), np.int64), "b": np.zeros((0, 2), bool)}
    [prod] = run("reduce_prod", empty["f"], axes=(0,), keepdims=False)
    np.testing.assert_array_equal(prod, np.ones(2, np.float32))
    [prod] = run("reduce_prod", empty["i"], axes=(0, 1), keepdims=True)
    np.testing.assert_array_equal(prod, np.ones((1, 1), np.int64))
    [any_] = run("reduce_any", empty["b"], axes=(0,), keepdims=False)
    [all_] = run("reduce_all", empty["b"], axes=(0,), keepdims=False)
    np.testing.assert_array_equal(any_, [False, False])
    np.testing.assert_array_equal(all_, [True, True])
    with pytest.raises(FlowcTypeError, match="reduce_any.*must be one of bool, got float32"):
        run("reduce_any", empty["f"], axes=(0,), keepdims=False)


def top_k_of_rows(x: np.ndarray, k: int, shape: tuple) -> tuple[Function, list[np.ndarray]]:
    """top_k whose k is dim 0 of a data_dim operand (issue 19), on x declared `shape`."""
    function = Function("f", [TensorType(ir.as_dtype(x.dtype), shape), TensorType(ir.int64, (None, 0))], [])
    b = Builder.at_end(function.entry)
    results = b.create("top_k", function.args, {"k": -1}).results
    b.create("return", list(results))
    function.result_types = [r.type for r in results]
    return function, ir.evaluate(function, [x, np.empty((k, 0), np.int64)])


def test_top_k_of_a_k_that_is_data_matches_its_definition_and_round_trips() -> None:
    x = np.random.default_rng(3).integers(-3, 4, (4, 7)).astype(np.float32)
    for k in (0, 1, 5, 7):
        function, (values, indices) = top_k_of_rows(x, k, (None, 7))
        assert function.result_types[0].shape == (None, None)
        for row in range(4):
            np.testing.assert_array_equal(indices[row], top_k_by_loops(list(x[row]), k))
            np.testing.assert_array_equal(values[row], x[row][indices[row]])
    text = ir.print_function(function)
    assert "top_k" in text and ir.print_function(ir.parse_function(text)) == text


def test_top_k_of_a_k_that_is_data_errors() -> None:
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(RuntimeShapeError, match="top_k.*k = 4 is more than the 3 entries"):
        top_k_of_rows(x, 4, (2, None))
    function = Function("f", [TensorType(ir.float32, (2, 3)), TensorType(ir.int64, (None, 1))], [])
    with pytest.raises(FlowcTypeError, match=r"top_k.*data_dim \(of shape \[k, 0\]"):
        Builder.at_end(function.entry).create("top_k", function.args, {"k": -1})
    function = Function("f", [TensorType(ir.float32, (2, 3)), TensorType(ir.int64, (None, 0))], [])
    with pytest.raises(FlowcTypeError, match=r"top_k.*attribute k = -1"):
        Builder.at_end(function.entry).create("top_k", function.args, {"k": 2})
