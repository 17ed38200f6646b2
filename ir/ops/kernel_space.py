"""The iteration space of a reduction kernel and how its arguments walk it.

Analyses of a fusion op's region that both the schedule pass
(passes/schedule.py) and the backends ask: they follow from Note [kernel
contract] in fusion.py, so they live beside it rather than in one backend.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# -- products -------------------------------------------------------------------------------

PACK_BYTES = 1 << 16  # the largest transposed copy of B a dot tile of a narrow product makes on the stack


def dot_applies(matmul: Operation) -> bool:
    """op(B)'s columns are contiguous (B transposed) or can be copied so (k known, the copy small):
    a narrow product (Note [narrow products] in passes/schedule.py) then runs as dot tiles, which
    the schedule pass's split_k needs and codegen/llvm/kernels/narrow.py emits."""
    if matmul.transpose_b:
        return True
    k = matmul.operands[1].type.shape[-2]
    n = matmul.result.type.shape[-1]
    return k is not None and k * n * matmul.result.type.dtype.itemsize <= PACK_BYTES
