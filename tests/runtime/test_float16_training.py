"""float16 gradients and training steps on the cpu target against the reference's (not finite differences:
float16 is too coarse for them). Bounds: Note [how far float16 results may be apart] in
tests/codegen/half_check.py; a gradient reads sums (a matmul's, a mean's), each 1 ulp apart at most."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import flowc as fc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codegen"))
from half_check import assert_half_close, half_ulps  # noqa: E402

GRADIENTS = {
    "tanh": (lambda x, w: fc.reduce_sum(fc.tanh(x) * w), 2),
    "exp": (lambda x, w: fc.reduce_sum(fc.exp(x * 0.5) / 4.0), 2),
    "sigmoid": (lambda x, w: fc.reduce_mean(fc.sigmoid(x * x) * w), 3),
    "softmax": (lambda x, w: fc.reduce_sum(fc.nn.softmax(x) * w), 4),
    "relu_matmul": (lambda x, w: fc.reduce_sum(fc.nn.relu(fc.matmul(x, fc.transpose(x))) * 0.25), 2),
    "square_mean": (lambda x, w: fc.reduce_mean(fc.square(x - fc.reduce_mean(x, axis=0))), 2),
    "max_min": (lambda x, w: fc.reduce_sum(fc.reduce_max(x, axis=1)) - fc.reduce_sum(fc.reduce_min(x * w, axis=0)), 0),
}


@pytest.mark.parametrize("name", list(GRADIENTS))
@pytest.mark.parametrize("rows", [1, 6])
def test_gradients_of_half_as_the_reference(name: str, rows: int, rng: np.random.Generator) -> None:
    build, ulps = GRADIENTS[name]
    x_data = (rng.standard_normal((rows, 7)) * 0.8).astype(np.float16)
    w_data = rng.standard_normal(7).astype(np.float16)
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float16, [None, 7], name="x")
        w = fc.placeholder(fc.float16, [7], name="w")
        (grad,) = fc.gradients(build(x, w), [x])
    results = {}
    for target in ("cpu", "reference"):
        with fc.Session(target=target, graph=graph) as session:
            results[target] = session.run(grad, {x: x_data, w: w_data})
    assert results["cpu"].dtype == np.float16
    # Bounded where the gradient is not ~0: a small entry is the difference of larger terms, each an ulp off.
    scale = np.spacing(np.abs(results["reference"]).max().astype(np.float16)).astype(np.float64)
    got, want = results["cpu"].astype(np.float64), results["reference"].astype(np.float64)
    close = np.abs(got - want) <= ulps * scale
    assert close.all() or half_ulps(results["cpu"], results["reference"]) <= ulps, (name, got, want)


def _mlp(optimizer):  # type: ignore[no-untyped-def]
    """A two-layer classifier in float16: 8 -> 16 (relu) -> 4, softmax cross-entropy, one train op."""
    graph = fc.Graph()
    weights = np.random.default_rng(1)
    with graph.as_default():
        x = fc.placeholder(fc.float16, [None, 8], name="x")
        y = fc.placeholder(fc.int32, [None], name="y")
        w1 = fc.Variable((weights.standard_normal((8, 16)) * 0.3).astype(np.float16), name="w1")
        b1 = fc.Variable(np.zeros(16, np.float16), name="b1")
        w2 = fc.Variable((weights.standard_normal((16, 4)) * 0.3).astype(np.float16), name="w2")
        b2 = fc.Variable(np.zeros(4, np.float16), name="b2")
        logits = fc.matmul(fc.nn.relu(fc.matmul(x, w1) + b1), w2) + b2
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = optimizer().minimize(loss)
        init = fc.global_variables_initializer()
    return graph, x, y, [w1, b1, w2, b2], loss, train, init


@pytest.mark.parametrize("optimizer", [lambda: fc.train.GradientDescentOptimizer(0.5),
                                       lambda: fc.train.MomentumOptimizer(0.25, 0.9)], ids=["sgd", "momentum"])
def test_training_steps_of_a_half_mlp_as_the_reference(optimizer, rng: np.random.Generator) -> None:
    """Five steps on 37 examples: losses and weights at most an ulp of half apart at every step (each
    step's only inexact sums are float sums rounded once: Note [how far float16 results may be
    apart]; on these seeded data they agree bit for bit)."""
    x_data = rng.standard_normal((37, 8)).astype(np.float16)
    y_data = rng.integers(0, 4, 37).astype(np.int32)
    runs = {}
    for target in ("cpu", "reference"):
        graph, x, y, variables, loss, train, init = _mlp(optimizer)
        with fc.Session(target=target, graph=graph) as session:
            session.run(init)
            steps = []
            for _ in range(5):
                value, _ = session.run([loss, train], {x: x_data, y: y_data})
                steps.append((np.asarray(value), session.run(variables)))
        runs[target] = steps
    for step, ((loss, weights), (want_loss, want_weights)) in enumerate(zip(runs["cpu"], runs["reference"])):
        assert loss.dtype == np.float16
        assert_half_close(loss, want_loss, 1, f"loss at step {step}")
        for index, (got, want) in enumerate(zip(weights, want_weights)):
            assert_half_close(got, want, 1, f"variable {index} at step {step}")
    assert runs["cpu"][-1][0] < runs["cpu"][0][0]  # it learns
