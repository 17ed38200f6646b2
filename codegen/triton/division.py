"""Exact rounding and division for Triton kernels: round half to even, C's fmod, numpy's divmod of
floats and Python's of integers, as HELPERS (kernel.py) written with arithmetic only (math.py says why).

fmod is exact for every pair of floats, as C's: the GPU's own frem is x - trunc(x / y) * y, off for
large quotients, so fmod takes |x| modulo |y| * 2**gap in steps, the gap chosen so each quotient is
below 2**53 and its product and remainder are exact. A float32's fmod is computed in float64 (where
it is a float32, so rounding it back is exact); the divmod steps after it run in the operands' own
type, as numpy's do, with a correctly rounded division (Triton's float32 `/` is the GPU's approximate
div.full) and a floor through float64 (float32's flushes subnormals on the GPU).
"""

from __future__ import annotations

from .kernel import helper
from .math import INF, NAN, SMALLEST_NORMAL, number

# The exact fmod removes 52 bits of the exponent gap per step: float64's largest gap, 2**1024 over
# 2**-1074, takes 41 steps; a float32's, 2**128 over 2**-149, takes 6.
FMOD_STEPS = {"float16": 2, "float32": 7, "float64": 42}  # float16's gap: 2**16 over 2**-24

helper("fc_rint", f'''
@triton.jit
def fc_rint(x):
    """The nearest integer, halves to even: |x| + 2**52 rounds |x| to an integer in the current
    (nearest-even) mode; 2**52 and beyond, inf and NaN are their own. The sign stays (-0.4 -> -0.0)."""
    magnitude = tl.abs(x)
    rounded = (magnitude + {number(2.0**52)}) - {number(2.0**52)}
    return tl.where(magnitude < {number(2.0**52)}, fc_copysign(rounded, x), x)
''')

helper("fc_exponent", f'''
@triton.jit
def fc_exponent(v):
    """floor(log2(v)) as an int64 for a positive finite float64 v, subnormals included."""
    subnormal = v < {number(SMALLEST_NORMAL)}
    w = tl.where(subnormal, v * {number(2.0**54)}, v)
    return ((w.to(tl.int64, bitcast=True) >> 52) - 1023) - tl.where(subnormal, 54, 0)
''')

helper("fc_fmod", f'''
@triton.jit
def fc_fmod(x, y, steps: tl.constexpr):
    """C's fmod(x, y), exact, in float64: each step takes |x| modulo |y| * 2**gap, the gap chosen so
    the quotient is below 2**53; then q * (|y| * 2**gap) and the remainder are exact (one fma)."""
    x, y = tl.broadcast(x, y)  # one shape: the loop carries a (and the interpreter's 0-d int1 blocks)
    a = tl.abs(x)
    b = tl.abs(y)
    b_exponent = fc_exponent(b)
    for _ in range(steps):
        gap = fc_exponent(a) - b_exponent - 52
        gap = tl.where(gap > 0, gap, 0)
        half = gap >> 1
        scaled = b * fc_pow2(half) * fc_pow2(gap - half)  # exact, <= a
        q = tl.floor(a / scaled)  # the quotient's floor, or one above it
        r = tl.fma(-q, scaled, a)
        a = tl.where(r < 0.0, r + scaled, r)
    result = tl.where(b == {INF}, x, fc_copysign(a, x))
    return tl.where((tl.abs(x) == {INF}) | (x != x) | (y != y) | (y == 0.0), {NAN}, result)
''')

helper("fc_signed_zero", '''
@triton.jit
def fc_signed_zero(v):
    """+-0 with the sign of v (not NaN), in v's dtype: -0.0 is told from +0.0 by 1 / v."""
    negative = (v < 0.0) | ((v == 0.0) & (fc_div(v * 0.0 + 1.0, v) < 0.0))
    return tl.where(negative, -0.0, 0.0).to(v.dtype)
''')

helper("fc_float_divmod", '''
@triton.jit
def fc_float_divmod(x, y, mod, quotient_of):
    """numpy's npy_divmod from mod = fmod(x, y) and quotient_of = x / y, in x's dtype: the quotient
    from (x - mod) / y, floored and snapped, the remainder taking y's sign; x // 0 is x / 0 and
    x % 0 is fmod's NaN. Returns (x // y, x % y)."""
    x, y = tl.broadcast(x, y)
    div = fc_div(x - mod, y)
    fix = (mod != 0.0) & ((y < 0.0) != (mod < 0.0))  # a NaN mod takes the fix too: NaN either way
    mod = tl.where(fix, mod + y, mod)
    div = tl.where(fix, div - 1.0, div)
    mod = tl.where(mod == 0.0, fc_signed_zero(y), mod)
    floored = fc_floor(div)
    floored = tl.where(div - floored > 0.5, floored + 1.0, floored)
    quotient = tl.where(div == 0.0, fc_signed_zero(quotient_of), floored)
    return tl.where(y == 0.0, quotient_of, quotient), mod
''')

helper("fc_int_divmod", '''
@triton.jit
def fc_int_divmod(x, y):
    """Python's (x // y, x % y) on integers without a trap: (0, 0) for y = 0, (-x wrapping, 0) for
    y = -1 (the most negative integer // -1 is itself, as numpy's)."""
    x, y = tl.broadcast(x, y)
    special = (y == 0) | (y == -1)
    divisor = tl.where(special, 1, y).to(x.dtype)
    quotient = x // divisor  # C's: toward zero
    remainder = x % divisor
    adjust = (remainder != 0) & ((remainder ^ y) < 0)  # floor differs where the signs differ
    quotient = tl.where(adjust, quotient - 1, quotient)
    remainder = tl.where(adjust, remainder + y, remainder)
    quotient = tl.where(special, tl.where(y == 0, 0, 0 - x), quotient).to(x.dtype)
    return quotient, tl.where(special, 0, remainder).to(x.dtype)
''')

helper("fc_uint_divmod", '''
@triton.jit
def fc_uint_divmod(x, y):
    """(x // y, x % y) of uint8 or uint16: C's division is already floor division; (0, 0) for y = 0."""
    x, y = tl.broadcast(x, y)
    divisor = tl.where(y == 0, 1, y).to(x.dtype)
    return tl.where(y == 0, 0, x // divisor).to(x.dtype), tl.where(y == 0, 0, x % divisor).to(x.dtype)
''')

helper("fc_div", '''
@triton.jit
def fc_div(a, b):
    """a / b correctly rounded: Triton's `/` of float32 is the GPU's approximate div.full; float16's
    through float64, where the quotient is exact enough that rounding it to half once is correct."""
    if a.dtype == tl.float32:
        return tl.div_rn(a, b)
    elif a.dtype == tl.float16:
        return (a.to(tl.float64) / b.to(tl.float64)).to(tl.float16)
    else:
        return a / b
''')

helper("fc_floor", '''
@triton.jit
def fc_floor(a):
    """floor(a): a float32 or float16 through float64, whose floor keeps subnormals (float32's flushes them)."""
    if a.dtype == tl.float32:
        return tl.floor(a.to(tl.float64)).to(tl.float32)
    elif a.dtype == tl.float16:
        return tl.floor(a.to(tl.float64)).to(tl.float16)
    else:
        return tl.floor(a)
''')
