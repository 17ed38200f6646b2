"""float16 in the IR: its text form, type rules, constants, casts and the reference's meaning of it
(numpy float16, each op rounded to half; sums, products and matmul accumulated in float32)."""

from __future__ import annotations

import numpy as np
import pytest

from flowc import ir
from flowc.ir import Builder, Function, Module, TensorType, float16, float32
from flowc.ir.errors import FlowcTypeError
from flowc.ir.interpreter import evaluate

H3 = TensorType(float16, (3,))


def test_dtype_and_text_form() -> None:
    assert float16.short == "f16" and float16.np == np.float16 and float16.is_float and float16.itemsize == 2
    assert float16 in ir.FLOATS and float16 in ir.DTYPES
    assert str(TensorType(float16, (2, 3))) == "f16[2,3]"
    for name in ("float16", "f16", "half", np.float16, np.dtype("float16")):
        assert ir.as_dtype(name) is float16


TEXT = """\
func @main(%x: f16[2,3], %y: f32[3]) -> (f16[2,3], f32[2,3], f16[]) {
  %c = constant {value = dense<[0.5, 0.0999755859375, -6.0]>} : f16[3]
  %e = exp %x : f16[2,3]
  %s = add %e, %c : f16[2,3]
  %w = cast %s {dtype = f32} : f32[2,3]
  %p = mul %w, %y : f32[2,3]
  %t = reduce_sum %s {axes = [0, 1], keepdims = false} : f16[]
  return %s, %p, %t : f16[2,3], f32[2,3], f16[]
}
"""


def test_text_round_trips_and_evaluates_in_half() -> None:
    module = ir.parse_module(TEXT)
    assert ir.print_module(module) == TEXT
    ir.verify(module)
    x = np.array([[0.1, 1.0, 2.0], [-1.0, 0.0, 3.5]], np.float16)
    y = np.array([1.0, 2.0, 3.0], np.float32)
    s, p, t = evaluate(module["main"], [x, y])
    c = np.array([0.5, 0.0999755859375, -6.0], np.float16)
    assert s.dtype == np.float16 and p.dtype == np.float32 and t.dtype == np.float16
    np.testing.assert_array_equal(s, np.exp(x) + c)
    np.testing.assert_array_equal(p, (np.exp(x) + c).astype(np.float32) * y)
    assert t == np.sum(s, dtype=np.float32).astype(np.float16)


def test_constants_of_half_are_exact() -> None:
    values = np.arange(-30000, 30000, 7, dtype=np.int64).astype(np.float16)
    function = Function("c", [], [TensorType(float16, values.shape)])
    b = Builder.at_end(function.entry)
    b.create("return", [b.constant(values)])
    module = ir.parse_module(ir.print_module(Module([function])))
    (got,) = evaluate(module["c"], [])
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.view(np.uint16), values.view(np.uint16))


@pytest.mark.parametrize("op", ["add", "div", "pow", "maximum"])
def test_binary_ops_take_half_and_refuse_mixing(op: str) -> None:
    function = Function("f", [H3, TensorType(float32, (3,))], [H3])
    b = Builder.at_end(function.entry)
    x, y = function.args
    assert b.create(op, [x, x]).result.type == H3
    with pytest.raises(FlowcTypeError):
        b.create(op, [x, y])


def test_random_ops_refuse_half() -> None:
    function = Function("f", [TensorType(ir.int64, ())], [H3])
    b = Builder.at_end(function.entry)
    with pytest.raises(FlowcTypeError, match="float32 or float64"):
        b.create("random_uniform", [function.args[0]], {"shape": (3,), "dtype": float16, "seed": 1})
