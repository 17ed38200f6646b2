"""fc.cond, fc.case and fc.while_loop: values against numpy, gradients against central differences,
nested structures, captures of outer tensors and Variables, and each bad input's error.

Every run goes through a Session on each target of TARGETS. The CPU target keeps each value at one size
per set of fed shapes (Note [fixed shapes in control flow] in ir/shapes.py): a cond whose branches disagree
on a dim, and a loop value that grows, run from the host there (Notes [conds driven from the host] and
[loops driven from the host] in compiler/host_driven.py).
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import flowc as fc
import numpy as np
import pytest
from flowc import nest
from flowc.errors import FlowcError, FlowcTypeError, GraphError, IndexOutOfRange

TARGETS = ["reference", "cpu"]


HERE = os.path.basename(__file__)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository

Pair = collections.namedtuple("Pair", "first second")


def next_line() -> str:
    """'test_control_flow_frontend.py:N' for the line after the caller's: the line an error must name."""
    return f"{HERE}:{sys._getframe(1).f_lineno + 1}"


def run(graph: fc.Graph, fetches: Any, feeds: dict | None = None, target: str = "reference") -> Any:
    with fc.Session(graph=graph, target=target) as sess:
        for variable in graph.get_collection("variables"):
            sess.run(variable.initializer)
        return sess.run(fetches, feeds or {})


def central_difference(loss: Callable[[np.ndarray], float], x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        bump = np.zeros_like(x)
        bump[index] = step
        grad[index] = (loss(x + bump) - loss(x - bump)) / (2 * step)
    return grad


def check_gradient(target: str, build: Callable[[fc.Tensor], fc.Tensor], x0: np.ndarray,
                   extra_feeds: dict | None = None) -> None:
    """d sum(build(x)) / dx from fc.gradients against central differences, in float64."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=list(x0.shape), name="x")
        y = fc.reduce_sum(build(x))
        (dx,) = fc.gradients(y, x)
    with fc.Session(graph=g, target=target) as sess:
        got = sess.run(dx, {x: x0})
        want = central_difference(lambda value: float(sess.run(y, {x: value})), x0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


# -- cond -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_cond_runs_only_the_chosen_branch_value(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        y = fc.cond(fc.reduce_sum(x) > 0, lambda: x * 10.0, lambda: fc.exp(x))
    for value in ([1.0, 2.0, -0.5], [-1.0, -2.0, 0.5]):
        v = np.array(value, np.float32)
        want = v * 10 if v.sum() > 0 else np.exp(v)
        np.testing.assert_allclose(run(g, y, {x: v}, target), want, rtol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_cond_returns_nested_structures(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.bool, shape=[], name="p")
        x = fc.placeholder(fc.float32, shape=[2], name="x")
        out = fc.cond(p, lambda: {"b": Pair(x + 1.0, [x * 2.0]), "a": fc.constant(1)},
                      lambda: {"b": Pair(x - 1.0, [x * 3.0]), "a": fc.constant(2)})
    assert isinstance(out, dict) and isinstance(out["b"], Pair) and isinstance(out["b"].second, list)
    v = np.array([1.0, 4.0], np.float32)
    for flag, add, times, tag in ((True, 1.0, 2.0, 1), (False, -1.0, 3.0, 2)):
        got = run(g, out, {p: flag, x: v}, target)
        np.testing.assert_allclose(got["b"].first, v + add)
        np.testing.assert_allclose(got["b"].second[0], v * times)
        assert got["a"] == tag


def test_cond_unpacks_singletons_unless_strict() -> None:
    with fc.Graph().as_default():
        p = fc.placeholder(fc.bool, shape=[], name="p")
        loose = fc.cond(p, lambda: [fc.constant(1.0)], lambda: [fc.constant(2.0)])
        strict = fc.cond(p, lambda: [fc.constant(1.0)], lambda: [fc.constant(2.0)], strict=True)
    assert isinstance(loose, fc.Tensor)
    assert isinstance(strict, list) and len(strict) == 1


@pytest.mark.parametrize("target", TARGETS)
def test_cond_branches_with_different_dims_give_an_unknown_dim(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.bool, shape=[], name="p")
        y = fc.cond(p, lambda: fc.ones([2]), lambda: fc.zeros([3]))
    assert y.shape == (None,)
    np.testing.assert_array_equal(run(g, y, {p: True}, target), np.ones(2))
    np.testing.assert_array_equal(run(g, y, {p: False}, target), np.zeros(3))


@pytest.mark.parametrize("target", TARGETS)
def test_cond_captures_outer_tensors_and_variables(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.bool, shape=[], name="p")
        x = fc.placeholder(fc.float32, shape=[2], name="x")
        w = fc.Variable(np.array([3.0, 4.0], np.float32), name="w")
        y = fc.cond(p, lambda: x * w, lambda: w - x)
    v = np.array([1.0, 2.0], np.float32)
    np.testing.assert_allclose(run(g, y, {p: True, x: v}, target), v * [3.0, 4.0])
    np.testing.assert_allclose(run(g, y, {p: False, x: v}, target), [3.0, 4.0] - v)


@pytest.mark.parametrize("target", TARGETS)
def test_a_variable_read_inside_follows_the_enclosing_control_dependencies(target: str) -> None:
    """Note [variables in sub-graphs]: the read is the enclosing graph's, at the point of the cond."""
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.bool, shape=[], name="p")
        v = fc.Variable(1.0, name="v")
        update = fc.assign_add(v, 10.0)
        before = fc.cond(p, lambda: v * 2.0, lambda: v * 3.0)
        with fc.control_dependencies([update]):
            after = fc.cond(p, lambda: v * 2.0, lambda: v * 3.0)
    with fc.Session(graph=g, target=target) as sess:
        sess.run(v.initializer)
        assert sess.run([before, update], {p: True}) == [2.0, 11.0]  # the read from the start of the run
        assert sess.run(after, {p: False}) == 63.0  # after this run's update: (11 + 10) * 3
        assert sess.run(v) == 21.0


@pytest.mark.parametrize("target", TARGETS)
def test_a_loop_result_can_be_assigned_outside(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        v = fc.Variable(2.0, name="v")
        doubled = fc.while_loop(lambda i, t: i < 3, lambda i, t: (i + 1, t * 2.0), [0, v])[1]
        update = fc.assign(v, doubled)
    with fc.Session(graph=g, target=target) as sess:
        sess.run(v.initializer)
        sess.run(update)
        assert sess.run(update) == 128.0


@pytest.mark.parametrize("target", TARGETS)
def test_random_ops_in_branches_draw_new_numbers_each_run(target: str) -> None:
    """Note [random ops in sub-graphs]: the cond takes the run counter; seeds stay distinct."""
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(3)
        p = fc.placeholder(fc.bool, shape=[], name="p")
        outside = fc.random_uniform([4])
        made = []

        def draw() -> fc.Tensor:
            made.append(fc.random_uniform([4]))
            return made[-1] + 10.0

        y = fc.cond(p, draw, lambda: fc.cond(p, lambda: fc.zeros([4]), draw))
    seeds = [outside.op.attrs["seed"], *(t.op.attrs["seed"] for t in made)]
    assert len(set(seeds)) == 3
    with fc.Session(graph=g, target=target) as sess:
        first, second = sess.run(y, {p: True}), sess.run(y, {p: True})
        other = sess.run(y, {p: False})
    for drawn in (first, second, other):
        assert np.all((drawn >= 10.0) & (drawn < 11.0))
    assert not np.array_equal(first, second) and not np.array_equal(second, other)


def random_stop_loop(maximum: int | None = None):  # type: ignore[no-untyped-def]
    """A loop that stops at a coin toss, with a turn count and a sum of draws: its cond draws."""
    def go_on(i, total, kept):  # type: ignore[no-untyped-def]
        return fc.logical_and(i < 50, fc.random_uniform([], seed=3) < 0.8)

    def turn(i, total, kept):  # type: ignore[no-untyped-def]
        return i + 1, total + fc.random_normal([3], seed=4), kept * 2.0

    x = fc.placeholder(fc.float64, [3])
    result = fc.while_loop(go_on, turn, (0, fc.zeros([3]), x), maximum_iterations=maximum)
    return x, result


@pytest.mark.parametrize("maximum", [None, 2])
def test_random_ops_in_a_loops_cond_draw_fresh_numbers_each_test(maximum: int | None) -> None:
    """Note [a random loop condition]: the cond draws before the first turn and after each, as TF1's; native
    code draws the reference's numbers; each run draws anew; the gradient of a value the loop carries
    follows the turns the draws gave."""
    g = fc.Graph()
    with g.as_default():
        x, (turns, total, kept) = random_stop_loop(maximum)
        assert isinstance(turns, fc.Tensor) and total.type.shape == (3,)
        (grad,) = fc.gradients(fc.reduce_sum(kept), [x])
    feed = {x: np.array([1.0, -2.0, 0.5])}
    runs = {}
    for target in TARGETS:
        with fc.Session(graph=g, target=target) as sess:
            runs[target] = [sess.run([turns, total, kept, grad], feed) for _ in range(6)]
    for native, reference in zip(runs["cpu"], runs["reference"]):
        for got, want in zip(native, reference):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    counts = [int(run[0]) for run in runs["reference"]]
    assert len(set(counts)) > 1 or maximum is not None  # fresh coins each run
    assert all(0 <= c <= (maximum if maximum is not None else 50) for c in counts)
    for count, _, kept_value, grad_value in runs["reference"]:
        np.testing.assert_array_equal(kept_value, feed[x] * 2.0 ** count)
        np.testing.assert_array_equal(grad_value, np.full(3, 2.0 ** count))


def test_a_random_cond_that_is_not_a_bool_names_the_loop() -> None:
    with fc.Graph().as_default():
        message = error_of(lambda: fc.while_loop(lambda k: fc.random_uniform([]), lambda k: k + 0.5, [0.0]))
        assert "while 'while'" in message and "bool" in message


# -- case -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_case_takes_the_first_true_predicate_else_the_default(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[], name="x")
        y = fc.case([(x < 0, lambda: -x), (x > 10, lambda: x * 2.0), (x > 5, lambda: x + 1.0)],
                    default=lambda: x + 100.0)
        pairs = {x < 0: lambda: fc.constant(-1.0), x >= 0: lambda: fc.constant(1.0)}
        z = fc.case(pairs)
    for value, want in ((-3.0, 3.0), (20.0, 40.0), (7.0, 8.0), (2.0, 102.0)):
        assert run(g, y, {x: value}, target) == want
    assert [run(g, z, {x: v}, target) for v in (-2.0, 2.0)] == [-1.0, 1.0]


@pytest.mark.parametrize("target", TARGETS)
def test_case_checks_at_run_time(target: str) -> None:
    """Note [run-time checks of case]: exclusive, and no default with no predicate true."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[], name="x")
        where = next_line()
        exclusive = fc.case([(x > 0, lambda: x), (x > 5, lambda: -x)], default=lambda: x * 0.0, exclusive=True)
        no_default = fc.case([(x > 0, lambda: x), (x > 5, lambda: -x)])
    assert run(g, exclusive, {x: 3.0}, target) == 3.0
    assert run(g, exclusive, {x: -3.0}, target) == 0.0
    with pytest.raises(IndexOutOfRange, match=f"exclusive_but_more_than_one_predicate_is_true.*{where}"):
        run(g, exclusive, {x: 7.0}, target)
    assert run(g, no_default, {x: 7.0}, target) == 7.0
    with pytest.raises(IndexOutOfRange, match="no_default_and_no_predicate_is_true"):
        run(g, no_default, {x: -1.0}, target)


# -- while_loop --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_while_loop_sums_like_python(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, shape=[], name="n")
        i, total = fc.while_loop(lambda i, t: i < n, lambda i, t: (i + 1, t + i * i), (0, 0))
        single = fc.while_loop(lambda k: k < 1000, lambda k: k * 3, [1])
    assert isinstance(single, fc.Tensor)
    for count in (0, 1, 7):
        got_i, got_total = run(g, [i, total], {n: count}, target)
        assert (got_i, got_total) == (count, sum(k * k for k in range(count)))
    assert run(g, single, target=target) == 2187


@pytest.mark.parametrize("target", TARGETS)
def test_while_loop_carries_nested_structures(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[2], name="x")

        def body(i: fc.Tensor, state: dict) -> tuple:
            pair = state["pair"]
            return i + 1, {"pair": Pair(pair.second, pair.first + pair.second), "seen": [state["seen"][0] + x]}

        init = {"pair": Pair(fc.zeros([2]), fc.ones([2])), "seen": [fc.zeros([2])]}
        out = fc.while_loop(lambda i, state: i < 6, body, (0, init))
        same = fc.while_loop(lambda s: s < 5.0, lambda s: s + 1.0, [fc.constant(0.0)], return_same_structure=True)
    assert isinstance(out, tuple) and isinstance(out[1]["pair"], Pair)
    assert isinstance(same, list) and len(same) == 1
    v = np.array([0.5, -1.0], np.float32)
    count, state = run(g, out, {x: v}, target)
    assert count == 6
    np.testing.assert_allclose(state["pair"].first, [8.0, 8.0])  # Fibonacci: F6, F7
    np.testing.assert_allclose(state["pair"].second, [13.0, 13.0])
    np.testing.assert_allclose(state["seen"][0], 6 * v)


class Scaled:
    """A composite (Note [composite protocol] in nest.py): a tensor and its scale, flattened to both."""

    def __init__(self, value: fc.Tensor, scale: fc.Tensor):
        self.value, self.scale = value, scale

    def _flowc_components(self) -> list[fc.Tensor]:
        return [self.value, self.scale]

    def _flowc_rebuild(self, components: list[fc.Tensor]) -> Scaled:
        return Scaled(*components)

    def doubled(self) -> Scaled:
        return Scaled(self.value, self.scale * 2.0)


@pytest.mark.parametrize("target", TARGETS)
def test_composites_are_loop_variables_and_branch_results(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[2], name="x")
        p = fc.placeholder(fc.bool, shape=[], name="p")
        start = Scaled(x, fc.constant(1.0))
        count, grown = fc.while_loop(lambda i, s: i < 3, lambda i, s: (i + 1, s.doubled()), [0, start])
        chosen = fc.cond(p, lambda: grown, lambda: Scaled(x * 0.0, fc.constant(-1.0)))
    assert isinstance(grown, Scaled) and isinstance(chosen, Scaled)
    v = np.array([1.0, 2.0], np.float32)
    value, scale = run(g, [chosen.value, chosen.scale], {x: v, p: True}, target)
    np.testing.assert_allclose(value, v)
    assert scale == 8.0
    assert run(g, chosen.scale, {x: v, p: False}, target) == -1.0
    assert nest.flatten([count, grown]) == [count, grown.value, grown.scale]


class Growing(Scaled):
    """A composite whose value grows in a loop and says so (`_flowc_shape_invariants`), as a TensorArray does."""

    def _flowc_rebuild(self, components: list[fc.Tensor]) -> Growing:
        return Growing(*components)

    def _flowc_shape_invariants(self) -> list[Any]:
        return [[None], None]

    def appended(self, value: fc.Tensor) -> Growing:
        return Growing(fc.concat([self.value, fc.reshape(value, [1])], 0), self.scale)


@pytest.mark.parametrize("target", TARGETS)
def test_a_composite_gives_its_own_shape_invariants(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        start = Growing(fc.zeros([0]), fc.constant(2.0))
        _, grown = fc.while_loop(lambda i, s: i < 3, lambda i, s: (i + 1, s.appended(fc.cast(i, fc.float32) * s.scale)),
                                 [0, start])
    assert grown.value.shape == (None,) and grown.scale.shape == ()
    np.testing.assert_array_equal(run(g, grown.value, target=target), [0.0, 2.0, 4.0])  # cpu: from the host


@pytest.mark.parametrize("target", TARGETS)
def test_maximum_iterations_bounds_the_loop(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        bound = fc.placeholder(fc.int64, shape=[], name="bound")
        forever = fc.while_loop(lambda k: fc.constant(True), lambda k: k + 2, [0], maximum_iterations=bound)
        short = fc.while_loop(lambda k: k < 3, lambda k: k + 1, [0], maximum_iterations=10)
    assert [run(g, forever, {bound: b}, target) for b in (0, 1, 5)] == [0, 2, 10]
    assert run(g, short, target=target) == 3


@pytest.mark.parametrize("target", TARGETS)
def test_cond_inside_while_and_while_inside_cond_capture_through_each_level(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        scale = fc.placeholder(fc.float32, shape=[], name="scale")

        def body(i: fc.Tensor, s: fc.Tensor) -> tuple:
            inner = fc.while_loop(lambda j, t: j < i, lambda j, t: (j + 1, t + scale), [0, fc.zeros([])])[1]
            return i + 1, fc.cond(i < 2, lambda: s * x, lambda: s + x * inner)

        _, y = fc.while_loop(lambda i, s: i < 4, body, [0, fc.ones([3])])
        z = fc.cond(scale > 0, lambda: fc.while_loop(lambda t: fc.reduce_sum(t) < 100.0, lambda t: t * scale, [x]),
                    lambda: x)
    v, c = np.array([1.0, 2.0, 3.0], np.float32), np.float32(1.5)
    want = np.ones(3, np.float32)
    for i in range(4):
        want = want * v if i < 2 else want + v * (i * c)
    np.testing.assert_allclose(run(g, y, {x: v, scale: c}, target), want, rtol=1e-6)
    grown = v.copy()
    while grown.sum() < 100:
        grown = grown * c
    np.testing.assert_allclose(run(g, z, {x: v, scale: c}, target), grown, rtol=1e-6)
    np.testing.assert_allclose(run(g, z, {x: v, scale: -1.0}, target), v)


@pytest.mark.parametrize("target", TARGETS)
def test_shape_invariants_let_a_loop_variable_grow(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, shape=[], name="n")
        def body(i: fc.Tensor, s: fc.Tensor) -> tuple:
            return i + 1, fc.concat([s, fc.cast(fc.reshape(i, [1]), fc.float32)], 0)

        _, grown = fc.while_loop(lambda i, s: i < n, body, [0, fc.zeros([0])], shape_invariants=[[], [None]])
    assert grown.shape == (None,)
    np.testing.assert_array_equal(run(g, grown, {n: 4}, target), [0.0, 1.0, 2.0, 3.0])  # cpu: from the host
    assert run(g, grown, {n: 0}, target).shape == (0,)


# -- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_gradient_through_cond_of_an_outer_tensor(target: str, sign: float) -> None:
    x0 = sign * np.array([0.3, 1.2, 0.7])
    check_gradient(target, lambda x: fc.cond(fc.reduce_sum(x) > 0, lambda: fc.tanh(x) * x, lambda: fc.exp(x) * 2.0),
                   x0)


@pytest.mark.parametrize("target", TARGETS)
def test_gradient_through_while_of_captured_and_initial_values(target: str) -> None:
    def build(x: fc.Tensor) -> fc.Tensor:
        def body(i: fc.Tensor, s: fc.Tensor) -> tuple:
            return i + 1, fc.cond(i < 2, lambda: s * x, lambda: s + fc.tanh(x * s))

        return fc.while_loop(lambda i, s: i < 4, body, [0, x * 0.5])[1]

    check_gradient(target, build, np.array([0.3, -1.2, 0.9]))


@pytest.mark.parametrize("target", TARGETS)
def test_gradient_through_a_bounded_loop(target: str) -> None:
    def build(x: fc.Tensor) -> fc.Tensor:
        return fc.while_loop(lambda s: fc.reduce_sum(s) < 1e9, lambda s: s * x + 1.0, [x], maximum_iterations=3)

    check_gradient(target, build, np.array([0.5, 1.1]))


@pytest.mark.parametrize("target", TARGETS)
def test_second_derivative_through_cond(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        a = fc.placeholder(fc.float64, shape=[], name="a")
        y = fc.cond(a > 0, lambda: a * a * a, lambda: fc.exp(2.0 * a))
        (dy,) = fc.gradients(y, a)
        (ddy,) = fc.gradients(dy, a)
    assert run(g, [dy, ddy], {a: 2.0}, target) == [12.0, 12.0]
    np.testing.assert_allclose(run(g, [dy, ddy], {a: -1.0}, target), [2 * np.exp(-2.0), 4 * np.exp(-2.0)])


@pytest.mark.parametrize("target", TARGETS)
def test_gradient_of_a_variable_read_inside(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        w = fc.Variable(np.array([0.5, -2.0]), name="w")
        powered = fc.while_loop(lambda i, s: i < 3, lambda i, s: (i + 1, s * w), [0, fc.ones([2], fc.float64)])[1]
        loss = fc.reduce_sum(powered)
        (dw,) = fc.gradients(loss, [w])
    np.testing.assert_allclose(run(g, dw, target=target), 3 * np.array([0.5, -2.0]) ** 2)


def test_gradients_are_none_where_no_gradient_flows() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, shape=[], name="x")
        unused = fc.placeholder(fc.float32, shape=[], name="unused")
        y = fc.cond(x > 0, lambda: x * 2.0, lambda: fc.constant(1.0) + fc.stop_gradient(unused))
        frozen = fc.while_loop(lambda k: k < 3.0, lambda k: k + x, [x], back_prop=False)
        only_in_cond = fc.while_loop(lambda k: k < unused, lambda k: k * 2.0, [x])
        assert fc.gradients(y, [x, unused])[1] is None
        assert fc.gradients(frozen, x) == [None]
        assert fc.gradients(only_in_cond, [x, unused])[1] is None
        assert fc.gradients(only_in_cond, x)[0] is not None


@pytest.mark.parametrize("target", TARGETS)
def test_back_prop_false_stops_gradients_in_the_ir_too(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[], name="x")
        frozen = fc.while_loop(lambda k: k < 10.0, lambda k: k * 2.0, [x], back_prop=False)
        (dx,) = fc.gradients(frozen * x, x)  # only the direct use of x counts
    assert run(g, [frozen, dx], {x: 3.0}, target) == [12.0, 12.0]


# -- bad input ---------------------------------------------------------------------------------


def error_of(action: Callable[[], Any], kind: type[FlowcError] = FlowcError) -> str:
    with pytest.raises(kind) as info:
        action()
    return str(info.value)


def test_bad_predicates_name_the_op_and_the_line() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        where = next_line()
        message = error_of(lambda: fc.cond(x > 0, lambda: x, lambda: x, name="pick"), FlowcTypeError)
        assert f"cond 'pick' (created at {where})" in message and "bool scalar" in message and "bool[3]" in message
        where = next_line()
        message = error_of(lambda: fc.cond(fc.reduce_sum(x), lambda: x, lambda: x), FlowcTypeError)
        assert where in message and "f32[]" in message
        message = error_of(lambda: fc.cond(True, lambda: x, lambda: x), FlowcTypeError)
        assert "Python bool" in message
        where = next_line()
        message = error_of(lambda: fc.case([(x > 0, lambda: x)]), FlowcTypeError)
        assert f"case 'case' (created at {where})" in message and "predicate 0" in message


def test_branches_that_differ_name_both() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        p = fc.placeholder(fc.bool, shape=[], name="p")
        where = next_line()
        message = error_of(lambda: fc.cond(p, lambda: (x, x), lambda: [x, x]), nest.StructureError)
        assert f"cond 'cond' (created at {where})" in message
        assert "(f32[3], f32[3])" in message and "[f32[3], f32[3]]" in message
        where = next_line()
        message = error_of(lambda: fc.cond(p, lambda: x, lambda: fc.cast(x, fc.int32)), FlowcTypeError)
        assert where in message and "different dtypes" in message and "f32[3]" in message and "i32[3]" in message
        where = next_line()
        message = error_of(lambda: fc.case({p: lambda: x}, default=lambda: {"a": x}), nest.StructureError)
        assert where in message and "{'a': f32[3]}" in message


def test_a_loop_variable_that_changes_shape_needs_an_invariant() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        doubling = lambda i, s: (i + 1, fc.concat([s, s], 0))
        where = next_line()
        message = error_of(lambda: fc.while_loop(lambda i, s: i < 2, doubling, [0, x], name="grow"), FlowcTypeError)
        assert f"while 'grow' (created at {where})" in message
        assert "loop_vars[1]" in message and "f32[6]" in message and "shape_invariants" in message
        where = next_line()
        message = error_of(lambda: fc.while_loop(lambda s: True, lambda s: fc.cast(s, fc.int32), [x]), FlowcTypeError)
        assert where in message and "dtype of loop_vars[0]" in message
        where = next_line()
        message = error_of(lambda: fc.while_loop(lambda s: s, lambda s: s, [x]), FlowcTypeError)
        assert where in message and "one bool scalar" in message


def test_maximum_iterations_must_be_a_scalar_int() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        for bad, shown in ((2.5, "f32[]"), ([1, 2], "i32[2]"), (True, "Python bool")):
            where = next_line()
            message = error_of(lambda b=bad: fc.while_loop(lambda s: True, lambda s: s, [x], maximum_iterations=b))
            assert f"while 'while' (created at {where})" in message and "scalar int" in message and shown in message


def test_assigning_a_variable_inside_is_an_error() -> None:
    with fc.Graph().as_default():
        v = fc.Variable(1.0, name="v")
        p = fc.placeholder(fc.bool, shape=[], name="p")
        where = next_line()
        message = error_of(lambda: fc.cond(p, lambda: v.assign(2.0), lambda: fc.constant(0.0)), GraphError)
        assert f"Assign 'v' (created at {where})" in message and "state is explicit" in message
        where = next_line()
        message = error_of(lambda: fc.while_loop(lambda k: k < 3.0, lambda k: fc.assign_add(v, k), [0.0]), GraphError)
        assert where in message and "inside the body of while 'while'" in message


def test_a_branch_that_returns_none_is_an_error() -> None:
    with fc.Graph().as_default():
        p = fc.placeholder(fc.bool, shape=[], name="p")
        where = next_line()
        message = error_of(lambda: fc.cond(p, lambda: None, lambda: fc.constant(0.0)), GraphError)
        assert f"cond 'cond' (created at {where})" in message and "returns None" in message


def test_a_tensor_made_inside_a_branch_cannot_be_used_outside() -> None:
    with fc.Graph().as_default():
        p = fc.placeholder(fc.bool, shape=[], name="p")
        made = []
        fc.cond(p, lambda: made.append(fc.constant(1.0) * 2.0) or made[0], lambda: fc.constant(0.0))
        where = next_line()
        message = error_of(lambda: made[0] + 1.0, GraphError)
        assert where in message and "made inside the true branch of cond 'cond'" in message


# -- graph_def ---------------------------------------------------------------------------------------


def region_graph() -> fc.Graph:
    """A cond and a bounded while whose body holds a cond and a while, reading a Variable and placeholders."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        p = fc.placeholder(fc.bool, shape=[], name="p")
        v = fc.Variable(np.array([2.0, 3.0, 4.0], np.float32), name="v")
        y = fc.cond(p, lambda: x * v, lambda: x + 1.0, name="choice")

        def body(i: fc.Tensor, s: fc.Tensor) -> tuple:
            inner = fc.while_loop(lambda t: fc.reduce_sum(t) < 50.0, lambda t: t * 2.0 + x, [s])
            return i + 1, fc.cond(i < 2, lambda: inner * 0.5, lambda: s + x)

        _, s = fc.while_loop(lambda i, s: i < 4, body, [0, fc.ones([3])], maximum_iterations=10, name="loop")
        fc.identity(s + y, name="out")
    return g


def test_graph_def_round_trips_cond_and_while() -> None:
    original = region_graph()
    document = json.loads(json.dumps(original.as_graph_def(), allow_nan=False))
    imported = fc.Graph()
    with imported.as_default():
        fc.import_graph_def(document, name="copy")
        out = imported.get_tensor_by_name("copy/out:0")
        (dx,) = fc.gradients(fc.reduce_sum(out), imported.get_tensor_by_name("copy/x:0"))
    feeds = {"x:0": np.array([0.5, -1.0, 2.0], np.float32), "p:0": True}
    first, second = fc.Session(graph=original, target="reference"), fc.Session(graph=imported, target="reference")
    with first, second:
        first.run("v/Assign")
        second.run("copy/v/Assign")
        for flag in (True, False):
            want = first.run("out:0", {**feeds, "p:0": flag})
            copied = {f"copy/{k}": value for k, value in {**feeds, "p:0": flag}.items()}
            np.testing.assert_array_equal(second.run(out, copied), want)
        assert second.run(dx, {f"copy/{k}": value for k, value in feeds.items()}).shape == (3,)
    again = imported.as_graph_def()["nodes"][:len(document["nodes"])]  # then the gradient's nodes
    assert [n["op"] for n in again] == [n["op"] for n in document["nodes"]]
    loop = region_node({"nodes": again}, "copy/loop")["attrs"]["body_graph"]["graph"]
    assert kinds(loop) == kinds(region_node(document, "loop")["attrs"]["body_graph"]["graph"])
    assert "while" in kinds(loop) and "cond" in kinds(loop)


def kinds(sub_graph: dict) -> list[str]:
    return [node["op"] for node in sub_graph["nodes"]]


def region_node(document: dict, name: str) -> dict:
    return next(n for n in document["nodes"] if n["name"] == name)


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: region_node(d, "choice")["inputs"].pop(), "must be the sub-graphs' captures"),
    (lambda d: region_node(d, "choice")["attrs"]["then_branch"]["graph"]["captures"].clear(),
     "no entry of the sub-graph's captures names this Capture"),
    (lambda d: region_node(d, "choice")["outputs"][0].update(dtype="int32"), "do not fit the declared outputs"),
    (lambda d: region_node(d, "loop")["attrs"].update(num_loop_vars=1), "num_loop_vars is 1"),
    (lambda d: region_node(d, "loop")["attrs"]["cond_graph"]["graph"]["nodes"].append(
        {"name": "late", "op": "Placeholder", "inputs": [], "control_inputs": [], "device": "",
         "attrs": {"dtype": {"dtype": "float32"}, "shape": []}, "outputs": [{"dtype": "float32", "shape": []}]}),
     "cannot create a placeholder inside the cond of while 'loop'"),
], ids=["captures", "capture-entry", "output-dtype", "loop-count", "placeholder-inside"])
def test_a_bad_region_node_is_refused_and_imports_nothing(edit: Callable[[dict], Any], fragment: str) -> None:
    document = json.loads(json.dumps(region_graph().as_graph_def(), allow_nan=False))
    edit(document)
    g = fc.Graph()
    with g.as_default(), pytest.raises(GraphError, match=re.escape(fragment)):
        fc.import_graph_def(document)
    assert g.get_operations() == []


# -- relax_shape, the IR op the shape invariants need -----------------------------------------------


def test_relax_shape_forgets_sizes_in_the_type_only() -> None:
    from flowc.ir import Builder, Function, Interpreter, TensorType, float32

    function = Function("f", [TensorType(float32, (2, 3))], [])
    op = Builder.at_end(function.entry).create("relax_shape", [function.args[0]], {"axes": (0,)})
    assert str(op.result.type) == "f32[?,3]"
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,) = Interpreter().run_op(op, [x])
    np.testing.assert_array_equal(y, x)
    assert op.run_time_shape((2, 3)) == (2, 3)


# -- the example --------------------------------------------------------------------------------


def test_the_control_flow_example_runs_as_a_script() -> None:
    script = os.path.join(ROOT, "examples", "cond_while.py")
    done = subprocess.run([sys.executable, script], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "cond: 20.0 and 3.0" in done.stdout
    assert "while_loop: i = 10" in done.stdout
