"""The schedule pass: how each kernel runs, chosen once and written into the IR.

For each fusion op the pass picks a schedule from the op's region and an
explicit TargetInfo, and records it as attributes of the op, so the choice
prints, parses and can be tested as data; the backends read it (the LLVM
backend's table from (kind, schedule) to emitter, codegen/llvm/launch.py):

    %y = fusion %x {kind = "reduction", lanes = 16, schedule = "row_blocks"} : f32[?,10] {...}

Schedules, per kind:
  loop       "loop"         one loop nest over the result shape
  single     "single"       the op's own code
  reduction  "row_blocks"   blocks of `lanes` short rows, one row per vector lane (row_blocks.py)
             "vector_rows"  each short row one vector (vector_rows.py)
             "column"       reduced leading axes: tiles of columns (column_reduction.py)
             "rows"         any other: a row at a time, in LANES partial sums (reduction.py)
  matmul     "blas"         an OpenBLAS gemm call per batch, the epilogue spread over the pool
             "narrow"       generated code, rows of C as vectors (Note [narrow products])
             "split_k"      narrow, and the launch may split it by k (Note [split-k products])
             "generic"      generated scalar loops: products of a dtype BLAS lacks (integers)

The predicates decide exactly what the emitters decided inside codegen
before this pass existed; their constants (VECTOR_ROW, MIN_KEPT, NARROW,
PACK_BYTES) are here for that reason, and codegen imports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowc.ir import Module, Operation
from flowc.ir.ops.fusion import SCHEDULES
from flowc.ir.ops.kernel_space import reads_rows, reduction_space, steps_along
from flowc.ir.ops.reduction import ArgReduction

from .manager import Pass

VECTOR_ROW = 32  # the longest row held as one vector (two AVX-512 registers of float32)
MIN_KEPT = 16  # fewer kept elements (known): the column walk of the "rows" schedule is as good
NARROW = 16  # products this narrow (columns, known at build time) are generated code, not BLAS calls
BLAS_DTYPES = ("float32", "float64")  # what gemm multiplies (codegen/llvm/blas.py's GEMM)
PACK_BYTES = 1 << 16  # the largest transposed copy of B a dot tile makes on the stack


@dataclass(frozen=True)
class TargetInfo:
    """What of the machine a schedule depends on. The CPU target reads it from the host
    (codegen/llvm/program.py's host_target_info); its artifacts are cached per host, so
    the schedule may depend on it. Only the vector width does today; a GPU target would add
    its warp size and shared memory."""

    vector_bytes: int  # the widest vector register: 64 with AVX-512, 32 with AVX, else 16

    @property
    def f32_lanes(self) -> int:
        return self.vector_bytes // 4


def choose_schedule(op: Operation, target: TargetInfo) -> dict[str, object]:
    """The schedule attributes of fusion op `op` on `target`: {"schedule": ..., and its parameters}."""
    if op.kind == "reduction":
        return _reduction_schedule(op, target)
    if op.kind == "matmul":
        return {"schedule": _matmul_schedule(op)}
    return {"schedule": op.kind}


# -- reductions -----------------------------------------------------------------------------

def _reduction_schedule(op: Operation, target: TargetInfo) -> dict[str, object]:
    if not any(inner.is_reduction for inner in op.regions[0].entry.ops):
        return {"schedule": "rows"}  # simplified away after fusion: pointwise ops at one shape
    if row_blocks_apply(op, target):
        return {"schedule": "row_blocks", "lanes": target.f32_lanes}
    if vector_rows_apply(op):
        return {"schedule": "vector_rows"}
    if column_applies(op):
        return {"schedule": "column"}
    return {"schedule": "rows"}


def vector_rows_apply(op: Operation) -> bool:
    """Whether the kernel's rows are short, trailing and contiguous in every argument that reads them."""
    space = reduction_space(op)
    block = op.regions[0].entry
    rank = space.full.type.rank
    if any(isinstance(o, ArgReduction) for o in block.ops):
        return False
    if space.reduced != tuple(range(rank - len(space.reduced), rank)):
        return False
    sizes = [space.full.type.shape[a] for a in space.reduced]
    if None in sizes or math.prod(sizes) > VECTOR_ROW:
        return False
    return all(reads_rows(arg, space.reduced, rank) is not None for arg in block.args)


def row_blocks_apply(op: Operation, target: TargetInfo) -> bool:
    """Vector rows of at most L = target.f32_lanes points with a transcendental (a cheap row costs
    less than the gathers and scatters: a [100, 10] gradient kernel of products and sums took 1.0 us
    in blocks, 0.4 as vector rows), one kept axis (so a block's rows are evenly spaced in every
    buffer), the arguments' trailing dims known, no value a float16 (moved as stored)."""
    if not vector_rows_apply(op):
        return False
    space = reduction_space(op)
    block = op.regions[0].entry
    values = [*block.args, *(r for o in block.ops for r in o.results)]
    points = math.prod(space.full.type.shape[a] for a in space.reduced)
    return (any(o.transcendental for o in block.ops)  # a row's chain worth the gathers and scatters
            and len(space.kept) == 1 and points <= target.f32_lanes
            and all(None not in a.type.shape[1:] for a in block.args)
            and all(v.type.dtype.name != "float16" for v in values))


def column_applies(op: Operation) -> bool:
    """Reduced leading axes, enough kept elements, and every argument stepping along all or none of
    the reduced axes and of the kept ones."""
    space = reduction_space(op)
    block = op.regions[0].entry
    rank = space.full.type.rank
    if not space.kept or space.reduced != tuple(range(len(space.reduced))):
        return False
    if any(isinstance(o, ArgReduction) for o in block.ops):
        return False
    kept = [space.full.type.shape[a] for a in space.kept]
    if None not in kept and math.prod(kept) < MIN_KEPT:
        return False
    return all(steps_along(arg, space.full, space.reduced) is not None
               and steps_along(arg, space.full, space.kept) is not None for arg in block.args) and rank > 0


# -- products -------------------------------------------------------------------------------

def is_narrow(matmul: Operation) -> bool:
    """Note [narrow products]: a float product with at most NARROW columns.

    OpenBLAS is slow at these (x @ W of a 784 -> 10 layer, batch 100: about 70 us,
    10 GFLOP/s), and they are in every classifier and its gradient. Generated
    code (codegen/llvm/kernels/narrow.py) sums each C[i, j] in k order with explicit vector
    fused multiply-adds: rows of C as vectors of their columns (x @ W), or, when
    op(A) is a transpose (x^T @ dz), columns of C as vectors of consecutive rows.
    An artifact with only narrow products does not link OpenBLAS.

    A product with no columns is none: the BLAS kernel's check of empty products skips it (the
    narrow schedules have no tile of zero columns).
    """
    n = matmul.result.type.shape[-1]
    return matmul.result.type.dtype.is_float and n is not None and 0 < n <= NARROW


def dot_applies(matmul: Operation) -> bool:
    """op(B)'s columns are contiguous (B transposed) or can be copied so (k known, the copy small)."""
    if matmul.transpose_b:
        return True
    k = matmul.operands[1].type.shape[-2]
    n = matmul.result.type.shape[-1]
    return k is not None and k * n * matmul.result.type.dtype.itemsize <= PACK_BYTES


def splits_k(matmul: Operation) -> bool:
    """A product the launch may split by k: a narrow float x @ W of dot tiles, no batch axes."""
    operands = (*matmul.operands, matmul.result)
    return (is_narrow(matmul) and matmul.result.type.dtype.name in BLAS_DTYPES
            and not matmul.transpose_a
            and all(v.type.rank == 2 for v in operands) and dot_applies(matmul))


def _matmul_schedule(op: Operation) -> str:
    matmuls = [inner for inner in op.regions[0].entry.ops if inner.name == "matmul"]
    if not matmuls:  # simplified away after fusion: no backend emits such a kernel yet
        return "generic"
    (matmul,) = matmuls
    if splits_k(matmul):
        return "split_k"
    if is_narrow(matmul):
        return "narrow"
    return "blas" if matmul.result.type.dtype.name in BLAS_DTYPES else "generic"


class Schedule(Pass):
    """Record each fusion op's schedule on `target` (choose_schedule) as its attributes."""

    name = "schedule"

    def __init__(self, target: TargetInfo):
        self.target = target

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            for op in function.walk():  # kernels in cond and while regions too
                if op.name != "fusion":
                    continue
                chosen = choose_schedule(op, self.target)
                assert chosen["schedule"] in SCHEDULES[op.kind], chosen
                if any(op.attributes.get(key) != value for key, value in chosen.items()):
                    op.attributes = {key: value for key, value in op.attributes.items()
                                     if key not in ("schedule", "lanes")} | chosen
                    changed = True
        return changed
