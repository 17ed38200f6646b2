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
import time
from typing import Callable, Sequence

import llvmlite.binding as llvm
from llvmlite import ir as ll

from .program import ENTRY


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


def optimize(module: llvm.ModuleRef) -> None:
    """LLVM's O2 pipeline with the loop and SLP vectorizers on.

    O2, not O3: the kernels of bench/ run as fast (each is one vectorized loop nest; O3's extra
    passes find nothing to do) and a cold compile of a 50-op graph is ~60 ms quicker. No loop
    unrolling ahead of the vectorizer: fully unrolled 16-lane reductions (reduction.py) were
    SLP-packed two lanes at a time instead of vectorized.
    """
    options = llvm.create_pipeline_tuning_options(speed_level=2)
    options.loop_vectorization = True
    options.slp_vectorization = True
    options.loop_unrolling = False
    builder = llvm.create_pass_builder(target_machine(), options)
    builder.getModulePassManager().run(module, builder)


def compile_module(module: ll.Module, log: Callable[[str], None] | None = None,
                   kernels: Sequence[str] = ()) -> tuple[bytes, str]:
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
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    optimize(parsed)
    optimized = time.perf_counter()
    objects = tm.emit_object(parsed)
    if log is not None:
        log(f"the whole module: {_times(started, optimized)}")
    return objects, str(parsed)


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
