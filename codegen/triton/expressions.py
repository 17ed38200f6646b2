"""Elementwise ops as Triton expressions: op name -> a function of the op and its operands' expressions.

Each entry writes the expression of one element block of the op's result from the
expressions (names, already loaded and broadcast to the block) of its operands.
The interpreter runs these on numpy and lacks libdevice, so an op whose natural
Triton form needs libdevice (tanh, pow, erf, ...) is written as a portable
formula, a HELPERS function (kernel.py), held to the same ulp bounds as the
CPU's (tests/codegen/test_triton_math.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

from flowc.ir import Operation
from flowc.ir.types import DType

Expression = Callable[[Operation, Sequence[str]], str]
EXPRESSIONS: dict[str, Expression] = {}

TRITON_DTYPES = {"float16": "tl.float16", "bfloat16": "tl.bfloat16", "float32": "tl.float32",
                 "float64": "tl.float64", "int8": "tl.int8", "int16": "tl.int16", "int32": "tl.int32",
                 "int64": "tl.int64", "uint8": "tl.uint8", "bool": "tl.int1"}


def triton_dtype(dtype: DType) -> str:
    return TRITON_DTYPES[str(dtype)]


def expression(op: Operation, operands: Sequence[str]) -> str:
    """The Triton expression of elementwise op `op` on these operand expressions."""
    return EXPRESSIONS[op.name](op, operands)


def _infix(symbol: str) -> Expression:
    return lambda op, xs: f"({xs[0]} {symbol} {xs[1]})"


def _call(function: str) -> Expression:
    return lambda op, xs: f"{function}({', '.join(xs)})"


for _name, _symbol in (("add", "+"), ("sub", "-"), ("mul", "*"), ("equal", "=="), ("not_equal", "!="),
                       ("less", "<"), ("less_equal", "<="), ("greater", ">"), ("greater_equal", ">="),
                       ("logical_and", "&"), ("logical_or", "|")):
    EXPRESSIONS[_name] = _infix(_symbol)

EXPRESSIONS["neg"] = lambda op, xs: f"(-{xs[0]})"
EXPRESSIONS["identity"] = lambda op, xs: xs[0]
EXPRESSIONS["square"] = lambda op, xs: f"({xs[0]} * {xs[0]})"
EXPRESSIONS["logical_not"] = lambda op, xs: f"({xs[0]} == 0)"
EXPRESSIONS["where"] = _call("tl.where")
EXPRESSIONS["maximum"] = _call("tl.maximum")  # NaN handling: tests hold it to numpy's (tl.maximum propagates)
EXPRESSIONS["minimum"] = _call("tl.minimum")
EXPRESSIONS["exp"] = _call("tl.exp")
EXPRESSIONS["log"] = _call("tl.log")
EXPRESSIONS["sqrt"] = _call("tl.sqrt_rn")
EXPRESSIONS["relu"] = lambda op, xs: f"tl.where({xs[0]} < 0, 0, {xs[0]})"
EXPRESSIONS["cast"] = lambda op, xs: f"{xs[0]}.to({triton_dtype(op.results[0].type.dtype)})"
