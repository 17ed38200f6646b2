"""A fused function as one LLVM module with one C entry point.

    int32_t flowc_main(void **buffers, int64_t *dims);

`buffers` holds the arguments, then the results, then the scratch arena;
`dims` holds the run-time dims (Note [dims vector] in kernel.py), then the
arena offset of each temp, then two error slots that a kernel sets when it
finds bad data (a gather index out of range): the kernel's number + 1 and the
offending value. The entry point returns 0, or that kernel's number + 1.
One Session.run is one call of it; it runs the kernels in order, each
through the thread pool (`flowc_parallel_for`), which runs small work inline,
and the cond and while ops as branches and loops around their regions'
kernels (control.py, Note [kernels in loops]).
"""

from __future__ import annotations

from llvmlite import ir as ll

# registered on import: the gang loops' emitters, and each (kind, schedule) in EMITTERS
from . import gang, gang_rows, kernels  # noqa: F401
from .blas import calls_blas
from .entry import EntryEmitter
from .kernels.matmul import emit_openblas_adoption
from .program import ENTRY, Program
from .types import I32, I64, PTR

ENTRY_TYPE = ll.FunctionType(I32, [PTR.as_pointer(), I64.as_pointer()])


def emit_module(program: Program, name: str = "flowc") -> ll.Module:
    module = ll.Module(name=name)
    entry = ll.Function(module, ENTRY_TYPE, name=ENTRY)
    emitter = EntryEmitter(program, module, entry)
    emitter.emit_block(program.function.entry)
    emitter.b.ret(ll.Constant(I32, 0))
    emitter.at_entry.position_at_end(emitter.at_entry.block)
    emitter.at_entry.branch(emitter.start)  # the pointers are made: on to the code
    if any(calls_blas(op) for op in program.kernel_ops):
        emit_openblas_adoption(module)
    return module


