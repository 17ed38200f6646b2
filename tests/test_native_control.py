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
    expand_gradients(module)
    target, options = target_named("cpu"), CompileOptions.from_environment()
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
