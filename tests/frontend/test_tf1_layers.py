"""TF1's fc.layers, fc.losses and fc.contrib.layers regularizers (issue 20, item 3)."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FlowcTypeError, GraphError

TARGETS = ["reference", "cpu"]


@pytest.fixture(autouse=True)
def _fresh_graph():
    with fc.Graph().as_default() as graph:
        yield graph


def collection(key):
    return fc.get_default_graph().get_collection(key)


def session_values(target, fetches, feed=None, init=True):
    with fc.Session(target) as sess:
        if init:
            sess.run(fc.global_variables_initializer())
        return sess.run(fetches, feed or {})


def numpy_conv(x, kernel, stride, pad):
    x = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    kh, kw = kernel.shape[:2]
    out_h = (x.shape[1] - kh) // stride + 1
    out_w = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(window, kernel, axes=3)
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_dense_values_names_and_reuse(target, rng):
    x = fc.placeholder(fc.float64, [None, 4])
    y = fc.layers.dense(x, 3, activation=fc.nn.relu, bias_initializer=fc.constant_initializer(0.5))
    again = fc.layers.dense(x, 3, name="dense", reuse=True)
    other = fc.layers.dense(x, 2, use_bias=False)
    seq = fc.layers.dense(fc.placeholder(fc.float64, [None, 5, 4], name="seq"), 3, name="dense", reuse=True)
    names = [v.name for v in fc.global_variables()]
    assert names == ["dense/kernel:0", "dense/bias:0", "dense_1/kernel:0"]
    data = rng.standard_normal((6, 4))
    seq_data = rng.standard_normal((2, 5, 4))
    got = session_values(target, [y, again, other, seq, *fc.global_variables()], {x: data, "seq:0": seq_data})
    kernel, bias, kernel_1 = got[4:]
    np.testing.assert_array_equal(bias, [0.5] * 3)
    np.testing.assert_allclose(got[0], np.maximum(data @ kernel + bias, 0.0), rtol=1e-12)
    np.testing.assert_allclose(got[1], data @ kernel + bias, rtol=1e-12)
    np.testing.assert_allclose(got[2], data @ kernel_1, rtol=1e-12)
    np.testing.assert_allclose(got[3], seq_data @ kernel + bias, rtol=1e-12)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("padding,stride", [("valid", 1), ("same", 2)])
def test_conv2d_and_pooling_values(target, padding, stride, rng):
    x = fc.placeholder(fc.float64, [None, 7, 6, 2])
    conv = fc.layers.conv2d(x, 3, (3, 2), strides=stride, padding=padding,
                            bias_initializer=fc.random_normal_initializer(seed=1))
    pooled_max = fc.layers.max_pooling2d(x, 2, 2)
    pooled_avg = fc.layers.average_pooling2d(x, 3, 2, padding="same")
    flat = fc.layers.flatten(x)
    assert [v.name for v in fc.global_variables()] == ["conv2d/kernel:0", "conv2d/bias:0"]
    data = rng.standard_normal((3, 7, 6, 2))
    got = session_values(target, [conv, pooled_max, pooled_avg, flat, *fc.global_variables()], {x: data})
    kernel, bias = got[4:]
    assert kernel.shape == (3, 2, 2, 3)
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    else:  # SAME: output ceil(size / stride), the odd pixel of padding after
        totals = [max((-(-size // stride) - 1) * stride + k - size, 0) for size, k in ((7, 3), (6, 2))]
        pads = tuple((total // 2, total - total // 2) for total in totals)
    np.testing.assert_allclose(got[0], numpy_conv(data, kernel, stride, pads) + bias, rtol=1e-10, atol=1e-12)
    expected_max = data[:, :6, :6, :].reshape(3, 3, 2, 3, 2, 2).max(axis=(2, 4))
    np.testing.assert_allclose(got[1], expected_max)
    padded = np.pad(data, ((0, 0), (1, 1), (0, 1), (0, 0)), constant_values=np.nan)
    expected_avg = np.stack([np.stack([np.nanmean(padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :], axis=(1, 2))
                                       for j in range(3)], axis=1) for i in range(4)], axis=1)
    np.testing.assert_allclose(got[2], expected_avg, rtol=1e-12)
    np.testing.assert_array_equal(got[3], data.reshape(3, -1))


@pytest.mark.parametrize("target", TARGETS)
def test_dropout_training_flag(target):
    x = fc.ones([200, 50], dtype=fc.float32)
    training = fc.placeholder(fc.bool, [])
    off = fc.layers.dropout(x, 0.25)
    on = fc.layers.dropout(x, 0.25, seed=3, training=True)
    switched = fc.layers.dropout(x, 0.25, seed=3, training=training)
    with fc.Session(target) as sess:
        np.testing.assert_array_equal(sess.run(off), np.ones((200, 50)))
        dropped = sess.run(on)
        assert set(np.unique(dropped)) <= {0.0, np.float32(1 / 0.75)}
        np.testing.assert_allclose((dropped == 0).mean(), 0.25, atol=0.02)
        np.testing.assert_array_equal(sess.run(switched, {training: False}), np.ones((200, 50)))
        np.testing.assert_allclose((sess.run(switched, {training: True}) == 0).mean(), 0.25, atol=0.02)


def numpy_batch_norm(x, axes, gamma, beta, epsilon=1e-3):
    mean, variance = x.mean(axis=axes), x.var(axis=axes)
    shape = [1] * x.ndim
    keep = [a for a in range(x.ndim) if a not in axes][0]
    shape[keep] = -1
    return (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + epsilon) * gamma.reshape(shape) \
        + beta.reshape(shape), mean, variance


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("rank,axis", [(4, -1), (4, 1), (2, -1), (3, 1)])
def test_batch_normalization_updates_through_update_ops(target, rank, axis, rng):
    shape = [5, 3, 4, 2][:rank]
    x = fc.placeholder(fc.float64, shape)
    training = fc.placeholder(fc.bool, [])
    y = fc.layers.batch_normalization(x, axis=axis, momentum=0.9, training=training,
                                      gamma_initializer=fc.constant_initializer(1.5),
                                      beta_initializer=fc.constant_initializer(-0.25))
    names = [v.name for v in fc.global_variables()]
    assert names == [f"batch_normalization/{n}:0" for n in ("gamma", "beta", "moving_mean", "moving_variance")]
    assert [v.name for v in fc.trainable_variables()] == names[:2]
    updates = collection("update_ops")
    assert len(updates) == 2
    with fc.control_dependencies(updates):
        step = fc.no_op()
    data = rng.standard_normal(shape) * 2.0 + 1.0
    axes = tuple(a for a in range(rank) if a != axis % rank)
    depth = shape[axis]
    gamma, beta = np.full(depth, 1.5), np.full(depth, -0.25)
    expected, mean, variance = numpy_batch_norm(data, axes, gamma, beta)
    n = data.size // depth
    moved_variance = variance * n / (n - 1) if (rank == 4) else variance  # the fused kernel's, as TF1
    with fc.Session(target) as sess:
        sess.run(fc.global_variables_initializer())
        np.testing.assert_allclose(sess.run(y, {x: data, training: True}), expected, rtol=1e-10, atol=1e-12)
        moving = fc.global_variables()[2:]
        np.testing.assert_array_equal(sess.run(moving[0]), np.zeros(depth))  # not run: not updated
        sess.run(step, {x: data, training: False})  # at inference the updates move nothing
        np.testing.assert_array_equal(sess.run(moving[1]), np.ones(depth))
        sess.run(step, {x: data, training: True})
        got_mean, got_variance = sess.run(moving)
        np.testing.assert_allclose(got_mean, 0.1 * mean, rtol=1e-12)
        np.testing.assert_allclose(got_variance, 0.9 + 0.1 * moved_variance, rtol=1e-12)
        shape_b = [1] * rank
        shape_b[axis % rank] = -1
        inference = (data - got_mean.reshape(shape_b)) / np.sqrt(got_variance.reshape(shape_b) + 1e-3) * 1.5 - 0.25
        np.testing.assert_allclose(sess.run(y, {x: data, training: False}), inference, rtol=1e-10, atol=1e-12)


def test_batch_normalization_python_bool_and_reuse():
    x = fc.placeholder(fc.float32, [None, 3])
    fc.layers.batch_normalization(x, training=True, name="bn")
    fc.layers.batch_normalization(x, training=False, name="bn", reuse=True)
    assert len(fc.global_variables()) == 4 and len(collection("update_ops")) == 2


def central_difference(sess, output, feed, variable=None, placeholder=None, eps=1e-6):
    """d sum(output) / d (variable or placeholder), by central differences."""
    base = sess.run(variable) if variable is not None else feed[placeholder]
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        values = []
        for sign in (1.0, -1.0):
            moved = base.copy()
            moved[index] += sign * eps
            if variable is not None:
                variable.load(moved, sess)
                values.append(sess.run(output, feed).sum())
            else:
                values.append(sess.run(output, {**feed, placeholder: moved}).sum())
        grad[index] = (values[0] - values[1]) / (2 * eps)
    if variable is not None:
        variable.load(base, sess)
    return grad


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layer", ["dense", "conv2d", "batch_normalization", "pooling"])
def test_layer_gradients_against_central_differences(target, layer, rng):
    if layer == "dense":
        x = fc.placeholder(fc.float64, [3, 4])
        y = fc.layers.dense(x, 2, activation=fc.tanh, bias_initializer=fc.random_normal_initializer(seed=2))
    elif layer == "conv2d":
        x = fc.placeholder(fc.float64, [2, 5, 4, 2])
        y = fc.layers.conv2d(x, 2, 3, strides=2, padding="same")
    elif layer == "pooling":
        x = fc.placeholder(fc.float64, [2, 5, 4, 2])
        y = fc.concat([fc.layers.flatten(fc.layers.max_pooling2d(x, 2, 2)),
                       fc.layers.flatten(fc.layers.average_pooling2d(x, 3, 1, padding="same"))], 1)
    else:
        x = fc.placeholder(fc.float64, [4, 2, 2, 3])
        y = fc.layers.batch_normalization(x, training=True, beta_initializer=fc.random_normal_initializer(seed=4),
                                          gamma_initializer=fc.random_uniform_initializer(0.5, 2.0, seed=5))
    weights = rng.standard_normal(y.shape)
    output = y * weights
    variables = fc.trainable_variables()
    grads = fc.gradients(fc.reduce_sum(output), [x, *variables])
    feed = {x: rng.standard_normal(x.shape)}
    with fc.Session(target) as sess:
        sess.run(fc.global_variables_initializer())
        got = sess.run(grads, feed)
        np.testing.assert_allclose(got[0], central_difference(sess, output, feed, placeholder=x), rtol=1e-6,
                                   atol=1e-7)
        for variable, grad in zip(variables, got[1:]):
            np.testing.assert_allclose(grad, central_difference(sess, output, feed, variable=variable), rtol=1e-6,
                                       atol=1e-7)


def test_layer_errors():
    with pytest.raises(GraphError, match="padding must be 'valid' or 'same'"):
        fc.layers.conv2d(fc.zeros([1, 4, 4, 1]), 2, 3, padding="full")
    with pytest.raises(GraphError, match="data_format"):
        fc.layers.max_pooling2d(fc.zeros([1, 4, 4, 1]), 2, 2, data_format="NHWC")
    with pytest.raises(FlowcTypeError, match="last dim of the inputs must be known"):
        fc.layers.dense(fc.placeholder(fc.float32, [2, None]), 3)
    with pytest.raises(FlowcTypeError, match="float32 or float64"):
        fc.layers.dense(fc.zeros([2, 2], dtype=fc.int32), 3)
    fc.layers.dense(fc.zeros([2, 2]), 3, name="d")
    with pytest.raises(GraphError, match="Variable d/kernel already exists"):
        fc.layers.dense(fc.zeros([2, 2]), 3, name="d")


# -- losses ----------------------------------------------------------------------------------------

def reduce_numpy(losses, weights, reduction):
    weighted = losses * weights
    broadcast = weights * np.ones_like(losses)
    if reduction == fc.losses.Reduction.NONE:
        return weighted
    total = weighted.sum()
    denominator = {fc.losses.Reduction.SUM: 1.0, fc.losses.Reduction.MEAN: broadcast.sum(),
                   fc.losses.Reduction.SUM_OVER_BATCH_SIZE: losses.size,
                   fc.losses.Reduction.SUM_BY_NONZERO_WEIGHTS: (broadcast != 0).sum()}[reduction]
    return total / denominator if denominator else 0.0 * total


def softmax_xent(labels, logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return -(labels * (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)))).sum(axis=-1)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("reduction", ["none", "weighted_sum", "weighted_mean", "weighted_sum_over_batch_size",
                                       "weighted_sum_by_nonzero_weights"])
def test_losses_against_numpy(target, reduction, rng):
    labels = rng.standard_normal((4, 3))
    predictions = rng.standard_normal((4, 3)) * 2.0
    weights = np.array([[1.0], [0.0], [2.0], [0.5]])
    onehot = np.eye(3)[[0, 2, 1, 2]]
    binary = (rng.random((4, 3)) > 0.5).astype(np.float64)
    error = predictions - labels
    huber = np.where(np.abs(error) <= 1.5, 0.5 * error ** 2, 1.5 * (np.abs(error) - 0.75))
    smoothed = onehot * 0.9 + 0.1 / 3
    sigmoid = np.maximum(predictions, 0) - predictions * (binary * 0.8 + 0.1) + np.log1p(np.exp(-np.abs(predictions)))
    row_weights = weights[:, 0]
    cases = {
        "mse": (fc.losses.mean_squared_error(labels, predictions, weights, reduction=reduction), error ** 2, weights),
        "abs": (fc.losses.absolute_difference(labels, predictions, weights, reduction=reduction), np.abs(error),
                weights),
        "huber": (fc.losses.huber_loss(labels, predictions, weights, delta=1.5, reduction=reduction), huber, weights),
        "softmax": (fc.losses.softmax_cross_entropy(onehot, predictions, row_weights, label_smoothing=0.1,
                                                    reduction=reduction), softmax_xent(smoothed, predictions),
                    row_weights),
        "sparse": (fc.losses.sparse_softmax_cross_entropy(np.int32([0, 2, 1, 2]), predictions, row_weights,
                                                          reduction=reduction),
                   softmax_xent(onehot, predictions), row_weights),
        "sigmoid": (fc.losses.sigmoid_cross_entropy(binary, predictions, weights, label_smoothing=0.2,
                                                    reduction=reduction), sigmoid, weights),
    }
    got = session_values(target, {key: case[0] for key, case in cases.items()}, init=False)
    for key, (_, losses, w) in cases.items():
        np.testing.assert_allclose(got[key], reduce_numpy(losses, w, reduction), rtol=1e-10, atol=1e-12,
                                   err_msg=key)
    assert len(fc.losses.get_losses()) == len(cases)


@pytest.mark.parametrize("target", TARGETS)
def test_default_reduction_and_zero_weights(target):
    loss = fc.losses.mean_squared_error([1.0, 2.0], [2.0, 4.0])  # SUM_BY_NONZERO_WEIGHTS, weights 1
    nothing = fc.losses.absolute_difference([1.0, 2.0], [2.0, 4.0], weights=0.0)
    got = session_values(target, [loss, nothing], init=False)
    np.testing.assert_allclose(got[0], 2.5)
    assert got[1] == 0.0


@pytest.mark.parametrize("target", TARGETS)
def test_total_loss_with_regularizers(target):
    with fc.variable_scope("net", regularizer=fc.contrib.layers.l2_regularizer(0.5)):
        w = fc.get_variable("w", initializer=np.float32([1.0, -2.0]))
    v = fc.get_variable("v", initializer=np.float32([3.0, -4.0]), regularizer=fc.contrib.layers.l1_regularizer(0.25))
    d = fc.layers.dense(fc.ones([1, 2]), 1, kernel_initializer=fc.ones_initializer(),
                        kernel_regularizer=fc.contrib.layers.l2_regularizer(1.0))
    fc.losses.add_loss(fc.reduce_sum(w * v))  # 3 + 8
    assert fc.contrib.layers.l2_regularizer(0.0)(w) is None
    total = fc.losses.get_total_loss()
    plain = fc.losses.get_total_loss(add_regularization_losses=False)
    regularization = fc.losses.get_regularization_loss()
    got = session_values(target, [total, plain, regularization, d])
    expected_regularization = 0.5 * 5 / 2 + 0.25 * 7 + 1.0 * 2 / 2
    np.testing.assert_allclose(got[2], expected_regularization, rtol=1e-6)
    np.testing.assert_allclose(got[1], 11.0)
    np.testing.assert_allclose(got[0], 11.0 + expected_regularization, rtol=1e-6)
    assert len(fc.losses.get_regularization_losses("net")) == 1


def test_loss_and_regularizer_errors():
    with pytest.raises(GraphError, match="no losses found"):
        fc.losses.get_total_loss()
    np.testing.assert_equal(session_values("reference", fc.losses.get_regularization_loss(), init=False), 0.0)
    with pytest.raises(GraphError, match="invalid reduction"):
        fc.losses.mean_squared_error([1.0], [1.0], reduction="mean")
    with pytest.raises(FlowcTypeError, match="must have one shape"):
        fc.losses.mean_squared_error([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(GraphError, match="cannot be an integer"):
        fc.contrib.layers.l2_regularizer(1)
    with pytest.raises(GraphError, match="less than 0"):
        fc.contrib.layers.l1_regularizer(-0.5)


def test_training_step_with_update_ops_as_tf1_users_wire_it():
    """A small CNN with batch norm trains: the loss falls and the moving mean moves, on cpu as on reference."""
    fc.set_random_seed(5)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((16, 6, 6, 1)).astype(np.float32)
    labels = (data.mean(axis=(1, 2, 3)) > 0).astype(np.int32)
    x = fc.placeholder(fc.float32, [None, 6, 6, 1])
    y = fc.placeholder(fc.int32, [None])
    training = fc.placeholder(fc.bool, [])
    h = fc.layers.conv2d(x, 4, 3, padding="same", activation=fc.nn.relu)
    h = fc.layers.batch_normalization(h, training=training)
    h = fc.layers.flatten(fc.layers.max_pooling2d(h, 2, 2))
    logits = fc.layers.dense(fc.layers.dropout(h, 0.1, training=training), 2)
    loss = fc.losses.sparse_softmax_cross_entropy(y, logits)
    with fc.control_dependencies(collection("update_ops")):
        train = fc.train.AdamOptimizer(0.01).minimize(loss)
    moving_mean = [v for v in fc.global_variables() if v.name == "batch_normalization/moving_mean:0"][0]
    results = {}
    for target in TARGETS:
        with fc.Session(target) as sess:
            sess.run(fc.global_variables_initializer())
            first = sess.run(loss, {x: data, y: labels, training: False})
            for _ in range(30):
                sess.run(train, {x: data, y: labels, training: True})
            results[target] = (first, sess.run(loss, {x: data, y: labels, training: False}), sess.run(moving_mean))
    first, last, mean = results["cpu"]
    assert last < first and np.abs(mean).sum() > 0
    np.testing.assert_allclose(results["cpu"][1], results["reference"][1], rtol=1e-3)
    np.testing.assert_allclose(results["cpu"][2], results["reference"][2], rtol=1e-3, atol=1e-5)
