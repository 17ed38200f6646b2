"""GangLoops: which compiled while loops the CPU target runs on a gang of threads.

Note [loops run by a gang]
A turn of a recurrent network's loop is a few kernels, about 10 us in all at a batch of 32 (a
32 x 128 @ 128 x 128 product, its epilogue, a row read). One core runs such a product near its
peak already, so the loop goes faster only on more cores; but a parallel_for per kernel (a job
opened to the pool, joined and waited out) costs several microseconds, as much as the split saves.
So a loop marked `threads = "gang"` runs whole on every thread of a gang (flowc_run_gang in
runtime/native/flowc_rt.c): every member runs every turn, takes its share of each kernel's work (or
member 0 all of a small one), and the members meet at a barrier, about a cache line passed between
cores, wherever one may read what another wrote (codegen/llvm/gang.py).

A loop is marked where a turn's product pays for the barriers: a matmul kernel of at least
MIN_MULTIPLY_ADDS per turn (unknown rows counted as UNKNOWN_ROWS: a batch dim). The loop must be
plain kernels: no loop or cond inside (their turns would need barriers of their own), no collective
(MPI's progress runs on one thread), no print (its order), no data_dim or stack (those loops are
driven from the host anyway). On one thread the gang is that thread alone and its barriers return
at once; a loop nested in a gang's task runs so too.
"""

from __future__ import annotations

import math

from flowc.ir import Module, Operation

from .manager import Pass

GANG = "gang"
MIN_MULTIPLY_ADDS = 1 << 16  # per turn, in one product kernel: a 16 x 64 @ 64 x 64 step
UNKNOWN_ROWS = 8  # what an unknown row dim counts as: a batch fed at run time
NOT_IN_GANGS = ("all_reduce", "all_reduce_start", "all_reduce_done", "broadcast", "print", "data_dim",
                "stack_push", "stack_read")
SPLIT_PRODUCTS = ("blas", "narrow")  # the product schedules a gang splits by rows (codegen/llvm/gang.py)


class GangLoops(Pass):
    """Set `threads = "gang"` on each top-level compiled while loop that a gang runs faster (module docstring)."""

    name = "gang-loops"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            for op in function.entry.ops:
                if op.name == "while" and "threads" not in op.attributes and runs_on_gang(op):
                    op.attributes = op.attributes | {"threads": GANG}
                    changed = True
        return changed


def runs_on_gang(loop: Operation) -> bool:
    """Whether `loop` is plain kernels (module docstring) with a product worth splitting per turn."""
    if "driven" in loop.attributes:
        return False
    kernels = [op for region in loop.regions for op in region.entry.ops if not op.is_terminator]
    if any(op.regions and op.name != "fusion" for op in kernels):
        return False
    if any(inner.name in NOT_IN_GANGS for op in kernels for inner in op.walk()):
        return False
    return any(turn_multiply_adds(op) >= MIN_MULTIPLY_ADDS for op in kernels
               if op.name == "fusion" and op.kind == "matmul" and op.attributes.get("schedule") in SPLIT_PRODUCTS)


def turn_multiply_adds(kernel: Operation) -> int:
    """The multiply-adds of a product kernel's matmul, unknown dims counted as UNKNOWN_ROWS."""
    matmul = next((o for o in kernel.regions[0].entry.ops if o.name == "matmul"), None)
    if matmul is None:
        return 0
    a, c = matmul.operands[0], matmul.result
    k = a.type.shape[-2] if matmul.transpose_a else a.type.shape[-1]
    return math.prod(UNKNOWN_ROWS if d is None else d for d in (*c.type.shape, k))
