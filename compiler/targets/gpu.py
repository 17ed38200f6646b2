"""The gpu target: the CPU's fusion and result materialization, the GPU's schedule, one Triton kernel per
fusion op, run by a host-side walk over the function (runtime/gpu.py).

Its passes, after the shared pipeline: refuse what no target with sizes from
the fed shapes runs (codegen/llvm/support.py, as the CPU does), inline every
call, hoist loop-invariant code, fuse into kernels, give each result a kernel
that writes it, check that every kernel has a Triton emitter (CheckGpuKernels,
which names the op and its line before any kernel is written), and choose
each kernel's GPU schedule (passes/schedule_gpu.py). No memory plan: each
kernel's results are torch tensors of their own, which torch's caching
allocator reuses.

`build` asks each fusion op's emitter (codegen/triton/kernel.py's
EMITTERS) for its kernel, walking the regions of cond and while too, and
keeps the kernels in the disk cache keyed as the CPU keys its library (the
IR text, flowc's version, the Triton backend's source): a second process
with the same graph reads them back and runs no emitter. `load` writes
them as one module to the disk cache (TritonModule: its file is found
there too) and makes a GpuExecutable. A matmul or reduction kernel comes with its schedule's
candidate configurations as variants; on a GPU a Tuner times them on the kernel's first run at a
shape bucket and keeps the choice in the disk cache (Note [autotuning] in codegen/triton/autotune.py).
On a machine without a GPU the kernels run in Triton's interpreter on CPU tensors, in the heuristic's
configuration, so every test of this target runs in CI.

Before all that, `driven_from_host` cuts a program at its loops whose values change shape and its
conds whose branches yield different shapes, as the cpu target does (Note [conds driven from the
host] in compiler/host_driven.py): each piece is compiled as above.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

from flowc.codegen.llvm.support import check_supported
from flowc.codegen.triton import kernels as _registered  # noqa: F401  importing registers every emitter
from flowc.codegen.triton import cache as kernel_cache
from flowc.codegen.triton.autotune import Tuner, emit_with_candidates
from flowc.codegen.triton.expressions import EXPRESSIONS
from flowc.codegen.triton.kernel import ERRORS, TritonKernel, TritonModule, emitter_of, single_op
from flowc.ir import Function, Module, Operation, registry
from flowc.ir.errors import TargetError, UnsupportedOpError
from flowc.ir.ops.fusion import is_pointwise
from flowc.ir.printer import print_module
from flowc.passes import Pass
from flowc.passes.expand_convolutions import ExpandConvolutions
from flowc.passes.fusion import Fuse
from flowc.passes.inline import Inline
from flowc.passes.licm import LICM
from flowc.passes.memory import MaterializeResults
from flowc.passes.schedule_gpu import RULES, GpuSchedule
from flowc.runtime import cache_key, cached_library
from flowc.runtime.gpu import GpuExecutable, device_name

from ..lowering import Lowered
from ..native import raise_kernel_failure
from ..options import CompileOptions
from .base import Executable, Target, pieces_driven_from_host
from .cpu import VERSION

NAME = "gpu"
# What the executable runs itself, outside kernels (runtime/gpu.py); views are found by is_view.
HOST_OPS = ("fusion", "cond", "while", "constant", "yield", "return")


@dataclass(frozen=True)
class GpuArtifact:
    """A compiled function: its scheduled module and one Triton kernel per fusion op, in walk order."""

    module: Module
    kernels: tuple[TritonKernel, ...]
    cache_dir: str | None
    was_cached: bool  # read from the disk cache: no emitter ran


class CheckGpuSupported(Pass):
    """Refuse, before any work, what the gpu target cannot run, as the CPU's CheckSupported does."""

    name = "check-supported-gpu"

    def run(self, module: Module) -> bool:
        check_supported(module, NAME)
        return False


class CheckGpuKernels(Pass):
    """After fusion and the GPU schedule: every op outside kernels is one the executable runs, and every
    kernel has an emitter and Triton forms of its pointwise ops; otherwise an UnsupportedOpError naming
    the op the gpu target lacks, its line, and the target that compiles it."""

    name = "check-gpu-kernels"

    def run(self, module: Module) -> bool:
        views = set(registry.names_where(is_view=True))
        for op in module.walk():
            if op.parent_op is not None and op.parent_op.name == "fusion":
                continue  # checked with its kernel
            if op.name == "fusion":
                check_kernel(op)
            elif op.name not in HOST_OPS and op.name not in views:
                raise _unsupported(op, "it is not in a kernel, and the gpu target runs only kernels, views, "
                                       "constants, cond and while outside them")
        return False


def check_kernel(op: Operation) -> None:
    """Raise UnsupportedOpError unless fusion op `op` (scheduled or not) can be written as a Triton kernel."""
    inner = [o for o in op.regions[0].entry.ops if not o.is_terminator and o.name != "constant"]
    for nested in inner:
        if is_pointwise(nested) and nested.name != "broadcast_to" and nested.name not in EXPRESSIONS:
            raise _unsupported(nested, "it has no Triton expression (codegen/triton/expressions.py)")
    if op.kind not in RULES:
        raise _unsupported(_main_op(op, inner), f"it has no schedule for {op.kind} kernels")
    if op.kind == "single":
        single = single_op(op)
        if emitter_of(op) is None:
            raise _unsupported(single or op, "it has no Triton kernel (codegen/triton/kernel.py's SINGLE_OPS)")
        return
    if "schedule" in op.attributes and emitter_of(op) is None:
        raise _unsupported(_main_op(op, inner), f"it has no emitter of {op.kind} kernels scheduled "
                                                f"{op.attributes['schedule']!r}")


def _main_op(op: Operation, inner: list[Operation]) -> Operation:
    """What a kernel is named after in an error: its matmul or first reduction, else the kernel."""
    for nested in inner:
        if nested.name == "matmul" or nested.is_reduction:
            return nested
    return op


def _unsupported(op: Operation, why: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"the {NAME} target does not compile {op.name}: {why}; target 'cpu' compiles it",
                              op=op.display_name, where=op.loc)


class GpuTarget(Target):
    name = NAME
    cuts_at_data_dims = True  # the host reads each count between segments (Note [data-dependent sizes])

    def passes(self, options: CompileOptions) -> list[Pass]:
        return [
            CheckGpuSupported(),   # first: an op no compiled target runs is a clear error before any work
            Inline(),              # calls become their callee's ops (passes/inline.py)
            LICM(),                # after Inline: a callee's invariant code leaves the loop too
            ExpandConvolutions(),  # conv2d as patches and a product (no direct kernel in Triton)
            _fuse(options),        # the same kernels as the CPU's (passes/fusion.py)
            MaterializeResults(),  # each result written by a kernel of its own, once: fresh device tensors
            CheckGpuKernels(),     # before scheduling: names the op without a Triton form, not its kernel
            GpuSchedule(),         # how each kernel runs as a Triton program, as attributes
            CheckGpuKernels(),     # again, now that each kernel has a schedule its emitter is looked up by
        ]

    def driven_from_host(self, lowered: Lowered, options: CompileOptions) -> Executable | None:
        """As the cpu target: a loop whose values change shape, or a cond whose branches differ, runs in
        pieces from the host, each piece one executable of this target (Note [conds driven from the host] in
        compiler/host_driven.py); the pieces hand each other host arrays."""
        return pieces_driven_from_host(lowered, self, options)

    def build(self, module: Module, options: CompileOptions) -> GpuArtifact:
        function = module["main"]
        _schedule_the_rest(module)
        key = cache_key("gpu-kernels", print_module(module), VERSION, kernel_cache.codegen_fingerprint())

        def write(path: str) -> None:
            with open(path, "w") as file:
                file.write(kernel_cache.dumps(emit_kernels(function)))

        path, was_cached = cached_library(key, write, prefix="gpu-", suffix=".json", folder=options.cache_dir)
        if options.log_compile and was_cached:
            sys.stderr.write(f"flowc compile: found the gpu kernels in the disk cache: {path}\n")
        with open(path) as file:
            kernels = kernel_cache.loads(file.read())
        return GpuArtifact(module, kernels, options.cache_dir, was_cached)

    def load(self, artifact: GpuArtifact, options: CompileOptions) -> GpuExecutable:
        missing = [name for name in ("torch", "triton") if importlib.util.find_spec(name) is None]
        if missing:
            raise TargetError(f"the gpu target runs its kernels with {' and '.join(missing)}, which this Python "
                              "lacks: pip install 'flowc[gpu]'")
        device = device_name()
        triton_module = TritonModule(artifact.kernels, interpret=device != "cuda", folder=artifact.cache_dir,
                                     tuner=_tuner(device, options, artifact.cache_dir))
        function = artifact.module["main"]
        names = {op: kernel.name for op, kernel in zip(fusion_ops(function), artifact.kernels)}
        flagged = [op for op, kernel in zip(fusion_ops(function), artifact.kernels)
                   if ERRORS in dict(kernel.parameters).values()]
        return GpuExecutable(function, triton_module, names, device, flagged, raise_kernel_failure,
                             artifact.was_cached)


def emit_kernels(function: Function) -> list[TritonKernel]:
    """One Triton kernel per fusion op of `function`, named by its place in walk order."""
    kernels = []
    for index, op in enumerate(fusion_ops(function)):
        check_kernel(op)
        kernels.append(emit_with_candidates(emitter_of(op), op, f"kernel{index}"))  # type: ignore[arg-type]
    return kernels


def fusion_ops(function: Function) -> list[Operation]:
    """The function's kernels, those in regions of cond and while included, in walk order."""
    return [op for op in function.walk() if op.name == "fusion"]


def _tuner(device: str, options: CompileOptions, folder: str | None) -> Tuner | None:
    """What chooses among a kernel's candidates (Note [autotuning] in codegen/triton/autotune.py): nothing
    in the interpreter, where nothing can be timed, or with FLOWC_AUTOTUNE=0."""
    if device != "cuda" or not options.autotune:
        return None
    import torch

    return Tuner(torch.cuda.get_device_name(), folder)


def _schedule_the_rest(module: Module) -> None:
    """A module built without this target's passes (optimize off still runs them; a caller of build may
    not) gets a schedule on every kernel: emitters read it."""
    pending = [op for op in module.walk() if op.name == "fusion" and "schedule" not in op.attributes]
    if pending:
        GpuSchedule().run(module)


def _fuse(options: CompileOptions) -> Fuse:
    return Fuse() if options.max_kernel_size is None else Fuse(options.max_kernel_size)
