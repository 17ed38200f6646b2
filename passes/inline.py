"""Inline: every `call` replaced by a copy of its callee's body.

Why inline rather than compile each function once and call it (XLA inlines
too, before its fusion passes): functions are pure and take their state as
arguments (DESIGN.md), so a copy computes the same; fusion, the schedule and
the memory plan then see the callee's ops beside the caller's and fuse across
the boundary (a callee's tanh with the caller's add), which a native call of
a separately compiled function would forbid; and the memory plan keeps one
arena per entry point with no frames of its own. The cost is code size for a
function called from many places; a recursive function cannot be inlined at
all, and the CPU target refuses it first (codegen/llvm/support.py).

Functions that no call reaches any more, other than `main`, are dropped: a
target builds `main` only.
"""

from __future__ import annotations

from flowc.ir import Block, Builder, Module, Operation

from .autodiff.clone import clone_block
from .manager import Pass

ENTRY_FUNCTION = "main"


class Inline(Pass):
    """Inline every call (see the module docstring); the call graph must be acyclic."""

    name = "inline"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= _inline_block(module, function.entry)
        if changed and ENTRY_FUNCTION in module.functions:
            for name in [n for n in module.functions if n != ENTRY_FUNCTION]:
                del module.functions[name]
        return changed


def _inline_block(module: Module, block: Block) -> bool:
    """Inline the calls of `block` and of its ops' regions, until none is left (a copied body may call)."""
    changed = False
    index = 0
    while index < len(block.ops):
        op = block.ops[index]
        if op.name == "call":
            _inline_call(module, op)
            changed = True
            continue  # the copied ops now start at `index`: look at them too
        for region in op.regions:
            for inner in region.blocks:
                changed |= _inline_block(module, inner)
        index += 1
    return changed


def _inline_call(module: Module, call: Operation) -> None:
    callee = module[call.callee.name]
    b = Builder.before(call)
    _, returned = clone_block(b, callee.entry, call.operands)
    for result, value in zip(call.results, returned, strict=True):
        result.replace_all_uses_with(value)
    call.erase()
