"""The TF1 front end of reduce_prod / any / all, reduce_logsumexp, add_n, cumsum, cumprod, nn.top_k,
nn.in_top_k and argmax / argmin: TensorFlow's signatures and semantics, on both targets, gradients
against central differences in float64, and errors that name the op and the user's line."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcError

TARGETS = ["reference", "cpu"]


def run(build, feeds: dict[str, np.ndarray], target: str):  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        placeholders = {k: fc.placeholder(_dtype(v), [None] * v.ndim, name=k) for k, v in feeds.items()}
        out = build(**placeholders)
    with fc.Session(target=target, graph=g) as sess:
        return sess.run(out, {placeholders[k]: v for k, v in feeds.items()})


def _dtype(value: np.ndarray) -> fc.DType:
    return {"float32": fc.float32, "float64": fc.float64, "int32": fc.int32, "int64": fc.int64,
            "bool": fc.bool}[value.dtype.name]


# -- reduce_logsumexp ----------------------------------------------------------------------------


def logsumexp(x: np.ndarray, axis, keepdims: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    """TensorFlow's definition in float64: max-shifted, a non-finite max shifting by 0."""
    top = np.max(x, axis=axis, keepdims=True, initial=-np.inf).astype(np.float64)
    top = np.where(np.isfinite(top), top, 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        total = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return total if keepdims else np.squeeze(total, axis=axis if axis is not None else None)


@pytest.mark.parametrize("target", TARGETS)
def test_reduce_logsumexp_is_stable_for_large_and_infinite_inputs(target: str, rng) -> None:
    x = (rng.standard_normal((4, 7)) * 300).astype(np.float32)
    x[1] = -np.inf  # a row of -inf: -inf, not NaN
    x[2, 3] = np.inf  # +inf in a row: +inf
    x[3] += 1e4  # far above exp's range
    axes = [None, 0, 1, -1, (0, 1)]
    got = run(lambda x: [fc.reduce_logsumexp(x, a, keepdims=k) for a in axes for k in (False, True)], {"x": x}, target)
    for (axis, keep), value in zip([(a, k) for a in axes for k in (False, True)], got):
        want = logsumexp(x.astype(np.float64), axis if not isinstance(axis, int) else (axis,), keep)
        assert value.shape == want.shape, (axis, keep)
        np.testing.assert_allclose(value, want.astype(np.float32), rtol=1e-5, err_msg=f"{axis} {keep}")


@pytest.mark.parametrize("target", TARGETS)
def test_reduce_logsumexp_of_an_empty_axis_is_minus_infinity(target: str) -> None:
    got = run(lambda x: fc.reduce_logsumexp(x, 1), {"x": np.zeros((3, 0), np.float32)}, target)
    np.testing.assert_array_equal(got, np.full(3, -np.inf, np.float32))


def test_reduce_logsumexp_refuses_integers_naming_the_op_and_line() -> None:
    with fc.Graph().as_default():
        with pytest.raises(FlowcError, match=r"reduce_logsumexp.*test_reductions_more.py:\d+.*float32 or float64"):
            fc.reduce_logsumexp(fc.constant([1, 2]))


# -- add_n -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_add_n_sums_in_order(target: str, dtype: str, rng) -> None:
    values = [(rng.standard_normal((3, 5)) * 10).astype(dtype) for _ in range(4)]
    feeds = {f"v{i}": v for i, v in enumerate(values)}
    got = run(lambda **vs: [fc.add_n([vs["v0"]]), fc.add_n([vs[f"v{i}"] for i in range(4)])], feeds, target)
    np.testing.assert_array_equal(got[0], values[0])
    np.testing.assert_array_equal(got[1], ((values[0] + values[1]) + values[2]) + values[3])


@pytest.mark.parametrize("inputs, message", [
    (lambda: [], "non-empty list"),
    (lambda: fc.constant([1.0]), "non-empty list"),
    (lambda: [fc.constant([1.0, 2.0]), fc.constant([1.0])], r"one shape and dtype.*f32\[2\].*f32\[1\]"),
    (lambda: [fc.constant([1.0]), fc.constant([1])], "one shape and dtype"),
])
def test_add_n_bad_inputs_name_the_op_and_line(inputs, message: str) -> None:
    with fc.Graph().as_default():
        with pytest.raises(FlowcError, match=message) as caught:
            fc.add_n(inputs())
    assert "add_n" in str(caught.value) and "test_reductions_more.py" in str(caught.value), str(caught.value)


# -- in_top_k ----------------------------------------------------------------------------------------


def tf_in_top_k(predictions: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """TensorFlow 1's kernel (in_top_k_op.h), row by row."""
    out = []
    for row, target in zip(predictions, targets):
        if not 0 <= target < row.size or not np.isfinite(row[target]) or not np.isfinite(row).all():
            out.append(False)
            continue
        out.append(int(np.sum(row > row[target])) < k)
    return np.array(out, dtype=bool)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("static_classes", [True, False])
def test_in_top_k_has_tensorflows_semantics(target: str, static_classes: bool) -> None:
    predictions = np.array([[0.1, 0.5, 0.4, 0.0],
                            [0.3, 0.3, 0.3, 0.3],  # ties straddling the boundary: all in the top k
                            [0.2, 0.9, 0.2, 0.1],
                            [0.2, np.nan, 0.8, 0.1],  # a NaN anywhere: False
                            [np.inf, 0.1, 0.2, 0.3],  # an inf anywhere: False
                            [0.1, 0.2, 0.3, 0.4],
                            [0.1, 0.2, 0.3, 0.4]], np.float32)
    targets = np.array([2, 3, 0, 2, 0, 4, -1], np.int32)  # the last two are outside [0, 4): False
    g = fc.Graph()
    with g.as_default():
        shape = [None, 4 if static_classes else None]
        p = fc.placeholder(fc.float32, shape, name="p")
        t = fc.placeholder(fc.int32, [None], name="t")
        k_fed = fc.placeholder(fc.int32, [], name="k")
        outs = [fc.nn.in_top_k(p, t, k) for k in range(5)] + [fc.math.in_top_k(p, fc.cast(t, fc.int64), k_fed)]
    with fc.Session(target=target, graph=g) as sess:
        got = sess.run(outs, {p: predictions, t: targets, k_fed: np.int32(2)})
    for k in range(5):
        np.testing.assert_array_equal(got[k], tf_in_top_k(predictions, targets, k), err_msg=f"k={k}")
    np.testing.assert_array_equal(got[5], tf_in_top_k(predictions, targets, 2))
    assert got[0].dtype == bool and not got[0].any()


def test_in_top_k_bad_arguments_name_the_op() -> None:
    with fc.Graph().as_default():
        with pytest.raises(FlowcError, match=r"in_top_k.*float matrix"):
            fc.nn.in_top_k(fc.constant([1.0, 2.0]), fc.constant([0]), 1)
        with pytest.raises(FlowcError, match=r"in_top_k.*int32 or int64 vector"):
            fc.nn.in_top_k(fc.constant([[1.0, 2.0]]), fc.constant([0.0]), 1)


# -- argmax / argmin ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_argmax_and_argmin_on_every_axis(target: str, dtype: str, rng) -> None:
    x = (rng.integers(-3, 4, (4, 5, 6))).astype(dtype)  # many ties: the first index wins
    axes = [0, 1, 2, -1, -3]
    got = run(lambda x: [f(x, a) for f in (fc.argmax, fc.argmin) for a in axes], {"x": x}, target)
    want = [f(x, a) for f in (np.argmax, np.argmin) for a in axes]
    for value, expected in zip(got, want):
        np.testing.assert_array_equal(value, expected)
        assert value.dtype == np.int64


def test_argmax_has_tensorflow_1s_signature() -> None:
    x = np.array([[1.0, 5.0], [7.0, 2.0]], np.float32)
    with fc.Graph().as_default() as g:
        outs = [fc.argmax(x), fc.argmax(x, 1, "named", output_type=fc.int32), fc.argmin(x, dimension=1),
                fc.math.argmax(x, axis=-1)]
    assert outs[1].op.name == "named" and outs[1].dtype == fc.int32
    with fc.Session(graph=g) as sess:
        got = sess.run(outs)
    np.testing.assert_array_equal(got[0], [1, 0])
    np.testing.assert_array_equal(got[1], [1, 0])
    np.testing.assert_array_equal(got[2], [0, 1])
    np.testing.assert_array_equal(got[3], [1, 0])
    with fc.Graph().as_default():
        with pytest.raises(FlowcError, match="axis or dimension, not both"):
            fc.argmax(x, axis=0, dimension=0)


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build, message", [
    (lambda x: fc.cumsum(x, axis=2), r"cumsum 'Cumsum'.*axis 2 is out of range for rank 2"),
    (lambda x: fc.cumprod(x, axis=-3), r"cumprod 'Cumprod'.*axis -3 is out of range"),
    (lambda x: fc.cumsum(x, axis=fc.placeholder(fc.int32, [])), r"cumsum.*axis must be known when the graph is built"),
    (lambda x: fc.nn.top_k(x, 4), r"top_k 'TopKV2'.*k = 4 is more than the 3 entries"),
    (lambda x: fc.nn.top_k(x, -1), r"top_k.*k must be >= 0"),
    (lambda x: fc.nn.top_k(x, fc.placeholder(fc.float32, [], name="kk")), r"top_k.*k must be an int32 or int64 scalar"),
    (lambda x: fc.nn.top_k(fc.reduce_sum(x), 1), r"top_k.*at least one dim"),
    (lambda x: fc.reduce_prod(x, 2), r"reduce_prod 'Prod'.*axis 2 is out of range"),
    (lambda x: fc.reduce_any(x, 0), r"reduce_any 'Any'.*must be one of bool"),
    (lambda x: fc.reduce_all(x > 0.0, (0, 0)), r"reduce_all 'All'.*repeated axis"),
    (lambda x: fc.argmin(x, 2), r"argmin 'ArgMin'.*axis 2 is out of range"),
])
def test_bad_arguments_are_errors_naming_the_op_and_the_users_line(build, message: str) -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [2, 3])
        with pytest.raises(FlowcError, match=message) as caught:
            build(x)
    assert "test_reductions_more.py:" in str(caught.value), str(caught.value)


def test_top_k_takes_a_constant_k_and_gives_int32_indices() -> None:
    with fc.Graph().as_default() as g:
        values, indices = fc.nn.top_k(fc.constant([[3, 1, 2]]), k=fc.constant(2), sorted=False)
    assert indices.dtype == fc.int32 and values.shape == (1, 2)
    with fc.Session(graph=g) as sess:
        got_values, got_indices = sess.run([values, indices])
    np.testing.assert_array_equal(got_values, [[3, 2]])
    np.testing.assert_array_equal(got_indices, [[0, 2]])


def test_fc_math_aliases_are_the_same_functions() -> None:
    for name in ("reduce_prod", "reduce_any", "reduce_all", "reduce_logsumexp", "cumsum", "cumprod", "add_n",
                 "argmax", "argmin", "reduce_sum", "reduce_max"):
        assert getattr(fc.math, name) is getattr(fc, name), name
    assert fc.math.top_k is fc.nn.top_k and fc.math.in_top_k is fc.nn.in_top_k


# -- gradients through the front end, compiled, against central differences --------------------------


GRADIENT_CASES = {
    "reduce_prod with zeros": (lambda x: fc.reduce_prod(x, 1), lambda x: np.prod(x, 1),
                               np.array([[1.5, 0.0, -2.0, 0.7], [0.0, 3.0, 0.0, 1.1], [0.9, -1.2, 1.3, 2.0]])),
    "reduce_prod over all": (lambda x: fc.reduce_prod(x), lambda x: np.prod(x), None),
    "cumprod with zeros": (lambda x: fc.cumprod(x, 1, exclusive=True),
                           lambda x: np.cumprod(np.concatenate([np.ones((3, 1)), x[:, :-1]], 1), 1),
                           np.array([[1.5, 0.0, -2.0, 0.7], [0.0, 3.0, 0.0, 1.1], [0.9, -1.2, 1.3, 2.0]])),
    "cumsum reversed": (lambda x: fc.cumsum(x, 0, reverse=True), lambda x: np.cumsum(x[::-1], 0)[::-1], None),
    "logsumexp": (lambda x: fc.reduce_logsumexp(x * 50.0, 1),
                  lambda x: logsumexp(x * 50.0, (1,), False), None),
    "top_k values": (lambda x: fc.nn.top_k(x, 2)[0], lambda x: -np.sort(-x, 1)[:, :2], None),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradients_match_central_differences(name: str, target: str, rng) -> None:
    build, meaning, fixed = GRADIENT_CASES[name]
    x = fixed if fixed is not None else rng.permutation(12).reshape(3, 4) * 0.13 - 0.7  # distinct: no top_k ties
    weights = rng.standard_normal(np.shape(meaning(x)))
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.float64, [None, 4], name="x")
        loss = fc.reduce_sum(build(p) * weights)
        (grad,) = fc.gradients(loss, [p])
    with fc.Session(target=target, graph=g) as sess:
        got = sess.run(grad, {p: x})
    step, expected = 1e-6, np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        expected[index] = (np.sum(meaning(up) * weights) - np.sum(meaning(down) * weights)) / (2 * step)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
