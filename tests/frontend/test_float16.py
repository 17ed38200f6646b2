"""float16 (fc.float16, fc.half) through the front end on target 'reference': placeholders, constants,
casts, Variables, feeds, gradients; the cpu target computing it too (tests/codegen/test_float16_native.py
has its differential tests)."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FeedError
from flowc.ir.types import as_dtype


def run(fetches, feeds=None, target: str = "reference"):
    with fc.Session(target=target) as session:
        if fc.global_variables():
            session.run(fc.global_variables_initializer())
        return session.run(fetches, feeds or {})


def test_names() -> None:
    assert fc.half is fc.float16 and fc.float16.name == "float16"
    assert as_dtype("half") is fc.float16 and as_dtype("f16") is fc.float16 and as_dtype(np.float16) is fc.float16


def test_placeholder_constant_and_arithmetic_round_each_op_to_half(rng: np.random.Generator) -> None:
    fc.reset_default_graph()
    x = fc.placeholder(fc.float16, [None, 3], name="x")
    c = fc.constant(np.array([0.1, 0.2, 0.3], np.float16))
    y = (x * c + 1.0) / 3.0
    data = rng.standard_normal((4, 3)).astype(np.float16)
    got = run(y, {x: data})
    assert got.dtype == np.float16
    want = (data * np.array([0.1, 0.2, 0.3], np.float16) + np.float16(1.0)) / np.float16(3.0)
    np.testing.assert_array_equal(got, want)  # numpy float16: each op rounded to half


def test_feed_of_float64_is_rounded_to_half() -> None:
    fc.reset_default_graph()
    x = fc.placeholder(fc.half, [2], name="x")
    got = run(x + 0.0, {x: np.array([1 / 3, 65504.0])})
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, np.array([1 / 3, 65504.0], np.float16))


def test_feed_of_strings_is_refused() -> None:
    fc.reset_default_graph()
    x = fc.placeholder(fc.float16, [1], name="x")
    with pytest.raises(FeedError, match="float16"):
        run(x * 2.0, {x: np.array(["a"])})


def test_casts_to_and_from_half() -> None:
    fc.reset_default_graph()
    x = fc.placeholder(fc.float32, [5], name="x")
    h = fc.cast(x, fc.float16)
    back = fc.cast(h, fc.float32)
    ints = fc.cast(h, fc.int32)
    data = np.array([1e-8, 70000.0, -2.5, 1 / 3, 3.7], np.float32)
    got_h, got_back, got_ints = run([h, back, ints], {x: data})
    with np.errstate(over="ignore"):
        data = data.astype(np.float16)
    assert got_h.dtype == np.float16 and got_back.dtype == np.float32
    np.testing.assert_array_equal(got_h, data)  # 70000 overflows to inf, 1e-8 to 0
    assert np.isinf(got_h[1]) and got_h[0] == 0
    np.testing.assert_array_equal(got_back, data.astype(np.float32))
    np.testing.assert_array_equal(got_ints[2:], [-2, 0, 3])


def test_reduce_sum_of_half_accumulates_in_float32() -> None:
    fc.reset_default_graph()
    x = fc.placeholder(fc.float16, [4096], name="x")
    data = np.full(4096, 1.0, np.float16)
    got = run(fc.reduce_sum(x), {x: data})
    # a sum rounded to half at each step would stop at 2048 (2048 + 1 rounds back to 2048)
    assert got.dtype == np.float16 and got == 4096


def test_matmul_of_half_accumulates_in_float32(rng: np.random.Generator) -> None:
    fc.reset_default_graph()
    a = fc.placeholder(fc.float16, [8, 64], name="a")
    b = fc.placeholder(fc.float16, [64, 5], name="b")
    da, db = rng.standard_normal((8, 64)).astype(np.float16), rng.standard_normal((64, 5)).astype(np.float16)
    got = run(fc.matmul(a, b), {a: da, b: db})
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, (da.astype(np.float32) @ db.astype(np.float32)).astype(np.float16))


def test_variable_of_half_trains() -> None:
    fc.reset_default_graph()
    w = fc.Variable(np.array([1.0, -2.0], np.float16), name="w")
    loss = fc.reduce_sum(w * w)
    step = fc.assign_sub(w, fc.constant(np.float16(0.25)) * fc.gradients(loss, [w])[0])
    with fc.Session(target="reference") as session:
        session.run(fc.global_variables_initializer())
        session.run(step)
        got = session.run(w)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, np.array([0.5, -1.0], np.float16))


def _central_difference(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


@pytest.mark.parametrize("name, build, numeric", [
    ("tanh", lambda x: fc.reduce_sum(fc.tanh(x) * x), lambda x: np.sum(np.tanh(x) * x)),
    ("exp", lambda x: fc.reduce_sum(fc.exp(x) / 4.0), lambda x: np.sum(np.exp(x) / 4.0)),
    ("sigmoid", lambda x: fc.reduce_mean(fc.sigmoid(x * x)), lambda x: np.mean(1 / (1 + np.exp(-x * x)))),
    ("softmax", lambda x: fc.reduce_sum(fc.nn.softmax(x) * np.arange(3, dtype=np.float16)),
     lambda x: np.sum(np.exp(x) / np.exp(x).sum(-1, keepdims=True) * np.arange(3))),
])
def test_gradients_of_half_against_float64_central_differences(name, build, numeric,
                                                               rng: np.random.Generator) -> None:
    fc.reset_default_graph()
    x = fc.placeholder(fc.float16, [2, 3], name="x")
    (grad,) = fc.gradients(build(x), [x])
    data = (rng.standard_normal((2, 3)) * 0.7).astype(np.float16)
    got = run(grad, {x: data})
    assert got.dtype == np.float16, name
    want = _central_difference(numeric, data.astype(np.float64))
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=2e-2, atol=5e-3)


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_exp_and_casts_of_half_run_on_the_native_targets(target: str) -> None:
    """The cpu target once refused float16 (an UnsupportedOpError naming the op); it computes it now, as
    the reference does: a cast to half and back, and exp of half (within an ulp of half: both round a
    float exp to half, tests/codegen/half_check.py)."""
    fc.reset_default_graph()
    x = fc.placeholder(fc.float32, [3], name="x")
    h = fc.cast(x, fc.float16)
    y = [fc.cast(h, fc.float32), fc.exp(h)]
    data = np.array([1 / 3, 70000.0, -2.0], np.float32)
    back, exp = run(y, {x: data}, target=target)
    with np.errstate(over="ignore"):
        halves = data.astype(np.float16)
    np.testing.assert_array_equal(back, halves.astype(np.float32))
    assert exp.dtype == np.float16
    np.testing.assert_allclose(exp.astype(np.float64), np.exp(halves.astype(np.float64)), rtol=2**-10)


def test_a_feed_past_half_range_is_refused_naming_the_placeholder() -> None:
    """Note [feeds past a float's range] in compiler/feeds.py: 70000 would become inf silently."""
    fc.reset_default_graph()
    x = fc.placeholder(fc.float16, [None], name="activations")
    with pytest.raises(FeedError, match=r"activations.*\[1\] = 70000.0 is past float16's range"):
        run(x * 1.0, {x: np.array([1.0, 70000.0])})
    with pytest.raises(FeedError, match="activations.*= 65520 is past"):
        run(x * 1.0, {x: np.array([3, 65520], np.int64)})
    got = run(x * 1.0, {x: np.array([np.inf, -np.inf, np.nan, 65519.0, -65504.0])})  # fed as inf: kept
    np.testing.assert_array_equal(got, np.array([np.inf, -np.inf, np.nan, 65504, -65504], np.float16))


def test_a_float64_feed_past_float32_range_is_refused() -> None:
    fc.reset_default_graph()
    x = fc.placeholder(fc.float32, [2], name="x")
    with pytest.raises(FeedError, match="past float32's range"):
        run(x * 1.0, {x: np.array([1e39, 0.0])})
