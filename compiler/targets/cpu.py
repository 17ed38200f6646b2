"""The CPU target: fusion and memory planning, then LLVM through llvmlite, linked into a shared library.

Its passes, after the shared pipeline: inline every call (passes/inline.py),
hoist loop-invariant code out of while bodies (passes/licm.py), fuse ops into
kernels (passes/fusion.py; cond and while stay beside the kernels, their
regions fused inside, and become branches and loops of the entry point:
codegen/llvm/control.py), give each result a kernel that writes it and each matmul
product a buffer of its own (passes/memory.py, separate_products.py), choose
each kernel's schedule for this host (passes/schedule.py), turn the numbers that alone tell
many kernels apart into operands (passes/lift_constants.py), and plan where
every value lives (PlanMemory). `build` emits the planned module
as one LLVM module and links it into a shared library kept in the disk cache,
keyed by the IR text (donations included), flowc's version, codegen's source,
the options that change code and the host CPU (runtime/cache.py): a second
process with the same graph loads the library instead of compiling it.
`load` loads it as a NativeExecutable (compiler/native.py).

Before all that, `driven_from_host` marks the while loops whose values change
shape and the conds whose branches yield different shapes (passes/host_driven.py);
a program with one is cut at it and run in pieces from the host, each piece
compiled as above (Notes [loops driven from the host] and [conds driven from
the host] in compiler/host_driven.py).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace

from flowc.codegen.llvm.blas import blas_library, calls_blas, load_blas
from flowc.codegen.llvm.mpi import calls_mpi
from flowc.codegen.llvm.program import (ENTRY, PROFILE_SYMBOL, Program, codegen_fingerprint, describe_kernel,
                                        host_description, host_vector_bytes, plan_program, schedule_of)
from flowc.codegen.llvm.support import check_float16, check_supported
from flowc.ir import Module
from flowc.ir.ops.fusion import PARAMETERS
from flowc.ir.printer import print_module
from flowc.passes import Pass
from flowc.passes.collective_placement import PlaceCollectives
from flowc.passes.expand_convolutions import ExpandConvolutions
from flowc.passes.fusion import Fuse
from flowc.passes.gang_loops import GangLoops
from flowc.passes.inline import Inline
from flowc.passes.licm import LICM
from flowc.passes.lift_constants import LiftConstants
from flowc.passes.memory import MaterializeResults, PlanMemory, memory_plan
from flowc.passes.schedule import Schedule, TargetInfo, choose_schedule, direct_applies, quick_schedule
from flowc.passes.widen_half_products import WidenHalfProducts
from flowc.runtime import cache_key, cached_library, link_shared, support_library
from flowc.runtime.build import mpi_library
from flowc.runtime.cache import cached_path

from ..lowering import Lowered
from ..native import NativeExecutable
from ..options import CompileOptions
from .base import Executable, Target, pieces_driven_from_host
from .separate_products import SeparateProducts

VERSION = "0.1.0"
QUICK_PREFIX = "quick-"  # a quick tier's object in the disk cache (CpuTarget._load_linked)


@dataclass(frozen=True)
class CpuArtifact:
    """A compiled function: its program (kernels, dims, memory plan) and the library that runs it."""

    program: Program
    library_path: str
    was_cached: bool  # found in the disk cache rather than compiled by this build
    dump_dir: str | None  # where FLOWC_DUMP_IR wrote this compile's passes: the executable adds its layouts


class CheckSupported(Pass):
    """Refuse an op the CPU backend cannot emit (codegen/llvm/support.py), naming it and its line."""

    name = "check-supported"

    def run(self, module: Module) -> bool:
        check_supported(module)
        check_float16(module)
        return False


class CpuTarget(Target):
    name = "cpu"
    cuts_at_data_dims = True  # Note [data-dependent sizes] in compiler/data_sized_run.py

    def passes(self, options: CompileOptions) -> list[Pass]:
        return [
            CheckSupported(),      # first: an op without CPU code is a clear error before any work
            Inline(),              # calls become their callee's ops, fused with the caller's (passes/inline.py)
            LICM(),                # after Inline: a callee's invariant code leaves the loop too (passes/licm.py)
            ExpandConvolutions(lambda op: direct_applies(op, _target_info(options))),  # im2col where not direct
            WidenHalfProducts(),   # a wide float16 product as sgemm of float32 copies (passes/widen_half_products.py)
            _fuse(options),        # ops into loop, reduction and matmul kernels
            MaterializeResults(),  # each result written by a kernel of its own, once
            SeparateProducts(),    # BLAS writes a product whole: it gets a buffer of its own
            Schedule(_target_info(options)),  # how each kernel runs on this host, as attributes codegen reads
            GangLoops(),           # loops whose turns split over a gang of threads (passes/gang_loops.py)
            LiftConstants(),       # numbers that alone tell many kernels apart become operands: one kernel
            PlaceCollectives(),    # split collectives as far apart as they may be (passes/collective_placement.py)
            PlanMemory(),          # last: needs the final op order and the kernels
        ]

    def driven_from_host(self, lowered: Lowered, options: CompileOptions) -> Executable | None:
        """Note [loops driven from the host] (compiler/host_driven.py): a program with a loop whose values
        change shape, or a cond whose branches differ, runs in pieces, cut there; any other program is one
        build, as before."""
        return pieces_driven_from_host(lowered, self, options)

    def build(self, module: Module, options: CompileOptions) -> CpuArtifact:
        program, key = self._planned(module, options)
        path, was_cached = cached_library(key, lambda out: _compile(program, options, out), folder=options.cache_dir)
        if options.log_compile and was_cached:
            _log(f"found compiled in the disk cache: {path}")
        return CpuArtifact(program, path, was_cached, options.dump_dir)

    def cached(self, module: Module, options: CompileOptions) -> CpuArtifact | None:
        """build's artifact if the disk cache has it, else None (nothing is compiled)."""
        program, key = self._planned(module, options)
        path = cached_path(key, folder=options.cache_dir)
        return None if path is None else CpuArtifact(program, path, True, options.dump_dir)

    def load_quick(self, module: Module, options: CompileOptions) -> NativeExecutable | None:
        """Note [tiered compilation] in passes/schedule.py: the quick tier of the scheduled `module`, built
        and loaded; None where it would be the optimized tier's code or that is in the disk cache. `module`
        is left as it was."""
        quick = {op: chosen for op in module.walk() if (chosen := quick_schedule(op)) is not None}
        if not quick or self.cached(module, options) is not None:
            return None
        saved = {op: op.attributes for op in quick}
        for op, chosen in quick.items():
            op.attributes = {key: value for key, value in op.attributes.items()
                             if key not in PARAMETERS and key != "schedule"} | chosen
        try:
            # Loaded before the schedules go back: load finds the BLAS calls by them. The program's kernels are
            # the module's ops, so the executable reads nothing of their schedules after this.
            return self._load_linked(module, options)
        finally:
            for op, attributes in saved.items():
                op.attributes = attributes

    def _load_linked(self, module: Module, options: CompileOptions) -> NativeExecutable:
        """build and load's executable of `module`, its objects linked into this process rather than by ld into
        a library (Note [the quick tier linked in process] in codegen/llvm/jit_link.py) where they may be. A
        module compiled whole keeps its object in the disk cache (QUICK_PREFIX), for a process that needs the
        quick tier again; a split one's kernels are there already (compile_kernels)."""
        program, key = self._planned(module, options)
        if calls_mpi(program.kernel_ops):  # its shim is no symbol of this process: linked as always
            return self.load(self.build(module, options), options)
        from flowc.codegen.llvm.jit_link import link_in_process  # late, as _compile's imports

        found = cached_path(key, prefix=QUICK_PREFIX, suffix=".o", folder=options.cache_dir)
        if found is not None:
            with open(found, "rb") as file:
                objects = [file.read()]
        else:
            objects = _objects(program, options)
            if len(objects) == 1:
                cached_library(key, lambda out: _write(out, objects[0]), prefix=QUICK_PREFIX, suffix=".o",
                               folder=options.cache_dir)
        blas = any(calls_blas(op) for op in program.kernel_ops)
        library = link_in_process(objects, [ENTRY, PROFILE_SYMBOL] if program.profile else [ENTRY], blas)
        if library is None:  # a symbol this process lacks: ld links the library, the disk cache keeps it
            path, was_cached = cached_library(key, lambda out: _link(program, objects, out), folder=options.cache_dir)
            return self.load(CpuArtifact(program, path, was_cached, options.dump_dir), options)
        layouts = options.dump_dir and os.path.join(options.dump_dir, "layouts.txt")
        return NativeExecutable(program, library.path, found is not None, layouts or None, library)

    def _planned(self, module: Module, options: CompileOptions) -> tuple[Program, str]:
        """The program of the scheduled `module` and its disk cache key."""
        function = module["main"]
        _schedule_the_rest(module, options)
        plan = memory_plan(function)
        program = plan_program(function, plan, options.fast_math, options.profile)
        # The plan's text: which buffers a kernel shares (donations, rows written in place) shapes its code.
        key = cache_key(print_module(module), plan.describe(function), program.dims.describe(function), VERSION,
                        codegen_fingerprint(),
                        f"fast_math={options.fast_math} profile={options.profile}", host_description())
        return program, key

    def load(self, artifact: CpuArtifact, options: CompileOptions) -> NativeExecutable:
        if any(calls_blas(op) for op in artifact.program.kernel_ops):
            load_blas()  # before the library that links it (load_blas says why)
        if calls_mpi(artifact.program.kernel_ops):
            from flowc.ir.ops.collective import world

            world()  # importing mpi4py initializes MPI, which the library's calls need (runtime/native/flowc_mpi.c)
        layouts = artifact.dump_dir and os.path.join(artifact.dump_dir, "layouts.txt")
        return NativeExecutable(artifact.program, artifact.library_path, artifact.was_cached, layouts or None)


def host_target_info() -> TargetInfo:
    """The host as the schedule pass sees it."""
    return TargetInfo(host_vector_bytes())


def _schedule_the_rest(module: Module, options: CompileOptions) -> None:
    """Schedule the kernels the schedule pass did not see (those nested in regions, or all of a
    module built without this target's passes): codegen reads a schedule from every kernel."""
    for op in module.walk():
        if op.name == "fusion" and "schedule" not in op.attributes:
            op.attributes = op.attributes | choose_schedule(op, _target_info(options))


def _fuse(options: CompileOptions) -> Fuse:
    return Fuse() if options.max_kernel_size is None else Fuse(options.max_kernel_size)


def _target_info(options: CompileOptions) -> TargetInfo:
    """The host's, unless the options ask for another vector width (the IR text, with the schedule,
    keys the disk cache, so code scheduled for another width is never taken for the host's)."""
    if options.vector_bytes is None:
        return host_target_info()
    return replace(host_target_info(), vector_bytes=options.vector_bytes)


def _compile(program: Program, options: CompileOptions, out_path: str) -> None:
    _link(program, _objects(program, options), out_path)


def _objects(program: Program, options: CompileOptions) -> list[bytes]:
    """The object code of `program`."""
    # Late: LLVM is loaded only when something must be compiled, never on a disk cache hit.
    from flowc.codegen.llvm.compile import compile_kernels
    from flowc.codegen.llvm.module import emit_module

    log, kernels = (_log, [describe_kernel(op) for op in program.kernel_ops]) if options.log_compile else (None, [])
    # A quick tier's kernels (Note [tiered compilation] in passes/schedule.py) say so in their schedules.
    quick_tier = any(schedule_of(op).get("quick") for op in program.kernel_ops)
    return compile_kernels(emit_module(program), log, kernels, options.cache_dir, quick_tier)


def _link(program: Program, objects: list[bytes], out_path: str) -> None:
    """`program`'s objects linked by ld into the library `out_path`, with the libraries they call."""
    blas = [blas_library()] if any(calls_blas(op) for op in program.kernel_ops) else []
    mpi = [mpi_library()] if calls_mpi(program.kernel_ops) else []
    link_shared(objects, [support_library(), *blas, *mpi], out_path)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)


def _log(line: str) -> None:
    """FLOWC_LOG=compile: a progress line on stderr, out before the next step can hang."""
    sys.stderr.write(f"flowc compile: {line}\n")
    sys.stderr.flush()
