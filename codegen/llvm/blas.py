"""Which products call the BLAS, and where it is (Note [BLAS choice] in kernels/matmul.py); no LLVM here."""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os
import threading

from flowc.ir import Operation
from flowc.ir.errors import FlowcError

from .program import schedule_of


def calls_blas(kernel: Operation) -> bool:
    """Whether a kernel's code calls OpenBLAS: its schedule says so (passes/schedule.py)."""
    return kernel.kind == "matmul" and schedule_of(kernel)["schedule"] == "blas"


GEMM = {"float32": "scipy_cblas_sgemm", "float64": "scipy_cblas_dgemm"}  # scipy-openblas32's symbols (BLAS_DTYPES)
# Its threading setters, which an artifact calling it hands to flowc_rt (Note [one pool] in runtime/native/flowc_rt.c).
OPENBLAS_SET_CALLBACK = "scipy_openblas_set_threads_callback_function"
OPENBLAS_SET_THREADS = "scipy_openblas_set_num_threads"


def blas_library_path() -> str:
    """The directory holding libscipy_openblas.so (linked into the CPU artifacts that call it, calls_blas).

    Found with find_spec, not by importing scipy_openblas32, whose import reads package metadata,
    a cost every disk cache hit would pay."""
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise FlowcError("the CPU target needs the scipy-openblas32 package (pip install scipy-openblas32)")
    return os.path.join(list(spec.submodule_search_locations)[0], "lib")


@functools.cache
def blas_library() -> str:
    """The path of libscipy_openblas*.so."""
    found = sorted(glob.glob(os.path.join(blas_library_path(), "libscipy_openblas*.so*")))
    if not found:
        raise FlowcError(f"no libscipy_openblas in {blas_library_path()}: reinstall scipy-openblas32")
    return found[0]


_load_lock = threading.Lock()

# Note [the one write to os.environ]
# Loading OpenBLAS starts its own worker threads, which spin (yielding) for 2^28 cycles before they
# sleep. Once an artifact hands OpenBLAS's threading to flowc's pool (Note [one pool] in
# runtime/native/flowc_rt.c) they never get work, but while they spin every gang of flowc's pool
# shares the cores with them, and the first fraction of a second of products runs several times
# slower (bench/RESULTS.md, "Figures moved from the code"). OpenBLAS takes the spin time from
# OPENBLAS_THREAD_TIMEOUT (or GOTO_THREAD_TIMEOUT) only in its load-time constructor, and exports
# no setter for it (its exported threading API is set_num_threads and the threads callback), so
# the variable is the only way in: `load_blas` sets the shortest spin (4) while it loads the
# library, under a lock, and deletes the variable again at once; a timeout the user chose is left
# as it is. This is the only place flowc writes the environment.


@functools.cache
def load_blas() -> ctypes.CDLL:
    """Load libscipy_openblas into the process, before the first artifact that links it does,
    with its workers' spin cut short (Note [the one write to os.environ])."""

    with _load_lock:
        chosen = any(name in os.environ for name in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT"))
        if not chosen:
            os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        try:
            return ctypes.CDLL(blas_library(), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        finally:
            if not chosen:
                del os.environ["OPENBLAS_THREAD_TIMEOUT"]
