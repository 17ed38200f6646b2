"""Kernels that meet several unknown dims: each loop runs over its own values' sizes.

Regression tests for issue 15's first finding: two values of type f32[?] of
different run-time sizes (x and x[0::2], z and concat(x, x)) were fused into
one loop nest and read or wrote with the wrong extent (wrong numbers, heap
corruption). Note [unknown dims in a kernel] in ir/ops/fusion.py is the fix;
each case runs with and without the optimizer, on both targets.
"""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from test_native import assert_matches


def run_both(build, feeds, optimize):  # type: ignore[no-untyped-def]
    """Build with placeholders named like `feeds` (every dim None), run on both targets, compare."""
    g = fc.Graph()
    with g.as_default():
        ph = {k: fc.placeholder(fc.float32, shape=[None] * v.ndim, name=k) for k, v in feeds.items()}
        out = build(**ph)
    results = {}
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=g, optimize=optimize) as sess:
            results[target] = sess.run(out, {ph[k]: v for k, v in feeds.items()})
    for got, want in zip(results["cpu"], results["reference"], strict=True):
        assert_matches(got, want, str({k: v.shape for k, v in feeds.items()}))


@pytest.mark.parametrize("optimize", [True, False], ids=["opt", "no-opt"])
@pytest.mark.parametrize("n", [0, 1, 4, 5, 33, 1000])
def test_a_strided_slice_and_its_source(optimize, n) -> None:
    """min(x[0::2]) read at x's size: the max must see all of x (was: only len(x[0::2]) elements)."""

    def build(x):  # type: ignore[no-untyped-def]
        m = fc.reduce_min(x[0::2], axis=0, keepdims=True)
        return [fc.maximum(m, x), fc.reduce_sum(fc.maximum(m, x), axis=0), fc.reduce_max(fc.maximum(m, x), axis=0)]

    x = np.array([0, 5, 1, 7], np.float32) if n == 4 else np.random.default_rng(n).standard_normal(n).astype(np.float32)
    run_both(build, {"x": x}, optimize)


@pytest.mark.parametrize("optimize", [True, False], ids=["opt", "no-opt"])
@pytest.mark.parametrize("rows", [1, 2, 7])
def test_a_concat_selected_by_a_mean(optimize, rows) -> None:
    """where(mean(x) == 123, concat(2x, x), mean(x)): the concat has twice x's rows (was: garbage)."""

    def build(x):  # type: ignore[no-untyped-def]
        x2 = fc.concat([x * 2.0, x], axis=0)
        m = fc.reduce_mean(x, axis=[0, 1], keepdims=True)
        return [fc.where(fc.equal(m, 123.0), x2, m)]

    x = np.arange(1, 2 * rows, 2, dtype=np.float32).reshape(rows, 1)
    run_both(build, {"x": x}, optimize)


@pytest.mark.parametrize("optimize", [True, False], ids=["opt", "no-opt"])
@pytest.mark.parametrize("nz", [0, 1, 2, 9, 10, 11, 2000, 100000])
def test_siblings_of_different_sizes(optimize, nz) -> None:
    """z * min(c) and c * min(c), c = concat(x, x): two loops of their own sizes (was: one loop of
    z's size, garbage after the first element, or a segfault for a long z)."""

    def build(x, z):  # type: ignore[no-untyped-def]
        x2 = fc.concat([x, x], axis=0)
        m = fc.reduce_min(x2, axis=0)
        return [z * m, x2 * m]

    run_both(build, {"x": np.arange(1, 6, dtype=np.float32), "z": np.ones(nz, np.float32)}, optimize)


@pytest.mark.parametrize("sizes", [(0, 3), (1, 4), (3, 1), (5, 2), (6, 6)], ids=str)
def test_two_batches_in_one_graph(sizes) -> None:
    """Two batches of rows of one width, normalized each by its own and by the other's statistics."""
    a_rows, b_rows = sizes

    def build(a, b):  # type: ignore[no-untyped-def]
        mean_b = fc.reduce_mean(b, axis=0, keepdims=True)
        centered = a - mean_b
        return [centered, fc.nn.softmax(centered, axis=-1), fc.reduce_sum(b * 2.0, axis=1),
                fc.reduce_max(fc.concat([a, b], axis=0) + mean_b, axis=1)]

    rng = np.random.default_rng(a_rows * 10 + b_rows)
    feeds = {"a": rng.standard_normal((a_rows, 4)).astype(np.float32),
             "b": rng.standard_normal((b_rows, 4)).astype(np.float32)}
    if b_rows == 0:  # the mean of no rows is NaN on both targets: only the shapes mean anything
        feeds["b"] = rng.standard_normal((1, 4)).astype(np.float32)
    run_both(build, feeds, True)


@pytest.mark.parametrize("rows, columns", [(3, 0), (3, 2), (1, 1), (0, 4)])
def test_the_gradient_of_a_concat_knows_its_pieces_sizes(rows, columns) -> None:
    """concat([sum(x, 0, keepdims), x]) has an unknown number of rows, so dy[0:1] is typed [?, ?]; the
    sum's gradient must still broadcast it back to x's rows (was: an add of [1, b] and [a, b] that
    compiled code refused, fuzzer seed 949). refine_type gives each dy its value's static dims."""

    def build(x):  # type: ignore[no-untyped-def]
        joined = fc.concat([fc.reduce_sum(x, 0, keepdims=True), x], -2)
        return fc.gradients([fc.reduce_sum(joined * 2.0)], [x])

    x = np.arange(rows * columns, dtype=np.float32).reshape(rows, columns)
    run_both(build, {"x": x}, True)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_ensure_shape_checks_at_run_time(target) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, None], name="x")
        y = fc.ensure_shape(x, [None, 3]) * 2.0
    with fc.Session(graph=g, target=target) as sess:
        np.testing.assert_array_equal(sess.run(y, {x: np.ones((2, 3), np.float32)}), np.full((2, 3), 2, np.float32))
        with pytest.raises(fc.errors.RuntimeShapeError, match="ensure_shape"):
            sess.run(y, {x: np.ones((2, 4), np.float32)})


@pytest.mark.parametrize("symbolic", [True, False], ids=["none-dims", "static"])
@pytest.mark.parametrize("a", [1, 3])
def test_a_kernel_operand_read_at_the_keepdims_shape(symbolic, a) -> None:
    """minimum(max(x[b, b, a], -1, keepdims), y[b, 1]): y moves along the result's axis 1, not 0
    (Note [outer reads]; was: y read by the first kept axis, fuzzer seed 6402). Beside it, a reader
    at the dropped shape [b, b] aligns y the other way, in a kernel of its own."""
    rng = np.random.default_rng(a)
    x, y = rng.standard_normal((2, 2, a)).astype(np.float32), rng.standard_normal((2, 1)).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        px = fc.placeholder(fc.float32, [None] * 3 if symbolic else x.shape, name="x")
        py = fc.placeholder(fc.float32, [None, 1] if symbolic else y.shape, name="y")
        kept = fc.minimum(fc.reduce_max(px, axis=-1, keepdims=True), py)
        dropped = fc.reduce_sum(px, axis=-1) + py
    results = {}
    for target in ("reference", "cpu"):
        with fc.Session(graph=g, target=target) as sess:
            results[target] = sess.run([kept, dropped], {px: x, py: y})
    for got, want in zip(results["cpu"], results["reference"]):
        assert_matches(got, want)


@pytest.mark.parametrize("b", [1, 2, 5])
def test_a_value_tied_to_one_column_outside_its_kernel(b) -> None:
    """The gradient of concat([where(x < x, x, x[:, None]), x[:, None]], 1): a kernel adds the last
    column's gradient (f32[?,?], really [b, 1]: an ensure_shape outside the kernel says so) to a row
    sum; codegen took it for a value of F's shape by its static type and wrote it at F's extent
    (fuzzer seed 4229: wrong gradients). Levels now compare the shapes the contract compares."""

    def build(x, w):  # type: ignore[no-untyped-def]
        column = fc.reshape(x, [-1, 1])
        joined = fc.concat([fc.where(fc.less(x, x), x, column), column], axis=1)
        return fc.gradients([fc.reduce_sum(joined * w)], [x])

    rng = np.random.default_rng(b)
    run_both(build, {"x": rng.standard_normal(b).astype(np.float32),
                     "w": rng.standard_normal((b, b + 1)).astype(np.float32)}, True)
