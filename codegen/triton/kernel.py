"""What a Triton emitter makes from a fusion op, and how such a kernel is loaded, launched and built for a GPU.

An emitter (EMITTERS, keyed by (kind, schedule) as the schedule pass recorded
them, like the LLVM backend's table) turns one fusion op into a TritonKernel:
the source text of one `@triton.jit` function and, as data, what each of its
parameters is and how big its grid is. Both are stated in terms of the op's
*slots*: its operands, then its results, in order. Only sizes are left to run
time: the runtime knows every value's shape when it runs (ir/shapes.py) and
fills them in; nothing else about a launch is decided then.

    TritonKernel(
        name="k3",
        source="@triton.jit\\ndef k3(x, y, n0, BLOCK: tl.constexpr): ...",
        parameters=(("x", Buffer(0)), ("y", Buffer(1)), ("n0", Extent(1, 0))),
        constants={"BLOCK": 1024},
        grid=(GridAxis((Extent(1, 0),), 1024),),
    )

A kernel may carry variants: the same op emitted for each of its schedule's
tuning candidates, one of which a GPU launches instead (Note [autotuning] in
codegen/triton/autotune.py).

Kernels of one program live in one Python module (TritonModule): Triton's
`jit` reads a function's source from its file, so the module is written to the
disk cache, keyed by its text, and imported from there; a second process finds
the file and does not write it again. Functions that many kernels call (the
portable formulas the interpreter needs, Philox) are HELPERS, written once at
the top of every module.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from flowc.ir import Operation
from flowc.ir.types import DType
from flowc.runtime.cache import cache_key, cached_library


@dataclass(frozen=True)
class Buffer:
    """The storage of slot `slot` (a pointer to its first element; every buffer is contiguous, row-major)."""

    slot: int


@dataclass(frozen=True)
class Extent:
    """The run-time size of axis `axis` of slot `slot`'s value."""

    slot: int
    axis: int


@dataclass(frozen=True)
class Scalar:
    """A run-time number the launcher supplies by name (the run's random step), of Triton type `dtype`."""

    name: str
    dtype: str = "i64"


Parameter = Buffer | Extent | Scalar

# Note [error flags]: a kernel that may find a bad index (gather, gather_nd, a row op, an integer slice
# of an unknown dim) or a false `check` takes ERRORS, a pointer to two int64s [flag, detail] that the
# launcher supplies: zeros before the run, read after it. Where the kernel fails it stores flag 1 and
# detail (the offending index, or a check's row-major element index), as the CPU's error slots hold;
# it never reads out of bounds meanwhile (the index is clamped). The launcher gives each such kernel
# its own pair and raises as compiler/native.py's _raise does for the first kernel whose flag is set.
ERRORS = Scalar("errors", "*i64")


@dataclass(frozen=True)
class GridAxis:
    """One axis of the grid: cdiv(product of the `extents` times `factor`, `block`) programs."""

    extents: tuple[Extent, ...]
    block: int = 1
    factor: int = 1
    minimum: int = 0  # at least this many programs: a kernel that checks its indices runs on an empty result too

    def size(self, shapes: Sequence[tuple[int, ...]]) -> int:
        work = math.prod(shapes[e.slot][e.axis] for e in self.extents) * self.factor
        return max(-(-work // self.block), self.minimum)


@dataclass(frozen=True)
class TritonKernel:
    """One fusion op as one Triton function (module docstring)."""

    name: str
    source: str  # "@triton.jit\ndef <name>(<parameters>, <constants>):\n    ..."
    parameters: tuple[tuple[str, Parameter], ...]  # the function's run-time parameters, in order
    grid: tuple[GridAxis, ...]
    constants: Mapping[str, int] = field(default_factory=dict)  # its tl.constexpr parameters (block sizes)
    num_warps: int = 4
    num_stages: int | None = None  # the software pipeline's depth of a loop's loads (None: Triton's default)
    # False: no a * b + c contracted to an fma, where a kernel must round as the reference does (the
    # random ops' float64 affine map: Note [random streams] in ir/ops/philox.py)
    fp_fusion: bool = True
    # (result slot, operand slot): that result starts as a copy of that operand, which the launcher
    # makes before the launch (scatter_add adds into a copy of its base: Note [scatter_add with atomics])
    starts_as: tuple[tuple[int, int], ...] = ()
    # The schedule's candidate configurations, as kernels a GPU may launch instead (Note [autotuning] in
    # codegen/triton/autotune.py); a variant of source "" has this kernel's name and launches its function
    variants: tuple[TritonKernel, ...] = ()

    def describe(self) -> str:
        """Its configuration in words: its block sizes, warps and stages."""
        sizes = " ".join(f"{name}={value}" for name, value in self.constants.items())
        stages = f", {self.num_stages} stages" if self.num_stages is not None else ""
        return f"{sizes}, {self.num_warps} warps{stages}"

    def grid_size(self, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        """The grid for slots of these shapes; a size-0 axis means there is nothing to launch."""
        return tuple(axis.size(shapes) for axis in self.grid)


Emitter = Callable[[Operation, str], TritonKernel]
# The backend's table: (kind, schedule) -> emitter(op, kernel name).
EMITTERS: dict[tuple[str, str], Emitter] = {}
# A "single" kernel's emitter, by the name of the one op its region holds (transpose, gather, ...):
# emitter(fusion op, kernel name), the inner op found by single_op.
SINGLE_OPS: dict[str, Emitter] = {}
# Functions every module defines before its kernels: name -> "@triton.jit\ndef name(...): ..." source.
HELPERS: dict[str, str] = {}


def emits(kind: str, *schedules: str) -> Callable[[Emitter], Emitter]:
    """Register an emitter for the given schedules of a fusion kind (by default the one named like the kind)."""

    def register(fn: Emitter) -> Emitter:
        for schedule in schedules or (kind,):
            EMITTERS[kind, schedule] = fn
        return fn

    return register


def emits_single(*op_names: str) -> Callable[[Emitter], Emitter]:
    """Register the emitter of "single" kernels that hold one of these ops."""

    def register(fn: Emitter) -> Emitter:
        for name in op_names:
            SINGLE_OPS[name] = fn
        return fn

    return register


def single_op(op: Operation) -> Operation | None:
    """The one op a "single" kernel's region computes (None when simplified away: a copy)."""
    inner = [o for o in op.regions[0].entry.ops if not o.is_terminator and o.name != "constant"]
    return inner[0] if inner else None


def emitter_of(op: Operation) -> Emitter | None:
    """The emitter of fusion op `op` as scheduled, None when the backend has none."""
    if op.kind == "single":
        inner = single_op(op)
        return SINGLE_OPS.get(inner.name if inner is not None else "identity")
    return EMITTERS.get((op.kind, op.attributes.get("schedule", "")))


def helper(name: str, source: str) -> str:
    """Register a shared `@triton.jit` function; returns its name, for the emitters that call it."""
    if HELPERS.get(name, source) != source:
        raise ValueError(f"two different Triton helpers named {name!r}")
    HELPERS[name] = source
    return name


MODULE_HEADER = "import triton\nimport triton.language as tl\n\n"


def module_text(kernels: Sequence[TritonKernel]) -> str:
    """The Python module that defines the helpers, then the kernels."""
    sources = [source for k in kernels for source in (k.source, *(v.source for v in k.variants)) if source]
    parts = [MODULE_HEADER, *(HELPERS[name] for name in sorted(HELPERS)), *sources]
    return "\n\n".join(part.strip("\n") for part in parts) + "\n"


class TritonModule:
    """The kernels of one program, imported from their module's file in the disk cache."""

    def __init__(self, kernels: Sequence[TritonKernel], interpret: bool, folder: str | None = None,
                 tuner: Any = None):
        """`interpret`: run the kernels in Triton's interpreter (on CPU torch tensors) rather than a GPU;
        `tuner`: chooses among a kernel's variants (autotune.Tuner, Note [autotuning]; not named here, which
        autotune imports); None: the heuristic's runs."""
        self.kernels = {k.name: k for k in kernels}
        self.interpret = interpret
        self.tuner = tuner
        self.text = module_text(kernels)
        self.key = cache_key("triton-module", self.text)
        self.path, self.was_cached = cached_library(self.key, self._write, prefix="triton-", suffix=".py",
                                                    folder=folder)
        self.functions = _import_file(self.path, f"flowc_triton_{self.key[:16]}", interpret)

    def _write(self, path: str) -> None:
        with open(path, "w") as file:
            file.write(self.text)

    def launch(self, name: str, values: Sequence[Any], scalars: Mapping[str, int] | None = None) -> None:
        """Run kernel `name` on `values`, torch tensors of its slots (operands, then results)."""
        kernel, scalars = self.kernels[name], scalars or {}
        with _interpreting() if self.interpret else contextlib.nullcontext():
            if kernel.variants and self.tuner is not None and not kernel.starts_as:
                kernel = self.tuner.choose(kernel, tuple(tuple(v.shape) for v in values),
                                           lambda option: self._launch(option, values, scalars))
            self._launch(kernel, values, scalars)

    def _launch(self, kernel: TritonKernel, values: Sequence[Any], scalars: Mapping[str, int]) -> None:
        launch(kernel, getattr(self.functions, kernel.name), values, scalars)

    def configuration(self, name: str) -> str:
        """How kernel `name` last ran, in words: its tuned choice, or the heuristic's configuration."""
        kernel = self.kernels[name]
        if self.tuner is not None and name in self.tuner.described:
            return self.tuner.described[name]
        if not kernel.variants:
            why = "no candidates"
        elif self.interpret:
            why = "the interpreter times nothing"
        else:
            why = "not run yet" if self.tuner is not None else "FLOWC_AUTOTUNE=0"
        return f"{kernel.describe()} (the heuristic's: {why})"

    def ptx(self, name: str, dtypes: Sequence[DType], capability: int = 90, variant: int = 0) -> str:
        """Kernel `name`'s PTX for slots of these element types (compile_ptx), interpreted module or not;
        `variant` n > 0: that of its n-th variant (Note [autotuning])."""
        compiled = _import_file(self.path, f"flowc_triton_{self.key[:16]}_gpu", interpret=False)
        kernel = self.kernels[name] if not variant else self.kernels[name].variants[variant - 1]
        return compile_ptx(kernel, getattr(compiled, kernel.name), dtypes, capability)


def launch(kernel: TritonKernel, function: Any, values: Sequence[Any], scalars: Mapping[str, int]) -> None:
    """Fill in the kernel's parameters and grid from `values`' shapes and launch it (nothing when empty)."""
    shapes = [tuple(v.shape) for v in values]
    for result, operand in kernel.starts_as:
        values[result].copy_(values[operand])
    grid = kernel.grid_size(shapes)
    if 0 in grid:
        return
    arguments = [_argument(parameter, values, shapes, scalars) for _, parameter in kernel.parameters]
    options = {} if kernel.fp_fusion else {"enable_fp_fusion": False}
    if kernel.num_stages is not None:
        options["num_stages"] = kernel.num_stages
    function[grid](*arguments, **kernel.constants, num_warps=kernel.num_warps, **options)


def _argument(parameter: Parameter, values: Sequence[Any], shapes: Sequence[tuple[int, ...]],
              scalars: Mapping[str, int]) -> Any:
    if isinstance(parameter, Buffer):
        return values[parameter.slot]
    if isinstance(parameter, Extent):
        return shapes[parameter.slot][parameter.axis]
    return scalars[parameter.name]


@contextlib.contextmanager
def _interpreting() -> Any:
    """While an interpreted kernel runs: TRITON_INTERPRET set, and Triton's own library functions
    (tl.sum, tl.cumsum, tl.zeros, ...), decorated when this process imported Triton uninterpreted
    (_import_file), replaced by interpreted ones, which the interpreter can call. The interpreter
    patches the language modules when it calls one and does not undo all of it: every module is
    put back as it was, so a kernel built for the GPU afterwards sees Triton unpatched. All of that is
    the process's state, so one interpreted kernel runs at a time (_INTERPRETER_LOCK): threads that
    share a Session take turns, which costs nothing, the interpreter holding the GIL as it emulates."""
    with _INTERPRETER_LOCK:
        with _interpreter_patched():
            yield


_INTERPRETER_LOCK = threading.RLock()  # an RLock: a launch may import its module


@contextlib.contextmanager
def _interpreter_patched() -> Any:
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    modules = (tl, tl.core, tl.standard, tl.math)
    saved = [(module, dict(vars(module))) for module in modules]
    for module in modules:
        for name, value in list(vars(module).items()):
            if isinstance(value, JITFunction):
                setattr(module, name, _INTERPRETED.setdefault(value, InterpretedFunction(value.fn)))
    variable = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        for module, namespace in saved:
            for name in set(vars(module)) - set(namespace):
                delattr(module, name)
            for name, value in namespace.items():
                if vars(module).get(name) is not value:
                    setattr(module, name, value)
        if variable is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = variable


_INTERPRETED: dict[Any, Any] = {}


def _import_file(path: str, name: str, interpret: bool) -> Any:
    # One import at a time, and none while a kernel is interpreted (_INTERPRETER_LOCK): the module is in
    # sys.modules before its kernels are defined (Triton's jit looks it up by name), so a second thread
    # must not take it half made; and both set TRITON_INTERPRET for a while, each restoring what it found.
    with _INTERPRETER_LOCK:
        if name in sys.modules:
            return sys.modules[name]
        return _imported(path, name, interpret)


def _imported(path: str, name: str, interpret: bool) -> Any:
    # Triton itself is imported first, with TRITON_INTERPRET as the process has it: imported under
    # TRITON_INTERPRET=1, its own library functions (tl.cdiv ...) would be interpreted ones, and a later
    # launch that imports triton.experimental.gluon asserts they are not. So kernels call no `@jit`
    # function of that library (tl.zeros, tl.sum, tl.max, tl.cdiv) either: an interpreted kernel
    # cannot call a compiled one. They use tl.full, and tl.reduce with a combine function of their own
    # module (HELPERS), decorated as the module is.
    import triton.language  # noqa: F401

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: Triton's jit looks the module up by name
    # `triton.jit` reads TRITON_INTERPRET when it decorates, so the variable is set only while the
    # module runs: one process may hold an interpreted module and a compiled one of the same file.
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    # Triton 3.9 warns on every compile that this default will change; flowc keeps fma contraction on
    # (the CPU target contracts too, under its own rules), and says so instead of being warned.
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved
    return module


# -- building for a GPU without one ---------------------------------------------------------------

POINTER_TYPES = {"float16": "*fp16", "bfloat16": "*bf16", "float32": "*fp32", "float64": "*fp64",
                 "int8": "*i8", "int16": "*i16", "int32": "*i32", "int64": "*i64", "uint8": "*u8", "bool": "*i1"}
POINTER_TYPES |= {"uint16": "*u16"}
EXTENT_TYPE = "i32"  # what the JIT makes of a size below 2**31; PTX built for that case


def slot_dtypes(op: Operation) -> list[DType]:
    """The element type of each slot of fusion op `op`: its operands', then its results'."""
    return [v.type.dtype for v in (*op.operands, *op.results)]


def signature(kernel: TritonKernel, dtypes: Sequence[DType]) -> dict[str, str]:
    """The kernel's Triton signature, for slots of these element types."""
    types: dict[str, str] = {}
    for name, parameter in kernel.parameters:
        if isinstance(parameter, Buffer):
            types[name] = POINTER_TYPES[str(dtypes[parameter.slot])]
        elif isinstance(parameter, Extent):
            types[name] = EXTENT_TYPE
        else:
            types[name] = parameter.dtype
    for name in kernel.constants:
        types[name] = "constexpr"
    return types


def compile_ptx(kernel: TritonKernel, function: Any, dtypes: Sequence[DType], capability: int = 90) -> str:
    """PTX of the kernel for an NVIDIA GPU of this compute capability (90: an H100), built on this machine,
    GPU or none: a kernel that would not build for the GPU fails here, in CI. `function` is the
    kernel's JITFunction (from a module imported with interpret=False)."""
    import triton
    from triton.backends.compiler import GPUTarget

    source = triton.compiler.ASTSource(fn=function, signature=signature(kernel, dtypes),
                                       constexprs=dict(kernel.constants))
    compiled = triton.compile(source, target=GPUTarget("cuda", capability, 32),
                              options={"num_warps": kernel.num_warps, "enable_fp_fusion": kernel.fp_fusion,
                                       **({"num_stages": kernel.num_stages} if kernel.num_stages is not None else {})})
    return compiled.asm["ptx"]
