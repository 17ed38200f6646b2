"""fc.nn.nce_loss, sampled_softmax_loss and the candidate samplers against numpy and TensorFlow 1's formulas."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcError
from numeric_gradients import central_differences

TARGETS = ["reference", "cpu"]
FLOAT_MAX = float(np.finfo(np.float32).max)


def run(graph, fetches, feeds=None, target="reference"):
    with fc.Session(target, graph=graph) as sess:
        return sess.run(fetches, feeds)


def log_uniform(range_max):
    ids = np.arange(range_max, dtype=np.float64)
    return (np.log(ids + 2) - np.log(ids + 1)) / np.log(range_max + 1)


# -- the losses, given fixed sampled values ----------------------------------------------------

def numpy_logits(weights, biases, labels, inputs, sampled, true_count, sampled_count, remove_hits):
    """TensorFlow 1's _compute_sampled_logits, written out in numpy."""
    true_logits = np.einsum("bd,btd->bt", inputs, weights[labels]) + biases[labels]
    sampled_logits = inputs @ weights[sampled].T + biases[sampled]
    if remove_hits:
        hits = (labels[:, :, None] == sampled[None, None, :]).any(1)
        sampled_logits = sampled_logits + np.where(hits, -FLOAT_MAX, 0.0)
    true_logits = true_logits - np.log(true_count.astype(np.float64))  # the counts are float32
    sampled_logits = sampled_logits - np.log(sampled_count.astype(np.float64))
    target = np.concatenate([np.full_like(true_logits, 1.0 / labels.shape[1]), np.zeros_like(sampled_logits)], 1)
    return np.concatenate([true_logits, sampled_logits], 1), target


def numpy_nce(*args):
    x, z = numpy_logits(*args)
    return (np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))).sum(1)


def numpy_sampled_softmax(*args):
    x, z = numpy_logits(*args)
    shifted = x - x.max(1, keepdims=True)
    return -(z * (shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))).sum(1)


def problem(rng, dtype=np.float64):
    classes, dim, batch = 12, 5, 4
    weights = rng.standard_normal((classes, dim)).astype(dtype)
    biases = rng.standard_normal(classes).astype(dtype)
    inputs = rng.standard_normal((batch, dim)).astype(dtype)
    labels = np.array([[1, 3], [0, 7], [3, 3], [11, 5]], dtype=np.int64)
    sampled = np.array([3, 0, 9, 2, 6], dtype=np.int64)  # 3 and 0 are accidental hits
    true_count = rng.uniform(0.1, 0.9, labels.shape).astype(np.float32)
    sampled_count = rng.uniform(0.1, 0.9, sampled.shape).astype(np.float32)
    return weights, biases, labels, inputs, sampled, true_count, sampled_count


def loss_graph(loss_fn, values, remove_hits, dtype=fc.float64):
    weights, biases, labels, inputs, sampled, true_count, sampled_count = values
    g = fc.Graph()
    with g.as_default():
        w = fc.placeholder(dtype, weights.shape)
        b = fc.placeholder(dtype, biases.shape)
        x = fc.placeholder(dtype, [None, inputs.shape[1]])
        sampled_values = (fc.constant(sampled), fc.constant(true_count), fc.constant(sampled_count))
        loss = loss_fn(weights=w, biases=b, labels=fc.constant(labels), inputs=x, num_sampled=len(sampled),
                       num_classes=len(biases), num_true=labels.shape[1], sampled_values=sampled_values,
                       remove_accidental_hits=remove_hits)
    return g, loss, {w: weights, b: biases, x: inputs}


CASES = [(fc.nn.nce_loss, numpy_nce), (fc.nn.sampled_softmax_loss, numpy_sampled_softmax)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("remove_hits", [False, True])
@pytest.mark.parametrize("loss_fn, numpy_fn", CASES, ids=["nce", "sampled_softmax"])
def test_losses_equal_tensorflows_formulas(loss_fn, numpy_fn, remove_hits, target, rng):
    values = problem(rng)
    g, loss, feeds = loss_graph(loss_fn, values, remove_hits)
    got = run(g, loss, feeds, target)
    assert got.shape == (4,)
    np.testing.assert_allclose(got, numpy_fn(*values, remove_hits), rtol=1e-12)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("loss_fn, numpy_fn", CASES, ids=["nce", "sampled_softmax"])
def test_float32_losses(loss_fn, numpy_fn, target, rng):
    values = problem(rng, np.float32)
    g, loss, feeds = loss_graph(loss_fn, values, True, fc.float32)
    got = run(g, loss, feeds, target)
    assert got.dtype == np.float32
    expected = numpy_fn(*[v.astype(np.float64) if v.dtype == np.float32 else v for v in values], True)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("remove_hits", [False, True])
@pytest.mark.parametrize("loss_fn, numpy_fn", CASES, ids=["nce", "sampled_softmax"])
def test_gradients_match_central_differences(loss_fn, numpy_fn, remove_hits, target, rng):
    values = problem(rng)
    scale = rng.standard_normal(4)
    g, loss, feeds = loss_graph(loss_fn, values, remove_hits)
    with g.as_default():
        total = fc.reduce_sum(loss * fc.constant(scale))
        grads = fc.gradients(total, list(feeds))
    got = run(g, grads, feeds, target)
    weights, biases, labels, inputs = values[:4]

    def numpy_total():
        return float((numpy_fn(*values, remove_hits) * scale).sum())

    for array, gradient in zip([weights, biases, inputs], got):
        np.testing.assert_allclose(gradient, central_differences(numpy_total, array), rtol=1e-6, atol=1e-8)


def test_default_sampler_and_sharded_weights_learn_nothing_wrong(rng):
    """sampled_values left out: the default log-uniform unique sampler; weights as two "mod" shards
    give the same loss as the joined table."""
    weights, biases, labels, inputs = problem(rng)[:4]
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(3)
        shards = [fc.constant(weights[0::2]), fc.constant(weights[1::2])]
        sampler = fc.nn.log_uniform_candidate_sampler(fc.constant(labels), 2, 5, True, 12, seed=7)
        joined = fc.nn.nce_loss(fc.constant(weights), fc.constant(biases), fc.constant(labels), fc.constant(inputs),
                                5, 12, num_true=2, sampled_values=sampler)
        sharded = fc.nn.nce_loss(shards, fc.constant(biases), fc.constant(labels), fc.constant(inputs), 5, 12,
                                 num_true=2, sampled_values=sampler)
        default = fc.nn.sampled_softmax_loss(fc.constant(weights), fc.constant(biases), fc.constant(labels),
                                             fc.constant(inputs), 5, 12, num_true=2)
    for target in TARGETS:
        a, b, c = run(g, [joined, sharded, default], target=target)
        np.testing.assert_allclose(a, b, rtol=1e-12)
        assert c.shape == (4,) and np.all(np.isfinite(c)) and np.all(c > 0)


def test_labels_of_the_wrong_shape_are_a_flowc_error():
    with fc.Graph().as_default():
        with pytest.raises(FlowcError, match="nce_loss.*num_true=1"):
            fc.nn.nce_loss(fc.ones([10, 4]), fc.zeros([10]), fc.constant([1, 2]), fc.ones([2, 4]), 3, 10)
        with pytest.raises(FlowcError, match="distinct classes"):
            fc.nn.log_uniform_candidate_sampler(fc.constant([[1]]), 1, 11, True, 10)


# -- the samplers ------------------------------------------------------------------------------

def draws(sampler, runs, target="reference", **kwargs):
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(1234)
        outputs = sampler(fc.constant([[0], [4]]), 1, **kwargs)
    with fc.Session(target, graph=g) as sess:
        return [sess.run(list(outputs)) for _ in range(runs)]


def chi_square(counts, probabilities):
    expected = probabilities * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_log_uniform_with_replacement_is_log_uniform():
    p = log_uniform(10)
    (sampled, true_count, sampled_count), = draws(fc.nn.log_uniform_candidate_sampler, 1, num_sampled=20000,
                                                  unique=False, range_max=10)
    assert sampled.dtype == np.int64 and sampled.min() >= 0 and sampled.max() < 10
    # 9 degrees of freedom: 27.9 is the 0.999 quantile
    assert chi_square(np.bincount(sampled, minlength=10), p) < 27.9
    np.testing.assert_allclose(true_count, (p[[0, 4]] * 20000).reshape(2, 1).astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(sampled_count, (p[sampled] * 20000).astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("sampler, p", [(fc.nn.log_uniform_candidate_sampler, log_uniform(8)),
                                        (fc.nn.uniform_candidate_sampler, np.full(8, 1 / 8)),
                                        (fc.random.log_uniform_candidate_sampler, log_uniform(8))])
def test_unique_draws_are_distinct_and_follow_the_rejection_loop(sampler, p):
    """Each draw has 4 distinct classes; the first is distributed as p; num_tries, read back from the
    expected counts, is one integer >= 4 per draw whose mean is the rejection loop's (simulated)."""
    runs = draws(sampler, 600, num_sampled=4, unique=True, range_max=8)
    firsts, tries = [], []
    for sampled, true_count, sampled_count in runs:
        assert len(set(sampled.tolist())) == 4 and sampled.min() >= 0 and sampled.max() < 8
        n = np.log1p(-sampled_count.astype(np.float64)) / np.log1p(-p[sampled])
        assert np.allclose(n, n[0], rtol=1e-4) and n[0] > 3.999, n
        np.testing.assert_allclose(true_count.ravel(), -np.expm1(n[0] * np.log1p(-p[[0, 4]])), rtol=1e-5)
        firsts.append(sampled[0])
        tries.append(n[0])
    assert chi_square(np.bincount(firsts, minlength=8), p) < 24.3  # 7 degrees of freedom, 0.999
    simulated = []
    generator = np.random.default_rng(0)
    for _ in range(20000):
        seen, count = set(), 0
        while len(seen) < 4:
            seen.add(int(generator.choice(8, p=p)))
            count += 1
        simulated.append(count)
    standard_error = np.std(simulated) / np.sqrt(len(tries))
    assert abs(np.mean(tries) - np.mean(simulated)) < 4 * standard_error


def test_fixed_unigram_draws_by_the_unigrams():
    unigrams = [5.0, 1.0, 0.0, 2.0]
    weights = np.array([0.0] + unigrams) ** 0.75  # one reserved id, of weight 0
    p = weights / weights.sum()
    (sampled, _, sampled_count), = draws(fc.nn.fixed_unigram_candidate_sampler, 1, num_sampled=20000, unique=False,
                                         range_max=5, unigrams=unigrams, distortion=0.75, num_reserved_ids=1)
    counts = np.bincount(sampled, minlength=5)
    assert counts[0] == 0 and counts[3] == 0
    assert chi_square(counts[p > 0], p[p > 0]) < 16.3  # 3 degrees of freedom, 0.999
    unique_runs = draws(fc.nn.fixed_unigram_candidate_sampler, 50, num_sampled=3, unique=True, range_max=5,
                        unigrams=unigrams, distortion=0.75, num_reserved_ids=1)
    for sampled, _, _ in unique_runs:
        assert sorted(sampled.tolist()) == [1, 2, 4]


def test_same_seed_same_draws_on_every_target():
    for unique in (True, False):
        kwargs = dict(num_sampled=6, unique=unique, range_max=40)
        reference = draws(fc.nn.log_uniform_candidate_sampler, 3, "reference", **kwargs)
        native = draws(fc.nn.log_uniform_candidate_sampler, 3, "cpu", **kwargs)
        again = draws(fc.nn.log_uniform_candidate_sampler, 3, "reference", **kwargs)
        for got, expected, repeated in zip(native, reference, again):
            for a, b, c in zip(got, expected, repeated):
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(b, c)
        assert not np.array_equal(reference[0][0], reference[1][0])  # a new draw every run


def test_training_with_sampled_losses_learns_identically_on_both_targets(rng):
    """Each class c has its own input direction; a model trained with nce_loss and one trained with
    sampled_softmax_loss (default samplers, new classes every run) both come to rank the true class
    first by the full logits for most points (0.78 and 0.94 of them; chance is 0.05), and cpu and
    reference draw and train alike."""
    classes, dim, batch = 20, 8, 32
    centers = rng.standard_normal((classes, dim))
    labels = rng.integers(0, classes, (200, 1))
    points = centers[labels[:, 0]] + 0.3 * rng.standard_normal((200, dim))

    def train(loss_fn, target):
        g = fc.Graph()
        with g.as_default():
            fc.set_random_seed(5)
            x = fc.placeholder(fc.float32, [batch, dim])
            y = fc.placeholder(fc.int64, [batch, 1])
            w = fc.Variable(fc.zeros([classes, dim]))
            b = fc.Variable(fc.zeros([classes]))
            loss = fc.reduce_mean(loss_fn(weights=w, biases=b, labels=y, inputs=x, num_sampled=5,
                                          num_classes=classes))
            step = fc.train.GradientDescentOptimizer(0.5).minimize(loss)
            full = fc.matmul(x, w, transpose_b=True) + b
            init = fc.global_variables_initializer()
        losses = []
        with fc.Session(target, graph=g) as sess:
            sess.run(init)
            for i in range(120):
                rows = np.arange(i * batch, (i + 1) * batch) % 200
                _, value = sess.run([step, loss], {x: points[rows].astype(np.float32), y: labels[rows]})
                losses.append(value)
            scores = sess.run(full, {x: points[:batch].astype(np.float32)})
        return np.array(losses), (scores.argmax(1) == labels[:batch, 0]).mean()

    for loss_fn in (fc.nn.nce_loss, fc.nn.sampled_softmax_loss):
        reference_losses, reference_accuracy = train(loss_fn, "reference")
        native_losses, native_accuracy = train(loss_fn, "cpu")
        np.testing.assert_allclose(native_losses, reference_losses, rtol=1e-4)
        assert reference_losses[-20:].mean() < 0.5 * reference_losses[:5].mean(), reference_losses
        assert reference_accuracy > 0.7 and native_accuracy == reference_accuracy
