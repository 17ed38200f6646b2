"""What a kernel emitter registers and gets from the entry point: the (kind, schedule) -> emitter
table, each kind's parallel work and launch (module.py's emit_module reads them), and the
context a kernel is called with. Emitters import this, not module.py, which imports them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation

from .kernel import KERNEL_TYPE, Kernel, alloca_at_start, emit_dim, product
from .program import DimTable
from .types import I8, I32, I64, PTR

PARALLEL_FOR = ll.FunctionType(ll.VoidType(), [KERNEL_TYPE.as_pointer(), PTR, I64, I64])
GRAIN = 32768  # elements of work below which splitting across threads costs more than it gains

SCRATCH_BYTES = 1 << 16  # the entry point's stack area that kernels may share (Launch.scratch)

KernelEmitter = Callable[[Kernel], None]
WorkFn = Callable[[ll.IRBuilder, DimTable, ll.Value, Operation], tuple[ll.Value, ll.Value]]
# The backend's table: (kind, schedule) -> emitter, the schedule as the schedule pass recorded it
# (passes/schedule.py); how much parallel work a kernel has and how it is launched go by kind.
EMITTERS: dict[tuple[str, str], KernelEmitter] = {}
WORK: dict[str, WorkFn] = {}
LAUNCHERS: dict[str, Callable[["Launch"], None]] = {}


def kernel_kind(kind: str, work: WorkFn, launch: Callable[["Launch"], None] | None = None,
                schedules: tuple[str, ...] | None = None) -> Callable[[KernelEmitter], KernelEmitter]:
    """Register how much parallel work a fusion kind has and the emitter of its `schedules` (by
    default the one named like the kind); `launch`, if given, emits the entry point's calls of such
    a kernel in place of one flowc_parallel_for over its work."""

    def register(fn: KernelEmitter) -> KernelEmitter:
        WORK[kind] = work
        for schedule in schedules or (kind,):
            EMITTERS[kind, schedule] = fn
        if launch is not None:
            LAUNCHERS[kind] = launch
        return fn

    return register


def emits(kind: str, schedule: str) -> Callable[[type], type]:
    """Register an emitter class (built on the kernel, then `emit()`) for one schedule of a kind."""

    def register(cls: type) -> type:
        EMITTERS[kind, schedule] = lambda kernel: cls(kernel).emit()
        return cls

    return register


@dataclass
class Launch:
    """One kernel's call from the entry point, for a kind that makes its own (kernel_kind's `launch`):
    `default(context=None)` emits the usual flowc_parallel_for of `kernel` over its work (with the
    given context, else the plain one); `context` makes a context with extra pointers, for the
    kernel or its siblings (Kernel.sibling); `scratch` is a stack area of the entry point,
    SCRATCH_BYTES, 64-byte aligned, that any kernel may use while it runs."""

    kernel: Kernel
    b: ll.IRBuilder
    entry: ll.Function
    buffers: list[ll.Value]  # the op's operand and result pointers, the kernel's context order
    dims_pointer: ll.Value
    parallel_for: ll.Function
    default: Callable[..., None]
    _scratch: list[ll.Value] = field(default_factory=list)

    def context(self, extra: list[ll.Value]) -> ll.Value:
        """The kernel's context with `extra` pointers after the dims pointer (Kernel.extra_pointer)."""
        return context_of(self.b, self.buffers, self.dims_pointer, extra)

    def scratch(self) -> ll.Value:
        if not self._scratch:
            area = ll.ArrayType(I8, SCRATCH_BYTES)
            self._scratch.append(alloca_at_start(self.b, self.entry.entry_basic_block, area, "scratch", 64))
        return self.b.bitcast(self._scratch[0], PTR)

    def local(self, type: ll.Type, name: str) -> ll.Value:
        """A stack slot of the entry point."""
        return alloca_at_start(self.b, self.entry.entry_basic_block, type, name)


def elementwise_work(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, op: Operation) -> tuple[ll.Value, ll.Value]:
    """Work = every element of the first result, any split allowed."""
    shape_of = op.results[0]
    sizes = [emit_dim(b, dims, dims_pointer, shape_of, axis) for axis in range(shape_of.type.rank)]
    return product(b, sizes), ll.Constant(I64, GRAIN)


def context_of(b: ll.IRBuilder, pointers: list[ll.Value], dims_pointer: ll.Value,
               extra: list[ll.Value] | None = None) -> ll.Value:
    """The pointer array a kernel function takes: its buffers, the dims, then `extra`."""
    extra = [b.bitcast(pointer, PTR) for pointer in extra or []]
    # In the function's entry block: a context made inside a loop of the entry point would otherwise
    # take new stack on every turn.
    slot_type = ll.ArrayType(PTR, len(pointers) + 1 + len(extra))
    slots = alloca_at_start(b, b.block.parent.entry_basic_block, slot_type)
    for index, pointer in enumerate([*pointers, b.bitcast(dims_pointer, PTR), *extra]):
        b.store(pointer, b.gep(slots, [ll.Constant(I32, 0), ll.Constant(I32, index)]))
    return b.bitcast(slots, PTR)
