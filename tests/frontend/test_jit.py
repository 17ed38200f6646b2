"""@fc.jit, fc.grad and fc.value_and_grad: values against numpy on both targets, pytrees in and out,
static and donated arguments, methods, one compile per signature, explained recompiles, control flow
inside, gradients against fc.gradients and central differences, and each bad input's error.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import threading
import weakref
from typing import Any

import flowc as fc
import numpy as np
import pytest
from flowc.errors import FlowcError, FlowcTypeError, GraphError
from flowc.runtime import fast_run

TARGETS = ["reference", "cpu"]
HERE = os.path.basename(__file__)

Pair = collections.namedtuple("Pair", "first second")


def next_line() -> str:
    """'test_jit.py:N' for the line after the caller's: the line an error must name."""
    return f"{HERE}:{sys._getframe(1).f_lineno + 1}"


def line_of(fn: Any) -> str:
    return f"{HERE}:{getattr(fn, '__wrapped__', fn).__code__.co_firstlineno}"


def allclose(actual: Any, expected: Any, **tolerance: float) -> None:
    """Same structure (kinds included) and values."""
    assert type(actual) is type(expected) or (isinstance(expected, (np.ndarray, np.generic)) and isinstance(actual, np.ndarray)), \
        (type(actual), type(expected))
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected)
        for key in expected:
            allclose(actual[key], expected[key], **tolerance)
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            allclose(a, e, **tolerance)
    elif expected is None:
        assert actual is None
    else:
        assert actual.dtype == np.asarray(expected).dtype and actual.shape == np.shape(expected)
        np.testing.assert_allclose(actual, expected, **(tolerance or {"rtol": 1e-6, "atol": 1e-6}))


# -- pytrees ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_pytrees_in_and_out(target: str, rng: np.random.Generator) -> None:
    def model(params, batch, scale):
        hidden = fc.relu(fc.matmul(batch["x"], params[0].first) + params[0].second)
        logits = fc.matmul(hidden, params[1]) * scale
        return {"logits": logits, "stats": [fc.reduce_sum(logits), (fc.reduce_max(hidden), None)]}

    w1, b1 = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    w2, x = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((2, 5)).astype(np.float32)
    params, batch = (Pair(w1, b1), w2), {"x": x, "unused": np.zeros(1, np.int64)}
    jitted = fc.jit(model, target=target)
    out = jitted(params, batch, 0.5)
    hidden = np.maximum(x @ w1 + b1, 0)
    logits = (hidden @ w2) * np.float32(0.5)
    allclose(out, {"logits": logits, "stats": [logits.sum(), (hidden.max(), None)]}, rtol=1e-5, atol=1e-5)
    out = jitted(params, batch, 2.0)  # a Python number is static: its value is compiled in
    np.testing.assert_allclose(out["logits"], (hidden @ w2) * 2, rtol=1e-5)
    out = jitted(params, batch, np.float32(3.0))  # a numpy scalar is traced
    np.testing.assert_allclose(out["logits"], (hidden @ w2) * 3, rtol=1e-5)
    out = jitted(params, batch, np.float32(4.0))
    np.testing.assert_allclose(out["logits"], (hidden @ w2) * 4, rtol=1e-5)
    assert jitted.compiles == 3


@pytest.mark.parametrize("target", TARGETS)
def test_flat_results_keep_their_kind(target: str) -> None:
    x = np.arange(4, dtype=np.float64)
    jitted = fc.jit(lambda x: [x + 1, x * 2], target=target)
    allclose(jitted(x), [x + 1, x * 2])
    allclose(jitted(x), [x + 1, x * 2])  # the fast path gives the same kind
    allclose(fc.jit(lambda x: (x,), target=target)(x), (x,))
    allclose(fc.jit(lambda x: Pair(x, 3.0), target=target)(x), Pair(x, np.float32(3.0)))
    assert fc.jit(lambda x: None, target=target)(x) is None


@pytest.mark.parametrize("target", TARGETS)
def test_results_do_not_alias_arguments(target: str) -> None:
    x = np.arange(3, dtype=np.float32)
    out = fc.jit(lambda x: (x, x), target=target)(x)
    assert not np.shares_memory(out[0], x) and not np.shares_memory(out[0], out[1])
    out[0][0] = 7
    assert x[0] == 0


def test_arguments_are_converted_where_they_must_be() -> None:
    jitted = fc.jit(lambda x, y: x + y)
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(jitted(base.T, y), base.T + 1)  # not contiguous
    np.testing.assert_array_equal(jitted(base.T.astype(">f4"), y), base.T + 1)  # byte-swapped
    assert jitted.compiles == 1
    np.testing.assert_array_equal(jitted(np.float32(2), np.float32(3)), 5)  # numpy scalars are 0-d arrays


def test_keywords_and_positions_share_a_signature() -> None:
    jitted = fc.jit(lambda x, y=None: x * 2 if y is None else x * y)
    x = np.ones(3, np.float32)
    np.testing.assert_array_equal(jitted(x, x + 1), 2)
    np.testing.assert_array_equal(jitted(x, y=x + 2), 3)
    np.testing.assert_array_equal(jitted(y=x + 3, x=x), 4)
    assert jitted.compiles == 1
    np.testing.assert_array_equal(jitted(x), 2)  # y left to its default: another signature
    assert jitted.compiles == 2
    assert "argument 'y' is left to its default now; it was f32[3]" in jitted.explain()


# -- signatures, the cache and recompiles ------------------------------------------------


def test_one_compile_per_signature() -> None:
    jitted = fc.jit(lambda x, y: fc.reduce_sum(x * y, axis=0))
    a, b = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    for _ in range(3):
        jitted(a, a)
    assert jitted.compiles == 1
    jitted(b, b)
    jitted(a, a)
    jitted(b, b)
    assert jitted.compiles == 2  # dims are specialized: one compile per shape, each kept
    jitted(a.astype(np.float64), a.astype(np.float64))
    assert jitted.compiles == 3


def test_the_disk_cache_serves_a_new_jitted_function(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    x = np.arange(5, dtype=np.float32)
    executables = []
    for _ in range(2):  # as a second process would: a new jitted function, the same code
        jitted = fc.jit(lambda x: fc.tanh(x) * 3.0)
        np.testing.assert_allclose(jitted(x), np.tanh(x) * 3, rtol=1e-6)
        executables.append(next(iter(jitted._cache.values())).executable)
    assert [e.was_cached for e in executables] == [False, True]


@pytest.mark.skipif(fast_run.module() is None, reason="the fast run extension is not available here")
def test_a_repeated_call_is_one_c_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Note [the jitted call]: after the first call, the keyed Python path is not entered."""
    jitted = fc.jit(lambda x, y: x * y + 1)
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(jitted(x, x), x * x + 1)

    def keyed_path(*args: Any) -> None:
        raise AssertionError("the hot path fell back")

    monkeypatch.setattr(jitted, "_call", keyed_path)
    for value in (x, x + 1, x * 3):
        np.testing.assert_array_equal(jitted(value, x), value * x + 1)


@pytest.mark.skipif(fast_run.module() is None, reason="the fast run extension is not available here")
def test_nested_static_and_donated_arguments_take_the_hot_path_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Note [the hot path's guard]: the latest signature's guard hands the leaves to the FastRun."""
    @fc.jit(static_argnums=2, donate_argnums=0)
    def update(params, grads, rate, extra=None):
        return {k: params[k] - rate * grads[k] for k in params}, (extra, rate * 2)

    params = {"w": np.ones(3, np.float32), "b": np.ones(2, np.float32)}
    grads = {"w": np.ones(3, np.float32), "b": np.full(2, 2, np.float32)}
    new, (extra, doubled) = update(params, grads, 0.5)
    assert new["w"] is params["w"] and extra is None and doubled == 1.0

    def keyed_path(*args: Any) -> None:
        raise AssertionError("the hot path fell back")

    with monkeypatch.context() as patch:
        patch.setattr(update, "_call", keyed_path)
        new, _ = update(new, grads, 0.5)
        np.testing.assert_array_equal(new["w"], 0)
        np.testing.assert_array_equal(new["b"], -1)
        with pytest.raises(AssertionError, match="fell back"):
            update(new, grads, 0.25)  # another static value
        with pytest.raises(AssertionError, match="fell back"):
            update({"w": new["w"], "c": new["b"]}, grads, 0.5)  # another key
        with pytest.raises(AssertionError, match="fell back"):
            update([new["w"], new["b"]], grads, 0.5)  # another container
    new, _ = update(new, grads, 0.25)
    np.testing.assert_array_equal(new["w"], -0.25)
    assert update.compiles == 2
    new, _ = update(new, grads=grads, rate=0.25)  # another form of call: the keyed path, once
    with monkeypatch.context() as patch:
        patch.setattr(update, "_call", keyed_path)
        new, (extra, _) = update(new, grads=grads, rate=0.25)
        np.testing.assert_array_equal(new["w"], -0.75)
        new, _ = update(new, rate=0.25, grads=grads)  # the keywords in another order bind alike
        np.testing.assert_array_equal(new["w"], -1)
        with pytest.raises(AssertionError, match="fell back"):
            update(new, grads, rate=0.25)
    assert update.compiles == 2


def test_without_the_fast_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWC_FAST_RUN", "0")  # read when the function is jitted
    jitted = fc.jit(lambda x: {"y": x * 2})
    x = np.arange(3, dtype=np.float32)
    for _ in range(2):
        allclose(jitted(x), {"y": x * 2})
    assert jitted._hot is None


def test_threads_share_a_jitted_function() -> None:
    jitted = fc.jit(lambda x, y: {"sum": x + y, "product": x * y})
    failures = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(200):
            x, y = rng.standard_normal((2, 64)).astype(np.float32)
            out = jitted(x, y)
            if not (np.array_equal(out["sum"], x + y) and np.array_equal(out["product"], x * y)):
                failures.append(seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and jitted.compiles == 1


def test_the_hot_path_falls_back_on_anything_new() -> None:
    jitted = fc.jit(lambda x: x * 2)
    x = np.arange(4, dtype=np.float32)
    jitted(x)
    np.testing.assert_array_equal(jitted(x[::2]), x[::2] * 2)  # another shape, not contiguous
    np.testing.assert_array_equal(jitted(np.float32(3)), 6.0)  # a numpy scalar: a 0-d array
    np.testing.assert_array_equal(jitted(x.astype(np.int32)), x * 2)
    np.testing.assert_array_equal(jitted(x), x * 2)
    with pytest.raises(FlowcTypeError):
        jitted(x, x)
    assert jitted.compiles == 4


def test_an_explained_recompile() -> None:
    @fc.jit(static_argnames="mode")
    def step(params, x, mode):
        return params["w"] * fc.cast(x, fc.float32) if mode == "train" else x

    params = {"w": np.ones(3, np.float32)}
    assert step.explain() is None
    step(params, np.ones(3, np.float32), mode="train")
    assert step.explain() is None  # a first compile is no recompile
    line = next_line()
    step(params, np.ones(3, np.float64), mode="train")
    assert step.explain() == (
        f"recompiling test_an_explained_recompile.<locals>.step ({line_of(step)}) for the call at {line}: "
        "argument 'x' changed from f32[3] to f64[3] "
        "(compiled before for params={'w': f32[3]}, x=f32[3], mode=static 'train')")
    step({"w": np.ones(5, np.float32)}, np.ones(5, np.float32), mode="train")
    assert "argument 'params['w']' changed from f32[3] to f32[5]; argument 'x' changed from " in step.explain()
    step(params, np.ones(3, np.float32), mode="eval")
    assert "static argument 'mode' changed from 'train' to 'eval'" in step.explain()
    step({"w": np.ones(3, np.float32), "v": np.ones(3, np.float32)}, np.ones(3, np.float32), mode="eval")
    assert "argument 'params' changed structure from {'w': f32[3]} to {'v': f32[3], 'w': f32[3]}" in step.explain()
    assert step.compiles == 5


def test_recompiles_logged(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLOWC_LOG", "recompiles")
    jitted = fc.jit(lambda x: x + 1)  # the options are read when the function is jitted
    jitted(np.ones(2, np.float32))
    assert capsys.readouterr().err == ""
    jitted(np.ones((2, 2), np.float32))
    err = capsys.readouterr().err
    assert err == f"flowc jit: {jitted.explain()}\n"
    assert "argument 'x' changed from f32[2] to f32[2,2]" in err


# -- static arguments ----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_static_arguments_unroll_python_control_flow(target: str) -> None:
    @fc.jit(static_argnums=(1,), static_argnames="activation", target=target)
    def repeat(x, times, activation="tanh"):
        for _ in range(times):
            x = getattr(fc, activation)(x * 1.5)
        return x

    x = np.linspace(-1, 1, 5)
    expected = x
    for _ in range(3):
        expected = np.tanh(expected * 1.5)
    np.testing.assert_allclose(repeat(x, 3), expected, rtol=1e-12)
    np.testing.assert_allclose(repeat(x, 2, activation="relu"), np.maximum(np.maximum(x * 1.5, 0) * 1.5, 0))
    np.testing.assert_allclose(repeat(x, 3), expected, rtol=1e-12)
    assert repeat.compiles == 2


def test_a_static_argument_must_be_hashable() -> None:
    jitted = fc.jit(lambda x, sizes: fc.reshape(x, sizes), static_argnums=1)
    with pytest.raises(FlowcTypeError, match=r"static argument 'sizes' of .* is a list, which is not hashable") as info:
        line = next_line()
        jitted(np.ones(4, np.float32), [2, 2])
    assert info.value.where == line
    np.testing.assert_array_equal(jitted(np.ones(4, np.float32), (2, 2)), np.ones((2, 2)))


def test_static_argnums_out_of_range() -> None:
    with pytest.raises(FlowcError, match=r"static_argnums 2 is not a positional parameter"):
        fc.jit(lambda x, y: x, static_argnums=2)


# -- donated arguments -----------------------------------------------------------------------


def test_a_donated_argument_holds_the_update() -> None:
    """Note [donated arguments of a jitted call]: the result is the argument itself, its buffer reused."""
    @fc.jit(donate_argnums=0)
    def sgd(params, grads, lr):
        return {k: params[k] - lr * grads[k] for k in params}

    params = {"w": np.ones((3, 4), np.float32), "b": np.zeros(4, np.float32)}
    grads = {"w": np.full((3, 4), 2, np.float32), "b": np.ones(4, np.float32)}
    old_w, old_b = params["w"], params["b"]
    new = sgd(params, grads, 0.5)
    assert new["w"] is old_w and new["b"] is old_b  # written in place
    np.testing.assert_array_equal(old_w, 0)
    np.testing.assert_array_equal(old_b, -0.5)
    np.testing.assert_array_equal(grads["w"], 2)  # not donated: intact
    for _ in range(3):
        new = sgd(new, grads, 0.5)
    assert new["w"] is old_w
    np.testing.assert_array_equal(old_w, -3)


def test_a_donation_never_writes_what_the_caller_shares() -> None:
    add = fc.jit(lambda x, y: x + y, donate_argnums=0)
    x = np.ones(4, np.float32)
    z = np.zeros(4, np.float32)
    assert add(z, x) is z  # and now the signature is on the hot path
    out = add(x, x)  # the same buffer twice: the donated one is copied first
    np.testing.assert_array_equal(out, 2)
    np.testing.assert_array_equal(x, 1)
    whole = np.ones(8, np.float32)
    out = add(whole[:4], whole[4:][::-1].copy())  # distinct: written in place
    assert np.shares_memory(out, whole)
    out = add(whole[4:], whole[2:6])  # overlapping views
    np.testing.assert_array_equal(out, [3, 3, 2, 2])
    np.testing.assert_array_equal(whole, [2, 2, 2, 2, 1, 1, 1, 1])
    frozen = np.ones(4, np.float32)
    frozen.flags.writeable = False
    np.testing.assert_array_equal(add(frozen, x), 2)
    np.testing.assert_array_equal(frozen, 1)
    y = np.ones(4, np.float64)  # converted (f64 -> f32 signature? no: another signature), still correct
    np.testing.assert_array_equal(add(y, y * 2), 3)


def test_a_donation_the_plan_refuses_leaves_the_argument() -> None:
    square = fc.jit(lambda x: fc.matmul(x, x), donate_argnums=0)  # the product reads all of x: no donation
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    out = square(x)
    np.testing.assert_array_equal(out, [[2, 3], [6, 11]])
    assert out is not x
    np.testing.assert_array_equal(x, [[0, 1], [2, 3]])
    total = fc.jit(lambda x: fc.reduce_sum(x), donate_argnums=0)  # no result of x's type: nothing offered
    assert total(x) == 6
    np.testing.assert_array_equal(x, [[0, 1], [2, 3]])


# -- methods -----------------------------------------------------------------------------------


class Dense:
    def __init__(self, w: np.ndarray, scale: float):
        self.w, self.scale = w, scale

    @fc.jit(static_argnames="activate")
    def __call__(self, x, activate=True):
        y = fc.matmul(x, self.w) * self.scale
        return fc.relu(y) if activate else y


def test_methods_bind_self() -> None:
    x = np.array([[1.0, -2.0]], np.float32)
    first = Dense(np.eye(2, dtype=np.float32), 2.0)
    second = Dense(-np.eye(2, dtype=np.float32), 1.0)
    np.testing.assert_array_equal(first(x), [[2, 0]])
    np.testing.assert_array_equal(first(x, activate=False), [[2, -4]])
    np.testing.assert_array_equal(second(x), [[0, 2]])
    assert Dense.__call__.__get__(first) is Dense.__call__.__get__(first)  # one jitted method per instance
    assert Dense.__call__.__get__(first).compiles == 2
    assert Dense.__call__.__get__(second).compiles == 1
    first.scale = 10.0  # read when traced: the compiled code keeps 2.0 (Note [jit and state])
    np.testing.assert_array_equal(first(x), [[2, 0]])
    gone = weakref.ref(second)
    del second
    gc.collect()
    assert gone() is None  # a jitted method keeps no instance alive
    assert len(Dense.__call__._bound) == 1


# -- control flow inside -----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_cond_and_while_loop_stay_loops(target: str) -> None:
    @fc.jit(target=target)
    def bounce(n, x):
        def body(i, x):
            x = fc.cond(fc.greater(fc.reduce_sum(x), 10.0), lambda: x * 0.5, lambda: x * 3.0)
            return i + 1, x
        steps, x = fc.while_loop(lambda i, x: fc.less(i, n), body, (0, x))
        return steps, fc.cond(fc.greater(steps, 5), lambda: x, lambda: -x)

    def expected(n: int, x: np.ndarray) -> tuple[int, np.ndarray]:
        for _ in range(n):
            x = x * 0.5 if x.sum() > 10 else x * 3.0
        return n, x if n > 5 else -x

    x = np.array([1.0, 2.0], np.float32)
    for n in (7, 2, 0):
        steps, y = bounce(np.int32(n), x)
        want_steps, want_y = expected(n, x)
        assert steps == want_steps and steps.dtype == np.int32
        np.testing.assert_allclose(y, want_y, rtol=1e-6)
    assert bounce.compiles == 1  # the loop runs in the compiled code, not in Python


def test_a_jitted_function_inside_another_is_inlined() -> None:
    inner = fc.jit(lambda x: x * 2)
    outer = fc.jit(lambda x: inner(x) + 1)
    np.testing.assert_array_equal(outer(np.ones(2, np.float32)), 3)
    assert inner.compiles == 0 and outer.compiles == 1


# -- gradients ---------------------------------------------------------------------------------


def loss_fn(params, x, y):
    logits = fc.matmul(x, params["w"]) + params["b"]
    return fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


def data(rng: np.random.Generator, dtype: Any = np.float64) -> tuple[dict, np.ndarray, np.ndarray]:
    params = {"w": rng.standard_normal((4, 3)).astype(dtype), "b": rng.standard_normal(3).astype(dtype)}
    return params, rng.standard_normal((5, 4)).astype(dtype), rng.integers(0, 3, 5).astype(np.int32)


@pytest.mark.parametrize("target", TARGETS)
def test_grad_matches_fc_gradients(target: str, rng: np.random.Generator) -> None:
    params, x, y = data(rng, np.float32)
    g = fc.Graph()
    with g.as_default():
        w = fc.placeholder(fc.float32, [4, 3], name="w")
        b = fc.placeholder(fc.float32, [3], name="b")
        xs = fc.placeholder(fc.float32, [5, 4], name="x")
        ys = fc.placeholder(fc.int32, [5], name="y")
        loss = loss_fn({"w": w, "b": b}, xs, ys)
        gw, gb = fc.gradients(loss, [w, b])
    with fc.Session(graph=g, target=target) as sess:
        want_loss, want_w, want_b = sess.run([loss, gw, gb], {w: params["w"], b: params["b"], xs: x, ys: y})
    grads = fc.jit(fc.grad(loss_fn), target=target)(params, x, y)
    allclose(grads, {"w": want_w, "b": want_b})
    (value, grads) = fc.jit(fc.value_and_grad(loss_fn), target=target)(params, x, y)
    allclose(value, want_loss)
    allclose(grads, {"w": want_w, "b": want_b})


def central_difference(f: Any, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        gradient[index] = (f(up) - f(down)) / (2 * eps)
    return gradient


@pytest.mark.parametrize("target", TARGETS)
def test_grad_matches_central_differences(target: str, rng: np.random.Generator) -> None:
    params, x, y = data(rng)
    loss = fc.jit(loss_fn, target=target)
    grad_params, grad_x = fc.jit(fc.grad(loss_fn, argnums=(0, 1)), target=target)(params, x, y)
    for key in params:
        numeric = central_difference(lambda v: float(loss({**params, key: v}, x, y)), params[key])
        np.testing.assert_allclose(grad_params[key], numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_x, central_difference(lambda v: float(loss(params, v, y)), x), rtol=1e-6,
                               atol=1e-8)


def test_grad_with_aux_and_without_jit(rng: np.random.Generator) -> None:
    def f(x, scale):
        y = fc.tanh(x) * scale
        return fc.reduce_sum(y * y), {"y": y}

    x = rng.standard_normal(4).astype(np.float32)
    grad, aux = fc.grad(f, has_aux=True)(x, np.float32(2.0))  # on arrays: jitted by the gradient function itself
    y = np.tanh(x) * np.float32(2.0)
    np.testing.assert_allclose(aux["y"], y, rtol=1e-6)
    np.testing.assert_allclose(grad, 2 * y * 2 * (1 - np.tanh(x) ** 2), rtol=1e-5)
    (value, aux), grad_scale = fc.value_and_grad(f, argnums=1, has_aux=True)(x, np.float32(2.0))
    np.testing.assert_allclose(value, np.sum(y * y), rtol=1e-6)
    np.testing.assert_allclose(grad_scale, np.sum(2 * y * np.tanh(x)), rtol=1e-5)
    assert grad_scale.dtype == np.float32 and grad_scale.shape == ()


def test_grad_of_an_unused_argument_is_zeros() -> None:
    grads = fc.grad(lambda x, y: fc.reduce_sum(x), argnums=(0, 1))(np.ones(2), np.ones(3, np.float32))
    allclose(grads, (np.ones(2), np.zeros(3, np.float32)))


def test_grad_errors() -> None:
    def not_scalar(x):
        return x * 2

    with pytest.raises(FlowcTypeError, match=r"fc.grad needs a function returning a float scalar, got f32\[2\]") as info:
        fc.grad(not_scalar)(np.ones(2, np.float32))
    assert info.value.where == line_of(not_scalar)
    with pytest.raises(FlowcTypeError, match=r"fc.grad differentiates float arguments; argument 0\['n'\] is i32\[\]"):
        fc.grad(lambda d: fc.reduce_sum(fc.cast(d["n"], fc.float32) * d["x"]))({"n": np.int32(3), "x": np.ones(2, np.float32)})


# -- state, random numbers, bad input -------------------------------------------------------------


def test_a_variable_inside_is_refused() -> None:
    def f(x):
        v = fc.Variable(fc.zeros([2]), name="v")
        return x + v

    with pytest.raises(GraphError, match=r"cannot read or assign a Variable"):
        fc.jit(f)(np.ones(2, np.float32))


def test_a_tensor_of_another_graph_is_refused() -> None:
    g = fc.Graph()
    with g.as_default():
        weights = fc.Variable(fc.ones([2, 2]), name="weights")
    with pytest.raises(GraphError, match=r"belongs to another graph; a traced function computes from its arguments"):
        fc.jit(lambda x: fc.matmul(x, weights))(np.ones((1, 2), np.float32))


def test_random_numbers_change_per_call() -> None:
    jitted = fc.jit(lambda x: x + fc.random_uniform([3], seed=1))
    x = np.zeros(3, np.float32)
    first, second = jitted(x), jitted(x)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(fc.jit(lambda x: x + fc.random_uniform([3], seed=1))(x), first)


def test_a_result_that_is_not_an_array() -> None:
    def f(x):
        return {"y": x, "name": "hello"}

    with pytest.raises(FlowcTypeError, match=r"returns a str at result\['name'\]") as info:
        fc.jit(f)(np.ones(2, np.float32))
    assert info.value.where == line_of(f)


@pytest.mark.parametrize("value, what", [
    (np.ones(2, np.uint32), "has dtype uint32"),  # uint8 and uint16 are flowc dtypes
    (np.ones(2, np.complex64), "has dtype complex64"),
    ("text", "is a str"),
])
def test_an_argument_of_an_unsupported_kind(value: Any, what: str) -> None:
    jitted = fc.jit(lambda x, y: y)
    with pytest.raises(FlowcTypeError, match=rf"argument 'y\[1\]' {what}") as info:
        line = next_line()
        jitted(np.ones(1), [1.0, value])
    assert info.value.where == line


def test_a_call_that_does_not_fit_the_parameters() -> None:
    with pytest.raises(FlowcTypeError, match=r"missing a required argument: 'y'"):
        fc.jit(lambda x, y: x)(np.ones(1))


# -- trace, for fc.export ---------------------------------------------------------------------------


def test_trace_with_unknown_dims() -> None:
    from flowc.jit import trace

    traced = trace(
        lambda batch, w: {"out": fc.matmul(batch["x"], w)},
        [{"x": fc.TensorSpec([None, 3], fc.float32)}, fc.TensorSpec([3, 2], "float32")])
    graph, feeds, fetches, structure = traced
    assert [t.name for t in feeds] == ["batch/x:0", "w:0"]
    assert [str(t.type) for t in feeds] == ["f32[?,3]", "f32[3,2]"]
    assert structure == {"out": fetches[0]} and str(fetches[0].type) == "f32[?,2]"
    with fc.Session(graph=graph) as sess:
        np.testing.assert_array_equal(sess.run(fetches[0], {feeds[0]: np.ones((7, 3)), feeds[1]: np.ones((3, 2))}),
                                      np.full((7, 2), 3))
    lowered = fc.jit(lambda x, n: x * n, static_argnums=1).lower(np.ones((2, 3), np.float32), 4)
    assert [str(t.type) for t in lowered.feeds] == ["f32[2,3]"]  # a jitted call's dims are exact
    assert lowered.fetches[0].op.type == "mul"


# -- the example ------------------------------------------------------------------------------------


def test_the_jitted_softmax_regression_trains_as_the_session_does() -> None:
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")
    sys.path.insert(0, examples)
    try:
        from jit_softmax_regression import train
        from softmax_regression import build_model, fit
    finally:
        sys.path.remove(examples)
    model = build_model(0.5)
    with fc.Session(graph=model["graph"]) as sess:
        sess.run(model["init"])
        start = {"W": sess.run("W:0"), "b": sess.run("b:0")}
    session = fit(model, "cpu", epochs=2, batch=100, progress=False)  # its init draws the same W (seeded)
    jitted = train(epochs=2, batch=100, learning_rate=0.5, params=start)
    np.testing.assert_allclose(jitted["curve"], session["curve"], rtol=1e-6)
    assert jitted["compiles"] == 2  # full batches, then the last, smaller one
    assert abs(jitted["test_accuracy"] - session["test_accuracy"]) < 1e-6
    assert jitted["curve"][1] < jitted["curve"][0]
