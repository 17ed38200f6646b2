"""GangLoops: which compiled while loops the CPU target runs on a gang of threads.

Note [loops run by a gang]
A turn of a recurrent network's loop is a few kernels (at a batch of 32, a 32 x 128 @ 128 x 128
product, its epilogue, a row read). One core runs such a product near its peak already, so the loop
goes faster only on more cores; but a parallel_for per kernel (a job opened to the pool, joined and
waited out) costs about as much as the split saves.
So a loop marked `threads = "gang"` runs whole on every thread of a gang (flowc_run_gang in
runtime/native/flowc_rt.c): every member runs every turn, takes its share of each kernel's work (or
member 0 all of a small one), and the members meet at a barrier, about a cache line passed between
cores, wherever one may read what another wrote (codegen/llvm/gang.py).

Where every kernel of the loop reads a row only at its own row (an RNN's forward, and its gradient's
loops once their sums over the batch left them), the loop is marked `threads = "rows"` instead: the
members own the same rows of every value and meet at no barrier at all (Note [a gang that owns rows]
in ir/ops/gang_rows.py).

A loop is marked where a turn's products may pay for the barriers: their multiply-adds reach
GANG_MIN_MULTIPLY_ADDS (ir/ops/kernel_space.py), or depend on a dim fed at run time. There the entry
point judges again, on the fed shapes and the thread count, and runs the same code on its own
thread, a gang of one whose barriers return at once, when a gang does not pay. The loop must be
plain kernels: no loop or cond inside (their turns would need barriers of their own), no collective
(MPI's progress runs on one thread), no print (its order), no data_dim or stack (those loops are
driven from the host anyway). A loop inside a task of the pool runs as a gang of one. Figures: bench/RESULTS.md,
"Control flow".
"""

from __future__ import annotations

import math

from flowc.ir import Module, Operation
from flowc.ir.ops.gang_rows import row_plan
from flowc.ir.ops.kernel_space import GANG_MIN_MULTIPLY_ADDS, contraction_axis, gang_products

from .host_driven import DATA_DIM, STACK_OPS
from .manager import Pass

GANG, ROWS = "gang", "rows"
COLLECTIVES = ("all_reduce", "all_reduce_start", "all_reduce_done", "broadcast")  # ir/ops/collective.py
NOT_IN_GANGS = (*COLLECTIVES, "print", DATA_DIM, *STACK_OPS)


class GangLoops(Pass):
    """Set `threads` on each top-level compiled while loop that a gang may run faster (module docstring):
    "rows" where its members may own rows (Note [a gang that owns rows] in ir/ops/gang_rows.py), else "gang"."""

    name = "gang-loops"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            for op in function.entry.ops:
                if op.name == "while" and "threads" not in op.attributes and runs_on_gang(op):
                    op.attributes = op.attributes | {"threads": ROWS if row_plan(op) is not None else GANG}
                    changed = True
        return changed


def runs_on_gang(loop: Operation) -> bool:
    """Whether `loop` is plain kernels (module docstring) whose products may be worth a gang."""
    if "driven" in loop.attributes:
        return False
    kernels = [op for region in loop.regions for op in region.entry.ops if not op.is_terminator]
    if any(op.regions and op.name != "fusion" for op in kernels):
        return False
    if any(inner.name in NOT_IN_GANGS for op in kernels for inner in op.walk()):
        return False
    products = [turn_multiply_adds(matmul) for _, matmul in gang_products(loop)]
    return bool(products) and (None in products or sum(products) >= GANG_MIN_MULTIPLY_ADDS)  # type: ignore[arg-type]


def turn_multiply_adds(matmul: Operation) -> int | None:
    """A product's multiply-adds, None where a dim is known only at run time."""
    a, c = matmul.operands[0], matmul.result
    dims = (*c.type.shape, a.type.shape[contraction_axis(matmul)])
    return None if None in dims else math.prod(dims)  # type: ignore[arg-type]

