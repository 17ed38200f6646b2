"""Random ops in @fc.function bodies, in while loops nested in loop bodies, and in cond branches inside
them: Note [random streams in calls and nested loops] in compiler/control_flow_lowering.py.

Each call site draws its own numbers, each call of it in a loop turn and each run too; the numbers are
the same on reference and cpu, bit for bit, and the same again for the same seeds.
"""

from typing import Any, Callable

import numpy as np
import pytest

import flowc as fc

TARGETS = ["reference", "cpu"]
WIDTH = 200


def build(seed: int, make: Callable[[], Any]) -> tuple[fc.Graph, Any]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(seed)
        return g, make()


def runs(graph: fc.Graph, fetch: Any, target: str, count: int = 2) -> list[Any]:
    with fc.Session(graph=graph, target=target) as sess:
        return [sess.run(fetch) for _ in range(count)]


def all_distinct(rows: list[np.ndarray]) -> bool:
    """No two rows agree at any position: 200 float32 draws equal at one place would be a repeat."""
    return all(not np.any(rows[a] == rows[b]) for a in range(len(rows)) for b in range(a))


def two_calls_and_a_loop() -> list[fc.Tensor]:
    """A noisy function called at two sites, and at a third inside a loop of 3 turns."""
    @fc.function
    def noisy(x):
        return x + fc.random_uniform([WIDTH])

    x = fc.zeros([WIDTH])
    rows = fc.TensorArray(fc.float32, size=3, element_shape=[WIDTH])
    _, rows = fc.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a.write(i, noisy(x))), [fc.constant(0), rows])
    return [noisy(x), noisy(x), *fc.unstack(rows.stack())]


def nested_loops() -> fc.Tensor:
    """[3 outer turns, 4 inner turns, WIDTH] draws of a loop nested in a loop's body, half of them in a cond."""
    def outer(i, rows):
        def inner(j, row):
            draw = fc.cond(fc.equal(j % 2, 0), lambda: fc.random_uniform([WIDTH]), lambda: fc.random_uniform([WIDTH]) + 1.0)
            return j + 1, row.write(j, draw)

        inner_rows = fc.TensorArray(fc.float32, size=4, element_shape=[WIDTH])
        _, inner_rows = fc.while_loop(lambda j, r: j < 4, inner, [fc.constant(0), inner_rows])
        return i + 1, rows.write(i, inner_rows.stack())

    rows = fc.TensorArray(fc.float32, size=3, element_shape=[4, WIDTH])
    return fc.while_loop(lambda i, r: i < 3, outer, [fc.constant(0), rows])[1].stack()


@pytest.mark.parametrize("target", TARGETS)
def test_each_call_site_each_turn_and_each_run_draws_new_numbers(target: str) -> None:
    first, second = runs(*build(1, two_calls_and_a_loop), target)
    for drawn in (first, second):
        assert all(np.all((row >= 0) & (row < 1)) for row in drawn)
        assert all_distinct(drawn)
    assert all_distinct([np.concatenate(first), np.concatenate(second)])


def flat(fetched: Any) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in fetched]) if isinstance(fetched, list) else np.ravel(fetched)


@pytest.mark.parametrize("make", [two_calls_and_a_loop, nested_loops], ids=["calls", "nested"])
def test_targets_agree_bit_for_bit_and_seeds_reproduce(make: Callable[[], Any]) -> None:
    reference = runs(*build(7, make), "reference", 2)
    native = runs(*build(7, make), "cpu", 2)
    again = runs(*build(7, make), "cpu", 2)
    for r, n, a in zip(reference, native, again):
        assert flat(r).tobytes() == flat(n).tobytes() == flat(a).tobytes()
    other = runs(*build(8, make), "cpu", 1)[0]
    assert not np.any(flat(other) == flat(native[0]))


@pytest.mark.parametrize("target", TARGETS)
def test_nested_loop_draws_differ_per_outer_and_inner_turn(target: str) -> None:
    first, second = runs(*build(3, nested_loops), target)
    for drawn in (first, second):
        assert drawn.shape == (3, 4, WIDTH)
        low = drawn[:, ::2].reshape(-1, WIDTH)  # the cond's then branch: [0, 1)
        high = drawn[:, 1::2].reshape(-1, WIDTH)  # the else branch: [1, 2)
        assert np.all((low >= 0) & (low < 1)) and np.all((high >= 1) & (high < 2))
        assert all_distinct(list(low)) and all_distinct(list(high))
    assert not np.any(first == second)


@pytest.mark.parametrize("target", TARGETS)
def test_the_gradient_of_a_call_sees_the_mask_the_call_drew(target: str) -> None:
    """fc.function's gradient recomputes the body (Note [function gradients]): with the call's counter."""
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(5)

        @fc.function
        def dropped(v):
            return fc.nn.dropout(v, keep_prob=0.5) * 3.0

        x = fc.placeholder(fc.float32, [WIDTH])
        y = dropped(x) + dropped(x) * 10.0
        (dx,) = fc.gradients(fc.reduce_sum(y), x)
    data = np.linspace(1, 2, WIDTH, dtype=np.float32)
    with fc.Session(graph=g, target=target) as sess:
        for _ in range(2):
            value, grad = sess.run([y, dx], {x: data})
            # y = 3 m1 x / 0.5 + 30 m2 x / 0.5: with masks m1, m2 of 0s and 1s, y / x = dy/dx exactly
            np.testing.assert_allclose(grad, value / data, rtol=1e-6)
            assert len(np.unique(np.round(grad))) == 4  # both masks drawn, independently: 0, 6, 60, 66


def test_gradient_agrees_between_targets() -> None:
    def make() -> tuple:
        @fc.function
        def noisy(v):
            return fc.tanh(v * fc.random_normal([WIDTH]))

        x = fc.constant(np.linspace(-1, 1, WIDTH, dtype=np.float32))
        total = fc.while_loop(lambda i, s: i < 3, lambda i, s: (i + 1, s + noisy(x + s)), [fc.constant(0), x])[1]
        return total, fc.gradients(fc.reduce_sum(total), x)[0]

    reference = runs(*build(11, make), "reference", 1)[0]
    native = runs(*build(11, make), "cpu", 1)[0]
    for r, n in zip(reference, native):
        np.testing.assert_allclose(n, r, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_a_graph_def_round_trip_keeps_the_call_draws(target: str) -> None:
    g, fetches = build(13, two_calls_and_a_loop)
    expected = runs(g, fetches, target, 1)[0]
    copy = fc.Graph()
    with copy.as_default():
        fc.import_graph_def(g.as_graph_def(), name="")
    names = [t.name for t in fetches]
    got = runs(copy, [copy.get_tensor_by_name(n) for n in names], target, 1)[0]
    for e, r in zip(expected, got):
        assert e.tobytes() == r.tobytes()
