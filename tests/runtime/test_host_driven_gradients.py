"""Gradients of while loops whose values change shape (Note [while gradients of loops whose values change
shape] in passes/autodiff/rules_while.py; issue 17): against central differences in float64 on the reference
target, the cpu target (which runs the loops and their stacks from the host) against the reference, for
growing, shrinking and data-dependent loops of 0, 1 and 5 turns, beside fixed values, collecting boolean_mask
elements, nested in a loop of fixed shapes or a growing one, in a cond branch, under fc.jit, and two requests
on one loop; the cpu target's cost is linear in the turns; loops of fixed shapes keep their gradient; fc.export
and a second derivative refuse such a loop."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from numeric_gradients import central_differences

import flowc as fc
from flowc.host_driven import HostDrivenExecutable
from flowc.ir.errors import FlowcError, UnsupportedOpError
from flowc.native import NativeExecutable

Build = Callable[[], tuple[Any, list[Any]]]  # in a fresh graph: (the loss, the placeholders to differentiate it by)


def check(build: Build, feeds: dict[str, np.ndarray]) -> list[Any]:
    """The gradients of `build`'s loss: the reference's against central differences of its loss, the cpu
    target's against the reference's; returns the cpu Session's executables."""
    g = fc.Graph()
    with g.as_default():
        loss, xs = build()
        grads = fc.gradients(loss, xs)
    names = [x.name for x in xs]
    feeds = {name: np.array(value) for name, value in feeds.items()}
    with fc.Session(graph=g, target="reference") as ref, fc.Session(graph=g, target="cpu") as cpu:
        want = ref.run([loss, *grads], feeds)
        got = cpu.run([loss, *grads], feeds)
        for name, grad in zip(names, want[1:]):
            numeric = central_differences(lambda: float(ref.run(loss, feeds)), feeds[name])
            np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=name)
        for w, o in zip(want, got):
            assert o.shape == w.shape and o.dtype == w.dtype
            np.testing.assert_allclose(o, w, rtol=1e-10, atol=1e-12)
        return [compiled.executable for compiled in cpu._cache.values()]


def growing() -> tuple[Any, list[Any]]:
    """The issue's reproducer: acc gains one value a turn, which reads the one before and x."""
    x = fc.placeholder(fc.float64, [None], name="x")
    n = fc.placeholder(fc.int32, [], name="n")

    def body(i: Any, acc: Any) -> Any:
        return i + 1, fc.concat([acc, fc.sin(acc[-1:]) * x[:1]], 0)

    _, acc = fc.while_loop(lambda i, acc: i < n, body, [0, x],
                           shape_invariants=[fc.TensorShape([]), fc.TensorShape([None])])
    return fc.reduce_sum(acc * acc), [x]


@pytest.mark.parametrize("turns", [0, 1, 5])
def test_the_reproducer_a_growing_value(turns: int) -> None:
    executables = check(growing, {"x:0": np.array([0.5, 0.7, 0.2]), "n:0": np.asarray(turns, np.int32)})
    assert isinstance(executables[0], HostDrivenExecutable)


@pytest.mark.parametrize("turns", [0, 1, 5])
def test_a_growing_value_with_a_constant_bound(turns: int) -> None:
    """A constant bound gives the rows' stacks a static size: no use for a value that grows."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None, 2], name="x")

        def body(i: Any, acc: Any) -> Any:
            return i + 1, fc.concat([acc * 0.9, fc.tanh(acc[-1:] + acc[:1])], 0)

        _, acc = fc.while_loop(lambda i, acc: i < turns, body, [0, x],
                               shape_invariants=[fc.TensorShape([]), fc.TensorShape([None, 2])])
        return fc.reduce_sum(fc.sin(acc)), [x]

    check(build, {"x:0": np.random.default_rng(1).standard_normal((2, 2))})


@pytest.mark.parametrize("turns", [0, 1, 5])
def test_a_growing_tensor_array(turns: int) -> None:
    """A dynamic TensorArray grows under a cond of branches of different shapes (Note [conds driven from the
    host]): the probe takes the dim they disagree on as data, so the loop's gradient keeps its turns on
    stacks of entries of any shape, on the reference as on cpu."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [2], name="x")
        n = fc.placeholder(fc.int32, [], name="n")
        array = fc.TensorArray(fc.float64, size=0, dynamic_size=True, element_shape=[2])

        def body(i: Any, array: Any) -> Any:
            return i + 1, array.write(i, fc.sin(fc.cast(i, fc.float64) * x))

        _, array = fc.while_loop(lambda i, array: i < n, body, [0, array])
        return fc.reduce_sum(fc.square(array.stack()) * 1.5), [x]

    check(build, {"x:0": np.array([0.3, -1.1]), "n:0": np.asarray(turns, np.int32)})


@pytest.mark.parametrize("turns", [0, 1, 5])
def test_a_shrinking_value(turns: int) -> None:
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None], name="x")
        w = fc.placeholder(fc.float64, [], name="w")
        n = fc.placeholder(fc.int32, [], name="n")

        def body(i: Any, acc: Any) -> Any:
            return i + 1, acc[1:] * fc.tanh(acc[0] * w) + acc[:-1]

        _, acc = fc.while_loop(lambda i, acc: i < n, body, [0, x],
                               shape_invariants=[fc.TensorShape([]), fc.TensorShape([None])])
        return fc.reduce_sum(acc * acc), [x, w]

    rng = np.random.default_rng(2)
    check(build, {"x:0": rng.standard_normal(7), "w:0": np.asarray(0.8), "n:0": np.asarray(turns, np.int32)})


def _appended(x: np.ndarray, turns: int) -> np.ndarray:
    acc = x.copy()
    for _ in range(turns):
        acc = np.concatenate([acc, np.exp(-acc[-1:]) * x[1:2]])
    return acc


@pytest.mark.parametrize("turns", [0, 1, 5])
def test_a_data_dependent_trip_count(turns: int) -> None:
    """No counter: the loop appends while the sum stays under a limit, fed halfway between the sums after
    `turns` and `turns + 1` turns, so that the small steps of the central differences keep the trip count."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None], name="x")
        limit = fc.placeholder(fc.float64, [], name="limit")
        acc = fc.while_loop(lambda acc: fc.reduce_sum(acc) < limit,
                            lambda acc: fc.concat([acc, fc.exp(-acc[-1:]) * x[1:2]], 0), [x],
                            shape_invariants=[fc.TensorShape([None])])
        return fc.reduce_sum(fc.square(acc) * 0.5 + acc), [x]

    x = np.array([0.3, 0.9, 0.4])
    sums = [_appended(x, k).sum() for k in (turns, turns + 1)]
    check(build, {"x:0": x, "limit:0": np.asarray(sum(sums) / 2)})


@pytest.mark.parametrize("turns", [0, 1, 5])
def test_a_growing_value_beside_a_fixed_one_and_weights(turns: int) -> None:
    """An RNN state of fixed shape and the sequence of its outputs, which grows: the gradients of the weights
    and of the first state flow through both stacks."""
    def build() -> tuple[Any, list[Any]]:
        h0 = fc.placeholder(fc.float64, [1, 3], name="h0")
        w = fc.placeholder(fc.float64, [3, 3], name="w")
        n = fc.placeholder(fc.int32, [], name="n")
        out0 = fc.zeros([0, 3], fc.float64)

        def body(i: Any, h: Any, out: Any) -> Any:
            h = fc.tanh(fc.matmul(h, w) + fc.reduce_mean(out, axis=0, keepdims=True) * 0.0 + 0.1)
            return i + 1, h, fc.concat([out, h * fc.cast(i + 1, fc.float64)], 0)

        _, h, out = fc.while_loop(lambda i, h, out: i < n, body, [0, h0, out0],
                                  shape_invariants=[fc.TensorShape([]), fc.TensorShape([1, 3]),
                                                    fc.TensorShape([None, 3])])
        return fc.reduce_sum(out * out) + fc.reduce_sum(h), [h0, w]

    rng = np.random.default_rng(3)
    check(build, {"h0:0": rng.standard_normal((1, 3)), "w:0": rng.standard_normal((3, 3)) * 0.5,
                  "n:0": np.asarray(turns, np.int32)})


def test_the_loop_nested_in_an_outer_loop_of_fixed_shapes() -> None:
    """The outer loop keeps its stack of rows (a constant bound) and runs from the host as it holds the growing
    one; each outer turn's gradient step records and reads a stack of its own."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None], name="x")

        def outer(j: Any, s: Any) -> Any:
            def inner(i: Any, acc: Any) -> Any:
                return i + 1, fc.concat([acc, fc.sin(acc[-1:] + s)], 0)

            _, acc = fc.while_loop(lambda i, acc: i < j + 1, inner, [0, x * s],
                                   shape_invariants=[fc.TensorShape([]), fc.TensorShape([None])])
            return j + 1, s + 0.1 * fc.reduce_sum(acc * acc)

        return fc.while_loop(lambda j, s: j < 3, outer, [0, fc.constant(0.5, fc.float64)])[1], [x]

    check(build, {"x:0": np.array([0.3, -0.6])})


def test_the_loop_nested_in_an_outer_loop_of_a_data_dependent_trip_count() -> None:
    """On cpu the outer loop, which no constant bounds, is differentiated by recomputation (Note [while gradients
    by recomputation]), each recomputed turn running the growing loop again from the host."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None], name="x")
        m = fc.placeholder(fc.int32, [], name="m")

        def outer(j: Any, s: Any) -> Any:
            _, acc = fc.while_loop(lambda i, acc: i < j, lambda i, acc: (i + 1, fc.concat([acc, acc[:1] * s], 0)),
                                   [0, x], shape_invariants=[fc.TensorShape([]), fc.TensorShape([None])])
            return j + 1, fc.tanh(s + fc.reduce_sum(acc))

        return fc.while_loop(lambda j, s: j < m, outer, [0, fc.constant(0.2, fc.float64)])[1], [x]

    check(build, {"x:0": np.array([0.3, -0.1]), "m:0": np.asarray(3, np.int32)})


def test_the_cpu_target_runs_each_body_once_a_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """No counting copy of the loop and no recomputation: n turns of the recording loop, n backward steps. Each
    body holds a stack op, so it runs as pieces (one run_block a turn); so does the whole function, once."""
    from flowc import host_driven

    g = fc.Graph()
    with g.as_default():
        loss, (x,) = growing()
        (gx,) = fc.gradients(loss, [x])
    blocks = []
    run_block = host_driven.run_block

    def counted(block: Any, pieces: list, args: list) -> list:
        blocks.append(block)
        return run_block(block, pieces, args)

    with fc.Session(graph=g, target="cpu") as cpu:
        cpu.run(gx, {"x:0": np.array([0.5, 0.7]), "n:0": np.asarray(1, np.int32)})  # compiled first
        monkeypatch.setattr(host_driven, "run_block", counted)
        for trips in (4, 8):
            blocks.clear()
            cpu.run(gx, {"x:0": np.array([0.5, 0.7]), "n:0": np.asarray(trips, np.int32)})
            assert len(blocks) == 1 + 2 * trips and len(set(blocks)) == 3


def test_a_loop_of_fixed_shapes_keeps_its_gradient_one_native_call() -> None:
    """No stack of entries of any shape where no value changes shape: the cpu gradient is one native call."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None], name="x")

        def body(i: Any, acc: Any) -> Any:
            return i + 1, fc.sin(acc) * 1.5

        _, acc = fc.while_loop(lambda i, acc: i < 4, body, [0, x])
        return fc.reduce_sum(acc * acc), [x]

    executables = check(build, {"x:0": np.array([0.5, 0.7, 0.2])})
    assert all(isinstance(e, NativeExecutable) for e in executables), executables


def test_a_second_derivative_through_such_a_loop_is_refused_naming_it() -> None:
    g = fc.Graph()
    with g.as_default():
        loss, (x,) = growing()
        (gx,) = fc.gradients(loss, [x])
        (ggx,) = fc.gradients(fc.reduce_sum(gx), [x])
    with fc.Session(graph=g, target="reference") as session:
        with pytest.raises(FlowcError, match=r"while .*created at test_host_driven_gradients.py:\d+.*cannot "
                                             r"differentiate this while loop again.*second derivative"):
            session.run(ggx, {"x:0": np.array([0.5, 0.7]), "n:0": np.asarray(2, np.int32)})


def test_fc_export_refuses_the_gradient_of_such_a_loop(tmp_path: Any) -> None:
    g = fc.Graph()
    with g.as_default():
        loss, (x,) = growing()
        (gx,) = fc.gradients(loss, [x])
        n = g.get_tensor_by_name("n:0")
    with fc.Session(graph=g) as session:
        with pytest.raises(UnsupportedOpError, match=r"stack_push \(created at test_host_driven_gradients.py:\d+\): "
                                                     r"the cpu target does not compile stack_push: the gradient of a "
                                                     r"while loop whose values change shape .*\(fc.export"):
            fc.export(str(tmp_path / "grown"), [gx], [x, n], session=session)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_fc_grad_of_a_jitted_function_with_a_growing_loop(target: str) -> None:
    def loss(x: Any) -> Any:
        i0 = fc.constant(0)
        _, acc = fc.while_loop(lambda i, acc: i < 4, lambda i, acc: (i + 1, fc.concat([acc, fc.exp(-acc[-1:])], 0)),
                               [i0, x], shape_invariants=[i0.shape, fc.TensorShape([None])])
        return fc.reduce_sum(acc * acc)

    x = np.array([0.4, -0.3])
    grad = fc.jit(fc.grad(loss), target=target)(x)
    numeric = central_differences(lambda: float(fc.jit(loss, target="reference")(x)), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("flag", [True, False])
def test_the_loop_in_a_cond_branch(flag: bool) -> None:
    """The gradient of the cond holds the loop's stacks: the cpu target runs its branches from the host."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None], name="x")
        p = fc.placeholder(fc.bool, [], name="p")

        def grow() -> Any:
            _, acc = fc.while_loop(lambda i, acc: i < 3, lambda i, acc: (i + 1, fc.concat([acc, fc.sin(acc)], 0)),
                                   [0, x], shape_invariants=[fc.TensorShape([]), fc.TensorShape([None])])
            return fc.reduce_sum(acc * acc)

        return fc.cond(p, grow, lambda: fc.reduce_sum(fc.exp(x))), [x]

    check(build, {"x:0": np.array([0.4, -0.2]), "p:0": np.asarray(flag)})


def test_two_gradient_requests_on_one_loop() -> None:
    """The second request finds the first one's recording loop and records again (Note [while gradients with a
    stack]); its stacks are loop values that carry no cotangent."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None], name="x")
        w = fc.placeholder(fc.float64, [], name="w")

        def body(i: Any, acc: Any) -> Any:
            return i + 1, fc.concat([acc, fc.tanh(acc[-1:] * w)], 0)

        _, acc = fc.while_loop(lambda i, acc: i < 4, body, [0, x],
                               shape_invariants=[fc.TensorShape([]), fc.TensorShape([None])])
        loss = fc.reduce_sum(acc * acc)
        (gw,) = fc.gradients(loss, [w])
        (gx,) = fc.gradients(loss, [x])
    feeds = {"x:0": np.array([0.4, -0.2]), "w:0": np.asarray(1.3)}
    with fc.Session(graph=g, target="reference") as ref, fc.Session(graph=g, target="cpu") as cpu:
        want = ref.run([gw, gx], feeds)
        np.testing.assert_allclose(want[0], central_differences(lambda: float(ref.run(loss, feeds)), feeds["w:0"]),
                                   rtol=1e-6)
        np.testing.assert_allclose(want[1], central_differences(lambda: float(ref.run(loss, feeds)), feeds["x:0"]),
                                   rtol=1e-6)
        for w_, o in zip(want, cpu.run([gw, gx], feeds)):
            np.testing.assert_allclose(o, w_, rtol=1e-10)


@pytest.mark.parametrize("turns", [0, 1, 5])
def test_a_loop_that_collects_boolean_mask_elements(turns: int) -> None:
    """Each turn appends the sines of the elements of x above the turn's threshold, a count only the data gives:
    on cpu the bodies are also cut at the count (Note [data-dependent sizes]), the stack passing through."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None], name="x")
        n = fc.placeholder(fc.int32, [], name="n")
        i0, acc0 = fc.constant(0), fc.zeros([0], fc.float64)

        def body(i: Any, acc: Any) -> Any:
            picked = fc.boolean_mask(x, x > fc.cast(i, fc.float64) * 0.3)
            return i + 1, fc.concat([acc, fc.sin(picked)], 0)

        _, acc = fc.while_loop(lambda i, a: i < n, body, [i0, acc0],
                               shape_invariants=[i0.shape, fc.TensorShape([None])])
        return fc.reduce_sum(acc * acc), [x]

    check(build, {"x:0": np.array([0.1, 0.5, 0.95, 1.4, -0.2]), "n:0": np.asarray(turns, np.int32)})


def test_the_loop_nested_in_an_outer_loop_that_grows_too() -> None:
    """The outer loop appends what the inner one grew: the probe sizes the inner loop's results as the data's
    (ir/shapes.py's block_shapes), so the outer loop's values change too and both keep stacks of any shape."""
    def build() -> tuple[Any, list[Any]]:
        x = fc.placeholder(fc.float64, [None], name="x")

        def outer(j: Any, out: Any) -> Any:
            _, acc = fc.while_loop(lambda i, acc: i < j, lambda i, acc: (i + 1, fc.concat([acc, fc.sin(acc[-1:])], 0)),
                                   [0, x], shape_invariants=[fc.TensorShape([]), fc.TensorShape([None])])
            return j + 1, fc.concat([out, acc * 0.5], 0)

        _, out = fc.while_loop(lambda j, out: j < 3, outer, [0, x],
                               shape_invariants=[fc.TensorShape([]), fc.TensorShape([None])])
        return fc.reduce_sum(out * out), [x]

    check(build, {"x:0": np.array([0.3, -0.4])})
