"""Portable math for Triton kernels: exp, log, tanh, sigmoid, pow, sin, cos, atan, erf, log1p and expm1,
as HELPERS (kernel.py) written with arithmetic only.

Triton's interpreter has no libdevice, and on the GPU `tl.exp` of a float32 is `ex2.approx.f32` of
x * log2(e) rounded to float32 (some 20 ulps off near the overflow threshold); so these functions use
nothing but + - * /, tl.fma, tl.floor, compares, selects and integer operations on the bits of a
float64 (bitcast). Each is the CPU target's algorithm (codegen/llvm/mathlib.py, mathlib_special.py,
whose coefficients it imports), in float64:

- a float64 operand runs as it is, to the CPU's float64 ulp bounds (MAX_ULP below);
- a float32 operand is widened, computed in float64 and rounded once, so its error is half an ulp
  and a hair (the CPU's float32 bounds, 0.51 to 2.5 ulp, hold with room). A GPU runs float64 at
  half the float32 rate (H100), and an elementwise kernel is bound by memory, not arithmetic.

Largest error measured in Triton's interpreter (ulps of the exact result over 2**20 inputs per entry,
the CPU tests' distributions: a bit-pattern walk, the working range dense and at random, magnitudes
down to 2**-60, the edges; tests/codegen/test_triton_math.py runs a few thousand of them):

    op       float32  float64  (bound)      op       float32  float64  (bound)
    exp      0.500    0.729    (0.8)        sin      0.500    0.751    (0.85)
    log      0.500    0.791    (0.9)        cos      0.500    0.753    (0.85)
    tanh     0.500    1.146    (1.25)       atan     0.500    1.465    (1.55)
    sigmoid  0.500    2.083    (2.5)        erf      0.500    1.299    (1.4)
    pow      0.500    0.798    (1.0)        log1p    0.500    1.150    (1.3)
    expm1    0.500    1.330    (1.5)

Edges (signed zeros, infinities, NaN, thresholds) are numpy's, as on the CPU. sin and cos are
accurate for |x| < 2**40 (TRIG_LIMIT; no Payne-Hanek reduction beyond, where they stay in [-1, 1]).

Note [contraction]: Triton builds with fp fusion on (kernel.py), so on the GPU an `a * b + c` may
become one fma. Where an algorithm needs a product *rounded* (the head of a double-double that a
two-sum then splits), it is written `tl.fma(a, b, 0.0)`: an fma with a +0.0 addend is the rounded
product and is never contracted further. Every other product either is exact or gains from fusion.

Every float64 constant that float32 cannot hold is written `tl.full([], value, tl.float64)`: a bare
Python float in a Triton function is a float32 constant.
"""

from __future__ import annotations

import numpy as np

from flowc.codegen.llvm.mathlib import MAX_ULP as CPU_MAX_ULP
from flowc.codegen.llvm.mathlib import (EXP_POLY, LN2_SPLIT, LOG2E, LOG_POLY, LOG_POLY_EXTENDED, TANH_COMPLEMENT,
                                        TANH_POLY, TANH_SATURATION, TANH_SMALL, TWO_THIRDS)
from flowc.codegen.llvm.mathlib_special import (ATAN_EIGHTHS, ATAN_POLY, COS_POLY, ERF_ONE, ERF_POLY, ERF_SMALL,
                                                ERFCX_PIECES, EXPM1_EXP, LOG1P_SERIES, LOG1P_SMALL, PI_OVER_2, SIN_POLY,
                                                SPECIAL_MAX_ULP, TINY, TRIG_LIMIT, TWO_OVER_PI, TWO_OVER_SQRT_PI)

from .kernel import helper

SHIFTER = 1.5 * 2.0**52  # v + SHIFTER rounds v to an integer that the low bits of the sum hold
SHIFTER_BITS = (1023 + 52) << 52 | 1 << 51
SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # log splits x at sqrt(1/2)
SMALLEST_NORMAL = 2.0**-1022
INF = "tl.full([], 0x7FF0000000000000, tl.int64).to(tl.float64, bitcast=True)"
NAN = "tl.full([], 0x7FF8000000000000, tl.int64).to(tl.float64, bitcast=True)"


def number(value: float) -> str:
    """`value` as Triton source: a float32 literal when float32 holds it exactly, else a float64 splat."""
    if float(np.float32(value)) == value and (value == 0 or abs(value) >= 2.0**-126):
        return repr(float(value))
    return f"tl.full([], {float(value)!r}, tl.float64)"


def horner(variable: str, coefficients: tuple[float, ...] | list[str]) -> str:
    """c0 + v*(c1 + v*(c2 + ...)) as nested fmas; coefficients lowest order first (numbers or source text)."""
    terms = [c if isinstance(c, str) else number(c) for c in coefficients]
    text = terms[-1]
    for term in reversed(terms[:-1]):
        text = f"tl.fma({text}, {variable}, {term})"
    return text


def chain(conditions: list[str], values: list[str]) -> str:
    """values[i] for the first true conditions[i], else values[-1] (one more value than conditions)."""
    text = values[-1]
    for condition, value in zip(reversed(conditions), reversed(values[:-1])):
        text = f"tl.where({condition}, {value}, {text})"
    return text


LN2_HI, LN2_LO = LN2_SPLIT["float64"]

# --- bits ----------------------------------------------------------------------------------------

helper("fc_pow2", '''
@triton.jit
def fc_pow2(k):
    """2**k, a float64, for an int64 k in the normal exponent range."""
    return ((k + 1023) << 52).to(tl.float64, bitcast=True)
''')

helper("fc_copysign", '''
@triton.jit
def fc_copysign(magnitude, sign):
    """|magnitude| with the sign bit of `sign` (float64)."""
    return tl.abs(magnitude) * tl.where(sign.to(tl.int64, bitcast=True) < 0, -1.0, 1.0)
''')

helper("fc_two_sum", '''
@triton.jit
def fc_two_sum(a, b):
    """a + b = hi + lo exactly, whatever the magnitudes (Knuth's six operations)."""
    hi = a + b
    b_part = hi - a
    return hi, (a - (hi - b_part)) + (b - b_part)
''')

# --- exp -----------------------------------------------------------------------------------------

helper("fc_exp_reduce", f'''
@triton.jit
def fc_exp_reduce(x):
    """x = k*ln2 + r + r_error, |r| <= ln2/2; returns k (int64), r and r_error."""
    shifted = tl.fma(x, {number(LOG2E)}, {number(SHIFTER)})
    k = shifted.to(tl.int64, bitcast=True) - {SHIFTER_BITS}
    k_float = shifted - {number(SHIFTER)}
    r_hi = tl.fma(k_float, {number(-LN2_HI)}, x)  # exact: k*ln2_hi is exact
    r = tl.fma(k_float, {number(-LN2_LO)}, r_hi)
    return k, r, tl.fma(k_float, {number(-LN2_LO)}, r_hi - r)
''')

helper("fc_exp_reduced", f'''
@triton.jit
def fc_exp_reduced(r, r_error):
    """exp(r + r_error) = (1 + r) + r^2 * Q(r) + exp(r) * r_error, 1 + r split exactly."""
    head = 1.0 + r
    tail = r - (head - 1.0)
    tail = tl.fma(r * r, {horner("r", EXP_POLY["float64"])}, tail)
    tail = tl.fma(r_error, head + tail, tail)
    return head + tail
''')

helper("fc_expm1_reduced", f'''
@triton.jit
def fc_expm1_reduced(r, r_error):
    """exp(r + r_error) - 1 without cancellation."""
    return r + tl.fma(r * r, {horner("r", EXP_POLY["float64"])}, tl.fma(r_error, r, r_error))
''')

helper("fc_scale", '''
@triton.jit
def fc_scale(value, k):
    """value * 2**k as two exact-range multiplies, so a subnormal result rounds once."""
    half = k >> 1
    return value * fc_pow2(half) * fc_pow2(k - half)
''')

helper("fc_exp_corrected", '''
@triton.jit
def fc_exp_corrected(x, x_low):
    """exp(x + x_low), x_low a correction far below x's ulp; overflow to inf, gradual underflow."""
    clamped = tl.where(x < -746.0, -746.0, x)  # ordered compares: NaN passes through
    clamped = tl.where(clamped > 710.0, 710.0, clamped)
    k, r, r_error = fc_exp_reduce(clamped)
    r_error = r_error + tl.where((x > -746.0) & (x < 710.0), x_low, 0.0)  # x_low is NaN where x is inf
    return fc_scale(fc_exp_reduced(r, r_error), k)
''')

helper("fc_exp", '''
@triton.jit
def fc_exp(x):
    return fc_exp_corrected(x, x * 0.0)
''')

# --- log -----------------------------------------------------------------------------------------

helper("fc_split_log", f'''
@triton.jit
def fc_split_log(x):
    """x = 2**k * (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), for positive finite x; returns k (float64), f."""
    subnormal = x < {number(SMALLEST_NORMAL)}
    x = tl.where(subnormal, x * {number(2.0**54)}, x)
    offset = x.to(tl.int64, bitcast=True) - {SQRT_HALF_BITS}
    k = (offset >> 52) + tl.where(subnormal, -54, 0)
    one_plus_f = ((offset & {(1 << 52) - 1}) + {SQRT_HALF_BITS}).to(tl.float64, bitcast=True)
    return k.to(tl.float64), one_plus_f - 1.0  # exact (Sterbenz)
''')

helper("fc_log_edges", f'''
@triton.jit
def fc_log_edges(x, value):
    """value where 0 < x < inf; else log's edge: +-0 -> -inf, negative -> NaN, inf and NaN -> x."""
    edge = tl.where(x < 0.0, {NAN}, x)
    edge = tl.where(x == 0.0, -{INF}, edge)
    return tl.where((x > 0.0) & (x < {INF}), value, edge)
''')

helper("fc_log", f'''
@triton.jit
def fc_log(x):
    """log(x), fdlibm's form: log1p(f) = 2s + s * R(s^2), s = f / (2 + f)."""
    k, f = fc_split_log(x)
    s = f / (f + 2.0)
    z = s * s
    r = z * {horner("z", LOG_POLY["float64"])}
    half_f2 = f * f * 0.5
    correction = tl.fma(s, half_f2 + r, k * {number(LN2_LO)})
    value = k * {number(LN2_HI)} - ((half_f2 - correction) - f)
    return fc_log_edges(x, value)
''')

# --- tanh, sigmoid ------------------------------------------------------------------------------

helper("fc_tanh", f'''
@triton.jit
def fc_tanh(x):
    """Odd polynomial below {TANH_SMALL}, else e / (e + 2) with e = expm1(2|x|); +-1 past saturation."""
    magnitude = tl.abs(x)
    z = x * x
    small = tl.fma(magnitude * z, {horner("z", TANH_POLY["float64"])}, magnitude)
    k, r, r_error = fc_exp_reduce(magnitude + magnitude)  # garbage past saturation: selected away
    scale = fc_pow2(k)
    e = tl.fma(scale, fc_expm1_reduced(r, r_error), scale - 1.0)
    complement = magnitude > {number(TANH_COMPLEMENT)}  # 1 - 2 / (e + 2): the quotient's rounding shrinks
    quotient = tl.where(complement, 2.0, e) / (e + 2.0)
    large = tl.where(complement, 1.0 - quotient, quotient)
    large = tl.where(magnitude > {number(TANH_SATURATION["float64"])}, 1.0, large)
    return fc_copysign(tl.where(magnitude < {number(TANH_SMALL)}, small, large), x)
''')

helper("fc_sigmoid", '''
@triton.jit
def fc_sigmoid(x):
    """1 / (1 + exp(-x)) from e = exp(-|x|) <= 1, so nothing overflows: e / (1 + e) for x < 0."""
    e = fc_exp(-tl.abs(x))
    return tl.where(x < 0.0, e, 1.0) / (e + 1.0)
''')

# --- pow -----------------------------------------------------------------------------------------

helper("fc_log_extended", f'''
@triton.jit
def fc_log_extended(x):
    """log(x) as hi + lo, relative error about 2**-63 (x >= 0); edges in hi, lo = 0 there."""
    k, f = fc_split_log(x)
    d_hi = 2.0 + f
    d_lo = f - (d_hi - 2.0)
    s_hi = f / d_hi
    s_lo = tl.fma(-s_hi, d_lo, tl.fma(-s_hi, d_hi, f)) / d_hi
    s2_hi = tl.fma(s_hi, s_hi, 0.0)  # rounded products (Note [contraction])
    s2_lo = tl.fma(s_hi + s_hi, s_lo, tl.fma(s_hi, s_hi, -s2_hi))
    s3_hi = tl.fma(s2_hi, s_hi, 0.0)
    s3_lo = tl.fma(s2_hi, s_hi, -s3_hi) + tl.fma(s2_hi, s_lo, s2_lo * s_hi)
    w = s2_hi * {horner("s2_hi", LOG_POLY_EXTENDED)}
    p_hi = {number(TWO_THIRDS[0])} + w
    p_lo = (w - (p_hi - {number(TWO_THIRDS[0])})) + {number(TWO_THIRDS[1])}
    c_hi = tl.fma(s3_hi, p_hi, 0.0)
    c_lo = tl.fma(s3_hi, p_hi, -c_hi) + tl.fma(s3_hi, p_lo, s3_lo * p_hi)
    k_ln2 = k * {number(LN2_HI)}  # exact
    t_hi = k_ln2 + (s_hi + s_hi)  # |k*ln2| >= |2s| or k = 0
    t_lo = (s_hi + s_hi) - (t_hi - k_ln2)
    u_hi = t_hi + c_hi  # |c| < |2s| / 100
    u_lo = c_hi - (u_hi - t_hi)
    low = (t_lo + u_lo) + tl.fma(k, {number(LN2_LO)}, tl.fma(2.0, s_lo, c_lo))
    hi = u_hi + low
    lo = low - (hi - u_hi)
    return fc_log_edges(x, hi), tl.where((x > 0.0) & (x < {INF}), lo, 0.0)
''')

helper("fc_pow", f'''
@triton.jit
def fc_pow(x, y):
    """x ** y = exp(y * log|x|), log|x| a double-double, with C99 Annex F's edges."""
    x, y = tl.broadcast(x, y)  # a splat constant's conditions combine with a block's
    log_hi, log_lo = fc_log_extended(tl.abs(x))
    product = tl.fma(y, log_hi, 0.0)
    product_lo = tl.fma(y, log_lo, tl.fma(y, log_hi, -product))
    magnitude = fc_exp_corrected(product, product_lo)
    y_integer = tl.floor(y) == y  # true for +-inf, false for NaN
    half_y = y * 0.5
    y_odd = y_integer & (tl.floor(half_y) != half_y)
    x_negative = x.to(tl.int64, bitcast=True) < 0  # -0.0 and -inf too
    result = tl.where(x_negative & y_odd, -magnitude, magnitude)
    # a negative finite x to a non-integer power: NaN (pow(-inf, y) and pow(-0, y) are not)
    negative_finite = (x < 0.0) & (x > -{INF})
    result = tl.where(negative_finite & (tl.floor(y) != y), {NAN}, result)
    # pow(x, +-0) = 1 and pow(1, y) = 1 even for NaN; pow(-1, +-inf) = 1
    one = (y == 0.0) | (x == 1.0) | ((x == -1.0) & (tl.abs(y) == {INF}))
    return tl.where(one, 1.0, result)
''')

# --- sin, cos ------------------------------------------------------------------------------------

_C1, _C2, _C3 = PI_OVER_2
helper("fc_reduce_half_pi", f'''
@triton.jit
def fc_reduce_half_pi(x):
    """x = k * pi/2 + r_hi + r_lo, |r| <= pi/4 (|x| < 2**40); returns k's integer bits, r_hi, r_lo."""
    shifted = tl.fma(x, {number(TWO_OVER_PI)}, {number(SHIFTER)})
    k_bits = shifted.to(tl.int64, bitcast=True) - {SHIFTER_BITS}
    k = shifted - {number(SHIFTER)}
    r1 = tl.fma(-k, {number(_C1)}, x)  # exact: |r1| < 1 and its last bit is c1's
    p_hi = tl.fma(k, {number(_C2)}, 0.0)  # rounded (Note [contraction])
    p_lo = tl.fma(k, {number(_C2)}, -p_hi)
    hi, lo = fc_two_sum(r1, -p_hi)
    lo = tl.fma(-k, {number(_C3)}, lo - p_lo)
    r_hi = hi + lo
    return k_bits, r_hi, lo - (r_hi - hi)
''')

helper("fc_sin_or_cos", f'''
@triton.jit
def fc_sin_or_cos(x, quarter_turns):
    """sin(x + quarter_turns * pi/2): the quadrant picks sin or cos of the remainder r, and a sign."""
    k_bits, r, r_lo = fc_reduce_half_pi(x)
    z = r * r
    sin = r + tl.fma(r * z, {horner("z", SIN_POLY)}, r_lo * tl.fma(z, -0.5, 1.0))
    half_z = z * 0.5
    w = 1.0 - half_z
    tail = ((1.0 - w) - half_z) + tl.fma(z * z, {horner("z", COS_POLY)}, -(r * r_lo))
    cos = w + tail
    quadrant = k_bits + quarter_turns
    value = tl.where((quadrant & 1) != 0, cos, sin)
    value = tl.where((quadrant & 2) != 0, -value, value)
    # past 2**40 r is not reduced: stay a sine at least (a finite x's garbage may be NaN there)
    value = tl.where(value < -1.0, -1.0, tl.where(value > 1.0, 1.0, value))
    beyond = (tl.abs(x) >= {number(TRIG_LIMIT)}) & (tl.abs(x) < {INF}) & (value != value)
    return tl.where(beyond, 0.0, value)
''')

helper("fc_sin", f'''
@triton.jit
def fc_sin(x):
    """sin(x); a tiny x (+-0 and subnormals too) is its own sine."""
    return tl.where(tl.abs(x) < {number(TINY)}, x, fc_sin_or_cos(x, 0))
''')

helper("fc_cos", '''
@triton.jit
def fc_cos(x):
    return fc_sin_or_cos(x, 1)
''')

# --- atan ----------------------------------------------------------------------------------------


def _atan_source() -> str:
    eighths = [f"magnitude <= {number(8.0 / j)}" for j in range(1, 9)]
    count = " + ".join(f"tl.where({c}, 1.0, 0.0)" for c in eighths)
    table = [f"eighths == {float(j)}" for j in range(1, 9)]
    c_hi = chain(table[::-1], [number(hi) for hi, _ in ATAN_EIGHTHS[:0:-1]] + [number(ATAN_EIGHTHS[0][0])])
    c_lo = chain(table[::-1], [number(lo) for _, lo in ATAN_EIGHTHS[:0:-1]] + [number(ATAN_EIGHTHS[0][1])])
    return f'''
@triton.jit
def fc_atan(x):
    """atan(a) = atan(c) + atan(u), t = a (or 1/a above 1, then pi/2 minus it), c = t rounded down to
    eighths (a table, hi + lo), u = (t - c) / (1 + t*c), which for t = 1/a is (1 - a*c) / (a + c)."""
    magnitude = tl.abs(x)
    large = magnitude > 1.0
    reciprocal_eighths = {count}  # floor(8/a) without dividing
    eighths = tl.where(large, reciprocal_eighths, tl.floor(magnitude * 8.0))
    c = eighths * 0.125
    numerator = tl.where(large, tl.fma(-magnitude, c, 1.0), magnitude - c)
    denominator = tl.where(large, magnitude + c, tl.fma(magnitude, c, 1.0))
    u = tl.where(magnitude == {INF}, 0.0, numerator / denominator)  # 0 <= u < 1/8
    z = u * u
    atan_u = tl.fma(u * z, {horner("z", ATAN_POLY)}, u)
    c_hi = {c_hi}
    c_lo = {c_lo}
    direct = c_hi + (c_lo + atan_u)
    complement = ({number(PI_OVER_2[0])} - c_hi) + (({number(PI_OVER_2[1])} - c_lo) - atan_u)
    return fc_copysign(tl.where(large, complement, direct), x)
'''


helper("fc_atan", _atan_source())

# --- erf -----------------------------------------------------------------------------------------


def _erf_source() -> str:
    below = [f"a < {number(upper)}" for upper, _, _ in ERFCX_PIECES[:-1]]
    center = chain(below, [number(c) for _, c, _ in ERFCX_PIECES])
    coefficients = [chain(below, [number(piece[2][i]) for piece in ERFCX_PIECES])
                    for i in range(len(ERFCX_PIECES[0][2]))]
    two_hi, two_lo = TWO_OVER_SQRT_PI
    return f'''
@triton.jit
def fc_erf(x):
    """|x| < {ERF_SMALL}: x times a Taylor polynomial in x**2; up to {ERF_ONE}: 1 - exp(-x**2) * erfcx(|x|),
    erfcx a Chebyshev interpolant on five pieces (coefficients chosen per element); beyond, +-1."""
    magnitude = tl.abs(x)
    z = x * x
    small = tl.fma(x, {number(two_hi)}, x * tl.fma(z, {horner("z", ERF_POLY)}, {number(two_lo)}))
    a = tl.where(magnitude > {number(ERF_ONE)}, {number(ERF_ONE)}, magnitude)  # NaN stays
    d = a - {center}  # exact: a and the center are within a factor 2
    erfcx = {horner("d", coefficients)}
    square = tl.fma(a, a, 0.0)  # rounded (Note [contraction])
    square_lo = tl.fma(a, a, -square)
    large = fc_copysign(1.0 - fc_exp_corrected(-square, -square_lo) * erfcx, x)
    return tl.where(magnitude < {number(ERF_SMALL)}, small, large)
'''


helper("fc_erf", _erf_source())

# --- log1p, expm1 --------------------------------------------------------------------------------

helper("fc_log1p", f'''
@triton.jit
def fc_log1p(x):
    """log(s) + e / s with 1 + x = s + e exactly; a series where e is as large as s - 1; x if tiny."""
    s, error = fc_two_sum(tl.full([], 1.0, tl.float64), x)
    correction = tl.where((s > 0.0) & (s < {INF}), error / s, 0.0)
    value = fc_log(s) + correction
    series = tl.fma(x * x, {horner("x", LOG1P_SERIES)}, x)
    value = tl.where(tl.abs(x) < {number(LOG1P_SMALL)}, series, value)
    return tl.where(tl.abs(x) < {number(TINY)}, x, value)
''')

helper("fc_expm1", f'''
@triton.jit
def fc_expm1(x):
    """2**k * (e**r - 1) + (2**k - 1) from exp's reduction; exp(x) above {EXPM1_EXP}, -1 below -{EXPM1_EXP}."""
    clamped = tl.where(x < -746.0, -746.0, x)
    clamped = tl.where(clamped > 710.0, 710.0, clamped)
    k, r, r_error = fc_exp_reduce(clamped)
    scale = fc_pow2(k)  # garbage past +-{EXPM1_EXP}: selected away
    value = tl.fma(scale, fc_expm1_reduced(r, r_error), scale - 1.0)
    value = tl.where(x > {number(EXPM1_EXP)}, fc_scale(fc_exp_reduced(r, r_error), k), value)
    value = tl.where(x < {number(-EXPM1_EXP)}, -1.0, value)
    return tl.where(tl.abs(x) < {number(TINY)}, x, value)
''')

# op -> its float64 function here (expressions.py widens a float32 operand to it and rounds once)
FLOAT64_FUNCTIONS = {"exp": "fc_exp", "log": "fc_log", "tanh": "fc_tanh", "sigmoid": "fc_sigmoid",
                   "pow": "fc_pow", "sin": "fc_sin", "cos": "fc_cos", "atan": "fc_atan", "erf": "fc_erf",
                   "log1p": "fc_log1p", "expm1": "fc_expm1"}
# The measured error bound of each, in ulps of the exact result: float64 the CPU's (the same algorithms),
# float32 half an ulp and what float64's error adds to it (tests/codegen/test_triton_math.py).
MAX_ULP = {(op, dtype): 0.51 if dtype == "float32" else bound
           for (op, dtype), bound in {**CPU_MAX_ULP, **SPECIAL_MAX_ULP}.items() if op != "rsqrt"}
