"""IR text: print(parse(text)) == text, exact constants, value names, attribute syntax, parse errors."""

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc import ir
from flowc.ir import Builder, Function, Module, ParseError, SymbolRef, TensorType, float32, int64
from flowc.ir.errors import FlowcError
from flowc.ir.interpreter import evaluate
from flowc.ir.ops.control import build_call, build_cond, build_while
from flowc.passes import PassManager, default_pipeline

F4 = TensorType(float32, (4,))

# Canonical text that uses every registered op; `//` lines are comments, which printing drops.
ALL_OPS = """\
// Every registered op, in canonical text: print(parse(text)) == text.
func @elementwise(%x: f32[4], %y: f32[4], %flags: bool[4]) -> (f32[4], bool[4], i32[4]) {
  %n = neg %x : f32[4]
  %a = abs %n : f32[4]
  %sq = square %a : f32[4]
  %r = relu %sq : f32[4]
  %e = exp %r : f32[4]
  %l = log %e : f32[4]
  %t = tanh %l : f32[4]
  %s = sigmoid %t : f32[4]
  %q = sqrt %s : f32[4]
  %rq = rsqrt %q : f32[4]
  %id = identity %rq : f32[4]
  %add = add %id, %y : f32[4]
  %sub = sub %add, %y : f32[4]
  %mul = mul %sub, %y : f32[4]
  %div = div %mul, %y : f32[4]
  %pow = pow %div, %y : f32[4]
  %max = maximum %pow, %x : f32[4]
  %min = minimum %max, %y : f32[4]
  %eq = equal %min, %x : bool[4]
  %ne = not_equal %min, %x : bool[4]
  %lt = less %min, %x : bool[4]
  %le = less_equal %min, %x : bool[4]
  %gt = greater %min, %x : bool[4]
  %ge = greater_equal %min, %x : bool[4]
  %and = logical_and %eq, %ne : bool[4]
  %or = logical_or %lt, %le : bool[4]
  %or_1 = logical_or %gt, %ge : bool[4]
  %not = logical_not %flags : bool[4]
  %both = logical_and %and, %or : bool[4]
  %any = logical_or %both, %or_1 : bool[4]
  %pick = where %not, %min, %x : f32[4]
  %i = cast %pick {dtype = i32} : i32[4]
  return %pick, %any, %i : f32[4], bool[4], i32[4]
}

func @math(%x: f32[4], %y: f32[4]) -> f32[4] {
  %s = sin %x : f32[4]
  %c = cos %s : f32[4]
  %a = atan %c : f32[4]
  %e = erf %a : f32[4]
  %l = log1p %e : f32[4]
  %m = expm1 %l : f32[4]
  %f = floor %m : f32[4]
  %ce = ceil %f : f32[4]
  %r = round %ce : f32[4]
  %sg = sign %r : f32[4]
  %d = floordiv %sg, %y : f32[4]
  %mod = floormod %d, %y : f32[4]
  return %mod : f32[4]
}

func @shapes(%x: f32[2,3], %w: f32[3,?], %idx: i64[2]) -> (f32[], f32[2], f32[2], f32[3], i64[2], i32[3], f32[6,1]) {
  %total = reduce_sum %x {axes = [0, 1], keepdims = false} : f32[]
  %mean = reduce_mean %x {axes = [1], keepdims = false} : f32[2]
  %max = reduce_max %x {axes = [-1], keepdims = false} : f32[2]
  %min = reduce_min %x {axes = [0], keepdims = false} : f32[3]
  %am = argmax %x {axis = 1, dtype = i64} : i64[2]
  %ai = argmin %x {axis = 0, dtype = i32} : i32[3]
  %flat = reshape %x {shape = [3, 2]} : f32[3,2]
  %tr = transpose %flat {perm = [1, 0]} : f32[2,3]
  %cat = concat %x, %tr {axis = 0} : f32[4,3]
  %ex = expand_dims %cat {axis = 0} : f32[1,4,3]
  %sqz = squeeze %ex {axes = [0]} : f32[4,3]
  %bc = broadcast_to %total {shape = [2, 3]} : f32[2,3]
  %sl = slice %sqz {begin = [1, 0], end = [3, none], squeeze_dims = [], strides = [1, 2]} : f32[2,2]
  %mm = matmul %x, %w {transpose_a = false, transpose_b = false} : f32[2,?]
  %known = ensure_shape %mm {shape = [2, -1]} : f32[2,?]
  %relaxed = relax_shape %known {axes = [0]} : f32[?,?]
  %mt = matmul %bc, %x {transpose_a = false, transpose_b = true} : f32[2,2]
  %g = gather %x, %idx {axis = 0} : f32[2,3]
  %oh = one_hot %idx {axis = -1, depth = 3, dtype = f32, off_value = 0.0, on_value = 1.0} : f32[2,3]
  %sa = scatter_add %x, %idx, %oh {axis = 0} : f32[2,3]
  %sum = add %g, %sa : f32[2,3]
  %col = reshape %sum {shape = [6, 1]} : f32[6,1]
  return %total, %mean, %max, %min, %am, %ai, %col : f32[], f32[2], f32[2], f32[3], i64[2], i32[3], f32[6,1]
}

func @random(%step: i64[]) -> (f32[2,2], f64[3]) {
  %u = random_uniform %step {dtype = f32, maxval = 2.5, minval = -1.0, seed = 7, shape = [2, 2]} : f32[2,2]
  %z = random_normal %step {dtype = f64, mean = 0.0, seed = 42, shape = [3], stddev = 1e-05} : f64[3]
  return %u, %z : f32[2,2], f64[3]
}

func @random_like(%step: i64[], %x: i32[?,3]) -> f64[?,3] {
  %u = random_uniform_like %step, %x {dtype = f64, maxval = 1.0, minval = 0.0, seed = 3} : f64[?,3]
  return %u : f64[?,3]
}

func @checked(%ok: bool[?]) -> bool[?] {
  %c = check %ok {message = "all ok"} : bool[?]
  return %ok : bool[?]
}

func @printed(%x: f32[?,2]) -> f32[?,2] {
  %p = print %x {key = 3, part = 0, parts = 1} : f32[?,2]
  return %x : f32[?,2]
}

// A partition's transfers (ir/ops/transfer.py): a send has no result; a recv's type is given.
func @transfers(%x: f32[?,3]) -> f32[?,3] {
  send %x {edge = 0, label = "x -> y (/job:worker/task:0 -> /job:worker/task:1)", peer = 1} : f32[?,3]
  %y = recv {edge = 1, label = "y -> z (/job:worker/task:1 -> /job:worker/task:0)", peer = 1} : f32[?,3]
  return %y : f32[?,3]
}

// Collectives over MPI ranks (ir/ops/collective.py): results of the operand's type.
func @collectives(%x: f32[?,3]) -> (f32[?,3], f32[?,3], f32[?,3]) {
  %s = all_reduce %x {reduction = "sum"} : f32[?,3]
  %b = broadcast %x {root = 0} : f32[?,3]
  %h = all_reduce_start %x {reduction = "sum"} : f32[?,3]
  %d = all_reduce_done %h : f32[?,3]
  return %s, %b, %d : f32[?,3], f32[?,3], f32[?,3]
}

// A kernel of the fusion pass: x * 0.5 + b in one loop.
func @fused(%x: f32[2,3], %b: f32[3]) -> f32[2,3] {
  %y = fusion %x, %b {kind = "loop"} : f32[2,3] {
  ^bb0(%a: f32[2,3], %c: f32[3]):
    %half = constant {value = dense<0.5>} : f32[]
    %s = mul %a, %half : f32[2,3]
    %t = add %s, %c : f32[2,3]
    yield %t : f32[2,3]
  }
  return %y : f32[2,3]
}

func @constants() -> (f32[6], f32[2,2], i32[3], bool[2], i64[], f64[0], f32[3]) {
  %special = constant {value = dense<[nan, inf, -inf, -0.0, 0.0, 0.10000000149011612]>} : f32[6]
  %thirds = constant {value = dense<[[0.3333333432674408, -2.999999805136921e-38], [3.4028234663852886e+38, 1.401298464324817e-45]]>} : f32[2,2]
  %ints = constant {value = dense<[-2147483648, 0, 2147483647]>} : i32[3]
  %bools = constant {value = dense<[true, false]>} : bool[2]
  %scalar = constant {value = dense<-9007199254740993>} : i64[]
  %empty = constant {value = dense<[]>} : f64[0]
  %splat = constant {value = dense<-0.0>} : f32[3]
  return %special, %thirds, %ints, %bools, %scalar, %empty, %splat : f32[6], f32[2,2], i32[3], bool[2], i64[], f64[0], f32[3]
}

func @rows(%b: f32[?,3], %i: i32[], %n: i64[]) -> (f32[3], f32[?,3], f32[?,3]) {
  %r = read_row %b, %i : f32[3]
  %w = write_row %b, %i, %r : f32[?,3]
  %f = fill_rows %n, %r : f32[?,3]
  return %r, %w, %f : f32[3], f32[?,3], f32[?,3]
}

func @stacks(%x: f32[?,3], %k: i32[]) -> f32[?,3] {
  %empty = constant {value = dense<[]>} : u8[0]
  %s = stack_push %empty, %x : u8[?]
  %e = stack_read %s, %k {dtype = f32, shape = [none, 3]} : f32[?,3]
  return %e : f32[?,3]
}

func @scans(%x: f32[2,3], %flags: bool[2,3]) -> (f32[2,3], f32[2,3], f32[2], bool[3], bool[2], f32[2,2], i32[2,2]) {
  %cs = cumsum %x {axis = 1, exclusive = false, reverse = true} : f32[2,3]
  %cp = cumprod %cs {axis = -2, exclusive = true, reverse = false} : f32[2,3]
  %p = reduce_prod %cp {axes = [1], keepdims = false} : f32[2]
  %any = reduce_any %flags {axes = [0], keepdims = false} : bool[3]
  %all = reduce_all %flags {axes = [1], keepdims = false} : bool[2]
  %v, %i = top_k %x {k = 2, sorted = true} : f32[2,2], i32[2,2]
  return %cs, %cp, %p, %any, %all, %v, %i : f32[2,3], f32[2,3], f32[2], bool[3], bool[2], f32[2,2], i32[2,2]
}

func @double(%x: f32[4]) -> f32[4] {
  %0 = add %x, %x : f32[4]
  return %0 : f32[4]
}

// while i < n: x = double(x) if i < 3 else x + 1; i += 1
func @loop(%n: i64[], %x: f32[4]) -> (i64[], f32[4]) {
  %zero = constant {value = dense<0>} : i64[]
  %count, %y, %out = while %zero, %n, %x : i64[], i64[], f32[4] {
  ^bb0(%k: i64[], %limit: i64[], %acc: f32[4]):
    %go = less %k, %limit : bool[]
    yield %go : bool[]
  } {
  ^bb0(%k: i64[], %limit: i64[], %acc: f32[4]):
    %three = constant {value = dense<3>} : i64[]
    %early = less %k, %three : bool[]
    %next = cond %early, %acc : f32[4] {
    ^bb0(%v: f32[4]):
      %twice = call %v {callee = @double} : f32[4]
      yield %twice : f32[4]
    } {
    ^bb0(%v: f32[4]):
      %one = constant {value = dense<1.0>} : f32[4]
      %0 = add %v, %one : f32[4]
      yield %0 : f32[4]
    }
    %one = constant {value = dense<1>} : i64[]
    %k_next = add %k, %one : i64[]
    yield %k_next, %limit, %next : i64[], i64[], f32[4]
  }
  return %count, %out : i64[], f32[4]
}

func @dims(%x: f32[?,6], %idx: i64[5,2], %flags: bool[?,3]) -> (i32[2], f32[?,3,2], f32[?,6], i64[?], f32[5,2], i64[?,2], f32[?,8]) {
  %s = shape_of %x {dtype = i32} : i32[2]
  %r = reshape_dims %x, %x {shape = [0, 3, 2], source = [1, 0, 0], source_axis = [0, 0, 0]} : f32[?,3,2]
  %one = constant {value = dense<1.0>} : f32[]
  %b = broadcast_dims %one, %x {shape = [0, 6], source = [1, 0], source_axis = [0, 0]} : f32[?,6]
  %i = iota %x {dtype = i64, shape = [0], source = [1], source_axis = [0]} : i64[?]
  %g = gather_nd %r, %idx : f32[5,2]
  %n = constant {value = dense<2>} : i64[]
  %rows = data_dim %n : i64[?,0]
  %w = where_indices %flags, %rows : i64[?,2]
  %p = pad %x {after = [0, 2], before = [1, 0], value = 1.5} : f32[?,8]
  return %s, %r, %b, %i, %g, %w, %p : i32[2], f32[?,3,2], f32[?,6], i64[?], f32[5,2], i64[?,2], f32[?,8]
}

func @patches(%x: f32[?,5,4,3], %k: f32[3,2,3,7]) -> (f32[?,3,4,18], f32[?,5,4,3], f32[?,3,4,7], f32[3,2,3,7]) {
  %p = extract_patches %x {dilations = [1, 1], pads = [1, 1, 0, 1], strides = [2, 1], window = [3, 2]} : f32[?,3,4,18]
  %f = fold_patches %p {dilations = [1, 1], pads = [1, 1, 0, 1], size = [5, 4], strides = [2, 1], window = [3, 2]} : f32[?,5,4,3]
  %c = conv2d %x, %k {dilations = [1, 1], pads = [1, 1, 0, 1], strides = [2, 1], window = [3, 2]} : f32[?,3,4,7]
  %g = conv2d_backprop_filter %x, %c {dilations = [1, 1], pads = [1, 1, 0, 1], strides = [2, 1], window = [3, 2]} : f32[3,2,3,7]
  return %p, %f, %c, %g : f32[?,3,4,18], f32[?,5,4,3], f32[?,3,4,7], f32[3,2,3,7]
}
"""


# The ops that only autodiff gives a meaning (ir/ops/autodiff.py): apart, since a request does not run.
AUTODIFF_OPS = """\
func @autodiff(%x: f32[?,3], %w: f32[3], %seed: f32[]) -> (f32[?,3], f32[3]) {
  %s = stop_gradient %w : f32[3]
  %y = mul %x, %s : f32[?,3]
  %l = reduce_sum %y {axes = [0, 1], keepdims = false} : f32[]
  %dx, %dw = gradients %l, %x, %w, %seed {num_xs = 2, num_ys = 1} : f32[?,3], f32[3]
  return %dx, %dw : f32[?,3], f32[3]
}
"""


def without_comments(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("//"))


def test_every_registered_op_is_in_the_fixture() -> None:
    used = {op.name for op in ir.parse_module(ALL_OPS + AUTODIFF_OPS).walk()}
    assert sorted(set(ir.registry.OPS) - used) == []


def test_autodiff_fixture_round_trips() -> None:
    module = ir.parse_module(AUTODIFF_OPS)
    ir.verify(module)
    assert ir.print_module(module) == AUTODIFF_OPS


def test_fixture_round_trips() -> None:
    module = ir.parse_module(ALL_OPS)
    ir.verify(module)
    assert ir.print_module(module) == without_comments(ALL_OPS)
    assert ir.parse_module(str(module)) == module


def test_fixture_evaluates() -> None:
    interpreter = ir.Interpreter(ir.parse_module(ALL_OPS))
    count, out = interpreter.run_function("loop", [np.array(5), np.ones(4, np.float32)])
    assert int(count) == 5
    np.testing.assert_array_equal(out, np.full(4, 10, np.float32))  # 2, 4, 8 by calls, then 9, 10

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    total, mean, top, low, arg_top, arg_low, column = interpreter.run_function(
        "shapes", [x, np.ones((3, 5), np.float32), np.array([1, 0])]
    )
    assert total == 15 and total.dtype == np.float32
    np.testing.assert_array_equal(mean, [1, 4])
    np.testing.assert_array_equal(top, [2, 5])
    np.testing.assert_array_equal(low, [0, 1, 2])
    np.testing.assert_array_equal(arg_top, [2, 2])
    np.testing.assert_array_equal(arg_low, np.zeros(3, np.int32))
    added = x + np.eye(3, dtype=np.float32)[[0, 1]]  # one_hot's rows [e1, e0] scattered to rows 1 and 0 of x
    np.testing.assert_array_equal(column.ravel(), x[[1, 0]].ravel() + added.ravel())


def test_fixture_constants_are_bit_exact() -> None:
    special, extremes, ints, bools, scalar, empty, splat = ir.Interpreter(ir.parse_module(ALL_OPS)).run_function(
        "constants", []
    )
    want = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 0.1], np.float32)
    np.testing.assert_array_equal(special.view(np.uint32)[1:], want.view(np.uint32)[1:])
    assert np.isnan(special[0]) and np.signbit(special[3]) and not np.signbit(special[4])
    tiny = np.nextafter(np.float32(0), np.float32(1))
    want = np.array([[1 / 3, -2.999999805136921e-38], [np.finfo(np.float32).max, tiny]], np.float32)
    np.testing.assert_array_equal(extremes.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(ints, np.array([-(2**31), 0, 2**31 - 1], np.int32))
    assert ints.dtype == np.int32 and bools.tolist() == [True, False]
    assert scalar == -(2**53) - 1 and scalar.dtype == np.int64  # not representable as a double
    assert empty.shape == (0,) and empty.dtype == np.float64
    assert np.signbit(splat).all() and splat.shape == (3,)


def test_style_guide_example() -> None:
    text = """\
func @exp_if(%flag: bool[], %x: f32[8]) -> f32[8] {
  %r = cond %flag, %x : f32[8] {
  ^bb0(%a: f32[8]):
    %e = exp %a : f32[8]
    yield %e : f32[8]
  } {
  ^bb0(%a: f32[8]):
    yield %a : f32[8]
  }
  return %r : f32[8]
}
"""
    module = ir.parse_module(text)
    ir.verify(module)
    assert str(module) == text
    x = np.linspace(-1, 1, 8, dtype=np.float32)
    np.testing.assert_array_equal(ir.evaluate(module["exp_if"], [np.array(True), x])[0], np.exp(x))
    np.testing.assert_array_equal(ir.evaluate(module["exp_if"], [np.array(False), x])[0], x)


def round_trip(module: Module) -> Module:
    text = str(module)
    parsed = ir.parse_module(text)
    assert str(parsed) == text
    return parsed


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_constants_round_trip_bit_exactly(dtype: type, rng: np.random.Generator) -> None:
    unsigned = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}[dtype]
    bits = rng.integers(0, np.iinfo(unsigned).max, size=(20, 25), dtype=unsigned, endpoint=True)
    values = bits.view(dtype)  # every kind of float: subnormals, huge, tiny, -0.0, inf
    values[0, :3] = [np.inf, -np.inf, -0.0]
    function = Function("c", [], [TensorType(ir.as_dtype(dtype), values.shape)])
    b = Builder.at_end(function.entry)
    b.create("return", [b.constant(values)])
    (parsed,) = ir.evaluate(round_trip(Module([function]))["c"], [])
    nan = np.isnan(values)
    assert (np.isnan(parsed) == nan).all()
    np.testing.assert_array_equal(parsed.view(unsigned)[~nan], values.view(unsigned)[~nan])


def test_builder_module_round_trips() -> None:
    helper = Function("scale", [F4], [F4], arg_names=["v"])
    b = Builder.at_end(helper.entry)
    b.create("return", [b.mul(helper.args[0], b.constant(np.full(4, 0.5, np.float32)))])
    main = Function("main", [F4, TensorType(int64, ())], [F4, F4], arg_names=["x", "n"])
    b = Builder.at_end(main.entry)
    x, n = main.args

    def body(b: Builder, i: ir.Value, limit: ir.Value, v: ir.Value) -> list[ir.Value]:
        early = b.less(i, b.constant(np.int64(1)))
        (w,) = build_cond(b, early, [v], lambda b, w: build_call(b, helper, [w])[0], lambda b, w: b.tanh(w))
        return [b.add(i, b.constant(np.int64(1))), limit, w]

    _, _, y = build_while(b, [b.constant(np.int64(0)), n, x], lambda b, i, limit, v: b.less(i, limit), body)
    total = b.reduce_sum(y, axes=(0,), keepdims=True)
    b.create("return", [b.sub(y, total), b.cast(b.cast(y, dtype=int64), dtype=float32)])
    module = Module([helper, main])
    ir.verify(module)
    parsed = round_trip(module)
    ir.verify(parsed)
    x_value = np.arange(4, dtype=np.float32)
    y_value = np.tanh(np.tanh(x_value * np.float32(0.5)))  # three iterations: scale, then tanh twice
    got = ir.Interpreter(parsed).run_function("main", [x_value, np.array(3)])
    np.testing.assert_allclose(got[0], y_value - y_value.sum(), rtol=1e-6)
    np.testing.assert_array_equal(got[1], y_value.astype(np.int64).astype(np.float32))


def test_function_names_that_are_not_identifiers_are_quoted() -> None:
    function = Function("my func/1", [F4], [F4])
    Builder.at_end(function.entry).create("return", [function.args[0]])
    text = ir.print_function(function)
    assert text.startswith('func @"my func/1"(%0: f32[4]) -> f32[4] {')
    assert ir.parse_function(text).name == "my func/1"


def test_value_names_are_sanitized_unique_and_numbered() -> None:
    function = Function("names", [F4, F4], [F4], arg_names=["x", "x"])
    b = Builder.at_end(function.entry)
    y = b.create("exp", [function.args[0]], result_names=["dense/MatMul:0"]).result
    z = b.exp(y)
    w = b.create("add", [z, function.args[1]], result_names=["0abc"]).result
    v = b.create("neg", [w], result_names=["x_1"]).result
    b.create("return", [b.exp(v)])
    assert (
        ir.print_function(function)
        == """\
func @names(%x: f32[4], %x_1: f32[4]) -> f32[4] {
  %dense_MatMul_0 = exp %x : f32[4]
  %0 = exp %dense_MatMul_0 : f32[4]
  %_0abc = add %0, %x_1 : f32[4]
  %x_1_1 = neg %_0abc : f32[4]
  %1 = exp %x_1_1 : f32[4]
  return %1 : f32[4]
}
"""
    )
    round_trip(Module([function]))


def test_attribute_syntax() -> None:
    attributes = {
        "s": 'say "hi"\\\n\tö',
        "n": None,
        "t": ((1, -2), ()),
        "f": 1e-05,
        "g": -0.0,
        "big": 1e300,
        "d": float32,
        "sym": SymbolRef("main"),
        "ty": TensorType(int64, (None, 3)),
        "i": -1,
        "b": True,
        "inf": float("-inf"),
        "nan": float("nan"),
        "mixed": (1.5, "a", False, None),
    }
    function = Function("attrs", [], [], attributes=attributes)
    Builder.at_end(function.entry).create("return", [])
    text = ir.print_function(function)
    assert text == (
        "func @attrs() -> () attributes {b = true, big = 1e+300, d = f32, f = 1e-05, g = -0.0, i = -1, "
        'inf = -inf, mixed = [1.5, "a", false, none], n = none, nan = nan, '
        's = "say \\"hi\\"\\\\\\n\\tö", sym = @main, t = [[1, -2], []], ty = i64[?,3]} {\n'
        "  return\n"
        "}\n"
    )
    parsed = ir.parse_function(text)
    assert str(parsed.parent) == text
    for key, value in attributes.items():
        got = parsed.attributes[key]
        if key == "nan":
            assert math.isnan(got)
        else:
            assert got == value and type(got) is type(value), key
    assert math.copysign(1, parsed.attributes["g"]) == -1


def test_comments_and_whitespace_are_ignored() -> None:
    text = """
// RUN: flowc opt %s --passes cse
// CHECK-LABEL: func @f
func @f(%x: f32[4]) -> f32[4] {   // trailing comment
  %y = exp   %x:f32[4]
  return %y : f32[4]  // CHECK: return
}
"""
    assert (
        str(ir.parse_module(text))
        == "func @f(%x: f32[4]) -> f32[4] {\n  %y = exp %x : f32[4]\n  return %y : f32[4]\n}\n"
    )


def test_unnamed_values_are_renumbered_in_order() -> None:
    text = "func @f(%7: f32[4]) -> f32[4] {\n  %3 = exp %7 : f32[4]\n  %1 = neg %3 : f32[4]\n  return %1 : f32[4]\n}\n"
    assert str(ir.parse_module(text)) == (
        "func @f(%0: f32[4]) -> f32[4] {\n  %1 = exp %0 : f32[4]\n  %2 = neg %1 : f32[4]\n  return %2 : f32[4]\n}\n"
    )


def test_sibling_regions_reuse_names_and_nested_ones_do_not_shadow() -> None:
    module = ir.parse_module(ALL_OPS)
    text = str(module)
    assert text.count("^bb0(%v: f32[4]):") == 2  # both branches of the cond in @loop
    function = Function("shadow", [TensorType(ir.bool_, ()), F4], [F4], arg_names=["p", "x"])
    b = Builder.at_end(function.entry)
    (y,) = build_cond(b, function.args[0], [function.args[1]], lambda b, a: a, lambda b, a: b.neg(a))
    b.create("return", [y])
    assert "^bb0(%x_1: f32[4]):" in ir.print_function(function)  # the block argument is not printed as %x


def test_parse_function_needs_exactly_one() -> None:
    with pytest.raises(ParseError, match="expected one function, got 0"):
        ir.parse_function("// nothing here\n")


def test_dense_takes_dtype_and_shape_from_the_result_type() -> None:
    text = (
        "func @c() -> (i32[2,2], f64[3]) {\n  %0 = constant {value = dense<[[1, 2], [3, 4]]>} : i32[2,2]\n"
        "  %1 = constant {value = dense<2.5>} : f64[3]\n  return %0, %1 : i32[2,2], f64[3]\n}\n"
    )
    matrix, vector = ir.evaluate(ir.parse_module(text)["c"], [])
    assert matrix.dtype == np.int32 and matrix.tolist() == [[1, 2], [3, 4]]
    assert vector.dtype == np.float64 and vector.tolist() == [2.5, 2.5, 2.5]


F = "func @f(%x: f32[4]) -> f32[4] {{\n{}\n}}\n"

PARSE_ERRORS = [
    (F.format("  %y = frobnicate %x : f32[4]\n  return %y : f32[4]"), "line 2, col 8: unknown op 'frobnicate'"),
    (F.format("  %y = exp %z : f32[4]\n  return %y : f32[4]"), "line 2, col 12: use of undefined value %z"),
    (F.format("  %x = exp %x : f32[4]\n  return %x : f32[4]"), "line 2, col 3: %x is already defined (line 1, col 9)"),
    ("func @f(%x: f33[4]) -> f32[4] {\n}\n", "line 1, col 13: expected a type such as f32[4], got 'f33'"),
    ("func @f(%x: f32[4) -> f32[4] {\n}\n", "line 1, col 18: expected ',' or ']', got ')'"),
    ("func f(%x: f32[4]) -> f32[4] {\n}\n", "line 1, col 6: expected a function name such as @main, got 'f'"),
    (F.format("  %y = exp %x\n  return %y : f32[4]"), "line 3, col 3: expected ':' and the result types, got 'return'"),
    (
        F.format("  %y, %z = exp %x : f32[4]\n  return %y : f32[4]"),
        "line 2, col 19: exp names 2 results but ':' gives 1 type",
    ),
    (F.format("  return %x : f32[8]"), "line 2, col 10: %x has type f32[4], but ':' says f32[8]"),
    (F.format("  return %x : f32[4], f32[4]"), "line 2, col 13: return has 1 operand but ':' gives 2 types"),
    (
        "func @f(%x: f32[4]) -> f32[4] {\n  return %x : f32[4]\n",
        "line 3, col 1: expected an op or '}', got end of input",
    ),
    (F.format("  %y = cast %x : i32[4]\n  return %x : f32[4]"), "line 2, col 8: cast: missing attribute dtype"),
    (  # defaults are for building IR in Python: text gives every attribute
        "func @f(%a: f32[2,2]) -> f32[2,2] {\n  %m = matmul %a, %a : f32[2,2]\n  return %m : f32[2,2]\n}\n",
        "line 2, col 8: matmul: missing attribute transpose_a, transpose_b",
    ),
    (
        F.format("  %y = reduce_sum %x {axes = [0]} : f32[]\n  return %y : f32[]"),
        "line 2, col 8: reduce_sum: missing attribute keepdims",
    ),
    (
        F.format("  %y = exp %x {deep = " + "[" * 5000 + "]" * 5000 + "} : f32[4]"),
        "line 2, col 87: lists nested more than 64 deep",
    ),
    (
        "func @c() -> f32[1] {\n  %c = constant {value = dense<" + "[" * 70 + "1.0" + "]" * 70 + ">} : f32[1]\n}\n",
        "line 2, col 96: lists nested more than 64 deep",
    ),
    (
        F.format("  %y = exp %x {dtype = f32} : f32[4]\n  return %y : f32[4]"),
        "line 2, col 8: exp: unknown attribute dtype; exp takes none",
    ),
    (
        F.format("  %y = reduce_sum %x {axes = [0], axes = [0]} : f32[]"),
        "line 2, col 35: attribute 'axes' is given twice",
    ),
    (
        F.format("  %y = reduce_sum %x {axes = [0], keepdims = maybe} : f32[]"),
        "line 2, col 46: expected an attribute value, got 'maybe'",
    ),
    (F.format('  %y = exp %x {note = "abc} : f32[4]'), "line 2, col 23: unterminated string"),
    (F.format("  # bad"), "line 2, col 3: unexpected character '#'"),
    (
        "func @c() -> f32[3] {\n  %c = constant {value = dense<[1.0, 2.0]>} : f32[3]\n}\n",
        "line 2, col 26: dense<...> has shape [2], the result type is f32[3]",
    ),
    (
        "func @c() -> i32[2] {\n  %c = constant {value = dense<[1.5, 2]>} : i32[2]\n}\n",
        "line 2, col 26: dense element 1.5 does not fit i32",
    ),
    (
        "func @c() -> i32[2] {\n  %c = constant {value = dense<[1, 2]>} : i32[?]\n}\n",
        "line 2, col 26: dense<...> needs a static result type, got i32[?]",
    ),
    (
        "func @c() -> i32[2] {\n  %c = constant {value = dense<[[1], [2, 3]]>} : i32[2]\n}\n",
        "line 2, col 26: dense<...> does not make an array of i32[2]: setting an array element with a sequence. "
        "The requested array has an inhomogeneous shape after 1 dimensions. The detected shape was (2,) + "
        "inhomogeneous part.",
    ),
    (
        F.format("  return %x : f32[4]") + F.format("  return %x : f32[4]"),
        "line 4, col 6: function @f is defined twice",
    ),
    (
        F.format("  %r = cond %x : f32[4] {\n  yield %x : f32[4]\n  }"),
        "line 3, col 3: expected a block label such as ^bb0, got 'yield'",
    ),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS, ids=[m.split(": ", 1)[1][:40] for _, m in PARSE_ERRORS])
def test_parse_errors_name_line_and_column(text: str, message: str) -> None:
    with pytest.raises(ParseError) as error:
        ir.parse_module(text)
    assert str(error.value) == message


def nested_conds(depth: int) -> str:
    """`depth` conds, each in the true branch of the one around it (names are unique across regions)."""
    lines = ["func @f(%p0: bool[], %x0: f32[4]) -> f32[4] {"]
    for level in range(depth):
        p = f"%p{level}"
        lines += [f"%r{level} = cond {p}, {p}, %x{level} : f32[4] {{",
                  f"^bb0(%p{level + 1}: bool[], %x{level + 1}: f32[4]):"]
    lines += [f"%e = exp %x{depth} : f32[4]", "yield %e : f32[4]"]
    for level in reversed(range(depth)):
        lines += ["} {", f"^bb0(%q{level}: bool[], %y{level}: f32[4]):", f"yield %y{level} : f32[4]", "}"]
        lines.append(f"{'yield' if level else 'return'} %r{level} : f32[4]")
    return "\n".join(lines + ["}"]) + "\n"


def test_regions_nest_up_to_the_limit_and_no_deeper() -> None:
    """64 nested regions parse, verify, print, optimize and run (no recursion limit hit in any
    of them); the 65th is a ParseError at its line rather than a RecursionError."""
    module = ir.parse_module(nested_conds(64))
    ir.verify(module)
    assert ir.parse_module(ir.print_module(module)) == module
    PassManager(default_pipeline(False), verify_each=True).run(module)
    x = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    np.testing.assert_array_equal(evaluate(module["f"], [np.array(True), x])[0], np.exp(x))
    with pytest.raises(ParseError, match="^line 130, col 39: regions nested more than 64 deep$"):
        ir.parse_module(nested_conds(65))


# A mutated valid text parses (and verifies and optimizes) or raises a FlowcError: never a Python error.
_PIECES = ["{", "}", "[", "]", "(", ")", ",", ":", "=", "->", "%x", "%0", "@f", "^bb0", "f32[4]", "i64[?]",
           "dense<[1, 2]>", "dense<1.5>", "-", "?", "1e999", "-1", "99999999999999999999", '"s"', "none", "nan",
           "matmul", "cond", "call @f", "yield", "return", "fusion", "reduce_sum", "keepdims = true", "\n", "\xff",
           "bool[]", "func", '@"q"']


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_text_parses_or_raises_flowc_errors(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([ALL_OPS, nested_conds(2)]), label="text")
    pieces = re.findall(r"\s+|\S+", re.sub(r"//[^\n]*", "", text))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        index = data.draw(st.integers(0, len(pieces) - 1), label="index")
        action = data.draw(st.sampled_from(["delete", "repeat", "replace", "insert"]), label="action")
        new = " " + data.draw(st.sampled_from(_PIECES) | st.text(max_size=3), label="piece") + " "
        if action == "delete":
            del pieces[index]
        elif action == "repeat":
            pieces.insert(index, pieces[index])
        elif action == "replace":
            pieces[index] = new
        else:
            pieces.insert(index, new)
    try:
        module = ir.parse_module("".join(pieces))
        ir.verify(module)
        ir.print_module(module)
        PassManager(default_pipeline(False), verify_each=True).run(module)
    except FlowcError:
        pass
