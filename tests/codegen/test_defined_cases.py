"""Cases with one defined answer, which the targets and the constant folder must all give.

pow follows C99 Annex F (F.9.4.4), as IEEE 754's pow; a reduction over an empty axis gives its
identity (TensorFlow's answer), an argmax over one is an error, and a softmax over one is empty
(ir/ops/elementwise.py and ir/ops/reduction.py say why). The expected values are written here by
hand, never taken from the reference: the reference is one of the things checked.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcError
from flowc.ir.errors import FlowcTypeError, RuntimeShapeError
from flowc.ir import registry
from flowc.ir.types import as_dtype

TARGETS = ("reference", "cpu")
INF, NAN = float("inf"), float("nan")

# -- pow: every case of C99 Annex F.9.4.4 ------------------------------------------------

ODD = {"float32": 2.0**24 - 1, "float64": 2.0**53 - 1}  # the largest odd integer of the format
EVEN = {"float32": 2.0**24, "float64": 2.0**53}  # from here on, every float is an even integer


def pow_cases(dtype: str) -> list[tuple[float, float, float]]:
    """(x, y, pow(x, y)), grouped by the Annex F sentence each row checks."""
    big, tiny = float(np.finfo(dtype).max), float(np.finfo(dtype).smallest_subnormal)
    odd, even = ODD[dtype], EVEN[dtype]
    return [
        # pow(+-0, y) = +-inf for y an odd integer < 0
        (0.0, -1.0, INF), (-0.0, -1.0, -INF), (0.0, -3.0, INF), (-0.0, -3.0, -INF), (-0.0, -odd, -INF),
        # pow(+-0, y) = +inf for y < 0, finite, not an odd integer
        (0.0, -2.0, INF), (-0.0, -2.0, INF), (-0.0, -0.5, INF), (0.0, -2.5, INF), (-0.0, -big, INF),
        (-0.0, -even, INF),
        # pow(+-0, -inf) = +inf
        (0.0, -INF, INF), (-0.0, -INF, INF),
        # pow(+-0, y) = +-0 for y an odd integer > 0
        (0.0, 1.0, 0.0), (-0.0, 1.0, -0.0), (-0.0, 3.0, -0.0), (-0.0, odd, -0.0),
        # pow(+-0, y) = +0 for y > 0 and not an odd integer (+inf included)
        (-0.0, 0.5, 0.0), (0.0, 0.5, 0.0), (-0.0, 2.0, 0.0), (-0.0, 2.5, 0.0), (-0.0, big, 0.0),
        (-0.0, even, 0.0), (-0.0, INF, 0.0), (0.0, INF, 0.0), (-0.0, tiny, 0.0),
        # pow(-1, +-inf) = 1
        (-1.0, INF, 1.0), (-1.0, -INF, 1.0),
        # pow(+1, y) = 1 for any y, even NaN
        (1.0, NAN, 1.0), (1.0, INF, 1.0), (1.0, -INF, 1.0), (1.0, -0.5, 1.0), (1.0, big, 1.0),
        # pow(x, +-0) = 1 for any x, even NaN
        (NAN, 0.0, 1.0), (NAN, -0.0, 1.0), (-INF, 0.0, 1.0), (INF, -0.0, 1.0), (-0.0, 0.0, 1.0),
        (0.0, -0.0, 1.0), (-2.5, 0.0, 1.0), (tiny, -0.0, 1.0),
        # pow(x, y) = NaN for finite x < 0 and finite non-integer y
        (-2.0, 0.5, NAN), (-0.5, -2.5, NAN), (-1.0, 0.5, NAN), (-big, 0.5, NAN), (-tiny, 1.5, NAN),
        # pow(x, -inf) = +inf for |x| < 1, +0 for |x| > 1
        (0.5, -INF, INF), (-0.5, -INF, INF), (tiny, -INF, INF), (2.0, -INF, 0.0), (-2.0, -INF, 0.0),
        (-big, -INF, 0.0),
        # pow(x, +inf) = +0 for |x| < 1, +inf for |x| > 1
        (0.5, INF, 0.0), (-0.5, INF, 0.0), (-tiny, INF, 0.0), (2.0, INF, INF), (-2.0, INF, INF), (big, INF, INF),
        # pow(-inf, y) = -0 for y an odd integer < 0, +0 for other y < 0
        (-INF, -1.0, -0.0), (-INF, -3.0, -0.0), (-INF, -odd, -0.0), (-INF, -2.0, 0.0), (-INF, -0.5, 0.0),
        (-INF, -INF, 0.0), (-INF, -even, 0.0),
        # pow(-inf, y) = -inf for y an odd integer > 0, +inf for other y > 0
        (-INF, 1.0, -INF), (-INF, 3.0, -INF), (-INF, odd, -INF), (-INF, 0.5, INF), (-INF, 2.0, INF),
        (-INF, INF, INF), (-INF, even, INF),
        # pow(+inf, y) = +0 for y < 0, +inf for y > 0
        (INF, -0.5, 0.0), (INF, -1.0, 0.0), (INF, -INF, 0.0), (INF, 0.5, INF), (INF, 1.0, INF), (INF, INF, INF),
        # NaN in, NaN out (the cases above aside)
        (NAN, 1.0, NAN), (NAN, -INF, NAN), (2.0, NAN, NAN), (-1.0, NAN, NAN), (0.0, NAN, NAN), (-INF, NAN, NAN),
        # negative bases to integer powers: signed by the parity, the largest odd and even included
        (-2.0, 3.0, -8.0), (-2.0, -1.0, -0.5), (-2.0, 2.0, 4.0), (-1.0, odd, -1.0), (-1.0, even, 1.0),
        (-2.0, odd, -INF), (-2.0, even, INF), (-0.5, odd, -0.0), (-0.5, -odd, -INF),
    ]


def assert_same_floats(got: np.ndarray, want: np.ndarray, cases: list) -> None:
    """Equal values with equal signs (so -0 is not +0), NaN where NaN; names the failing cases."""
    same = (got == want) & (np.signbit(got) == np.signbit(want)) | np.isnan(got) & np.isnan(want)
    wrong = [(case, value) for case, value, ok in zip(cases, got.ravel(), same.ravel()) if not ok]
    assert not wrong, f"(x, y, expected) -> got: {wrong}"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pow_annex_f_on_arrays(target: str, dtype: str) -> None:
    cases = pow_cases(dtype)
    x, y, want = (np.array(column, dtype) for column in zip(*cases))
    g = fc.Graph()
    with g.as_default():
        xs = fc.placeholder(as_dtype(dtype), shape=[None], name="x")
        ys = fc.placeholder(as_dtype(dtype), shape=[None], name="y")
        out = fc.pow(xs, ys)
        x0 = fc.placeholder(as_dtype(dtype), shape=[], name="x0")
        y0 = fc.placeholder(as_dtype(dtype), shape=[], name="y0")
        scalar = fc.pow(x0, y0)
    with fc.Session(target=target, graph=g) as sess:
        assert_same_floats(sess.run(out, {xs: x, ys: y}), want, cases)
        for i, case in enumerate(cases):  # one element (the cpu's remainder loop), 0-d (numpy's scalar path)
            assert_same_floats(sess.run(out, {xs: x[i : i + 1], ys: y[i : i + 1]}), want[i : i + 1], [case])
            assert_same_floats(np.asarray(sess.run(scalar, {x0: x[i], y0: y[i]})), want[i], [case])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pow_annex_f_folded(target: str, dtype: str) -> None:
    """Powers of scalar constants are folded at compile time (with the reference, on 0-d arrays)."""
    cases = pow_cases(dtype)
    g = fc.Graph()
    with g.as_default():
        outs = [fc.pow(fc.constant(np.array(x, dtype)), fc.constant(np.array(y, dtype))) for x, y, _ in cases]
    with fc.Session(target=target, graph=g) as sess:
        got = np.array(sess.run(outs), dtype)
    assert_same_floats(got, np.array([w for _, _, w in cases], dtype), cases)


# -- reductions over empty axes ---------------------------------------------------------------

REDUCE = {"sum": fc.reduce_sum, "mean": fc.reduce_mean, "max": fc.reduce_max, "min": fc.reduce_min}


def identity(name: str, dtype: str) -> float | int:
    """TensorFlow's value of a reduction over nothing."""
    if name == "sum":
        return 0
    if name == "mean":
        return NAN  # 0 / 0
    info = np.finfo(dtype) if dtype.startswith("float") else np.iinfo(dtype)
    if dtype.startswith("float"):
        return -INF if name == "max" else INF
    return int(info.min) if name == "max" else int(info.max)


def run_both(build, feeds: dict[str, tuple[tuple, np.ndarray]]) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """build(**placeholders) on each target; feeds map a name to (declared shape, value)."""
    g = fc.Graph()
    with g.as_default():
        ph = {k: fc.placeholder(as_dtype(v.dtype), shape=list(shape), name=k) for k, (shape, v) in feeds.items()}
        out = build(**ph)
    results = {}
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            results[target] = sess.run(out, {ph[k]: v for k, (_, v) in feeds.items()})
    return results


# (declared shape, fed shape, axis): static and None dims fed 0, along rows, columns, everything;
# the shapes pick each reduction schedule (vector rows, lanes, column tiles, a full reduction).
EMPTY_CASES = [
    ((0, 20), (0, 20), 0),  # column tiles
    ((None, 20), (0, 20), 0),
    ((20, 0), (20, 0), 1),  # a static empty row: vector rows
    ((20, None), (20, 0), 1),  # a row of unknown length: lanes
    ((20, None), (20, 0), -1),
    ((None, 3), (0, 3), None),  # everything
    ((4, 0, 5), (4, 0, 5), (1, 2)),
    ((None, None), (0, 0), 1),  # an empty result too
]


@pytest.mark.parametrize("declared, fed, axis", EMPTY_CASES, ids=str)
@pytest.mark.parametrize("name, dtype", [(name, dtype.name) for name in sorted(REDUCE)
                                         for dtype in registry.get(f"reduce_{name}").dtypes])  # as declared
def test_reductions_over_empty_axes(name: str, dtype: str, declared: tuple, fed: tuple,
                                    axis: int | tuple[int, ...] | None) -> None:
    data = np.zeros(fed, dtype)
    for keepdims in (False, True):
        want = np.full(np.sum(data, axis=axis, keepdims=keepdims).shape, identity(name, dtype), dtype)
        results = run_both(lambda x: REDUCE[name](x, axis=axis, keepdims=keepdims), {"x": (declared, data)})
        for target, got in results.items():
            assert got.dtype == want.dtype and got.shape == want.shape, (target, got.dtype, got.shape)
            np.testing.assert_array_equal(got, want, err_msg=target)


def test_empty_reductions_fused_with_their_neighbours() -> None:
    """In one kernel with elementwise ops before and after (the identity flows on: -inf + 1 = -inf)."""
    data = np.zeros((4, 0), np.float32)
    results = run_both(lambda x: [fc.reduce_max(x * 2.0, axis=1) + 1.0, fc.reduce_min(fc.exp(x), axis=1) - 1.0,
                                  fc.reduce_sum(x * x, axis=1) * 3.0, fc.reduce_mean(x + 1.0, axis=1)],
                       {"x": ((4, None), data)})
    for target, (top, bottom, total, mean) in results.items():
        np.testing.assert_array_equal(top, np.full(4, -INF, np.float32), err_msg=target)
        np.testing.assert_array_equal(bottom, np.full(4, INF, np.float32), err_msg=target)
        np.testing.assert_array_equal(total, np.zeros(4, np.float32), err_msg=target)
        np.testing.assert_array_equal(mean, np.full(4, NAN, np.float32), err_msg=target)


@pytest.mark.parametrize("declared", [(3, 0), (3, None)], ids=str)
def test_softmax_over_an_empty_axis_is_empty(declared: tuple) -> None:
    data = np.zeros((3, 0), np.float32)
    results = run_both(lambda x: [fc.nn.softmax(x), fc.nn.log_softmax(x)], {"x": (declared, data)})
    for target, outs in results.items():
        for out in outs:
            assert out.shape == (3, 0) and out.dtype == np.float32, (target, out.shape)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_reduction_over_an_empty_axis_is_an_error(target: str, name: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, None], name="x")
        index = getattr(fc, name)(x, axis=1)
        with pytest.raises(FlowcTypeError, match=re.escape(f"{name} over zero-size axis 0 of shape [0, 4]")):
            getattr(fc, name)(fc.zeros([0, 4]), axis=0)  # a static 0: at build time
    with fc.Session(target=target, graph=g) as sess:
        np.testing.assert_array_equal(sess.run(index, {x: np.eye(3, dtype=np.float32)}), [0, 1, 2] if name ==
                                      "argmax" else [1, 0, 0])
        for shape in ((3, 0), (0, 0)):  # the result is empty in the second: still no index to give
            with pytest.raises(RuntimeShapeError, match=re.escape(f"zero-size axis 1 of shape {list(shape)}")) as info:
                sess.run(index, {x: np.zeros(shape, np.float32)})
            assert isinstance(info.value, FlowcError) and name in str(info.value)
            assert "test_defined_cases.py" in str(info.value)  # the user's line


# -- gradients through reductions over empty axes ----------------------------------------------


@pytest.mark.parametrize("declared", [(3, 0), (3, None)], ids=str)
def test_gradients_of_reductions_over_empty_axes(declared: tuple) -> None:
    """Each reduction's gradient over an empty axis is an empty array on both targets; the sums
    around it stay finite where the reduced values would be infinite."""
    data = np.zeros((3, 0), np.float32)

    def build(x):  # type: ignore[no-untyped-def]
        losses = [fc.reduce_sum(fc.reduce_sum(x, axis=1)), fc.reduce_sum(fc.reduce_mean(x, axis=1)),
                  fc.reduce_sum(fc.reduce_max(x, axis=1)), fc.reduce_sum(fc.reduce_min(x, axis=1)),
                  fc.reduce_sum(fc.nn.softmax(x)), fc.reduce_sum(fc.nn.log_softmax(x)), fc.reduce_mean(x)]
        return [fc.gradients(loss, [x])[0] for loss in losses]

    results = run_both(build, {"x": (declared, data)})
    for target, grads in results.items():
        for grad in grads:
            assert grad.shape == (3, 0) and grad.dtype == np.float32, (target, grad.shape)


def test_gradients_over_an_empty_batch() -> None:
    """A None batch fed 0: the weight gradient of a mean loss is a sum over no rows (0 * NaN aside)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3)).astype(np.float32)

    def build(x, w):  # type: ignore[no-untyped-def]
        loss = fc.reduce_sum(fc.reduce_max(fc.matmul(x, w), axis=0)) + fc.reduce_sum(fc.nn.softmax(fc.matmul(x, w)))
        return fc.gradients(loss, [x, w])

    results = run_both(build, {"x": ((None, 4), np.zeros((0, 4), np.float32)), "w": ((4, 3), w)})
    for target, (grad_x, grad_w) in results.items():
        assert grad_x.shape == (0, 4), target
        np.testing.assert_array_equal(grad_w, np.zeros((4, 3), np.float32), err_msg=target)
