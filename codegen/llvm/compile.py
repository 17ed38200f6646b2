"""From an llvmlite IR module to optimized object code for this machine.

The target machine is the host CPU with all its features (llvmlite's host
CPU name and feature string), so LLVM may use AVX2/AVX-512 where present;
the compile cache key describes the host (`host_description` in program.py). Floating point is
IEEE by default: no fast-math flags unless the Session asks for them
(`fast_math=True`; the emitters then flag the graph's own float arithmetic,
see elementwise.float_flags), and kernels that want a particular association
order (vectorized sums) write it out explicitly.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import llvmlite.binding as llvm
from llvmlite import ir as ll

from flowc.runtime.cache import cache_key, cached_library, cached_path

from .program import ENTRY, codegen_fingerprint, host_description


@functools.cache
def _initialized() -> bool:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return True


@functools.cache
def target_machine() -> llvm.TargetMachine:
    _initialized()
    target = llvm.Target.from_default_triple()
    # PIC: the object is linked into a shared library. Code generation at -O2: as fast kernels as -O3 in
    # bench/ and a quicker cold compile.
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                        opt=2, reloc="pic", codemodel="default")


@functools.cache
def quick_target_machine() -> llvm.TargetMachine:
    """target_machine's, generating code at -O0 (Note [the entry point compiled quickly])."""
    _initialized()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                        opt=0, reloc="pic", codemodel="default")


def optimize(module: llvm.ModuleRef, quick: bool = False) -> None:
    """LLVM's O2 pipeline with the loop and SLP vectorizers on; `quick`: its O1 pipeline without them, for a
    quick tier (Note [the entry point compiled quickly]).

    O2, not O3: the kernels of bench/ run as fast (each is one vectorized loop nest; O3's extra
    passes find nothing to do) and a cold compile is quicker. No loop
    unrolling ahead of the vectorizer: fully unrolled 16-lane reductions (reduction.py) were
    SLP-packed two lanes at a time instead of vectorized.
    """
    options = llvm.create_pipeline_tuning_options(speed_level=1 if quick else 2)
    options.loop_vectorization = not quick
    options.slp_vectorization = not quick
    options.loop_unrolling = False
    builder = llvm.create_pass_builder(target_machine(), options)
    builder.getModulePassManager().run(module, builder)


def simplify(module: llvm.ModuleRef) -> None:
    """Three of LLVM's function passes over each function, a quick tier's pipeline where no fast-math flag
    makes the choice of passes change what the code computes (Note [the entry point compiled quickly])."""
    # The quick target machine's: a quick tier's first call then sets up no other (it gives the same analyses).
    builder = llvm.create_pass_builder(quick_target_machine(), llvm.create_pipeline_tuning_options(speed_level=0))
    passes = llvm.create_new_function_pass_manager()
    passes.add_sroa_pass()  # values kept in allocas to registers
    passes.add_instruction_combine_pass()  # the constant index arithmetic of the emitters folded
    passes.add_simplify_cfg_pass()  # the empty blocks of their if-else folded
    for function in module.functions:
        if not function.is_declaration:
            passes.run(function, builder)


def compile_module(module: ll.Module, log: Callable[[str], None] | None = None,
                   kernels: Sequence[str] = (), text: str | None = None) -> tuple[bytes, str]:
    """Object code for `module`, and the optimized LLVM IR text (for dumps and tests).

    With `log` (FLOWC_LOG=compile), each kernel is first compiled alone, between a line that names
    it (its number and `kernels[number]`) and one with its times, so a compile that never ends
    says which kernel it is in; then the module as always. Without, nothing of that runs.
    """
    tm = target_machine()
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    if log is not None:
        for number, description in enumerate(kernels):
            log(f"kernel {number} of {len(kernels)}: {description}: compiling alone")
            log(f"kernel {number}: {_compile_timed(tm, _kernel_alone(module, number))}")
        log("the whole module: compiling")
    started = time.perf_counter()
    with _forking:
        parsed = llvm.parse_assembly(text if text is not None else str(module))  # `text`: str(module), if printed
        parsed.verify()
        optimize(parsed)
        optimized = time.perf_counter()
        objects = tm.emit_object(parsed)
    if log is not None:
        log(f"the whole module: {_times(started, optimized)}")
    return objects, str(parsed)


# A module's text below SPLIT_CHARS compiles whole: each split module pays an LLVM start and its own
# copy of the helpers it calls, more than a graph of a few dozen kernels gains (the training step's
# figures: bench/RESULTS.md, Training steps).
SPLIT_CHARS = 2_000_000
# An entry point this big is split off too, whatever the kernels' size: compiled whole, LLVM optimizes it at
# O2 with the kernels (seconds for an unrolled RNN of 128 steps whose kernels are few: Note [constants lifted
# out of kernels] in passes/lift_constants.py), split off it compiles at O0 (Note [the entry point compiled
# quickly]).
SPLIT_ENTRY_CHARS = 500_000
# Kernels smaller than GROUP_CHARS share a module with their neighbours (Note [kernels grouped into modules]
# in split.py): each module pays for an LLVM start, a pass pipeline and an object of its own. 0: one each.
GROUP_CHARS = 100_000
PARALLEL_CHARS = 400_000  # IR text left to compile above which worker processes pay for their start


def _entry_chars(text: str) -> int:
    """The length of the entry point's definition in a module's text."""
    start = text.find(f'define i32 @"{ENTRY}"')
    return 0 if start < 0 else text.find("\n}\n", start) - start


@dataclass
class BuildCount:
    """What the latest compile_kernels did: its modules, and how many were compiled (not from the cache)."""

    modules: int = 0
    compiled: int = 0


last_build = BuildCount()


def compile_kernels(module: ll.Module, log: Callable[[str], None] | None = None,
                    kernels: Sequence[str] = (), folder: str | None = None, quick_tier: bool = False) -> list[bytes]:
    """Object code for `module`: a big module as one object per kernel and one for the entry point,
    each cached on disk by its own text (Note [kernels compiled apart] in split.py) and compiled in
    worker processes when there is much to compile; a small one whole (compile_module). `quick_tier`:
    a quick tier's module, whose code is generated by the quickest code generator (Note [the entry
    point compiled quickly])."""
    global last_build
    tm = quick_target_machine() if quick_tier else target_machine()  # the same triple and layout
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    text = str(module)
    big = len(text) >= SPLIT_CHARS or _entry_chars(text) >= SPLIT_ENTRY_CHARS
    parts = None
    if big and log is None:
        from .split import split_module  # late: a small module, most, is compiled whole (1 ms of imports)

        parts = split_module(text, GROUP_CHARS)
    if parts is None:
        last_build = BuildCount(1, 1)
        # compile_text is compile_module without printing the optimized module, which nothing here reads.
        if log is not None and not quick_tier:
            return [compile_module(module, log, kernels, text)[0]]
        return [compile_text(text, quick_tier=quick_tier)]
    keys = [cache_key(part.text, host_description(), codegen_fingerprint(), "kernel object") for part in parts]
    texts = {key: part.text for key, part in zip(keys, parts)}
    missing = [key for key in texts if cached_path(key, prefix="kernel-", suffix=".o", folder=folder) is None]
    entry_key = keys[0]  # parts[0] is the entry point's module: Note [the entry point compiled quickly]
    built = dict(zip(missing, _compile_texts([texts[key] for key in missing], [key == entry_key for key in missing],
                                             quick_tier)))

    def build(out_path: str, key: str) -> None:  # an entry that went since the look-up is compiled again
        _write(out_path, built[key] if key in built else compile_text(texts[key], key == entry_key, quick_tier))

    objects = []
    for key in keys:
        path, _ = cached_library(key, lambda out, key=key: build(out, key), prefix="kernel-", suffix=".o",
                                 folder=folder)
        with open(path, "rb") as file:
            objects.append(file.read())
    last_build = BuildCount(len(parts), len(missing))
    return objects


def _compile_texts(texts: list[str], quick: list[bool], quick_tier: bool = False) -> list[bytes]:
    """Each module text to object code (`quick`, `quick_tier`: as compile_text's); in worker processes
    (forked: LLVM is ready in them) when there is enough to do. llvmlite serializes its calls behind one
    lock, so threads would not help."""
    import multiprocessing  # late: a small module compiled whole never needs the worker processes,
    from concurrent.futures import ProcessPoolExecutor  # and importing them costs a cold compile ~10 ms

    workers = min(len(texts), os.cpu_count() or 1)
    if workers < 2 or sum(map(len, texts)) < PARALLEL_CHARS or "fork" not in multiprocessing.get_all_start_methods():
        return [compile_text(text, fast, quick_tier) for text, fast in zip(texts, quick)]
    # The biggest first, so that no worker is left with a big one at the end.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    # Fork under _forking: no other thread of this process is inside LLVM then (flowc's own LLVM calls take
    # it), so no worker starts with a copy of a lock held for good (llvmlite's, or LLVM's own).
    with _forking, ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        results = dict(zip(order, pool.map(_compile_text, [texts[i] for i in order], [quick[i] for i in order],
                                           [quick_tier] * len(order))))
    return [results[i] for i in range(len(texts))]


_forking = threading.RLock()


def _fresh_lock_in_child() -> None:
    global _forking
    _forking = threading.RLock()


# A fork by anyone waits for an LLVM call of another thread (a jitted function's optimized tier: Note [tiered
# compilation] in passes/schedule.py) to end, so that no child starts with llvmlite's or LLVM's locks held.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: _forking.acquire(), after_in_parent=lambda: _forking.release(),
                        after_in_child=_fresh_lock_in_child)


def compile_text(text: str, quick: bool = False, quick_tier: bool = False) -> bytes:
    """Object code for one module's LLVM IR text (triple and data layout set); `quick`: without
    LLVM's optimizer, by its quickest code generator (Note [the entry point compiled quickly]);
    `quick_tier`: a quick tier's, by `simplify` (or the O1 pipeline) and then that code generator."""
    with _forking:
        return _compile_text(text, quick, quick_tier)


# Note [the entry point compiled quickly]
# The entry point of a split module (split.py) is straight-line code: per kernel, a context of
# pointers, a call of the thread pool and an error check, hundreds of times over. LLVM's O2 and
# its code generator at -O2 spent more on it than on all the kernels of an unrolled RNN; nothing in
# it is worth optimizing (its time per run is a few instructions per kernel, against the kernel's
# own work; small graphs, whose entry point may matter, are compiled whole and never get here).
# So it is compiled unoptimized, by the code generator at -O0, about 15x quicker.
# A quick tier's module (Note [tiered compilation] in passes/schedule.py) runs while its optimized tier is
# compiled: three of LLVM's function passes (SROA, instcombine, simplifycfg: `simplify`), then the code
# generator at -O0 (its products are OpenBLAS calls either way; its epilogue's loop runs as scalars;
# bench/RESULTS.md, "@fc.jit"). Not unoptimized, as the entry point: a big elementwise kernel of an
# unoptimized quick tier would run many times slower than the compile saves. Not LLVM's O1 pipeline, as
# before: on the MLP forward's quick tier it took 12 ms of the first call, the three passes 2, and
# elementwise kernels of softmax, tanh, exp and sums ran as fast either way. Each of those passes keeps
# IEEE arithmetic exact, so the quick tier computes what it did under O1, bit for bit; code with fast-math
# flags, which let a pass reassociate, still goes through O1 (without the vectorizers), as before.


def _compile_text(text: str, quick: bool = False, quick_tier: bool = False) -> bytes:
    parsed = llvm.parse_assembly(text)
    parsed.verify()
    if quick:
        return quick_target_machine().emit_object(parsed)
    if quick_tier and " fast " not in text:  # no fast-math flag in the code (elementwise.FAST_MATH_FLAGS)
        simplify(parsed)
    else:
        optimize(parsed, quick=quick_tier)
    return (quick_target_machine() if quick_tier else target_machine()).emit_object(parsed)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)


def _kernel_alone(module: ll.Module, number: int) -> str:
    """The module's text with only kernel `number`'s functions defined (kernel{number}_*, made
    external so that nothing drops them unused) and the entry point and other kernels declared."""
    prefix = f"kernel{number}_"
    saved = []
    for function in module.functions:
        mine = function.name.startswith(prefix)
        if function.blocks and (mine or function.name == ENTRY or function.name.startswith("kernel")):
            saved.append((function, function.blocks, function.linkage))
            function.linkage = ""
            if not mine:
                function.blocks = []
    try:
        return str(module)
    finally:
        for function, blocks, linkage in saved:
            function.blocks, function.linkage = blocks, linkage


def _compile_timed(tm: llvm.TargetMachine, text: str) -> str:
    started = time.perf_counter()
    parsed = llvm.parse_assembly(text)
    optimize(parsed)
    optimized = time.perf_counter()
    tm.emit_object(parsed)
    return _times(started, optimized)


def _times(started: float, optimized: float) -> str:
    """How long the optimizer took (from `started` to `optimized`) and the object code since."""
    emitted = time.perf_counter()
    return f"optimized in {(optimized - started) * 1e3:.1f} ms, object code in {(emitted - optimized) * 1e3:.1f} ms"
