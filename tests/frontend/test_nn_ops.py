"""fc.nn helpers (compiler/nn_ops.py) and the cross-entropy argument checks (issue 19 items 5, 6).

Values against numpy formulas (extreme logits for the stable forms), cpu against reference,
odd shapes and size-0/1 dims, gradients against central differences in float64, and bad
arguments as FlowcErrors naming the op and the user's line.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcError, IndexOutOfRange

TARGETS = ["reference", "cpu"]
HERE = "test_nn_ops.py"


def run(build: Callable[..., Any], *values: np.ndarray, target: str = "cpu") -> Any:
    """build(*placeholders) run on `values` (placeholders of their dtype and shape)."""
    g = fc.Graph()
    with g.as_default():
        inputs = [fc.placeholder(v.dtype, v.shape) for v in values]
        out = build(*inputs)
    with fc.Session(graph=g, target=target) as sess:
        return sess.run(out, dict(zip(inputs, values)))


def softplus_np(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x.astype(np.float64))


def log1p_exp_minus_abs(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(-np.abs(x)))


def sigmoid_np(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x.astype(np.float64)))


EXTREMES = np.array([-1e4, -100.0, -20.0, -3.0, -0.5, -1e-6, 0.0, 1e-6, 0.5, 3.0, 20.0, 100.0, 1e4])


def expm1_elu(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return np.where(x64 > 0, x64, np.expm1(np.minimum(x64, 0)))


ACTIVATIONS = {
    "softplus": (fc.nn.softplus, softplus_np),
    "softsign": (fc.nn.softsign, lambda x: x / (1 + np.abs(x))),
    "leaky_relu": (fc.nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (fc.nn.elu, expm1_elu),
    "selu": (fc.nn.selu,
             lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))),
    "relu6": (fc.nn.relu6, lambda x: np.clip(x, 0, 6)),
}


def close(actual: np.ndarray, expected: np.ndarray, dtype: Any) -> None:
    """A few ulp relative, with an absolute floor at the dtype's smallest normal number."""
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=8 * eps, atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_values_at_extremes(name: str, dtype: Any, target: str) -> None:
    op, formula = ACTIVATIONS[name]
    x = EXTREMES.astype(dtype)
    close(run(op, x, target=target), formula(x.astype(np.float64)), dtype)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(3, 5, 7), (0, 4), (1, 1), (1,), ()])
def test_activation_cpu_matches_reference_on_odd_shapes(name: str, shape: tuple[int, ...], rng) -> None:
    op, _ = ACTIVATIONS[name]
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    np.testing.assert_allclose(run(op, x, target="cpu"), run(op, x, target="reference"), rtol=1e-6, atol=1e-7)


def test_softplus_keeps_tiny_values_and_infinities() -> None:
    x = np.array([-np.inf, -50.0, -1e-8, np.inf], np.float64)
    out = run(fc.nn.softplus, x)
    assert out[0] == 0 and out[3] == np.inf
    np.testing.assert_allclose(out[1:3], softplus_np(x[1:3]), rtol=1e-15)


# -- gradients against central differences, float64 ----------------------------------------


def gradient_check(build: Callable[..., Any], *values: np.ndarray, step: float = 1e-6, tolerance: float = 1e-6,
                   target: str = "reference") -> None:
    """d sum(w * build(x)) / dx by fc.gradients against central differences, for every x."""
    rng = np.random.default_rng(0)
    g = fc.Graph()
    with g.as_default():
        inputs = [fc.placeholder(fc.float64, v.shape) for v in values]
        out = build(*inputs)
        weights = fc.constant(rng.standard_normal(out.shape))
        loss = fc.reduce_sum(out * weights)
        grads = fc.gradients(loss, inputs)
    with fc.Session(graph=g, target=target) as sess:
        feeds = dict(zip(inputs, values))
        analytic = sess.run(grads, feeds)
        for which, value in enumerate(values):
            numeric = np.zeros_like(value)
            for index in np.ndindex(value.shape):
                shifted = [v.copy() for v in values]
                shifted[which][index] += step
                up = sess.run(loss, dict(zip(inputs, shifted)))
                shifted[which][index] -= 2 * step
                down = sess.run(loss, dict(zip(inputs, shifted)))
                numeric[index] = (up - down) / (2 * step)
            np.testing.assert_allclose(analytic[which], numeric, rtol=tolerance, atol=tolerance)


AWAY_FROM_KINKS = np.array([[-7.0, -2.5, -0.3, 0.2], [0.7, 2.0, 4.5, 8.0]])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradients(name: str) -> None:
    gradient_check(ACTIVATIONS[name][0], AWAY_FROM_KINKS)


@pytest.mark.parametrize("target", TARGETS)
def test_softplus_gradient_is_sigmoid_everywhere(target: str) -> None:
    x = np.array([-1e4, -100.0, -30.0, -1e-9, 0.0, 1e-9, 30.0, 100.0, 1e4])
    g = fc.Graph()
    with g.as_default():
        xs = fc.placeholder(fc.float64, x.shape)
        grad = fc.gradients(fc.reduce_sum(fc.nn.softplus(xs)), xs)[0]
        losses = fc.nn.sigmoid_cross_entropy_with_logits(labels=0.25 + 0 * xs, logits=xs)
        sce = fc.gradients(fc.reduce_sum(losses), xs)[0]
    with fc.Session(graph=g, target=target) as sess:
        got, got_sce = sess.run([grad, sce], {xs: x})
    np.testing.assert_allclose(got, sigmoid_np(x), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(got_sce, sigmoid_np(x) - 0.25, rtol=1e-14, atol=1e-15)


# -- losses ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_weighted_cross_entropy_at_extreme_logits(dtype: Any, target: str) -> None:
    x = np.concatenate([EXTREMES, EXTREMES]).astype(dtype)
    z = np.repeat([0.0, 1.0], EXTREMES.size).astype(dtype)
    sce = run(lambda a, b: fc.nn.sigmoid_cross_entropy_with_logits(labels=b, logits=a), x, z, target=target)
    x64, z64 = x.astype(np.float64), z.astype(np.float64)
    expected = (np.maximum(x64, 0) - x64 * z64) + log1p_exp_minus_abs(x64)
    np.testing.assert_allclose(sce, expected, rtol=8 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)
    weighted = run(lambda a, b: fc.nn.weighted_cross_entropy_with_logits(labels=b, logits=a, pos_weight=3.0), x, z,
                   target=target)
    expected = ((1 - z64) * x64 + (1 + 2 * z64) * np.maximum(-x64, 0)) + (1 + 2 * z64) * log1p_exp_minus_abs(x64)
    np.testing.assert_allclose(weighted, expected, rtol=8 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)
    assert np.all(np.isfinite(sce)) and np.all(np.isfinite(weighted))


def test_loss_gradients() -> None:
    logits = AWAY_FROM_KINKS
    labels = np.array([[0.0, 1.0, 0.3, 0.9], [1.0, 0.0, 0.5, 0.2]])
    gradient_check(lambda a, b: fc.nn.sigmoid_cross_entropy_with_logits(labels=b, logits=a), logits, labels)
    gradient_check(lambda a, b: fc.nn.weighted_cross_entropy_with_logits(targets=b, logits=a, pos_weight=0.5),
                   logits, labels)
    gradient_check(lambda a: fc.reshape(fc.nn.l2_loss(a), [1]), logits)


@pytest.mark.parametrize("target", TARGETS)
def test_l2_loss_and_l2_normalize(target: str, rng) -> None:
    x = rng.standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(run(fc.nn.l2_loss, x, target=target), np.sum(x.astype(np.float64) ** 2) / 2, rtol=1e-6)
    for axis in (0, 1, None, [0, 1]):
        norm = np.sqrt(np.maximum(np.sum(x ** 2, axis=None if axis is None else tuple(np.atleast_1d(axis)),
                                         keepdims=True), 1e-12))
        np.testing.assert_allclose(run(lambda a: fc.nn.l2_normalize(a, axis), x, target=target), x / norm, rtol=1e-6)
    zero = np.zeros((2, 0), np.float32)
    assert run(fc.nn.l2_normalize, zero, target=target).shape == (2, 0)
    assert run(fc.nn.l2_loss, zero, target=target) == 0
    gradient_check(lambda a: fc.nn.l2_normalize(a, axis=1), AWAY_FROM_KINKS)


# -- item 6: sparse labels out of range, positional arguments --------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("bad", [10, -1])
def test_sparse_cross_entropy_label_out_of_range_raises(bad: int, target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        logits = fc.placeholder(fc.float32, [None, 10])
        labels = fc.placeholder(fc.int32, [None])
        loss = fc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    with fc.Session(graph=g, target=target) as sess:
        good = sess.run(loss, {logits: np.zeros((2, 10)), labels: [3, 9]})
        np.testing.assert_allclose(good, [np.log(10)] * 2, rtol=1e-6)
        with pytest.raises(IndexOutOfRange, match=rf"SparseSoftmaxCrossEntropyWithLogits.*{HERE}.*index {bad} is out "
                                                  r"of range \[0, 10\)"):
            sess.run(loss, {logits: np.zeros((2, 10)), labels: [2, bad]})


def test_sparse_cross_entropy_label_check_on_a_fixed_batch_and_its_gradient() -> None:
    logits = np.random.default_rng(1).standard_normal((3, 5))
    labels = np.array([4, 0, 2])
    expected = -(logits - np.log(np.exp(logits).sum(1, keepdims=True)))[np.arange(3), labels]
    for target in TARGETS:
        got = run(lambda a: fc.nn.sparse_softmax_cross_entropy_with_logits(labels=fc.constant(labels), logits=a),
                  logits, target=target)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    gradient_check(lambda a: fc.nn.sparse_softmax_cross_entropy_with_logits(labels=fc.constant(labels), logits=a),
                   logits)


@pytest.mark.parametrize("op", ["softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
                                "sigmoid_cross_entropy_with_logits"])
def test_cross_entropies_refuse_positional_arguments(op: str) -> None:
    with fc.Graph().as_default():
        logits = fc.constant([[1.0, 2.0]])
        labels = fc.constant([[0.0, 1.0]])
        with pytest.raises(FlowcError, match=rf"^{op} \(created at {HERE}:\d+\): .*labels=\.\.\., logits=\.\.\."):
            getattr(fc.nn, op)(logits, labels)
        with pytest.raises(FlowcError, match=rf"^{op} .*labels= and logits= missing"):
            getattr(fc.nn, op)(logits=logits)


def test_softmax_cross_entropy_by_name_is_right_either_order() -> None:
    logits = np.array([[1.0, 2.0, 0.5]])
    labels = np.array([[0.2, 0.7, 0.1]])
    expected = -(labels * (logits - np.log(np.exp(logits).sum()))).sum(1)
    with fc.Graph().as_default() as g:
        a = fc.nn.softmax_cross_entropy_with_logits(logits=fc.constant(logits), labels=fc.constant(labels))
        b = fc.nn.softmax_cross_entropy_with_logits(labels=fc.constant(labels), logits=fc.constant(logits), dim=1)
    with fc.Session(graph=g) as sess:
        for value in sess.run([a, b]):
            np.testing.assert_allclose(value, expected, rtol=1e-12)


# -- moments and batch normalization -------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_moments_and_batch_normalization(target: str, rng) -> None:
    x = rng.standard_normal((4, 3, 5)).astype(np.float64) * 3 + 1
    for axes in ([0], [0, 1], [2], [0, 1, 2]):
        mean, variance = run(lambda a: fc.nn.moments(a, axes), x, target=target)
        np.testing.assert_allclose(mean, x.mean(tuple(axes)), rtol=1e-12)
        np.testing.assert_allclose(variance, x.var(tuple(axes)), rtol=1e-12)
        kept = run(lambda a: fc.nn.moments(a, axes, keep_dims=True)[1], x, target=target)
        assert kept.shape == x.var(tuple(axes), keepdims=True).shape
    mean, variance = x.mean((0, 1)), x.var((0, 1))
    scale, offset = np.array([1.0, 2.0, 0.5, 1.5, 3.0]), np.array([0.0, -1.0, 2.0, 0.1, 0.2])
    y = run(lambda a: fc.nn.batch_normalization(a, mean, variance, offset, scale, 1e-3), x, target=target)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(variance + 1e-3) * scale + offset, rtol=1e-12, atol=1e-12)
    y = run(lambda a: fc.nn.batch_normalization(a, mean, variance, None, None, 1e-3), x, target=target)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(variance + 1e-3), rtol=1e-12, atol=1e-12)


def test_moments_and_batch_norm_gradients() -> None:
    x = np.random.default_rng(2).standard_normal((3, 4))
    gradient_check(lambda a: fc.stack(fc.nn.moments(a, [0])), x)
    gradient_check(lambda a: fc.nn.batch_normalization(a, *fc.nn.moments(a, [0]), None, None, 1e-3), x)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_fused_batch_norm_training_and_inference(data_format: str, target: str, rng) -> None:
    x = rng.standard_normal((2, 3, 4, 5)) * 2 + 0.5
    channel = 3 if data_format == "NHWC" else 1
    axes = tuple(a for a in range(4) if a != channel)
    channels = x.shape[channel]
    scale, offset = rng.uniform(0.5, 2, channels), rng.standard_normal(channels)
    shape = [1, 1, 1, 1]
    shape[channel] = -1

    def per_channel(v: np.ndarray) -> np.ndarray:
        return v.reshape(shape)

    y, mean, variance = run(lambda a: fc.nn.fused_batch_norm(a, scale, offset, data_format=data_format), x,
                            target=target)
    n = x.size // channels
    np.testing.assert_allclose(mean, x.mean(axes), rtol=1e-12)
    np.testing.assert_allclose(variance, x.var(axes) * n / (n - 1), rtol=1e-12)
    expected = (x - per_channel(x.mean(axes))) / np.sqrt(per_channel(x.var(axes)) + 1e-3) * per_channel(scale)
    np.testing.assert_allclose(y, expected + per_channel(offset), rtol=1e-10, atol=1e-12)
    given_mean, given_variance = rng.standard_normal(channels), rng.uniform(0.5, 2, channels)
    y, m, v = run(lambda a: fc.nn.fused_batch_norm(a, scale, offset, given_mean, given_variance, epsilon=0.01,
                                                   data_format=data_format, is_training=False), x, target=target)
    expected = (x - per_channel(given_mean)) / np.sqrt(per_channel(given_variance) + 0.01) * per_channel(scale)
    np.testing.assert_allclose(y, expected + per_channel(offset), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(m, given_mean)
    np.testing.assert_array_equal(v, given_variance)


@pytest.mark.parametrize("target", TARGETS)
def test_fused_batch_norm_with_an_unknown_batch(target: str, rng) -> None:
    x = rng.standard_normal((3, 2, 2, 4))
    g = fc.Graph()
    with g.as_default():
        xs = fc.placeholder(fc.float64, [None, 2, 2, 4])
        y, mean, variance = fc.nn.fused_batch_norm(xs, np.ones(4), np.zeros(4))
    with fc.Session(graph=g, target=target) as sess:
        for batch in (3, 1):
            got_y, got_mean, got_variance = sess.run([y, mean, variance], {xs: x[:batch]})
            n = batch * 4
            np.testing.assert_allclose(got_mean, x[:batch].mean((0, 1, 2)), rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(got_variance, x[:batch].var((0, 1, 2)) * n / (n - 1), rtol=1e-12)
            expected = (x[:batch] - x[:batch].mean((0, 1, 2))) / np.sqrt(x[:batch].var((0, 1, 2)) + 1e-3)
            np.testing.assert_allclose(got_y, expected, rtol=1e-10, atol=1e-12)


def test_fused_batch_norm_gradient() -> None:
    x = np.random.default_rng(3).standard_normal((2, 2, 3, 2))
    gradient_check(lambda a: fc.nn.fused_batch_norm(a, [1.0, 2.0], [0.5, -0.5])[0], x)


def test_fused_batch_norm_bad_arguments() -> None:
    with fc.Graph().as_default():
        x = fc.zeros([2, 3], fc.float32)
        with pytest.raises(FlowcError, match=rf"^fused_batch_norm \(created at {HERE}:\d+\): x must be 4-D"):
            fc.nn.fused_batch_norm(x, [1.0], [0.0])
        x4 = fc.zeros([1, 2, 2, 3])
        with pytest.raises(FlowcError, match=r"fused_batch_norm.*data_format must be"):
            fc.nn.fused_batch_norm(x4, [1.0] * 3, [0.0] * 3, data_format="NCWH")
        with pytest.raises(FlowcError, match=r"fused_batch_norm.*needs mean and variance"):
            fc.nn.fused_batch_norm(x4, [1.0] * 3, [0.0] * 3, is_training=False)


# -- embedding_lookup ----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_embedding_lookup_rows_and_duplicate_id_gradient(target: str) -> None:
    table = np.arange(12, dtype=np.float64).reshape(6, 2)
    ids = np.array([[1, 4, 1], [5, 1, 0]])
    g = fc.Graph()
    with g.as_default():
        params = fc.placeholder(fc.float64, [6, 2])
        rows = fc.nn.embedding_lookup(params, fc.constant(ids))
        grad = fc.gradients(fc.reduce_sum(rows * 2.0), params)[0]
    with fc.Session(graph=g, target=target) as sess:
        got_rows, got_grad = sess.run([rows, grad], {params: table})
    np.testing.assert_array_equal(got_rows, table[ids])
    counts = np.bincount(ids.ravel(), minlength=6)[:, None] * 2.0
    np.testing.assert_array_equal(got_grad, np.broadcast_to(counts, (6, 2)))


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_embedding_lookup_sharded_and_max_norm(strategy: str) -> None:
    table = np.random.default_rng(4).standard_normal((7, 3)) * 3
    if strategy == "mod":
        shards = [table[i::3] for i in range(3)]
    else:
        shards = [table[0:3], table[3:5], table[5:7]]
    ids = np.array([6, 0, 3, 5, 2, 2])
    for target in TARGETS:
        with fc.Graph().as_default() as g:
            rows = fc.nn.embedding_lookup([fc.constant(s) for s in shards], fc.constant(ids),
                                          partition_strategy=strategy)
            clipped = fc.nn.embedding_lookup(fc.constant(table), fc.constant(ids), max_norm=2.0)
        with fc.Session(graph=g, target=target) as sess:
            got, got_clipped = sess.run([rows, clipped])
        np.testing.assert_array_equal(got, table[ids])
        norms = np.linalg.norm(table[ids], axis=1, keepdims=True)
        np.testing.assert_allclose(got_clipped, table[ids] * np.minimum(1.0, 2.0 / norms), rtol=1e-12)


def test_embedding_lookup_id_out_of_range_raises() -> None:
    for target in TARGETS:
        g = fc.Graph()
        with g.as_default():
            ids = fc.placeholder(fc.int32, [None])
            rows = fc.nn.embedding_lookup(fc.constant(np.ones((4, 2), np.float32)), ids)
        with fc.Session(graph=g, target=target) as sess:
            with pytest.raises(IndexOutOfRange, match=rf"embedding_lookup.*{HERE}.*index 4 is out of range \[0, 4\)"):
                sess.run(rows, {ids: [0, 4]})


# -- clipping ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_clip_by_value_and_norm(target: str, rng) -> None:
    x = rng.standard_normal((3, 4)) * 3
    np.testing.assert_array_equal(run(lambda a: fc.clip_by_value(a, -1.0, 2.0), x, target=target), np.clip(x, -1, 2))
    for axes in (None, [1], [0]):
        got = run(lambda a: fc.clip_by_norm(a, 2.5, axes=axes), x, target=target)
        norm = np.sqrt(np.sum(x ** 2, axis=None if axes is None else tuple(axes), keepdims=True))
        np.testing.assert_allclose(got, x * 2.5 / np.maximum(norm, 2.5), rtol=1e-12)
    zero = np.zeros((2, 2))
    np.testing.assert_array_equal(run(lambda a: fc.clip_by_norm(a, 1.0), zero, target=target), zero)


@pytest.mark.parametrize("target", TARGETS)
def test_clip_by_global_norm_keeps_none(target: str, rng) -> None:
    a, b = rng.standard_normal((2, 3)), rng.standard_normal(5)
    norm = np.sqrt(np.sum(a ** 2) + np.sum(b ** 2))
    with fc.Graph().as_default() as g:
        clipped, got_norm = fc.clip_by_global_norm([fc.constant(a), None, fc.constant(b)], 1.0)
        plain = fc.global_norm([fc.constant(a), None, fc.constant(b)])
        unclipped, _ = fc.clip_by_global_norm([fc.constant(a)], 100.0)
        infinite, _ = fc.clip_by_global_norm([fc.constant([np.inf, 1.0])], 1.0)
    assert clipped[1] is None
    with fc.Session(graph=g, target=target) as sess:
        ca, cb, n, p, u, inf = sess.run([clipped[0], clipped[2], got_norm, plain, unclipped[0], infinite[0]])
    np.testing.assert_allclose([n, p], [norm, norm], rtol=1e-12)
    np.testing.assert_allclose(ca, a / norm, rtol=1e-12)
    np.testing.assert_allclose(cb, b / norm, rtol=1e-12)
    np.testing.assert_allclose(u, a, rtol=1e-12)
    assert np.all(np.isnan(inf))


def test_clipping_gradients() -> None:
    x = np.array([[0.5, -2.0, 1.5], [3.0, -0.2, 0.7]])
    gradient_check(lambda a: fc.clip_by_value(a, -1.0, 1.0), x)
    gradient_check(lambda a: fc.clip_by_norm(a, 1.0), x)
    gradient_check(lambda a: fc.clip_by_global_norm([a, a * 2.0], 1.5)[0][1], x)


def test_bad_arguments_name_the_op_and_line() -> None:
    with fc.Graph().as_default():
        ints = fc.constant([1, 2])
        with pytest.raises(FlowcError, match=rf"^softplus \(created at {HERE}:\d+\): expected a float32 or float64"):
            fc.nn.softplus(ints)
        with pytest.raises(FlowcError, match=rf"^clip_by_global_norm \(created at {HERE}:\d+\): t_list must be a list"):
            fc.clip_by_global_norm(fc.constant([1.0]), 1.0)
        with pytest.raises(FlowcError, match=rf"^embedding_lookup \(created at {HERE}:\d+\): partition_strategy"):
            fc.nn.embedding_lookup(fc.constant([[1.0]]), [0], partition_strategy="hash")
        with pytest.raises(FlowcError, match=r"^weighted_cross_entropy_with_logits .*pos_weight are all needed"):
            fc.nn.weighted_cross_entropy_with_logits(labels=fc.constant([1.0]), logits=fc.constant([1.0]))
        with pytest.raises(FlowcError, match=r"^batch_normalization .*expected a float32 tensor \(the dtype of"):
            fc.nn.batch_normalization(fc.constant([1.0]), fc.constant([1.0], fc.float64), 1.0, None, None, 1e-3)


COMPOSITES = {
    "sigmoid_cross_entropy": lambda x: fc.nn.sigmoid_cross_entropy_with_logits(labels=fc.sigmoid(x), logits=x * 30.0),
    "weighted_cross_entropy": lambda x: fc.nn.weighted_cross_entropy_with_logits(fc.sigmoid(x), x * 30.0, 2.0),
    "l2_normalize": lambda x: fc.nn.l2_normalize(x, -1),
    "moments": lambda x: fc.stack(fc.nn.moments(x * 3.0, [0])),
    "batch_normalization": lambda x: fc.nn.batch_normalization(x, 0.5, 2.0, 0.1, 3.0, 1e-3),
    "clip_by_value": lambda x: fc.clip_by_value(x, -0.5, 0.5),
    "clip_by_norm": lambda x: fc.clip_by_norm(x, 1.0, axes=[-1]),
    "clip_by_global_norm": lambda x: fc.clip_by_global_norm([x, None, x * 2.0], 1.0)[0][2],
    "embedding_lookup": lambda x: fc.nn.embedding_lookup(x, fc.constant([0, 0]), max_norm=1.0),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 1), (1,), (2, 0), (4, 1, 3)])
def test_composites_cpu_matches_reference_on_odd_shapes(name: str, shape: tuple[int, ...], rng) -> None:
    if name == "embedding_lookup" and shape[0] == 0:
        pytest.skip("no row to look up")
    x = rng.standard_normal(shape).astype(np.float32)
    with np.errstate(all="ignore"):  # moments of an empty axis are NaN on both
        native, reference = run(COMPOSITES[name], x, target="cpu"), run(COMPOSITES[name], x, target="reference")
    assert native.shape == reference.shape
    np.testing.assert_allclose(native, reference, rtol=2e-6, atol=1e-6)
