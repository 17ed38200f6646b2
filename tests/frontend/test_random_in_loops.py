"""Random ops in while_loop bodies: Note [random streams in loops] in compiler/control_flow_lowering.py.

Each turn draws new numbers, each run too; the numbers are the same on every target and the
same again for the same seeds; dropout in a dynamic_rnn cell trains, with equal gradients on
reference and cpu.
"""

from typing import Any

import numpy as np
import pytest

import flowc as fc
from flowc.ir.ops import philox

TARGETS = ["reference", "cpu"]
TURNS, WIDTH = 6, 500


def drawn_per_turn(seed: int, draw: Any = None) -> tuple[fc.Graph, fc.Tensor]:
    """A graph whose loop writes one draw of `draw()` per turn into a TensorArray: [TURNS, WIDTH]."""
    draw = draw or (lambda: fc.random_uniform([WIDTH]))
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(seed)
        rows = fc.TensorArray(fc.float32, size=TURNS, element_shape=[WIDTH])
        _, rows = fc.while_loop(lambda i, a: i < TURNS, lambda i, a: (i + 1, a.write(i, draw())),
                                [fc.constant(0), rows])
        return g, rows.stack()


def runs(graph: fc.Graph, fetch: fc.Tensor, target: str, count: int = 2) -> list[np.ndarray]:
    with fc.Session(graph=graph, target=target) as sess:
        return [sess.run(fetch) for _ in range(count)]


@pytest.mark.parametrize("target", TARGETS)
def test_each_turn_and_each_run_draws_new_numbers(target: str) -> None:
    first, second = runs(*drawn_per_turn(1), target)
    for drawn in (first, second):
        assert np.all((drawn >= 0.0) & (drawn < 1.0))
        for a in range(TURNS):
            for b in range(a):
                assert not np.any(drawn[a] == drawn[b]), (a, b)  # 500 float32 draws: equal ones would be a repeat
    assert not np.any(first == second)


def test_targets_agree_and_seeds_reproduce() -> None:
    reference = runs(*drawn_per_turn(7), "reference", 3)
    native = runs(*drawn_per_turn(7), "cpu", 3)
    again = runs(*drawn_per_turn(7), "cpu", 3)
    for r, n, a in zip(reference, native, again):
        np.testing.assert_array_equal(r, n)
        np.testing.assert_array_equal(n, a)
    other_seed = runs(*drawn_per_turn(8), "cpu", 1)[0]
    assert not np.any(other_seed == native[0])


def test_loop_draws_differ_from_the_same_op_outside_loops() -> None:
    """Turn t draws with step r + (t + 1) * 2**32: never the run counter r that ops outside loops use."""
    graph, fetch = drawn_per_turn(3)
    loop_op = next(op for op in graph.get_operations() if op.type == "while")
    body = loop_op.attrs["body_graph"]
    (uniform,) = [op for op in body.get_operations() if op.type == "random_uniform"]
    drawn = runs(graph, fetch, "cpu", 2)
    for run, rows in enumerate(drawn):
        for turn in range(TURNS):
            want = philox.uniform(uniform.attrs["seed"], run + (turn + 1) * 2**32, WIDTH, fc.float32)
            np.testing.assert_array_equal(rows[turn], want.astype(np.float32))


@pytest.mark.parametrize("target", TARGETS)
def test_statistics_of_normal_draws_in_a_loop(target: str) -> None:
    (drawn,) = runs(*drawn_per_turn(11, lambda: fc.random_normal([WIDTH], mean=2.0, stddev=3.0)), target, 1)
    values = drawn.ravel()  # 3000 draws: the mean within ~4 standard errors, the stddev within 10%
    assert abs(values.mean() - 2.0) < 4 * 3.0 / np.sqrt(values.size)
    assert abs(values.std() - 3.0) < 0.3
    per_turn = drawn.mean(axis=1)
    assert np.ptp(per_turn) > 0.0


@pytest.mark.parametrize("target", TARGETS)
def test_cond_inside_a_loop_body_draws_per_turn(target: str) -> None:
    def draw() -> fc.Tensor:
        return fc.cond(fc.constant(True), lambda: fc.random_uniform([WIDTH]), lambda: fc.zeros([WIDTH]))

    drawn, _ = runs(*drawn_per_turn(4, draw), target)
    assert not np.any(drawn[0] == drawn[1])


class DroppedInputCell(fc.nn.rnn_cell.BasicRNNCell):
    """A tanh cell whose input goes through dropout, drawn anew at each step."""

    def __call__(self, inputs: fc.Tensor, state: fc.Tensor, scope: Any = None) -> Any:
        return super().__call__(fc.nn.dropout(inputs, rate=0.5, seed=1), state)


def dropout_rnn(seed: int) -> tuple[fc.Graph, fc.Tensor, list[fc.Tensor], fc.Operation]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(seed)
        x = fc.constant(np.random.default_rng(0).normal(size=(4, 7, 3)).astype(np.float32))
        target = fc.constant(np.random.default_rng(1).normal(size=(4, 7, 6)).astype(np.float32) * 0.5)
        outputs, _ = fc.nn.dynamic_rnn(DroppedInputCell(6), x, dtype=fc.float32)
        loss = fc.reduce_mean((outputs - target) ** 2)
        variables = fc.trainable_variables()
        grads = fc.gradients(loss, variables)
        train = fc.train.GradientDescentOptimizer(0.3).minimize(loss)
        init = fc.global_variables_initializer()
    return g, loss, grads, (train, init)


def test_dropout_in_dynamic_rnn_gradients_match_between_targets() -> None:
    got = {}
    for target in TARGETS:
        graph, loss, grads, (_, init) = dropout_rnn(5)
        with fc.Session(graph=graph, target=target) as sess:
            sess.run(init)
            got[target] = [sess.run([loss, *grads]) for _ in range(2)]
    for ref, native in zip(got["reference"], got["cpu"]):
        for a, b in zip(ref, native):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert got["cpu"][0][0] != got["cpu"][1][0]  # a new mask each run


def test_dropout_in_dynamic_rnn_trains() -> None:
    graph, loss, _, (train, init) = dropout_rnn(6)
    with fc.Session(graph=graph, target="cpu") as sess:
        sess.run(init)
        before = np.mean([sess.run(loss) for _ in range(20)])
        for _ in range(300):
            sess.run(train)
        after = np.mean([sess.run(loss) for _ in range(20)])
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("target", TARGETS)
def test_the_gradient_sees_the_masks_the_forward_loop_drew(target: str) -> None:
    """acc = sum over turns of dropout(w): d sum(acc) / dw is sum(mask_t) / keep, which is acc / w,
    only if the backward loop sees each turn's own mask."""
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(2)
        w = fc.placeholder(fc.float64, [WIDTH], name="w")
        _, acc = fc.while_loop(lambda i, a: i < 4, lambda i, a: (i + 1, a + fc.nn.dropout(w, rate=0.5)),
                               [fc.constant(0), fc.zeros([WIDTH], fc.float64)])
        (grad,) = fc.gradients(fc.reduce_sum(acc), [w])
    values = np.random.default_rng(3).uniform(1.0, 2.0, WIDTH)
    with fc.Session(graph=g, target=target) as sess:
        for _ in range(2):
            total, slope = sess.run([acc, grad], {w: values})
            np.testing.assert_allclose(slope, total / values, rtol=1e-12)
            assert 0.0 < np.mean(slope == 0.0) < 0.2  # dropped in all four turns: 1/16 of the elements


def test_a_graph_def_round_trip_keeps_the_loop_draws() -> None:
    """uses_step travels with the while node: the imported loop draws the same numbers."""
    import json

    graph, fetch = drawn_per_turn(9)
    expected = runs(graph, fetch, "cpu", 2)
    imported = fc.Graph()
    with imported.as_default():
        fc.import_graph_def(json.loads(json.dumps(graph.as_graph_def())), name="")
    got = runs(imported, imported.get_tensor_by_name(fetch.name), "cpu", 2)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
