"""WidenHalfProducts: a wide float16 product as a float32 one of float32 copies, rounded to half once.

    %p = matmul %a, %b : f16[m,n]        ->        %a32 = cast %a {dtype = f32} : f32[m,k]
                                                   %b32 = cast %b {dtype = f32} : f32[k,n]
                                                   %p32 = matmul %a32, %b32 : f32[m,n]
                                                   %p = cast %p32 {dtype = f16} : f16[m,n]

The reference multiplies float16 so (ir/ops/linalg.py: float32 products summed in float32, rounded to
half once), so the rewrite is the same computation; but OpenBLAS has no half product, and the CPU
target's generated loops for products it lacks ("generic", kernels/matmul.py: integers) are scalar,
about fifty times slower than sgemm on the copies, which runs close to float32's own product
(bench/RESULTS.md, "float16 and small integers on the CPU"). The casts fuse with their neighbours (the result's
with the product's epilogue), so a copy is one pass over the operand.

Narrow products (n <= 16 known: Note [narrow products] in passes/schedule.py) stay float16: their
generated code reads half and sums in float itself, with no copies.

A pass of the CPU target, before fusion (compiler/targets/cpu.py): the shared pipeline's output,
which the reference runs and autodiff reads, keeps the product as written.
"""

from __future__ import annotations

from flowc.ir import Builder, Module
from flowc.ir.types import float16, float32

from .manager import Pass
from .schedule import is_narrow


class WidenHalfProducts(Pass):
    """Rewrite every float16 matmul that is not narrow as a float32 one (see the module docstring)."""

    name = "widen-half-products"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            for op in list(function.walk()):  # the bodies of cond and while too
                if op.name != "matmul" or op.result.type.dtype != float16 or is_narrow(op):
                    continue
                b = Builder.before(op)
                wide = [b.cast(operand, dtype=float32) for operand in op.operands]
                product = b.create("matmul", wide, dict(op.attributes)).result
                name = op.result.name  # the rounded product keeps the product's name in dumps
                rounded = b.cast(product, dtype=float16)
                op.result.replace_all_uses_with(rounded)
                op.erase()
                rounded.name = name
                changed = True
        return changed
