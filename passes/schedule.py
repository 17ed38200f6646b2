"""The schedule pass: how each kernel runs, chosen once and written into the IR.

For each fusion op the pass picks a schedule from the op's region and an
explicit TargetInfo, and records it as attributes of the op, so the choice
prints, parses and can be tested as data; the backends read it (the LLVM
backend's table from (kind, schedule) to emitter, codegen/llvm/launch.py) and
decide nothing themselves:

    %y = fusion %x {kind = "reduction", lanes = 16, schedule = "row_blocks"} : f32[?,10] {...}

Schedules, per kind, with their parameters (ir/ops/fusion.py's SCHEDULE_PARAMETERS):
  loop       "loop"         one loop nest over the result shape
  single     "single"       the op's own code
  reduction  "row_blocks"   blocks of `lanes` short rows, one row per vector lane (row_blocks.py)
             "vector_rows"  each short row one vector (vector_rows.py)
             "column"       reduced leading axes: tiles of `tile = [kept elements]` columns
                            (column_reduction.py)
             "rows"         any other: a row at a time, in `partial_sums` partial results (Note
                            [summation order] in reduction.py); `kept_row = r`, if present: the
                            operand of the region's reduction r (counted from 0) is kept on the
                            stack for the write walk (Note [kept row])
  matmul     "blas"         an OpenBLAS gemm call per batch, the epilogue spread over the pool
             "narrow"       generated code (Note [narrow products]) in tiles of `tile = [m, n, k]`:
                            m rows of C, n of its columns, k terms per step, as `tiling` says:
                              "dot"      dot products of A's rows and op(B)'s columns along k,
                                         vectors of k lanes (x @ W)
                              "columns"  m consecutive rows of C as one vector per column, k = 1
                                         (x^T @ dz)
                              "rows"     a row of C as one vector of its n columns, k = 1
             "split_k"      narrow in dot tiles, and the launch splits it by k where the rule
                            holds (Note [split-k products] in matmul.py): at least two slices,
                            their partial products within `partial_bytes`, and no more rows of
                            partials than k has terms. The slice count follows the run's thread
                            count, so the rule is applied at run time; a product whose known m
                            and k never satisfy it is "narrow".
             "generic"      generated scalar loops: products of a dtype BLAS lacks (integers)
             "direct"       a conv2d's or conv2d_backprop_filter's kernel (Note [direct
                            convolution]): `tile = [rows, vectors, lanes]`, an accumulator tile of
                            `rows` output pixels along a row (conv2d) or input channels (the filter
                            gradient) by `vectors` vectors of `lanes` output channels; a filter
                            gradient may have `aligned_rows = true`: it reads each row of the
                            output gradient from a 64-byte aligned copy on its stack when the
                            row is not aligned (Note [aligned gradient rows] in direct_filter.py)
             The first three may have `accumulate = true`: the epilogue is an update C0 - s * P
             that the product accumulates into (Note [accumulated update] in matmul.py).

The predicates decide exactly what the emitters decided inside codegen
before this pass existed; their constants (VECTOR_ROW, MIN_KEPT, NARROW)
are here for that reason. What both this pass and an emitter ask (dot_applies:
how a narrow product reads B) is in ir/ops/kernel_space.py, since codegen
imports no pass (DESIGN.md's dependency rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowc.ir import Block, Module, Operation, OpResult, Value
from flowc.ir.ops.fusion import PARAMETERS, SCHEDULES, DimTies
from flowc.ir.ops.kernel_space import (accumulated_update, dot_applies, reads_rows, reduction_space, steps_along,
                                      value_levels)
from flowc.ir.ops.reduction import ArgReduction
from flowc.ir.types import DType

from .manager import Pass

VECTOR_ROW = 32  # the longest row held as one vector (two AVX-512 registers of float32)
MIN_KEPT = 16  # fewer kept elements (known): the column walk of the "rows" schedule is as good
PARTIAL_SUMS = 16  # Note [summation order]: a fixed count on every host, so results do not depend on it
ROW_BYTES = 1 << 16  # the biggest row kept on the stack (Note [kept row])
COLUMN_TILE = 512  # kept elements per column tile: partial results of a few KB, rows of a tile read as one run
NARROW = 16  # products this narrow (columns, known at build time) are generated code, not BLAS calls
BLAS_DTYPES = ("float32", "float64")  # what gemm multiplies (codegen/llvm/blas.py's GEMM)
VECTOR_CHAINS = 8  # independent fma chains that keep two fma units busy at a latency of four
PARTIAL_BYTES = 1 << 16  # split-k partials: the CPU entry point's scratch area (codegen/llvm/launch.py)


@dataclass(frozen=True)
class TargetInfo:
    """What of the machine a schedule depends on. The CPU target reads it from the host
    (codegen/llvm/program.py's host_target_info); its artifacts are cached per host, so
    the schedule may depend on it. A GPU target would add its warp size and shared memory.

    The core count is not here: the threads a kernel runs on are a run-time setting
    (set_num_threads), so what depends on them (the split of a product by k) is a rule the
    schedule records and the launch applies."""

    vector_bytes: int  # the widest vector register: 64 with AVX-512, 32 with AVX, else 16

    @property
    def f32_lanes(self) -> int:
        return self.vector_bytes // 4

    @property
    def vector_registers(self) -> int:
        """How many vector registers there are: x86 has 32 with AVX-512, 16 before it."""
        return 32 if self.vector_bytes >= 64 else 16

    @property
    def accumulators(self) -> int:
        """Vector sums a tile may keep in registers: three quarters of them, the rest for its loads."""
        return self.vector_registers * 3 // 4


def choose_schedule(op: Operation, target: TargetInfo, ties: DimTies | None = None) -> dict[str, object]:
    """The schedule attributes of fusion op `op` on `target`: {"schedule": ..., and its parameters}.
    `ties`: the symbolic shapes of the block that holds op (made from it when not given)."""
    if op.kind == "reduction":
        return _reduction_schedule(op, target, ties)
    if op.kind == "matmul":
        return _matmul_schedule(op, target)
    return {"schedule": op.kind}


# The bytes of an element as the CPU computes it, where they differ from the dtype's own: float16 is
# computed as float32 (Note [float16 on the CPU] in codegen/llvm/types.py, whose COMPUTE table says so).
COMPUTE_BYTES = {"float16": 4}


def compute_bytes(dtype: DType) -> int:
    """What one element fills of the vector registers and stack rows."""
    return COMPUTE_BYTES.get(dtype.name, dtype.itemsize)


# -- reductions -----------------------------------------------------------------------------

def _reduction_schedule(op: Operation, target: TargetInfo, ties: DimTies | None) -> dict[str, object]:
    if not any(inner.is_reduction for inner in op.regions[0].entry.ops):
        return {"schedule": "rows", "partial_sums": PARTIAL_SUMS}  # simplified away: pointwise ops at one shape
    if row_blocks_apply(op, target):
        return {"schedule": "row_blocks", "lanes": target.f32_lanes}
    if vector_rows_apply(op):
        return {"schedule": "vector_rows"}
    if column_applies(op):
        return {"schedule": "column", "tile": (COLUMN_TILE,)}
    chosen: dict[str, object] = {"schedule": "rows", "partial_sums": partial_sums(op)}
    kept = kept_row(op, ties if ties is not None else _ties_around(op))
    if kept is not None:
        chosen["kept_row"] = kept
    return chosen


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
    less than the gathers and scatters: a gradient kernel of products and sums is faster as vector
    rows), one kept axis (so a block's rows are evenly spaced in every
    buffer), the arguments' trailing dims known."""
    if not vector_rows_apply(op):
        return False
    space = reduction_space(op)
    block = op.regions[0].entry
    points = math.prod(space.full.type.shape[a] for a in space.reduced)
    return (any(o.transcendental for o in block.ops)  # a row's chain worth the gathers and scatters
            and len(space.kept) == 1 and points <= target.f32_lanes
            and all(None not in a.type.shape[1:] for a in block.args))


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


def partial_sums(op: Operation) -> int:
    """The "rows" schedule's partial results per reduction: PARTIAL_SUMS, or 1 for a row known to be
    shorter than 2 * PARTIAL_SUMS, where a serial sum costs less than starting and combining 16
    partial ones (a [100, 10] softmax spent most of its time on that)."""
    space = reduction_space(op)
    sizes = [space.full.type.shape[a] for a in space.reduced]
    return 1 if None not in sizes and math.prod(sizes) < 2 * PARTIAL_SUMS else PARTIAL_SUMS


def kept_row(op: Operation, ties: DimTies) -> int | None:
    """Note [kept row]: the number of the kernel's last reduction, if the values the kernel writes
    at full level need its operand and that costs a transcendental or a division (softmax's
    exp(x - max)): the reduction's walk stores the row in a stack buffer and the write walk reads
    it back instead of computing it again. Only for a statically sized row of at most ROW_BYTES,
    so the buffer stays in L1/L2 and on the stack."""
    reductions = [inner for inner in op.regions[0].entry.ops if inner.is_reduction]
    last = reductions[-1]
    if isinstance(last, ArgReduction):
        return None
    value = last.operands[0]
    space = reduction_space(op)
    sizes = [space.full.type.shape[a] for a in space.reduced]
    if None in sizes or math.prod(sizes) * compute_bytes(value.type.dtype) > ROW_BYTES:
        return None
    if not isinstance(value, OpResult) or not _costly(value):
        return None
    level = value_levels(op, ties.shape)
    yields = [v for v in op.regions[0].entry.terminator.operands if level.get(v) == "full"]
    return len(reductions) - 1 if any(_depends_on(y, value) for y in yields) else None


def _ties_around(op: Operation) -> DimTies:
    return DimTies(op.parent.ops if op.parent is not None else [op])


def _costly(value: Value) -> bool:
    """Whether computing `value` at a point of the row involves a transcendental or a division."""
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if v in seen or not isinstance(v, OpResult):
            continue
        seen.add(v)
        if v.op.costly:
            return True
        stack.extend(v.op.operands)
    return False


def _depends_on(value: Value, target: Value) -> bool:
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if v is target:
            return True
        if v in seen or not isinstance(v, OpResult):
            continue
        seen.add(v)
        stack.extend(v.op.operands)
    return False


# -- products -------------------------------------------------------------------------------

def is_narrow(matmul: Operation) -> bool:
    """Note [narrow products]: a float product with at most NARROW columns.

    OpenBLAS is slow at these (its kernels are tuned for wide C; bench/RESULTS.md has
    the figure), and they are in every classifier and its gradient. Generated
    code (codegen/llvm/kernels/narrow.py) sums each C[i, j] in k order with explicit vector
    fused multiply-adds: rows of C as vectors of their columns (x @ W), or, when
    op(A) is a transpose (x^T @ dz), columns of C as vectors of consecutive rows.
    An artifact with only narrow products does not link OpenBLAS.

    A product with no columns is none: the BLAS kernel's check of empty products skips it (the
    narrow schedules have no tile of zero columns).
    """
    n = matmul.result.type.shape[-1]
    return matmul.result.type.dtype.is_float and n is not None and 0 < n <= NARROW


def narrow_tiles(matmul: Operation, target: TargetInfo) -> dict[str, object]:
    """A narrow product's `tiling` and `tile` (kernels/narrow.py):

    - op(A) = A^T (x^T @ dz): column tiles, a vector of `lanes` rows per column, as many columns
      at once as have accumulators (every lane of a column's fma does useful work);
    - op(B)'s columns contiguous or copied so (dot_applies): dot tiles along k, vectors of
      `lanes` terms, as many rows as keep rows x columns accumulators in registers (no padding
      lanes, unlike a row tile's power of two);
    - else row tiles, a row of C one vector of its n columns (padded to a power of two), as
      many rows as make VECTOR_CHAINS independent fma chains.
    """
    n = matmul.result.type.shape[-1]
    itemsize = compute_bytes(matmul.result.type.dtype)
    lanes = target.vector_bytes // itemsize
    if matmul.transpose_a:
        return {"tiling": "columns", "tile": (lanes, min(n, target.accumulators), 1)}
    if dot_applies(matmul):
        return {"tiling": "dot", "tile": (max(1, target.accumulators // n), min(n, target.accumulators), lanes)}
    registers = -(-(1 << (n - 1).bit_length()) * itemsize // target.vector_bytes)
    return {"tiling": "rows", "tile": (max(1, VECTOR_CHAINS // registers), n, 1)}


def splits_k(matmul: Operation) -> bool:
    """A product the launch may split by k: a narrow float x @ W of dot tiles, no batch axes."""
    operands = (*matmul.operands, matmul.result)
    return (is_narrow(matmul) and matmul.result.type.dtype.name in BLAS_DTYPES
            and not matmul.transpose_a
            and all(v.type.rank == 2 for v in operands) and dot_applies(matmul))


def may_split(matmul: Operation, lanes: int) -> bool:
    """Whether the split rule ("split_k") can hold for some thread count, as far as m and k are
    known: two slices of whole vectors of k, their partials within PARTIAL_BYTES, 2 m <= k."""
    m, k = matmul.result.type.shape[0], matmul.operands[0].type.shape[1]
    n, itemsize = matmul.result.type.shape[-1], compute_bytes(matmul.result.type.dtype)
    if k is not None and -(-k // lanes) < 2:
        return False
    if m is not None and 2 * m * n * itemsize > PARTIAL_BYTES:
        return False
    return m is None or k is None or 2 * m <= k


# Note [direct convolution]
# A conv2d whose output channels fill at least half a vector (direct_applies) is
# computed as oneDNN computes it on AVX-512, with no patches buffer: for each output row (an image, a
# row), tiles of P pixels along the row by V vectors of L output channels are P * V vector sums held in
# registers; each step over (filter row, filter column, input channel) broadcasts one input element per
# pixel and multiplies it, with one fma per sum, by the filter's vector of output channels (HWIO:
# contiguous in O). Taps that fall on the padding are left out at build time (the spatial sizes are known:
# compiler/conv_ops.py), so the border costs no test in the inner loop; the rows run in parallel on
# flowc's pool, and the epilogue (bias, activation) follows each piece's rows while they are in cache
# (codegen/llvm/kernels/direct_conv.py). The input gradient at stride 1 is such a convolution
# (passes/autodiff/rules_conv.py); the filter gradient, conv2d_backprop_filter, sums the same
# broadcast-and-fma tiles over the pixels, with input channels in place of pixels
# (codegen/llvm/kernels/direct_filter.py). im2col (extract_patches, then BLAS) writes and reads KH*KW
# copies of the image first: at batch 32, 56x56x64 -> 64, a 231 MB buffer; the direct kernels took about a
# third of its time on bench/bench_conv.py's workloads (bench/RESULTS.md, "Convolutions"). A convolution
# with fewer output channels is left to im2col (passes/expand_convolutions.py), whose narrow product (Note
# [narrow products]) does not leave most lanes idle; so is a float16 one (its product then widened to
# sgemm: passes/widen_half_products.py).
MAX_CONV_VECTORS = 4  # output-channel vectors per tile: the filter's vectors a step loads
ALIGNED_ROW_BYTES = 1 << 15  # the longest output-gradient row a filter gradient copies (aligned_rows)


def direct_applies(conv: Operation, target: TargetInfo) -> bool:
    """Note [direct convolution]: a float32 or float64 conv2d (or its filter gradient) of known spatial
    sizes and channels whose output channels fill at least half a vector."""
    dtype = conv.result.type.dtype
    lanes = target.vector_bytes // dtype.itemsize
    known = all(None not in v.type.shape[1:] for v in (*conv.operands, conv.result))
    return dtype.name in BLAS_DTYPES and known and 2 * conv.result.type.shape[3] >= lanes


def direct_tile(conv: Operation, target: TargetInfo) -> tuple[int, int, int]:
    """(rows, vectors, lanes) of the direct kernel's accumulator tile: as many vectors of output
    channels as there are (up to MAX_CONV_VECTORS), then as many rows as keep rows x vectors within
    the target's accumulators: output pixels along a row (at most the row's), or for the filter
    gradient input channels (at most all of them)."""
    lanes = target.vector_bytes // conv.result.type.dtype.itemsize
    rows_at_most, out = conv.result.type.shape[2:]
    vectors = min(-(-out // lanes), MAX_CONV_VECTORS if target.vector_registers >= 32 else 2)
    return max(1, min(target.accumulators // vectors, rows_at_most)), vectors, lanes


def aligned_rows(conv: Operation) -> bool:
    """Note [aligned gradient rows] in codegen/llvm/kernels/direct_filter.py: a filter gradient whose
    output gradient rows (OW * O elements) fit ALIGNED_ROW_BYTES."""
    if conv.name != "conv2d_backprop_filter":
        return False
    _, _, width, out = conv.operands[1].type.shape
    return width * out * conv.result.type.dtype.itemsize <= ALIGNED_ROW_BYTES


def _matmul_schedule(op: Operation, target: TargetInfo) -> dict[str, object]:
    conv = next((inner for inner in op.regions[0].entry.ops
                 if inner.name in ("conv2d", "conv2d_backprop_filter")), None)
    if conv is not None:  # what expand_convolutions left: direct_applies holds
        rows = {"aligned_rows": True} if aligned_rows(conv) else {}
        return {"schedule": "direct", "tile": direct_tile(conv, target), **rows}
    matmuls = [inner for inner in op.regions[0].entry.ops if inner.name == "matmul"]
    if not matmuls:  # simplified away after fusion: no backend emits such a kernel yet
        return {"schedule": "generic"}
    (matmul,) = matmuls
    # Note [accumulated update] in matmul.py: an SGD update of a float product is the product's own.
    floats = matmul.result.type.dtype.name in BLAS_DTYPES
    update = {"accumulate": True} if floats and accumulated_update(op) is not None else {}
    if is_narrow(matmul):
        tiles = narrow_tiles(matmul, target)
        lanes = target.vector_bytes // compute_bytes(matmul.result.type.dtype)
        if splits_k(matmul) and may_split(matmul, lanes):
            return {"schedule": "split_k", **tiles, "partial_bytes": PARTIAL_BYTES, **update}
        return {"schedule": "narrow", **tiles, **update}
    return {"schedule": "blas", **update} if floats else {"schedule": "generic"}


# Note [tiered compilation]
# A narrow product's generated code (Note [narrow products]) is most of a small
# function's cold compile: the MLP forward's 256 x 512 @ 512 x 10, split by k, was a third of it, for a
# product that takes about 1 % of the forward's run time (bench/RESULTS.md, "@fc.jit"). So a jitted
# function is compiled in two tiers, as JITs of other languages are: its first call compiles and runs a
# quick tier in which every narrow product is an OpenBLAS call (`schedule = "blas", quick = true`: a
# reader of the IR sees which kernels the optimized tier generates code for), LLVM does less (Note [the
# entry point compiled quickly] in codegen/llvm/compile.py) and no ld links it (Note [the quick tier linked
# in process] in codegen/llvm/jit_link.py), and the optimized tier, the schedules chosen
# as above, is compiled on a thread of its own meanwhile and takes the quick tier's place once loaded
# (compiler/jit.py). The disk cache serves the optimized tier first: a function compiled before runs it
# from its first call. Only a function with a narrow product has two tiers; otherwise both are the same
# code. The tiers may round differently (a narrow product sums in k order, OpenBLAS in its own blocks), as
# a threaded BLAS's results depend on its thread count.


def quick_schedule(op: Operation) -> dict[str, object] | None:
    """Note [tiered compilation]: the quick tier's schedule of kernel `op` where it differs from the
    optimized one's (a narrow float product becomes an OpenBLAS call), else None."""
    if op.name != "fusion" or op.kind != "matmul" or op.attributes.get("schedule") not in ("narrow", "split_k"):
        return None
    (matmul,) = [inner for inner in op.regions[0].entry.ops if inner.name == "matmul"]
    if matmul.result.type.dtype.name not in BLAS_DTYPES:
        return None
    update = {"accumulate": True} if op.attributes.get("accumulate") else {}
    return {"schedule": "blas", "quick": True, **update}


class Schedule(Pass):
    """Record each fusion op's schedule on `target` (choose_schedule) as its attributes."""

    name = "schedule"

    def __init__(self, target: TargetInfo):
        self.target = target

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            ties: dict[Block, DimTies] = {}  # per block that holds kernels, made for the first that asks
            for op in function.walk():  # kernels in the regions of control flow too
                if op.name != "fusion":
                    continue
                block = op.parent
                if block is not None and block not in ties and op.kind == "reduction":
                    ties[block] = DimTies(block.ops)
                chosen = choose_schedule(op, self.target, ties.get(block) if block is not None else None)
                assert chosen["schedule"] in SCHEDULES[op.kind], chosen
                current = {key: value for key, value in op.attributes.items() if key in PARAMETERS | {"schedule"}}
                if current != chosen:
                    op.attributes = {key: value for key, value in op.attributes.items()
                                     if key not in current} | chosen
                    changed = True
        return changed
