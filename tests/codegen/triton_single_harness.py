"""Runs a function of single kernels through the GPU passes and the Triton emitters, in Triton's
interpreter on CPU torch tensors, and compares it with the reference interpreter (ir/interpreter.py).

A small launcher of its own, for the GPU's single kernels before the GPU executor runs whole graphs:
the function's top level may hold fusion ops, constants and a return. Each kernel gets its own error
flags (Note [error flags] in codegen/triton/kernel.py); the run's flags come back with its results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

import flowc.codegen.triton.kernels  # noqa: F401  (registers the emitters)
from flowc.codegen.triton.kernel import ERRORS, TritonKernel, TritonModule, emitter_of, slot_dtypes
from flowc.ir import Builder, Function, Module, Operation, TensorType, as_dtype, evaluate, parse_module, print_module
from flowc.ir.shapes import propagate_shapes
from flowc.passes import PassManager
from flowc.passes.fusion import Fuse
from flowc.passes.memory import MaterializeResults
from flowc.passes.schedule_gpu import GpuSchedule


@dataclass
class Built:
    """A function's kernels, emitted and loaded (interpreted)."""

    function: Function
    kernels: list[tuple[Operation, TritonKernel]]
    module: TritonModule

    def ptx(self) -> list[str]:
        """Every kernel built for sm_90."""
        return [self.module.ptx(kernel.name, slot_dtypes(op)) for op, kernel in self.kernels]

    def ptx_of_unit_sizes(self) -> list[str]:
        """Every kernel built for sm_90 with each run-time size 1: Triton's JIT makes an int argument
        equal to 1 a constant (a constexpr), which the source must take as well as a number."""
        import triton
        from triton.backends.compiler import GPUTarget

        from flowc.codegen.triton.kernel import Extent, signature

        texts = []
        for op, kernel in self.kernels:
            function = getattr(_gpu_functions(self.module), kernel.name)
            types = signature(kernel, slot_dtypes(op))
            ones = {name: 1 for name, parameter in kernel.parameters if isinstance(parameter, Extent)}
            types.update({name: "constexpr" for name in ones})
            source = triton.compiler.ASTSource(fn=function, signature=types, constexprs={**kernel.constants, **ones})
            result = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                    options={"num_warps": kernel.num_warps, "enable_fp_fusion": kernel.fp_fusion})
            texts.append(result.asm["ptx"])
        return texts


def _gpu_functions(module: TritonModule):  # type: ignore[no-untyped-def]
    from flowc.codegen.triton.kernel import _import_file

    return _import_file(module.path, f"flowc_triton_{module.key[:16]}_gpu", interpret=False)


@dataclass
class GpuRun:
    results: list[np.ndarray]
    failures: list[tuple[Operation, int]]  # (kernel, detail) of each kernel whose error flag is set


def op_text(name: str, operands: Sequence[tuple[str, tuple]], **attributes: object) -> str:
    """The IR text of a function of one op `name` on arguments of these (dtype, shape)s (None: unknown)."""
    function = Function("f", [TensorType(as_dtype(d), tuple(s)) for d, s in operands], [])
    b = Builder.at_end(function.entry)
    results = b.create(name, function.args, attributes).results
    b.create("return", results)
    function.result_types = [r.type for r in results]
    return print_module(Module([function]))


def compile_text(text: str):  # type: ignore[no-untyped-def]
    module = parse_module(text)
    PassManager([Fuse(), MaterializeResults(), GpuSchedule()], verify_each=True).run(module)
    return module


def build(text: str, folder: str) -> Built:
    """The function of `text` through the GPU passes, each kernel emitted, the module loaded."""
    function = next(iter(compile_text(text)))
    kernels: list[tuple[Operation, TritonKernel]] = []
    for op in function.entry.ops:
        if op.name == "fusion":
            emitter = emitter_of(op)
            assert emitter is not None, f"no emitter for {op}"
            kernels.append((op, emitter(op, f"k{len(kernels)}")))
    return Built(function, kernels, TritonModule([k for _, k in kernels], interpret=True, folder=folder))


def run_gpu(text: str, args: Sequence[np.ndarray], folder: str, scalars: dict | None = None) -> GpuRun:
    """Run the function of `text` on `args` as GPU kernels, interpreted."""
    built = build(text, folder)
    function = built.function
    shapes = propagate_shapes(function, [np.shape(a) for a in args])
    tensors = {arg: torch.from_numpy(np.array(a, copy=True)) for arg, a in zip(function.entry.args, args)}
    failures, launched = [], iter(built.kernels)
    for op in function.entry.ops:
        if op.name == "constant":
            tensors[op.results[0]] = torch.from_numpy(np.array(op.attributes["value"]))
        elif op.name == "fusion":
            _, kernel = next(launched)
            for result in op.results:
                dtype = torch.from_numpy(np.zeros(0, result.type.dtype.np)).dtype
                tensors[result] = torch.empty(shapes[result], dtype=dtype)
            errors = torch.zeros(2, dtype=torch.int64)
            built.module.launch(kernel.name, [tensors[v] for v in (*op.operands, *op.results)],
                                {**(scalars or {}), ERRORS.name: errors})
            if errors[0]:
                failures.append((op, int(errors[1])))
        elif op.name == "return":
            results = [tensors[v].numpy() for v in op.operands]
        else:
            raise AssertionError(f"the harness runs no {op.name}")
    return GpuRun(results, failures)


def reference(text: str, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    module = parse_module(text)
    return evaluate(next(iter(module)), list(args))


def assert_same(text: str, args: Sequence[np.ndarray], folder: str) -> GpuRun:
    """The GPU kernels' results are the reference's, bit for bit (NaN where NaN), dtype and shape too."""
    run = run_gpu(text, args, folder)
    assert not run.failures, run.failures
    for got, want in zip(run.results, reference(text, args), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
        np.testing.assert_array_equal(got, want)
    return run
