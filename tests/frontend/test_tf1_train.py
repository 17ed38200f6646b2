"""TF1's other optimizers, learning-rate schedules and ExponentialMovingAverage against numpy's TF1 formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FlowcError

TARGETS = ["reference", "cpu"]
STEPS = 5


def problem(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((8, 3)), "t": rng.standard_normal((8, 2)),
            "W": rng.standard_normal((3, 2)) * 0.5, "b": rng.standard_normal(2) * 0.1}


def gradients(p: dict[str, np.ndarray], W: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """d/dW and d/db of mean((x @ W + b - t)^2), by hand."""
    residual = p["x"] @ W + b - p["t"]
    scale = 2.0 / residual.size
    return [scale * p["x"].T @ residual, scale * residual.sum(axis=0)]


def train(target: str, make_optimizer, p: dict[str, np.ndarray]) -> tuple[list[list[np.ndarray]], int]:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=[None, 3], name="x")
        t = fc.placeholder(fc.float64, shape=[None, 2], name="t")
        W = fc.Variable(p["W"], name="W")
        b = fc.Variable(p["b"], name="b")
        step = fc.Variable(np.int64(0), trainable=False, name="global_step")
        loss = fc.reduce_mean(fc.square(fc.matmul(x, W) + b - t))
        update = make_optimizer().minimize(loss, global_step=step)
        init = fc.global_variables_initializer()
    history = []
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        for _ in range(STEPS):
            sess.run(update, {x: p["x"], t: p["t"]})
            history.append(sess.run([W, b]))
        return history, int(sess.run(step))


# numpy versions of TF1's kernels: state is a dict of slot arrays per variable, created on first use.

def rmsprop(lr, decay=0.9, momentum=0.0, epsilon=1e-10, centered=False):
    def update(var, g, s):
        s.setdefault("ms", np.ones_like(var)); s.setdefault("mg", np.zeros_like(var))
        s.setdefault("mom", np.zeros_like(var))
        s["ms"] = decay * s["ms"] + (1 - decay) * g * g
        denominator = s["ms"]
        if centered:
            s["mg"] = decay * s["mg"] + (1 - decay) * g
            denominator = s["ms"] - s["mg"] ** 2
        s["mom"] = momentum * s["mom"] + lr * g / np.sqrt(denominator + epsilon)
        return var - s["mom"]
    return update


def adagrad(lr, initial=0.1):
    def update(var, g, s):
        s.setdefault("accum", np.full_like(var, initial))
        s["accum"] = s["accum"] + g * g
        return var - lr * g / np.sqrt(s["accum"])
    return update


def adadelta(lr=0.001, rho=0.95, epsilon=1e-8):
    def update(var, g, s):
        s.setdefault("accum", np.zeros_like(var)); s.setdefault("accum_update", np.zeros_like(var))
        s["accum"] = rho * s["accum"] + (1 - rho) * g * g
        step = np.sqrt(s["accum_update"] + epsilon) / np.sqrt(s["accum"] + epsilon) * g
        s["accum_update"] = rho * s["accum_update"] + (1 - rho) * step * step
        return var - lr * step
    return update


def ftrl(lr, power=-0.5, initial=0.1, l1=0.0, l2=0.0, shrinkage=0.0):
    def update(var, g, s):
        s.setdefault("accum", np.full_like(var, initial)); s.setdefault("linear", np.zeros_like(var))
        shrunk = g + 2 * shrinkage * var
        accum_new = s["accum"] + g * g
        s["linear"] = s["linear"] + shrunk - (accum_new ** -power - s["accum"] ** -power) / lr * var
        quadratic = accum_new ** -power / lr + 2 * l2
        s["accum"] = accum_new
        linear = s["linear"]
        return np.where(np.abs(linear) > l1, (np.sign(linear) * l1 - linear) / quadratic, 0.0)
    return update


CASES = {
    "rmsprop": (lambda: fc.train.RMSPropOptimizer(0.01), rmsprop(0.01)),
    "rmsprop_momentum": (lambda: fc.train.RMSPropOptimizer(0.02, decay=0.8, momentum=0.5, epsilon=1e-6),
                         rmsprop(0.02, 0.8, 0.5, 1e-6)),
    "rmsprop_centered": (lambda: fc.train.RMSPropOptimizer(0.01, momentum=0.9, centered=True),
                         rmsprop(0.01, momentum=0.9, centered=True)),
    "adagrad": (lambda: fc.train.AdagradOptimizer(0.3), adagrad(0.3)),
    "adagrad_initial": (lambda: fc.train.AdagradOptimizer(0.3, initial_accumulator_value=2.0), adagrad(0.3, 2.0)),
    "adadelta": (lambda: fc.train.AdadeltaOptimizer(), adadelta()),
    "adadelta_lr": (lambda: fc.train.AdadeltaOptimizer(1.0, rho=0.9, epsilon=1e-6), adadelta(1.0, 0.9, 1e-6)),
    "ftrl": (lambda: fc.train.FtrlOptimizer(0.5), ftrl(0.5)),
    "ftrl_l1_l2": (lambda: fc.train.FtrlOptimizer(0.5, l1_regularization_strength=0.01, l2_regularization_strength=0.1),
                   ftrl(0.5, l1=0.01, l2=0.1)),
    "ftrl_power": (lambda: fc.train.FtrlOptimizer(0.5, learning_rate_power=-0.7, initial_accumulator_value=0.5,
                                                  l1_regularization_strength=0.05,
                                                  l2_shrinkage_regularization_strength=0.2),
                   ftrl(0.5, -0.7, 0.5, l1=0.05, shrinkage=0.2)),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_optimizer_matches_tf1_formula(rng, target, case):
    make_optimizer, numpy_update = CASES[case]
    p = problem(rng)
    history, final_step = train(target, make_optimizer, p)
    W, b = p["W"].copy(), p["b"].copy()
    states: list[dict] = [{}, {}]
    for got in history:
        dW, db = gradients(p, W, b)
        W, b = numpy_update(W, dW, states[0]), numpy_update(b, db, states[1])
        np.testing.assert_allclose(got[0], W, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[1], b, rtol=1e-10, atol=1e-12)
    assert final_step == STEPS  # minimize(global_step=) counts the steps
    assert not np.allclose(W, p["W"])  # it moved


def test_ftrl_l1_zeroes_weights(rng):
    p = problem(rng)
    history, _ = train("reference", lambda: fc.train.FtrlOptimizer(0.1, l1_regularization_strength=100.0), p)
    np.testing.assert_array_equal(history[-1][0], np.zeros((3, 2)))


def test_slots_are_named_as_tf1():
    with fc.Graph().as_default():
        w = fc.Variable(np.float32([1.0, 2.0]), name="w")
        loss = fc.reduce_sum(w * w)
        optimizer = fc.train.RMSPropOptimizer(0.1, centered=True)
        optimizer.minimize(loss)
        names = sorted(v.op.name for v in fc.global_variables())
    assert names == ["w", "w/RMSProp", "w/RMSProp_1", "w/RMSProp_2"]
    assert optimizer.get_slot_names() == ["mg", "momentum", "rms"]


def test_optimizer_argument_errors():
    with pytest.raises(FlowcError, match="initial_accumulator_value must be positive"):
        fc.train.AdagradOptimizer(0.1, initial_accumulator_value=0.0)
    with pytest.raises(FlowcError, match="l1_regularization_strength must be at least zero"):
        fc.train.FtrlOptimizer(0.1, l1_regularization_strength=-1.0)
