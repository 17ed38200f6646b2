"""dropout, truncated_normal, random_shuffle and categorical (compiler/random_ops.py, issue 19 item 5).

Statistical checks with fixed seeds and bounds of several standard errors (they pass by a wide
margin with the right distribution, and fail with a wrong one: a shifted mean, an untruncated
normal, a fixed permutation, uniform sampling); cpu against reference; bad arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import special, stats

import flowc as fc
from flowc.errors import FlowcError

TARGETS = ["reference", "cpu"]
HERE = "test_random_more.py"


def session_runs(build: Any, runs: int = 1, target: str = "cpu", feeds: Any = None) -> list[Any]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(7)
        out = build()
    with fc.Session(graph=g, target=target) as sess:
        return [sess.run(out, feeds(out) if feeds else None) for _ in range(runs)]


# -- dropout -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [fc.float32, fc.float64])
def test_dropout_keeps_a_fraction_and_scales(dtype: Any, target: str) -> None:
    x = np.random.default_rng(0).uniform(1, 2, (300, 101))
    out = session_runs(lambda: fc.nn.dropout(fc.constant(x, dtype), rate=0.3, seed=1), target=target)[0]
    kept = out != 0
    np.testing.assert_allclose(out[kept], (x.astype(dtype.np) / np.asarray(0.7, dtype.np))[kept], rtol=1e-6)
    n = x.size
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.7 * 0.3 / n)


def test_dropout_is_the_same_on_both_targets_and_new_every_run() -> None:
    def build() -> Any:
        return fc.nn.dropout(fc.ones([64, 33]), keep_prob=0.5, seed=3)

    reference = session_runs(build, runs=2, target="reference")
    native = session_runs(build, runs=2, target="cpu")
    for r, n in zip(reference, native):
        np.testing.assert_array_equal(r, n)
    assert not np.array_equal(native[0], native[1])


def test_dropout_noise_shape_broadcasts_and_keep_prob_feeds() -> None:
    def build() -> Any:
        keep = fc.placeholder(fc.float32, [], name="keep")
        return fc.nn.dropout(fc.ones([40, 50]), keep_prob=keep, noise_shape=[1, 50], seed=2)

    out = session_runs(build, feeds=lambda out: {"keep:0": 0.25})[0]
    assert np.all(out == out[:1])  # the same mask for every row
    assert set(np.unique(out)) <= {0.0, 4.0}
    ones = session_runs(build, feeds=lambda out: {"keep:0": 1.0})[0]
    np.testing.assert_array_equal(ones, np.ones((40, 50)))


def test_dropout_gradient_is_the_mask_over_keep_prob() -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [20, 30])
        y = fc.nn.dropout(x, rate=0.4, seed=5)
        grad = fc.gradients(fc.reduce_sum(y), x)[0]
    with fc.Session(graph=g) as sess:
        value = np.full((20, 30), 2.0)
        out, dx = sess.run([y, grad], {x: value})
    np.testing.assert_allclose(dx, (out != 0) / 0.6, rtol=1e-15)


def test_dropout_rate_zero_and_keep_one_are_the_input() -> None:
    with fc.Graph().as_default():
        x = fc.constant([1.0, 2.0])
        assert fc.nn.dropout(x, rate=0.0) is x
        assert fc.nn.dropout(x, keep_prob=1) is x


@pytest.mark.parametrize("target", TARGETS)
def test_dropout_on_an_unknown_batch(target: str) -> None:
    """A [None, n] placeholder (TensorFlow 1's usual case): the mask takes the fed shape
    (random_uniform_like), the same numbers as a static shape draws, the gradient the same mask."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None, 40])
        y = fc.nn.dropout(x, keep_prob=0.8, seed=6)
        grad = fc.gradients(fc.reduce_sum(y * y), x)[0]
        static = fc.nn.dropout(fc.ones([25, 40], fc.float64), keep_prob=0.8, seed=6)
    with fc.Session(graph=g, target=target) as sess:
        value = np.random.default_rng(1).uniform(1, 2, (25, 40))
        out, dx, fixed = sess.run([y, grad, static], {x: value})
        np.testing.assert_array_equal(out != 0, fixed != 0)  # one stream, element for element
        np.testing.assert_allclose(out[out != 0], value[out != 0] / 0.8, rtol=1e-15)
        np.testing.assert_allclose(dx, 2 * out / 0.8, rtol=1e-14)
        assert abs((out != 0).mean() - 0.8) < 5 * np.sqrt(0.8 * 0.2 / out.size)
        for rows in (0, 1, 3):
            assert sess.run(y, {x: np.ones((rows, 40))}).shape == (rows, 40)


def test_dropout_on_an_unknown_batch_round_trips_through_a_graph_def() -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 8], name="x")
        fc.identity(fc.nn.dropout(x, rate=0.5, seed=2), name="out")
    imported = fc.Graph()
    with imported.as_default():
        fc.import_graph_def(g.as_graph_def(), name="")
    feeds = {"x:0": np.ones((3, 8), np.float32)}
    with fc.Session(graph=g) as first, fc.Session(graph=imported) as second:
        np.testing.assert_array_equal(first.run("out:0", feeds), second.run("out:0", feeds))


def test_dropout_bad_arguments() -> None:
    with fc.Graph().as_default():
        x = fc.constant([1.0, 2.0])
        with pytest.raises(FlowcError, match=rf"^dropout \(created at {HERE}:\d+\): give exactly one"):
            fc.nn.dropout(x, keep_prob=0.5, rate=0.5)
        with pytest.raises(FlowcError, match=rf"^dropout \(created at {HERE}:\d+\): give exactly one"):
            fc.nn.dropout(x)
        with pytest.raises(FlowcError, match=r"^dropout .*rate 1.0 is out of range"):
            fc.nn.dropout(x, rate=1.0)
        with pytest.raises(FlowcError, match=r"^dropout .*keep_prob 0 is out of range"):
            fc.nn.dropout(x, keep_prob=0)
        with pytest.raises(FlowcError, match=r"^dropout .*must be float32 or float64"):
            fc.nn.dropout(fc.constant([1, 2]), rate=0.5)
        with pytest.raises(FlowcError, match=rf"^dropout \(created at {HERE}:\d+\): needs a static shape"):
            fc.nn.dropout(fc.placeholder(fc.float32, [None, 3]), rate=0.5, noise_shape=[None, 3])


# -- truncated_normal ------------------------------------------------------------------------

TRUNCATED = stats.truncnorm(-2, 2)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [fc.float32, fc.float64])
def test_truncated_normal_distribution(dtype: Any, target: str) -> None:
    n = 200_000
    z = session_runs(lambda: fc.truncated_normal([n], dtype=dtype, seed=11), target=target)[0]
    assert z.dtype == dtype.np
    assert np.all(np.abs(z) <= 2.0)
    assert abs(z.mean()) < 5 * np.sqrt(TRUNCATED.var() / n)
    assert abs(z.var() - TRUNCATED.var()) < 0.01  # standard error ~0.0017; an untruncated normal gives 1
    assert stats.kstest(z, TRUNCATED.cdf).statistic < 2.0 / np.sqrt(n)  # the 0.1% critical value is 1.95 / sqrt(n)


def test_truncated_normal_mean_stddev_and_shape() -> None:
    z = session_runs(lambda: fc.random.truncated_normal([50, 40, 3], mean=5.0, stddev=0.5, seed=1))[0]
    assert z.shape == (50, 40, 3)
    assert z.min() >= 4.0 and z.max() <= 6.0
    assert abs(z.mean() - 5.0) < 0.02


def test_truncated_normal_targets_agree_and_empty_shapes() -> None:
    def build() -> Any:
        return [fc.truncated_normal([7, 13], dtype=fc.float64, seed=4), fc.truncated_normal([0, 3]),
                fc.truncated_normal([1])]

    reference = session_runs(build, target="reference")[0]
    native = session_runs(build, target="cpu")[0]
    np.testing.assert_allclose(native[0], reference[0], rtol=1e-12, atol=1e-12)
    assert native[1].shape == (0, 3) and native[2].shape == (1,)


def test_normal_quantile_is_within_its_documented_error() -> None:
    from flowc.random_ops import normal_quantile  # noqa: PLC0415
    p = np.concatenate([np.linspace(0.0227, 0.9773, 20001), [0.02275, 0.02425, 0.5, 0.97575]])
    with fc.Graph().as_default() as g:
        q = normal_quantile(fc.constant(p))
    for target in TARGETS:
        with fc.Session(graph=g, target=target) as sess:
            np.testing.assert_allclose(sess.run(q), special.ndtri(p), rtol=1.2e-9, atol=1e-15)


# -- random_shuffle --------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_random_shuffle_permutes_rows_uniformly(target: str) -> None:
    runs = 600
    value = np.arange(12, dtype=np.int32).reshape(4, 3)
    outs = session_runs(lambda: fc.random_shuffle(fc.constant(value), seed=9), runs=runs, target=target)
    orders = []
    for out in outs:
        order = out[:, 0] // 3
        np.testing.assert_array_equal(out, value[order])  # whole rows, each once
        assert sorted(order) == [0, 1, 2, 3]
        orders.append(tuple(order))
    # every row in every place about 1/4 of the time; all 24 orders appear
    places = np.array([[sum(1 for o in orders if o[p] == row) for p in range(4)] for row in range(4)])
    assert np.all(np.abs(places - runs / 4) < 5 * np.sqrt(runs * 3 / 16))
    assert len(set(orders)) == 24


def test_random_shuffle_targets_agree_and_edge_sizes() -> None:
    def build() -> Any:
        return [fc.random.shuffle(fc.constant(np.arange(50.0)), seed=3), fc.random_shuffle(fc.zeros([0, 2])),
                fc.random_shuffle(fc.constant([[1.0, 2.0]])), fc.random_shuffle(fc.constant(4.0))]

    reference = session_runs(build, target="reference")[0]
    native = session_runs(build, target="cpu")[0]
    np.testing.assert_array_equal(native[0], reference[0])
    assert sorted(native[0]) == list(np.arange(50.0)) and not np.array_equal(native[0], np.arange(50.0))
    assert native[1].shape == (0, 2)
    np.testing.assert_array_equal(native[2], [[1.0, 2.0]])
    assert native[3] == 4.0


# -- categorical / multinomial -----------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_categorical_frequencies_follow_softmax(target: str) -> None:
    probabilities = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.0, 0.05, 0.25]])
    with np.errstate(divide="ignore"):
        logits = np.log(probabilities).astype(np.float32)  # log(0) = -inf: never drawn
    n = 20_000
    draws = session_runs(lambda: fc.random.categorical(fc.constant(logits), n, seed=4), target=target)[0]
    assert draws.shape == (2, n) and draws.dtype == np.int64
    for row in range(2):
        frequencies = np.bincount(draws[row], minlength=4) / n
        bound = 5 * np.sqrt(probabilities[row] * (1 - probabilities[row]) / n)
        assert np.all(np.abs(frequencies - probabilities[row]) <= bound), (frequencies, probabilities[row])
    assert not np.any(draws[1] == 1)


def test_categorical_extreme_logits_targets_and_names() -> None:
    def build() -> Any:
        extreme = fc.constant([[1e4, 0.0, -1e4], [-1e4, -1e4, 1e4]])
        return [fc.multinomial(extreme, 50, seed=1, output_dtype=fc.int32),
                fc.random.categorical(fc.constant(np.zeros((3, 5))), 7, seed=2), fc.multinomial(extreme, 0)]

    reference = session_runs(build, target="reference")[0]
    native = session_runs(build, target="cpu")[0]
    assert native[0].dtype == np.int32
    np.testing.assert_array_equal(native[0], [[0] * 50, [2] * 50])
    np.testing.assert_array_equal(native[1], reference[1])
    assert native[1].shape == (3, 7) and native[2].shape == (2, 0)


@pytest.mark.parametrize("target", TARGETS)
def test_categorical_on_an_unknown_batch(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        logits = fc.placeholder(fc.float32, [None, 3])
        draws = fc.random.categorical(logits, 4000, seed=5)
    probabilities = np.array([[0.5, 0.25, 0.25], [0.0, 0.1, 0.9]])
    with np.errstate(divide="ignore"):
        feed = np.log(probabilities).astype(np.float32)
    with fc.Session(graph=g, target=target) as sess:
        out = sess.run(draws, {logits: feed})
        assert out.shape == (2, 4000)
        for row in range(2):
            frequencies = np.bincount(out[row], minlength=3) / 4000
            assert np.all(np.abs(frequencies - probabilities[row]) <= 5 * np.sqrt(0.25 / 4000))
        assert sess.run(draws, {logits: np.zeros((0, 3), np.float32)}).shape == (0, 4000)


def test_categorical_bad_arguments() -> None:
    with fc.Graph().as_default():
        with pytest.raises(FlowcError, match=rf"^categorical \(created at {HERE}:\d+\): logits must be a float matrix"):
            fc.random.categorical(fc.constant([1.0, 2.0]), 3)
        with pytest.raises(FlowcError, match=rf"^categorical \(created at {HERE}:\d+\): needs a static shape"):
            fc.random.categorical(fc.placeholder(fc.float32, [2, None]), 3)
        with pytest.raises(FlowcError, match=r"^categorical .*num_samples must be >= 0"):
            fc.multinomial(fc.constant([[1.0, 2.0]]), -1)
        with pytest.raises(FlowcError, match=rf"^truncated_normal \(created at {HERE}:\d+\): dtype must be float"):
            fc.truncated_normal([2], dtype=fc.int32)
        with pytest.raises(FlowcError, match=rf"^random_shuffle \(created at {HERE}:\d+\): needs a static shape"):
            fc.random_shuffle(fc.placeholder(fc.float32, [None]))


def test_dropout_on_an_unknown_batch_exports(tmp_path) -> None:
    """Ahead of time too: the library's runs draw what the Session's next runs would."""
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(5)
        x = fc.placeholder(fc.float32, [None, 6], name="x")
        dropped = fc.nn.dropout(x, rate=0.5)
    with fc.Session(graph=g) as sess:
        data = np.ones((3, 6), np.float32)
        fc.export(str(tmp_path / "dropped"), [dropped], [x], session=sess)
        expected = [sess.run(dropped, {x: data}) for _ in range(2)]
    dropped_c = fc.load(str(tmp_path / "dropped"))
    assert [dropped_c(data).tobytes() for _ in range(2)] == [e.tobytes() for e in expected]
    assert not np.array_equal(expected[0], expected[1])
