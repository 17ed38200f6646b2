"""Which registered ops the CPU target compiles, and the error for one that it does not.

Note [what the CPU emits]
An op reaches native code in one of these ways (`emitted_ops` says which, per name):
  elementwise  LLVM_EMITTERS (elementwise.py): one element at a time, in any kernel
  reduction    the reduction kernels (kernels/reduction.py and its schedules): EMITTED_REDUCTIONS
  matmul       kernels/matmul.py
  single       SINGLE_EMITTERS (kernels/single.py): one op that moves data, a loop over its output
  view         no code: the memory plan gives an `is_view` op's result its operand's buffer
  constant     a global of the module (module.py)
  structure    fusion, yield and return: the kernels and the entry point themselves
Every other registered op is in UNSUPPORTED, with the reason; tests/test_registry.py checks that
each op is one or the other. `check_supported` runs before fusion, so such an op is refused before
any LLVM work, with its name, the target and the user's line, rather than failing somewhere in
codegen when an emitter table lacks it.
"""

from __future__ import annotations

from flowc.ir import Module, registry
from flowc.ir.errors import UnsupportedOpError

TARGET = "cpu"

UNSUPPORTED: dict[str, str] = {
    "cond": "control flow is not compiled to native code yet",
    "while": "control flow is not compiled to native code yet",
    "call": "calls are not compiled to native code yet",
    # Every buffer is sized from the fed shapes (ir/shapes.py); this op's row count is data.
    "fill_rows": "its number of rows is a value computed at run time, not a fed shape",
    # Both are gone before a target sees a module (driver.compile_lowered expands gradient requests);
    # a module that still holds one skipped that step.
    "gradients": "a gradient request has no code of its own: passes.expand_gradients replaces it first",
    "stop_gradient": "passes.expand_gradients removes it once the gradient requests are expanded",
}
STRUCTURE = ("fusion", "yield", "return")


def emitted_ops() -> dict[str, str]:
    """Op name -> the way the CPU target emits it (Note [what the CPU emits])."""
    from .elementwise import LLVM_EMITTERS
    from .kernels.reduction import EMITTED_REDUCTIONS
    from .kernels.single import SINGLE_EMITTERS

    ways = dict.fromkeys(LLVM_EMITTERS, "elementwise")
    ways.update(dict.fromkeys(EMITTED_REDUCTIONS, "reduction"))
    ways["matmul"] = "matmul"
    ways.update({name: ways.get(name, "single") for name in SINGLE_EMITTERS})  # broadcast_to: both
    ways.update(dict.fromkeys(registry.names_where(is_view=True), "view"))
    ways["constant"] = "constant"
    ways.update(dict.fromkeys(STRUCTURE, "structure"))
    return ways


def check_supported(module: Module) -> None:
    """Raise UnsupportedOpError for the first op of `module` (regions included) that the CPU target
    does not compile (UNSUPPORTED). Every other registered op has an emitter (tests/test_registry.py
    checks it), so no emitter table is loaded here: a disk cache hit imports no LLVM."""
    for op in module.walk():
        why = UNSUPPORTED.get(op.name)
        if why is None:
            continue
        raise UnsupportedOpError(f"the {TARGET} target does not compile {op.name}: {why}; "
                                 f"target 'reference' evaluates it", op=op.display_name, where=op.loc)
