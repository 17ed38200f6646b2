"""Single kernels of the random ops (random_uniform, random_normal, random_uniform_like): the bits of
Note [random streams] in ir/ops/philox.py, as the CPU computes them (codegen/llvm/kernels/philox.py).

Element i of the result is number i of the stream of (seed, step): the seed is the op's attribute,
written into the source; the step is the op's operand (the run counter, a scalar int64 buffer that the
function takes as its argument "step", as on the CPU), read once per block. Philox-4x32-10 is a
HELPERS function, in uint32 arithmetic: a 32x32-bit product is taken in uint64 (mulhilo), which the
interpreter and the GPU compute alike. The arithmetic after the words is float64, as the reference's.
"""

from __future__ import annotations

import dataclasses
import math

from flowc.ir import Operation

from ..body import scalar_text
from ..expressions import triton_dtype
from ..kernel import TritonKernel, emits_single, helper, single_op
from .single import SingleWriter, output_elements
from flowc.ir.ops.philox import MULTIPLIERS, ROUNDS, WEYL

PHILOX = helper("flowc_philox", f'''
@triton.jit
def flowc_philox(block, step, key0, key1):
    """Philox-4x32-10: the four uint32 words of blocks `block` (uint64) of the stream of (key, step)."""
    c0 = block.to(tl.uint32)
    c1 = (block >> 32).to(tl.uint32)
    c2 = step.to(tl.uint32) + c0 * 0
    c3 = (step >> 32).to(tl.uint32) + c0 * 0
    k0 = key0
    k1 = key1
    for _ in tl.static_range({ROUNDS}):
        product0 = c0.to(tl.uint64) * {MULTIPLIERS[0]}
        product1 = c2.to(tl.uint64) * {MULTIPLIERS[1]}
        c0, c1, c2, c3 = ((product1 >> 32).to(tl.uint32) ^ c1 ^ k0, product1.to(tl.uint32),
                          (product0 >> 32).to(tl.uint32) ^ c3 ^ k1, product0.to(tl.uint32))
        k0 = k0 + {WEYL[0]}  # the bump before the next round (one after the last is not used)
        k1 = k1 + {WEYL[1]}
    return c0, c1, c2, c3
''')

WORD = helper("flowc_philox_word", '''
@triton.jit
def flowc_philox_word(w0, w1, w2, w3, position):
    """Word `position` (0..3) of a block."""
    return tl.where(position == 0, w0, tl.where(position == 1, w1, tl.where(position == 2, w2, w3)))
''')

UNIFORM = helper("flowc_uniform", '''
@triton.jit
def flowc_uniform(index, step, key0, key1, DOUBLE: tl.constexpr):
    """Uniform number `index` (uint64) of the stream in [0, 1), as float64, of float32's or float64's precision."""
    if DOUBLE:
        w0, w1, w2, w3 = flowc_philox(index // 2, step, key0, key1)
        first = (index * 2) & 3
        high = (flowc_philox_word(w0, w1, w2, w3, first) >> 5).to(tl.uint64)
        low = (flowc_philox_word(w0, w1, w2, w3, first + 1) >> 6).to(tl.uint64)
        return (high * 67108864 + low).to(tl.float64) * 1.1102230246251565e-16
    else:
        w0, w1, w2, w3 = flowc_philox(index // 4, step, key0, key1)
        word = flowc_philox_word(w0, w1, w2, w3, index & 3)
        return (word >> 8).to(tl.float64) * 5.960464477539063e-08
''')
assert 2.0**-53 == 1.1102230246251565e-16 and 2.0**-24 == 5.960464477539063e-08


def _f64(number: float) -> str:
    return f"tl.full([], {scalar_text(float(number))}, tl.float64)"


@emits_single("random_uniform", "random_normal", "random_uniform_like")
def emit_random(op: Operation, name: str) -> TritonKernel:
    inner = single_op(op)
    double = inner.results[0].type.dtype.itemsize == 8
    dtype = triton_dtype(inner.results[0].type.dtype)
    seed = inner.seed & (2**64 - 1)

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        lines = writer.lines
        lines.append(f"step = tl.load({writer.pointer(inner.operands[0])}).to(tl.uint64)")
        lines.append(f"key0 = tl.full([], {seed & 0xFFFFFFFF}, tl.uint32)")
        lines.append(f"key1 = tl.full([], {seed >> 32}, tl.uint32)")
        lines.append("index = offsets.to(tl.uint64)")  # the row-major index of the element
        if inner.name in ("random_uniform", "random_uniform_like"):
            lines.append(f"u = flowc_uniform(index, step, key0, key1, {double})")
            lines.append(f"drawn = {_f64(inner.minval)} + {_f64(inner.maxval - inner.minval)} * u")
        else:  # Box-Muller on the pair's uniform numbers 2k and 2k + 1
            lines.append("first = index - (index & 1)")
            lines.append(f"u = flowc_uniform(first, step, key0, key1, {double})")
            lines.append(f"v = flowc_uniform(first + 1, step, key0, key1, {double})")
            # float64: tl.sqrt is the correctly rounded square root (sqrt_rn takes float32 only)
            lines.append(f"radius = tl.sqrt({_f64(-2.0)} * tl.log({_f64(1.0)} - u))")
            lines.append(f"angle = {_f64(2.0 * math.pi)} * v")
            lines.append("z = radius * tl.where((index & 1) == 1, tl.sin(angle), tl.cos(angle))")
            lines.append(f"drawn = {_f64(inner.mean)} + {_f64(inner.stddev)} * z")
        return f"drawn.to({dtype})"

    # minval + scale * u rounded twice, as the reference and the CPU compute it: no fma on the GPU
    return dataclasses.replace(output_elements(op, name, value), fp_fusion=False)
