"""The row ops read_row, write_row, fill_rows (ir/ops/rows.py): the reference against numpy, the cpu
target against the reference, run-time errors on both, the in-place write, and gradients."""

from __future__ import annotations

import numpy as np
import pytest
from test_gradient_check import Arg, Case, check_case, const, normal, op

from flowc import ir
from flowc.ir.errors import FlowcTypeError, IndexOutOfRange, RuntimeShapeError
from flowc.native import NativeExecutable
from flowc.options import CompileOptions
from flowc.passes import PassManager, optimize
from flowc.passes.memory import memory_plan
from flowc.targets import target_named


def compile_cpu(text: str) -> tuple[NativeExecutable, ir.Module]:
    """The module through the shared pipeline and the cpu target's passes, built and loaded."""
    module = ir.parse_module(text, source="rows.ir")
    ir.verify(module)
    optimize(module, verify_each=True)
    target, options = target_named("cpu"), CompileOptions.from_environment()
    PassManager(target.passes(options), record=False).run(module)
    return target.load(target.build(module, options), options), module


def reference(text: str, args: list[np.ndarray]) -> list[np.ndarray]:
    module = ir.parse_module(text, source="rows.ir")
    ir.verify(module)
    return ir.evaluate(module["main"], args)


def type_text(dtype: str, shape: tuple[int | None, ...]) -> str:
    short = {"float32": "f32", "float64": "f64", "int32": "i32", "int64": "i64", "bool": "bool"}[dtype]
    return f"{short}[{','.join('?' if d is None else str(d) for d in shape)}]"


def rows_module(dtype: str, declared: tuple[int | None, ...], index_dtype: str) -> str:
    """read_row and write_row of one buffer, plus a write into a temp (written in place)."""
    buffer, row, index = type_text(dtype, declared), type_text(dtype, declared[1:]), type_text(index_dtype, ())
    flip = "logical_not" if dtype == "bool" else "neg"  # its own inverse: u is w again
    return f"""
func @main(%b: {buffer}, %i: {index}, %v: {row}) -> ({row}, {buffer}, {buffer}) {{
  %r = read_row %b, %i : {row}
  %w = write_row %b, %i, %v : {buffer}
  %c = {flip} %b : {buffer}
  %f = {flip} %v : {row}
  %t = write_row %c, %i, %f : {buffer}
  %u = {flip} %t : {buffer}
  return %r, %w, %u : {row}, {buffer}, {buffer}
}}
"""


def sample(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    return np.asarray((rng.standard_normal(shape) * 10).astype(dtype))


SHAPES = [(4, 3), (1,), (5,), (2, 3, 4), (3, 0), (1, 1), (7, 33)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
@pytest.mark.parametrize("unknown", [False, True])
def test_cpu_matches_reference_and_numpy(rng: np.random.Generator, shape: tuple[int, ...], dtype: str,
                                         unknown: bool) -> None:
    declared = tuple(None for _ in shape) if unknown else shape
    text = rows_module(dtype, declared, "int32" if unknown else "int64")
    executable, _ = compile_cpu(text)
    buffer, value = sample(rng, shape, dtype), sample(rng, shape[1:], dtype)
    for row in sorted({0, shape[0] - 1, shape[0] // 2}):
        index = np.array(row, dtype="int32" if unknown else "int64")
        written = buffer.copy()
        written[row] = value
        want = [buffer[row], written, written]
        for got, ref, expected in zip(executable([buffer, index, value]), reference(text, [buffer, index, value]),
                                      want):
            np.testing.assert_array_equal(ref, expected)
            np.testing.assert_array_equal(got, expected)
            assert got.shape == expected.shape and got.dtype == expected.dtype


def test_a_write_into_a_dead_temp_is_in_place_and_a_write_into_an_argument_is_a_copy() -> None:
    text = rows_module("float32", (4, 3), "int64")
    _, module = compile_cpu(text)
    described = memory_plan(module["main"]).describe(module["main"])
    assert "%t: f32[4,3] in view of %c" in described, described
    assert "%w: f32[4,3] in result 1" in described, described


CHAIN = """
func @main(%b: f32[?,3], %v: f32[3]) -> (f32[?,3], f32[3]) {
  %e = exp %b : f32[?,3]
  %zero = constant {value = dense<0>} : i64[]
  %two = constant {value = dense<2>} : i64[]
  %r0 = read_row %e, %two : f32[3]
  %w1 = write_row %e, %zero, %v : f32[?,3]
  %w2 = write_row %w1, %two, %r0 : f32[?,3]
  %s = reshape %w2 {shape = [-1, 3]} : f32[?,3]
  %m = mul %v, %v : f32[3]
  %w3 = write_row %s, %zero, %m : f32[?,3]
  %r1 = read_row %w2, %zero : f32[3]
  %t = tanh %w3 : f32[?,3]
  return %t, %r1 : f32[?,3], f32[3]
}
"""


def test_a_chain_of_writes_in_place_keeps_every_value(rng: np.random.Generator) -> None:
    """w1 is written in place of e (e read before, by r0); w3 writes w2's bytes only after r1 has read
    them, or it is a copy: the plan must not let a later read see a later write."""
    executable, module = compile_cpu(CHAIN)
    b, v = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    want = reference(CHAIN, [b, v])
    for got, expected in zip(executable([b, v]), want):
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    described = memory_plan(module["main"]).describe(module["main"])
    assert "%w1: f32[?,3] in view of %e" in described, described


@pytest.mark.parametrize("shape, row", [((4, 3), 4), ((4, 3), -1), ((3, 0), 3), ((0, 3), 0), ((3, 0), -2),
                                        ((5,), 7)], ids=str)
@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_a_row_out_of_range_is_an_error_naming_the_op_the_index_and_the_rows(
        rng: np.random.Generator, shape: tuple[int, ...], row: int, target: str) -> None:
    text = rows_module("float32", tuple(None for _ in shape), "int64")
    args = [sample(rng, shape, "float32"), np.array(row), sample(rng, shape[1:], "float32")]
    with pytest.raises(IndexOutOfRange) as caught:
        if target == "cpu":
            compile_cpu(text)[0](args)
        else:
            reference(text, args)
    message = str(caught.value)
    assert message.startswith("read_row 'r' (created at rows.ir:3)"), message
    assert f"row index {row} is out of range [0, {shape[0]})" in message, message


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_a_bad_write_names_write_row(rng: np.random.Generator, target: str) -> None:
    text = """
func @main(%b: f32[?,3], %i: i32[], %v: f32[3]) -> f32[?,3] {
  %w = write_row %b, %i, %v : f32[?,3]
  return %w : f32[?,3]
}
"""
    args = [np.zeros((2, 3), np.float32), np.array(2, np.int32), np.ones(3, np.float32)]
    with pytest.raises(IndexOutOfRange, match=r"^write_row 'w' \(created at rows.ir:3\): row index 2 is out of "
                                              r"range \[0, 2\)"):
        compile_cpu(text)[0](args) if target == "cpu" else reference(text, args)


def test_type_rules_reject_what_is_not_a_row() -> None:
    b = ir.Builder.at_end(ir.Function("f", [], []).entry)
    buffer = b.constant(np.zeros((4, 3), np.float32))
    with pytest.raises(FlowcTypeError, match="row index must be a scalar integer"):
        b.read_row(buffer, b.constant(np.zeros(2, np.int64)))
    with pytest.raises(FlowcTypeError, match="row index must be a scalar integer"):
        b.read_row(buffer, b.constant(np.float32(1)))
    with pytest.raises(FlowcTypeError, match="must have a row dim"):
        b.read_row(b.constant(np.float32(1)), b.constant(np.int64(0)))
    with pytest.raises(FlowcTypeError, match=r"must be a row of f32\[4,3\], got f32\[4\]"):
        b.write_row(buffer, b.constant(np.int64(0)), b.constant(np.zeros(4, np.float32)))
    with pytest.raises(FlowcTypeError, match=r"must be a row of f32\[4,3\], got f64\[3\]"):
        b.write_row(buffer, b.constant(np.int64(0)), b.constant(np.zeros(3, np.float64)))


def test_a_row_of_the_wrong_size_at_run_time_is_an_error() -> None:
    text = """
func @main(%b: f32[?,?], %v: f32[?]) -> f32[?,?] {
  %zero = constant {value = dense<0>} : i64[]
  %w = write_row %b, %zero, %v : f32[?,?]
  return %w : f32[?,?]
}
"""
    with pytest.raises(RuntimeShapeError):
        reference(text, [np.zeros((2, 3), np.float32), np.ones(4, np.float32)])


def test_fill_rows_repeats_a_row_a_counted_number_of_times() -> None:
    text = """
func @main(%n: i32[], %v: f32[2]) -> f32[?,2] {
  %r = fill_rows %n, %v : f32[?,2]
  return %r : f32[?,2]
}
"""
    v = np.array([1.5, -2.0], np.float32)
    for n in (0, 1, 3):
        (got,) = reference(text, [np.array(n, np.int32), v])
        np.testing.assert_array_equal(got, np.tile(v, (n, 1)))
    with pytest.raises(RuntimeShapeError, match="fill_rows 'r'.*count of rows must be >= 0, got -1"):
        reference(text, [np.array(-1, np.int32), v])


# -- gradients, against central differences in float64 ---------------------------------------


GRADIENT_CASES = [
    op("read_row", Arg(normal(4, 3), (None, 3)), const(np.array(3))),
    op("write_row", Arg(normal(4, 3), (None, None)), const(np.int32(0)), Arg(normal(3), (None,))),
    op("write_row", normal(5), const(np.array(4)), normal()),
    op("fill_rows", const(np.array(0)), normal(2)),
    # A row written, then read back (its value's gradient), and another row read (the buffer's).
    Case([Arg(normal(4, 2)), Arg(normal(2))], text="""
func @f(%b: f64[4,2], %v: f64[2]) -> (f64[2], f64[2], f64[4,2]) {
  %one = constant {value = dense<1>} : i64[]
  %three = constant {value = dense<3>} : i32[]
  %t = tanh %v : f64[2]
  %w = write_row %b, %one, %t : f64[4,2]
  %same = read_row %w, %one : f64[2]
  %other = read_row %w, %three : f64[2]
  %m = mul %w, %w : f64[4,2]
  return %same, %other, %m : f64[2], f64[2], f64[4,2]
}""", label="write then read"),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=lambda case: case.label)
def test_gradients_match_central_differences(case: Case, rng: np.random.Generator) -> None:
    check_case(case, rng)
