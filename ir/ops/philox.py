"""Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011), the counter-based generator behind random_uniform and random_normal.

Note [random streams]: a random op's value is a pure function of its `seed`
attribute, the run counter `step` and the element index, defined exactly here
so that every backend computes the same bits.

- Philox-4x32-10 maps a counter (c0, c1, c2, c3) and a key (k0, k1), all
  uint32, to four uint32 words. One round, with mulhilo(a, b) the high and low
  32 bits of the 64-bit product a * b:
      hi0, lo0 = mulhilo(0xD2511F53, c0)
      hi1, lo1 = mulhilo(0xCD9E8D57, c2)
      (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
  Ten rounds; before each round but the first the key is bumped:
  k0 += 0x9E3779B9, k1 += 0xBB67AE85 (mod 2**32).
- key = (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF), the seed taken mod 2**64.
- Block j has counter (j & 0xFFFFFFFF, j >> 32, step & 0xFFFFFFFF,
  (step >> 32) & 0xFFFFFFFF), step taken mod 2**64. Its four output words are
  words 4j, 4j+1, 4j+2, 4j+3 of the stream.
- Uniform number i in [0, 1):
      float32: (word[i] >> 8) * 2**-24
      float64: ((word[2i] >> 5) * 2**26 + (word[2i+1] >> 6)) * 2**-53
- Normal numbers come in pairs from uniform numbers of the same precision
  (in float64 arithmetic): with u = uniform[2k], v = uniform[2k+1],
      normal[2k]   = sqrt(-2 log(1 - u)) * cos(2 pi v)
      normal[2k+1] = sqrt(-2 log(1 - u)) * sin(2 pi v)
  (1 - u is in (0, 1], so the log is finite.)
"""

from __future__ import annotations

import numpy as np

from ..types import DType, float32

MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
WEYL = (0x9E3779B9, 0xBB67AE85)  # the key bumps: golden ratio and sqrt(3) - 1
ROUNDS = 10
MASK32 = 0xFFFFFFFF


def philox4x32(counter: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox-4x32-10 of counters of shape (4, n) under one key; (4, n) uint32 words."""
    # uint64 holds a full 32x32-bit product, so mulhilo is a multiply, a shift and a mask.
    c0, c1, c2, c3 = (np.asarray(word, dtype=np.uint64) for word in counter)
    k0, k1 = key[0] & MASK32, key[1] & MASK32
    for round_ in range(ROUNDS):
        if round_:
            k0, k1 = (k0 + WEYL[0]) & MASK32, (k1 + WEYL[1]) & MASK32
        product0, product1 = c0 * MULTIPLIERS[0], c2 * MULTIPLIERS[1]
        c0, c1, c2, c3 = (
            (product1 >> 32) ^ c1 ^ k0,
            product1 & MASK32,
            (product0 >> 32) ^ c3 ^ k1,
            product0 & MASK32,
        )
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def words(seed: int, step: int, count: int) -> np.ndarray:
    """The first `count` uint32 words of the stream of (seed, step)."""
    blocks = np.arange(-(-count // 4), dtype=np.uint64)
    step &= (1 << 64) - 1
    counter = np.stack([
        blocks & MASK32,
        blocks >> 32,
        np.full_like(blocks, step & MASK32),
        np.full_like(blocks, step >> 32),
    ])
    key = (seed & MASK32, (seed >> 32) & MASK32)
    return philox4x32(counter, key).T.reshape(-1)[:count]  # block-major: word 4j + i


def uniform(seed: int, step: int, count: int, dtype: DType) -> np.ndarray:
    """`count` uniform numbers in [0, 1) with dtype's precision, as float64."""
    if dtype == float32:
        return (words(seed, step, count) >> 8) * 2.0**-24
    stream = words(seed, step, 2 * count).astype(np.uint64)
    mantissa = (stream[0::2] >> 5) * (1 << 26) + (stream[1::2] >> 6)  # 53 bits, exact in float64
    return mantissa * 2.0**-53


def normal(seed: int, step: int, count: int, dtype: DType) -> np.ndarray:
    """`count` standard normal numbers by Box-Muller, as float64."""
    pairs = -(-count // 2)
    u = uniform(seed, step, 2 * pairs, dtype)
    radius = np.sqrt(-2.0 * np.log(1.0 - u[0::2]))
    angle = 2.0 * np.pi * u[1::2]
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).reshape(-1)[:count]
