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

Each kind's rule is a function of the op and the GPU (GpuInfo), kept in RULES; a
block size is a power of two (Triton's tl.arange needs one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

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
        return {"schedule": "row_tiles", "block": row_tile(kept, reduced, gpu)}
    return {"schedule": "column_tiles", "block": column_tile(reduced, kept)}


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
# A reduction over every axis has one row: one program walks all of it (no second stage).


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


def _known_product(sizes: list[int | None]) -> int | None:
    return None if None in sizes else math.prod(sizes)  # type: ignore[arg-type]


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _power_of_two_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n >= 1 else 1


# Note [dot tiles]
# A matmul kernel's programs each compute one [m, n] tile of C, walking k in steps of k
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
    dtype = str(matmul.result.type.dtype)
    a = matmul.operands[0].type.shape
    sizes = (matmul.result.type.shape[-2], matmul.result.type.shape[-1], a[-2] if matmul.transpose_a else a[-1])
    least = 16 if dtype in DOT_TILES else 2
    return [tile if size is None else min(tile, max(least, 1 << max(size - 1, 0).bit_length()))
            for size, tile in zip(sizes, DOT_TILES.get(dtype, INTEGER_TILE))]


@rule("matmul")
def _matmul(op: Operation, gpu: GpuInfo) -> dict[str, object]:
    matmuls = [inner for inner in op.regions[0].entry.ops if inner.name == "matmul"]
    if not matmuls:  # only a pass run after fusion could leave one; the GPU's passes do not
        raise UnsupportedOpError("the gpu target compiles a matmul kernel only with its product",
                                 op=op.display_name, where=op.loc)
    # Note [accumulated update] (codegen/llvm/kernels/matmul.py): recorded as on the CPU; on the GPU
    # the update is the epilogue of each tile, C0's tile read once as the tile is stored.
    update = {"accumulate": True} if matmuls[0].result.type.dtype.is_float and accumulated_update(op) else {}
    return {"schedule": "dot_tiles", "tile": tuple(dot_tile(matmuls[0])), **update}


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
