"""fc.train optimizers, TensorFlow 1 update ordering, in-place variable updates, and the examples."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import flowc as fc

TARGETS = ["reference", "cpu"]
EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples")


def regression_problem(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((8, 3)), "t": rng.standard_normal((8, 2)),
            "W": rng.standard_normal((3, 2)) * 0.5, "b": rng.standard_normal(2) * 0.1}


def numpy_gradients(p: dict[str, np.ndarray], W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d/dW and d/db of mean((x @ W + b - t)^2), by hand."""
    residual = p["x"] @ W + b - p["t"]
    scale = 2.0 / residual.size
    return scale * p["x"].T @ residual, scale * residual.sum(axis=0)


def train_five_steps(target: str, make_optimizer, p: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=[None, 3], name="x")
        t = fc.placeholder(fc.float64, shape=[None, 2], name="t")
        W = fc.Variable(p["W"], name="W")
        b = fc.Variable(p["b"], name="b")
        loss = fc.reduce_mean(fc.square(fc.matmul(x, W) + b - t))
        step = make_optimizer().minimize(loss)
        init = fc.global_variables_initializer()
    history = []
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        for _ in range(5):
            sess.run(step, {x: p["x"], t: p["t"]})
            history.append((sess.run(W), sess.run(b)))
    return history


def numpy_sgd(p, lr):  # type: ignore[no-untyped-def]
    W, b = p["W"].copy(), p["b"].copy()
    for _ in range(5):
        gW, gb = numpy_gradients(p, W, b)
        W, b = W - lr * gW, b - lr * gb
        yield W, b


def numpy_momentum(p, lr, momentum, nesterov):  # type: ignore[no-untyped-def]
    W, b = p["W"].copy(), p["b"].copy()
    aW, ab = np.zeros_like(W), np.zeros_like(b)
    for _ in range(5):
        gW, gb = numpy_gradients(p, W, b)
        aW, ab = momentum * aW + gW, momentum * ab + gb
        if nesterov:
            W, b = W - lr * (gW + momentum * aW), b - lr * (gb + momentum * ab)
        else:
            W, b = W - lr * aW, b - lr * ab
        yield W, b


def numpy_adam(p, lr, beta1=0.9, beta2=0.999, eps=1e-8):  # type: ignore[no-untyped-def]
    W, b = p["W"].copy(), p["b"].copy()
    m = [np.zeros_like(W), np.zeros_like(b)]
    v = [np.zeros_like(W), np.zeros_like(b)]
    for step in range(1, 6):
        grads = numpy_gradients(p, W, b)
        lr_t = lr * np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        params = [W, b]
        for k in range(2):
            m[k] = beta1 * m[k] + (1 - beta1) * grads[k]
            v[k] = beta2 * v[k] + (1 - beta2) * grads[k] ** 2
            params[k] = params[k] - lr_t * m[k] / (np.sqrt(v[k]) + eps)
        W, b = params
        yield W, b


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name, make_optimizer, expected", [
    ("sgd", lambda: fc.train.GradientDescentOptimizer(0.1), lambda p: numpy_sgd(p, 0.1)),
    ("momentum", lambda: fc.train.MomentumOptimizer(0.05, 0.9), lambda p: numpy_momentum(p, 0.05, 0.9, False)),
    ("nesterov", lambda: fc.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
     lambda p: numpy_momentum(p, 0.05, 0.9, True)),
    ("adam", lambda: fc.train.AdamOptimizer(0.01), lambda p: numpy_adam(p, 0.01)),
])
def test_optimizer_matches_numpy_for_five_steps(target, name, make_optimizer, expected) -> None:
    p = regression_problem(np.random.default_rng(3))
    got = train_five_steps(target, make_optimizer, p)
    for (W, b), (W_ref, b_ref) in zip(got, expected(p), strict=True):
        np.testing.assert_allclose(W, W_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, b_ref, rtol=1e-10, atol=1e-12)


def test_slots_are_non_trainable_variables_initialized_by_the_global_initializer() -> None:
    g = fc.Graph()
    with g.as_default():
        w = fc.Variable(np.float32([1.0, 2.0]), name="w")
        opt = fc.train.AdamOptimizer(0.1)
        step = opt.minimize(fc.reduce_sum(w * w))
        init = fc.global_variables_initializer()
    assert opt.get_slot_names() == ["m", "v"]
    m, v = opt.get_slot(w, "m"), opt.get_slot(w, "v")
    assert (m.name, v.name) == ("w/Adam:0", "w/Adam_1:0")
    assert w in g.get_collection("trainable_variables")
    assert m not in g.get_collection("trainable_variables") and m in g.get_collection("variables")
    with fc.Session(graph=g) as sess:
        sess.run(init)
        np.testing.assert_array_equal(sess.run(m), np.zeros(2, np.float32))
        sess.run(step)
        np.testing.assert_allclose(sess.run(m), 0.1 * np.float32([2.0, 4.0]), rtol=1e-6)


def test_compute_then_apply_gradients_and_global_step() -> None:
    g = fc.Graph()
    with g.as_default():
        w = fc.Variable(np.float64([3.0]), name="w")
        unused = fc.Variable(np.float64([1.0]), name="unused")
        step_count = fc.Variable(np.int64(0), trainable=False, name="global_step")
        opt = fc.train.GradientDescentOptimizer(0.5)
        pairs = opt.compute_gradients(fc.reduce_sum(w * w))
        assert [v for _, v in pairs] == [w, unused] and pairs[1][0] is None  # unused: no gradient
        step = opt.apply_gradients(pairs, global_step=step_count)
        init = fc.global_variables_initializer()
    with fc.Session(graph=g) as sess:
        sess.run(init)
        for _ in range(3):
            sess.run(step)
        np.testing.assert_allclose(sess.run(w), [0.0])  # w - 0.5 * 2w = 0 after the first step
        assert sess.run(step_count) == 3
        assert sess.run(unused) == 1.0


def test_no_gradient_for_any_variable_is_a_clear_error() -> None:
    g = fc.Graph()
    with g.as_default():
        fc.Variable(np.float32([1.0]), name="w")
        x = fc.placeholder(fc.float32, shape=[1], name="x")
        with pytest.raises(fc.FlowcError, match="no gradients for any variable.*w:0"):
            fc.train.GradientDescentOptimizer(0.1).minimize(fc.reduce_sum(x))


@pytest.mark.parametrize("target", TARGETS)
def test_fetched_loss_is_from_before_the_update(target) -> None:
    g = fc.Graph()
    with g.as_default():
        w = fc.Variable(np.float32([2.0]), name="w")
        loss = fc.reduce_sum(w * w)
        (gw,) = fc.gradients(loss, [w])
        train = fc.group(fc.assign_sub(w, 0.25 * gw))
        init = fc.global_variables_initializer()
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        losses = [sess.run([loss, train])[0] for _ in range(3)]
    np.testing.assert_allclose(losses, [4.0, 1.0, 0.25])  # w: 2 -> 1 -> 0.5


OPTIMIZERS = {"sgd": lambda: fc.train.GradientDescentOptimizer(0.1), "momentum": lambda: fc.train.MomentumOptimizer(0.01, 0.9),
              "adam": lambda: fc.train.AdamOptimizer(0.01)}


@pytest.mark.parametrize("width", [3, 40], ids=["narrow", "blas"])  # the product of the weight gradient
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_native_updates_write_into_the_variables_own_buffers(optimizer, width) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
        W = fc.Variable(np.ones((4, width), np.float32), name="W")
        b = fc.Variable(np.zeros(width, np.float32), name="b")
        loss = fc.reduce_mean(fc.square(fc.matmul(x, W) + b))
        train = OPTIMIZERS[optimizer]().minimize(loss)
        init = fc.global_variables_initializer()
    with fc.Session(target="cpu", graph=g) as sess:
        sess.run(init)
        # Not symmetric about 0: with x summing to 0 the bias gradient is exactly 0 and b stays put.
        feed = {x: np.linspace(-1, 2, 20, dtype=np.float32).reshape(5, 4)}
        sess.run(train, feed)
        buffers = {op.name: value for op, value in sess._values.items()}  # variable -> its buffer
        before = {name: value.copy() for name, value in buffers.items()}
        sess.run(train, feed)
        after = {op.name: value for op, value in sess._values.items()}
    assert {"W", "b"} <= set(after)
    for name in after:
        assert after[name] is buffers[name], f"{name}: a new buffer instead of an in-place update"
        if name not in ("beta1_power", "beta2_power") or optimizer == "adam":
            assert not np.array_equal(after[name], before[name]), f"{name} did not change"


def test_the_seed_programs_step_updates_in_place() -> None:
    """fc.gradients + assign_sub + group, as DESIGN.md writes it: W and b keep their buffers."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 784], name="x")
        y = fc.placeholder(fc.int32, shape=[None], name="y")
        W = fc.Variable(fc.zeros([784, 10]), name="W")
        b = fc.Variable(fc.zeros([10]), name="b")
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=fc.matmul(x, W) + b))
        gW, gb = fc.gradients(loss, [W, b])
        train = fc.group(fc.assign_sub(W, 0.5 * gW), fc.assign_sub(b, 0.5 * gb))
        init = fc.global_variables_initializer()
    rng = np.random.default_rng(0)
    feed = {x: rng.random((100, 784), dtype=np.float32) / 28, y: rng.integers(0, 10, 100).astype(np.int32)}
    with fc.Session(graph=g) as sess:
        sess.run(init)
        buffers = [sess._values[W.op], sess._values[b.op]]
        losses = [sess.run([loss, train], feed)[0] for _ in range(3)]
        assert sess._values[W.op] is buffers[0] and sess._values[b.op] is buffers[1]
    assert losses[0] == pytest.approx(np.log(10), rel=1e-6) and losses[2] < losses[1] < losses[0]


def load_example(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_softmax_regression_example_reaches_its_accuracy() -> None:
    result = load_example("softmax_regression").train(progress=False)
    assert result["test_accuracy"] >= 0.93, result
    assert result["curve"][-1] < result["curve"][0] / 3  # the loss falls


def test_mlp_example_reaches_its_accuracy() -> None:
    result = load_example("mlp").train(progress=False)
    assert result["test_accuracy"] >= 0.96, result
    assert result["curve"][-1] < result["curve"][0] / 5


@pytest.mark.parametrize("update", ["rows", "columns"])
def test_in_place_update_read_at_other_indices_is_not_donated(update) -> None:
    """b's new value reads b at every index of a row (rows) or only its own (columns): both must give
    the reference result, whether or not the plan writes b in place."""
    results = {}
    for target in TARGETS:
        g = fc.Graph()
        with g.as_default():
            x = fc.constant(np.arange(9, dtype=np.float32).reshape(3, 3))
            b = fc.Variable(np.float32([1.0, 2.0, 3.0]), name="b")
            axis = 1 if update == "rows" else 0
            step = fc.assign(b, b - fc.reduce_sum(x + b, axis=axis))  # x + b broadcasts b along rows
            init = fc.global_variables_initializer()
        with fc.Session(target=target, graph=g) as sess:
            sess.run(init)
            results[target] = [sess.run(step).copy() for _ in range(3)]
    np.testing.assert_array_equal(results["cpu"], results["reference"])


@pytest.mark.parametrize("width", [10, 40], ids=["narrow", "blas"])
def test_update_by_a_product_of_the_variable_itself(width) -> None:
    """W - lr * (W^T @ W) reads W in its product, so the plan keeps the update out of W's buffer (Note
    [donated arguments]) and the kernel, told so by the plan (MemoryPlan.buffer_of), accumulates into
    a buffer of its own; x^T @ dz's update of W does go into W's bytes."""
    results = {}
    w0 = np.random.default_rng(1).standard_normal((width, width)).astype(np.float32) * 0.1
    for target in TARGETS:
        g = fc.Graph()
        with g.as_default():
            W = fc.Variable(w0, name="W")
            step = fc.assign(W, W - 0.1 * fc.matmul(W, W, transpose_a=True))
            init = fc.global_variables_initializer()
        with fc.Session(target=target, graph=g) as sess:
            sess.run(init)
            results[target] = [sess.run(step).copy() for _ in range(3)]
            if target == "cpu":
                program, kernel = _matmul_kernel(sess)
                assert all(program.plan.buffer_of(r) != program.plan.buffer_of(o)
                           for r in kernel.results for o in kernel.operands)
    np.testing.assert_allclose(results["cpu"], results["reference"], rtol=1e-5, atol=1e-6)


def test_sgd_update_of_a_weight_shares_its_buffer_in_the_plan() -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 30], name="x")
        dz = fc.placeholder(fc.float32, shape=[None, 10], name="dz")
        W = fc.Variable(np.zeros((30, 10), np.float32), name="W")
        train = fc.group(fc.assign_sub(W, 0.1 * fc.matmul(x, dz, transpose_a=True)))
        init = fc.global_variables_initializer()
    with fc.Session(graph=g) as sess:
        sess.run(init)
        sess.run(train, {x: np.ones((4, 30), np.float32), dz: np.ones((4, 10), np.float32)})
        program, kernel = _matmul_kernel(sess)
    plan = program.plan
    w_operand = [o for o in kernel.operands if plan.buffer_of(o) == ("arg", 2)]
    assert w_operand and any(plan.buffer_of(r) == ("arg", 2) for r in kernel.results)


def _matmul_kernel(sess: fc.Session):  # type: ignore[no-untyped-def]
    """The compiled program of the Session's run with one matmul kernel, and that kernel."""
    ((program, kernel),) = [(c.executable.program, op) for c in sess._cache.values()
                            for op in c.executable.program.kernel_ops if op.kind == "matmul"]
    return program, kernel
