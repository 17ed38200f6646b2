"""TF1's variable scopes, get_variable, the initializers and the global step (issue 20, item 2)."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import GraphError

TARGETS = ["reference", "cpu"]


def run(target, fetches, feed=None):
    with fc.Session(target) as sess:
        sess.run(fc.global_variables_initializer())
        return sess.run(fetches, feed or {})


@pytest.fixture(autouse=True)
def _fresh_graph():
    with fc.Graph().as_default() as graph:
        yield graph


def test_names_reuse_and_name_scopes():
    with fc.variable_scope("layer") as scope:
        w = fc.get_variable("w", [2, 3])
        first = w * 2.0
        with fc.variable_scope("inner"):
            b = fc.get_variable("b", [3])
    with fc.variable_scope("layer", reuse=True):
        assert fc.get_variable("w") is w
        assert fc.get_variable("w", [2, 3]) is w
        with fc.variable_scope("inner"):  # reuse is inherited
            assert fc.get_variable("b") is b
        second = w * 2.0
    with fc.variable_scope(scope):  # re-entering the object opens its original name scope
        third = w + 1.0
    assert (w.name, b.name) == ("layer/w:0", "layer/inner/b:0")
    assert (first.name, second.name, third.name) == ("layer/mul:0", "layer_1/mul:0", "layer/add:0")
    assert scope.name == "layer" and scope.original_name_scope == "layer/"


def test_reuse_variables_and_auto_reuse():
    with fc.variable_scope("s") as scope:
        w = fc.get_variable("w", [1])
        scope.reuse_variables()
        assert fc.get_variable("w") is w
    for _ in range(2):
        with fc.variable_scope("auto", reuse=fc.AUTO_REUSE):
            v = fc.get_variable("v", [2])
    assert [x.name for x in fc.global_variables()] == ["s/w:0", "auto/v:0"]
    assert v.name == "auto/v:0"


def test_default_names_are_made_unique():
    names = []
    for _ in range(3):
        with fc.variable_scope(None, default_name="dense"):
            names.append(fc.get_variable("k", [1]).name)
    assert names == ["dense/k:0", "dense_1/k:0", "dense_2/k:0"]


def test_errors_as_tf1():
    with fc.variable_scope("a"):
        fc.get_variable("x", [2])
        with pytest.raises(GraphError, match="Variable a/x already exists, disallowed"):
            fc.get_variable("x", [2])
    with fc.variable_scope("a", reuse=True):
        with pytest.raises(GraphError, match="Variable a/y does not exist"):
            fc.get_variable("y", [2])
        with pytest.raises(GraphError, match="Trying to share variable a/x, but specified shape"):
            fc.get_variable("x", [3])
    with pytest.raises(GraphError, match="must be fully defined"):
        fc.get_variable("no_shape")
    with pytest.raises(GraphError, match="do not specify shape"):
        fc.get_variable("c", [2], initializer=np.float32([1, 2]))
    with pytest.raises(GraphError, match="without a name_or_scope"):
        with fc.variable_scope(None, default_name="d", reuse=True):
            pass
    with pytest.raises(ValueError):  # TF1 code catches ValueError
        with fc.variable_scope("a"):
            fc.get_variable("x", [2])


@pytest.mark.parametrize("target", TARGETS)
def test_scope_defaults_and_values(target):
    with fc.variable_scope("d", initializer=fc.constant_initializer(0.5),
                           regularizer=fc.contrib.layers.l1_regularizer(0.1)):
        w = fc.get_variable("w", [2, 2])
        given = fc.get_variable("g", [3], initializer=fc.ones_initializer())
        value = fc.get_variable("v", initializer=np.float64([1.0, 2.0]))
    count = fc.get_variable("n", [2], dtype=fc.int32)  # integers: zeros by default
    frozen = fc.get_variable("frozen", [1], trainable=False)
    losses = fc.get_collection("regularization_losses") if hasattr(fc, "get_collection") else \
        fc.get_default_graph().get_collection("regularization_losses")
    assert len(losses) == 3
    assert frozen not in fc.trainable_variables() and w in fc.trainable_variables()
    got = run(target, [w, given, value, count, losses[0]])
    np.testing.assert_array_equal(got[0], np.full((2, 2), 0.5, np.float32))
    np.testing.assert_array_equal(got[1], np.ones(3, np.float32))
    np.testing.assert_array_equal(got[2], [1.0, 2.0])
    assert got[2].dtype == np.float64 and got[3].dtype == np.int32
    np.testing.assert_allclose(got[4], 0.1 * 4 * 0.5, rtol=1e-6)


def test_default_initializer_is_glorot_uniform():
    w = fc.get_variable("w", [200, 300])
    value = run("cpu", w)
    limit = np.sqrt(6.0 / 500)
    assert np.abs(value).max() <= limit and np.abs(value).max() > 0.95 * limit
    np.testing.assert_allclose(value.var(), limit ** 2 / 3, rtol=0.05)


def test_constant_initializer_fills_and_reshapes():
    a = fc.get_variable("a", [2, 3], initializer=fc.constant_initializer([1, 2, 3, 4, 5, 6]))
    b = fc.get_variable("b", [4], initializer=fc.constant_initializer([7, 8]))  # the last repeats, as tf.constant
    got = run("reference", [a, b])
    np.testing.assert_array_equal(got[0], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(got[1], [7, 8, 8, 8])
    with pytest.raises(GraphError, match="too many elements"):
        fc.get_variable("c", [1], initializer=fc.constant_initializer([1, 2]))


@pytest.mark.parametrize("target", TARGETS)
def test_random_initializers_statistics(target):
    shape = [400, 250]
    made = {
        "normal": fc.random_normal_initializer(1.0, 2.0, seed=3),
        "truncated": fc.truncated_normal_initializer(0.0, 2.0, seed=4),
        "uniform": fc.random_uniform_initializer(-1.0, 3.0, seed=5),
        "vs_in": fc.variance_scaling_initializer(2.0, "fan_in", "untruncated_normal", seed=6),
        "vs_out_uniform": fc.variance_scaling_initializer(3.0, "fan_out", "uniform", seed=7),
        "vs_truncated": fc.variance_scaling_initializer(1.0, "fan_avg", "truncated_normal", seed=8),
        "glorot_normal": fc.glorot_normal_initializer(seed=9),
        "glorot_uniform": fc.glorot_uniform_initializer(seed=10),
    }
    variables = {key: fc.get_variable(key, shape, initializer=init) for key, init in made.items()}
    got = run(target, variables)
    np.testing.assert_allclose(got["normal"].mean(), 1.0, atol=0.03)
    np.testing.assert_allclose(got["normal"].std(), 2.0, rtol=0.02)
    assert np.abs(got["truncated"]).max() <= 4.0
    np.testing.assert_allclose(got["truncated"].std(), 2.0 * 0.87962566, rtol=0.02)
    assert got["uniform"].min() >= -1.0 and got["uniform"].max() < 3.0
    np.testing.assert_allclose(got["uniform"].mean(), 1.0, atol=0.03)
    np.testing.assert_allclose(got["vs_in"].std(), np.sqrt(2.0 / 400), rtol=0.02)
    limit = np.sqrt(3 * 3.0 / 250)
    assert np.abs(got["vs_out_uniform"]).max() <= limit
    np.testing.assert_allclose(got["vs_out_uniform"].std(), limit / np.sqrt(3), rtol=0.02)
    np.testing.assert_allclose(got["vs_truncated"].std(), np.sqrt(1.0 / 325), rtol=0.02)  # variance kept
    np.testing.assert_allclose(got["glorot_normal"].std(), np.sqrt(2.0 / 650), rtol=0.02)
    assert np.abs(got["glorot_uniform"]).max() <= np.sqrt(6.0 / 650)


def test_random_initializers_agree_across_targets():
    fc.set_random_seed(11)
    w = fc.get_variable("w", [5, 7], initializer=fc.variance_scaling_initializer(distribution="uniform"))
    u = fc.get_variable("u", [3, 3, 2, 4])  # glorot_uniform, conv fans
    np.testing.assert_array_equal(*(run(t, [w, u])[0] for t in TARGETS))
    np.testing.assert_array_equal(*(run(t, [w, u])[1] for t in TARGETS))


def test_variance_scaling_errors():
    with pytest.raises(GraphError, match="positive"):
        fc.variance_scaling_initializer(scale=0.0)
    with pytest.raises(GraphError, match="invalid mode"):
        fc.variance_scaling_initializer(mode="fan_sum")
    with pytest.raises(GraphError, match="invalid distribution"):
        fc.variance_scaling_initializer(distribution="cauchy")


@pytest.mark.parametrize("shape", [[6, 4], [3, 8], [2, 3, 5]])
def test_orthogonal_initializer(shape):
    w = fc.get_variable("w", shape, initializer=fc.orthogonal_initializer(gain=2.0, seed=1))
    value = run("cpu", w).reshape(-1, shape[-1]).astype(np.float64)
    rows, columns = value.shape
    product = value.T @ value if rows >= columns else value @ value.T
    np.testing.assert_allclose(product, 4.0 * np.eye(min(rows, columns)), atol=1e-5)
    with pytest.raises(GraphError, match="at least two-dimensional"):
        fc.get_variable("v", [4], initializer=fc.orthogonal_initializer())


@pytest.mark.parametrize("target", TARGETS)
def test_load_and_initialized_value(target):
    w = fc.Variable(np.float32([1.0, 2.0]), name="w")
    doubled = fc.Variable(w.initialized_value() * 2.0, name="doubled")
    with fc.Session(target) as sess:
        sess.run(doubled.initializer)  # runs w's initializer first
        np.testing.assert_array_equal(sess.run(doubled), [2.0, 4.0])
        w.load([5.0, 6.0], sess)
        np.testing.assert_array_equal(sess.run(w * 1.0), [5.0, 6.0])
        if hasattr(sess, "as_default"):
            with sess.as_default():
                w.load(np.float64([7.0, 8.0]))
            np.testing.assert_array_equal(sess.run(w), [7.0, 8.0])
    with pytest.raises(GraphError, match="needs a session"):
        w.load([1.0, 2.0])


@pytest.mark.parametrize("target", TARGETS)
def test_global_step(target):
    assert fc.train.get_global_step() is None
    step = fc.train.get_or_create_global_step()
    assert fc.train.get_or_create_global_step() is step
    assert fc.train.get_global_step() is step
    assert (step.name, step.dtype, step.shape) == ("global_step:0", fc.int64, ())
    assert step not in fc.trainable_variables()
    w = fc.get_variable("w", initializer=np.float32([1.0]))
    train = fc.train.GradientDescentOptimizer(0.5).minimize(fc.reduce_sum(w * w), global_step=step)
    with fc.Session(target) as sess:
        sess.run(fc.global_variables_initializer())
        for _ in range(3):
            sess.run(train)
        assert sess.run(step) == 3
        np.testing.assert_allclose(sess.run(w), [0.0])
    with pytest.raises(GraphError, match="already has a global step"):
        fc.train.create_global_step()


@pytest.mark.parametrize("target", TARGETS)
def test_get_variable_in_loop_body_and_branch(target):
    """A body makes and finds its Variables in the graph around it (TF1's init_scope)."""
    x = fc.placeholder(fc.float32, [2])

    def body(i, acc):
        with fc.variable_scope("step", reuse=fc.AUTO_REUSE):
            w = fc.get_variable("w", [2], initializer=fc.constant_initializer([2.0, 3.0]))
        return i + 1, acc * w + x

    _, out = fc.while_loop(lambda i, acc: i < 3, body, [0, fc.zeros([2])])
    branch = fc.cond(x[0] > 0, lambda: fc.get_variable("c", [2], initializer=fc.ones_initializer()) * 2.0,
                     lambda: x)
    assert [v.name for v in fc.global_variables()] == ["step/w:0", "c:0"]
    got = run(target, [out, branch], {x: [1.0, 2.0]})
    w, data = np.float32([2.0, 3.0]), np.float32([1.0, 2.0])
    np.testing.assert_allclose(got[0], ((data * w + data) * w + data))
    np.testing.assert_array_equal(got[1], [2.0, 2.0])


def test_collections_replace_the_default_ones():
    local = fc.get_variable("counter", [], dtype=fc.int32, trainable=False, collections=["local_variables"])
    mine = fc.get_variable("w", [1], collections=["variables", "mine"])
    graph = fc.get_default_graph()
    assert local not in fc.global_variables() and graph.get_collection("local_variables") == [local]
    assert fc.global_variables() == [mine] and fc.trainable_variables() == [mine]
    assert graph.get_collection("mine") == [mine]
