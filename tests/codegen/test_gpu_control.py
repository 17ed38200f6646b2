"""cond and while_loop on the gpu target: driven from the host (the predicate read back each turn),
their regions' kernels launched inside; compared with the reference target (gpu_check.py)."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402


def _x(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("flag", [True, False])
def test_cond_runs_the_chosen_branch(rng, flag):
    def build():
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        p = fc.placeholder(fc.bool, [], name="p")
        return fc.cond(p, lambda: fc.exp(x) * 2.0, lambda: x - 1.0) + x
    assert_gpu_matches(build, {"x": _x(rng, (4, 3)), "p": np.array(flag)}, rtol=1e-6)


def test_cond_on_a_computed_predicate_with_several_results(rng):
    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        s = fc.placeholder(fc.float32, [], name="s")
        a, b = fc.cond(s > 0.0, lambda: (x * s, x + s), lambda: (x - s, fc.maximum(x, s)))
        return [a, b]
    for s in (1.5, -0.5):
        assert_gpu_matches(build, {"x": _x(rng, (5,)), "s": np.float32(s)})


def test_while_loop_counts_on_the_host(rng):
    def build():
        x = fc.placeholder(fc.float32, [None, 2], name="x")
        n = fc.placeholder(fc.int32, [], name="n")
        _, y = fc.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, v * 0.5 + 1.0), [fc.constant(0), x])
        return y
    for n in (0, 1, 7):
        assert_gpu_matches(build, {"x": _x(rng, (3, 2)), "n": np.int32(n)}, rtol=1e-6)


def test_while_loop_on_a_data_dependent_condition(rng):
    def build():
        x = fc.placeholder(fc.float32, [], name="x")
        return fc.while_loop(lambda v: v < 100.0, lambda v: v * 3.0 + 1.0, [x])
    assert_gpu_matches(build, {"x": np.float32(0.5)})


def test_maximum_iterations(rng):
    def build():
        x = fc.placeholder(fc.float32, [4], name="x")
        return fc.while_loop(lambda v: fc.constant(True), lambda v: v + 1.0, [x], maximum_iterations=3)
    assert_gpu_matches(build, {"x": _x(rng, (4,))})


def test_cond_inside_a_loop(rng):
    def build():
        x = fc.placeholder(fc.float32, [None], name="x")

        def body(i, v):
            return i + 1, fc.cond(i < 2, lambda: v * 2.0, lambda: v - 1.0)
        return fc.while_loop(lambda i, v: i < 5, body, [fc.constant(0), x])[1]
    assert_gpu_matches(build, {"x": _x(rng, (6,))})


def test_loop_state_of_two_unknown_sizes(rng):
    def build():
        a = fc.placeholder(fc.float32, [None], name="a")
        b = fc.placeholder(fc.float32, [None, 1], name="b")
        _, y, z = fc.while_loop(lambda i, u, w: i < 3, lambda i, u, w: (i + 1, u + 1.0, w * 2.0 - 1.0),
                                [fc.constant(0), a, b])
        return [y, z]
    assert_gpu_matches(build, {"a": _x(rng, (5,)), "b": _x(rng, (2, 1))})


@pytest.mark.parametrize("flag", [True, False])
def test_a_cond_with_branches_of_different_shapes_runs_from_the_host(rng, flag):
    """Its predicate read on the host, the chosen branch one executable of its own (Note [conds driven from
    the host] in compiler/host_driven.py), as on the cpu target."""
    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        z = fc.placeholder(fc.float32, [None], name="z")
        p = fc.placeholder(fc.bool, [], name="p")
        y = fc.cond(p, lambda: x + 1.0, lambda: fc.concat([z * 2.0, x], 0))
        return [y, fc.reduce_sum(y)]
    assert_gpu_matches(build, {"x": _x(rng, (3,)), "z": _x(rng, (4,)), "p": np.array(flag)}, ptx=False)


def test_training_through_a_cond_with_branches_of_different_shapes():
    """The program in pieces keeps its variable on the host; two steps, one per branch."""
    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        p = fc.placeholder(fc.bool, [], name="p")
        w = fc.Variable(fc.constant(2.0), name="w")
        y = fc.cond(p, lambda: x * w, lambda: fc.concat([x, x * w], 0))
        loss = fc.reduce_sum(y * y)
        with fc.control_dependencies([fc.train.GradientDescentOptimizer(0.01).minimize(loss)]):
            return [loss, fc.identity(w.read_value())]
    for flag in (True, False):
        assert_gpu_matches(build, {"x": np.arange(3, dtype=np.float32), "p": np.array(flag)}, ptx=False, runs=2)


def test_a_loop_value_that_grows_runs_from_the_host():
    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        i0, acc0 = fc.constant(0), fc.zeros([0])
        _, acc = fc.while_loop(lambda i, a: i < 5,
                               lambda i, a: (i + 1, fc.concat([a, x[:1] * fc.cast(i + 1, fc.float32)], 0)),
                               [i0, acc0], shape_invariants=[i0.shape, fc.TensorShape([None])])
        return acc
    assert_gpu_matches(build, {"x": np.float32([3, -1, 2])}, ptx=False)


def test_a_dynamic_tensor_array_grows_in_a_loop(rng):
    def build():
        n = fc.placeholder(fc.int32, [], name="n")
        ta = fc.TensorArray(fc.float32, size=0, dynamic_size=True, element_shape=[2])
        _, ta = fc.while_loop(lambda i, t: i < n,
                              lambda i, t: (i + 1, t.write(i, fc.cast(i, fc.float32) * fc.ones([2]))), [0, ta])
        return [ta.stack(), ta.size()]
    for count in (0, 3):
        assert_gpu_matches(build, {"n": np.int32(count)}, ptx=False)


def test_gradient_through_cond(rng):
    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        p = fc.placeholder(fc.bool, [], name="p")
        y = fc.cond(p, lambda: x * x * 3.0, lambda: fc.exp(x))
        return fc.gradients(y, [x])[0]
    for flag in (True, False):
        assert_gpu_matches(build, {"x": _x(rng, (5,)), "p": np.array(flag)}, rtol=1e-6)


def test_an_unsupported_op_in_a_loop_body_is_refused_before_running(monkeypatch, rng):
    from flowc.codegen.triton.expressions import EXPRESSIONS
    monkeypatch.delitem(EXPRESSIONS, "exp")  # as an op no emitter covers yet
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        y = fc.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, fc.exp(v)), [fc.constant(0), x])
    with fc.Session(target="gpu", graph=graph) as session, \
            pytest.raises(fc.errors.UnsupportedOpError, match="exp.*test_gpu_control.py.*target 'cpu' compiles it"):
        session.run(y, {x: _x(rng, (3,))})


def test_function_calls_are_inlined(rng):
    @fc.function
    def affine(v, scale):
        return fc.nn.relu(v * scale + 1.0)

    def build():
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        y = affine(affine(x, 2.0), -0.5)
        return [y, fc.gradients(y, [x])[0]]
    assert_gpu_matches(build, {"x": _x(rng, (4, 3))})
