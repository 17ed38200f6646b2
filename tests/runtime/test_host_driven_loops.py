"""While loops whose values change shape, on the cpu target, against the reference target
(Note [loops driven from the host] in compiler/host_driven.py; issue 17, item 1).

Each graph runs on both targets with the same feeds; the cpu target drives the
marked loop from the host and keeps every other loop in native code.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import flowc as fc
from flowc.host_driven import HostDrivenExecutable
from flowc.native import NativeExecutable

F32 = np.float32


def both(build: Callable[[], tuple[Any, dict]], feeds_list: list[dict] | None = None) -> list[Any]:
    """`build()` makes (fetches, feeds by placeholder name) in a fresh graph; each feed set runs on reference and
    cpu (one Session each, so later feed sets rerun the same Session); returns the cpu Session's executables."""
    g = fc.Graph()
    with g.as_default():
        fetches, feeds = build()
    runs = feeds_list or [feeds]
    with fc.Session(graph=g, target="reference") as ref, fc.Session(graph=g, target="cpu") as cpu:
        for feed in runs:
            want, got = ref.run(fetches, feed), cpu.run(fetches, feed)
            for w, o in zip(_flat(want), _flat(got)):
                assert o.shape == w.shape and o.dtype == w.dtype
                np.testing.assert_allclose(o, w, rtol=1e-5, atol=1e-6)
        return [compiled.executable for compiled in cpu._cache.values()]


def _flat(values: Any) -> list[np.ndarray]:
    return [np.asarray(v) for v in (values if isinstance(values, (list, tuple)) else [values])]


def _growing(x: Any, turns: Any) -> Any:
    i0, acc0 = fc.constant(0), fc.zeros([0], x.dtype)

    def body(i: Any, acc: Any) -> Any:
        return i + 1, fc.concat([acc, x[:1] * fc.cast(i + 1, x.dtype)], 0)

    return fc.while_loop(lambda i, a: i < turns, body, [i0, acc0],
                         shape_invariants=[i0.shape, fc.TensorShape([None])])[1]


def test_the_reproducer_a_growing_value_runs_from_the_host() -> None:
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None], name="x")
        return _growing(x, 5), {x: np.arange(3, 6, dtype=F32)}

    executables = both(build)
    assert isinstance(executables[0], HostDrivenExecutable)


def test_a_shrinking_value() -> None:
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None], name="x")
        i0 = fc.constant(0)
        _, y = fc.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v[1:] * 2.0), [i0, x],
                             shape_invariants=[i0.shape, fc.TensorShape([None])])
        return y, {x: np.arange(7, dtype=F32)}

    both(build)


def test_a_growing_value_that_starts_at_size_zero_and_a_loop_of_no_turn() -> None:
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None], name="x")
        n = fc.placeholder(fc.int32, [], name="n")
        return _growing(x, n), {x: np.ones(2, F32), n: 0}

    both(build, [{"x:0": np.ones(2, F32), "n:0": 0}, {"x:0": np.full(2, 3, F32), "n:0": 4}])


def test_two_growing_values_of_different_sizes_beside_fixed_ones() -> None:
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        w = fc.placeholder(fc.float32, [3, 3], name="w")
        i0, a0, b0 = fc.constant(0), fc.zeros([0, 3], fc.float32), fc.ones([2], fc.float32)
        h0 = fc.reduce_sum(x, axis=0)

        def body(i: Any, a: Any, b: Any, h: Any) -> Any:
            h = fc.tanh(fc.reshape(fc.matmul(fc.expand_dims(h, 0), w), [3]))
            return i + 1, fc.concat([a, fc.expand_dims(h, 0), x[:1]], 0), fc.concat([b, b[:1] + 1.0], 0), h

        out = fc.while_loop(lambda i, a, b, h: i < 4, body, [i0, a0, b0, h0],
                            shape_invariants=[i0.shape, fc.TensorShape([None, 3]), fc.TensorShape([None]),
                                              h0.shape])
        return list(out[1:]), {x: np.arange(6, dtype=F32).reshape(2, 3) / 6, w: np.eye(3, dtype=F32) * 0.5}

    both(build)


def test_a_data_dependent_trip_count_and_reruns_with_other_feed_sizes() -> None:
    """The loop stops when the sum passes a fed limit; the same Session reruns with other sizes of x."""
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None], name="x")
        limit = fc.placeholder(fc.float32, [], name="limit")
        acc0 = fc.zeros([0], fc.float32)
        acc = fc.while_loop(lambda a: fc.reduce_sum(a) < limit, lambda a: fc.concat([a, x], 0), [acc0],
                            shape_invariants=[fc.TensorShape([None])])
        return acc, {}

    both(build, [{"x:0": np.ones(3, F32), "limit:0": F32(10)}, {"x:0": np.full(5, 0.5, F32), "limit:0": F32(6)},
                 {"x:0": np.ones(1, F32), "limit:0": F32(2.5)}])


def test_fixed_loops_stay_one_native_call() -> None:
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None, 4], name="x")
        i0 = fc.constant(0)
        _, y = fc.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, fc.tanh(v) * 2.0), [i0, x])
        return y, {x: np.ones((2, 4), F32)}

    executables = both(build)
    assert isinstance(executables[0], NativeExecutable)


def test_the_loop_in_a_cond_branch() -> None:
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None], name="x")
        p = fc.placeholder(fc.bool, [], name="p")
        y = fc.cond(p, lambda: _growing(x * 2.0, 3), lambda: x[1:] + 1.0)
        return y * 3.0, {}

    both(build, [{"x:0": np.arange(4, dtype=F32), "p:0": True}, {"x:0": np.arange(4, dtype=F32), "p:0": False},
                 {"x:0": np.arange(2, dtype=F32), "p:0": True}])


def test_the_loop_in_another_loop_body() -> None:
    """An outer loop of fixed shapes whose body holds a growing loop: the outer one runs from the host too."""
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None], name="x")
        j0, s0 = fc.constant(0), fc.zeros([], fc.float32)

        def outer(j: Any, s: Any) -> Any:
            return j + 1, s + fc.reduce_sum(_growing(x + fc.cast(j, fc.float32), j + 1))

        return fc.while_loop(lambda j, s: j < 3, outer, [j0, s0])[1], {x: np.arange(3, dtype=F32)}

    both(build)


def test_a_beam_search_that_grows_its_sequences() -> None:
    """Width-2 beams over a fixed score table: each step extends every beam by its best next token and
    reorders the beams by a gather, the sequences one column longer per step."""
    def build() -> tuple[Any, dict]:
        scores = fc.placeholder(fc.float32, [None, 5], name="scores")  # per step, per token
        steps = fc.shape(scores)[0]
        t0, seq0, total0 = fc.constant(0), fc.zeros([2, 0], fc.int32), fc.constant([0.0, -1.0])

        def body(t: Any, seq: Any, total: Any) -> Any:
            row = fc.gather(scores, t)
            candidates = fc.expand_dims(total, 1) + fc.expand_dims(row, 0)  # [2, 5]
            flat = fc.reshape(candidates, [10])
            values, indices = fc.nn.top_k(flat, 2)
            beam, token = indices // 5, indices % 5
            seq = fc.concat([fc.gather(seq, beam), fc.expand_dims(token, 1)], 1)
            return t + 1, seq, values

        _, seq, total = fc.while_loop(lambda t, s, v: t < steps, body, [t0, seq0, total0],
                                      shape_invariants=[t0.shape, fc.TensorShape([2, None]), total0.shape])
        return [seq, total], {}

    table = np.random.default_rng(3).standard_normal((6, 5)).astype(F32)
    both(build, [{"scores:0": table}, {"scores:0": table[:2]}])


def test_a_growing_loop_with_maximum_iterations() -> None:
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None], name="x")
        acc = fc.while_loop(lambda a: fc.constant(True), lambda a: fc.concat([a, x], 0), [x],
                            shape_invariants=[fc.TensorShape([None])], maximum_iterations=3)
        return acc, {x: np.arange(2, dtype=F32)}

    both(build)


def test_fc_jit_runs_a_growing_loop() -> None:
    @fc.jit
    def grow(x: Any) -> Any:
        i0, acc0 = fc.constant(0), fc.zeros([0], fc.float32)
        return fc.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, fc.concat([a, x * 2.0], 0)), [i0, acc0],
                             shape_invariants=[i0.shape, fc.TensorShape([None])])[1]

    for size in (2, 2, 5):
        x = np.arange(size, dtype=F32)
        np.testing.assert_array_equal(grow(x), np.tile(x * 2, 3))


def test_random_draws_and_variables_in_a_growing_loop() -> None:
    """The body's random stream is the reference's, draw for draw, on two runs of one Session; a Variable
    read in the body and updated after the loop is the Session's."""
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(1)
        scale = fc.Variable(np.float32(3.0), name="scale")
        i0, acc0 = fc.constant(0), fc.zeros([0], fc.float32)
        acc = fc.while_loop(lambda i, a: i < 4,
                            lambda i, a: (i + 1, fc.concat([a, fc.random_uniform([2], seed=3) * scale], 0)),
                            [i0, acc0], shape_invariants=[i0.shape, fc.TensorShape([None])])[1]
        update = fc.assign_add(scale, fc.reduce_sum(acc))
        init = fc.global_variables_initializer()
    runs = {}
    for target in ("reference", "cpu"):
        with fc.Session(graph=g, target=target) as session:
            session.run(init)
            runs[target] = [session.run([acc, update]) for _ in range(2)]
    for (want_acc, want_scale), (got_acc, got_scale) in zip(runs["reference"], runs["cpu"]):
        np.testing.assert_array_equal(got_acc, want_acc)
        np.testing.assert_allclose(got_scale, want_scale, rtol=1e-6)


def test_a_loop_that_collects_boolean_mask_rows() -> None:
    """Each turn appends the elements of x above the turn's threshold: a count only the data gives, so the
    loop runs from the host and its body is itself cut at the count (Note [data-dependent sizes])."""
    def build() -> tuple[Any, dict]:
        x = fc.placeholder(fc.float32, [None], name="x")
        n = fc.placeholder(fc.int32, [], name="n")
        i0, acc0 = fc.constant(0), fc.zeros([0], fc.float32)

        def body(i: Any, acc: Any) -> Any:
            return i + 1, fc.concat([acc, fc.boolean_mask(x, x > fc.cast(i, fc.float32))], 0)

        acc = fc.while_loop(lambda i, a: i < n, body, [i0, acc0], shape_invariants=[i0.shape, fc.TensorShape([None])])
        return acc[1], {}

    values = np.array([0.5, 2.5, 1.5, -1.0], F32)
    both(build, [{"x:0": values, "n:0": 3}, {"x:0": values[:2], "n:0": 4}, {"x:0": values, "n:0": 0}])
