"""From a lowered function to DIR/libNAME.so + DIR/NAME.h: the CPU target's passes and LLVM code, the
generated C API (c_source.py), flowc's thread pool compiled in, and OpenBLAS copied beside.

Note [what an exported library carries]: libNAME.so holds the compiled kernels, the entry point,
the C API and flowc_rt (the thread pool, runtime/native/flowc_rt.c) linked statically, and exports
only the NAME_* functions (a version script), so two exported libraries in one process never mix up
their symbols; each has its own pool. A function whose products call OpenBLAS needs
libscipy_openblas.so: it is copied beside the library and found through the rpath $ORIGIN, so DIR
can move as a whole. The variables' values are embedded as data (export_data.S, `.incbin`). The code
is compiled for the exporting machine's CPU, as a Session's is. Loaded into a process that has
OpenBLAS already (fc.load beside a Session), the loader shares that one by its soname, and the
library's pool adopts it (Note [one pool] in runtime/native/flowc_rt.c): both pools take
$FLOWC_NUM_THREADS, so the count OpenBLAS runs with, and its results, stay the same.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from flowc.codegen.llvm.blas import blas_library, calls_blas
from flowc.codegen.llvm.mpi import calls_mpi
from flowc.codegen.llvm.program import Program, plan_program
from flowc.ir import Operation, Value
from flowc.ir.errors import FlowcError, UnsupportedOpError
from flowc.passes.memory import memory_plan
from flowc.runtime.build import MPI_SOURCE, SUPPORT_SOURCE, NATIVE_DIR, _run, find_c_compiler, mpi_location

from ..driver import run_pipeline
from ..lowering import Lowered
from ..options import CompileOptions
from ..targets import target_named
from .c_source import header, implementation
from .dims import plan_dims
from .interface import Interface, Tensor, check_name

C_FLAGS = ("-O2", "-fPIC", "-pthread", "-c")
LINK_FLAGS: tuple[str, ...] = ()  # tests/test_export_c.py adds -fsanitize=address to both


@dataclass
class Exported:
    """What fc.export wrote, and how long each stage took."""

    library: str
    header: str
    files: list[str]
    stages: list[tuple[str, float]] = field(default_factory=list)  # (stage, seconds)

    def report(self) -> str:
        lines = [f"wrote {path}" for path in self.files]
        lines += [f"{stage:>10}: {seconds * 1000:8.1f} ms" for stage, seconds in self.stages]
        return "\n".join(lines)


def output_folder(path: str) -> tuple[str, str]:
    """DIR and NAME of `path` ('DIR/NAME'), DIR made if missing; a FlowcError if it cannot be written."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    check_name(name)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise FlowcError(f"cannot export to {directory!r}: cannot make the folder ({error.strerror or error})") \
            from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise FlowcError(f"cannot export to {directory!r}: the folder is not writable")
    return directory, name


def _check_no_cuts(lowered: Lowered) -> None:
    """A size that is data (fc.where(cond), fc.boolean_mask) runs on cpu cut in parts, the host reading the
    count between them (Note [data-dependent sizes] in compiler/data_sized_run.py); one C entry point
    with caller-owned outputs cannot, so such a function is refused, naming the op and its line."""
    cut = next((op for op in lowered.function.walk() if op.name == "data_dim"), None)
    if cut is not None:
        raise UnsupportedOpError(f"an exported function cannot have a result size that is data (here the count of "
                                 f"{cut.display_name}): its caller allocates every output before the call; run it "
                                 "in a Session on target 'cpu' instead", op=cut.display_name, where=cut.loc)


def export_lowered(lowered: Lowered, path: str, variables: list[Operation], values: list[np.ndarray], state: bool,
                   options: CompileOptions, step: int = 0, source: str = "", stages: list | None = None) -> Exported:
    """Compile `lowered` into DIR/libNAME.so and DIR/NAME.h. `variables` are the variables the function
    reads or updates, `values` their values: the context's initial values when `state`, else baked in."""
    directory, name = output_folder(path)
    stages = stages if stages is not None else []
    started = time.perf_counter()
    _check_no_cuts(lowered)
    run_pipeline(lowered, target_named("cpu"), options, donate=state)
    function = lowered.function
    program = plan_program(function, memory_plan(function), options.fast_math)
    api = _interface(name, lowered, program, variables, values, state, step, source)
    stages.append(("optimize", time.perf_counter() - started))
    started = time.perf_counter()
    from flowc.codegen.llvm.compile import compile_kernels  # late: LLVM loads only when something compiles
    from flowc.codegen.llvm.module import emit_module

    objects = compile_kernels(emit_module(program), None, [], options.cache_dir)
    stages.append(("llvm", time.perf_counter() - started))
    started = time.perf_counter()
    files = _write_library(directory, api, objects, any(calls_blas(op) for op in program.kernel_ops),
                           calls_mpi(program.kernel_ops))
    stages.append(("cc", time.perf_counter() - started))
    return Exported(files[0], files[1], files, stages)


def _interface(name: str, lowered: Lowered, program: Program, variables: list[Operation], values: list[np.ndarray],
               state: bool, step: int, source: str) -> Interface:
    sig, function, plan = lowered.signature, lowered.function, program.plan
    n_feeds = len(sig.feeds)
    fixed = {n_feeds + k: values[variables.index(var)].shape for k, var in enumerate(sig.variables)}
    if sig.uses_step:
        fixed[len(function.args) - 1] = ()
    dims = plan_dims(function, program.dims, fixed)
    offsets, data = _pack(values)
    arg_sources: list[tuple] = [("input", i) for i in range(n_feeds)]
    for var in sig.variables:
        k = variables.index(var)
        arg_sources.append(("variable", k) if state else ("data", offsets[k]))
    if sig.uses_step:
        arg_sources.append(("step",))
    result_sinks: list[tuple] = [("output", j) for j in range(len(sig.fetches))]
    scratch_bytes = []
    returned = function.entry.ops[-1].operands
    for j, var in enumerate(sig.updates, start=len(sig.fetches)):
        if state and j in plan.donated:
            result_sinks.append(("variable", variables.index(var)))
            continue
        result_sinks.append(("scratch", variables.index(var) if state else -1))
        scratch_bytes.append(int(np.prod(values[variables.index(var)].shape)) * returned[j].type.dtype.itemsize)
    # Baked values are data, not variables: the header lists none, NAME_variable gives NULL.
    documented = [Tensor(var.name, value.dtype, value.shape) for var, value in zip(variables, values)] if state else []
    return Interface(
        name=name,
        inputs=[_tensor(t.name, v) for t, v in zip(sig.feeds, function.args)],
        outputs=[_tensor(t.name, v) for t, v in zip(sig.fetches, returned)],
        variables=documented,
        arg_sources=arg_sources, result_sinks=result_sinks, dims=dims, slot_count=len(program.dims),
        error_slot=program.error_slot,
        temps=[(v.type.dtype.itemsize, dims.codes(v)) for v in plan.temps], lifetimes=list(plan.lifetimes),
        output_dims=[dims.codes(v) for v in returned[:len(sig.fetches)]],
        kernel_errors=[_kernel_error(op) for op in program.kernel_ops], discard_bytes=scratch_bytes,
        variable_offsets=offsets if state else [], data=data, step=step, source=source)


def _tensor(graph_name: str, value: Value) -> Tensor:
    name = graph_name[:-2] if graph_name.endswith(":0") else graph_name
    return Tensor(name, value.type.dtype.np, tuple(value.type.shape))


def _kernel_error(kernel: Operation) -> str:
    op = next((o for o in kernel.walk() if o.name in ("gather", "slice")), kernel)
    return op.display_name + (f" (created at {op.loc})" if op.loc else "")


def _pack(values: list[np.ndarray]) -> tuple[list[int], bytes]:
    """The values one after another, each at a multiple of 64 bytes."""
    offsets, chunks, size = [], [], 0
    for value in values:
        offsets.append(size)
        data = np.ascontiguousarray(value).tobytes()
        padding = (-len(data)) % 64
        chunks += [data, b"\0" * padding]
        size += len(data) + padding
    return offsets, b"".join(chunks) or b"\0"


def _write_library(directory: str, api: Interface, objects: list[bytes], uses_blas: bool,
                   uses_mpi: bool = False) -> list[str]:
    name = api.name
    header_path = os.path.join(directory, f"{name}.h")
    library_path = os.path.join(directory, f"lib{name}.so")
    compiler = find_c_compiler()
    files = [library_path, header_path]
    with open(header_path, "w") as file:
        file.write(header(api))
    with tempfile.TemporaryDirectory(prefix="flowc-export-") as scratch:
        paths = []
        for index, data in enumerate(objects):
            paths.append(os.path.join(scratch, f"kernels{index}.o"))
            with open(paths[-1], "wb") as file:
                file.write(data)
        sources = {"api.c": implementation(api), "export_data.S": _data_assembly(os.path.join(scratch, "data.bin"))}
        with open(os.path.join(scratch, "data.bin"), "wb") as file:
            file.write(api.data)
        for file_name, text in sources.items():
            with open(os.path.join(scratch, file_name), "w") as file:
                file.write(text)
        for file_name in ("api.c", "export_data.S"):
            out = os.path.join(scratch, file_name.split(".")[0] + ".o")
            _run([*compiler, *C_FLAGS, "-I", directory, "-o", out, os.path.join(scratch, file_name)],
                 f"compiling the C API of {name}")
            paths.append(out)
        runtime = os.path.join(scratch, "flowc_rt.o")
        _run([*compiler, *C_FLAGS, "-fvisibility=hidden", "-I", NATIVE_DIR, "-o", runtime, SUPPORT_SOURCE],
             "compiling flowc's thread pool")
        paths.append(runtime)
        mpi_flags = []
        if uses_mpi:  # collectives: the MPI shim inside, the mpich wheel's libmpi beside (the caller calls MPI_Init)
            include, mpi = mpi_location()
            shim = os.path.join(scratch, "flowc_mpi.o")
            _run([*compiler, *C_FLAGS, "-fvisibility=hidden", "-I", include, "-o", shim, MPI_SOURCE],
                 "compiling flowc's MPI shim")
            paths.append(shim)
            mpi_flags = [mpi, f"-Wl,-rpath,{os.path.dirname(mpi)}"]
        script = os.path.join(scratch, "exports.map")
        with open(script, "w") as file:
            names = " ".join(f"{name}_{f};" for f in ("create", "destroy", "output_dims", "run", "error", "variable"))
            file.write(f"{{ global: {names} local: *; }};\n")
        libraries = []
        if uses_blas:
            blas = os.path.join(directory, os.path.basename(blas_library()))
            shutil.copyfile(blas_library(), blas)
            libraries.append(blas)
            files.append(blas)
        _run([*compiler, "-shared", "-pthread", "-o", library_path, *paths, *libraries, f"-Wl,-soname,lib{name}.so",
              "-Wl,-rpath,$ORIGIN", f"-Wl,--version-script={script}", "-Wl,-z,nodelete", "-lm",
              *mpi_flags, *LINK_FLAGS],
             f"linking lib{name}.so")
    return files


def _data_assembly(data_path: str) -> str:
    return (".section .rodata\n.balign 64\n.globl flowc_export_data\n.hidden flowc_export_data\n"
            f'flowc_export_data:\n.incbin "{data_path}"\n.section .note.GNU-stack,"",@progbits\n')
