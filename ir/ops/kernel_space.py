"""The iteration space of a reduction kernel and how its arguments walk it.

Analyses of a fusion op's region that both the schedule pass
(passes/schedule.py) and the backends ask: they follow from Note [kernel
contract] in fusion.py, so they live beside it rather than in one backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

from ..core import BlockArgument, Operation, Value


@dataclass
class Space:
    """The full shape F of a reduction kernel split into kept (outer) and reduced (inner) axes."""

    full: Value  # a value of shape F
    reduced: tuple[int, ...]
    kept: tuple[int, ...]


def reduction_space(op: Operation) -> Space:
    """The space of a reduction fusion op: that of its first reduction (the contract makes them all alike)."""
    reductions = [o for o in op.regions[0].entry.ops if o.is_reduction]
    first = reductions[0]
    full = first.operands[0]
    reduced = first.reduced_axes()
    kept = tuple(a for a in range(full.type.rank) if a not in reduced)
    return Space(full, reduced, kept)


def value_levels(op: Operation, shape_of: Callable[[Value], Sequence[Hashable]]) -> dict[Value, str]:
    """Where each value computed in a reduction kernel's region lives: "full", one per point of F
    (softmax's exp(x - max)), or "outer", one per output element (the max itself, 1 / sum).
    Reductions are outer; any other op is full when its shape is F's, else outer (Note [kernel
    contract]). Shapes compare as the contract compares them, symbolically (`shape_of`, a
    DimTies' shape): an f32[?,?] tied to [b, 1] outside the kernel is outer where F is f32[?,?]
    too (fuzzer seed 4229 wrote it at F's extent)."""
    full_shape = shape_of(reduction_space(op).full)
    level: dict[Value, str] = {}
    for inner in op.regions[0].entry.ops:
        if inner.is_terminator:
            continue
        kind = "full" if not inner.is_reduction and shape_of(inner.results[0]) == full_shape else "outer"
        for result in inner.results:
            level[result] = kind
    return level


def reads_rows(arg: BlockArgument, reduced: tuple[int, ...], rank: int) -> bool | None:
    """True: arg steps along every reduced axis (its rows are contiguous); False: along none (one
    value per row, splatted); None: along some only."""
    moves = [arg.type.shape[own] != 1 for own in (axis - (rank - arg.type.rank) for axis in reduced) if own >= 0]
    if len(moves) == len(reduced) and all(moves):
        return True
    return False if not any(moves) else None


def steps_along(arg: BlockArgument, full: Value, axes: tuple[int, ...]) -> bool | None:
    """Whether arg steps along all of `axes` (True), none (False), or some (None). An axis where F
    is statically 1 counts either way."""
    rank = full.type.rank
    moves = []
    for axis in axes:
        if full.type.shape[axis] == 1:
            continue
        own = axis - (rank - arg.type.rank)
        moves.append(own >= 0 and arg.type.shape[own] != 1)
    if all(moves):
        return True
    return False if not any(moves) else None
