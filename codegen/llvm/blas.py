"""Which products call the BLAS, and where it is (Note [BLAS choice] in kernels/matmul.py); no LLVM here."""

from __future__ import annotations

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

    Found with find_spec, not by importing scipy_openblas32, whose import reads package metadata
    (about 60 ms that every disk cache hit would pay)."""
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


@functools.cache
def load_blas() -> None:
    """Load libscipy_openblas into the process, before the first artifact that links it does.

    Loading it starts OpenBLAS's own workers, which spin (yielding) for 2^28 cycles before they
    sleep. Once an artifact hands OpenBLAS's threading to flowc's pool (Note [one pool] in
    runtime/native/flowc_rt.c) they never get work, but while they spin every gang shares the
    cores with them: the MLP forward of bench/ took 8 ms instead of 1.5 for its first 0.25 - 0.75 s.
    So they are started with OpenBLAS's shortest spin (OPENBLAS_THREAD_TIMEOUT=4, read only while
    the library initializes), unless the user chose one; the variable is gone again afterwards.
    """
    import ctypes

    with _load_lock:
        chosen = any(name in os.environ for name in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT"))
        if not chosen:
            os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        try:
            ctypes.CDLL(blas_library(), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        finally:
            if not chosen:
                del os.environ["OPENBLAS_THREAD_TIMEOUT"]
