"""Note [invariant transposed operand] (passes/licm.py): a loop's h @ W^T, W loop-invariant, runs as
h @ transpose(W) with the transpose hoisted. Values of the CPU target against the reference target,
and gradients against central differences, in float64; the forward uses W^T and its gradient has
both kinds of product (dz @ W and W's own h^T @ dz terms)."""

from __future__ import annotations

import numpy as np
from numeric_gradients import central_differences

import flowc as fc

STEPS, BATCH, HIDDEN = 5, 3, 24  # 24 columns: a BLAS product, not a narrow one (at most 16)


def graph():
    g = fc.Graph()
    with g.as_default():
        h0 = fc.placeholder(fc.float64, [BATCH, HIDDEN], name="h0")
        w = fc.placeholder(fc.float64, [HIDDEN, HIDDEN], name="w")
        step = lambda t, h: (t + 1, fc.tanh(fc.matmul(h, w, transpose_b=True) + 0.1))
        _, h = fc.while_loop(lambda t, h: t < STEPS, step, [fc.constant(0), h0])
        loss = fc.reduce_sum(h * h)
        dh0, dw = fc.gradients(loss, [h0, w])
    return g, h0, w, loss, h, dh0, dw


def test_invariant_transposed_product_in_a_loop_matches_reference_and_differences() -> None:
    rng = np.random.default_rng(3)
    feeds = {"h0:0": rng.standard_normal((BATCH, HIDDEN)), "w:0": rng.standard_normal((HIDDEN, HIDDEN)) * 0.3}
    g, h0, w, loss, h, dh0, dw = graph()
    results = {}
    for target in ("cpu", "reference"):
        with fc.Session(graph=g, target=target) as sess:
            results[target] = sess.run([h, dh0, dw], {h0: feeds["h0:0"], w: feeds["w:0"]})
    for got, want in zip(results["cpu"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    with fc.Session(graph=g, target="cpu") as sess:
        value = lambda: float(sess.run(loss, {h0: feeds["h0:0"], w: feeds["w:0"]}))
        np.testing.assert_allclose(results["cpu"][2], central_differences(value, feeds["w:0"]), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(results["cpu"][1], central_differences(value, feeds["h0:0"]), rtol=1e-5, atol=1e-7)


def test_the_hoisted_transpose_is_in_the_compiled_program() -> None:
    # The rewrite applied where the test above ran it: a transpose kernel runs once per run, not per step.
    g, h0, w, loss, h, dh0, dw = graph()
    with fc.Session(graph=g, target="cpu") as sess:
        sess.run(h, {h0: np.ones((BATCH, HIDDEN)), w: np.eye(HIDDEN)})
        (compiled,) = sess._cache.values()
        names = [op.name for kernel in compiled.executable.program.kernel_ops for op in kernel.walk()]
    assert "transpose" in names
