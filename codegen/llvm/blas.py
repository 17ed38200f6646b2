"""Where the BLAS is (Note [BLAS choice] in kernels/matmul.py), found without LLVM or the package's import."""

from __future__ import annotations

import functools
import glob
import importlib.util
import os

from flowc.ir.errors import FlowcError

GEMM = {"float32": "scipy_cblas_sgemm", "float64": "scipy_cblas_dgemm"}  # scipy-openblas32's prefixed symbols


def blas_library_path() -> str:
    """The directory holding libscipy_openblas.so (linked into every CPU artifact that multiplies floats).

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
