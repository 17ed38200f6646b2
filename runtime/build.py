"""Building native code with the system C compiler.

Two jobs: build the support library (native/flowc_rt.c, the thread pool that
generated code calls) once per machine into the cache, and link the object
files that the CPU backend emits into a shared library.
"""

from __future__ import annotations

import functools
import os
import sys
import threading

from flowc.ir.errors import FlowcError
from flowc.runtime.cache import cache_dir, cache_key, cached_library

NATIVE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native")
SUPPORT_SOURCE = os.path.join(NATIVE_DIR, "flowc_rt.c")
SUPPORT_HEADER = os.path.join(NATIVE_DIR, "flowc_rt.h")
SUPPORT_FLAGS = ("-O2", "-fPIC", "-pthread", "-shared")
# -z nodelete keeps the pool's code mapped even if a loader dlclose()s it,
# since its parked workers live until the process exits.
_NODELETE = () if sys.platform == "darwin" else ("-Wl,-z,nodelete",)

_support_lock = threading.Lock()
_support_paths: dict[str, str] = {}  # cache folder -> the support library built there


class NativeBuildError(FlowcError):
    """The C compiler or the linker failed; the message holds its output."""


class CompilerNotFoundError(NativeBuildError):
    """No C compiler: flowc's CPU target needs one to link what it compiles."""


def find_c_compiler() -> list[str]:
    """The C compiler's command line: $CC split like a shell would, else cc, gcc or clang on PATH."""
    import shlex  # late, as subprocess and tempfile below: only a build needs them, and a cache hit
    import shutil  # should not pay for importing them

    configured = os.environ.get("CC", "").strip()
    if configured:
        argv = shlex.split(configured)
        executable = shutil.which(argv[0])
        if executable is None:
            raise CompilerNotFoundError(
                f"flowc's CPU target needs a C compiler to link; $CC is {configured!r}, which is not "
                "an executable on PATH (install gcc or set CC)"
            )
        return [executable, *argv[1:]]
    for name in ("cc", "gcc", "clang"):
        executable = shutil.which(name)
        if executable is not None:
            return [executable]
    raise CompilerNotFoundError("flowc's CPU target needs a C compiler to link; install gcc or set CC")


@functools.cache
def _compiler_version(compiler: tuple[str, ...]) -> str:
    import subprocess

    try:
        result = subprocess.run([*compiler, "--version"], capture_output=True, text=True, check=False)
    except OSError as error:
        raise CompilerNotFoundError(f"cannot run the C compiler {compiler[0]}: {error}") from None
    first_line = (result.stdout or result.stderr).strip().splitlines()[:1]
    return " ".join(compiler) + " | " + (first_line[0] if first_line else "unknown version")


def compiler_version() -> str:
    """The compiler's command line and first line of `--version`; part of every cache key."""
    return _compiler_version(tuple(find_c_compiler()))


def include_dir() -> str:
    """The folder holding flowc_rt.h, for C code that calls the support library."""
    return NATIVE_DIR


def support_library() -> str:
    """The path of libflowc_rt, built into the cache on first use.

    Its name carries the hash of its C source and build flags, so an edit to
    the source builds a fresh one; its soname is that same file name, which
    libraries linked against it record as needed. The compiler is not in the
    key: the library is plain C behind a stable ABI, so any compiler's build
    serves, and finding the compiler's version would cost a process start on
    every cache hit.
    """
    with _support_lock:
        known = _support_paths.get(cache_dir())
        if known is not None and os.path.exists(known):
            return known
        with open(SUPPORT_SOURCE) as source, open(SUPPORT_HEADER) as header:
            key = cache_key("flowc_rt", source.read(), header.read(), *SUPPORT_FLAGS)[:32]
        name = f"libflowc_rt-{key}.so"

        def build(out_path: str) -> None:
            command = [*find_c_compiler(), *SUPPORT_FLAGS, *_NODELETE, f"-Wl,-soname,{name}", "-I", NATIVE_DIR]
            _run([*command, "-o", out_path, SUPPORT_SOURCE], "building the support library flowc_rt")

        path, _ = cached_library(key, build, prefix="libflowc_rt-")
        _support_paths[os.path.dirname(path)] = path
        return path


def link_shared(objects: list[bytes], libraries: list[str], out_path: str) -> None:
    """Link object files (their bytes) and `libraries` (paths) into the shared library `out_path`.

    Each library's folder goes into the rpath, so the result finds them when
    loaded; libm is linked too, since LLVM lowers math intrinsics to its calls.
    """
    import tempfile

    compiler = find_c_compiler()
    with tempfile.TemporaryDirectory(prefix="flowc-link-") as scratch:
        object_paths = []
        for index, data in enumerate(objects):
            object_path = os.path.join(scratch, f"object{index}.o")
            with open(object_path, "wb") as file:
                file.write(data)
            object_paths.append(object_path)
        folders = list(dict.fromkeys(os.path.dirname(os.path.abspath(library)) for library in libraries))
        what = f"linking {os.path.basename(out_path)}"
        linker = _system_linker()
        if linker is not None:  # Note [linking without the compiler driver]
            rpaths = [argument for folder in folders for argument in ("-rpath", folder)]
            try:
                _run([linker, "-shared", "-o", out_path, *object_paths, *libraries, *rpaths, "-lm"], what)
                return
            except NativeBuildError:
                pass  # an ld unlike GNU's or lld: the compiler driver knows how to call it
        rpaths = [f"-Wl,-rpath,{folder}" for folder in folders]
        _run([*compiler, "-shared", "-o", out_path, *object_paths, *libraries, *rpaths, "-lm"], what)


# Note [linking without the compiler driver]
# `cc -shared` starts three processes (the driver, collect2, ld), adds the C start files and links libc,
# whose symbol table ld reads on every link: most of the link's time. The objects LLVM emits for the CPU
# target need none of that: they call libm and libc (fmod, sincos, memcpy, memset), flowc_rt and
# OpenBLAS, never libgcc's helpers (no 128-bit integers; float16 converts by the host's F16C instructions,
# so a host without them is linked by the driver, _host_converts_half). And these
# libraries are only ever loaded into this process, where libc is loaded already and resolves their
# calls of it (fc.export links its own libraries with the compiler, libc included: compiler/aot/build.py).
# So on Linux, with no $CC chosen, ld links them alone, with libm, in about half the driver's time
# (bench/RESULTS.md, "@fc.jit"). Where ld fails, the driver links as before.


def _system_linker() -> str | None:
    """ld's path where the CPU target's objects are linked by it alone (Note [linking without the compiler
    driver]), else None."""
    if not sys.platform.startswith("linux") or os.environ.get("CC", "").strip() or not _host_converts_half():
        return None
    return _ld()


@functools.cache
def _host_converts_half() -> bool:
    """Whether this CPU has F16C, so float16 code calls no libgcc helper (Note [linking without the compiler
    driver]); unknown (no /proc/cpuinfo) counts as no."""
    try:
        with open("/proc/cpuinfo") as info:
            return any(line.startswith("flags") and " f16c" in line for line in info)
    except OSError:
        return False


@functools.cache
def _ld() -> str | None:
    import shutil

    return shutil.which("ld")


def _run(command: list[str], what: str) -> None:
    import shlex
    import subprocess

    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise CompilerNotFoundError(f"{what}: cannot run {command[0]}: {error}") from None
    if result.returncode != 0:
        output = (result.stderr + result.stdout).strip()
        raise NativeBuildError(f"{what} failed (exit {result.returncode}): {shlex.join(command)}\n{output}")


# -- MPI ----------------------------------------------------------------------------------------

MPI_SOURCE = os.path.join(NATIVE_DIR, "flowc_mpi.c")
MPI_FLAGS = ("-O2", "-fPIC", "-shared")
_mpi_paths: dict[str, str] = {}  # cache folder -> the MPI shim built there


class MpiNotFoundError(NativeBuildError):
    """A graph with collectives needs MPI's header and library: the mpich wheel."""


@functools.cache
def mpi_location() -> tuple[str, str]:
    """The folder holding mpi.h and the path of libmpi, from the installed mpich wheel.

    Found from the wheel's file list rather than `mpicc -show`: no process to start, and the library
    is the very file mpi4py (built for that wheel) loads, so the graph and mpi4py share one MPI."""
    from importlib import metadata

    try:
        files = metadata.files("mpich") or []
    except metadata.PackageNotFoundError:
        files = []
    header = next((f for f in files if str(f).endswith("include/mpi.h")), None)
    library = next((f for f in files if os.path.basename(str(f)).startswith("libmpi.so.")), None)
    if header is None or library is None:
        raise MpiNotFoundError("a graph with collectives (all_reduce, broadcast) compiled for the cpu target needs "
                               "MPI: pip install mpi4py mpich (flowc's 'dist' extra)")
    return os.path.dirname(str(header.locate())), os.path.realpath(str(library.locate()))


def mpi_library() -> str:
    """The path of libflowc_mpi (native/flowc_mpi.c), built into the cache on first use, linked with
    the mpich wheel's libmpi and its folder in the rpath (support_library says how it is named)."""
    include, library = mpi_location()
    with _support_lock:
        known = _mpi_paths.get(cache_dir())
        if known is not None and os.path.exists(known):
            return known
        with open(MPI_SOURCE) as source:
            key = cache_key("flowc_mpi", source.read(), library, *MPI_FLAGS)[:32]
        name = f"libflowc_mpi-{key}.so"

        def build(out_path: str) -> None:
            command = [*find_c_compiler(), *MPI_FLAGS, *_NODELETE, f"-Wl,-soname,{name}", "-I", include]
            rpath = f"-Wl,-rpath,{os.path.dirname(library)}"
            _run([*command, "-o", out_path, MPI_SOURCE, library, rpath], "building the MPI shim flowc_mpi")

        path, _ = cached_library(key, build, prefix="libflowc_mpi-")
        _mpi_paths[os.path.dirname(path)] = path
        return path
