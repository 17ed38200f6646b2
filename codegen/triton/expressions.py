"""Elementwise ops as Triton expressions: op name -> a function of the op and its operands' expressions.

Each entry writes the expression of one element block of the op's result from the
expressions (names, already loaded and broadcast to the block) of its operands.
The interpreter runs these on numpy and lacks libdevice, so an op whose natural
Triton form needs libdevice (tanh, pow, erf, ...) is written as a portable
formula, a HELPERS function (kernel.py): math.py's transcendentals, held to the
CPU's ulp bounds, and division.py's exact rounding and floor division. Every
other op is exact and numpy's, signed zeros and NaN included; where Triton's
own float32 form is approximate on the GPU (`/`, tl.sqrt, tl.floor's flushing)
a correctly rounded one is used (tests/codegen/test_triton_math.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

from flowc.ir import Operation
from flowc.ir.types import DType

from .division import FMOD_STEPS
from .math import FLOAT64_FUNCTIONS

Expression = Callable[[Operation, Sequence[str]], str]
EXPRESSIONS: dict[str, Expression] = {}

TRITON_DTYPES = {"float16": "tl.float16", "bfloat16": "tl.bfloat16", "float32": "tl.float32",
                 "float64": "tl.float64", "int8": "tl.int8", "int16": "tl.int16", "int32": "tl.int32",
                 "int64": "tl.int64", "uint8": "tl.uint8", "bool": "tl.int1"}
TRITON_DTYPES |= {"uint16": "tl.uint16"}


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

EXPRESSIONS["neg"] = lambda op, xs: f"(-{xs[0]})"  # a float's is fneg: -(+0.0) is -0.0
EXPRESSIONS["identity"] = lambda op, xs: xs[0]
EXPRESSIONS["square"] = lambda op, xs: f"({xs[0]} * {xs[0]})"
EXPRESSIONS["abs"] = _call("tl.abs")  # the most negative integer stays itself, as numpy's
EXPRESSIONS["logical_not"] = lambda op, xs: f"({xs[0]} == 0)"
EXPRESSIONS["where"] = _call("tl.where")
EXPRESSIONS["relu"] = lambda op, xs: f"tl.where({xs[0]} < 0, 0, {xs[0]}).to({_dtype(op)})"  # NaN and -0.0 stay


def _operand_dtype(op: Operation) -> DType:
    return op.operands[0].type.dtype


def _dtype(op: Operation) -> str:
    return triton_dtype(op.results[0].type.dtype)


def _extreme(compare: str) -> Expression:
    """numpy's maximum / minimum: x where x wins or is NaN, else y (so a NaN y too; of +-0, y)."""

    def text(op: Operation, xs: Sequence[str]) -> str:
        x, y = xs
        if not _operand_dtype(op).is_float:
            return f"tl.{'maximum' if compare == '>' else 'minimum'}({x}, {y})"
        # nested rather than `|`: the interpreter cannot or a splat constant's 0-d comparison into a block
        return f"tl.where({x} != {x}, {x}, tl.where({x} {compare} {y}, {x}, {y}))"

    return text


EXPRESSIONS["maximum"] = _extreme(">")
EXPRESSIONS["minimum"] = _extreme("<")


def _by_width(float32: str, float64: str) -> Expression:
    """A correctly rounded Triton function per float width: float32's plain forms are approximate on the GPU;
    float16 runs float64's on the widened operands and rounds once (exact enough for sqrt: 53 bits > 2 * 11 + 2)."""

    def text(op: Operation, xs: Sequence[str]) -> str:
        dtype = str(_operand_dtype(op))
        if dtype == "float16":
            return f"{float64}({', '.join(f'{x}.to(tl.float64)' for x in xs)}).to(tl.float16)"
        return f"{float32 if dtype == 'float32' else float64}({', '.join(xs)})"

    return text


EXPRESSIONS["div"] = _call("fc_div")
EXPRESSIONS["sqrt"] = _by_width("tl.sqrt_rn", "tl.sqrt")  # float64's tl.sqrt is sqrt.rn
# numpy's 1 / sqrt(x), each step rounded in x's dtype
EXPRESSIONS["rsqrt"] = lambda op, xs: f"fc_div(tl.full([], 1.0, {_dtype(op)}), {EXPRESSIONS['sqrt'](op, xs)})"


def _in_float64(function: str) -> Expression:
    """A float64 function (math.py, division.py, tl.floor); a float32 or float16 operand widened, the result
    rounded once to the operand's dtype (numpy's float16 functions run in float32 and round: within an ulp)."""

    def text(op: Operation, xs: Sequence[str]) -> str:
        dtype = _operand_dtype(op)
        if str(dtype) == "float64":
            return f"{function}({', '.join(xs)})"
        return f"{function}({', '.join(f'{x}.to(tl.float64)' for x in xs)}).to({triton_dtype(dtype)})"

    return text


for _name, _function in FLOAT64_FUNCTIONS.items():
    EXPRESSIONS[_name] = _in_float64(_function)
EXPRESSIONS["round"] = _in_float64("fc_rint")  # exact
EXPRESSIONS["floor"] = _in_float64("tl.floor")  # exact; float32's own floor flushes subnormals on the GPU
EXPRESSIONS["ceil"] = _in_float64("tl.ceil")


def _sign(op: Operation, xs: Sequence[str]) -> str:
    x = xs[0]
    if _operand_dtype(op).is_float:  # sign(-0.0) = +0.0 and NaN stays, as numpy's
        return f"tl.where({x} > 0, 1.0, tl.where({x} < 0, -1.0, tl.where({x} == 0, 0.0, {x}))).to({_dtype(op)})"
    return f"tl.where({x} > 0, 1, tl.where({x} < 0, -1, 0)).to({_dtype(op)})"


EXPRESSIONS["sign"] = _sign


def _floor_division(part: int) -> Expression:
    """floordiv (part 0) and floormod (part 1): Python's on integers; numpy's divmod on floats, from an
    exact fmod computed in float64 (a float32's fmod is a float32, so rounding it back is exact)."""

    def text(op: Operation, xs: Sequence[str]) -> str:
        x, y = xs
        dtype = _operand_dtype(op)
        if dtype.is_unsigned:
            return f"fc_uint_divmod({x}, {y})[{part}]"
        if not dtype.is_float:
            return f"fc_int_divmod({x}, {y})[{part}]"
        return f"fc_float_divmod({x}, {y}, {_fmod(x, y, str(dtype))}, fc_div({x}, {y}))[{part}]"

    return text


def _fmod(x: str, y: str, dtype: str) -> str:
    if dtype == "float64":
        return f"fc_fmod({x}, {y}, {FMOD_STEPS[dtype]})"
    return f"fc_fmod({x}.to(tl.float64), {y}.to(tl.float64), {FMOD_STEPS[dtype]}).to(tl.{dtype})"


EXPRESSIONS["floordiv"] = _floor_division(0)
EXPRESSIONS["floormod"] = _floor_division(1)


def _cast(op: Operation, xs: Sequence[str]) -> str:
    """numpy's astype: to bool is x != 0 (NaN is true), from bool 0 or 1; float to int truncates
    (out of range and NaN are undefined, as in C); the rest converts, rounding to nearest."""
    x, source, target = xs[0], _operand_dtype(op), op.results[0].type.dtype
    if source == target:
        return x
    if target.is_bool:
        return f"({x} != 0)"
    if source.is_bool:
        return f"tl.where({x}, 1, 0).to({triton_dtype(target)})"
    if source.is_float and target.is_int and target.itemsize < 4:  # Note [float to small integers]
        return f"{x}.to(tl.int32).to({triton_dtype(target)})"
    return f"{x}.to({triton_dtype(target)})"


EXPRESSIONS["cast"] = _cast
