"""fc.debugging's asserts, fc.Assert and fc.check_numerics: run-time checks that pass where the
condition holds and otherwise stop the run with CheckFailed naming the op, the user's message and
line, on the reference target (numpy) and natively on the CPU (the kernel's error slots)."""

import numpy as np
import pytest

import flowc as fc
from flowc.ir.ops.checks import CheckFailed

TARGETS = ("reference", "cpu")
HERE = __file__.rsplit("/", 1)[-1]


def line_of(marker: str) -> int:
    with open(__file__) as source:
        return next(n for n, text in enumerate(source, 1) if marker in text and "line_of" not in text)


def guarded(make_assert):  # type: ignore[no-untyped-def]
    """A graph: x and y fed (float32, any length), an assert on them, and x + y computed after it."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        y = fc.placeholder(fc.float32, [None], name="y")
        check = make_assert(x, y)
        with fc.control_dependencies([check]):
            total = x + y
    return g, x, y, total, check


CASES = [  # (assert, feeds where it holds, feeds where it fails, the failing element)
    (lambda x, y: fc.debugging.assert_equal(x, y, message="same"), ([1, 2, 3], [1, 2, 3]), ([1, 2, 3], [1, 5, 3]), 1),
    (lambda x, y: fc.debugging.assert_less(x, y, message="below"), ([1, 2], [2, 3]), ([1, 3], [2, 3]), 1),
    (lambda x, y: fc.debugging.assert_greater(x, y, message="above"), ([3, 4], [2, 3]), ([1, 4], [2, 3]), 0),
    (lambda x, y: fc.debugging.assert_positive(x, message="positive"), ([1, 2], [0, 0]), ([1, 0], [0, 0]), 1),
    (lambda x, y: fc.debugging.assert_non_negative(x, message="non-negative"), ([0, 2], [0, 0]),
     ([0, -2], [0, 0]), 1),
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_each_assert_passes_where_it_holds_and_names_op_message_and_line_where_not(target: str, case: int) -> None:
    make, good, bad, element = CASES[case]
    g, x, y, total, check = guarded(make)
    with fc.Session(target=target, graph=g) as sess:
        got = sess.run(total, {x: good[0], y: good[1]})
        np.testing.assert_array_equal(got, np.add(good[0], good[1], dtype=np.float32))
        with pytest.raises(CheckFailed) as failure:
            sess.run(total, {x: bad[0], y: bad[1]})
    text = str(failure.value)
    assert f"'{check.name}'" in text
    assert f"{HERE}:{make.__code__.co_firstlineno}" in text  # the user's line: where the assert was called
    assert "did not hold element-wise" in text and f"at element {element}" in text
    assert isinstance(failure.value, fc.FlowcError)


@pytest.mark.parametrize("target", TARGETS)
def test_an_assert_fetched_itself_runs_and_gives_none(target: str) -> None:
    g, x, y, total, check = guarded(lambda x, y: fc.debugging.assert_less(x, y))
    with fc.Session(target=target, graph=g) as sess:
        assert sess.run(check, {x: [1.0], y: [2.0]}) is None
        with pytest.raises(CheckFailed, match="x:0 < y:0"):
            sess.run([total, check], {x: [3.0], y: [2.0]})


@pytest.mark.parametrize("target", TARGETS)
def test_a_run_that_does_not_reach_the_assert_does_not_check(target: str) -> None:
    g, x, y, total, check = guarded(lambda x, y: fc.debugging.assert_equal(x, y))
    with g.as_default():
        other = x * 2.0  # no control dependency on the assert
    with fc.Session(target=target, graph=g) as sess:
        np.testing.assert_array_equal(sess.run(other, {x: [1.0, 2.0]}), [2.0, 4.0])


@pytest.mark.parametrize("target", TARGETS)
def test_assert_with_a_scalar_condition(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, [], name="n")
        check = fc.Assert(n < 10, [n])
        with fc.control_dependencies([check]):
            doubled = n * 2
    with fc.Session(target=target, graph=g) as sess:
        assert sess.run(doubled, {n: 4}) == 8
        with pytest.raises(CheckFailed, match="Assert"):
            sess.run(doubled, {n: 12})


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [fc.float32, fc.float64])
def test_check_numerics_passes_finite_values_and_stops_at_nan_and_inf(target: str, dtype) -> None:  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(dtype, [None, 3], name="x")
        checked = fc.check_numerics(fc.log(x), "log of x")  # the check_numerics line
    with fc.Session(target=target, graph=g) as sess:
        values = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype.np)
        np.testing.assert_allclose(sess.run(checked, {x: values}), np.log(values), rtol=1e-6)
        assert sess.run(checked, {x: np.ones((0, 3), dtype.np)}).shape == (0, 3)
        for bad, element in ((np.inf, 4), (np.nan, 4), (0.0, 4), (-1.0, 4)):  # log(0) = -inf, log(-1) = nan
            fed = values.copy()
            fed[1, 1] = bad
            with pytest.raises(CheckFailed) as failure:
                sess.run(checked, {x: fed})
            text = str(failure.value)
            assert "log of x: Tensor had NaN or Inf values" in text and f"at element {element}" in text
            assert f"{HERE}:{line_of('the check_numerics line')}" in text


def test_check_numerics_is_fc_debugging_check_numerics_and_passes_the_gradient_through() -> None:
    assert fc.debugging.check_numerics is fc.check_numerics
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [3], name="x")
        loss = fc.reduce_sum(fc.check_numerics(x * x, "square"))
        (grad,) = fc.gradients(loss, [x])
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            np.testing.assert_allclose(sess.run(grad, {x: [1.0, -2.0, 3.0]}), [2.0, -4.0, 6.0])


# -- Print and print (Note [printing from a run] in compiler/debugging.py) -------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_print_passes_its_input_through_and_prints_message_and_data_first_n_times(target: str, capsys) -> None:  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        y = fc.Print(x * 2.0, [x, fc.reduce_sum(x)], message="x, sum: ", first_n=2, summarize=2)
        z = y + 1.0
    with fc.Session(target=target, graph=g) as sess:
        for run in range(3):
            np.testing.assert_array_equal(sess.run(z, {x: [1.0, 2.0, 3.0 + run]}), [3.0, 5.0, 7.0 + 2 * run])
    assert capsys.readouterr().err == "x, sum: [1.0 2.0...][6.0]\nx, sum: [1.0 2.0...][7.0]\n"


@pytest.mark.parametrize("target", TARGETS)
def test_print_under_control_dependencies_prints_each_run_in_order_with_summarize(target: str, capsys) -> None:  # type: ignore[no-untyped-def]
    import sys

    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.int32, [2, 2], name="x")
        first = fc.print("x:", x, output_stream=sys.stdout, summarize=-1)
        second = fc.print("total", fc.reduce_sum(x), output_stream=sys.stdout)
        with fc.control_dependencies([first, second]):
            doubled = x * 2
        unrelated = x + 1
    with fc.Session(target=target, graph=g) as sess:
        np.testing.assert_array_equal(sess.run(doubled, {x: [[1, 2], [3, 4]]}), [[2, 4], [6, 8]])
        sess.run(unrelated, {x: [[1, 2], [3, 4]]})  # reaches no print: prints nothing
        assert sess.run(second, {x: [[0, 0], [0, 5]]}) is None
    assert capsys.readouterr().out == "x: 1 2 3 4\ntotal 10\ntotal 5\n"


def test_print_prints_nothing_when_a_check_stops_the_run(capsys) -> None:  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        y = fc.Print(fc.check_numerics(x, "x"), [x], message="x=")
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            with pytest.raises(CheckFailed):
                sess.run(y, {x: [np.nan]})
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("target", TARGETS)
def test_checks_inside_cond_and_while_loop_bodies(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        p = fc.placeholder(fc.bool, [], name="p")
        y = fc.cond(p, lambda: fc.check_numerics(fc.log(x), "in cond"), lambda: x)

        def body(i, total):  # type: ignore[no-untyped-def]
            with fc.control_dependencies([fc.debugging.assert_less(i, 3, message="loop bound")]):
                return i + 1, total + x

        _, z = fc.while_loop(lambda i, total: i < 5, body, [fc.constant(0), x])
        _, fine = fc.while_loop(lambda i, total: i < 3, body, [fc.constant(0), x])
    with fc.Session(target=target, graph=g) as sess:
        np.testing.assert_allclose(sess.run(y, {x: [1.0, 2.0], p: True}), np.log([1.0, 2.0]))
        np.testing.assert_array_equal(sess.run(y, {x: [1.0, -2.0], p: False}), [1.0, -2.0])  # branch not taken
        with pytest.raises(CheckFailed, match="in cond: Tensor had NaN or Inf values"):
            sess.run(y, {x: [1.0, -2.0], p: True})
        np.testing.assert_array_equal(sess.run(fine, {x: [1.0]}), [4.0])
        with pytest.raises(CheckFailed, match="loop bound"):
            sess.run(z, {x: [1.0]})
