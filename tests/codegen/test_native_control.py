"""cond, while and call compiled by the CPU target, against the reference target (issue 17, native code).

Each module is IR text run on both targets, with and without the shared
pipeline, on shapes that hurt: sizes 0 and 1, odd sizes, several unknown dims
fed different sizes, loops of no turn, nested regions, and gradients (the
autodiff pass turns a while into nested whiles). Refusals name the op, the
target and the user's line.
"""

from __future__ import annotations

import numpy as np
import pytest

from flowc import ir
from flowc.codegen.llvm.control import row_read, row_view
from flowc.codegen.llvm.module import emit_module
from flowc.ir.errors import IndexOutOfRange, UnsupportedOpError
from flowc.options import CompileOptions
from flowc.passes import PassManager, default_pipeline, expand_gradients
from flowc.passes.memory import memory_plan
from flowc.targets import target_named
from test_registry import MEANINGS, MODULES


def compile_cpu(text: str, optimize: bool = True):  # type: ignore[no-untyped-def]
    """The driver's path (compile_lowered) for a module of IR text: gradients, pipeline, cpu passes, build."""
    module = ir.parse_module(text, source="model.ir")
    ir.verify(module)
    target, options = target_named("cpu"), CompileOptions.from_environment()
    expand_gradients(module, sized_by_data=target.sized_by_data)
    passes = [*(default_pipeline() if optimize else []), *target.passes(options)]
    PassManager(passes, verify_each=True, record=False).run(module)
    return target.load(target.build(module, options), options)


def reference(text: str, args: list[np.ndarray]) -> list[np.ndarray]:
    module = ir.parse_module(text)
    expand_gradients(module)
    return ir.Interpreter(module).run_function("main", args)


def assert_same(text: str, *cases: list[np.ndarray]) -> None:
    """cpu (optimized and not) == reference on every case, dtypes and shapes included."""
    for optimize in (True, False):
        executable = compile_cpu(text, optimize)
        for args in cases:
            want = reference(text, args)
            got = executable(args)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                context = f"optimize={optimize}, args {[np.shape(a) for a in args]}"
                assert g.dtype == w.dtype and g.shape == w.shape, context
                tolerance = 1e-5 if w.dtype == np.float32 else 1e-12
                np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance, err_msg=context)


def floats(rng: np.random.Generator, *shape: int, dtype: type = np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def scalar(value: object, dtype: type = np.int64) -> np.ndarray:
    return np.array(value, dtype=dtype)


# -- the modules cpu used to refuse ------------------------------------------------------------


@pytest.mark.parametrize("name", ["cond", "while", "call"])
@pytest.mark.parametrize("flag", [True, False])
def test_what_cpu_refused_before_now_runs(name: str, flag: bool, rng: np.random.Generator) -> None:
    x = floats(rng, 4)
    (y,) = compile_cpu(MODULES[name], optimize=False)([np.array(flag), x])
    np.testing.assert_allclose(y, MEANINGS[name](flag, x), rtol=1e-6)


# -- cond ----------------------------------------------------------------------------------------

COND = """\
func @main(%p: bool[], %x: f32[?,?], %y: f32[?]) -> (f32[?,?], f32[], f32[?]) {
  %r, %s, %z = cond %p, %x, %y : f32[?,?], f32[], f32[?] {
  ^bb0(%a: f32[?,?], %b: f32[?]):
    %e = exp %a : f32[?,?]
    %t = reduce_sum %b {axes = [0], keepdims = false} : f32[]
    %n = neg %b : f32[?]
    yield %e, %t, %n : f32[?,?], f32[], f32[?]
  } {
  ^bb0(%a: f32[?,?], %b: f32[?]):
    %two = constant {value = dense<2.0>} : f32[]
    yield %a, %two, %b : f32[?,?], f32[], f32[?]
  }
  return %r, %s, %z : f32[?,?], f32[], f32[?]
}
"""


@pytest.mark.parametrize("shape,size", [((0, 3), 0), ((1, 1), 1), ((5, 7), 9), ((3, 0), 2), ((33, 17), 1)])
def test_cond_with_unknown_dims_fed_different_sizes(shape, size, rng: np.random.Generator) -> None:
    """The then branch computes its results (written into the cond's results in place); the else
    branch yields its arguments and a constant (copied)."""
    x, y = floats(rng, *shape), floats(rng, size)
    assert_same(COND, [np.array(True), x, y], [np.array(False), x, y])


COND_DIFFERENT_SHAPES = """\
func @main(%p: bool[], %x: f32[?]) -> f32[?] {
  %r = cond %p, %x : f32[?] {
  ^bb0(%a: f32[?]):
    yield %a : f32[?]
  } {
  ^bb0(%a: f32[?]):
    %h = slice %a {begin = [0], end = [none], squeeze_dims = [], strides = [2]} : f32[?]
    yield %h : f32[?]
  }
  return %r : f32[?]
}
"""


def test_a_cond_whose_branches_yield_different_shapes_is_refused() -> None:
    executable = compile_cpu(COND_DIFFERENT_SHAPES)
    np.testing.assert_array_equal(executable([np.array(True), np.ones(1, np.float32)])[0], [1])  # 1 and 1[::2]: same
    with pytest.raises(UnsupportedOpError) as caught:
        executable([np.array(False), np.arange(4, dtype=np.float32)])
    message = str(caught.value)
    assert message.startswith("cond 'r' (created at model.ir:2): the cpu target does not run this cond"), message
    assert "[4] from the then branch and [2] from the else branch" in message, message


# -- while ---------------------------------------------------------------------------------------

# v <- tanh(v * w + i) while i < n; the state mixes a counter, a limit, a vector of unknown size and a
# matrix of two unknown sizes that the body only reads (yields unchanged).
WHILE = """\
func @main(%n: i64[], %v: f32[?], %w: f32[?,?]) -> (i64[], f32[?], f32[?,?]) {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %u, %ww = while %zero, %n, %v, %w : i64[], i64[], f32[?], f32[?,?] {
  ^bb0(%i: i64[], %m: i64[], %u: f32[?], %ww: f32[?,?]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %u: f32[?], %ww: f32[?,?]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %f = cast %i {dtype = f32} : f32[]
    %s = reduce_sum %ww {axes = [0], keepdims = false} : f32[?]
    %p = mul %u, %s : f32[?]
    %q = add %p, %f : f32[?]
    %t = tanh %q : f32[?]
    yield %j, %m, %t, %ww : i64[], i64[], f32[?], f32[?,?]
  }
  return %i, %u, %ww : i64[], f32[?], f32[?,?]
}
"""


@pytest.mark.parametrize("turns", [0, 1, 5])
@pytest.mark.parametrize("rows,columns", [(0, 3), (1, 1), (3, 0), (4, 7), (2, 65)])
def test_while_with_unknown_dims_and_loops_of_no_turn(turns: int, rows: int, columns: int,
                                                     rng: np.random.Generator) -> None:
    assert_same(WHILE, [scalar(turns), floats(rng, columns), floats(rng, rows, columns) * 0.3])


# Fibonacci on vectors: a' = b, b' = a + b (the body reads the old a after... and yields the old b as the
# new a), and a plain swap: the copies at the yield must not clobber a state value another copy reads.
SWAPS = """\
func @main(%n: i64[], %a: f64[?], %b: f64[?]) -> (f64[?], f64[?], f64[?], f64[?]) {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %x, %y = while %zero, %n, %a, %b : i64[], i64[], f64[?], f64[?] {
  ^bb0(%i: i64[], %m: i64[], %x: f64[?], %y: f64[?]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %x: f64[?], %y: f64[?]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %s = add %x, %y : f64[?]
    yield %j, %m, %y, %s : i64[], i64[], f64[?], f64[?]
  }
  %i2, %m2, %x2, %y2 = while %zero, %n, %a, %b : i64[], i64[], f64[?], f64[?] {
  ^bb0(%k: i64[], %l: i64[], %p: f64[?], %q: f64[?]):
    %go = less %k, %l : bool[]
    yield %go : bool[]
  } {
  ^bb0(%k: i64[], %l: i64[], %p: f64[?], %q: f64[?]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %k, %one : i64[]
    yield %j, %l, %q, %p : i64[], i64[], f64[?], f64[?]
  }
  return %x, %y, %x2, %y2 : f64[?], f64[?], f64[?], f64[?]
}
"""


@pytest.mark.parametrize("turns", [0, 1, 2, 7])
@pytest.mark.parametrize("size", [0, 1, 5, 40])
def test_state_values_that_trade_places(turns: int, size: int, rng: np.random.Generator) -> None:
    assert_same(SWAPS, [scalar(turns), floats(rng, size, dtype=np.float64), floats(rng, size, dtype=np.float64)])


# A tanh RNN over a sequence read with gather at the step index: the state is a [batch, hidden] matrix
# of unknown batch, the body a matmul kernel and its epilogue.
RNN = """\
func @main(%n: i64[], %xs: f32[?,?,5], %h0: f32[?,6], %wx: f32[5,6], %wh: f32[6,6]) -> f32[?,6] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %h, %seq, %a, %b = while %zero, %n, %h0, %xs, %wx, %wh : i64[], i64[], f32[?,6], f32[?,?,5], f32[5,6], f32[6,6] {
  ^bb0(%i: i64[], %m: i64[], %h: f32[?,6], %seq: f32[?,?,5], %a: f32[5,6], %b: f32[6,6]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %h: f32[?,6], %seq: f32[?,?,5], %a: f32[5,6], %b: f32[6,6]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %x = gather %seq, %i {axis = 0} : f32[?,5]
    %p = matmul %x, %a {transpose_a = false, transpose_b = false} : f32[?,6]
    %q = matmul %h, %b {transpose_a = false, transpose_b = false} : f32[?,6]
    %s = add %p, %q : f32[?,6]
    %t = tanh %s : f32[?,6]
    yield %j, %m, %t, %seq, %a, %b : i64[], i64[], f32[?,6], f32[?,?,5], f32[5,6], f32[6,6]
  }
  return %h : f32[?,6]
}
"""


@pytest.mark.parametrize("steps,batch", [(0, 3), (1, 1), (4, 0), (7, 5), (3, 33)])
def test_an_rnn_over_a_sequence(steps: int, batch: int, rng: np.random.Generator) -> None:
    args = [scalar(steps), floats(rng, steps, batch, 5), floats(rng, batch, 6), floats(rng, 5, 6) * 0.5,
            floats(rng, 6, 6) * 0.5]
    assert_same(RNN, args)


def test_an_rnn_state_is_written_in_place_by_its_product_epilogue(rng: np.random.Generator) -> None:
    """state_is_read_after (passes/memory.py): h = tanh(x @ Wx + h @ Wh) reads h only as its product's
    rows, so the epilogue writes each row of the new h over the old (no copy at the yield); h = h @ W
    alone would write the product over its own operand, so it keeps its copy. Both against the reference."""
    for text, in_place in ((RNN, True), (RNN.replace("%t = tanh %s", "%t = identity %q"), False)):
        executable = compile_cpu(text)
        program = executable.program
        loop = next(op for op in program.function.walk() if op.name == "while")
        yielded = loop.regions[1].entry.terminator.operands[2]
        assert (program.plan.buffer_of(yielded) == program.plan.buffer_of(loop.results[2])) is in_place
        for steps, batch in ((3, 5), (4, 33), (0, 2)):
            args = [scalar(steps), floats(rng, steps, batch, 5), floats(rng, batch, 6), floats(rng, 5, 6) * 0.5,
                    floats(rng, 6, 6) * 0.5]
            (want,), (got,) = reference(text, args), executable(args)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_state_the_body_leaves_unchanged_shares_its_initial_bytes(rng: np.random.Generator) -> None:
    """passes/memory.py: the RNN's sequence, yielded unchanged and read a row a turn, is a view of the
    loop's operand (no copy starts each run); the bound and the weights, small enough to be locals here,
    keep their stack slots (tests/codegen/test_gang_loops.py has weights too big for that). Against the
    reference, with the sequence read again after the loop."""
    text = RNN.replace("return %h : f32[?,6]", "%r = reduce_sum %seq {axes = [0], keepdims = false} : f32[?,5]\n"
                                               "  return %h, %r : f32[?,6], f32[?,5]").replace(
        "-> f32[?,6] {", "-> (f32[?,6], f32[?,5]) {")
    executable = compile_cpu(text)
    program = executable.program
    loop = next(op for op in program.function.walk() if op.name == "while")
    plan = program.plan
    assert [plan.buffer_of(r) == plan.buffer_of(v) for r, v in zip(loop.results, loop.operands)] == \
        [False, False, False, True, False, False]
    assert [plan.storage[loop.results[i]].kind for i in (1, 4, 5)] == ["local"] * 3
    for steps, batch in ((3, 5), (0, 2), (2, 33)):
        args = [scalar(steps), floats(rng, steps, batch, 5), floats(rng, batch, 6), floats(rng, 5, 6) * 0.5,
                floats(rng, 6, 6) * 0.5]
        for got, want in zip(executable(args), reference(text, args)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# The RNN, yielding its last x_t as state too: that row read keeps bytes of its own.
KEPT_ROW = """\
func @main(%n: i64[], %xs: f32[?,?,5], %h0: f32[?,6], %wx: f32[5,6], %wh: f32[6,6], %x0: f32[?,5]) -> f32[?,5] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %h, %seq, %a, %b, %last = while %zero, %n, %h0, %xs, %wx, %wh, %x0 : i64[], i64[], f32[?,6], f32[?,?,5], f32[5,6], f32[6,6], f32[?,5] {
  ^bb0(%i: i64[], %m: i64[], %h: f32[?,6], %seq: f32[?,?,5], %a: f32[5,6], %b: f32[6,6], %l: f32[?,5]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %h: f32[?,6], %seq: f32[?,?,5], %a: f32[5,6], %b: f32[6,6], %l: f32[?,5]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %x = gather %seq, %i {axis = 0} : f32[?,5]
    %p = matmul %x, %a {transpose_a = false, transpose_b = false} : f32[?,6]
    %q = matmul %h, %b {transpose_a = false, transpose_b = false} : f32[?,6]
    %s = add %p, %q : f32[?,6]
    %t = tanh %s : f32[?,6]
    yield %j, %m, %t, %seq, %a, %b, %x : i64[], i64[], f32[?,6], f32[?,?,5], f32[5,6], f32[6,6], f32[?,5]
  }
  return %last : f32[?,5]
}
"""


def test_a_row_read_of_an_unchanged_sequence_is_a_view(rng: np.random.Generator) -> None:
    """Note [a row read as a view] (codegen/llvm/control.py): the RNN's x_t is the row of the sequence
    itself, so a turn copies nothing (h is written in place, the sequence shared); a row that the body
    yields as state keeps its copy. Both against the reference, a bad step index too."""
    def row_reads(executable):  # type: ignore[no-untyped-def]
        return [row_view(op) for op in executable.program.function.walk() if op.name == "fusion" and row_read(op)]

    executable = compile_cpu(RNN)
    assert row_reads(executable) == [True]
    for steps, batch in ((3, 5), (2, 33)):
        args = [scalar(steps), floats(rng, steps, batch, 5), floats(rng, batch, 6), floats(rng, 5, 6) * 0.5,
                floats(rng, 6, 6) * 0.5]
        (want,), (got,) = reference(RNN, args), executable(args)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(IndexOutOfRange, match="gather"):
        executable([scalar(4), *args[1:]])
    kept = KEPT_ROW
    args = [*args, floats(rng, 33, 5)]
    assert row_reads(compile_cpu(kept)) == [False]
    assert_same(kept, args)


# -- nesting -------------------------------------------------------------------------------------

# A cond in a while body (double the even turns, subtract one on the odd), and a while in a cond's
# branch (add one k times, or leave x), one after the other.
NESTED = """\
func @main(%n: i64[], %x: f32[?], %p: bool[]) -> (f32[?], f32[?]) {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %v = while %zero, %n, %x : i64[], i64[], f32[?] {
  ^bb0(%i: i64[], %m: i64[], %v: f32[?]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %v: f32[?]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %f = cast %i {dtype = f64} : f64[]
    %point5 = constant {value = dense<0.5>} : f64[]
    %h = mul %f, %point5 : f64[]
    %half = cast %h {dtype = i64} : i64[]
    %back = add %half, %half : i64[]
    %even = equal %back, %i : bool[]
    %w = cond %even, %v : f32[?] {
    ^bb0(%a: f32[?]):
      %d = add %a, %a : f32[?]
      yield %d : f32[?]
    } {
    ^bb0(%a: f32[?]):
      %c = constant {value = dense<1.0>} : f32[]
      %e = sub %a, %c : f32[?]
      yield %e : f32[?]
    }
    yield %j, %m, %w : i64[], i64[], f32[?]
  }
  %r = cond %p, %n, %x : f32[?] {
  ^bb0(%k: i64[], %y: f32[?]):
    %z = constant {value = dense<0>} : i64[]
    %c1, %c2, %c3 = while %z, %k, %y : i64[], i64[], f32[?] {
    ^bb0(%s: i64[], %t: i64[], %u: f32[?]):
      %more = less %s, %t : bool[]
      yield %more : bool[]
    } {
    ^bb0(%s: i64[], %t: i64[], %u: f32[?]):
      %inc = constant {value = dense<1>} : i64[]
      %s2 = add %s, %inc : i64[]
      %f = constant {value = dense<1.0>} : f32[]
      %u2 = add %u, %f : f32[?]
      yield %s2, %t, %u2 : i64[], i64[], f32[?]
    }
    yield %c3 : f32[?]
  } {
  ^bb0(%k: i64[], %y: f32[?]):
    yield %y : f32[?]
  }
  return %v, %r : f32[?], f32[?]
}
"""


@pytest.mark.parametrize("turns", [0, 1, 4])
@pytest.mark.parametrize("size", [0, 1, 9])
def test_a_cond_in_a_while_and_a_while_in_a_cond(turns: int, size: int, rng: np.random.Generator) -> None:
    x = floats(rng, size)
    assert_same(NESTED, [scalar(turns), x, np.array(True)], [scalar(turns), x, np.array(False)])


# -- call ----------------------------------------------------------------------------------------

CALLS = """\
func @main(%x: f32[?], %n: i64[]) -> (f32[?], i64[]) {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %v = while %zero, %n, %x : i64[], i64[], f32[?] {
  ^bb0(%i: i64[], %m: i64[], %v: f32[?]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %v: f32[?]):
    %j, %w = call %i, %v {callee = @step} : i64[], f32[?]
    yield %j, %m, %w : i64[], i64[], f32[?]
  }
  %y, %k = call %v, %i {callee = @swap} : i64[], f32[?]
  %t = call %k {callee = @squash} : f32[?]
  return %t, %y : f32[?], i64[]
}

func @step(%i: i64[], %v: f32[?]) -> (i64[], f32[?]) {
  %one = constant {value = dense<1>} : i64[]
  %j = add %i, %one : i64[]
  %w = call %v {callee = @squash} : f32[?]
  return %j, %w : i64[], f32[?]
}

func @squash(%v: f32[?]) -> f32[?] {
  %t = tanh %v : f32[?]
  %u = add %t, %v : f32[?]
  return %u : f32[?]
}

func @swap(%v: f32[?], %i: i64[]) -> (i64[], f32[?]) {
  return %i, %v : i64[], f32[?]
}
"""


@pytest.mark.parametrize("turns", [0, 3])
@pytest.mark.parametrize("size", [0, 1, 6])
def test_calls_in_a_loop_and_calls_of_calls_are_inlined(turns: int, size: int, rng: np.random.Generator) -> None:
    assert_same(CALLS, [floats(rng, size), scalar(turns)])


RECURSIVE = """\
func @main(%n: i64[]) -> i64[] {
  %r = call %n {callee = @fact} : i64[]
  return %r : i64[]
}

func @fact(%n: i64[]) -> i64[] {
  %one = constant {value = dense<1>} : i64[]
  %small = less_equal %n, %one : bool[]
  %r = cond %small, %n : i64[] {
  ^bb0(%m: i64[]):
    %c = constant {value = dense<1>} : i64[]
    yield %c : i64[]
  } {
  ^bb0(%m: i64[]):
    %c = constant {value = dense<1>} : i64[]
    %k = sub %m, %c : i64[]
    %f = call %k {callee = @fact} : i64[]
    %p = mul %m, %f : i64[]
    yield %p : i64[]
  }
  return %r : i64[]
}
"""


def test_a_recursive_call_is_refused_naming_the_cycle_and_the_line() -> None:
    with pytest.raises(UnsupportedOpError) as caught:
        compile_cpu(RECURSIVE)
    message = str(caught.value)
    assert message.startswith("call 'r' (created at model.ir:2): the cpu target does not compile a recursive call "
                              "(@fact -> @fact)"), message
    assert int(reference(RECURSIVE, [scalar(5)])[0]) == 120


# -- what compiled code cannot run -----------------------------------------------------------------

GROWING = """\
func @main(%n: i64[], %x: f32[?]) -> f32[?] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %v = while %zero, %n, %x : i64[], i64[], f32[?] {
  ^bb0(%i: i64[], %m: i64[], %v: f32[?]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %v: f32[?]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %w = concat %v, %v {axis = 0} : f32[?]
    yield %j, %m, %w : i64[], i64[], f32[?]
  }
  return %v : f32[?]
}
"""


def test_a_loop_value_that_changes_shape_is_refused_before_it_runs() -> None:
    """Compiled code keeps the state in storage of one size (Note [fixed shapes in control flow]): a body
    that doubles it is refused for every fed size, naming the while, the target, the line and the shapes."""
    executable = compile_cpu(GROWING)
    for size in (0, 3):  # 0: concat of two empties is empty, the shape holds
        args = [scalar(2), np.ones(size, np.float32)]
        if size == 0:
            assert executable(args)[0].shape == (0,)
            continue
        with pytest.raises(UnsupportedOpError) as caught:
            executable(args)
        message = str(caught.value)
        assert message.startswith("while 'i' (created at model.ir:3): the cpu target does not run this while loop: "
                                  "loop value 2 enters as [3] and the body yields it as [6]"), message
    assert reference(GROWING, [scalar(2), np.ones(3, np.float32)])[0].shape == (12,)  # the reference runs it


OUT_OF_RANGE = """\
func @main(%n: i64[], %x: f32[5]) -> f32[] {
  %zero = constant {value = dense<0>} : i64[]
  %init = constant {value = dense<0.0>} : f32[]
  %i, %m, %s, %y = while %zero, %n, %init, %x : i64[], i64[], f32[], f32[5] {
  ^bb0(%i: i64[], %m: i64[], %s: f32[], %y: f32[5]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %s: f32[], %y: f32[5]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %e = gather %y, %i {axis = 0} : f32[]
    %t = add %s, %e : f32[]
    yield %j, %m, %t, %y : i64[], i64[], f32[], f32[5]
  }
  return %s : f32[]
}
"""


def test_an_index_out_of_range_in_a_loop_stops_the_run_and_names_the_gather() -> None:
    executable = compile_cpu(OUT_OF_RANGE)
    x = np.arange(5, dtype=np.float32)
    assert float(executable([scalar(5), x])[0]) == 10.0
    with pytest.raises(IndexOutOfRange, match=r"^gather 'e' \(created at model.ir:12\): index 5 is out of range"):
        executable([scalar(6), x])


# -- gradients -------------------------------------------------------------------------------------

# The gradient of a while is a while of whiles (Note [while gradients by recomputation]); of a cond, a cond.
GRADIENTS = """\
func @main(%n: i64[], %x: f64[?], %w: f64[?], %p: bool[]) -> (f64[?], f64[?], f64[?]) {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %v, %u = while %zero, %n, %x, %w : i64[], i64[], f64[?], f64[?] {
  ^bb0(%i: i64[], %m: i64[], %v: f64[?], %u: f64[?]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %v: f64[?], %u: f64[?]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %a = mul %v, %u : f64[?]
    %t = tanh %a : f64[?]
    yield %j, %m, %t, %u : i64[], i64[], f64[?], f64[?]
  }
  %c = cond %p, %v : f64[?] {
  ^bb0(%a: f64[?]):
    %e = exp %a : f64[?]
    yield %e : f64[?]
  } {
  ^bb0(%a: f64[?]):
    %s = mul %a, %a : f64[?]
    yield %s : f64[?]
  }
  %l = reduce_sum %c {axes = [0], keepdims = false} : f64[]
  %gx, %gw = gradients %l, %x, %w {num_xs = 2, num_ys = 1} : f64[?], f64[?]
  return %c, %gx, %gw : f64[?], f64[?], f64[?]
}
"""


@pytest.mark.parametrize("turns", [0, 1, 3])
@pytest.mark.parametrize("size", [0, 1, 7])
def test_gradients_through_while_and_cond(turns: int, size: int, rng: np.random.Generator) -> None:
    x, w = floats(rng, size, dtype=np.float64), floats(rng, size, dtype=np.float64)
    assert_same(GRADIENTS, [scalar(turns), x, w, np.array(True)], [scalar(turns), x, w, np.array(False)])


# -- the code and the plan -------------------------------------------------------------------------

SCALAR_LOOP = """\
func @main(%n: i64[]) -> f64[] {
  %zero = constant {value = dense<0>} : i64[]
  %acc0 = constant {value = dense<0.0>} : f64[]
  %i, %acc, %m = while %zero, %acc0, %n : i64[], f64[], i64[] {
  ^bb0(%i: i64[], %a: f64[], %k: i64[]):
    %go = less %i, %k : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %a: f64[], %k: i64[]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %f = cast %i {dtype = f64} : f64[]
    %g = mul %f, %f : f64[]
    %a2 = add %a, %g : f64[]
    yield %j, %a2, %k : i64[], f64[], i64[]
  }
  return %acc : f64[]
}
"""


def test_a_scalar_loop_keeps_its_state_on_the_stack_and_calls_its_kernels_directly() -> None:
    """Note [kernels in loops]: no thread pool round trip per turn; the state in stack slots, its update
    written in place (no copy at the yield)."""
    executable = compile_cpu(SCALAR_LOOP)
    assert float(executable([scalar(1000)])[0]) == sum(float(i * i) for i in range(1000))
    program = executable.program
    loop = next(op for op in program.function.walk() if op.name == "while")
    plan = program.plan
    assert all(plan.storage[r].kind == "local" for r in loop.results)
    body = loop.regions[1].entry
    assert all(plan.buffer_of(y) == plan.buffer_of(r) for y, r in zip(body.terminator.operands, loop.results))
    text = str(emit_module(program))
    assert "flowc_parallel_for" not in text.split("while.body")[1].split("while.done")[0]
    assert "llvm.memcpy" not in text.split("while.cond")[1]


def test_values_used_in_a_loop_are_never_reused_while_it_runs() -> None:
    """Every temp live at a step of a loop (an operand of the while, the state) keeps its bytes from
    every temp of the loop's regions."""
    executable = compile_cpu(RNN, optimize=False)
    plan, function = executable.program.plan, executable.program.function
    loop = next(op for op in function.walk() if op.name == "while")
    inside = {r for op in loop.walk() if op is not loop and op.name == "fusion" for r in op.results}
    outside = [v for v in [*loop.operands, *loop.results] if plan.storage.get(v, None) and
               plan.storage[v].kind == "temp"]
    for value in outside:
        start, end = plan.lifetimes[plan.storage[value].index]
        for inner in inside:
            if plan.storage[plan.root(inner)].kind != "temp" or plan.root(inner) in outside:
                continue
            inner_start, inner_end = plan.lifetimes[plan.storage[plan.root(inner)].index]
            assert start <= inner_start and inner_end <= end, (value, inner)


def test_region_values_share_the_dim_slots_of_the_values_they_are_tied_to() -> None:
    """The RNN's unknown dims are the sequence's two and the state's batch: every value of its loop (the
    state, the gathered step, the products) reads one of those three slots (Note [unknown dims in a
    kernel]; a gather ties no dims, so the state's batch is a slot apart from the sequence's)."""
    executable = compile_cpu(RNN)
    dims = executable.program.dims
    assert len(dims) == 3, dims.slots
    h0, xs = executable.program.function.args[2], executable.program.function.args[1]
    loop = next(op for op in executable.program.function.walk() if op.name == "while")
    batch = {slot for (value, axis), slot in dims.slots.items() if value.type.rank == 2 and axis == 0}
    assert batch == {dims.slots[h0, 0]}
    sequence = {slot for (value, axis), slot in dims.slots.items() if value.type.rank == 3}
    assert sequence == {dims.slots[xs, 0], dims.slots[xs, 1]}
    assert dims.slots[loop.results[2], 0] == dims.slots[h0, 0]


def test_loop_kernels_stay_with_the_entry_point_when_the_module_is_split(monkeypatch: pytest.MonkeyPatch,
                                                                          rng: np.random.Generator) -> None:
    """Note [kernels in loops]: split.py moves `kernel{N}_*` functions into modules of their own, never a
    region's kernels, which the entry point calls directly."""
    from flowc.codegen.llvm import compile as llvm_compile
    from flowc.codegen.llvm.split import split_module

    monkeypatch.setattr(llvm_compile, "SPLIT_CHARS", 0)
    text = RNN.replace("return %h : f32[?,6]", "%e = exp %h0 : f32[?,6]\n  %f = add %h, %e : f32[?,6]\n"
                       "  %g = transpose %f {perm = [1, 0]} : f32[6,?]\n  %k = exp %g : f32[6,?]\n"
                       "  return %k : f32[6,?]").replace("-> f32[?,6] {", "-> f32[6,?] {", 1)
    executable = compile_cpu(text)
    parts = split_module(str(emit_module(executable.program)))
    assert parts is not None and len(parts) > 2
    assert 'define internal void @"local' in parts[0].text and all('@"local' not in p.text for p in parts[1:])
    args = [scalar(3), floats(rng, 3, 4, 5), floats(rng, 4, 6), floats(rng, 5, 6), floats(rng, 6, 6)]
    np.testing.assert_allclose(executable(args)[0], reference(text, args)[0], rtol=1e-5, atol=1e-6)


# -- random loops: the memory plan's in-place writes against the reference ------------------------


def random_loop(seed: int, static: bool) -> ir.Module:
    """A while loop over a counter and K vectors (f64[3]: stack slots; f64[?]: arena temps) whose body
    computes each new vector from random old ones: kept, swapped, summed, scaled, squashed, shifted by
    a reduction of another (a kernel of its own), or chosen by a cond; the yields in random order."""
    from flowc.ir import Builder, Function, TensorType, float64, int64
    from flowc.ir.ops.control import build_cond, build_while

    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 5))
    vector = TensorType(float64, (3,) if static else (None,))
    counter = TensorType(int64, ())
    function = Function("main", [counter, *[vector] * count], [vector] * count)
    b = Builder.at_end(function.entry, loc="random.ir:1")
    n, *vectors = function.args

    def body(inner: Builder, i: ir.Value, limit: ir.Value, *old: ir.Value) -> list[ir.Value]:
        made: list[ir.Value] = []
        for _ in range(count):
            a, c = (old[int(k)] for k in rng.integers(0, count, 2))
            kind = int(rng.integers(0, 7))
            if kind == 0:
                made.append(a)
            elif kind == 1:
                made.append(inner.add(a, c))
            elif kind == 2:
                made.append(inner.add(inner.mul(a, inner.splat(0.5, vector)), c))
            elif kind == 3:
                made.append(inner.tanh(a))
            elif kind == 4:
                total = inner.reduce_sum(c, axes=(0,), keepdims=True)
                made.append(inner.sub(a, inner.mul(total, inner.splat(0.25, TensorType(float64, (1,))))))
            elif kind == 5:
                flag = inner.less(inner.reduce_sum(a, axes=(0,), keepdims=False), inner.constant(0.0, float64))
                made.append(build_cond(inner, flag, [a, c], lambda t, x, y: t.sub(x, y), lambda e, x, y: y)[0])
            else:
                made.append(made[-1] if made else a)
        order = rng.permutation(count)
        return [inner.add(i, inner.constant(np.int64(1))), limit, *[made[int(k)] for k in order]]

    zero = b.constant(np.int64(0))
    results = build_while(b, [zero, n, *vectors], lambda inner, i, limit, *rest: inner.less(i, limit), body)
    b.create("return", results[2:])
    return ir.Module([function])


@pytest.mark.parametrize("static", [True, False], ids=["stack", "arena"])
@pytest.mark.parametrize("seed", range(12))
def test_random_loops_match_the_reference(seed: int, static: bool) -> None:
    module = random_loop(seed, static)
    count = len(module["main"].args) - 1
    rng = np.random.default_rng(100 + seed)
    sizes = [3] if static else [0, 1, 3, 8]
    assert_same(str(module), *[[scalar(turns), *[rng.standard_normal(size) for _ in range(count)]]
                               for turns in (0, 1, 4) for size in sizes])


# -- LICM on cpu -----------------------------------------------------------------------------------

INVARIANT = """\
func @main(%n: i64[], %v0: f32[?,?], %w0: f32[?,?]) -> f32[?,?] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %v, %w = while %zero, %n, %v0, %w0 : i64[], i64[], f32[?,?], f32[?,?] {
  ^bb0(%i: i64[], %m: i64[], %v: f32[?,?], %w: f32[?,?]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %v: f32[?,?], %w: f32[?,?]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %ww = matmul %w, %w {transpose_a = false, transpose_b = false} : f32[?,?]
    %s = tanh %ww : f32[?,?]
    %p = matmul %v, %s {transpose_a = false, transpose_b = false} : f32[?,?]
    yield %j, %m, %p, %w : i64[], i64[], f32[?,?], f32[?,?]
  }
  return %v : f32[?,?]
}
"""


@pytest.mark.parametrize("turns", [0, 1, 3])
@pytest.mark.parametrize("rows,size", [(0, 3), (1, 1), (2, 0), (5, 4)])
def test_invariant_code_leaves_the_loop_and_computes_the_same(turns: int, rows: int, size: int,
                                                             rng: np.random.Generator) -> None:
    """tanh(w @ w) runs once, before the loop (passes/licm.py), as a loop value the body reads."""
    executable = compile_cpu(INVARIANT)
    loop = next(op for op in executable.program.function.walk() if op.name == "while")
    inside = [inner.name for op in loop.regions[1].walk() if op.name == "fusion" for inner in op.regions[0].walk()]
    assert inside.count("matmul") == 1 and "tanh" not in inside, inside
    assert len(loop.operands) == 5  # the hoisted value is loop state
    assert_same(INVARIANT, [scalar(turns), floats(rng, rows, size), floats(rng, size, size) * 0.5])


# -- a row read (Note [a row read] in codegen/llvm/control.py) ---------------------------------------

ROWS = """\
func @main(%k: i32[], %x: f64[?,?], %flags: bool[?,2]) -> (f64[?], bool[2], f64[?]) {
  %r = gather %x, %k {axis = 0} : f64[?]
  %f = gather %flags, %k {axis = 0} : bool[2]
  %s = tanh %r : f64[?]
  return %r, %f, %s : f64[?], bool[2], f64[?]
}
"""


@pytest.mark.parametrize("rows,columns", [(1, 0), (1, 1), (4, 7), (9, 33)])
def test_a_row_read_copies_the_row_and_checks_its_index(rows: int, columns: int, rng: np.random.Generator) -> None:
    x = floats(rng, rows, columns, dtype=np.float64)
    flags = rng.standard_normal((rows, 2)) > 0
    for k in {0, rows - 1, rows // 2}:
        assert_same(ROWS, [scalar(k, np.int32), x, flags])
    executable = compile_cpu(ROWS)
    for bad in (-1, rows):
        with pytest.raises(IndexOutOfRange, match=rf"^gather 'r' \(created at model.ir:2\): index {bad} is out of range"):
            executable([scalar(bad, np.int32), x, flags])
