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


# -- learning-rate schedules --------------------------------------------------------------------------------------

def staircase(p, on):
    return np.floor(p) if on else p


SCHEDULES = {
    "exponential": (lambda s: fc.train.exponential_decay(0.1, s, 7, 0.5),
                    lambda s: 0.1 * 0.5 ** (s / 7)),
    "exponential_staircase": (lambda s: fc.train.exponential_decay(0.1, s, 7, 0.5, staircase=True),
                              lambda s: 0.1 * 0.5 ** np.floor(s / 7)),
    "natural_exp": (lambda s: fc.train.natural_exp_decay(0.2, s, 5, 0.3),
                    lambda s: 0.2 * np.exp(-0.3 * s / 5)),
    "natural_exp_staircase": (lambda s: fc.train.natural_exp_decay(0.2, s, 5, 0.3, staircase=True),
                              lambda s: 0.2 * np.exp(-0.3 * np.floor(s / 5))),
    "inverse_time": (lambda s: fc.train.inverse_time_decay(0.5, s, 4, 2.0),
                     lambda s: 0.5 / (1 + 2.0 * s / 4)),
    "inverse_time_staircase": (lambda s: fc.train.inverse_time_decay(0.5, s, 4, 2.0, staircase=True),
                               lambda s: 0.5 / (1 + 2.0 * np.floor(s / 4))),
    "polynomial": (lambda s: fc.train.polynomial_decay(0.1, s, 10, 0.01, power=0.5),
                   lambda s: (0.1 - 0.01) * (1 - min(s, 10) / 10) ** 0.5 + 0.01),
    "polynomial_default": (lambda s: fc.train.polynomial_decay(0.1, s, 10),
                           lambda s: (0.1 - 0.0001) * (1 - min(s, 10) / 10) + 0.0001),
    "polynomial_cycle": (lambda s: fc.train.polynomial_decay(0.1, s, 10, 0.01, power=2.0, cycle=True),
                         lambda s: (0.1 - 0.01) * (1 - s / (10 * (1 if s == 0 else math.ceil(s / 10)))) ** 2 + 0.01),
    "cosine": (lambda s: fc.train.cosine_decay(0.3, s, 12),
               lambda s: 0.3 * 0.5 * (1 + math.cos(math.pi * min(s, 12) / 12))),
    "cosine_alpha": (lambda s: fc.train.cosine_decay(0.3, s, 12, alpha=0.2),
                     lambda s: 0.3 * (0.8 * 0.5 * (1 + math.cos(math.pi * min(s, 12) / 12)) + 0.2)),
    "piecewise": (lambda s: fc.train.piecewise_constant(s, [5, 10], [1.0, 0.5, 0.1]),
                  lambda s: 1.0 if s <= 5 else 0.5 if s <= 10 else 0.1),
}
SCHEDULE_STEPS = [0, 1, 4, 5, 6, 7, 10, 11, 13, 20, 25, 31]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_schedule_matches_tf1_formula(target, schedule):
    build, formula = SCHEDULES[schedule]
    g = fc.Graph()
    with g.as_default():
        step = fc.Variable(np.int64(0), trainable=False, name="global_step")
        rate = build(step)
        new_step = fc.placeholder(fc.int64, shape=[], name="new_step")
        set_step = fc.assign(step, new_step)
        init = fc.global_variables_initializer()
    assert rate.dtype == fc.float32  # the learning rate's dtype, as TF1
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        for s in SCHEDULE_STEPS:
            sess.run(set_step, {new_step: np.int64(s)})
            np.testing.assert_allclose(sess.run(rate), formula(s), rtol=2e-6, err_msg=f"step {s}")


def test_schedule_drives_an_optimizer_and_float64_learning_rate(rng):
    p = problem(rng)
    g = fc.Graph()
    with g.as_default():
        W = fc.Variable(p["W"], name="W")
        step = fc.Variable(np.int64(0), trainable=False, name="global_step")
        rate = fc.train.exponential_decay(np.float64(0.2), step, 1, 0.5)
        loss = fc.reduce_sum(fc.square(W))
        update = fc.train.GradientDescentOptimizer(rate).minimize(loss, global_step=step)
        init = fc.global_variables_initializer()
    assert rate.dtype == fc.float64
    with fc.Session(target="cpu", graph=g) as sess:
        sess.run(init)
        for _ in range(3):
            sess.run(update)
        expected = p["W"] * (1 - 2 * 0.2) * (1 - 2 * 0.1) * (1 - 2 * 0.05)
        np.testing.assert_allclose(sess.run(W), expected, rtol=1e-12)


def test_schedule_errors():
    with fc.Graph().as_default():
        with pytest.raises(FlowcError, match="global_step is required for exponential_decay"):
            fc.train.exponential_decay(0.1, None, 10, 0.9)
        with pytest.raises(FlowcError, match="one value more than boundaries"):
            fc.train.piecewise_constant(fc.constant(3), [1, 2], [0.1, 0.2])


# -- ExponentialMovingAverage ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("num_updates", [None, "step"])
def test_exponential_moving_average(target, num_updates):
    values = [np.float32([3.0, -1.0]), np.float32([0.5, 2.0]), np.float32([-4.0, 1.0]), np.float32([2.0, 2.0])]
    g = fc.Graph()
    with g.as_default():
        w = fc.Variable(np.float32([1.0, 1.0]), name="w")
        step = fc.Variable(np.int64(0), trainable=False, name="global_step")
        fed = fc.placeholder(fc.float32, shape=[2], name="fed")
        ema = fc.train.ExponentialMovingAverage(0.9, num_updates=step if num_updates else None)
        with fc.control_dependencies([fc.assign(w, fed)]):
            average_op = ema.apply([w])
        with fc.control_dependencies([average_op]):
            train_op = fc.assign_add(step, 1)
        init = fc.global_variables_initializer()
        restore_names = ema.variables_to_restore()
    assert ema.average(w).op.name == "w/ExponentialMovingAverage"
    assert ema.average_name(w) == "w/ExponentialMovingAverage"
    # the shadow's own name is taken by w, so a Saver built from it loads the average into w
    assert restore_names == {"w/ExponentialMovingAverage": w, "global_step": step}
    shadow = np.float32([1.0, 1.0])
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        np.testing.assert_array_equal(sess.run(ema.average(w)), shadow)  # starts at the initial value
        for t, value in enumerate(values):
            decay = 0.9 if num_updates is None else min(0.9, (1 + t) / (10 + t))
            shadow = shadow - (1 - decay) * (shadow - value)
            sess.run(train_op, {fed: value})
            np.testing.assert_allclose(sess.run(ema.average(w)), shadow, rtol=1e-6)


@pytest.mark.parametrize("target", TARGETS)
def test_moving_average_of_a_tensor_with_zero_debias(target):
    values = [np.float64([2.0, 4.0]), np.float64([6.0, 0.0]), np.float64([1.0, 1.0])]
    g = fc.Graph()
    with g.as_default():
        fed = fc.placeholder(fc.float64, shape=[2], name="fed")
        tensor = fed * 1.0
        plain = fc.train.ExponentialMovingAverage(0.8, name="plain")
        debiased = fc.train.ExponentialMovingAverage(0.8, zero_debias=True, name="debiased")
        update = fc.group(plain.apply([tensor]), debiased.apply([tensor]))
        init = fc.global_variables_initializer()
    biased, shadow_plain = np.zeros(2), np.zeros(2)
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        for t, value in enumerate(values, 1):
            sess.run(update, {fed: value})
            shadow_plain = shadow_plain - 0.2 * (shadow_plain - value)
            biased = biased - 0.2 * (biased - value)
            np.testing.assert_allclose(sess.run(plain.average(tensor)), shadow_plain, rtol=1e-12)
            np.testing.assert_allclose(sess.run(debiased.average(tensor)), biased / (1 - 0.8 ** t), rtol=1e-12)


@pytest.mark.parametrize("target", TARGETS)
def test_minimize_var_list_global_step_and_grad_loss(target):
    g = fc.Graph()
    with g.as_default():
        a = fc.Variable(np.float32([1.0, 2.0]), name="a")
        b = fc.Variable(np.float32([3.0]), name="b")
        step = fc.Variable(np.int64(10), trainable=False, name="global_step")
        loss = fc.reduce_sum(a * a) + fc.reduce_sum(b * b)
        optimizer = fc.train.GradientDescentOptimizer(0.25)
        update = optimizer.minimize(loss, global_step=step, var_list=[a], gate_gradients=optimizer.GATE_GRAPH,
                                    grad_loss=fc.constant(2.0))
        init = fc.global_variables_initializer()
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        sess.run(update)
        sess.run(update)
        np.testing.assert_allclose(sess.run(a), np.float32([1.0, 2.0]) * (1 - 0.25 * 2 * 2) ** 2)
        np.testing.assert_array_equal(sess.run(b), np.float32([3.0]))  # not in var_list
        assert sess.run(step) == 12
