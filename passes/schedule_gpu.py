"""The GPU's schedule pass: how each kernel runs as a Triton program, chosen once and written into the IR.

Like the CPU's (passes/schedule.py), it records each fusion op's schedule as
attributes that print, parse and are lit-tested; the Triton backend's table
(codegen/triton/kernel.py's EMITTERS) reads them and decides nothing itself:

    %y = fusion %x {block = 1024, kind = "loop", schedule = "blocks"} : f32[?,10] {...}

Schedules, per kind, with their parameters (ir/ops/fusion.py's SCHEDULE_PARAMETERS):
  loop       "blocks"        one program per `block` elements of the result, masked at the tail
  single     "single"        the op's own kernel (codegen/triton/kernel.py's SINGLE_OPS)
  reduction  "row_tiles"     reduced trailing axes: `block = [rows, columns]`: a program takes
                             `rows` rows, reads them `columns` elements at a time
             "column_tiles"  reduced leading axes: `block = [rows, columns]`: a program takes
                             `columns` kept elements, walks the reduced rows `rows` at a time
  matmul     "dot_tiles"     tl.dot over tiles of `tile = [m, n, k]`, the epilogue applied to
                             each tile of C as it is stored; `accumulate` as on the CPU
Matmul and reduction kernels also get `warps` (and a tl.dot kernel `stages`) and `candidates`,
the configurations a GPU times against the heuristic's (Note [tuning candidates]).

Each kind's rule is a function of the op and the GPU (GpuInfo), kept in RULES; a
block size is a power of two (Triton's tl.arange needs one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from flowc.ir import Module, Operation
from flowc.ir.errors import UnsupportedOpError
from flowc.ir.ops.fusion import PARAMETERS, SCHEDULES, is_trailing
from flowc.ir.ops.kernel_space import accumulated_update, reduction_space

from .manager import Pass


@dataclass(frozen=True)
class GpuInfo:
    """What of the GPU a schedule depends on (an H100's figures by default)."""

    warp_size: int = 32
    shared_memory_bytes: int = 228 * 1024  # per streaming multiprocessor
    multiprocessors: int = 132


LOOP_BLOCK = 1024  # elements per program: 4 warps of 32 threads, 8 elements each, enough loads in flight
TILE = 4096  # elements of a reduction tile (Note [reduction tiles])
ROW_IN_REGISTERS = 8192  # the longest known row a program keeps whole (8 warps: 32 registers a thread)
LOOPED_COLUMNS = 1024  # a longer or unknown row is read this many elements at a time
KEPT_COLUMNS = 128  # column tiles: kept elements per program, a warp reading 128 contiguous bytes of float32

Rule = Callable[[Operation, GpuInfo], dict[str, object]]
RULES: dict[str, Rule] = {}


def rule(kind: str) -> Callable[[Rule], Rule]:
    """Register the schedule rule of a fusion kind."""

    def register(fn: Rule) -> Rule:
        RULES[kind] = fn
        return fn

    return register


@rule("loop")
def _loop(op: Operation, gpu: GpuInfo) -> dict[str, object]:
    return {"schedule": "blocks", "block": LOOP_BLOCK}


@rule("single")
def _single(op: Operation, gpu: GpuInfo) -> dict[str, object]:
    return {"schedule": "single"}


@rule("reduction")
def _reduction(op: Operation, gpu: GpuInfo) -> dict[str, object]:
    if not any(inner.is_reduction for inner in op.regions[0].entry.ops):
        return {"schedule": "row_tiles", "block": (LOOP_BLOCK // 8, 1)}  # simplified away: one point a row
    space = reduction_space(op)
    shape = space.full.type.shape
    kept = _known_product([shape[a] for a in space.kept])
    reduced = _known_product([shape[a] for a in space.reduced])
    if is_trailing(space.reduced, len(shape)):
        block = row_tile(kept, reduced, gpu)
        others = row_candidates(block, kept, reduced)
        schedule = "row_tiles"
    else:
        block = column_tile(reduced, kept)
        others = column_candidates(block, reduced, kept)
        schedule = "column_tiles"
    warps = reduction_warps(block)
    candidates = _distinct([(sizes, reduction_warps(sizes)) for sizes in others]
                           + [(block, 2 * warps)], (block, warps))
    return {"schedule": schedule, "block": block, "warps": warps, "candidates": candidates}


# Note [reduction tiles]
# A reduction program holds a tile of about TILE elements (4 warps, 32 per thread: enough loads in
# flight, registers to spare for a softmax's few live values):
#   row_tiles     [rows, columns]: `rows` rows of the kept axes, `columns` reduced points of each at
#                 a time. A row known to be at most ROW_IN_REGISTERS long is one block (columns =
#                 its length rounded up): the program loads it once and keeps it in registers, so
#                 the passes of a softmax or a layer norm over it reread registers. A longer or
#                 unknown row is read LOOPED_COLUMNS at a time, once per pass, recomputing its
#                 producers each time (Note [no expensive recompute] in passes/fusion.py allows it).
#                 Rows per program fill the tile, but no more than the known rows need, and few
#                 enough that the known rows make a program per multiprocessor.
#   column_tiles  [rows, columns]: `columns` kept points per program (KEPT_COLUMNS, or fewer when
#                 fewer are known), `rows` reduced points at a time to fill the tile (the whole
#                 reduced extent when it is known and fits: one block, no loop).
# A reduction over every axis has one row: one program walks all of it (no second stage). A tile
# of 8192 elements or more (a long row kept whole) runs on 8 warps, the emitter's num_warps.


def row_tile(rows: int | None, columns: int | None, gpu: GpuInfo) -> tuple[int, int]:
    """[rows, columns] of a row_tiles program for these known (or None) row count and row length."""
    width = _power_of_two_at_least(columns) if columns is not None and columns <= ROW_IN_REGISTERS else LOOPED_COLUMNS
    height = max(1, TILE // width)
    if rows is not None:
        height = min(height, _power_of_two_at_least(rows), max(1, _power_of_two_at_most(rows // gpu.multiprocessors)))
    return height, width


def column_tile(rows: int | None, columns: int | None) -> tuple[int, int]:
    """[rows, columns] of a column_tiles program for these known (or None) reduced and kept counts."""
    width = KEPT_COLUMNS if columns is None else min(KEPT_COLUMNS, _power_of_two_at_least(columns))
    height = TILE // width
    if rows is not None:
        height = min(height, _power_of_two_at_least(rows))
    return height, width


# Note [tuning candidates]
# The rules above are the heuristic: they give every kernel a schedule that runs well enough without
# a GPU to measure on (the interpreter runs it, and so does a GPU with FLOWC_AUTOTUNE=0). For the
# kernels whose tile matters most, matmul and reduction, the pass also records `warps` (the num_warps
# the heuristic's tile runs on), for a tl.dot kernel `stages` (its num_stages: Triton's CUDA default,
# 3), and `candidates`: a few other configurations, [sizes, warps] or [sizes, warps, stages], the
# sizes of the kernel's tile or block. They are the heuristic's neighbours, each a power of two
# apart in one direction, so that a size the heuristic got wrong for this GPU or these shapes is
# found, while the list stays short enough to time on a kernel's first run:
#   dot_tiles     m doubled, n doubled, both halved, k doubled (each cut back to a known dim as the
#                 heuristic's is); the heuristic's tile with a deeper pipeline (stages + 1); none
#                 whose stages' operand tiles would not fit in shared memory
#   row_tiles     rows per program doubled and halved; a walked row (not kept in registers) also
#                 read twice and half as many columns at a time
#   column_tiles  kept columns per program doubled and halved; a walked reduced extent also
#                 taken twice and half as many rows at a time
#   every kind    the heuristic's tile on twice the warps
# A candidate's warps follow its tile as the heuristic's do (reduction_warps, dot_warps); none
# repeats the heuristic's configuration or another candidate. The runtime times them on a GPU
# (codegen/triton/autotune.py, Note [autotuning]); nothing else reads them.
MOST_WARPS = 16  # a CUDA block of 512 threads: as far as a candidate's warps go
TUNED_TILE = 2 * ROW_IN_REGISTERS  # the largest reduction tile a candidate holds (64 values a thread on 8 warps)


def reduction_warps(block: tuple[int, int]) -> int:
    """The num_warps of a reduction program of this tile (Note [reduction tiles])."""
    return 8 if block[0] * block[1] >= 8192 else 4


def row_candidates(block: tuple[int, int], rows: int | None, columns: int | None) -> list[tuple[int, int]]:
    """Other [rows, columns] tiles of a row_tiles kernel (Note [tuning candidates])."""
    height, width = block
    tiles = [(height * 2, width), (height // 2, width)]
    if columns is None or columns > width:  # walked: the block's width is free
        tiles += [(height, width * 2), (height, width // 2)]
    return [(h, w) for h, w in tiles
            if h >= 1 and h * w <= TUNED_TILE and (rows is None or h <= _power_of_two_at_least(rows))]


def column_candidates(block: tuple[int, int], rows: int | None, columns: int | None) -> list[tuple[int, int]]:
    """Other [rows, columns] tiles of a column_tiles kernel (Note [tuning candidates])."""
    height, width = block
    tiles = [(height, width * 2), (height, width // 2)]
    if rows is None or rows > height:  # walked: the block's height is free
        tiles += [(height * 2, width), (height // 2, width)]
    return [(h, w) for h, w in tiles
            if h >= 1 and w >= 1 and h * w <= TUNED_TILE and (columns is None or w <= _power_of_two_at_least(columns))]


def _distinct(candidates: list[tuple], heuristic: tuple) -> tuple[tuple, ...]:
    """The candidates in order, without repeats and without the heuristic's own configuration."""
    kept: list[tuple] = []
    for candidate in candidates:
        if candidate != heuristic and candidate not in kept and candidate[1] <= MOST_WARPS:
            kept.append(candidate)
    return tuple(kept)


def _known_product(sizes: list[int | None]) -> int | None:
    return None if None in sizes else math.prod(sizes)  # type: ignore[arg-type]


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _power_of_two_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n >= 1 else 1


# Note [dot tiles]
# A matmul kernel's programs each compute one [m, n] tile of C, walking the inner dim k tiles at a time
# (codegen/triton/kernels/matmul.py). tl.dot takes float16, bfloat16, float32 (as IEEE products,
# no tf32) and float64 operands (int8 too, a dtype the IR has not); Triton before 3.9 wants every
# tile dim at least 16 there. The tiles are the usual Hopper sizes: 128 x 128 x 32 for 16-bit
# floats (8 warps, two 8 KiB operand tiles per pipeline stage), 64 x 64 x 32 for float32, whose
# operand tiles are twice as big per element, 64 x 64 x 16 for float64 (sm_90's fp64 mma takes k
# in fours; 32 accumulators of 8 bytes per thread of 4 warps). Integers have no tl.dot: their tile
# adds a column of A times a row of B per step of k, k steps unrolled, in 64 x 64 x 8. A dim known
# at build time to be smaller than its tile gets the least power of two that holds it (at least 16
# for tl.dot, 2 else): a 784 -> 10 layer is 64 x 16 x 32, not 64 x 64 x 32 of which three quarters
# are masked off.
# The 16-bit floats are no IR dtypes yet; their tiles are built to PTX (tests/codegen/test_gpu_matmul.py).
DOT_TILES = {"float16": (128, 128, 32), "bfloat16": (128, 128, 32), "float32": (64, 64, 32), "float64": (64, 64, 16)}
INTEGER_TILE = (64, 64, 8)


def dot_tile(matmul: Operation) -> list[int]:
    """The [m, n, k] tile of a matmul's programs (Note [dot tiles])."""
    return fit_tile(matmul, list(DOT_TILES.get(str(matmul.result.type.dtype), INTEGER_TILE)))


def fit_tile(matmul: Operation, tile: list[int]) -> list[int]:
    """`tile` cut back to the least power of two over each dim known to be smaller (Note [dot tiles]);
    a 0 where a size is below the least a dim may be (16 for tl.dot, 2 for rank-one steps)."""
    dtype = str(matmul.result.type.dtype)
    a = matmul.operands[0].type.shape
    sizes = (matmul.result.type.shape[-2], matmul.result.type.shape[-1], a[-2] if matmul.transpose_a else a[-1])
    least = 16 if dtype in DOT_TILES else 2
    return [0 if size < least else size if dim is None else min(size, max(least, _power_of_two_at_least(dim)))
            for dim, size in zip(sizes, tile)]


def dot_warps(tile: Sequence[int]) -> int:
    """The num_warps of a matmul program of this tile: 8 for C tiles of 128 x 128 or more, whose 16K
    accumulators would be 128 registers a thread on 4 warps."""
    return 8 if tile[0] * tile[1] >= 128 * 128 else 4


def dot_candidates(matmul: Operation, tile: list[int], gpu: GpuInfo) -> tuple[tuple, ...]:
    """Other configurations of a matmul kernel: [tile, warps, stages], or [tile, warps] without tl.dot
    (Note [tuning candidates])."""
    m, n, k = tile
    dtype = matmul.result.type.dtype
    tiles = [(2 * m, n, k), (m, 2 * n, k), (m // 2, n // 2, k), (m, n, 2 * k)]
    tiles = [fitted for fitted in (tuple(fit_tile(matmul, list(t))) for t in tiles) if min(fitted) >= 1]
    if str(dtype) not in DOT_TILES:
        return _distinct([(t, dot_warps(t)) for t in tiles] + [(tuple(tile), 2 * dot_warps(tile))],
                         (tuple(tile), dot_warps(tile)))
    heuristic = (tuple(tile), dot_warps(tile), STAGES)
    options = [(t, dot_warps(t), STAGES) for t in tiles] + [(tuple(tile), 2 * dot_warps(tile), STAGES),
                                                          (tuple(tile), dot_warps(tile), STAGES + 1)]
    # every stage holds a tile of A and one of B in shared memory
    fitting = [(sizes, warps, stages) for sizes, warps, stages in options
               if stages * (sizes[0] + sizes[1]) * sizes[2] * dtype.np.itemsize <= gpu.shared_memory_bytes]
    return _distinct(fitting, heuristic)


STAGES = 3  # a tl.dot kernel's num_stages: Triton's default on CUDA


@rule("matmul")
def _matmul(op: Operation, gpu: GpuInfo) -> dict[str, object]:
    matmuls = [inner for inner in op.regions[0].entry.ops if inner.name == "matmul"]
    if not matmuls:  # only a pass run after fusion could leave one; the GPU's passes do not
        raise UnsupportedOpError("the gpu target compiles a matmul kernel only with its product",
                                 op=op.display_name, where=op.loc)
    # Note [accumulated update] (codegen/llvm/kernels/matmul.py): recorded as on the CPU; on the GPU
    # the update is the epilogue of each tile, C0's tile read once as the tile is stored.
    update = {"accumulate": True} if matmuls[0].result.type.dtype.is_float and accumulated_update(op) else {}
    tile = dot_tile(matmuls[0])
    stages = {"stages": STAGES} if str(matmuls[0].result.type.dtype) in DOT_TILES else {}
    return {"schedule": "dot_tiles", "tile": tuple(tile), **update, "warps": dot_warps(tile), **stages,
            "candidates": dot_candidates(matmuls[0], tile, gpu)}


def choose_gpu_schedule(op: Operation, gpu: GpuInfo) -> dict[str, object]:
    """The schedule attributes of fusion op `op` on `gpu`."""
    if op.kind not in RULES:
        raise UnsupportedOpError(f"the gpu target does not compile {op.kind} kernels; target 'cpu' does",
                                 op=op.display_name, where=op.loc)
    chosen = RULES[op.kind](op, gpu)
    assert chosen["schedule"] in SCHEDULES[op.kind], chosen
    return chosen


class GpuSchedule(Pass):
    """Record each fusion op's GPU schedule (choose_gpu_schedule) as its attributes."""

    name = "schedule-gpu"

    def __init__(self, gpu: GpuInfo = GpuInfo()):
        self.gpu = gpu

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            for op in function.walk():  # kernels in the regions of control flow too
                if op.name != "fusion":
                    continue
                chosen = choose_gpu_schedule(op, self.gpu)
                current = {key: value for key, value in op.attributes.items() if key in PARAMETERS | {"schedule"}}
                if current != chosen:
                    op.attributes = {key: value for key, value in op.attributes.items()
                                     if key not in current} | chosen
                    changed = True
        return changed
