"""Vectorizable sin, cos, atan, erf, log1p and expm1 (Note [vectorizable math] in mathlib.py).

Each is written once. sin, cos, atan and erf of a float32 run in float64 with shorter polynomials
(what float32 needs, with 2**-30 to spare) and round once, so their error is half an ulp and a hair;
log1p and expm1 run in float32 itself, with the float32 coefficients of exp and log (twice as many
lanes, about an ulp more). The float64 results carry the reductions' remainders as double-doubles
where a cancellation would otherwise show:

    sin, cos   x = k * pi/2 + r, pi/2 in three parts (the first product exact through an fma, the
               second as a double-double), r kept as hi + lo; Taylor polynomials on |r| <= pi/4
               (degree 19 and 18: the next term is below 2**-60 of the result), quadrant from k's bits
    atan       t = |x| or 1/|x|, then atan(t) = atan(c) + atan(u), c = t rounded down to eighths (a table,
               hi + lo), u = (t - c) / (1 + t*c), 0 <= u < 1/8, Taylor to u**21; one division in all.
               float32: three bands instead (u = a, (a - 1) / (a + 1) or -1/a), Taylor to u**27, no table
    erf        |x| < 0.75: x times a Taylor polynomial in x**2; up to 6: 1 - exp(-x**2) * erfcx(|x|),
               exp's argument a double-double and erfcx a Chebyshev interpolant of degree 16 on five
               pieces (coefficients chosen per lane with selects); beyond 6, +-1
    log1p      1 + x as an exact two-sum s + e, then log(s) + e / s
    expm1      2**k * (e**r - 1) + (2**k - 1) from exp's reduction, exp(x) above 40

Accuracy (MAX_ULP, in ulps of the exact result over the sweeps of tests/codegen/test_mathlib_special.py):

    op      float32  float64  measured (f32 / f64)   notes
    sin     0.51     0.85     0.500 / 0.767          |x| < 2**40; beyond, no Payne-Hanek reduction: inaccurate,
    cos     0.51     0.85     0.500 / 0.777          but clamped to [-1, 1]
    atan    0.51     1.55     0.500 / 1.451
    erf     0.51     1.4      0.500 / 1.299
    log1p   1.3      1.3      1.217 / 1.195
    expm1   1.5      1.5      1.452 / 1.394          2**k * expm1(r) + (2**k - 1) cancels a little for k = 1

Edges are numpy's (and C99's): sin and cos of +-inf are NaN; sin, atan, log1p and expm1 keep
-0.0 and a subnormal x as they are (erf keeps -0.0), log1p(-1) = -inf and NaN below, expm1(-inf) = -1,
atan(+-inf) = +-pi/2, erf(+-inf) = +-1.

The Taylor coefficients are (-1)**n / n!-style fractions, rounded; erfcx's are computed with mpmath
(Chebyshev nodes, 60 digits) and rounded to float64.
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ll

from .mathlib import (EXP_CLAMP, _clamp, _exp, _exp_reduced, _expm1_reduced, _finite_positive, _FloatOps, _log,
                      _reduce_exp, _scale)

TWO_OVER_PI = 0.6366197723675814
PI_OVER_2 = (1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33)  # pi/2 = sum, each the rest rounded
# sin(r) = r + r^3 * S(r^2), cos(r) = 1 - r^2/2 + r^4 * C(r^2): Taylor, lowest order first
SIN_POLY = (-0.16666666666666666, 0.008333333333333333, -0.0001984126984126984, 2.7557319223985893e-06,
            -2.505210838544172e-08, 1.6059043836821613e-10, -7.647163731819816e-13, 2.8114572543455206e-15,
            -8.22063524662433e-18)
COS_POLY = (0.041666666666666664, -0.001388888888888889, 2.48015873015873e-05, -2.755731922398589e-07,
            2.08767569878681e-09, -1.1470745597729725e-11, 4.779477332387385e-14, -1.5619206968586225e-16)
# Beyond this the shifter trick no longer gives k, and k*pi/2 in three parts loses r.
TRIG_LIMIT = 2.0**40
# atan(j/8) = hi + lo, j = 0..8
ATAN_EIGHTHS = (
    (0.0, 0.0), (0.12435499454676144, -3.1253241424539383e-18), (0.24497866312686414, 1.0698755618734451e-17),
    (0.35877067027057225, -2.4623815582638635e-17), (0.4636476090008061, 2.2698777452961687e-17),
    (0.5585993153435624, -5.4556305485916264e-18), (0.6435011087932844, 1.5834785051444286e-17),
    (0.7188299996216245, -2.1478388444456983e-17), (0.7853981633974483, 3.061616997868383e-17),
)
ATAN_POLY = tuple((-1) ** n / (2 * n + 1) for n in range(1, 11))  # atan(u) = u + u^3 * A(u^2), Taylor to u^21
# float32 in float64: bands at tan(pi/8) and tan(3pi/8), Taylor to u**27 on |u| <= tan(pi/8)
ATAN_BANDS = (0.41421356237309503, 2.414213562373095)
ATAN_POLY_WIDE = tuple((-1) ** n / (2 * n + 1) for n in range(1, 14))
TWO_OVER_SQRT_PI = (1.1283791670955126, 1.533545961316588e-17)
ERF_SMALL = 0.75
# erf(x) = x * (2/sqrt(pi) + x^2 * E(x^2)) for |x| < ERF_SMALL: Taylor, lowest order first
ERF_POLY = (-0.37612638903183754, 0.11283791670955126, -0.026866170645131252, 0.005223977625442188,
            -0.0008548327023450853, 0.00012055332981789664, -1.492565035840625e-05, 1.6462114365889248e-06,
            -1.6365844691234924e-07, 1.4807192815879218e-08, -1.2290555301717928e-09, 9.422759064650411e-11,
            -6.7113668551641105e-12, 4.4632242632864775e-13, -2.7835162072109215e-14)
ERF_ONE = 6.0  # erf rounds to +-1 beyond: erfc(6) = 2e-17 is below half an ulp of 1
# erfc(x) * exp(x^2) on [previous upper, upper] as a polynomial in x - center: (upper, center, coefficients)
ERFCX_PIECES = (
    (1.25, 1.0, (
        0.427583576155807, -0.27321201478389856, 0.15437156137190844, -0.07922696894132675,
        0.037572296215290846, -0.01666186909041398, 0.0069701423749587215, -0.0027690647758827217,
        0.0010502693997892544, -0.0003819545259742352, 0.00013366297378477094, -4.5143980511976893e-05,
        1.4753193084942845e-05, -4.674438397976378e-06, 1.439372872096201e-06, -4.41102555722327e-07,
        1.2871757903101986e-07)),
    (1.875, 1.5625, (
        0.31164860864813004, -0.15447726507010615, 0.07027788197608918, -0.029778716321644545,
        0.011874318861759794, -0.00449003724005757, 0.001619545224722988, -0.0005598565218608144,
        0.0001861923523444967, -5.976243724291046e-05, 1.8562708361512523e-05, -5.592417039316319e-06,
        1.6374343709022124e-06, -4.6658075157512183e-07, 1.296873082891055e-07, -3.622892992753669e-08,
        9.600031205094696e-09)),
    (2.75, 2.3125, (
        0.22567919160681937, -0.08461290591397291, 0.030011846680757022, -0.010140340309814876,
        0.0032811548571550766, -0.001021067881056653, 0.0003066451274030079, -8.912886401004829e-05,
        2.513365736739954e-05, -6.8905064784453025e-06, 1.8398718922695982e-06, -4.79241680566459e-07,
        1.2194052339339358e-07, -3.0319666830027585e-08, 7.3887053408257965e-09, -1.8454811032803144e-09,
        4.317372625867166e-10)),
    (4.0, 3.375, (
        0.1606310681265444, -0.044119457241337846, 0.011727899937029176, -0.0030251966359096166,
        0.0007589306454171701, -0.00018552228304950924, 4.4264313373503906e-05, -1.0322921565487491e-05,
        2.356113291759771e-06, -5.268974420086213e-07, 1.1556674733459852e-07, -2.4884347918893887e-08,
        5.264259017056374e-09, -1.0928673712292231e-09, 2.2368906801554894e-10, -4.8171097536702815e-11,
        9.544276867333644e-12)),
    (6.0, 5.0, (
        0.11070463773306863, -0.021332789764826308, 0.004040688908937075, -0.0007528968134274429,
        0.00013810242090033954, -2.4953883568128706e-05, 4.4443343492985714e-06, -7.806319626987718e-07,
        1.3529365302452254e-07, -2.3147442750962905e-08, 3.911235575229903e-09, -6.530435800013467e-10,
        1.0775422677534866e-10, -1.7487307640493828e-11, 2.8223551375217665e-12, -5.033015540266547e-13,
        7.935106373004748e-14)),
)
# log1p(x) = x + x^2 * L(x) for |x| < LOG1P_SMALL, Taylor to x^7 (the next term is below 2**-62 of x)
LOG1P_SMALL = 2.0**-9
LOG1P_SERIES = (-0.5, 1 / 3, -0.25, 0.2, -1 / 6, 1 / 7)
# expm1(x) = exp(x) to the last bit above this (e**-40 is below 2**-57)
EXPM1_EXP = 40.0
SHORT_TERMS = 5  # polynomial terms of sin and cos (and a few more for atan, erf) for a float32 x
TINY = 2.0**-60  # below it sin, atan, erf's x * 2/sqrt(pi) aside, log1p and expm1 return x itself

SPECIAL_MAX_ULP: dict[tuple[str, str], float] = {  # see the table in the module docstring
    ("sin", "float32"): 0.51, ("sin", "float64"): 0.85,
    ("cos", "float32"): 0.51, ("cos", "float64"): 0.85,
    ("atan", "float32"): 0.51, ("atan", "float64"): 1.55,
    ("erf", "float32"): 0.51, ("erf", "float64"): 1.4,
    ("log1p", "float32"): 1.3, ("log1p", "float64"): 1.3,
    ("expm1", "float32"): 1.5, ("expm1", "float64"): 1.5,
}


def _two_sum(ops: _FloatOps, a: ll.Value, b: ll.Value) -> tuple[ll.Value, ll.Value]:
    """a + b = hi + lo exactly, whatever the magnitudes (Knuth's six operations)."""
    hi = ops.add(a, b)
    b_part = ops.sub(hi, a)
    return hi, ops.add(ops.sub(a, ops.sub(hi, b_part)), ops.sub(b, b_part))


def _keep_tiny(ops: _FloatOps, x: ll.Value, value: ll.Value) -> ll.Value:
    """x itself where |x| < TINY (+-0 and subnormals keep their sign and value), else value."""
    return ops.select(ops.lt(ops.fabs(x), ops.const(TINY)), x, value)


# --- sin, cos --------------------------------------------------------------------------


def _reduce_half_pi(ops: _FloatOps, x: ll.Value, short: bool) -> tuple[ll.Value, ll.Value, ll.Value]:
    """x = k * pi/2 + r_hi + r_lo, |r| <= pi/4 (|x| < TRIG_LIMIT); returns k's integer bits, r_hi, r_lo.

    `short` (a float32 x in float64): r in one double, which holds 29 bits more than float32 needs."""
    shifted = ops.fma(x, ops.const(TWO_OVER_PI), ops.const(ops.fmt.shifter))
    k_bits = ops.b.sub(ops.bits(shifted), ops.int_const(ops.fmt.shifter_bits))
    k = ops.sub(shifted, ops.const(ops.fmt.shifter))
    minus_k = ops.b.fneg(k)
    c1, c2, c3 = PI_OVER_2
    r1 = ops.fma(minus_k, ops.const(c1), x)  # exact: |r1| < 1 and its last bit is c1's
    if short:
        return k_bits, ops.fma(minus_k, ops.const(c2), r1), ops.const(0.0)
    p_hi = ops.mul(k, ops.const(c2))
    p_lo = ops.fma(k, ops.const(c2), ops.b.fneg(p_hi))
    hi, lo = _two_sum(ops, r1, ops.b.fneg(p_hi))
    lo = ops.fma(minus_k, ops.const(c3), ops.sub(lo, p_lo))
    r_hi = ops.add(hi, lo)
    return k_bits, r_hi, ops.sub(lo, ops.sub(r_hi, hi))


def _sin_cos_reduced(ops: _FloatOps, r: ll.Value, r_lo: ll.Value, short: bool) -> tuple[ll.Value, ll.Value]:
    """sin and cos of r + r_lo, |r| <= pi/4; `short`: r alone, to 2**-36 (Taylor to r**11 and r**12)."""
    z = ops.mul(r, r)
    if short:
        sin = ops.fma(ops.mul(r, z), ops.horner(z, SIN_POLY[:SHORT_TERMS]), r)
        cos = ops.fma(ops.mul(z, z), ops.horner(z, COS_POLY[:SHORT_TERMS]), ops.fma(z, ops.const(-0.5), ops.const(1.0)))
        return sin, cos
    r_lo_term = ops.mul(r_lo, ops.fma(z, ops.const(-0.5), ops.const(1.0)))  # r_lo * cos(r)
    sin = ops.add(r, ops.fma(ops.mul(r, z), ops.horner(z, SIN_POLY), r_lo_term))
    half_z = ops.mul(z, ops.const(0.5))
    w = ops.sub(ops.const(1.0), half_z)
    tail = ops.sub(ops.sub(ops.const(1.0), w), half_z)  # what 1 - z/2 lost
    tail = ops.add(tail, ops.fma(ops.mul(z, z), ops.horner(z, COS_POLY), ops.b.fneg(ops.mul(r, r_lo))))
    return sin, ops.add(w, tail)


def _sin_or_cos(ops: _FloatOps, x: ll.Value, quarter_turns: int, short: bool) -> ll.Value:
    """sin(x + quarter_turns * pi/2): quadrant 0..3 picks sin or cos of r and a sign."""
    k_bits, r, r_lo = _reduce_half_pi(ops, x, short)
    sin, cos = _sin_cos_reduced(ops, r, r_lo, short)
    quadrant = ops.b.add(k_bits, ops.int_const(quarter_turns))
    odd = ops.b.icmp_unsigned("!=", ops.b.and_(quadrant, ops.int_const(1)), ops.int_const(0))
    negative = ops.b.icmp_unsigned("!=", ops.b.and_(quadrant, ops.int_const(2)), ops.int_const(0))
    value = ops.select(odd, cos, sin)
    value = ops.select(negative, ops.b.fneg(value), value)
    return _clamp(ops, value, -1.0, 1.0)  # past TRIG_LIMIT r is not reduced: stay a sine at least


def _sin(ops: _FloatOps, x: ll.Value, short: bool = False) -> ll.Value:
    return _keep_tiny(ops, x, _sin_or_cos(ops, x, 0, short))


def _cos(ops: _FloatOps, x: ll.Value, short: bool = False) -> ll.Value:
    return _sin_or_cos(ops, x, 1, short)


# --- atan ------------------------------------------------------------------------------


def _table(ops: _FloatOps, index: ll.Value, values: tuple[float, ...]) -> ll.Value:
    """values[index] for a float index in 0 .. len - 1, as a chain of selects (a vector lane each)."""
    chosen = ops.const(values[0])
    for j, value in enumerate(values[1:], start=1):
        chosen = ops.select(ops.eq(index, ops.const(float(j))), ops.const(value), chosen)
    return chosen


def _atan_short(ops: _FloatOps, x: ll.Value) -> ll.Value:
    """atan of a float32 x in float64: a = |x| in three bands, atan(a) = base + atan(u) with one division,
    u = a, (a - 1) / (a + 1) (base pi/4) or -1/a (base pi/2), |u| <= tan(pi/8); Taylor to u**27 (2**-40)."""
    magnitude = ops.fabs(x)
    low, high = ops.lt(magnitude, ops.const(ATAN_BANDS[0])), ops.lt(magnitude, ops.const(ATAN_BANDS[1]))
    one = ops.const(1.0)
    numerator = ops.select(low, magnitude, ops.select(high, ops.sub(magnitude, one), ops.const(-1.0)))
    denominator = ops.select(low, one, ops.select(high, ops.add(magnitude, one), magnitude))
    u = ops.div(numerator, denominator)
    z = ops.mul(u, u)
    atan_u = ops.fma(ops.mul(u, z), ops.horner(z, ATAN_POLY_WIDE), u)
    base = ops.select(low, ops.const(0.0), ops.select(high, ops.const(PI_OVER_2[0] / 2), ops.const(PI_OVER_2[0])))
    return ops.copysign(ops.add(base, atan_u), x)


def _atan(ops: _FloatOps, x: ll.Value, short: bool = False) -> ll.Value:
    """atan(a) = atan(c) + atan(u) with t = a (or 1/a above 1, then pi/2 minus it), c = t rounded down
    to eighths and u = (t - c) / (1 + t*c), which for t = 1/a is (1 - a*c) / (a + c): one division."""
    if short:
        return _atan_short(ops, x)
    magnitude = ops.fabs(x)
    large = ops.gt(magnitude, ops.const(1.0))
    # floor(8/a) without dividing: how many of 8/1, 8/2, ..., 8/8 are >= a
    reciprocal_eighths = ops.const(0.0)
    for j in range(1, 9):
        below = ops.b.fcmp_ordered("<=", magnitude, ops.const(8.0 / j))
        reciprocal_eighths = ops.add(reciprocal_eighths, ops.select(below, ops.const(1.0), ops.const(0.0)))
    eighths = ops.select(large, reciprocal_eighths, ops.floor(ops.mul(magnitude, ops.const(8.0))))
    c = ops.mul(eighths, ops.const(0.125))
    numerator = ops.select(large, ops.fma(ops.b.fneg(magnitude), c, ops.const(1.0)), ops.sub(magnitude, c))
    denominator = ops.select(large, ops.add(magnitude, c), ops.fma(magnitude, c, ops.const(1.0)))
    u = ops.div(numerator, denominator)  # 0 <= u < 1/8, up to rounding at the eighths
    u = ops.select(ops.eq(magnitude, ops.const(float("inf"))), ops.const(0.0), u)  # not (1 - inf*0) / inf
    atan_u = ops.fma(ops.mul(u, ops.mul(u, u)), ops.horner(ops.mul(u, u), ATAN_POLY), u)
    c_hi = _table(ops, eighths, tuple(hi for hi, _ in ATAN_EIGHTHS))
    c_lo = _table(ops, eighths, tuple(lo for _, lo in ATAN_EIGHTHS))
    direct = ops.add(c_hi, ops.add(c_lo, atan_u))
    half_pi_hi, half_pi_lo = PI_OVER_2[0], PI_OVER_2[1]
    complement = ops.add(ops.sub(ops.const(half_pi_hi), c_hi), ops.sub(ops.sub(ops.const(half_pi_lo), c_lo), atan_u))
    return ops.copysign(ops.select(large, complement, direct), x)


# --- erf -------------------------------------------------------------------------------


def _erf(ops: _FloatOps, x: ll.Value, short: bool = False) -> ll.Value:
    magnitude = ops.fabs(x)
    z = ops.mul(x, x)
    two_hi, two_lo = TWO_OVER_SQRT_PI
    polynomial = ERF_POLY[:2 * SHORT_TERMS - 1] if short else ERF_POLY  # short: to x**19, 2**-34
    small = ops.fma(x, ops.const(two_hi), ops.mul(x, ops.fma(z, ops.horner(z, polynomial), ops.const(two_lo))))
    a = ops.select(ops.gt(magnitude, ops.const(ERF_ONE)), ops.const(ERF_ONE), magnitude)  # NaN stays
    center, coefficients = _erfcx_piece(ops, a)
    d = ops.sub(a, center)  # exact: a and center are within a factor 2
    erfcx = ops.horner_values(d, coefficients)
    square = ops.mul(a, a)
    square_lo = ops.fma(a, a, ops.b.fneg(square))
    erfc = ops.mul(_exp(ops, ops.b.fneg(square), ops.b.fneg(square_lo)), erfcx)
    large = ops.copysign(ops.sub(ops.const(1.0), erfc), x)
    return ops.select(ops.lt(magnitude, ops.const(ERF_SMALL)), small, large)


def _erfcx_piece(ops: _FloatOps, a: ll.Value) -> tuple[ll.Value, list[ll.Value]]:
    """The center and coefficients of the ERFCX_PIECES piece that holds a, chosen per lane."""
    upper, center, coefficients = ERFCX_PIECES[-1]
    chosen_center = ops.const(center)
    chosen = [ops.const(c) for c in coefficients]
    for upper, center, coefficients in reversed(ERFCX_PIECES[:-1]):
        below = ops.lt(a, ops.const(upper))
        chosen_center = ops.select(below, ops.const(center), chosen_center)
        chosen = [ops.select(below, ops.const(c), old) for c, old in zip(coefficients, chosen)]
    return chosen_center, chosen


# --- log1p, expm1 ----------------------------------------------------------------------


def _log1p(ops: _FloatOps, x: ll.Value) -> ll.Value:
    s, error = _two_sum(ops, ops.const(1.0), x)
    correction = ops.select(_finite_positive(ops, s), ops.div(error, s), ops.const(0.0))  # 0/0 and inf-inf away
    value = ops.add(_log(ops, s), correction)
    # Where s's rounding error is as large as s - 1, log(s)'s error would show in the sum: a series there.
    series = ops.fma(ops.mul(x, x), ops.horner(x, LOG1P_SERIES), x)
    return _keep_tiny(ops, x, ops.select(ops.lt(ops.fabs(x), ops.const(LOG1P_SMALL)), series, value))


def _expm1(ops: _FloatOps, x: ll.Value) -> ll.Value:
    low, high = EXP_CLAMP[ops.dtype]
    k, r, r_error = _reduce_exp(ops, _clamp(ops, x, low, high))
    scale = ops.pow2(k)  # garbage past +-EXPM1_EXP (k outside the normal exponents): selected away
    value = ops.fma(scale, _expm1_reduced(ops, r, r_error), ops.sub(scale, ops.const(1.0)))
    large = _scale(ops, _exp_reduced(ops, r, r_error), k)  # exp(x) from the same reduction
    value = ops.select(ops.gt(x, ops.const(EXPM1_EXP)), large, value)
    value = ops.select(ops.lt(x, ops.const(-EXPM1_EXP)), ops.const(-1.0), value)
    return _keep_tiny(ops, x, value)


# --- float32 through float64 -----------------------------------------------------------


def _in_float64(compute: Callable[..., ll.Value]) -> Callable[[ll.IRBuilder, ll.Value], ll.Value]:
    """The emitter of `compute`: float64 as it is, float32 widened, computed with the short
    polynomials (what float32 needs, with 2**-30 to spare), rounded once."""

    def emitter(b: ll.IRBuilder, x: ll.Value) -> ll.Value:
        ops = _FloatOps(b, x.type)
        if ops.dtype == "float64":
            return compute(ops, x)
        wide = ll.VectorType(ll.DoubleType(), x.type.count) if isinstance(x.type, ll.VectorType) else ll.DoubleType()
        return b.fptrunc(compute(_FloatOps(b, wide), b.fpext(x, wide), short=True), x.type)

    emitter.__doc__ = compute.__doc__
    return emitter


def _native(compute: Callable[[_FloatOps, ll.Value], ll.Value]) -> Callable[[ll.IRBuilder, ll.Value], ll.Value]:
    """The emitter of `compute` in the operand's own type (float32 with float32's coefficients)."""

    def emitter(b: ll.IRBuilder, x: ll.Value) -> ll.Value:
        return compute(_FloatOps(b, x.type), x)

    emitter.__doc__ = compute.__doc__
    return emitter


SPECIAL_EMITTERS: dict[str, Callable[..., ll.Value]] = {
    "sin": _in_float64(_sin),
    "cos": _in_float64(_cos),
    "atan": _in_float64(_atan),
    "erf": _in_float64(_erf),
    "log1p": _native(_log1p),
    "expm1": _native(_expm1),
}
