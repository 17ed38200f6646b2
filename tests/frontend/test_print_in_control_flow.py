"""fc.Print and fc.print inside while bodies, cond branches and fc.function print once per turn, in order, as
TF1 does (Note [printing inside control flow] in ir/ops/checks.py); run-time checks there stop the run with the
op and the user's line. Output captured with capfd: the CPU's prints come from native code."""

import inspect
import sys

import numpy as np
import pytest

import flowc as fc
from flowc.ir.ops.checks import CheckFailed

TARGETS = ["reference", "cpu"]


def line_of(marker: str) -> str:
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()
    number = next(i + 1 for i, line in enumerate(lines) if marker in line and "line_of" not in line)
    return f"test_print_in_control_flow.py:{number}"


def printed(capfd: pytest.CaptureFixture[str], run) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(stdout, stderr) of `run()`, after what was printed before it."""
    capfd.readouterr()
    run()
    captured = capfd.readouterr()
    return captured.out, captured.err


@pytest.mark.parametrize("target", TARGETS)
def test_print_in_a_while_body_prints_every_turn_in_order(target, capfd):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [2], name="x")

        def body(i, s):  # type: ignore[no-untyped-def]
            s = fc.Print(s, [i, s], message="turn ")
            return i + 1, s * 2.0

        _, s = fc.while_loop(lambda i, s: i < 3, body, [fc.constant(0), x])
    with fc.Session(target, graph=g) as sess:
        out, err = printed(capfd, lambda: np.testing.assert_array_equal(sess.run(s, {x: [1.0, 1.5]}), [8.0, 12.0]))
        assert out == "" and err == "turn [0][1.0 1.5]\nturn [1][2.0 3.0]\nturn [2][4.0 6.0]\n"
        out, err = printed(capfd, lambda: sess.run(s, {x: [0.5, 0.0]}))  # a second run prints its own turns
        assert err == "turn [0][0.5 0.0]\nturn [1][1.0 0.0]\nturn [2][2.0 0.0]\n"


def test_print_in_a_while_body_prints_the_same_on_both_targets(capfd):
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, [], name="n")

        def body(i, total):  # type: ignore[no-untyped-def]
            shown = fc.print("i =", i, "total =", total, output_stream=sys.stdout)
            with fc.control_dependencies([shown]):
                return i + 1, total + fc.cast(i, fc.float64) * 1.1

        _, total = fc.while_loop(lambda i, total: i < n, body, [fc.constant(0), fc.constant(0.0, fc.float64)])
    outputs = {}
    for target in TARGETS:
        with fc.Session(target, graph=g) as sess:
            outputs[target] = printed(capfd, lambda: sess.run(total, {n: 4}))
    assert outputs["cpu"] == outputs["reference"]
    want = "i = 0 total = 0.0\ni = 1 total = 0.0\ni = 2 total = 1.1\ni = 3 total = 3.3000000000000003\n"
    assert outputs["cpu"][0] == want


@pytest.mark.parametrize("target", TARGETS)
def test_print_in_cond_branches_prints_only_the_branch_taken(target, capfd):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [], name="x")
        y = fc.cond(x > 0, lambda: fc.Print(x * 2.0, [x], message="then "), lambda: fc.Print(-x, [x], message="else "))
    with fc.Session(target, graph=g) as sess:
        assert printed(capfd, lambda: sess.run(y, {x: 2.0}))[1] == "then [2.0]\n"
        assert printed(capfd, lambda: sess.run(y, {x: -3.0}))[1] == "else [-3.0]\n"


@pytest.mark.parametrize("target", TARGETS)
def test_print_in_a_function_prints_per_call_and_in_a_cond_inside_a_loop_per_turn(target, capfd):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [], name="x")

        @fc.function
        def square(v):  # type: ignore[no-untyped-def]
            return fc.Print(v * v, [v], message="square of ")

        both = square(x) + square(x + 1.0)

        def body(i, s):  # type: ignore[no-untyped-def]
            odd = fc.equal(i % 2, 1)
            s = fc.cond(odd, lambda: fc.Print(s, [i], message="odd turn "), lambda: s)
            return i + 1, s + 1.0

        _, counted = fc.while_loop(lambda i, s: i < 5, body, [fc.constant(0), x])
    with fc.Session(target, graph=g) as sess:
        out, err = printed(capfd, lambda: sess.run(both, {x: 2.0}))
        assert err == "square of [2.0]\nsquare of [3.0]\n"
        out, err = printed(capfd, lambda: sess.run(counted, {x: 0.0}))
        assert err == "odd turn [1]\nodd turn [3]\n"


@pytest.mark.parametrize("target", TARGETS)
def test_first_n_counts_turns_and_a_gradient_does_not_print_again(target, capfd):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [2], name="x")

        def body(i, s):  # type: ignore[no-untyped-def]
            s = fc.Print(s, [i], message="turn ", first_n=4)
            return i + 1, s * s

        _, s = fc.while_loop(lambda i, s: i < 3, body, [fc.constant(0), x])
        (dx,) = fc.gradients(fc.reduce_sum(s), [x])
    value = np.asarray([1.0, 1.1], np.float32)
    with fc.Session(target, graph=g) as sess:
        out, err = printed(capfd, lambda: np.testing.assert_allclose(sess.run(dx, {x: value}), 8 * value ** 7,
                                                                     rtol=1e-5))
        assert err == "turn [0]\nturn [1]\nturn [2]\n"  # the forward turns only, not the backward loop's
        assert printed(capfd, lambda: sess.run(s, {x: value}))[1] == "turn [0]\n"  # the fourth print, then none


@pytest.mark.parametrize("target", TARGETS)
def test_checks_in_a_loop_body_name_the_op_and_line_after_the_turns_that_passed(target, capfd):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")

        def body(i, s):  # type: ignore[no-untyped-def]
            s = fc.Print(s, [i], message="turn ")
            positive = fc.debugging.assert_positive(s, message="s must stay positive")  # the assert
            with fc.control_dependencies([positive]):
                return i + 1, fc.debugging.check_numerics(fc.sqrt(s - 2.0), "root of s")  # the numerics check

        _, s = fc.while_loop(lambda i, s: i < 3, body, [fc.constant(0), x])
    with fc.Session(target, graph=g) as sess:
        with pytest.raises(CheckFailed) as info:
            sess.run(s, {x: [3.0, -1.0]})
        assert "assert_positive" in str(info.value) and line_of("# the assert") in str(info.value)
        assert "s must stay positive" in str(info.value)
        assert capfd.readouterr().err == "turn [0]\n"
        with pytest.raises(CheckFailed) as info:
            sess.run(s, {x: [3.0, 2.5]})  # turn 0: roots of [1, 0.5]; turn 1: of [-1, -1.29], NaN
        assert "CheckNumerics" in str(info.value) and line_of("# the numerics check") in str(info.value)
        assert "root of s: Tensor had NaN or Inf values" in str(info.value)
        assert capfd.readouterr().err == "turn [0]\nturn [1]\n"


def test_repeated_runs_below_python_print_too(capfd):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [2], name="x")
        _, s = fc.while_loop(lambda i, s: i < 2, lambda i, s: (i + 1, fc.Print(s, [i], message="t") * 2.0),
                             [fc.constant(0), x])
    value = np.ones(2, np.float32)  # the same array each run: the C fast run takes the repeats (session.py)
    with fc.Session("cpu", graph=g) as sess:
        out, err = printed(capfd, lambda: [sess.run(s, {x: value}) for _ in range(3)])
        assert sess._fast  # the fast run was made, and ran the later runs
    assert err == "t[0]\nt[1]\n" * 3
