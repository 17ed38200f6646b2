"""What the caller of a compiled function needs to know, without LLVM.

A program found in the disk cache is called with only this: the dims table
(which run-time dim goes in which slot), the memory plan and the kernel order.
Nothing here imports llvmlite, so a cache hit never pays for loading LLVM.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from typing import Iterator, Protocol

from flowc.ir import Function, Operation, Value
from flowc.ir.printer import value_names
from flowc.ir.errors import FlowcError
from flowc.ir.ops.fusion import DimTies, UnknownDim

ENTRY = "flowc_main"


class DimTable:
    """Slots in the dims vector for every dim unknown at compile time (Note [dims vector] in kernel.py)."""

    def __init__(self, function: Function):
        # Dims tied together (Note [unknown dims in a kernel]) are one size at run time and share a
        # slot: kernels that differ only in which values they read are then the same code, which
        # compiles once (Note [kernels compiled apart] in codegen/llvm/split.py).
        ties = DimTies(function.entry.ops)
        self.ties = ties  # the symbolic shapes kernels compare (Note [unknown dims in a kernel])
        self.slots: dict[tuple[Value, int], int] = {}
        shared: dict[UnknownDim, int] = {}
        self.count = 0
        for value in _all_values(function):
            for axis, dim in enumerate(value.type.shape):
                if dim is None:
                    symbol = ties.shape(value)[axis]
                    if not isinstance(symbol, UnknownDim):  # tied to a static size: a slot of its own
                        symbol = UnknownDim(-1)
                    if symbol not in shared:
                        shared[symbol] = self.count
                        self.count += 1
                    self.slots[value, axis] = shared[symbol]

    def __len__(self) -> int:
        return self.count

    def describe(self, function: Function) -> str:
        """Which slot each unknown dim reads, as text. Compiled code bakes the slots in, and they
        follow from rules outside codegen (DimTies), so the disk cache keys on this text too: a
        change of those rules never reuses code compiled for other slots."""
        names = value_names(function)
        return "\n".join(f"{names.get(value, '?')}.{axis} -> {slot}" for (value, axis), slot in self.slots.items())


def _all_values(function: Function) -> Iterator[Value]:
    yield from function.args
    for op in function.walk():
        yield from op.results
        for region in op.regions:
            for block in region.blocks:
                yield from block.args


class StoragePlan(Protocol):
    """What codegen reads of a memory plan (passes/memory.py's MemoryPlan, which the CPU target
    passes in: codegen imports no pass, DESIGN.md's dependency rule)."""

    storage: dict  # Value -> its Storage: kind "arg" | "result" | "temp" | "local" | "const" | "view", index
    temps: list[Value]

    def buffer_of(self, value: Value) -> tuple[str, int | Value]: ...


@dataclass
class Program:
    """The dims table, the memory plan, the kernels in the entry point's order."""

    function: Function
    dims: DimTable
    plan: StoragePlan
    kernel_ops: list[Operation]  # kernel number -> its fusion op, to name it in run-time errors
    fast_math: bool = False  # float arithmetic may be reassociated and contracted (elementwise.float_flags)
    profile: bool = False  # time each kernel into PROFILE_SYMBOL (FLOWC_PROFILE=1)

    @property
    def error_slot(self) -> int:
        return len(self.dims) + len(self.plan.temps)


PROFILE_SYMBOL = "flowc_profile"  # int64[2 * kernels]: per kernel, nanoseconds spent and calls


def plan_program(function: Function, plan: StoragePlan, fast_math: bool = False, profile: bool = False) -> Program:
    kernels = [op for op in function.walk() if op.name == "fusion"]  # those of cond and while regions too
    return Program(function, DimTable(function), plan, kernels, fast_math, profile)


def kernel_op_names(op: Operation) -> list[str]:
    """The ops a kernel computes, in order (its constants and yield left out)."""
    return [o.name for o in op.regions[0].entry.ops if o.name not in ("constant", "yield")]


def describe_kernel(op: Operation) -> str:
    """A kernel in one line, for FLOWC_LOG=compile: kind, ops, operand and result types."""
    types = ", ".join(str(v.type) for v in op.operands)
    results = ", ".join(str(v.type) for v in op.results)
    return f"{op.kind} [{' '.join(kernel_op_names(op))}] ({types}) -> {results}"


@functools.cache
def codegen_fingerprint() -> str:
    """A hash of this backend's own source: compiled code cached by an older backend is never reused."""
    folder = os.path.dirname(os.path.abspath(__file__))  # os, not pathlib: half the time, on every first compile
    digest = hashlib.sha256()
    for path in sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
                       if name.endswith(".py")):
        with open(path, "rb") as file:
            digest.update(file.read())
    return digest.hexdigest()[:16]


@functools.cache
def host_vector_bytes() -> int:
    """The host's widest vector register in bytes, as the schedule pass sees it (the CPU target's
    TargetInfo). From /proc/cpuinfo's flags (the same cpuid bits LLVM reads, without starting LLVM
    on a cache hit); elsewhere from LLVM, as kernels/narrow.py's vector_bytes reads it."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        features = llvm.get_host_cpu_features()
        flags = [name for name in ("avx512f", "avx") if features.get(name)]
    return 64 if "avx512f" in flags else 32 if "avx" in flags else 16


def schedule_of(op: Operation) -> dict[str, object]:
    """A fusion op's schedule attributes, which the schedule pass wrote (the CPU target schedules
    every kernel before codegen: compiler/targets/cpu.py)."""
    if "schedule" not in op.attributes:
        raise FlowcError(f"the {op.kind} kernel has no schedule: the schedule pass (passes/schedule.py) "
                         "must run before the LLVM backend")
    return {key: value for key, value in op.attributes.items() if key != "kind"}


def host_description() -> str:
    """What compiled code depends on besides its IR: part of every cache key.

    The code is compiled for LLVM's host CPU name and features, which LLVM
    reads from cpuid; on Linux /proc/cpuinfo shows the same model and
    feature flags, and reading it costs no LLVM start-up on a cache hit.
    Elsewhere we ask LLVM itself.
    """
    import llvmlite  # the package's version only: cheap

    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().split("\n\n", 1)[0].splitlines()  # the first CPU's block
        wanted = ("vendor_id", "cpu family", "model", "model name", "flags")
        fields = [line for line in lines if line.split(":", 1)[0].strip() in wanted]
        cpu = hashlib.sha256("\n".join(fields).encode()).hexdigest()[:16]
    except OSError:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        cpu = f"{llvm.get_host_cpu_name()}|{llvm.get_host_cpu_features().flatten()}"
    system = os.uname()  # not the platform module: a cache hit would pay for its import
    return f"{system.sysname}|{system.machine}|{cpu}|llvmlite {llvmlite.__version__}"
