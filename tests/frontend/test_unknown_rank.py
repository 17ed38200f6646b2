"""Placeholders of unknown rank (`fc.placeholder(fc.float32)`, shape=None) fed arrays of any rank: each run
is typed for the ranks it feeds (Note [placeholders of unknown rank] in compiler/unknown_rank.py)."""

import inspect

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FlowcTypeError
from numeric_gradients import central_differences

TARGETS = ["reference", "cpu"]


def line_of(marker: str) -> str:
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()
    number = next(i + 1 for i, line in enumerate(lines) if marker in line and "line_of" not in line)
    return f"test_unknown_rank.py:{number}"


@pytest.mark.parametrize("target", TARGETS)
def test_one_session_runs_a_scalar_then_1d_then_2d_then_a_scalar_again(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder("float")
        w = fc.Variable(1.5)
        y = x * w + 1.0
        total = fc.reduce_sum(fc.square(y))  # all axes of whatever rank x is fed
        mean = fc.reduce_mean(y)
        flipped = fc.transpose(y)  # perm reversed for the fed rank
        init = fc.global_variables_initializer()
    assert x.shape.ndims is None and y.shape.ndims is None
    assert total.shape == () and mean.shape == ()  # a reduction over every axis is a scalar at any rank
    feeds = [np.float32(2.0), np.arange(3, dtype=np.float32), np.arange(6, dtype=np.float32).reshape(2, 3),
             np.arange(10, dtype=np.float32), -0.5]
    with fc.Session(target, graph=g) as sess:
        sess.run(init)
        for fed in feeds:
            want = np.asarray(fed, np.float32) * np.float32(1.5) + np.float32(1.0)
            got_y, got_total, got_mean, got_flipped = sess.run([y, total, mean, flipped], {x: fed})
            assert got_y.shape == want.shape
            np.testing.assert_allclose(got_y, want, rtol=1e-6)
            np.testing.assert_allclose(got_total, np.sum(want ** 2), rtol=1e-6)
            np.testing.assert_allclose(got_mean, np.mean(want), rtol=1e-6)
            np.testing.assert_array_equal(got_flipped, want.T)
        # The initializer's, then one compile per fed rank (0, 1, 2): sizes 3 and 10 of rank 1 share one.
        assert len(sess._cache) == 4


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shapes", [((3,), (2, 3)), ((), (2, 3)), ((2, 3), (3,)), ((4, 2, 3), (2, 3)), ((), ())])
def test_two_unknown_rank_placeholders_fed_different_ranks_broadcast(target, shapes):
    g = fc.Graph()
    with g.as_default():
        a = fc.placeholder(fc.float32, name="a")
        b = fc.placeholder(fc.float32, shape=None, name="b")
        both = a * b - fc.maximum(a, b)
        summed = fc.reduce_sum(both, axis=-1)  # the last axis of the broadcast rank
    rng = np.random.default_rng(0)
    a_value, b_value = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    want = a_value * b_value - np.maximum(a_value, b_value)
    with fc.Session(target, graph=g) as sess:
        got = sess.run(both, {a: a_value, b: b_value})
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6)
        if want.ndim:
            np.testing.assert_allclose(sess.run(summed, {a: a_value, b: b_value}), want.sum(-1), rtol=1e-5)


@pytest.mark.parametrize("target", TARGETS)
def test_gradient_through_an_unknown_rank_placeholder_matches_central_differences(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, name="x")
        w = fc.Variable(np.float64(0.7))
        loss = fc.reduce_sum(fc.tanh(x * w) * x) + fc.reduce_mean(fc.square(x))
        dx, dw = fc.gradients(loss, [x, w])
        init = fc.global_variables_initializer()
    rng = np.random.default_rng(1)
    with fc.Session(target, graph=g) as sess:
        sess.run(init)
        for shape in [(), (4,), (2, 3), ()]:
            value = np.asarray(rng.standard_normal(shape))
            got_dx, got_dw = sess.run([dx, dw], {x: value})
            assert got_dx.shape == value.shape and got_dw.shape == ()
            want_dx = central_differences(lambda: sess.run(loss, {x: value}), value)
            np.testing.assert_allclose(got_dx, want_dx, rtol=1e-6, atol=1e-8)
            weight = np.asarray(0.7)
            want_dw = central_differences(lambda: float(np.sum(np.tanh(value * weight) * value)), weight)
            np.testing.assert_allclose(got_dw, want_dw, rtol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_training_on_one_sample_then_the_whole_batch(target):
    g = fc.Graph()
    with g.as_default():
        x, y = fc.placeholder("float"), fc.placeholder("float")
        w, b = fc.Variable(0.0), fc.Variable(0.0)
        cost = fc.reduce_sum(fc.pow(x * w + b - y, 2)) / 8.0
        step = fc.train.GradientDescentOptimizer(0.05).minimize(cost)
        init = fc.global_variables_initializer()
    xs = np.linspace(0, 1, 8, dtype=np.float32)
    ys = 2 * xs + 1
    with fc.Session(target, graph=g) as sess:
        sess.run(init)
        first = sess.run(cost, {x: xs, y: ys})
        for _ in range(20):
            for one_x, one_y in zip(xs, ys):
                sess.run(step, {x: one_x, y: one_y})
            sess.run(step, {x: xs, y: ys})  # the whole batch through the same placeholders
        weight, bias = sess.run([w, b])
        np.testing.assert_allclose(sess.run(cost, {x: xs, y: ys}),
                                   np.sum((xs * weight + bias - ys) ** 2) / 8, rtol=1e-5)
        assert sess.run(cost, {x: xs, y: ys}) < 0.1 * first


@pytest.mark.parametrize("target", TARGETS)
def test_matmul_types_per_fed_rank_and_a_rank_it_cannot_take_names_the_op_and_line(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, name="X")  # the shapeless input
        w = fc.constant(np.arange(6, dtype=np.float32).reshape(3, 2))
        product = fc.matmul(x, w)  # rank >= 2 only
    assert product.shape.ndims is None
    with fc.Session(target, graph=g) as sess:
        for shape in [(4, 3), (5, 4, 3)]:
            value = np.ones(shape, np.float32)
            np.testing.assert_array_equal(sess.run(product, {x: value}), value @ w_value())
        for value in [1.0, np.ones(3, np.float32)]:
            with pytest.raises(FlowcTypeError) as info:
                sess.run(product, {x: value})
            message = str(info.value)
            assert "matmul 'MatMul'" in message and line_of("# rank >= 2 only") in message
            assert f"'X' (made at {line_of('# the shapeless input')}) is fed rank {np.ndim(value)}" in message


def w_value() -> np.ndarray:
    return np.arange(6, dtype=np.float32).reshape(3, 2)


@pytest.mark.parametrize("target", TARGETS)
def test_assigning_another_rank_to_a_variable_names_the_assign(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32)
        v = fc.Variable(1.0)
        update = fc.assign(v, x * 2.0)  # a scalar variable
        init = fc.global_variables_initializer()
    with fc.Session(target, graph=g) as sess:
        sess.run(init)
        assert sess.run(update, {x: 3.0}) == 6.0
        with pytest.raises(FlowcTypeError) as info:
            sess.run(update, {x: np.ones(3)})
        assert "Assign" in str(info.value) and line_of("# a scalar variable") in str(info.value)
        assert sess.run(v) == 6.0


@pytest.mark.parametrize("target", TARGETS)
def test_control_flow_over_another_rank_says_to_give_a_shape(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32)
        doubled = fc.cond(fc.constant(True), lambda: x * 2.0, lambda: x)  # built for the scalar
    with fc.Session(target, graph=g) as sess:
        assert sess.run(doubled, {x: 2.0}) == 4.0
        with pytest.raises(FlowcTypeError, match="give the placeholder of unknown rank .* a shape") as info:
            sess.run(doubled, {x: np.ones(3)})
        assert line_of("# built for the scalar") in str(info.value)


def test_an_op_no_rank_fits_fails_where_it_is_built():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32)
        with pytest.raises(FlowcTypeError, match="one dtype"):
            x + fc.constant(1, fc.int32)


@pytest.mark.parametrize("target", TARGETS)
def test_graph_def_round_trip_keeps_the_rank_rules(target):
    with fc.Graph().as_default() as original:
        x = fc.placeholder(fc.float32, name="x")
        fc.reduce_sum(fc.transpose(x) * 2.0, name="total")
        fc.matmul(x, fc.constant(np.eye(2, dtype=np.float32)), name="product")
    document = original.as_graph_def()
    assert {node["name"]: node.get("rank_rules") for node in document["nodes"]}["total"] == {"axes": "all_axes"}
    g = fc.Graph()
    with g.as_default():
        fc.import_graph_def(document, name="")
    value = np.arange(6, dtype=np.float32).reshape(3, 2)
    with fc.Session(target, graph=g) as sess:
        assert sess.run("total:0", {"x:0": value}) == 30.0
        assert sess.run("total:0", {"x:0": 4.0}) == 8.0
        np.testing.assert_array_equal(sess.run("product:0", {"x:0": value}), value)
    bad = {**document, "nodes": [dict(node, rank_rules={"axes": "some_axes"}) if node["name"] == "total" else node
                                 for node in document["nodes"]]}
    with fc.Graph().as_default(), pytest.raises(fc.errors.GraphError, match="the rules are"):
        fc.import_graph_def(bad)


def _logsumexp(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    top = np.max(x, keepdims=True)
    total = np.log(np.sum(np.exp(x - top), keepdims=True)) + top
    return total if keepdims else total.reshape(())


# name -> (the graph of the shapeless x, numpy's answer, the ranks fed): the front ends that work out
# something from the rank (Note [placeholders of unknown rank]) give what numpy gives at each rank.
FRONT_ENDS = {
    "softmax": (lambda x: fc.nn.softmax(x), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True), (1, 2)),
    "logsumexp": (lambda x: fc.reduce_logsumexp(x), _logsumexp, (0, 1, 2)),
    "logsumexp_kept": (lambda x: fc.reduce_logsumexp(x, keepdims=True), lambda x: _logsumexp(x, True), (1, 2)),
    "mean_squared_error": (lambda x: fc.losses.mean_squared_error(x, x * 2.0), lambda x: np.mean(x * x), (0, 1, 2)),
    "size": (lambda x: fc.size(x), lambda x: np.int32(x.size), (0, 1, 2)),
    "shape": (lambda x: fc.shape(x), lambda x: np.array(x.shape, np.int32), (0, 1, 2)),
    "rank": (lambda x: fc.rank(x), lambda x: np.int32(x.ndim), (0, 1, 2)),
    "zeros_like": (lambda x: fc.zeros_like(x), np.zeros_like, (0, 1, 2)),
    "ones_like": (lambda x: fc.ones_like(x, fc.int32), lambda x: np.ones_like(x, np.int32), (0, 2)),
    "first": (lambda x: x[0], lambda x: x[0], (1, 2)),
    "column": (lambda x: x[:, 1], lambda x: x[:, 1], (2,)),
    "reversed": (lambda x: x[::-1], lambda x: x[::-1], (1, 2)),
    "new_axis": (lambda x: x[None, 0, ...], lambda x: x[None, 0, ...], (1, 2)),
    "max_kept": (lambda x: fc.reduce_max(x, keepdims=True), lambda x: x.max(keepdims=True), (0, 1, 2)),
    "argmax": (lambda x: fc.argmax(x, 1), lambda x: np.argmax(x, 1), (2,)),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(FRONT_ENDS))
def test_front_ends_that_read_the_rank_follow_the_fed_rank(target, name):
    build, numpy_answer, ranks = FRONT_ENDS[name]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, name="x")
        y = build(x)
    values = {0: np.float32(0.75), 1: np.float32([0.5, -1.0, 2.0]), 2: np.arange(6, dtype=np.float32).reshape(2, 3) / 4}
    with fc.Session(target, graph=g) as sess:
        for rank in ranks:
            got, want = sess.run(y, {x: values[rank]}), numpy_answer(values[rank])
            assert got.shape == np.shape(want) and got.dtype == np.asarray(want).dtype, (rank, got, want)
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_indexing_after_an_ellipsis_needs_a_known_rank():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, name="x")
        with pytest.raises(FlowcTypeError, match="axes after '...' are not known") as info:
            x[..., 0]  # indexed after the ellipsis
        assert line_of("# indexed after the ellipsis") in str(info.value)


def test_a_variable_from_a_value_of_unknown_rank_says_it_needs_a_static_shape():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32)
        with pytest.raises(FlowcTypeError, match="needs a static shape, its initial value is of unknown rank"):
            fc.Variable(x * 2.0)
