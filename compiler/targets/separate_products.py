"""SeparateProducts: the CPU target's pass that gives each matmul product a buffer of its own.

Specific to the CPU's BLAS path: BLAS writes the whole product into one
buffer before the kernel's epilogue reads it back at each index
(codegen/llvm/kernels/matmul.py, product_result).
"""

from __future__ import annotations

from flowc.ir import Builder, Function, Module
from flowc.ir.ops.kernel_space import PRODUCTS
from flowc.passes import Pass


class SeparateProducts(Pass):
    """separate_products on every function."""

    name = "separate-products"

    def run(self, module: Module) -> bool:
        return any([separate_products(function) for function in module])


def separate_products(function: Function) -> bool:
    """Give the product of each matmul kernel with an epilogue a buffer of its own (a temp).

    Otherwise the product is written into the buffer of the kernel's first
    result and the epilogue reads it back there (product_result), and then
    that result cannot be written in place of a variable: the SGD update
    `W - lr * (x^T @ dz)` would overwrite W with the product before reading
    it (Note [donated arguments] in passes/memory.py). The temp costs the
    product's size in the arena, reused across runs.
    """
    changed = False
    for op in list(function.walk()):  # kernels in cond and while regions too
        if op.name != "fusion" or op.kind != "matmul":
            continue
        block = op.regions[0].entry
        product = next(inner for inner in block.ops if inner.name in PRODUCTS).result
        terminator = block.terminator
        if product in terminator.operands:
            continue
        yielded = list(terminator.operands)
        terminator.drop_operand_uses()
        block.ops.remove(terminator)
        Builder.at_end(block).create("yield", [*yielded, product])
        region = op.regions.pop()  # moved, not copied: the old op must not drop its ops' uses
        names = [r.name for r in op.results] + [None]
        kernel = Builder.before(op).create("fusion", list(op.operands), {"kind": "matmul"}, regions=[region],
                                           result_names=names)
        for old, new in zip(op.results, kernel.results):
            old.replace_all_uses_with(new)
        op.erase()
        changed = True
    return changed
