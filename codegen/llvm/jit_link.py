"""Object code linked into this process's memory by LLVM's JIT linker, without ld and without a file.

Note [the quick tier linked in process]
A quick tier (Note [tiered compilation] in passes/schedule.py) exists to make a jitted function's first
call soon, and linking its object into a shared library was a sixth of that call: `ld` is a process of
its own that reads libm's and OpenBLAS's symbol tables, then dlopen reads the file back. ORC's LLJIT with
JITLink does that job in this process, in about a tenth of the time: it copies the object's sections into
memory of its own, resolves the object's calls (flowc_rt, loaded with RTLD_GLOBAL, and libc's and libm's
functions from this process's symbols; OpenBLAS, loaded with RTLD_LOCAL, by the addresses given here) and
gives the addresses of the symbols asked for. It runs no constructor of an object, so the one that hands
OpenBLAS's threading to flowc's pool (emit_openblas_adoption) is called here instead, by hand. The code is
the same machine code ld would have linked (only the addresses differ), so a quick tier computes what it
did as a library. Its memory goes when the ResourceTracker does, which the LinkedLibrary's functions hold
(Note [unloading compiled code] in runtime/loader.py). The optimized tier, which is compiled on a thread
and written to the disk cache for other processes, is still linked by ld into a library; so is any build
whose link fails here (a symbol this process does not have), as before.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Sequence

import llvmlite.binding as llvm

from flowc.runtime.loader import LinkedLibrary, support

from .blas import GEMM, OPENBLAS_SET_CALLBACK, OPENBLAS_SET_THREADS, load_blas
from .compile import _forking, quick_target_machine

_lock = threading.Lock()
_jit: llvm.LLJIT | None = None
_names = itertools.count()  # LLJIT never takes a library's name twice, even after the library went


def link_in_process(objects: Sequence[bytes], exports: Sequence[str], calls_blas: bool) -> LinkedLibrary | None:
    """The objects linked into this process, as a library with `exports`' addresses (Note [the quick tier
    linked in process]); None where LLVM cannot link them (a symbol this process lacks)."""
    support()  # first: the objects call flowc_rt, found among this process's global symbols
    builder = llvm.JITLibraryBuilder()
    for data in objects:
        builder.add_object_img(data)
    builder.add_current_process()
    blas = _blas_symbols() if calls_blas else {}
    for name, address in blas.items():
        builder.import_symbol(name, address)
    for name in exports:
        builder.export_symbol(name)
    name = f"flowc-linked-{next(_names)}"
    with _forking:  # an LLVM call, as compile.py's: no fork copies llvmlite's lock held
        try:
            tracker = builder.link(_lljit(), name)
        except RuntimeError:
            return None
    if calls_blas:  # the constructor that LLJIT does not run (Note [the quick tier linked in process])
        adopt = support().flowc_adopt_openblas
        adopt.argtypes, adopt.restype = (ctypes.c_void_p, ctypes.c_void_p), None
        adopt(blas[OPENBLAS_SET_CALLBACK], blas[OPENBLAS_SET_THREADS])
    return LinkedLibrary(name, {export: tracker[export] for export in exports}, tracker)


def _lljit() -> llvm.LLJIT:
    global _jit
    with _lock:
        if _jit is None:
            # The quick tier's target machine, which made the objects; a failed link raises here (link_in_process
            # then says None) and prints nothing: ld links those objects, as before.
            _jit = llvm.create_lljit_compiler(quick_target_machine(), use_jit_link=True, suppress_errors=True)
        return _jit


def _blas_symbols() -> dict[str, int]:
    """OpenBLAS's functions that generated code calls, by address: it is loaded with RTLD_LOCAL (load_blas)."""
    library = load_blas()
    return {name: ctypes.addressof(ctypes.c_char.in_dll(library, name))
            for name in (*GEMM.values(), OPENBLAS_SET_CALLBACK, OPENBLAS_SET_THREADS)}
