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
  control      cond and while: branches and loops of the entry point around their regions' kernels
               (control.py); call: inlined first (passes/inline.py), so a recursive one is refused
Every other registered op is in UNSUPPORTED, with the reason; tests/ir/test_registry.py checks that
each op is one or the other. `check_supported` runs before fusion, so such an op is refused before
any LLVM work, with its name, the target and the user's line, rather than failing somewhere in
codegen when an emitter table lacks it.
"""

from __future__ import annotations

from flowc.ir import Module, registry
from flowc.ir.errors import UnsupportedOpError

from .mpi import COLLECTIVES

TARGET = "cpu"

UNSUPPORTED: dict[str, str] = {
    # Every buffer is sized from the fed shapes (ir/shapes.py); this op's row count is data.
    "fill_rows": "its number of rows is a value computed at run time, not a fed shape",
    # Note [data-dependent sizes] (compiler/data_sized_run.py): the program is cut at a top-level one.
    "data_dim": "its size is the value of its operand, known only from the data; a run is cut there, the host "
                "reading the count between the parts, at the top level of the function run (an fc.function's "
                "calls inlined) or of a while_loop body or cond branch that mark-host-driven marked, not inside "
                "one compiled whole",
    # Both are gone before a target sees a module (driver.compile_lowered expands gradient requests);
    # a module that still holds one skipped that step.
    "gradients": "a gradient request has no code of its own: passes.expand_gradients replaces it first",
    "stop_gradient": "passes.expand_gradients removes it once the gradient requests are expanded",
    # Note [stacks of entries of any shape] (ir/ops/stacks.py): the host keeps it, between compiled pieces.
    **dict.fromkeys(("stack_push", "stack_read"),
                    "the gradient of a while loop whose values change shape keeps each turn's values in a stack "
                    "of entries of any shape, which lives on the host: a Session or fc.jit on the cpu target runs "
                    "such a program in pieces from the host (Note [loops driven from the host]), but no single "
                    "compiled function (fc.export, the gpu target) holds one"),
    # A partition's transfers: the partitioned executor makes each one a segment's result or argument
    # (compiler/partitioned_run.py), so a compiled function never holds one.
    "send": "a transfer between tasks is made by the partitioned executor between compiled segments",
    "recv": "a transfer between tasks is made by the partitioned executor between compiled segments",
}
STRUCTURE = ("fusion", "yield", "return")
CONTROL = ("cond", "while", "call")


def emitted_ops() -> dict[str, str]:
    """Op name -> the way the CPU target emits it (Note [what the CPU emits])."""
    from .elementwise import LLVM_EMITTERS
    from .kernels.reduction import EMITTED_REDUCTIONS
    from .kernels.single import LINE_EMITTERS, SINGLE_EMITTERS, SINGLE_KERNELS

    ways = dict.fromkeys(LLVM_EMITTERS, "elementwise")
    ways.update(dict.fromkeys(EMITTED_REDUCTIONS, "reduction"))
    ways.update(dict.fromkeys(("matmul", "conv2d", "conv2d_backprop_filter"), "matmul"))
    ways.update({name: ways.get(name, "single") for name in [*SINGLE_EMITTERS, *SINGLE_KERNELS]})  # broadcast_to: both
    ways.update(dict.fromkeys(LINE_EMITTERS, "single"))  # scans and top_k (Note [line ops] in kernels/single.py)
    ways.update(dict.fromkeys(registry.names_where(is_view=True), "view"))
    ways["constant"] = "constant"
    ways.update(dict.fromkeys(STRUCTURE, "structure"))
    ways.update(dict.fromkeys(CONTROL, "control"))
    return ways


def check_supported(module: Module, target: str = TARGET) -> None:
    """Raise UnsupportedOpError for the first op of `module` (regions included) that the CPU target
    does not compile (UNSUPPORTED). Every other registered op has an emitter (tests/ir/test_registry.py
    checks it), so no emitter table is loaded here: a disk cache hit imports no LLVM. The gpu target
    refuses the same ops for the same reasons (its sizes come from the fed shapes too): `target` names
    the one whose error this is."""
    for op in module.walk():
        why = UNSUPPORTED.get(op.name)
        if why is None:
            continue
        raise UnsupportedOpError(f"the {target} target does not compile {op.name}: {why}; "
                                 f"target 'reference' evaluates it", op=op.display_name, where=op.loc)
    check_no_recursion(module, target)


def check_float16(module: Module, target: str = TARGET) -> None:
    """Raise UnsupportedOpError for a collective (all_reduce, broadcast) of float16, the one float16 op
    the CPU target does not compile: MPI has no half type, and its sum of halves would have to be a
    user-defined MPI op. Every other op computes float16 (Note [float16 on the CPU] in types.py)."""
    for op in module.walk():
        if op.name in COLLECTIVES and op.operands[0].type.dtype.name == "float16":
            raise UnsupportedOpError(f"the {target} target does not compile {op.name} of float16 "
                                     f"({op.operands[0].type}): MPI has no half type; cast to float32 around it",
                                     op=op.display_name, where=op.loc)


def check_no_recursion(module: Module, target: str = TARGET) -> None:
    """A call that can reach its own function again cannot be inlined (passes/inline.py): refused, naming
    the call and the cycle, before any work."""
    calls = {function.name: [op for op in function.walk() if op.name == "call"] for function in module}

    def cycle_from(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return path[path.index(name):] + [name]
        for call in calls.get(name, []):
            found = cycle_from(call.callee.name, [*path, name])
            if found is not None:
                return found
        return None

    for name, ops in calls.items():
        for call in ops:
            cycle = cycle_from(call.callee.name, [name])
            if cycle is not None:
                chain = " -> ".join(f"@{n}" for n in cycle)
                raise UnsupportedOpError(
                    f"the {target} target does not compile a recursive call ({chain}): it inlines every call, "
                    "and a recursive one has no end; write the recursion as a while loop, or use target "
                    "'reference'", op=call.display_name, where=call.loc)
