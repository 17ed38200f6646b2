"""int8, int16, uint8 and uint16 in the IR: their text form, constants, type rules (what takes them and
what refuses them, as TF1's kernels do) and the reference's meaning of them (numpy's wrap-around; sums
and products kept in the operand's dtype, as TF1's reduce_sum of uint8 is uint8)."""

from __future__ import annotations

import numpy as np
import pytest

from flowc import ir
from flowc.ir import Builder, Function, Module, TensorType, int8, int16, uint8, uint16
from flowc.ir.errors import FlowcTypeError
from flowc.ir.interpreter import evaluate

SMALL = (int8, int16, uint8, uint16)


def test_dtypes_and_text_form() -> None:
    for dtype, short, unsigned in ((int8, "i8", False), (int16, "i16", False), (uint8, "u8", True),
                                   (uint16, "u16", True)):
        assert dtype.short == short and dtype.np == np.dtype(dtype.name) and dtype.is_int
        assert dtype.is_unsigned is unsigned and dtype in ir.INTS and dtype in ir.NUMERIC
        assert str(TensorType(dtype, (2, None))) == f"{short}[2,?]"
        assert ir.as_dtype(short) is dtype and ir.as_dtype(np.dtype(dtype.name).type) is dtype
    assert not ir.int32.is_unsigned and not ir.bool_.is_unsigned and not ir.float32.is_unsigned


TEXT = """\
func @main(%x: u8[2,3], %i: i16[4], %p: f32[5,2]) -> (u8[2,3], u8[], f32[2,3], f32[4,2], i8[2,3]) {
  %c = constant {value = dense<[250, 7, 255]>} : u8[3]
  %s = add %x, %c : u8[2,3]
  %t = reduce_sum %s {axes = [0, 1], keepdims = false} : u8[]
  %f = cast %s {dtype = f32} : f32[2,3]
  %g = gather %p, %i {axis = 0} : f32[4,2]
  %n = cast %x {dtype = i8} : i8[2,3]
  return %s, %t, %f, %g, %n : u8[2,3], u8[], f32[2,3], f32[4,2], i8[2,3]
}
"""


def test_text_round_trips_and_evaluates_with_wrap_around() -> None:
    module = ir.parse_module(TEXT)
    assert ir.print_module(module) == TEXT
    ir.verify(module)
    x = np.array([[10, 0, 1], [200, 255, 128]], np.uint8)
    i = np.array([4, 0, 3, 3], np.int16)
    p = np.arange(10, dtype=np.float32).reshape(5, 2)
    s, t, f, g, n = evaluate(module["main"], [x, i, p])
    np.testing.assert_array_equal(s, np.array([[4, 7, 0], [194, 6, 127]], np.uint8))
    assert t.dtype == np.uint8 and t == (4 + 7 + 0 + 194 + 6 + 127) % 256  # TF1's: no widening to uint64
    np.testing.assert_array_equal(f, s.astype(np.float32))
    np.testing.assert_array_equal(g, p[[4, 0, 3, 3]])
    np.testing.assert_array_equal(n, np.array([[10, 0, 1], [-56, -1, -128]], np.int8))


@pytest.mark.parametrize("dtype", SMALL, ids=str)
def test_constants_keep_their_dtype(dtype) -> None:
    info = np.iinfo(dtype.np)
    values = np.array([info.min, 0, info.max], dtype.np)
    function = Function("c", [], [TensorType(dtype, (3,))])
    b = Builder.at_end(function.entry)
    b.create("return", [b.constant(values)])
    module = ir.parse_module(ir.print_module(Module([function])))
    (got,) = evaluate(module["c"], [])
    assert got.dtype == dtype.np
    np.testing.assert_array_equal(got, values)


def test_constants_of_dtypes_flowc_lacks_become_int64() -> None:
    function = Function("c", [], [TensorType(ir.int64, (2,))])
    b = Builder.at_end(function.entry)
    constant = b.constant(np.array([1, 4_000_000_000], np.uint32))
    assert constant.type == TensorType(ir.int64, (2,))


def op_type(name: str, types: list[TensorType], attributes: dict | None = None) -> TensorType:
    function = Function("f", types, [])
    return Builder.at_end(function.entry).create(name, function.args, attributes or {}).result.type


@pytest.mark.parametrize("dtype", SMALL, ids=str)
def test_ops_that_take_small_ints(dtype) -> None:
    x = TensorType(dtype, (3, 4))
    for name in ("add", "mul", "floordiv", "floormod", "maximum", "abs", "sign", "neg", "relu"):
        assert op_type(name, [x] * (2 if name in ("add", "mul", "floordiv", "floormod", "maximum") else 1)) == x
    assert op_type("less", [x, x]) == x.with_dtype(ir.bool_)
    assert op_type("reduce_sum", [x], {"axes": (1,), "keepdims": False}) == TensorType(dtype, (3,))
    assert op_type("argmax", [x], {"axis": 1, "dtype": ir.int32}) == TensorType(ir.int32, (3,))
    indices = TensorType(dtype, (5,))
    assert op_type("gather", [TensorType(ir.float32, (7, 2)), indices], {"axis": 0}) == TensorType(ir.float32, (5, 2))
    assert op_type("one_hot", [indices], {"depth": 3}) == TensorType(ir.float32, (5, 3))


@pytest.mark.parametrize("dtype", SMALL, ids=str)
def test_ops_that_refuse_small_ints(dtype) -> None:
    """TF1's MatMul takes floats, int32 and int64 only; sizes and argmax's positions are int32 or int64;
    the collectives carry what flowc_mpi.c names."""
    x = TensorType(dtype, (3, 3))
    with pytest.raises(FlowcTypeError, match=f"matmul: a must be one of .*int64, got {dtype.name}"):
        op_type("matmul", [x, x])
    with pytest.raises(FlowcTypeError, match=f"argmax: index dtype must be int32 or int64, got {dtype.name}"):
        op_type("argmax", [TensorType(ir.float32, (3, 3))], {"axis": 0, "dtype": dtype})
    with pytest.raises(FlowcTypeError, match=f"shape_of: dtype must be int32 or int64, got {dtype.name}"):
        op_type("shape_of", [x], {"dtype": dtype})
    with pytest.raises(FlowcTypeError, match=f"all_reduce: operand must be one of .*, got {dtype.name}"):
        op_type("all_reduce", [x], {"reduction": "sum"})
    with pytest.raises(FlowcTypeError, match="div: operand must be one of float16, float32, float64"):
        op_type("div", [x, x])


def test_gather_names_the_index_dtypes_it_takes() -> None:
    with pytest.raises(FlowcTypeError, match=r"indices must be integers \(int8, int16, int32, int64, uint8, uint16\)"):
        op_type("gather", [TensorType(ir.float32, (7, 2)), TensorType(ir.float32, (5,))], {"axis": 0})
