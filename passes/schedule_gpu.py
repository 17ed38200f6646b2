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

from dataclasses import dataclass
from typing import Callable

from flowc.ir import Module, Operation
from flowc.ir.errors import UnsupportedOpError
from flowc.ir.ops.fusion import PARAMETERS, SCHEDULES

from .manager import Pass


@dataclass(frozen=True)
class GpuInfo:
    """What of the GPU a schedule depends on (an H100's figures by default)."""

    warp_size: int = 32
    shared_memory_bytes: int = 228 * 1024  # per streaming multiprocessor
    multiprocessors: int = 132


LOOP_BLOCK = 1024  # elements per program: 4 warps of 32 threads, 8 elements each, enough loads in flight

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
