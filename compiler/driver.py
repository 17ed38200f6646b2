"""The driver: from a lowered IR module to something a Session can call, through a Target.

One pipeline for every target: gradient requests are expanded, the shared
pipeline runs (unless the options say not to optimize), then the target's own
passes, each timed, verified and dumped by the PassManager; then the target
builds an artifact and loads it (compiler/targets/).
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import replace
from typing import Callable, Iterator

from flowc.ir import Module
from flowc.passes import Pass, PassManager, default_pipeline, expand_gradients

from .lowering import Lowered
from .options import CompileOptions
from .targets import Executable, Target, target_named


CUT = "data_dim"  # where a run is cut at a data-dependent size (Note [data-dependent sizes] in data_sized_run.py)


def has_cuts(module: Module) -> bool:
    """Whether any function of `module` holds a data_dim (one in a called function is inlined first). Here,
    not in data_sized_run.py, whose imports a program without cuts, most, need not pay for (1 ms)."""
    return any(op.name == CUT for function in module for op in function.walk())


def compile_lowered(lowered: Lowered, target: Target | str, options: CompileOptions) -> Executable:
    """`lowered`'s module, compiled in place for `target` (an object or a registered name) and loaded."""
    with collector_paused():
        return _compile_lowered(lowered, target, options)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Note [no garbage collection while compiling]
    A compile makes a great many small objects that live until it ends (ops, values, types, LLVM
    builder objects), and Python's cyclic collector, run every 700 allocations, walks them again
    and again: a third of the Python side of a compile of a 10,000-op chain with its gradient was
    collections. So the collector waits while a compile runs; the IR's cycles that the compile left
    behind are collected once it is back on. (Left as it is when it was already off.)"""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _compile_lowered(lowered: Lowered, target: Target | str, options: CompileOptions) -> Executable:
    if isinstance(target, str):
        target = target_named(target)
    if target.cuts_at_data_dims and has_cuts(lowered.module):  # Note [data-dependent sizes]
        from .data_sized_run import data_sized_executable  # late: it compiles its segments through here

        executable = data_sized_executable(lowered, target, options)
        if executable is not None:
            return executable
    run_shared_pipeline(lowered, target, options)
    return compile_optimized(lowered, target, options)


def compile_optimized(lowered: Lowered, target: Target, options: CompileOptions) -> Executable:
    """`lowered`, through the shared pipeline already, compiled by `target`: in pieces driven from the host
    where the target says so (Note [loops driven from the host] in host_driven.py), else as one build."""
    pieces = target.driven_from_host(lowered, options)
    if pieces is not None:
        return pieces
    dump_dir = run_target_passes(lowered, target, options)
    return target.load(target.build(lowered.module, replace(options, dump_dir=dump_dir)), options)


def compile_tiered(lowered: Lowered, target: Target | str,
                   options: CompileOptions) -> tuple[Executable, Callable[[], Executable] | None]:
    """compile_lowered's executable and None, or (where the options and the target have tiers) the quick
    tier's and a function that builds and loads the optimized one (Note [tiered compilation] in
    passes/schedule.py)."""
    if isinstance(target, str):
        target = target_named(target)
    if not options.tiers or (target.cuts_at_data_dims and has_cuts(lowered.module)):
        return compile_lowered(lowered, target, options), None  # a run cut at a count is built in segments
    with collector_paused():
        run_shared_pipeline(lowered, target, options)
        pieces = target.driven_from_host(lowered, options)  # Note [loops driven from the host]: no tiers
        if pieces is not None:
            return pieces, None
        options = replace(options, dump_dir=run_target_passes(lowered, target, options))
        quick = target.load_quick(lowered.module, options)
        if quick is None:
            return target.load(target.build(lowered.module, options), options), None
    return quick, lambda: target.load(target.build(lowered.module, options), options)


def run_pipeline(lowered: Lowered, target: Target, options: CompileOptions, donate: bool = True) -> str | None:
    """Every pass `lowered`'s module goes through before `target` builds it, in place; returns the dump
    folder of the target's passes (None without one). `donate=False` offers no argument buffer for a
    result (fc.export's baked variables are read-only data)."""
    run_shared_pipeline(lowered, target, options)
    return run_target_passes(lowered, target, options, donate)


def run_shared_pipeline(lowered: Lowered, target: Target, options: CompileOptions) -> None:
    module = lowered.module
    # Gradient requests have no executable meaning: they are expanded even when the Session runs
    # unoptimized (optimize=False, FLOWC_OPT=0), where the pipeline that starts with Autodiff does not run.
    expand_gradients(module, sized_by_data=target.sized_by_data)
    if options.optimize:
        pass_manager(default_pipeline(options.fast_math), options).run(module)


def run_target_passes(lowered: Lowered, target: Target, options: CompileOptions, donate: bool = True) -> str | None:
    module = lowered.module
    passes = target.passes(options)
    if not passes:
        return None
    donations = lowered.signature.donations() if donate else {}
    if donations:  # the caller's offer, for memory planning (Note [the memory plan of a function])
        lowered.function.attributes["donate"] = tuple((result, arg) for result, arg in sorted(donations.items()))
    # The target's passes keep the shared pipeline's report as last_report(), and get their own dump folder,
    # which build and load see as their dump_dir: the CPU executable writes its layouts there.
    return pass_manager(passes, options, record=False).run(module).dump_folder


def pass_manager(passes: list[Pass], options: CompileOptions, record: bool = True) -> PassManager:
    return PassManager(passes, verify_each=options.verify, dump_dir=options.dump_dir or "", record=record)
