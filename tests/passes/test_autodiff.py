"""fc.gradients: TensorFlow 1 semantics, second derivatives, stable cross entropy, the kinks, errors,
and the same gradients from every target and optimization level. (Every op's rule against finite
differences: test_gradient_check.py; the IR the pass writes: tests/filecheck/autodiff_*.ir.)"""

from __future__ import annotations

import importlib
import json
import re

import numpy as np
import pytest

import flowc as fc
from flowc import ir
from flowc.errors import FlowcError, FlowcTypeError, GraphError
from flowc.passes import Autodiff, expand_gradients


@pytest.fixture
def g():
    graph = fc.Graph()
    with graph.as_default():
        yield graph


def run(graph, fetches, feeds=None, target="reference", optimize=None):
    with graph.as_default():
        init = fc.global_variables_initializer()
    with fc.Session(graph=graph, target=target, optimize=optimize) as sess:
        sess.run(init)
        return sess.run(fetches, feeds or {})


def f64(value):
    return np.asarray(value, np.float64)


def cpu_available() -> bool:
    try:
        importlib.import_module("flowc.native")
    except ImportError:
        return False
    return True


needs_cpu = pytest.mark.skipif(not cpu_available(), reason="the cpu target does not import here")


# -- which xs get a gradient ----------------------------------------------------------------


def test_none_for_unconnected_integer_and_blocked_xs(g):
    x = fc.placeholder(fc.float32, shape=[3], name="x")
    other = fc.placeholder(fc.float32, shape=[3], name="other")
    labels = fc.placeholder(fc.int32, shape=[3], name="labels")
    y = fc.reduce_sum(x * fc.cast(labels, fc.float32))
    index = fc.cast(fc.argmax(other), fc.float32)  # other reaches y2 only through argmax
    y2 = y + index + fc.reduce_sum(fc.stop_gradient(other))
    dx, dother, dlabels = fc.gradients(y2, [x, other, labels])
    assert dother is None and dlabels is None
    assert dx.shape == (3,) and dx.dtype == fc.float32
    feeds = {x: [1, 2, 3], other: [0, 5, 1], labels: [4, 5, 6]}
    np.testing.assert_array_equal(run(g, dx, feeds), np.float32([4, 5, 6]))
    assert fc.gradients(y, other) == [None]
    assert sum(op.type == "gradients" for op in g.get_operations()) == 1  # no request when every x is None


def test_grad_ys_weight_each_y_and_a_list_of_ys_is_summed(g):
    x = fc.placeholder(fc.float64, shape=[None, 2], name="x")
    a, b = x * x, fc.exp(x)
    (summed,) = fc.gradients([fc.reduce_sum(a), fc.reduce_sum(b)], [x])
    (weighted,) = fc.gradients([a, b], [x], grad_ys=[f64([[1, 2]] * 3), None])  # None: ones
    xv = f64([[0.5, -1], [2, 0], [1, 1]])
    got_sum, got_weighted = run(g, [summed, weighted], {x: xv})
    np.testing.assert_allclose(got_sum, 2 * xv + np.exp(xv))
    np.testing.assert_allclose(got_weighted, 2 * xv * [1, 2] + np.exp(xv))


def test_default_grad_ys_over_an_unknown_shape_are_ones(g):
    x = fc.placeholder(fc.float32, shape=[None, 2], name="x")
    y = fc.tanh(x)  # not a scalar: each element weighted by 1
    (dx,) = fc.gradients(y, x)
    (partial,) = fc.gradients([y, fc.reduce_sum(x)], x, grad_ys=[None, 2.0])
    xv = np.float32([[0.1, -0.3]] * 3)
    got, got_partial = run(g, [dx, partial], {x: xv})
    np.testing.assert_allclose(got, 1 - np.tanh(xv) ** 2, rtol=1e-6)
    np.testing.assert_allclose(got_partial, 1 - np.tanh(xv) ** 2 + 2, rtol=1e-6)


def test_gradients_with_respect_to_variables(g):
    W = fc.Variable(f64([[1, 2], [3, 4]]), name="W")
    b = fc.Variable(f64([0.5, -0.5]), name="b")
    x = fc.placeholder(fc.float64, shape=[None, 2], name="x")
    loss = fc.reduce_sum(fc.square(fc.matmul(x, W) + b))
    with fc.control_dependencies([loss]):
        later = fc.reduce_sum(W.read_value())  # another read of W, the same value in this run
    dW, db, dW_again = fc.gradients(loss, [W, b, W])
    (dW_later,) = fc.gradients(later, W)
    xv = f64([[1, 0], [2, 1]])
    residual = xv @ [[1, 2], [3, 4]] + [0.5, -0.5]
    got_W, got_b, got_again, got_later = run(g, [dW, db, dW_again, dW_later], {x: xv})
    np.testing.assert_allclose(got_W, 2 * xv.T @ residual)
    np.testing.assert_array_equal(got_again, got_W)
    np.testing.assert_allclose(got_b, 2 * residual.sum(0))
    np.testing.assert_array_equal(got_later, np.ones((2, 2)))


def test_gradient_with_respect_to_an_intermediate_tensor(g):
    x = fc.placeholder(fc.float32, shape=[None, 2], name="x")
    hidden = fc.tanh(x)
    dhidden, dx = fc.gradients(fc.reduce_sum(hidden * hidden), [hidden, x])
    xv = np.float32([[0.5, -1], [2, 0]])
    got_hidden, got_x = run(g, [dhidden, dx], {x: xv})
    np.testing.assert_allclose(got_hidden, 2 * np.tanh(xv), rtol=1e-6)
    np.testing.assert_allclose(got_x, 2 * np.tanh(xv) * (1 - np.tanh(xv) ** 2), rtol=1e-6)


def test_gradient_of_a_placeholder_that_is_also_a_y(g):
    x = fc.placeholder(fc.float32, shape=[2], name="x")
    (dx,) = fc.gradients(x, x)
    np.testing.assert_array_equal(run(g, dx, {x: [3, 4]}), np.float32([1, 1]))


# -- second order -------------------------------------------------------------------------------


def test_second_derivative_of_a_cube_and_of_tanh(g):
    x = fc.placeholder(fc.float64, shape=[None], name="x")
    (d_cube,) = fc.gradients(fc.reduce_sum(x ** 3.0), x)
    (dd_cube,) = fc.gradients(d_cube, x)
    (ddd_cube,) = fc.gradients(dd_cube, x)
    (d_tanh,) = fc.gradients(fc.tanh(x), x)
    (dd_tanh,) = fc.gradients(d_tanh, x)
    xv = f64([-1.5, 0.3, 2.0])
    got = run(g, [d_cube, dd_cube, ddd_cube, dd_tanh], {x: xv})
    t = np.tanh(xv)
    for value, want in zip(got, [3 * xv**2, 6 * xv, np.full(3, 6.0), -2 * t * (1 - t**2)]):
        np.testing.assert_allclose(value, want, rtol=1e-12)


def test_hessian_vector_product_of_a_matmul_expression(g):
    x = fc.placeholder(fc.float64, shape=[None, 3], name="x")
    W = fc.constant(f64([[1, -2], [0.5, 1], [2, 0]]))
    v = fc.placeholder(fc.float64, shape=[None, 3], name="v")
    (dx,) = fc.gradients(fc.reduce_sum(fc.square(fc.matmul(x, W))), x)  # 2 (x W) W^T
    (hv,) = fc.gradients(fc.reduce_sum(dx * v), x)  # H v = 2 v W W^T
    xv, vv, Wv = f64([[1, 2, 3], [0, -1, 1]]), f64([[0.5, 0, 1], [1, 1, -1]]), f64([[1, -2], [0.5, 1], [2, 0]])
    got_dx, got_hv = run(g, [dx, hv], {x: xv, v: vv})
    np.testing.assert_allclose(got_dx, 2 * xv @ Wv @ Wv.T, rtol=1e-12)
    np.testing.assert_allclose(got_hv, 2 * vv @ Wv @ Wv.T, rtol=1e-12)


# -- numerics users expect --------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_cross_entropy_gradient_is_softmax_minus_labels_for_huge_logits(g, sparse):
    logits = fc.placeholder(fc.float32, shape=[None, 3], name="logits")
    labels = np.array([0, 2, 1, 1])
    onehot = np.eye(3, dtype=np.float32)[labels]
    if sparse:
        loss = fc.nn.sparse_softmax_cross_entropy_with_logits(labels=fc.constant(labels), logits=logits)
    else:
        loss = fc.nn.softmax_cross_entropy_with_logits(labels=fc.constant(onehot), logits=logits)
    (dlogits,) = fc.gradients(fc.reduce_sum(loss), logits)
    value = np.float32([[1000, -1000, 0], [-1000, -1000, 1000], [1000, 999, -1000], [0.5, 0.25, 0]])
    got = run(g, dlogits, {logits: value})
    shifted = value - value.max(1, keepdims=True)
    softmax = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, softmax - onehot, atol=1e-6)


def test_kinks_follow_tensorflow(g):
    x = fc.placeholder(fc.float32, shape=[3], name="x")
    at_zero = [fc.gradients(fc.reduce_sum(f(x)), x)[0] for f in (fc.relu, fc.abs, fc.sqrt)]
    (d_max,) = fc.gradients(fc.reduce_sum(fc.maximum(x, 0.0)), x)  # a tie sends the gradient to x
    d_relu, d_abs, d_sqrt, got_max = run(g, at_zero + [d_max], {x: [0, 1, -2]})
    np.testing.assert_array_equal(d_relu, np.float32([0, 1, 0]))
    np.testing.assert_array_equal(d_abs, np.float32([0, 1, -1]))
    assert d_sqrt[0] == np.inf and d_sqrt[1] == 0.5 and np.isnan(d_sqrt[2])
    np.testing.assert_array_equal(got_max, np.float32([1, 1, 0]))


def test_reduce_max_shares_its_gradient_among_ties(g):
    x = fc.placeholder(fc.float32, shape=[2, 4], name="x")
    (dx,) = fc.gradients(fc.reduce_sum(fc.reduce_max(x, axis=1) * fc.constant([1.0, 6.0])), x)
    got = run(g, dx, {x: [[3, 1, 3, 2], [5, 5, 5, -1]]})
    np.testing.assert_array_equal(got, np.float32([[0.5, 0, 0.5, 0], [2, 2, 2, 0]]))


# -- targets and optimization levels ----------------------------------------------------------------


def mlp(graph):
    with graph.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 5], name="x")
        y = fc.placeholder(fc.int32, shape=[None], name="y")
        W1 = fc.Variable(fc.random_normal([5, 8], seed=1, stddev=0.5), name="W1")
        b1 = fc.Variable(fc.random_normal([8], seed=2, stddev=0.1), name="b1")
        W2 = fc.Variable(fc.random_normal([8, 3], seed=3, stddev=0.5), name="W2")
        b2 = fc.Variable(fc.zeros([3]), name="b2")
        hidden = fc.relu(fc.matmul(x, W1) + b1)
        logits = fc.matmul(hidden, W2) + b2
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        grads = fc.gradients(loss, [W1, b1, W2, b2, x])
    rng = np.random.default_rng(0)
    feeds = {x: rng.standard_normal((7, 5)).astype(np.float32), y: rng.integers(0, 3, 7).astype(np.int32)}
    return [loss, *grads], feeds


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "unoptimized"])
def test_reference_target_with_and_without_the_pipeline(optimize):
    graph = fc.Graph()
    fetches, feeds = mlp(graph)
    want = run(graph, fetches, feeds, optimize=True)
    got = run(graph, fetches, feeds, optimize=optimize)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_flowc_opt_0_expands_requests_too(monkeypatch):
    monkeypatch.setenv("FLOWC_OPT", "0")
    graph = fc.Graph()
    fetches, feeds = mlp(graph)
    with graph.as_default():
        init = fc.global_variables_initializer()
    with fc.Session(graph=graph, target="reference") as sess:
        assert not sess.optimize
        sess.run(init)
        assert all(np.isfinite(v).all() for v in sess.run(fetches, feeds))


@needs_cpu
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "unoptimized"])
def test_cpu_target_matches_the_reference_for_an_mlp(optimize):
    graph = fc.Graph()
    fetches, feeds = mlp(graph)
    for batch in (7, 2):  # one compiled function for every batch size
        part = {k: v[:batch] for k, v in feeds.items()}
        want = run(graph, fetches, part, target="reference")
        got = run(graph, fetches, part, target="cpu", optimize=optimize)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# -- the request in the graph, the IR and the graph_def ---------------------------------------------


def test_a_request_is_one_graph_op_with_the_xs_shapes(g):
    x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
    W = fc.Variable(fc.zeros([4, 2]), name="W")
    dx, dW = fc.gradients(fc.reduce_sum(fc.matmul(x, W)), [x, W], name="grads")
    assert dx.op is dW.op and dx.op.type == "gradients" and dx.op.name == "grads"
    assert (dx.name, dx.shape, dW.name, dW.shape) == ("grads:0", (None, 4), "grads:1", (4, 2))
    assert dx.op.attrs == {"num_ys": 1, "num_xs": 2}


def test_lowering_carries_the_request_and_the_pass_expands_it(g):
    from flowc.lowering import lower

    x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
    (dx,) = fc.gradients(fc.reduce_sum(fc.tanh(x)), x)
    module = lower(g, [dx], [], [x]).module
    assert [op.name for op in module.walk()].count("gradients") == 1
    assert Autodiff().run(module) is True
    ir.verify(module)
    assert "gradients" not in [op.name for op in module.walk()] and "tanh" in str(module)
    assert Autodiff().run(module) is False  # nothing left to do


def test_gradient_ops_round_trip_through_graph_def(g):
    x = fc.placeholder(fc.float32, shape=[None, 2], name="x")
    (dx,) = fc.gradients(fc.reduce_sum(fc.nn.softmax(x) * fc.constant([1.0, 3.0])), x)
    text = json.dumps(g.as_graph_def())
    other = fc.Graph()
    with other.as_default():
        fc.import_graph_def(text, name="")
    assert json.loads(json.dumps(other.as_graph_def()))["nodes"] == json.loads(text)["nodes"]
    value = np.float32([[0.5, -1], [2, 2]])
    np.testing.assert_array_equal(run(other, "gradients:0", {"x:0": value}), run(g, dx, {x: value}))


# -- errors -------------------------------------------------------------------------------------


def test_a_non_float_y_is_a_type_error_at_the_users_line(g):
    x = fc.placeholder(fc.float32, shape=[3], name="x")
    with pytest.raises(FlowcTypeError, match=r"^gradients \(created at test_autodiff\.py:\d+\): y 0 'ArgMax:0' "
                                             r"is i64\[\]: only float tensors have gradients"):
        fc.gradients(fc.argmax(x), x)


def test_unknown_xs_and_bad_grad_ys_are_clear_errors(g):
    x = fc.placeholder(fc.float32, shape=[3], name="x")
    y = fc.reduce_sum(x)
    with pytest.raises(GraphError, match=r"x 0 is 'x:0', not a tensor or Variable"):
        fc.gradients(y, "x:0")
    with fc.Graph().as_default():
        stranger = fc.placeholder(fc.float32, shape=[3], name="x")
    with pytest.raises(GraphError, match=r"x 1 'x:0' belongs to another graph than the ys"):
        fc.gradients(y, [x, stranger])
    with pytest.raises(GraphError, match=r"grad_ys has 2 entries for 1 ys"):
        fc.gradients(y, x, grad_ys=[1.0, 2.0])
    line = r"gradients 'gradients' \(created at test_autodiff\.py:\d+\)"
    with pytest.raises(FlowcTypeError, match=line + r": grad_y 0 must have the type of y 0 \(f32\[3\]\), got f32\[2\]"):
        fc.gradients(x * 2.0, x, grad_ys=[fc.constant([1.0, 2.0])])
    with pytest.raises(FlowcTypeError, match="expected a float32 tensor"):
        fc.gradients(y, x, grad_ys=[fc.constant(1.0, fc.float64)])


def test_a_gradient_no_rule_can_build_names_the_forward_op_and_line(g):
    x = fc.placeholder(fc.float32, shape=[None, 2], name="x")
    picked = fc.gather_nd(x, [[1, 0]])  # from params whose size only the run knows
    (dx,) = fc.gradients(fc.reduce_sum(picked), x)
    with pytest.raises(FlowcError, match=r"^gather_nd 'GatherNd' \(created at test_autodiff\.py:\d+\): no gradient: "
                                         r"the gradient of gather_nd needs the first 2 dims of the params"):
        run(g, dx, {x: np.ones((3, 2), np.float32)})


def test_an_ir_request_with_wrong_operands_fails_to_verify():
    text = """func @f(%x: f32[3], %n: i32[3]) -> f32[3] {
  %g = gradients %n, %x {num_xs = 1, num_ys = 1} : f32[3]
  return %g : f32[3]
}
"""
    with pytest.raises(ir.VerifyError, match=re.escape("y 0 must be float16, float32 or float64, got i32[3]")):
        ir.verify(ir.parse_module(text))


def test_expanding_a_module_without_requests_changes_nothing():
    text = "func @f(%x: f32[3]) -> f32[3] {\n  %y = exp %x : f32[3]\n  return %y : f32[3]\n}\n"
    module = ir.parse_module(text)
    assert expand_gradients(module) is False and str(module) == text
