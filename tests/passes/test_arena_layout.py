"""MemoryPlan.layout places temps as the first-fit loop it replaced did, offset for offset (it now
compares each temp with the earlier ones as arrays: a long chain cut into kernels has thousands)."""

from __future__ import annotations

import numpy as np
import pytest

from flowc.passes.memory import ARRAYS_FROM, MemoryPlan


def first_fit_by_loops(lifetimes: list[tuple[int, int]], nbytes: list[int], alignment: int = 64) -> tuple[list[int], int]:
    """The layout as a plain loop: largest first, each at the lowest offset no live temp overlaps."""
    order = sorted(range(len(nbytes)), key=lambda t: -nbytes[t])
    placed: list[tuple[int, int, int]] = []
    offsets = [0] * len(nbytes)
    for t in order:
        size = -(-max(nbytes[t], 1) // alignment) * alignment
        start, end = lifetimes[t]
        busy = sorted((o, e) for o, e, u in placed if lifetimes[u][0] <= end and start <= lifetimes[u][1])
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, e)
        offsets[t] = offset
        placed.append((offset, offset + size, t))
    return offsets, max((e for _, e, _ in placed), default=0)


@pytest.mark.parametrize("seed", range(40))
def test_the_layout_is_the_first_fit_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(0, 60)) if seed % 2 else int(rng.integers(ARRAYS_FROM, 2 * ARRAYS_FROM))
    starts = rng.integers(0, count + 1, count)
    lifetimes = [(int(s), int(s + rng.integers(0, 20))) for s in starts]
    nbytes = [int(n) for n in rng.choice([0, 4, 64, 100, 256, 4096, 5000], count)]
    plan = MemoryPlan()
    plan.lifetimes = lifetimes
    assert plan.layout(nbytes) == first_fit_by_loops(lifetimes, nbytes)
