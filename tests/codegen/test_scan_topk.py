"""The CPU target against the reference for reduce_prod, reduce_any, reduce_all, cumsum, cumprod and
top_k: odd shapes, size-0 and size-1 dims, every dtype each takes, every axis, unknown dims.

Each graph fetches many results at once, so one compilation covers a whole family of cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_native import both_targets, sample

import flowc as fc
from flowc.errors import FlowcError
from flowc.ir import Builder, Function, Module, TensorType, evaluate, float32
from flowc.ir.errors import FlowcTypeError
from flowc.lowering import lower
from flowc.passes import PassManager, optimize
from flowc.passes.fusion import Fuse

NUMERIC = ["float32", "float64", "int32", "int64"]
# Shapes whose every axis is reduced in turn: rows (trailing axes), columns (leading), short vector
# rows, long rows (blocked lanes), a size-1 axis and empty axes.
SHAPES = [(5, 33), (3, 1, 7), (70, 3), (2, 300), (0, 4), (4, 0), (1,), ()]


def prod_sample(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Values near 1 (floats) or in {-2..2} (ints): products of hundreds of them stay finite or wrap alike."""
    if dtype.startswith("int"):
        return rng.integers(-2, 3, shape).astype(dtype)
    return rng.uniform(0.8, 1.25, shape).astype(dtype) * np.where(rng.random(shape) < 0.2, -1, 1).astype(dtype)


def axis_choices(rank: int) -> list:
    choices: list = [None, *range(rank), *range(-rank, 0)]
    if rank >= 2:
        choices += [(0, rank - 1), (rank - 1, 0)]
    return choices


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", NUMERIC)
def test_reduce_prod_matches_reference(shape, dtype, rng) -> None:
    x = prod_sample(rng, shape, dtype)

    def build(x):
        return [fc.reduce_prod(x, axis, keepdims=keep) for axis in axis_choices(len(shape)) for keep in (False, True)]

    both_targets(build, {"x": x})


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_reduce_any_and_all_match_reference(shape, rng) -> None:
    # Mostly-true and mostly-false rows, so both answers occur on every axis.
    feeds = {"x": rng.random(shape) < 0.9, "y": rng.random(shape) < 0.1}

    def build(x, y):
        return [f(v, axis, keepdims=keep) for f in (fc.reduce_any, fc.reduce_all) for v in (x, y)
                for axis in axis_choices(len(shape)) for keep in (False, True)]

    both_targets(build, feeds)


def test_empty_reductions_give_tensorflows_identities() -> None:
    feeds = {"f": np.zeros((0, 3), np.float32), "i": np.zeros((3, 0), np.int32), "b": np.zeros((0, 2), bool)}
    g = fc.Graph()
    with g.as_default():
        f = fc.placeholder(fc.float32, [None, 3], name="f")
        i = fc.placeholder(fc.int32, [3, None], name="i")
        b = fc.placeholder(fc.bool, [None, 2], name="b")
        out = [fc.reduce_prod(f, 0), fc.reduce_prod(i, 1), fc.reduce_any(b, 0), fc.reduce_all(b, 0),
               fc.reduce_prod(f), fc.reduce_logsumexp(f, 0)]
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=g) as sess:
            prod_f, prod_i, any_b, all_b, total, lse = sess.run(out, {k + ":0": v for k, v in feeds.items()})
        np.testing.assert_array_equal(prod_f, np.ones(3, np.float32))
        np.testing.assert_array_equal(prod_i, np.ones(3, np.int32))
        np.testing.assert_array_equal(any_b, [False, False])
        np.testing.assert_array_equal(all_b, [True, True])
        assert total == 1.0
        np.testing.assert_array_equal(lse, np.full(3, -np.inf, np.float32))


def test_reductions_fuse_with_their_producers_into_one_kernel(rng) -> None:
    """prod of an elementwise chain, all of a comparison, and a logsumexp: one reduction kernel each."""
    assert fused_kinds(lambda x: fc.reduce_prod(fc.exp(x * 0.1) + 1.0, 1)) == ["reduction"]
    assert fused_kinds(lambda x: fc.reduce_all(fc.less(fc.abs(x), 3.0), 0)) == ["reduction"]
    assert fused_kinds(lambda x: fc.reduce_logsumexp(x, 1)) == ["reduction"]
    assert fused_kinds(lambda x: fc.add_n([x, fc.tanh(x), x * 2.0])) == ["loop"]
    x = rng.standard_normal((9, 20)).astype(np.float32)
    both_targets(lambda x: [fc.reduce_prod(fc.exp(x * 0.1) + 1.0, 1), fc.reduce_any(fc.greater(x, 2.0), 1)], {"x": x})


def fused_kinds(build) -> list[str]:  # type: ignore[no-untyped-def]
    """The kinds of the kernels that fusion makes of `build` on an f32[?, 20] placeholder."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 20], name="x")
        out = build(x)
    module = lower(g, [out], [], [x]).module
    optimize(module, verify_each=True)
    PassManager([Fuse()], verify_each=True).run(module)
    return [op.kind for op in module["main"].entry.ops if op.name == "fusion"]


# -- scans ---------------------------------------------------------------------------------------

SCAN_SHAPES = [(5, 33), (3, 1, 7), (0, 4), (4, 0), (1,), (1, 1), (2, 3, 9)]


@pytest.mark.parametrize("shape", SCAN_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", NUMERIC)
def test_cumsum_and_cumprod_match_reference(shape, dtype, rng) -> None:
    feeds = {"x": sample(rng, shape, dtype), "p": prod_sample(rng, shape, dtype)}
    rank = len(shape)

    def build(x, p):
        return [scan(v, axis, exclusive=exclusive, reverse=reverse)
                for scan, v in ((fc.cumsum, x), (fc.cumprod, p)) for axis in [*range(rank), -1]
                for exclusive in (False, True) for reverse in (False, True)]

    both_targets(build, feeds)


def test_float_cumsum_is_bit_for_bit_numpys_serial_order(rng) -> None:
    x = rng.standard_normal((3, 5000)).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.float32, [None, None], name="x")
        out = [fc.cumsum(p, 1), fc.cumsum(p, 0, reverse=True), fc.cumprod(p * 0.0 + 1.0001, 1)]
    with fc.Session(graph=g) as sess:
        along, down, prod = sess.run(out, {p: x})
    np.testing.assert_array_equal(along, np.cumsum(x, 1))
    np.testing.assert_array_equal(down, np.cumsum(x[::-1], 0)[::-1])
    np.testing.assert_array_equal(prod, np.cumprod(np.full_like(x, np.float32(1.0001)), 1))


def test_scans_with_unknown_dims_and_many_lines(rng) -> None:
    """Lines split across threads (many short lines) and few long lines, shapes fed at run time; a
    scan over a leading axis walks neighbouring lines together, and a thread's range of lines may
    start and end inside a run of neighbours ((3000, 40) over axis 0: 40 lines, about 10 a thread)."""
    for shape in [(4000, 9), (3, 20000), (2, 700, 5), (3000, 40), (3, 2000, 7)]:
        x = rng.standard_normal(shape)

        def build(x):
            return [fc.cumsum(x, 1), fc.cumprod(x, 0, exclusive=True), fc.cumsum(x, -1, reverse=True),
                    fc.cumsum(x, 0, exclusive=True, reverse=True), fc.cumprod(x * 0.01 + 1.0, 0, reverse=True)]

        both_targets(build, {"x": x})


def test_scan_inside_a_fused_chain(rng) -> None:
    """A scan between elementwise ops and a reduction: its own kernel, the others fused around it."""
    x = rng.standard_normal((6, 11)).astype(np.float32)
    both_targets(lambda x: [fc.reduce_sum(fc.cumsum(fc.tanh(x) * 2.0, 1) ** 2.0, 1),
                            fc.cumprod(fc.exp(x * 0.1), 0, reverse=True) + 1.0], {"x": x})


# -- top_k ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("shape", [(5, 33), (2, 3, 7), (1,), (4, 1), (0, 6), (3, 0)], ids=str)
def test_top_k_matches_reference(shape, dtype, rng) -> None:
    n = shape[-1]
    x = sample(rng, shape, dtype)
    if dtype.startswith("int"):
        x = x % 5  # many ties: lower index first
    ks = sorted({0, min(1, n), min(3, n), n})

    def build(x):
        return [t for k in ks for t in fc.nn.top_k(x, k=k)]

    both_targets(build, {"x": x})


def test_top_k_ties_nan_and_infinities() -> None:
    x = np.array([[1.0, 3.0, 3.0, -np.inf, np.nan, 3.0, np.inf, 0.0],
                  [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
                  [np.nan, 1.0, np.nan, -1.0, 5.0, 5.0, -np.inf, -np.inf]], np.float32)

    def build(x):
        return [t for k in (1, 3, 5, 8) for t in fc.nn.top_k(x, k)]

    both_targets(build, {"x": x})
    g = fc.Graph()
    with g.as_default():
        values, indices = fc.nn.top_k(fc.constant(x), 5)
    with fc.Session(graph=g) as sess:
        got_values, got_indices = sess.run([values, indices])
    np.testing.assert_array_equal(got_indices, [[4, 6, 1, 2, 5], [0, 1, 2, 3, 4], [0, 2, 4, 5, 1]])
    assert got_indices.dtype == np.int32
    np.testing.assert_array_equal(got_values[1], [2.0] * 5)


def test_top_k_of_long_rows_in_random_and_sorted_order(rng) -> None:
    x = rng.standard_normal((7, 3000))
    both_targets(lambda x: [*fc.nn.top_k(x, 50), *fc.nn.top_k(-fc.abs(x), 1)], {"x": x})
    ascending = np.tile(np.arange(500, dtype=np.float32), (3, 1))  # each entry beats every kept one
    both_targets(lambda x: [*fc.nn.top_k(x, 20), *fc.nn.top_k(-x, 20)], {"x": ascending})


def test_top_k_with_an_unknown_row_length_checks_k_on_the_fed_shape(rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, None], name="x")
        values, indices = fc.nn.top_k(x, 4)  # line 1 of the user's code that the error names
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=g) as sess:
            feed = rng.standard_normal((3, 6)).astype(np.float32)
            got = sess.run(indices, {x: feed})
            np.testing.assert_array_equal(got, np.argsort(-feed, 1, kind="stable")[:, :4])
            with pytest.raises(FlowcError, match=r"top_k.*k = 4 is more than the 3 entries") as caught:
                sess.run(values, {x: feed[:, :3]})
            assert "test_scan_topk.py" in str(caught.value), str(caught.value)


def run_top_k(x: np.ndarray, **attrs) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    function = Function("f", [TensorType(float32, x.shape)], [])
    b = Builder.at_end(function.entry)
    results = b.create("top_k", [function.args[0]], attrs).results
    b.create("return", list(results))
    function.result_types = [r.type for r in results]
    return evaluate(function, [x], Module([function]))


def test_top_k_is_one_op_with_two_results_in_the_ir() -> None:
    values, indices = run_top_k(np.array([[1, 5, 2, 5, 0], [0, 0, 0, 0, 1]], np.float32), k=2)
    np.testing.assert_array_equal(indices, [[1, 3], [4, 0]])
    np.testing.assert_array_equal(values, [[5, 5], [1, 0]])
    with pytest.raises(FlowcTypeError, match="k must be >= 0"):
        run_top_k(np.zeros((2, 5), np.float32), k=-1)
    with pytest.raises(FlowcTypeError, match="at least one dim"):
        run_top_k(np.zeros((), np.float32), k=0)


def test_exported_scans_and_top_k_run_without_python_and_refuse_a_short_row(tmp_path, rng) -> None:
    """An exported library has no type rules to check k against the fed row: the kernel stops the run."""
    def f(x):
        values, indices = fc.nn.top_k(x, 3)
        return values, indices, fc.cumsum(x, 0, reverse=True), fc.reduce_any(x > 1.0, 1)

    fc.export(str(tmp_path / "scans"), f, fc.TensorSpec([None, None], fc.float32))
    loaded = fc.load(str(tmp_path / "scans"))
    x = rng.standard_normal((5, 7)).astype(np.float32)
    values, indices, sums, anything = loaded(x)
    order = np.argsort(-x, 1, kind="stable")[:, :3]
    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(values, np.take_along_axis(x, order, 1))
    np.testing.assert_array_equal(sums, np.cumsum(x[::-1], 0)[::-1])
    np.testing.assert_array_equal(anything, (x > 1).any(1))
    # The C error names the op and its line; its number is the row's length (the C side knows of
    # indices only: compiler/aot's INDEX error).
    with pytest.raises(FlowcError, match=r"'TopKV2' \(created at test_scan_topk.py:\d+\).*2 is out of range"):
        loaded(x[:, :2])


# -- argmax / argmin over long rows (Note [arg lanes] in kernels/reduction.py) ------------------------


@pytest.mark.parametrize("dtype", NUMERIC)
def test_arg_reductions_over_long_rows_take_the_first_best(dtype, rng) -> None:
    """Rows long enough for lanes: many ties (the first wins), NaN (the first NaN wins), rows of -inf
    or of the dtype's extremes, a row shorter than the lanes fed to an unknown dim."""
    x = rng.integers(-3, 4, (6, 301)).astype(dtype)
    if dtype.startswith("float"):
        x[1, [7, 200]] = np.nan
        x[2] = -np.inf
        x[3] = np.inf
        x[4, 150:] = np.nan
    else:
        x[2] = np.iinfo(dtype).min
        x[3] = np.iinfo(dtype).max
    build = lambda x: [fc.argmax(x, 1), fc.argmin(x, 1), fc.argmax(x, 0), fc.argmin(x, -2),  # noqa: E731
                       fc.argmax(fc.transpose(x), 0, output_type=fc.int32)]
    both_targets(build, {"x": x})
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(getattr(fc, dtype), [None, None])
        outs = [fc.argmax(p, 1), fc.argmin(p, 1)]
    with fc.Session(graph=g) as sess:
        for width in (1, 3, 40, 301):
            got_max, got_min = sess.run(outs, {p: x[:, :width]})
            np.testing.assert_array_equal(got_max, np.argmax(x[:, :width], 1), err_msg=f"width {width}")
            np.testing.assert_array_equal(got_min, np.argmin(x[:, :width], 1), err_msg=f"width {width}")
