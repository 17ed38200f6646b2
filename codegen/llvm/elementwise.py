"""Scalar emitters of the elementwise ops, found by op name.

Values inside a kernel are held in their compute type: float, double, i8,
i16, i32, i64 (uint8 and uint16 too: Note [unsigned integers] in types.py), and i1
for bool (stored as one byte, as numpy does). Every emitter is
IEEE-exact and follows the numpy reference where C and numpy differ: NaN
propagation in maximum/minimum, INT_MIN for float-to-int casts of NaN or
out-of-range values (what numpy gives on x86), `relu(-0.0) == -0.0`.
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation
from flowc.ir.types import DType, int32

from .elementwise_math import MATH_OP_EMITTERS
from .mathlib import MATH_EMITTERS as _EXP_LOG_EMITTERS
from .mathlib_special import SPECIAL_EMITTERS
from .types import F32, I32, compare_ints, compute_type, constant_of, declared, extend_int, int_to_float, like

Emitter = Callable[[ll.IRBuilder, Operation, list[ll.Value]], ll.Value]
LLVM_EMITTERS: dict[str, Emitter] = dict(MATH_OP_EMITTERS)  # floor, ceil, round, sign, floordiv, floormod
MATH_EMITTERS = {**_EXP_LOG_EMITTERS, **SPECIAL_EMITTERS}  # the vectorizable approximations, by op name

LLVM_BINARY = {
    ("add", "float"): "fadd", ("add", "int"): "add",
    ("sub", "float"): "fsub", ("sub", "int"): "sub",
    ("mul", "float"): "fmul", ("mul", "int"): "mul",
    ("div", "float"): "fdiv",
    ("logical_and", "bool"): "and_", ("logical_or", "bool"): "or_",
}
FLOAT_COMPARE = {"equal": "==", "not_equal": "!=", "less": "<", "less_equal": "<=", "greater": ">",
                 "greater_equal": ">="}
INT_COMPARE = FLOAT_COMPARE


def emit(*names: str) -> Callable[[Emitter], Emitter]:
    def register(fn: Emitter) -> Emitter:
        for name in names:
            LLVM_EMITTERS[name] = fn
        return fn

    return register


def operand_dtype(op: Operation) -> DType:
    return op.operands[0].type.dtype


FAST_MATH_FLAGS = ("fast",)


class KernelBuilder(ll.IRBuilder):
    """A kernel's IRBuilder, which knows whether the program was built with fast math (float_flags)."""

    def __init__(self, block: ll.Block, fast_math: bool = False):
        super().__init__(block)
        self.fast_math = fast_math


def float_flags(b: ll.IRBuilder) -> tuple[str, ...]:
    """LLVM's fast-math flags when the Session asked for fast math, else none (IEEE).

    Only the graph's own arithmetic (add, sub, mul, div, square, the combines
    of reductions) gets them; the approximations in mathlib.py never do, since
    their error bounds rest on exact IEEE rounding (two-sum steps)."""
    return FAST_MATH_FLAGS if isinstance(b, KernelBuilder) and b.fast_math else ()


def intrinsic(b: ll.IRBuilder, name: str, x: ll.Value, *more: ll.Value) -> ll.Value:
    if isinstance(x.type, ll.VectorType):  # llvmlite's declare_intrinsic names scalar overloads only
        element = x.type.element
        suffix = f"v{x.type.count}" + (element.intrinsic_name if hasattr(element, "intrinsic_name") else str(element))
        fn = declared(b.module, f"{name}.{suffix}", x.type, [x.type, *(v.type for v in more)])
    else:
        fn = b.module.declare_intrinsic(name, [x.type])
    return b.call(fn, [x, *more])


@emit(*{name for name, _ in LLVM_BINARY})
def emit_binary(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    kind = operand_dtype(op).kind
    method = LLVM_BINARY[op.name, kind]
    if kind == "float":
        return getattr(b, method)(*operands, flags=float_flags(b))
    return getattr(b, method)(*operands)


@emit(*FLOAT_COMPARE)
def emit_compare(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    kind = operand_dtype(op).kind
    symbol = FLOAT_COMPARE[op.name]
    if kind == "float":
        # numpy: every comparison with NaN is false, except != which is true.
        return (b.fcmp_unordered if op.name == "not_equal" else b.fcmp_ordered)(symbol, *operands)
    return compare_ints(b, symbol, *operands, operand_dtype(op))


@emit("maximum", "minimum")
def emit_min_max(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    x, y = operands
    symbol = ">" if op.name == "maximum" else "<"
    if operand_dtype(op).kind != "float":
        return b.select(compare_ints(b, symbol, x, y, operand_dtype(op)), x, y)
    # numpy: (x > y or isnan(x)) ? x : y  -- NaN from either side wins; max(-0.0, 0.0) is the second.
    take_x = b.or_(b.fcmp_ordered(symbol, x, y), b.fcmp_unordered("uno", x, x))
    return b.select(take_x, x, y)


@emit("neg")
def emit_neg(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    (x,) = operands
    return b.fneg(x) if operand_dtype(op).is_float else b.neg(x)


@emit("abs")
def emit_abs(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    (x,) = operands
    if operand_dtype(op).is_float:
        return intrinsic(b, "llvm.fabs", x)
    # never below 0 when unsigned: abs is x; abs(-128) of int8 wraps to -128, as numpy's
    return b.select(compare_ints(b, "<", x, constant_of(x.type, 0), operand_dtype(op)), b.neg(x), x)


@emit("square")
def emit_square(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    (x,) = operands
    return b.fmul(x, x, flags=float_flags(b)) if operand_dtype(op).is_float else b.mul(x, x)


@emit("relu")
def emit_relu(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    (x,) = operands
    zero = constant_of(x.type, 0)
    dtype = operand_dtype(op)
    below = b.fcmp_ordered("<", x, zero) if dtype.is_float else compare_ints(b, "<", x, zero, dtype)
    return b.select(below, zero, x)  # NaN and -0.0 pass through, as in the reference


@emit("sqrt")
def emit_sqrt(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    return intrinsic(b, "llvm.sqrt", operands[0])


@emit(*MATH_EMITTERS)
def emit_math(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    """A call of the vectorizable approximation (mathlib.py), emitted once per module as an
    internal alwaysinline function: LLVM inlines it before the vectorizer runs, and a graph with
    25 tanh emits, prints and parses one body instead of 25, and a cold compile is that much shorter."""
    return b.call(_math_function(b.module, op.name, operands[0].type, len(operands)), operands)


def _math_function(module: ll.Module, name: str, type_: ll.Type, arity: int) -> ll.Function:
    symbol = f"flowc.{name}.{type_}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    fn = ll.Function(module, ll.FunctionType(type_, [type_] * arity), name=symbol)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    body = ll.IRBuilder(fn.append_basic_block("entry"))
    body.ret(MATH_EMITTERS[name](body, *fn.args))
    return fn


@emit("logical_not")
def emit_not(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    return b.not_(operands[0])


@emit("identity")
def emit_identity(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    return operands[0]


@emit("where")
def emit_where(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    return b.select(*operands)


@emit("cast")
def emit_cast(b: ll.IRBuilder, op: Operation, operands: list[ll.Value]) -> ll.Value:
    (x,) = operands
    source, target = operand_dtype(op), op.result.type.dtype
    to = like(x.type, compute_type(target))
    if source == target:
        return x
    if target.is_bool:
        zero = constant_of(x.type, 0)
        return b.fcmp_unordered("!=", x, zero) if source.is_float else b.icmp_unsigned("!=", x, zero)
    if source.is_bool:
        return b.uitofp(x, to) if target.is_float else b.zext(x, to)
    if source.is_float and target.is_float:
        if target.name == "float16" and source.name == "float64":
            return _rounding_to_odd(b, x)
        if x.type == to:
            return x  # float16 is computed as float: Body rounds a float16 result to half
        return b.fpext(x, to) if source.itemsize < target.itemsize else b.fptrunc(x, to)
    if source.is_int and target.is_int:
        if source.itemsize == target.itemsize:
            return x  # int8 <-> uint8: the same bits, read with the other sign
        return extend_int(b, x, to, source) if source.itemsize < target.itemsize else b.trunc(x, to)
    if source.is_int:
        return int_to_float(b, x, to, source)
    if target.itemsize < 4:
        return b.trunc(_float_to_int(b, x, int32), to)  # Note [float to small integers]
    return _float_to_int(b, x, target)


def _rounding_to_odd(b: ll.IRBuilder, x: ll.Value) -> ll.Value:
    """A double as the float that rounds to half as the double does, in one rounding, as numpy's
    float64 -> float16 cast: the double rounded toward zero to float, its last bit set where that was
    inexact ("round to odd"). A float keeps 24 bits, more than half's 11 + 2, so the last bit stands
    for all the bits dropped: no tie of half is made or missed, as a nearest float could."""
    nearest = b.fptrunc(x, like(x.type, F32))
    back = b.fpext(nearest, x.type)
    ints = like(x.type, I32)
    away = b.fcmp_ordered(">", intrinsic(b, "llvm.fabs", back), intrinsic(b, "llvm.fabs", x))
    bits = b.sub(b.bitcast(nearest, ints), b.zext(away, ints))  # toward zero: one float closer to 0
    inexact = b.fcmp_ordered("!=", back, x)  # NaN compares unordered: kept as it is
    return b.bitcast(b.or_(bits, b.zext(inexact, ints)), like(x.type, F32))


# Note [float to small integers]
# numpy on x86 converts a float to int8, int16, uint8 or uint16 through int32 and keeps the low bits:
# 300.0 -> uint8 44, -1.0 -> uint8 255, 200.0 -> int8 -56, NaN or anything past int32 -> 0 (INT_MIN's low
# bits). C leaves these undefined; TF1's Cast is a static_cast, which x86 compiles the same way. The cpu
# target does exactly this (_float_to_int to int32, then trunc), so it equals the reference bit for bit;
# values in range (the usual 0..255 pixels) convert as everywhere, truncated toward zero.


def _float_to_int(b: ll.IRBuilder, x: ll.Value, target: DType) -> ll.Value:
    """fptosi where it is defined; INT_MIN for NaN and out-of-range values, as numpy on x86. int32 or int64."""
    bits = target.itemsize * 8
    to = like(x.type, compute_type(target))
    low, high = constant_of(x.type, -(2.0 ** (bits - 1))), constant_of(x.type, 2.0 ** (bits - 1))
    in_range = b.and_(b.fcmp_ordered(">=", x, low), b.fcmp_ordered("<", x, high))
    safe = b.select(in_range, x, constant_of(x.type, 0))  # fptosi of an out-of-range value is poison
    return b.select(in_range, b.fptosi(safe, to), constant_of(to, -(1 << (bits - 1))))
