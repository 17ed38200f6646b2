"""The fast-math opt-in: IEEE by default, flagged arithmetic and unsafe rewrites only when asked."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.codegen.llvm.module import emit_module


def graph(batch=None):  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[batch, 5], name="x")
        y = fc.reduce_sum(x * 1.5 + x * x, axis=1) - (x - x)[:, 0]
    return g, x, y


def llvm_text(sess: fc.Session) -> str:
    (compiled,) = sess._cache.values()
    return str(emit_module(compiled.executable.program))


@pytest.mark.parametrize("fast", [False, True])
def test_fast_math_flags_only_when_asked(fast) -> None:
    g, x, y = graph()
    data = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    with fc.Session(graph=g, fast_math=fast) as sess:
        got = sess.run(y, {x: data})
        text = llvm_text(sess)
    np.testing.assert_allclose(got, (data * 1.5 + data * data).sum(axis=1), rtol=1e-5)
    assert ("fadd fast" in text and "fmul fast" in text) == fast
    if not fast:
        assert " fast " not in text


def test_unsafe_rewrites_change_inf_results_only_under_fast_math() -> None:
    g, x, y = graph(batch=2)  # x - x -> 0 needs a static shape to make its zeros
    data = np.full((2, 5), np.inf, np.float32)
    with fc.Session(graph=g) as ieee, fc.Session(graph=g, fast_math=True, target="reference") as fast:
        assert np.isnan(ieee.run(y, {x: data})).all()  # inf - inf is NaN, x * 1.5 + x * x is inf: inf - NaN
        assert np.isposinf(fast.run(y, {x: data})).all()  # x - x -> 0 under fast math


def test_fast_math_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("FLOWC_FAST_MATH", "1")
    assert fc.Session(graph=fc.Graph()).fast_math
    monkeypatch.delenv("FLOWC_FAST_MATH")
    assert not fc.Session(graph=fc.Graph()).fast_math
