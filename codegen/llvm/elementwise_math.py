"""Emitters of the rounding ops, sign, and floor division (ir/ops/elementwise_math.py).

All exact. floor, ceil and round are LLVM's intrinsics (one vector instruction on x86 with SSE4.1
and on AArch64); integer division never traps: a divisor of 0 or -1 is replaced by 1 before the
sdiv, and the result for those lanes is selected afterwards (x // 0 = 0, x // -1 = -x wrapping);
uint8 and uint16 divide by udiv and urem, already floor division, with 0 for a divisor of 0.
Float floordiv and floormod follow numpy's divmod step for step, so NaN, inf and signed zeros match
the reference; frem is C's fmod.
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation
from flowc.ir.types import DType

from .types import compare_ints, constant_of, declared

Emitter = Callable[[ll.IRBuilder, Operation, list[ll.Value]], ll.Value]
MATH_OP_EMITTERS: dict[str, Emitter] = {}  # elementwise.py adds them to LLVM_EMITTERS


def emit(*names: str) -> Callable[[Emitter], Emitter]:
    def register(fn: Emitter) -> Emitter:
        MATH_OP_EMITTERS.update(dict.fromkeys(names, fn))
        return fn

    return register


def operand_dtype(op: Operation) -> DType:
    return op.operands[0].type.dtype


def intrinsic(b: ll.IRBuilder, name: str, *operands: ll.Value) -> ll.Value:
    """A call of LLVM intrinsic `name` overloaded on the operands' (one) type, scalar or vector."""
    ty = operands[0].type
    element = ty.element if isinstance(ty, ll.VectorType) else ty
    suffix = (f"v{ty.count}" if isinstance(ty, ll.VectorType) else "") + element.intrinsic_name
    return b.call(declared(b.module, f"{name}.{suffix}", ty, [ty] * len(operands)), list(operands))

ROUNDING = {"floor": "llvm.floor", "ceil": "llvm.ceil", "round": "llvm.roundeven"}


@emit(*ROUNDING)
def emit_rounding(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    return intrinsic(b, ROUNDING[op.name], operands[0])


@emit("sign")
def emit_sign(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    (x,) = operands
    zero, one, minus_one = (constant_of(x.type, v) for v in (0, 1, -1))
    if operand_dtype(op).is_float:  # +-0 and NaN are themselves; sign(-0.0) = 0 as numpy (and TF)
        signed = b.select(b.fcmp_ordered(">", x, zero), one, b.select(b.fcmp_ordered("<", x, zero), minus_one, x))
        return b.select(b.fcmp_ordered("==", x, zero), zero, signed)
    dtype = operand_dtype(op)
    below = compare_ints(b, "<", x, zero, dtype)  # never for uint8 and uint16
    return b.select(compare_ints(b, ">", x, zero, dtype), one, b.select(below, minus_one, zero))


def _int_divmod(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> tuple[ll.Value, ll.Value]:
    """Python's (x // y, x % y) on integers, without a trap: (0, 0) for y = 0, (-x, 0) for y = -1."""
    zero, one, minus_one = (constant_of(x.type, v) for v in (0, 1, -1))
    special = b.or_(b.icmp_signed("==", y, zero), b.icmp_signed("==", y, minus_one))
    divisor = b.select(special, one, y)
    quotient, remainder = b.sdiv(x, divisor), b.srem(x, divisor)
    # C truncates toward 0; floor differs where the remainder is nonzero and its sign is not y's
    adjust = b.and_(b.icmp_signed("!=", remainder, zero), b.icmp_signed("<", b.xor(remainder, y), zero))
    quotient = b.select(adjust, b.sub(quotient, one), quotient)
    remainder = b.select(adjust, b.add(remainder, y), remainder)
    quotient = b.select(special, b.select(b.icmp_signed("==", y, zero), zero, b.neg(x)), quotient)
    return quotient, b.select(special, zero, remainder)


def _copysign(b: ll.IRBuilder, magnitude: ll.Value, sign: ll.Value) -> ll.Value:
    return intrinsic(b, "llvm.copysign", magnitude, sign)


def _unsigned_divmod(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> tuple[ll.Value, ll.Value]:
    """(x // y, x % y) of uint8 or uint16: udiv and urem are already floor division; (0, 0) for y = 0."""
    zero, one = constant_of(x.type, 0), constant_of(x.type, 1)
    by_zero = b.icmp_unsigned("==", y, zero)
    divisor = b.select(by_zero, one, y)
    return (b.select(by_zero, zero, b.udiv(x, divisor)), b.select(by_zero, zero, b.urem(x, divisor)))


def _float_divmod(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> tuple[ll.Value, ll.Value]:
    """numpy's npy_divmod: the remainder from fmod, the quotient from (x - mod) / y, floored."""
    zero, one, half = (constant_of(x.type, v) for v in (0, 1, 0.5))
    mod = b.frem(x, y)
    div = b.fdiv(b.fsub(x, mod), y)
    fix = b.and_(b.fcmp_unordered("!=", mod, zero),  # NaN mod takes the fix too: NaN either way
                 b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
    mod = b.select(fix, b.fadd(mod, y), mod)
    div = b.select(fix, b.fsub(div, one), div)
    mod = b.select(b.fcmp_ordered("==", mod, zero), _copysign(b, zero, y), mod)
    floored = intrinsic(b, "llvm.floor", div)
    floored = b.select(b.fcmp_ordered(">", b.fsub(div, floored), half), b.fadd(floored, one), floored)
    quotient = b.select(b.fcmp_ordered("==", div, zero), _copysign(b, zero, b.fdiv(x, y)), floored)
    y_zero = b.fcmp_ordered("==", y, zero)  # numpy: x // 0 is x / 0, x % 0 is fmod's NaN
    return b.select(y_zero, b.fdiv(x, y), quotient), b.select(y_zero, b.frem(x, y), mod)


@emit("floordiv", "floormod")
def emit_floor_division(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    dtype = operand_dtype(op)
    divmod_ = _float_divmod if dtype.is_float else _unsigned_divmod if dtype.is_unsigned else _int_divmod
    quotient, remainder = divmod_(b, *operands)
    return quotient if op.name == "floordiv" else remainder
