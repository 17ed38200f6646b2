"""flowc dtypes as LLVM types: how a value is computed and how it is stored.

Note [float16 on the CPU]
A float16 is stored as LLVM `half` (two bytes, numpy's layout) and computed as a float: loads widen
it, stores round it, and every op with a float16 result rounds its value to half (`rounded`) before
anything reads it, as the reference's numpy float16 does (ir/ops). For + - * / and sqrt that is
exact: a float holds 24 bits, more than the 2 * 11 + 2 that make rounding twice the same as rounding
once. Sums, means and products accumulate in float and round once, as the reference's
(ir/ops/reduction.py's accumulator); so do matmul's products (ir/ops/linalg.py). On x86 with F16C
the conversions are single instructions (vcvtph2ps, vcvtps2ph).
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir.types import DType

I1, I8, I32, I64 = ll.IntType(1), ll.IntType(8), ll.IntType(32), ll.IntType(64)
I16 = ll.IntType(16)
F16, F32, F64 = ll.HalfType(), ll.FloatType(), ll.DoubleType()
PTR = I8.as_pointer()

COMPUTE = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I1,
           "float16": F32}  # Note [float16 on the CPU]
# Note [unsigned integers]: an LLVM integer has no sign, so uint8 and int8 are both i8 (add, sub, mul and
# the stores wrap alike); where the sign matters (compare, divide, widen, convert to float) the emitter
# asks the dtype (DType.is_unsigned) through the helpers below, never a table of its own.
COMPUTE |= {"int8": I8, "int16": I16, "uint8": I8, "uint16": I16}
STORAGE = {**COMPUTE, "bool": I8, "float16": F16}  # numpy stores a bool in one byte


def compute_type(dtype: DType) -> ll.Type:
    return COMPUTE[dtype.name]


def storage_type(dtype: DType) -> ll.Type:
    return STORAGE[dtype.name]


def compare_ints(b: ll.IRBuilder, symbol: str, x: ll.Value, y: ll.Value, dtype: DType) -> ll.Value:
    """x `symbol` y for integers (or bools) of `dtype`: icmp ult and kin for the unsigned ones, slt for
    the others (Note [unsigned integers])."""
    unsigned = dtype.is_unsigned or dtype.is_bool
    return (b.icmp_unsigned if unsigned else b.icmp_signed)(symbol, x, y)


def extend_int(b: ll.IRBuilder, x: ll.Value, to: ll.Type, dtype: DType) -> ll.Value:
    """An integer of `dtype` in the wider integer type `to`: zero-extended when unsigned, else sign-extended."""
    return b.zext(x, to) if dtype.is_unsigned else b.sext(x, to)


def int_to_float(b: ll.IRBuilder, x: ll.Value, to: ll.Type, dtype: DType) -> ll.Value:
    return b.uitofp(x, to) if dtype.is_unsigned else b.sitofp(x, to)


def as_index(b: ll.IRBuilder, x: ll.Value, dtype: DType) -> ll.Value:
    """An index (of gather, one_hot, a row) of any integer dtype as an i64; a uint8 200 stays 200."""
    return x if dtype.itemsize == 8 else extend_int(b, x, I64, dtype)


def constant_of(type: ll.Type, value: float | int | bool) -> ll.Constant:
    """`value` as a constant of `type`, splatted when `type` is a vector."""
    if isinstance(type, ll.VectorType):
        return ll.Constant(type, [constant_of(type.element, value)] * type.count)
    if isinstance(type, (ll.HalfType, ll.FloatType, ll.DoubleType)):
        return ll.Constant(type, float(value))
    return ll.Constant(type, int(value))


def like(shape_of: ll.Type, element: ll.Type) -> ll.Type:
    """`element`, or a vector of it as long as `shape_of` when that is a vector."""
    return ll.VectorType(element, shape_of.count) if isinstance(shape_of, ll.VectorType) else element


def from_storage(b: ll.IRBuilder, value: ll.Value, dtype: DType) -> ll.Value:
    """A loaded element (or vector of them) in its compute type: bytes become i1 for bool, half
    becomes float."""
    if dtype.is_bool:
        return b.icmp_unsigned("!=", value, constant_of(value.type, 0))
    if dtype.is_float and STORAGE[dtype.name] != COMPUTE[dtype.name]:
        return b.fpext(value, like(value.type, COMPUTE[dtype.name]))
    return value


def to_storage(b: ll.IRBuilder, value: ll.Value, dtype: DType) -> ll.Value:
    """An element (or vector) in its compute type as it is stored: i1 as a byte, float as half (rounded
    to nearest even: a value `rounded` already is half, so the store is exact)."""
    if dtype.is_bool:
        return b.zext(value, like(value.type, I8))
    if dtype.is_float and STORAGE[dtype.name] != COMPUTE[dtype.name]:
        return b.fptrunc(value, like(value.type, STORAGE[dtype.name]))
    return value


def rounded(b: ll.IRBuilder, value: ll.Value, dtype: DType) -> ll.Value:
    """A value computed for a result of `dtype` held to that dtype's precision: a float16 result,
    computed as a float, rounded to half (Note [float16 on the CPU]); any other as it is."""
    if not dtype.is_float or STORAGE[dtype.name] == COMPUTE[dtype.name]:
        return value
    return from_storage(b, to_storage(b, value, dtype), dtype)


def load_value(b: ll.IRBuilder, pointer: ll.Value, dtype: DType) -> ll.Value:
    """Load an element and bring it to its compute type (bytes become i1 for bool, half float)."""
    return from_storage(b, b.load(pointer, align=dtype.itemsize), dtype)


def store_value(b: ll.IRBuilder, value: ll.Value, pointer: ll.Value, dtype: DType) -> None:
    b.store(to_storage(b, value, dtype), pointer, align=dtype.itemsize)


def typed_pointer(b: ll.IRBuilder, raw: ll.Value, dtype: DType) -> ll.Value:
    return b.bitcast(raw, storage_type(dtype).as_pointer())


def declared(module: ll.Module, name: str, result: ll.Type, arguments: list[ll.Type]) -> ll.Function:
    """The function `name` of the module (an intrinsic, or one of flowc_rt or the BLAS), declared once."""
    return module.globals.get(name) or ll.Function(module, ll.FunctionType(result, arguments), name=name)
