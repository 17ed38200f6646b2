"""Vectorizable exp, log, tanh, sigmoid, rsqrt and pow, emitted as plain LLVM IR.

Note [vectorizable math]
A call to libm's expf blocks LLVM's loop vectorizer, so each function here is
emitted inline as arithmetic that has a vector form on every target: fadd,
fmul, fdiv, fcmp, select, bitcast, integer add/and/shift, and the intrinsics
llvm.fma, llvm.fabs, llvm.copysign, llvm.sqrt and llvm.floor. There are no
branches and no float-to-int conversions (an integer k is read from the bits
of ``v + 1.5 * 2**mantissa``), so NaN and infinite lanes compute garbage
that is defined, never poison, and that a select replaces or a NaN
overrides. Every emitter takes a scalar (float, double) or a vector
(``<8 x float>``) operand alike: constants are made with the operand's
type, splatted for vectors.

No fast-math flag is set, so the results are IEEE. Every fused multiply-add
is an explicit llvm.fma, which makes the results bit-identical on every host
(a host without an FMA unit computes them with a correct, slow libm call that
blocks vectorization; x86-64 since Haswell and every AArch64 have the unit).

Accuracy (MAX_ULP): error in ulps of the exact result, the largest measured
over 5 * 10**7 inputs per entry (bit-pattern walks over every exponent plus
dense sweeps of the working range, against long double / float64 references);
MAX_ULP is that, rounded up a little, and tests/codegen/test_mathlib.py asserts it.
Subnormal results are measured in the subnormal spacing and are included.

    op       float32  float64  measured (f32 / f64)       notes
    exp      0.8      0.8      0.78 / 0.77                normal results <= 0.65; the rest is subnormal
    log      0.9      0.9      0.83 / 0.82                subnormal x normalized first
    tanh     1.25     1.25     1.19 / 1.18                odd polynomial for |x| < 0.55
    sigmoid  2.5      2.5      2.40 / 2.18                subnormal results <= 0.78
    rsqrt    1.5      1.5      1.49 / 1.49                1 / sqrt(x), two correct roundings
    pow      0.51     1.0      0.50 / 0.90                float32 via float64, rounded once

Edges (signed zeros, infinities, NaN, the overflow and underflow thresholds of
exp, tanh's saturation, C99 Annex F's cases for pow) are exactly numpy's, with
one exception: numpy's float64 tanh(19.06) is 1.0, ours the exact 1 - 2**-53.
pow for float32 runs in float64 and rounds once (a float32 result that is an
exact tie between two floats, other than a power of two, may round the wrong
way); pow for float64 carries log|x| as a double-double so that y*log|x| keeps
about 64 bits.

Coefficients are minimax (Remez, weighted for the error the final result
sees) computed offline with mpmath, then rounded to the format.
"""

from collections.abc import Callable
from dataclasses import dataclass

import llvmlite.ir as ll


@dataclass(frozen=True)
class _Format:
    """Bit layout of one IEEE binary format, and the constants its tricks need."""

    bits: int
    mantissa: int  # stored fraction bits
    bias: int
    sqrt_half_bits: int  # bits of sqrt(1/2): log splits x at it, so its mantissa is in [sqrt(1/2), sqrt(2))
    subnormal_shift: int  # 2**shift makes every subnormal normal

    @property
    def shifter(self) -> float:
        """v + shifter rounds v to an integer that the low bits of the sum hold (|v| < 2**(mantissa-1))."""
        return 1.5 * 2.0**self.mantissa

    @property
    def shifter_bits(self) -> int:
        return (self.bias + self.mantissa) << self.mantissa | 1 << (self.mantissa - 1)

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** (1 - self.bias)


_FORMATS = {
    "float32": _Format(bits=32, mantissa=23, bias=127, sqrt_half_bits=0x3F3504F3, subnormal_shift=25),
    "float64": _Format(bits=64, mantissa=52, bias=1023, sqrt_half_bits=0x3FE6A09E667F3BCD, subnormal_shift=54),
}
_DTYPES = {ll.FloatType: "float32", ll.DoubleType: "float64"}

LOG2E = 1.4426950408889634
# ln2 = hi + lo, hi with trailing zero bits so that k * hi is exact for every exponent k.
LN2_SPLIT = {
    "float32": (float.fromhex("0x1.62e3p-1"), float.fromhex("0x1.2fefa4p-17")),
    "float64": (float.fromhex("0x1.62e42feep-1"), float.fromhex("0x1.a39ef35793c76p-33")),
}
# exp(x) is 0 below the first bound and inf above the second; clamping keeps k small.
EXP_CLAMP = {"float32": (-104.0, 89.0), "float64": (-746.0, 710.0)}
# exp(r) = 1 + r + r^2 * Q(r) on |r| <= ln2/2; Q lowest order first. Relative error of
# the polynomial: 2**-28.3 (float32), 2**-56.8 (float64).
EXP_POLY = {
    "float32": (
        0.4999999343212929,
        0.1666652039904253,
        0.041668390783547914,
        0.008368745108942591,
        0.0013814540176801306,
    ),
    "float64": (
        0.500000000000001,
        0.1666666666666667,
        0.04166666666652332,
        0.008333333333323938,
        0.0013888888947513095,
        0.00019841269882285795,
        2.4801487610363435e-05,
        2.7557246569621784e-06,
        2.7632564467802914e-07,
        2.5108612841358514e-08,
    ),
}
# log1p(f) = 2 atanh(s) = 2s + s * R(s^2) with s = f / (2 + f), R(z) = z * P(z); P lowest
# order first (fdlibm's form). Error of R: 2**-30.2 (float32), 2**-59.5 (float64).
LOG_POLY = {
    "float32": (0.6666677705315861, 0.3997744953680348, 0.298744188035528),
    "float64": (
        0.6666666666666735,
        0.3999999999940749,
        0.2857142874414191,
        0.2222219837843758,
        0.18183575166993723,
        0.15313755732795103,
        0.14799066274887113,
    ),
}
# For pow's double-double log: P(z) = 2/3 + z * P1(z), 2/3 kept as hi + lo; error 2**-64.4.
TWO_THIRDS = (float.fromhex("0x1.5555555555555p-1"), float.fromhex("0x1.5555555555555p-55"))
LOG_POLY_EXTENDED = (
    0.4000000000000036,
    0.2857142857100917,
    0.22222222362232616,
    0.18181797535972963,
    0.1538618460589576,
    0.13269324012802614,
    0.13087935987843188,
)
# tanh(x) = x + x^3 * T(x^2) for |x| < TANH_SMALL; T lowest order first. Relative error
# of tanh: 2**-29.8 (float32), 2**-60.6 (float64).
TANH_SMALL = 0.55
# Above it tanh = 1 - 2 / (e + 2) rather than e / (e + 2): the quotient's rounding then shrinks
# in the subtraction. 0.8 measured best of 0.6 ... 1.2.
TANH_COMPLEMENT = 0.8
TANH_POLY = {
    "float32": (
        -0.33333317485960257,
        0.13332583389627664,
        -0.053851997424767664,
        0.021070299947953685,
        -0.006272166240433711,
    ),
    "float64": (
        -0.333333333333333,
        0.13333333333326558,
        -0.05396825396372284,
        0.02186948838474502,
        -0.0088632325827449,
        0.0035920918365142,
        -0.0014555415642698015,
        0.0005884390785553264,
        -0.0002333674622152591,
        8.329574215926262e-05,
        -1.94816033414193e-05,
    ),
}
# tanh(x) rounds to 1 above these: 2 exp(-2x) < half an ulp below 1.
TANH_SATURATION = {"float32": 9.5, "float64": 19.5}

MAX_ULP: dict[tuple[str, str], float] = {  # see the table in the module docstring
    ("exp", "float32"): 0.8,
    ("exp", "float64"): 0.8,
    ("log", "float32"): 0.9,
    ("log", "float64"): 0.9,
    ("tanh", "float32"): 1.25,
    ("tanh", "float64"): 1.25,
    ("sigmoid", "float32"): 2.5,
    ("sigmoid", "float64"): 2.5,
    ("rsqrt", "float32"): 1.5,
    ("rsqrt", "float64"): 1.5,
    ("pow", "float32"): 0.51,
    ("pow", "float64"): 1.0,
}


class _FloatOps:
    """IRBuilder arithmetic on one float type, scalar or vector; constants are splatted to it."""

    def __init__(self, b: ll.IRBuilder, ty: ll.Type):
        self.b = b
        self.ty = ty
        vector = isinstance(ty, ll.VectorType)
        element = ty.element if vector else ty
        self.dtype = _DTYPES[type(element)]
        self.fmt = _FORMATS[self.dtype]
        int_element = ll.IntType(self.fmt.bits)
        self.int_ty = ll.VectorType(int_element, ty.count) if vector else int_element
        self.suffix = f"v{ty.count}{element.intrinsic_name}" if vector else element.intrinsic_name

    def const(self, value: float) -> ll.Constant:
        return ll.Constant(self.ty, value)

    def int_const(self, value: int) -> ll.Constant:
        return ll.Constant(self.int_ty, value)

    def _call(self, name: str, *args: ll.Value) -> ll.Value:
        full = f"llvm.{name}.{self.suffix}"
        module = self.b.module
        fn = module.globals.get(full)
        if fn is None:
            fn = ll.Function(module, ll.FunctionType(self.ty, [self.ty] * len(args)), name=full)
        return self.b.call(fn, args)

    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def fma(self, a, b, c):
        return self._call("fma", a, b, c)

    def fabs(self, a):
        return self._call("fabs", a)

    def copysign(self, magnitude, sign):
        return self._call("copysign", magnitude, sign)

    def sqrt(self, a):
        return self._call("sqrt", a)

    def floor(self, a):
        return self._call("floor", a)

    def lt(self, a, b):
        return self.b.fcmp_ordered("<", a, b)

    def gt(self, a, b):
        return self.b.fcmp_ordered(">", a, b)

    def eq(self, a, b):
        return self.b.fcmp_ordered("==", a, b)

    def select(self, condition, a, b):
        return self.b.select(condition, a, b)

    def horner(self, x, coefficients):
        """c0 + x*(c1 + x*(c2 + ...)), coefficients lowest order first."""
        acc = self.const(coefficients[-1])
        for c in reversed(coefficients[:-1]):
            acc = self.fma(acc, x, self.const(c))
        return acc

    def horner_values(self, x, coefficients):
        """horner with coefficients that are values (chosen per lane), lowest order first."""
        acc = coefficients[-1]
        for c in reversed(coefficients[:-1]):
            acc = self.fma(acc, x, c)
        return acc

    def fast_two_sum(self, a, b):
        """a + b = hi + lo exactly, given exponent(a) >= exponent(b) or a == 0."""
        hi = self.add(a, b)
        return hi, self.sub(b, self.sub(hi, a))

    def bits(self, a):
        return self.b.bitcast(a, self.int_ty)

    def from_bits(self, i):
        return self.b.bitcast(i, self.ty)

    def pow2(self, k):
        """2**k for an integer k in the normal exponent range."""
        biased = self.b.add(k, self.int_const(self.fmt.bias))
        return self.from_bits(self.b.shl(biased, self.int_const(self.fmt.mantissa)))

    def small_int_to_float(self, k):
        """float(k) for |k| < 2**(mantissa-1): the shifter trick backwards, integer add + fsub."""
        shifted = self.from_bits(self.b.add(k, self.int_const(self.fmt.shifter_bits)))
        return self.sub(shifted, self.const(self.fmt.shifter))


# --- exp -------------------------------------------------------------------------------


def _reduce_exp(ops: _FloatOps, x: ll.Value) -> tuple[ll.Value, ll.Value, ll.Value]:
    """x = k*ln2 + r + r_error, |r| <= ln2/2 (x within EXP_CLAMP); returns k as an integer, r, r_error."""
    shifted = ops.fma(x, ops.const(LOG2E), ops.const(ops.fmt.shifter))
    k = ops.b.sub(ops.bits(shifted), ops.int_const(ops.fmt.shifter_bits))
    k_float = ops.sub(shifted, ops.const(ops.fmt.shifter))
    hi, lo = LN2_SPLIT[ops.dtype]
    minus_lo = ops.const(-lo)
    r_hi = ops.fma(k_float, ops.const(-hi), x)  # exact: k*hi is exact and x is within 2x of it
    r = ops.fma(k_float, minus_lo, r_hi)
    return k, r, ops.fma(k_float, minus_lo, ops.sub(r_hi, r))  # what rounding r lost: a quarter ulp of exp


def _exp_reduced(ops: _FloatOps, r: ll.Value, r_error: ll.Value) -> ll.Value:
    """exp(r + r_error) = (1 + r) + r^2 * Q(r) + exp(r) * r_error, with 1 + r split exactly.

    The one rounding that counts is the last addition: about half an ulp in all.
    """
    head, tail = ops.fast_two_sum(ops.const(1.0), r)
    tail = ops.fma(ops.mul(r, r), ops.horner(r, EXP_POLY[ops.dtype]), tail)
    tail = ops.fma(r_error, ops.add(head, tail), tail)
    return ops.add(head, tail)


def _expm1_reduced(ops: _FloatOps, r: ll.Value, r_error: ll.Value) -> ll.Value:
    """exp(r + r_error) - 1 without cancellation: r + (r^2 * Q(r) + (1 + r) * r_error)."""
    return ops.add(r, ops.fma(ops.mul(r, r), ops.horner(r, EXP_POLY[ops.dtype]), ops.fma(r_error, r, r_error)))


def _scale(ops: _FloatOps, value: ll.Value, k: ll.Value) -> ll.Value:
    """value * 2**k as two exact-range multiplies, so subnormal results round once."""
    half = ops.b.ashr(k, ops.int_const(1))
    value = ops.mul(value, ops.pow2(half))  # exact: value is near 1 and half within +-538
    return ops.mul(value, ops.pow2(ops.b.sub(k, half)))


def _clamp(ops: _FloatOps, x: ll.Value, low: float, high: float) -> ll.Value:
    """Clamp with ordered compares, so a NaN passes through."""
    x = ops.select(ops.lt(x, ops.const(low)), ops.const(low), x)
    return ops.select(ops.gt(x, ops.const(high)), ops.const(high), x)


def _exp(ops: _FloatOps, x: ll.Value, x_low: ll.Value | None = None) -> ll.Value:
    """exp(x + x_low), where x_low (if given) is a correction far below x's ulp."""
    low, high = EXP_CLAMP[ops.dtype]
    k, r, r_error = _reduce_exp(ops, _clamp(ops, x, low, high))
    if x_low is not None:
        in_range = ops.b.and_(ops.gt(x, ops.const(low)), ops.lt(x, ops.const(high)))
        r_error = ops.add(r_error, ops.select(in_range, x_low, ops.const(0.0)))  # x_low is NaN where x is inf
    return _scale(ops, _exp_reduced(ops, r, r_error), k)


def emit_exp(b: ll.IRBuilder, x: ll.Value) -> ll.Value:
    """exp(x); exp(NaN) = NaN, overflow to inf, gradual underflow through the subnormals."""
    return _exp(_FloatOps(b, x.type), x)


# --- log -------------------------------------------------------------------------------


def _split_log(ops: _FloatOps, x: ll.Value) -> tuple[ll.Value, ll.Value]:
    """x = 2**k * (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)), for positive finite x; returns (k, f)."""
    fmt = ops.fmt
    subnormal = ops.lt(x, ops.const(fmt.smallest_normal))
    x = ops.select(subnormal, ops.mul(x, ops.const(2.0**fmt.subnormal_shift)), x)
    offset = ops.b.sub(ops.bits(x), ops.int_const(fmt.sqrt_half_bits))
    k = ops.b.ashr(offset, ops.int_const(fmt.mantissa))
    k = ops.b.add(k, ops.b.select(subnormal, ops.int_const(-fmt.subnormal_shift), ops.int_const(0)))
    mantissa = ops.b.and_(offset, ops.int_const((1 << fmt.mantissa) - 1))
    one_plus_f = ops.from_bits(ops.b.add(mantissa, ops.int_const(fmt.sqrt_half_bits)))
    return ops.small_int_to_float(k), ops.sub(one_plus_f, ops.const(1.0))  # exact (Sterbenz)


def _finite_positive(ops: _FloatOps, x: ll.Value) -> ll.Value:
    return ops.b.and_(ops.gt(x, ops.const(0.0)), ops.lt(x, ops.const(float("inf"))))


def _log_edges(ops: _FloatOps, x: ll.Value, value: ll.Value) -> ll.Value:
    """value where 0 < x < inf; else log's edge: +-0 -> -inf, negative -> NaN, inf and NaN -> x."""
    edge = ops.select(ops.lt(x, ops.const(0.0)), ops.const(float("nan")), x)
    edge = ops.select(ops.eq(x, ops.const(0.0)), ops.const(float("-inf")), edge)
    return ops.select(_finite_positive(ops, x), value, edge)


def _log(ops: _FloatOps, x: ll.Value) -> ll.Value:
    k, f = _split_log(ops, x)
    s = ops.div(f, ops.add(f, ops.const(2.0)))
    z = ops.mul(s, s)
    r = ops.mul(z, ops.horner(z, LOG_POLY[ops.dtype]))
    half_f2 = ops.mul(ops.mul(f, f), ops.const(0.5))
    hi, lo = LN2_SPLIT[ops.dtype]
    # fdlibm's order of summation: k*ln2 - ((f^2/2 - (s*(f^2/2 + R) + k*ln2_lo)) - f).
    correction = ops.fma(s, ops.add(half_f2, r), ops.mul(k, ops.const(lo)))
    value = ops.sub(ops.mul(k, ops.const(hi)), ops.sub(ops.sub(half_f2, correction), f))
    return _log_edges(ops, x, value)


def emit_log(b: ll.IRBuilder, x: ll.Value) -> ll.Value:
    """log(x): log(+-0) = -inf, log(x < 0) = NaN, log(inf) = inf; subnormal x normalized first."""
    return _log(_FloatOps(b, x.type), x)


# --- tanh, sigmoid, rsqrt --------------------------------------------------------------


def _expm1_nonnegative(ops: _FloatOps, y: ll.Value) -> ll.Value:
    """exp(y) - 1 for 0 <= y <= 2 * TANH_SATURATION: 2**k * (e^r - 1) + (2**k - 1) in one fma."""
    k, r, r_error = _reduce_exp(ops, y)
    scale = ops.pow2(k)
    return ops.fma(scale, _expm1_reduced(ops, r, r_error), ops.sub(scale, ops.const(1.0)))


def emit_tanh(b: ll.IRBuilder, x: ll.Value) -> ll.Value:
    """tanh(x): odd polynomial below TANH_SMALL, else e / (e + 2) with e = expm1(2|x|), sign restored.

    Exactly +-1 past saturation; tanh(-0) = -0.
    """
    ops = _FloatOps(b, x.type)
    magnitude = ops.fabs(x)
    z = ops.mul(x, x)
    small = ops.fma(ops.mul(magnitude, z), ops.horner(z, TANH_POLY[ops.dtype]), magnitude)  # |x| + |x|^3 * T(x^2)
    e = _expm1_nonnegative(ops, ops.add(magnitude, magnitude))  # garbage past saturation: selected away
    # e / (e + 2) = 1 - 2 / (e + 2); the second form once the quotient is small, one fdiv for both
    complement = ops.gt(magnitude, ops.const(TANH_COMPLEMENT))
    quotient = ops.div(ops.select(complement, ops.const(2.0), e), ops.add(e, ops.const(2.0)))
    large = ops.select(complement, ops.sub(ops.const(1.0), quotient), quotient)
    large = ops.select(ops.gt(magnitude, ops.const(TANH_SATURATION[ops.dtype])), ops.const(1.0), large)
    return ops.copysign(ops.select(ops.lt(magnitude, ops.const(TANH_SMALL)), small, large), x)


def emit_sigmoid(b: ll.IRBuilder, x: ll.Value) -> ll.Value:
    """1 / (1 + exp(-x)), computed from e = exp(-|x|) <= 1 so nothing overflows: e / (1 + e) for x < 0."""
    ops = _FloatOps(b, x.type)
    e = _exp(ops, b.fneg(ops.fabs(x)))
    numerator = ops.select(ops.lt(x, ops.const(0.0)), e, ops.const(1.0))
    return ops.div(numerator, ops.add(e, ops.const(1.0)))


def emit_rsqrt(b: ll.IRBuilder, x: ll.Value) -> ll.Value:
    """1 / sqrt(x), both correctly rounded: rsqrt(+-0) = +-inf, rsqrt(inf) = 0, negative -> NaN."""
    ops = _FloatOps(b, x.type)
    return ops.div(ops.const(1.0), ops.sqrt(x))


# --- pow -------------------------------------------------------------------------------


def _log_extended(ops: _FloatOps, x: ll.Value) -> tuple[ll.Value, ll.Value]:
    """log(x) as hi + lo, relative error about 2**-63 (x >= 0); edges in hi, lo = 0 there.

    log(x) = k*ln2 + 2s + s^3 * P(s^2), s = f / (2 + f), with s, s^3 and P kept as double-doubles.
    """
    k, f = _split_log(ops, x)
    d_hi, d_lo = ops.fast_two_sum(ops.const(2.0), f)
    s_hi = ops.div(f, d_hi)
    residual = ops.fma(ops.b.fneg(s_hi), d_lo, ops.fma(ops.b.fneg(s_hi), d_hi, f))
    s_lo = ops.div(residual, d_hi)
    s2_hi = ops.mul(s_hi, s_hi)
    s2_lo = ops.fma(ops.add(s_hi, s_hi), s_lo, ops.fma(s_hi, s_hi, ops.b.fneg(s2_hi)))
    s3_hi = ops.mul(s2_hi, s_hi)
    s3_lo = ops.add(ops.fma(s2_hi, s_hi, ops.b.fneg(s3_hi)), ops.fma(s2_hi, s_lo, ops.mul(s2_lo, s_hi)))
    w = ops.mul(s2_hi, ops.horner(s2_hi, LOG_POLY_EXTENDED))
    p_hi, p_lo = ops.fast_two_sum(ops.const(TWO_THIRDS[0]), w)
    p_lo = ops.add(p_lo, ops.const(TWO_THIRDS[1]))
    c_hi = ops.mul(s3_hi, p_hi)
    c_lo = ops.add(ops.fma(s3_hi, p_hi, ops.b.fneg(c_hi)), ops.fma(s3_hi, p_lo, ops.mul(s3_lo, p_hi)))
    ln2_hi, ln2_lo = LN2_SPLIT[ops.dtype]
    t_hi, t_lo = ops.fast_two_sum(ops.mul(k, ops.const(ln2_hi)), ops.add(s_hi, s_hi))  # |k*ln2| >= |2s| or k = 0
    u_hi, u_lo = ops.fast_two_sum(t_hi, c_hi)  # |c| < |2s| / 100
    low = ops.add(ops.add(t_lo, u_lo), ops.fma(k, ops.const(ln2_lo), ops.fma(ops.const(2.0), s_lo, c_lo)))
    hi, lo = ops.fast_two_sum(u_hi, low)
    return _log_edges(ops, x, hi), ops.select(_finite_positive(ops, x), lo, ops.const(0.0))


def _is_integer(ops: _FloatOps, y: ll.Value) -> ll.Value:
    return ops.eq(ops.floor(y), y)  # true for +-inf, false for NaN


def _pow(ops: _FloatOps, x: ll.Value, y: ll.Value) -> ll.Value:
    log_hi, log_lo = _log_extended(ops, ops.fabs(x))
    product = ops.mul(y, log_hi)
    product_lo = ops.fma(y, log_lo, ops.fma(y, log_hi, ops.b.fneg(product)))
    magnitude = _exp(ops, product, product_lo)
    half_y = ops.mul(y, ops.const(0.5))
    y_integer = _is_integer(ops, y)
    y_odd = ops.b.and_(y_integer, ops.b.not_(_is_integer(ops, half_y)))
    x_sign = ops.b.icmp_signed("<", ops.bits(x), ops.int_const(0))  # -0.0 and -inf too
    result = ops.select(ops.b.and_(x_sign, y_odd), ops.b.fneg(magnitude), magnitude)
    # negative finite x to a non-integer power: NaN (pow(-inf, y) and pow(-0, y) are not)
    negative_finite = ops.b.and_(ops.lt(x, ops.const(0.0)), ops.gt(x, ops.const(float("-inf"))))
    result = ops.select(ops.b.and_(negative_finite, ops.b.not_(y_integer)), ops.const(float("nan")), result)
    # pow(x, +-0) = 1 and pow(1, y) = 1 even for NaN; pow(-1, +-inf) = 1
    minus_one_to_inf = ops.b.and_(ops.eq(x, ops.const(-1.0)), ops.eq(ops.fabs(y), ops.const(float("inf"))))
    one = ops.b.or_(ops.b.or_(ops.eq(y, ops.const(0.0)), ops.eq(x, ops.const(1.0))), minus_one_to_inf)
    return ops.select(one, ops.const(1.0), result)


def emit_pow(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    """x ** y = exp(y * log|x|) with C99 Annex F's edges (signed results for odd integer y).

    log|x| is kept as a double-double, so y*log|x| carries about 64 bits; float32 runs in float64
    and rounds once (exact powers of two come out exact, so 2**-150 rounds to 0 as it should).
    """
    ops = _FloatOps(b, x.type)
    if ops.dtype == "float64":
        return _pow(ops, x, y)
    wide = ll.VectorType(ll.DoubleType(), x.type.count) if isinstance(x.type, ll.VectorType) else ll.DoubleType()
    return b.fptrunc(_pow(_FloatOps(b, wide), b.fpext(x, wide), b.fpext(y, wide)), x.type)


MATH_EMITTERS: dict[str, Callable[..., ll.Value]] = {
    "exp": emit_exp,
    "log": emit_log,
    "tanh": emit_tanh,
    "sigmoid": emit_sigmoid,
    "rsqrt": emit_rsqrt,
    "pow": emit_pow,
}

