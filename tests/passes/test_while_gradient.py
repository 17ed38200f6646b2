"""Reverse mode through `while` with a stack (Note [while gradients with a stack] in
passes/autodiff/rules_while.py): gradients against central differences in float64 on the
reference target, for data-dependent trip counts, an RNN over the rows of a sequence, 0 and 1
iterations, nested loops and a cond in the body; the forward loop runs once; the cost is O(n)
body evaluations; second derivatives through a cond; and the cpu target against the reference
(static stacks written in place, or recomputation where no constant bounds the loop)."""

from __future__ import annotations

import numpy as np
import pytest
from test_gradient_check import Arg, Case, check_case, fixed, normal
from test_native_control import assert_same, compile_cpu

from flowc import ir
from flowc.ir import Interpreter
from flowc.passes import optimize
from flowc.passes.autodiff import expand_gradients
from flowc.passes.memory import memory_plan

# -- while x < 10: x = x * w --------------------------------------------------------------------

GROWTH = """
func @f(%x: f64[], %w: f64[]) -> f64[] {
  %y, %ww = while %x, %w : f64[], f64[] {
  ^bb0(%a: f64[], %b: f64[]):
    %ten = constant {value = dense<10.0>} : f64[]
    %go = less %a, %ten : bool[]
    yield %go : bool[]
  } {
  ^bb0(%a: f64[], %b: f64[]):
    %m = mul %a, %b : f64[]
    yield %m, %b : f64[], f64[]
  }
  return %y : f64[]
}"""


@pytest.mark.parametrize("start, trips", [(0.9, 5), (0.01, 14), (6.0, 1), (20.0, 0)])
def test_a_data_dependent_trip_count(start: float, trips: int, rng: np.random.Generator) -> None:
    """The trip count depends on x; 14 trips grow the stack from 1 row to 16."""
    (y,) = ir.evaluate(ir.parse_module(GROWTH)["f"], [np.float64(start), np.float64(1.7)])
    assert y == pytest.approx(start * 1.7 ** trips)
    check_case(Case([Arg(fixed(start)), Arg(fixed(1.7))], text=GROWTH, label=f"x = {start}"), rng)


FLOAT_COUNTER = """
func @f(%x: f64[], %w: f64[]) -> f64[] {
  %start = constant {value = dense<-0.5>} : f64[]
  %c, %y, %ww = while %start, %x, %w : f64[], f64[], f64[] {
  ^bb0(%i: f64[], %a: f64[], %b: f64[]):
    %ten = constant {value = dense<10.0>} : f64[]
    %go = less %i, %ten : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: f64[], %a: f64[], %b: f64[]):
    %one = constant {value = dense<1.0>} : f64[]
    %next = add %i, %one : f64[]
    %m = mul %a, %b : f64[]
    %s = add %m, %i : f64[]
    yield %next, %s, %b : f64[], f64[], f64[]
  }
  return %y : f64[]
}"""


def test_a_float_counter_is_no_bound(rng: np.random.Generator) -> None:
    """i < 10 from -0.5 by 1.0 runs 11 times, not int(10) - int(-0.5): only an integer counter
    bounds the stack, a float one is counted."""
    check_case(Case([Arg(fixed(0.3)), Arg(fixed(0.9))], text=FLOAT_COUNTER, label="float counter"), rng)


# -- an RNN over the rows of a sequence ----------------------------------------------------------

RNN = """
func @f(%xs: f64[5,2,4], %h0: f64[2,3], %w: f64[4,3], %u: f64[3,3], %n: i64[]) -> (f64[2,3], f64[2,3]) {
  %zero = constant {value = dense<0>} : i64[]
  %t, %h, %seq, %ww, %uu, %nn, %acc = while %zero, %h0, %xs, %w, %u, %n, %h0
      : i64[], f64[2,3], f64[5,2,4], f64[4,3], f64[3,3], i64[], f64[2,3] {
  ^bb0(%i: i64[], %a: f64[2,3], %s: f64[5,2,4], %b: f64[4,3], %c: f64[3,3], %m: i64[], %sum: f64[2,3]):
    CONDITION
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %a: f64[2,3], %s: f64[5,2,4], %b: f64[4,3], %c: f64[3,3], %m: i64[], %sum: f64[2,3]):
    %one = constant {value = dense<1>} : i64[]
    %next = add %i, %one : i64[]
    %x = read_row %s, %i : f64[2,4]
    %xw = matmul %x, %b {transpose_a = false, transpose_b = false} : f64[2,3]
    %hu = matmul %a, %c {transpose_a = false, transpose_b = false} : f64[2,3]
    %pre = add %xw, %hu : f64[2,3]
    %new = tanh %pre : f64[2,3]
    %more = add %sum, %new : f64[2,3]
    yield %next, %new, %s, %b, %c, %m, %more : i64[], f64[2,3], f64[5,2,4], f64[4,3], f64[3,3], i64[], f64[2,3]
  }
  return %h, %acc : f64[2,3], f64[2,3]
}"""
CONDITIONS = {
    "static bound": "%five = constant {value = dense<5>} : i64[]\n    %go = less %i, %five : bool[]",
    "bound by a loop value": "%go = less %i, %m : bool[]",
    "no bound": "%one = constant {value = dense<1>} : i64[]\n    %j = mul %i, %one : i64[]\n"
                "    %go = less %j, %m : bool[]",
    "bound and data": "%five = constant {value = dense<5>} : i64[]\n    %in = less %i, %five : bool[]\n"
                      "    %total = reduce_sum %a {axes = [0, 1], keepdims = false} : f64[]\n"
                      "    %big = constant {value = dense<100.0>} : f64[]\n    %small = less %total, %big : bool[]\n"
                      "    %go = logical_and %in, %small : bool[]",
}


def rnn_case(condition: str, steps: int) -> Case:
    args = [Arg(normal(5, 2, 4)), Arg(normal(2, 3)), Arg(lambda rng: rng.standard_normal((4, 3)) * 0.5),
            Arg(lambda rng: rng.standard_normal((3, 3)) * 0.5), Arg(fixed(np.int64(steps)))]
    return Case(args, text=RNN.replace("CONDITION", CONDITIONS[condition]), label=f"rnn {condition} {steps}")


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_an_rnn_over_the_rows_of_a_sequence(condition: str, rng: np.random.Generator) -> None:
    check_case(rnn_case(condition, 5), rng)


def test_a_bound_carried_as_a_loop_value_with_a_constant_start_gives_static_stacks(rng: np.random.Generator) -> None:
    """fc.while_loop's maximum_iterations: `i < m` with m a loop value the body keeps, fed a constant."""
    text = RNN.replace("%u, %n, %h0", "%u, %bound, %h0").replace(
        "%zero = constant {value = dense<0>} : i64[]", "%zero = constant {value = dense<0>} : i64[]\n"
        "  %bound = constant {value = dense<4>} : i64[]")
    case = rnn_case("bound by a loop value", 9)  # %n is not read
    check_case(Case(case.args, text=text.replace("CONDITION", CONDITIONS["bound by a loop value"]),
                    label="constant bound"), rng)
    module = gradient_module(text, "bound by a loop value")
    optimize(module, verify_each=True)
    assert not [op for op in module.walk() if op.name == "fill_rows"], str(module)
    stack = [op for op in module["f"].entry.ops if op.name == "broadcast_to"][0]
    assert stack.result.type.shape == (5, 2, 3)  # rows 0..4: the states entering each turn, and the last


def unknown_batch(text: str) -> str:
    return text.replace("f64[2,3]", "f64[?,3]").replace("f64[5,2,4]", "f64[5,?,4]").replace("f64[2,4]", "f64[?,4]")


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_an_rnn_of_unknown_batch(condition: str, rng: np.random.Generator) -> None:
    """Rows of unknown size: the static stack is built by doubling a row, the others by fill_rows;
    the forward loop still runs once."""
    case = rnn_case(condition, 5)
    check_case(Case(case.args, text=unknown_batch(case.text), label=case.label), rng)
    module = gradient_module(unknown_batch(RNN), condition)
    optimize(module, verify_each=True)
    loops = [op for op in module["f"].entry.ops if op.name == "while"]
    assert len(loops) == 2 + (condition == "no bound"), str(module)


def test_a_carried_value_without_a_cotangent_of_its_own(rng: np.random.Generator) -> None:
    """Only the sum of the states is returned: h gets zeros as its first cotangent, shaped like the
    loop's result, which must then be the recording loop's."""
    text = unknown_batch(RNN).replace("%h, %acc : f64[?,3], f64[?,3]", "%acc : f64[?,3]").replace(
        "-> (f64[?,3], f64[?,3])", "-> f64[?,3]")
    case = rnn_case("bound by a loop value", 4)
    check_case(Case(case.args, text=text.replace("CONDITION", CONDITIONS["bound by a loop value"]),
                    label="sum only"), rng)
    module = gradient_module(text, "bound by a loop value")
    optimize(module, verify_each=True)
    assert len([op for op in module["f"].entry.ops if op.name == "while"]) == 2, str(module)


@pytest.mark.parametrize("steps", [0, 1, 3])
@pytest.mark.parametrize("condition", ["bound by a loop value", "no bound"])
def test_an_rnn_of_few_steps(condition: str, steps: int, rng: np.random.Generator) -> None:
    check_case(rnn_case(condition, steps), rng)


def gradient_module(text: str, condition: str) -> ir.Module:
    """`text`'s @f returning its results and the gradient of their weighted sum, expanded."""
    module = ir.parse_module(text.replace("CONDITION", CONDITIONS[condition]))
    function = module["f"]
    ret = function.entry.ops[-1]
    b = ir.Builder.before(ret)
    loss = b.reduce_sum(b.mul(ret.operands[0], ret.operands[-1]), axes=(0, 1))
    xs = [a for a in function.args if a.type.dtype.is_float]
    grads = b.create("gradients", [loss, *xs], {"num_ys": 1, "num_xs": len(xs)}).results
    outputs = list(ret.operands)
    ret.erase()
    b.create("return", [*outputs, *grads])
    function.result_types = [v.type for v in [*outputs, *grads]]
    expand_gradients(module)
    ir.verify(module)
    return module


@pytest.mark.parametrize("condition, counts", [("static bound", False), ("bound by a loop value", False),
                                               ("no bound", True)])
def test_the_forward_loop_runs_once(condition: str, counts: bool) -> None:
    """The recording loop gives the forward results: after the cleanups, one loop forward, one back
    (and, where no bound is known, one that counts the trips first). Each backward step adds a row
    to the sequence's cotangent, not the whole of one."""
    module = gradient_module(RNN, condition)
    optimize(module, verify_each=True)
    loops = [op for op in module["f"].entry.ops if op.name == "while"]
    assert len(loops) == 2 + counts, str(module)
    record, back = loops[-2:]
    assert any(op.name == "write_row" for op in record.walk())
    assert [v.op for v in module["f"].entry.ops[-1].operands[:2]] == [record, record]
    assert any(op.name == "read_row" for op in back.walk())
    assert not [op for op in back.walk() if op.name == "add" and op.result.type.shape == (5, 2, 4)], str(module)
    if condition == "static bound":
        assert not [op for op in module.walk() if op.name == "fill_rows"], str(module)


def test_no_cotangent_is_carried_for_a_value_whose_gradient_is_not_asked_for() -> None:
    """The gradient of the weights only: the sequence is read in the backward loop, its cotangent
    (a matmul and a row per step) is not computed."""
    module = ir.parse_module(RNN.replace("CONDITION", CONDITIONS["static bound"]))
    function = module["f"]
    ret = function.entry.ops[-1]
    b = ir.Builder.before(ret)
    loss = b.reduce_sum(ret.operands[0], axes=(0, 1))
    w, u = function.args[2:4]
    grads = b.create("gradients", [loss, w, u], {"num_ys": 1, "num_xs": 2}).results
    ret.erase()
    b.create("return", list(grads))
    function.result_types = [w.type, u.type]
    expand_gradients(module)
    optimize(module, verify_each=True)
    back = [op for op in function.entry.ops if op.name == "while"][-1]
    assert [r.type.shape for r in back.results].count((5, 2, 4)) == 1, str(module)  # the sequence itself
    assert not [op for op in back.walk() if op.name == "write_row"], str(module)


def test_body_evaluations_grow_linearly_with_the_trip_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """O(n), not O(n^2): a loop of twice the trips runs its bodies twice as often."""
    counts = []
    for steps in (20, 40):
        text = RNN.replace("f64[5,2,4]", f"f64[{steps},2,4]")
        module = gradient_module(text, "no bound")
        runs = [0]
        run_region = Interpreter.run_region

        def counting(self, region, args):  # type: ignore[no-untyped-def]
            runs[0] += 1
            return run_region(self, region, args)

        monkeypatch.setattr(Interpreter, "run_region", counting)
        rng = np.random.default_rng(0)
        Interpreter(module).run_function("f", [rng.standard_normal((steps, 2, 4)), rng.standard_normal((2, 3)),
                                               rng.standard_normal((4, 3)), rng.standard_normal((3, 3)),
                                               np.int64(steps)])
        monkeypatch.undo()
        counts.append(runs[0])
    assert counts[1] <= 2 * counts[0] + 8, counts  # (cond + body) per trip, forward and back


# -- nested loops and a cond in the body ---------------------------------------------------------

NESTED = """
func @f(%x: f64[3], %w: f64[3]) -> f64[3] {
  %zero = constant {value = dense<0>} : i64[]
  %k, %y, %ww = while %zero, %x, %w : i64[], f64[3], f64[3] {
  ^bb0(%i: i64[], %a: f64[3], %b: f64[3]):
    %three = constant {value = dense<3>} : i64[]
    %go = less %i, %three : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %a: f64[3], %b: f64[3]):
    %one = constant {value = dense<1>} : i64[]
    %next = add %i, %one : i64[]
    %inner, %bb = while %a, %b : f64[3], f64[3] {
    ^bb0(%p: f64[3], %q: f64[3]):
      %s = reduce_sum %p {axes = [0], keepdims = false} : f64[]
      %limit = constant {value = dense<4.0>} : f64[]
      %small = less %s, %limit : bool[]
      yield %small : bool[]
    } {
    ^bb0(%p: f64[3], %q: f64[3]):
      %e = exp %q : f64[3]
      %pe = mul %p, %e : f64[3]
      %pos = constant {value = dense<0.0>} : f64[]
      %total = reduce_sum %pe {axes = [0], keepdims = false} : f64[]
      %up = greater %total, %pos : bool[]
      %r = cond %up, %pe, %q : f64[3] {
      ^bb0(%u: f64[3], %v: f64[3]):
        %t = tanh %v : f64[3]
        %z = add %u, %t : f64[3]
        yield %z : f64[3]
      } {
      ^bb0(%u: f64[3], %v: f64[3]):
        %z = sub %u, %v : f64[3]
        yield %z : f64[3]
      }
      yield %r, %q : f64[3], f64[3]
    }
    yield %next, %inner, %b : i64[], f64[3], f64[3]
  }
  return %y : f64[3]
}"""


def test_a_loop_in_a_loop_with_a_cond_in_the_body(rng: np.random.Generator) -> None:
    case = Case([Arg(fixed([0.3, 0.2, 0.4])), Arg(fixed([0.1, -0.2, 0.3]))], text=NESTED, label="nested")
    check_case(case, rng)


# -- second derivatives through a cond ------------------------------------------------------------

SECOND = """
func @f(%p: bool[], %x: f64[3], %w: f64[3]) -> f64[3] {
  %r = cond %p, %x, %w : f64[3] {
  ^bb0(%a: f64[3], %c: f64[3]):
    %m = mul %a, %c : f64[3]
    %t = tanh %m : f64[3]
    %y = mul %t, %a : f64[3]
    yield %y : f64[3]
  } {
  ^bb0(%a: f64[3], %c: f64[3]):
    %s = mul %a, %a : f64[3]
    %y = mul %s, %a : f64[3]
    %e = exp %c : f64[3]
    %z = mul %y, %e : f64[3]
    yield %z : f64[3]
  }
  %l = reduce_sum %r {axes = [0], keepdims = false} : f64[]
  %g = gradients %l, %x {num_xs = 1, num_ys = 1} : f64[3]
  return %g : f64[3]
}"""


def expanded(text: str) -> str:
    """`text` with its gradient request expanded: a function computing a first derivative, which
    check_case differentiates again."""
    module = ir.parse_module(text)
    expand_gradients(module)
    ir.verify(module)
    return str(module)


@pytest.mark.parametrize("flag", [True, False])
def test_second_derivatives_through_a_cond(flag: bool, rng: np.random.Generator) -> None:
    case = Case([Arg(fixed(flag)), Arg(normal(3)), Arg(normal(3))], text=expanded(SECOND), label=f"cond {flag}")
    check_case(case, rng)


SECOND_WHILE = """
func @f(%x: f64[], %w: f64[]) -> f64[] {
  %y, %ww = while %x, %w : f64[], f64[] {
  ^bb0(%a: f64[], %b: f64[]):
    %ten = constant {value = dense<10.0>} : f64[]
    %go = less %a, %ten : bool[]
    yield %go : bool[]
  } {
  ^bb0(%a: f64[], %b: f64[]):
    %m = mul %a, %b : f64[]
    %t = tanh %m : f64[]
    %s = add %m, %t : f64[]
    yield %s, %b : f64[], f64[]
  }
  %g = gradients %y, %w {num_xs = 1, num_ys = 1} : f64[]
  return %g : f64[]
}"""


def test_second_derivatives_through_a_while(rng: np.random.Generator) -> None:
    check_case(Case([Arg(fixed(0.7)), Arg(fixed(1.3))], text=expanded(SECOND_WHILE), label="while twice"), rng)


# -- on the cpu target ----------------------------------------------------------------------------


def with_gradients(text: str) -> str:
    """@f of `text` as @main, returning its results and the gradients of their weighted sum, unexpanded."""
    module = ir.parse_module(text)
    function = module["f"]
    ret = function.entry.ops[-1]
    b = ir.Builder.before(ret)
    weights = [b.constant(np.linspace(-1, 1, int(np.prod(v.type.shape))).reshape(v.type.shape)) for v in ret.operands]
    terms = [b.reduce_sum(b.mul(v, w), axes=tuple(range(v.type.rank))) for v, w in zip(ret.operands, weights)]
    loss = terms[0] if len(terms) == 1 else b.add(*terms)
    xs = [a for a in function.args if a.type.dtype.is_float]
    grads = b.create("gradients", [loss, *xs], {"num_ys": 1, "num_xs": len(xs)}).results
    outputs = list(ret.operands)
    ret.erase()
    b.create("return", [*outputs, *grads])
    function.result_types = [v.type for v in [*outputs, *grads]]
    return str(module).replace("func @f(", "func @main(")


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_the_rnn_gradient_on_cpu_matches_the_reference(condition: str, rng: np.random.Generator) -> None:
    """A constant bound: static stacks, written in place (a row per step) in the recording loop, and
    the sequence's cotangent a row per step in the backward loop. Other loops: the cpu recomputes
    (Note [while gradients by recomputation]); the values agree all the same."""
    text = with_gradients(RNN.replace("CONDITION", CONDITIONS[condition]))
    cases = [[rng.standard_normal((5, 2, 4)), rng.standard_normal((2, 3)), rng.standard_normal((4, 3)) * 0.5,
              rng.standard_normal((3, 3)) * 0.5, np.array(steps)] for steps in (0, 1, 5)]
    assert_same(text, *cases)
    if condition != "static bound":
        return
    function = compile_cpu(text).function
    plan = memory_plan(function)
    writes = [op for op in function.walk() if op.name == "fusion" and
              any(inner.name == "write_row" for inner in op.regions[0].entry.ops)]
    # h, the counter, the sequence's cotangent, and the three stacks of dW's and dU's sums, which run
    # after the loop (Note [accumulated products after the loop] in passes/loop_products.py)
    assert len(writes) == 6, plan.describe(function)
    for write in writes:  # each a view of its loop's state: a row stored, not the buffer copied
        assert plan.storage[write.result].kind == "view", plan.describe(function)


def test_a_data_dependent_trip_count_on_cpu(rng: np.random.Generator) -> None:
    text = with_gradients(GROWTH)
    assert_same(text, *[[np.array(x), np.array(1.7)] for x in (0.9, 0.01, 6.0, 20.0)])


# -- through the front end ------------------------------------------------------------------------


@pytest.mark.parametrize("start", [0.9, 20.0])
def test_while_loop_with_maximum_iterations_differentiates_on_both_targets(start: float) -> None:
    """fc.while_loop(x < 10, x * w, maximum_iterations=30): the front end's counter bounds the stacks
    (static on cpu); the gradients agree with central differences on both targets."""
    import flowc as fc

    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float64, [], name="x")
        w = fc.placeholder(fc.float64, [], name="w")
        y = fc.while_loop(lambda v: v < 10.0, lambda v: v * w + fc.tanh(v), [x], maximum_iterations=30)
        dx, dw = fc.gradients(y, [x, w])

    def value(target: str, feeds: dict) -> list[float]:
        with fc.Session(graph=graph, target=target) as session:
            return [float(v) for v in session.run([y, dx, dw], feeds)]

    def central(dx: float, dw: float) -> float:
        up, down = value("reference", {x: start + dx, w: 1.3 + dw}), value("reference", {x: start - dx, w: 1.3 - dw})
        return (up[0] - down[0]) / 2e-6

    numeric_x, numeric_w = central(1e-6, 0.0), central(0.0, 1e-6)
    for target in ("reference", "cpu"):
        _, gx, gw = value(target, {x: start, w: 1.3})
        assert gx == pytest.approx(numeric_x, rel=1e-6), target
        assert gw == pytest.approx(numeric_w, rel=1e-6, abs=1e-9), target
