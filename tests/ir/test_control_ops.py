"""Region ops `cond`, `while`, `call`: built with the Builder, verified, evaluated against plain Python."""

import numpy as np
import pytest

from flowc import ir
from flowc.ir import Builder, Function, Module, TensorType, bool_, float32, int64
from flowc.ir.errors import FlowcError, ResourceExhaustedError
from flowc.ir.ops.control import build_call, build_cond, build_while

F4 = TensorType(float32, (4,))
I64 = TensorType(int64, ())
BOOL = TensorType(bool_, ())


def scalar(b: Builder, value: int) -> ir.Value:
    return b.constant(np.int64(value))


def exp_if() -> Module:
    """y = exp(x) if flag else x - 1."""
    function = Function("exp_if", [BOOL, F4], [F4], arg_names=["flag", "x"])
    b = Builder.at_end(function.entry)
    flag, x = function.args
    (y,) = build_cond(b, flag, [x], lambda b, a: b.exp(a), lambda b, a: b.sub(a, b.splat(1.0, a.type)))
    b.create("return", [y])
    return Module([function])


@pytest.mark.parametrize("flag", [True, False])
def test_cond_runs_one_branch(flag: bool, rng: np.random.Generator) -> None:
    module = exp_if()
    ir.verify(module)
    x = rng.standard_normal(4).astype(np.float32)
    (y,) = ir.evaluate(module["exp_if"], [np.array(flag), x])
    np.testing.assert_array_equal(y, np.exp(x) if flag else x - np.float32(1))


def test_cond_prints_as_in_the_style_guide() -> None:
    assert (
        str(exp_if())
        == """\
func @exp_if(%flag: bool[], %x: f32[4]) -> f32[4] {
  %0 = cond %flag, %x : f32[4] {
  ^bb0(%x_1: f32[4]):
    %1 = exp %x_1 : f32[4]
    yield %1 : f32[4]
  } {
  ^bb0(%x_1: f32[4]):
    %2 = constant {value = dense<1.0>} : f32[4]
    %3 = sub %x_1, %2 : f32[4]
    yield %3 : f32[4]
  }
  return %0 : f32[4]
}
"""
    )


def test_cond_result_types_come_from_the_then_branch() -> None:
    function = Function("pair", [BOOL, F4], [I64, F4])
    b = Builder.at_end(function.entry)
    flag, x = function.args
    results = build_cond(b, flag, [x], lambda b, a: (scalar(b, 1), a), lambda b, a: (scalar(b, 2), b.neg(a)))
    assert [r.type for r in results] == [I64, F4]
    b.create("return", results)
    ir.verify(function)
    x_value = np.arange(4, dtype=np.float32)
    k, y = ir.evaluate(function, [np.array(False), x_value])
    assert k == 2 and k.dtype == np.int64
    np.testing.assert_array_equal(y, -x_value)


def test_cond_without_operands() -> None:
    function = Function("pick", [BOOL], [I64])
    b = Builder.at_end(function.entry)
    (k,) = build_cond(b, function.args[0], [], lambda b: scalar(b, 10), lambda b: scalar(b, 20))
    b.create("return", [k])
    ir.verify(function)
    assert [int(ir.evaluate(function, [np.array(p)])[0]) for p in (True, False)] == [10, 20]


def collatz() -> Function:
    """Steps of the Collatz sequence from n down to 1, counted with a while loop."""
    function = Function("collatz", [I64], [I64, I64], arg_names=["n"])
    b = Builder.at_end(function.entry)

    def keep_going(b: Builder, n: ir.Value, steps: ir.Value) -> ir.Value:
        return b.greater(n, scalar(b, 1))

    def step(b: Builder, n: ir.Value, steps: ir.Value) -> list[ir.Value]:
        two = scalar(b, 2)
        half = b.cast(b.div(b.cast(n, dtype=ir.float64), b.cast(two, dtype=ir.float64)), dtype=int64)
        even = b.equal(b.mul(half, two), n)
        (n_next,) = build_cond(
            b, even, [half, n], lambda b, h, m: h, lambda b, h, m: b.add(b.mul(m, scalar(b, 3)), scalar(b, 1))
        )
        return [n_next, b.add(steps, scalar(b, 1))]

    results = build_while(b, [function.args[0], scalar(b, 0)], keep_going, step)
    b.create("return", results)
    return function


def python_collatz(n: int) -> int:
    steps = 0
    while n > 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


@pytest.mark.parametrize("n", [1, 2, 6, 27])
def test_while_loops_until_cond_is_false(n: int) -> None:
    function = collatz()
    ir.verify(function)
    last, steps = ir.evaluate(function, [np.array(n)])
    assert (int(last), int(steps)) == (min(n, 1), python_collatz(n))


def test_while_body_never_runs_when_cond_is_false_at_once() -> None:
    function = Function("count", [I64, F4], [I64, F4])
    b = Builder.at_end(function.entry)
    results = build_while(
        b, function.args, lambda b, n, x: b.less(n, scalar(b, 0)), lambda b, n, x: [b.sub(n, scalar(b, 1)), b.exp(x)]
    )
    b.create("return", results)
    ir.verify(function)
    n, x = ir.evaluate(function, [np.array(3), np.ones(4, np.float32)])
    assert n == 3
    np.testing.assert_array_equal(x, np.ones(4, np.float32))


def factorial_module() -> Module:
    """fact(n) = 1 if n <= 1 else n * fact(n - 1): a call that recurses through a cond."""
    fact = Function("fact", [I64], [I64], arg_names=["n"])
    module = Module([fact])
    b = Builder.at_end(fact.entry)
    n = fact.args[0]

    def recurse(b: Builder, m: ir.Value) -> ir.Value:
        (smaller,) = build_call(b, fact, [b.sub(m, scalar(b, 1))])
        return b.mul(m, smaller)

    (y,) = build_cond(b, b.less_equal(n, scalar(b, 1)), [n], lambda b, m: scalar(b, 1), recurse)
    b.create("return", [y])
    return module


def test_call_evaluates_the_callee() -> None:
    module = factorial_module()
    ir.verify(module)
    interpreter = ir.Interpreter(module)
    assert [int(interpreter.run_function("fact", [np.array(n)])[0]) for n in range(7)] == [1, 1, 2, 6, 24, 120, 720]


def test_call_of_a_function_with_several_results() -> None:
    swap = Function("swap", [F4, I64], [I64, F4])
    b = Builder.at_end(swap.entry)
    b.create("return", [swap.args[1], swap.args[0]])
    main = Function("main", [F4], [I64, F4])
    b = Builder.at_end(main.entry)
    results = build_call(b, swap, [b.neg(main.args[0]), scalar(b, 5)])
    b.create("return", results)
    module = Module([swap, main])
    ir.verify(module)
    assert (
        str(module)
        == """\
func @swap(%0: f32[4], %1: i64[]) -> (i64[], f32[4]) {
  return %1, %0 : i64[], f32[4]
}

func @main(%0: f32[4]) -> (i64[], f32[4]) {
  %1 = neg %0 : f32[4]
  %2 = constant {value = dense<5>} : i64[]
  %3, %4 = call %1, %2 {callee = @swap} : i64[], f32[4]
  return %3, %4 : i64[], f32[4]
}
"""
    )
    k, y = ir.Interpreter(module).run_function("main", [np.arange(4, dtype=np.float32)])
    assert int(k) == 5
    np.testing.assert_array_equal(y, -np.arange(4, dtype=np.float32))


def test_region_ops_round_trip_through_text() -> None:
    module = factorial_module()
    module.add(collatz())
    text = str(module)
    parsed = ir.parse_module(text)
    ir.verify(parsed)
    assert str(parsed) == text
    assert int(ir.Interpreter(parsed).run_function("fact", [np.array(5)])[0]) == 120
    assert int(ir.Interpreter(parsed).run_function("collatz", [np.array(27)])[1]) == 111


def test_callee_attribute_accepts_a_name_or_a_function() -> None:
    fact = factorial_module()["fact"]
    call = ir.registry.get("call")
    assert call([], {"callee": "fact"}, []).callee == ir.SymbolRef("fact")
    assert call([], {"callee": fact}, []).callee == ir.SymbolRef("fact")


def test_declarations() -> None:
    for name in ("cond", "while", "call"):
        op = ir.registry.get(name)
        assert op.pure and op.differentiable, name
    assert ir.registry.get("cond").num_regions == ir.registry.get("while").num_regions == 2
    assert ir.registry.get("call").num_regions == 0


def test_out_of_memory_inside_a_region_names_the_inner_op() -> None:
    """numpy's MemoryError in a branch becomes a ResourceExhaustedError naming the matmul that
    asked for 4 TB and its line, not the cond around it."""
    module = ir.parse_module(
        "func @f(%p: bool[], %a: f32[?,1], %b: f32[1,?]) -> f32[?,?] {\n"
        "  %r = cond %p, %a, %b : f32[?,?] {\n"
        "  ^bb0(%x: f32[?,1], %y: f32[1,?]):\n"
        "    %outer = matmul %x, %y {transpose_a = false, transpose_b = false} : f32[?,?]\n"
        "    yield %outer : f32[?,?]\n"
        "  } {\n"
        "  ^bb0(%u: f32[?,1], %v: f32[1,?]):\n"
        "    %zeros = sub %u, %u : f32[?,1]\n"
        "    %other = matmul %zeros, %v {transpose_a = false, transpose_b = false} : f32[?,?]\n"
        "    yield %other : f32[?,?]\n"
        "  }\n"
        "  return %r : f32[?,?]\n"
        "}\n",
        source="big.ir",
    )
    ir.verify(module)
    column, row = np.ones((10**6, 1), np.float32), np.ones((1, 10**6), np.float32)
    with pytest.raises(ResourceExhaustedError) as info:
        ir.Interpreter(module).run_function("f", [np.array(True), column, row])
    assert str(info.value) == ("matmul 'outer' (created at big.ir:4): an array f32[1000000,1000000] needs 3.64 TiB "
                               "(4000000000000 bytes), more than numpy could allocate")
    with pytest.raises(FlowcError, match="^@f takes 3 arguments, got 2$"):
        ir.Interpreter(module).run_function("f", [column, row])


def test_recursion_deeper_than_python_allows_is_a_flowc_error() -> None:
    module = factorial_module()
    interpreter = ir.Interpreter(module)
    with pytest.raises(FlowcError, match=r"^@fact: calls nest deeper than the reference interpreter can follow"):
        interpreter.run_function("fact", [np.array(100_000)])
    assert int(interpreter.run_function("fact", [np.array(20)])[0]) == 2432902008176640000  # and it still works
