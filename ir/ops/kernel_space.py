"""The iteration space of a reduction kernel and how its arguments walk it.

Analyses of a fusion op's region that both the schedule pass
(passes/schedule.py) and the backends ask: they follow from Note [kernel
contract] in fusion.py, so they live beside it rather than in one backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

from ..core import BlockArgument, Operation, OpResult, Value

# The ops a "matmul" kernel is built around, its product (Note [kernel contract] in fusion.py): a matrix
# product, or a convolution or its filter gradient that a target computes directly (Note [direct
# convolution] in passes/schedule.py).
PRODUCTS = ("matmul", "conv2d", "conv2d_backprop_filter")

# Note [loops run by a gang] (passes/gang_loops.py): the multiply-adds of a turn's products (the kernels
# a gang splits: GANG_PRODUCTS) below which a loop runs on one thread; the pass decides on known shapes,
# the entry point (codegen/llvm/gang.py) again on the fed ones. Set where a tanh RNN of 128 units began to
# gain from a gang (bench/RESULTS.md, "Control flow": from a batch of 24, 24 x 192 x 128 a turn).
GANG_MIN_MULTIPLY_ADDS = 1 << 19
GANG_PRODUCTS = ("blas", "narrow")  # the product schedules a gang splits by rows


def gang_products(loop: Operation) -> list[tuple[Operation, Operation]]:
    """(kernel, matmul) of each product kernel of a while loop's regions that a gang splits."""
    found = []
    for region in loop.regions:
        for kernel in region.entry.ops:
            if kernel.name == "fusion" and kernel.attributes.get("kind") == "matmul" \
                    and kernel.attributes.get("schedule") in GANG_PRODUCTS:
                matmul = next((o for o in kernel.regions[0].entry.ops if o.name == "matmul"), None)
                if matmul is not None:
                    found.append((kernel, matmul))
    return found


ROW_READS = ("gather", "read_row")  # ops that read rows of their first operand at indices


def one_row_index(op: Operation) -> bool:
    """A gather or read_row of one scalar index along axis 0 (a scatter_add: adding one row there)."""
    axis = op.axis if op.name in ("gather", "scatter_add") else 0
    return op.operands[1].type.rank == 0 and axis % op.operands[0].type.rank == 0


def row_read(kernel: Operation) -> Operation | None:
    """The gather or read_row of a kernel that only reads one row of its params along axis 0 (Note [a
    row read] in codegen/llvm/control.py), else None."""
    block = kernel.regions[0].entry
    inner = [o for o in block.ops if not o.is_terminator]
    if kernel.kind != "single" or len(inner) != 1 or inner[0].name not in ROW_READS or not one_row_index(inner[0]):
        return None
    read = inner[0]
    if not all(getattr(v, "block", None) is block for v in read.operands) or block.terminator.operands != [read.result]:
        return None
    return read


def contraction_axis(matmul: Operation) -> int:
    """The axis of a matmul's first operand that it sums over."""
    return matmul.operands[0].type.rank - (2 if matmul.transpose_a else 1)


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
@dataclass
class Update:
    """A matmul kernel's epilogue `C0 + s * P` or `C0 - s * P` (Note [accumulated update] in
    codegen/llvm/kernels/matmul.py), found by accumulated_update."""

    result: int  # the kernel's result it is
    start: BlockArgument  # C0
    factor: Value | None  # s: a constant's result or a rank-0 argument; None for P alone
    negated: bool  # C0 - s * P


def accumulated_update(op: Operation) -> Update | None:
    """The update of matmul kernel `op`, if its epilogue is one: `C0 - s * P` (or `C0 + s * P`,
    `C0 - P`, `C0 + P`) of its product P, for a C0 of P's shape that is no operand of the product
    and a scalar s (a constant or a rank-0 argument of P's dtype), with P used nowhere else (in
    the region, or outside through a result of the kernel)."""
    block = op.regions[0].entry
    matmul = next(inner for inner in block.ops if inner.name in PRODUCTS)
    product = matmul.result
    yields = list(block.terminator.operands)
    others = [i for i, v in enumerate(yields) if v is not product]
    if len(others) != 1 or (product in yields and op.results[yields.index(product)].uses):
        return None  # the product itself is needed, or there is more to the epilogue
    update = yields[others[0]]
    if not isinstance(update, OpResult) or update.op.name not in ("add", "sub") or len(product.uses) != 1 + (
            product in yields):
        return None
    left, right = update.op.operands
    if update.op.name == "add" and not isinstance(left, BlockArgument):
        left, right = right, left
    if not isinstance(left, BlockArgument) or left in matmul.operands or left.type.shape != product.type.shape:
        return None
    if right is product:
        return Update(others[0], left, None, update.op.name == "sub")
    factor = _factor(right, product)
    return None if factor is None else Update(others[0], left, factor, update.op.name == "sub")


def _factor(value: Value, product: Value) -> Value | None:
    """s where `value` is s * P or P * s, for a scalar constant or rank-0 argument s of P's dtype."""
    if not isinstance(value, OpResult) or value.op.name != "mul" or len(value.uses) != 1:
        return None
    x, y = value.op.operands
    factor = y if x is product else x if y is product else None
    if factor is None or factor.type.rank != 0 or factor.type.dtype != product.type.dtype:
        return None
    if isinstance(factor, OpResult) and factor.op.name == "constant" or isinstance(factor, BlockArgument):
        return factor
    return None
