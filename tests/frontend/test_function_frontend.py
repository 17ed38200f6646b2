"""@fc.function, fc.custom_gradient and fc.recompute_grad: one IR function per traced signature,
called, not copied; values against numpy and gradients against central differences in float64."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import flowc as fc
import numpy as np
import pytest
from flowc.errors import GraphError
from flowc.lowering import lower
from test_control_flow_frontend import HERE, check_gradient

TARGETS = ["reference", "cpu"]


def next_line() -> str:
    return f"{HERE.replace('control_flow', 'function')}:{sys._getframe(1).f_lineno + 1}"


def functions_of(graph: fc.Graph, fetch: fc.Tensor) -> list[str]:
    return [f.name for f in lower(graph, [fetch], [], []).module]


@pytest.mark.parametrize("target", TARGETS)
def test_a_function_is_one_function_of_the_module_called_where_used(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.constant(np.array([0.5, -1.0, 2.0]))

        @fc.function
        def soft(v: fc.Tensor, scale: float = 1.0) -> fc.Tensor:
            return fc.log(1.0 + fc.exp(v)) * scale

        y = soft(x) + soft(x * 2.0) + soft(x, scale=3.0)  # two signatures: scale is static
    assert functions_of(g, y) == ["main", "soft", "soft_1"]
    softplus = np.log1p(np.exp([0.5, -1.0, 2.0]))
    want = softplus + np.log1p(np.exp([1.0, -2.0, 4.0])) + 3 * softplus
    with fc.Session(graph=g, target=target) as sess:
        np.testing.assert_allclose(sess.run(y), want)


@pytest.mark.parametrize("target", TARGETS)
def test_functions_capture_variables_nest_and_run_inside_loops(target: str) -> None:
    w0 = np.array([1.0, 2.0, 3.0])

    def build(x: fc.Tensor) -> fc.Tensor:
        w = fc.Variable(w0, name="w")

        @fc.function
        def layer(v: fc.Tensor) -> fc.Tensor:
            return fc.tanh(v * w)

        @fc.function
        def twice(v: fc.Tensor) -> dict:
            return {"out": layer(layer(v))}

        looped = fc.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, layer(a)), [0, x])[1]
        return twice(x)["out"] + looped

    x0 = np.array([0.1, -0.2, 0.3])
    layer = lambda v: np.tanh(v * w0)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=[3], name="x")
        y = build(x)
    with fc.Session(graph=g, target=target) as sess:
        sess.run(g.get_collection("variables")[0].initializer)
        np.testing.assert_allclose(sess.run(y, {x: x0}), layer(layer(x0)) + layer(layer(layer(x0))))
    check_gradient_with_variables(target, build, x0)


def check_gradient_with_variables(target: str, build: Callable[[fc.Tensor], fc.Tensor], x0: np.ndarray) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=list(x0.shape), name="x")
        y = fc.reduce_sum(build(x))
        (dx,) = fc.gradients(y, x)
    with fc.Session(graph=g, target=target) as sess:
        for variable in g.get_collection("variables"):
            sess.run(variable.initializer)
        got = sess.run(dx, {x: x0})
        h, want = 1e-6, np.zeros_like(x0)
        for i in range(x0.size):
            bump = np.eye(x0.size)[i] * h
            want[i] = (sess.run(y, {x: x0 + bump}) - sess.run(y, {x: x0 - bump})) / (2 * h)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("target", TARGETS)
def test_function_gradients_match_central_differences(target: str) -> None:
    @fc.function
    def f(v: fc.Tensor, u: fc.Tensor) -> fc.Tensor:
        return fc.exp(v) * u + fc.square(u)

    check_gradient(target, lambda x: f(x, fc.tanh(x)), np.array([0.3, -0.7, 1.1]))
    check_gradient(target, fc.recompute_grad(lambda x: fc.sigmoid(x) * x), np.array([0.3, -0.7, 1.1]))


@pytest.mark.parametrize("target", TARGETS)
def test_grad_func_gives_the_gradient(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=[3], name="x")

        @fc.function(grad_func=lambda a, b, dy: (dy * b * 10.0, None))
        def product(a: fc.Tensor, b: fc.Tensor) -> fc.Tensor:
            return a * b

        (dx,) = fc.gradients(fc.reduce_sum(product(x, 2.0 * x)), x)  # 10 * 2x from a; b's None is zero
    with fc.Session(graph=g, target=target) as sess:
        np.testing.assert_allclose(sess.run(dx, {x: [0.1, -0.2, 0.3]}), [2.0, -4.0, 6.0])


@pytest.mark.parametrize("target", TARGETS)
def test_custom_gradient_and_its_second_derivative(target: str) -> None:
    @fc.custom_gradient
    def cube(v: fc.Tensor) -> tuple:
        return v * v * v, lambda dy: dy * 3.0 * v * v

    @fc.custom_gradient
    def straight_through(v: fc.Tensor) -> tuple:
        return fc.cast(fc.cast(v, fc.int32), fc.float64), lambda dy: dy

    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=[2], name="x")
        (d1,) = fc.gradients(fc.reduce_sum(cube(x)), x)
        (d2,) = fc.gradients(fc.reduce_sum(d1), x)
        (through,) = fc.gradients(fc.reduce_sum(straight_through(x) * 4.0), x)
    with fc.Session(graph=g, target=target) as sess:
        value = np.array([1.5, -2.0])
        got1, got2, got3 = sess.run([d1, d2, through], {x: value})
    np.testing.assert_allclose(got1, 3 * value**2)
    np.testing.assert_allclose(got2, 6 * value)
    np.testing.assert_allclose(got3, [4.0, 4.0])


def test_a_function_with_its_own_gradient_must_take_its_float_tensors_as_arguments() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, shape=[], name="x")
        outer = fc.placeholder(fc.float32, shape=[], name="outer")

        @fc.custom_gradient
        def scaled(v: fc.Tensor) -> tuple:
            return v * outer, lambda dy: dy * outer

        with pytest.raises(GraphError) as info:
            where = next_line()
            scaled(x)
        assert f"call 'scaled' (created at {where})" in str(info.value) and "'outer:0'" in str(info.value)


def test_static_arguments_must_be_hashable() -> None:
    with fc.Graph().as_default():
        f = fc.function(lambda v, table: v * float(len(table)))
        with pytest.raises(GraphError, match="hashable"):
            f(fc.constant(1.0), {1, 2})


@pytest.mark.parametrize("target", TARGETS)
def test_calls_round_trip_through_graph_def(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[2], name="x")
        f = fc.custom_gradient(lambda v: (fc.exp(v), lambda dy: dy * 2.0))
        fc.identity(f(x) + fc.function(lambda v: v * x)(x), name="out")
    document = json.loads(json.dumps(g.as_graph_def()))
    imported = fc.Graph()
    with imported.as_default():
        fc.import_graph_def(document, name="")
        (dx,) = fc.gradients(imported.get_tensor_by_name("out:0"), imported.get_tensor_by_name("x:0"))
    value = np.array([0.5, -1.0], np.float32)
    with fc.Session(graph=imported, target=target) as sess:
        out, grad = sess.run(["out:0", dx], {"x:0": value})
    np.testing.assert_allclose(out, np.exp(value) + value * value, rtol=1e-6)
    np.testing.assert_allclose(grad, 2.0 + 2 * value, rtol=1e-6)
