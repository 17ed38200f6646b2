"""Philox-4x32-10 in LLVM IR: the same bits as ir/ops/philox.py (Note [random streams])."""

from __future__ import annotations

import math

from llvmlite import ir as ll

from flowc.ir import Operation
from flowc.ir.ops.philox import MULTIPLIERS, ROUNDS, WEYL

from ..types import F64, I32, I64, compute_type

C32 = lambda value: ll.Constant(I32, value & 0xFFFFFFFF)  # noqa: E731


def philox_block(b: ll.IRBuilder, block: ll.Value, step: ll.Value, seed: int) -> list[ll.Value]:
    """The four words of block `block` (i64) of the stream of (seed, step)."""
    c = [b.trunc(block, I32), b.trunc(b.lshr(block, ll.Constant(I64, 32)), I32),
         b.trunc(step, I32), b.trunc(b.lshr(step, ll.Constant(I64, 32)), I32)]
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for round_ in range(ROUNDS):
        if round_:
            k0, k1 = (k0 + WEYL[0]) & 0xFFFFFFFF, (k1 + WEYL[1]) & 0xFFFFFFFF
        hi0, lo0 = _mulhilo(b, MULTIPLIERS[0], c[0])
        hi1, lo1 = _mulhilo(b, MULTIPLIERS[1], c[2])
        c = [b.xor(b.xor(hi1, c[1]), C32(k0)), lo1, b.xor(b.xor(hi0, c[3]), C32(k1)), lo0]
    return c


def _mulhilo(b: ll.IRBuilder, multiplier: int, x: ll.Value) -> tuple[ll.Value, ll.Value]:
    product = b.mul(ll.Constant(I64, multiplier), b.zext(x, I64))
    return b.trunc(b.lshr(product, ll.Constant(I64, 32)), I32), b.trunc(product, I32)


def _word(b: ll.IRBuilder, words: list[ll.Value], position: ll.Value) -> ll.Value:
    """words[position] for a run-time position in 0..3."""
    chosen = words[3]
    for index in (2, 1, 0):
        chosen = b.select(b.icmp_unsigned("==", position, ll.Constant(I64, index)), words[index], chosen)
    return chosen


def _uniform(b: ll.IRBuilder, words: list[ll.Value], index: ll.Value, double: bool) -> ll.Value:
    """Uniform number `index` of the stream (whose block is `words`) in [0, 1), as a double."""
    if not double:
        word = _word(b, words, b.and_(index, ll.Constant(I64, 3)))
        return b.fmul(b.uitofp(b.lshr(word, C32(8)), F64), ll.Constant(F64, 2.0**-24))
    first = b.and_(b.mul(index, ll.Constant(I64, 2)), ll.Constant(I64, 3))
    high = b.zext(b.lshr(_word(b, words, first), C32(5)), I64)
    low = b.zext(b.lshr(_word(b, words, b.add(first, ll.Constant(I64, 1))), C32(6)), I64)
    mantissa = b.add(b.mul(high, ll.Constant(I64, 1 << 26)), low)
    return b.fmul(b.uitofp(mantissa, F64), ll.Constant(F64, 2.0**-53))


def emit_random(b: ll.IRBuilder, op: Operation, step: ll.Value, index: ll.Value) -> ll.Value:
    """Element `index` of a random op, in its dtype."""
    double = op.result.type.dtype.itemsize == 8
    per_block = 2 if double else 4  # uniform numbers per Philox block
    if op.name in ("random_uniform", "random_uniform_like"):
        words = philox_block(b, b.udiv(index, ll.Constant(I64, per_block)), step, op.seed)
        u = _uniform(b, words, index, double)
        value = b.fadd(ll.Constant(F64, op.minval), b.fmul(ll.Constant(F64, op.maxval - op.minval), u))
    else:
        pair = b.udiv(index, ll.Constant(I64, 2))
        first = b.mul(pair, ll.Constant(I64, 2))  # the pair's uniforms 2k and 2k+1 share one block
        words = philox_block(b, b.udiv(first, ll.Constant(I64, per_block)), step, op.seed)
        u = _uniform(b, words, first, double)
        v = _uniform(b, words, b.add(first, ll.Constant(I64, 1)), double)
        log = _call(b, "llvm.log", b.fsub(ll.Constant(F64, 1.0), u))
        radius = _call(b, "llvm.sqrt", b.fmul(ll.Constant(F64, -2.0), log))
        angle = b.fmul(ll.Constant(F64, 2.0 * math.pi), v)
        odd = b.icmp_unsigned("!=", b.and_(index, ll.Constant(I64, 1)), ll.Constant(I64, 0))
        z = b.fmul(radius, b.select(odd, _call(b, "llvm.sin", angle), _call(b, "llvm.cos", angle)))
        value = b.fadd(ll.Constant(F64, op.mean), b.fmul(ll.Constant(F64, op.stddev), z))
    target = compute_type(op.result.type.dtype)
    return value if double else b.fptrunc(value, target)


def _call(b: ll.IRBuilder, name: str, x: ll.Value) -> ll.Value:
    return b.call(b.module.declare_intrinsic(name, [x.type]), [x])
