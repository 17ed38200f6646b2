"""MarkHostDriven: which while loops the CPU target runs from the host.

A while loop whose loop values may change shape between turns cannot live in
the CPU entry point, which sizes every buffer before it runs (Note [fixed
shapes in control flow] in ir/shapes.py); such a loop gets `driven = "host"`
and runs turn by turn from Python (Note [loops driven from the host] in
compiler/host_driven.py). Every other loop stays compiled.

A loop value keeps its shape when the body yields its own argument back, or
when the body, run on shapes alone, gives it back at the shape it took. The
probe: every unknown dim of the loop values gets one size P (a large prime,
then another), the IR's type rules size the body (ir/shapes.py's
block_shapes), and a value whose yielded shape follows P but is not the one it
took (P + 1 from concat(acc, x[:1]), P - 1 from acc[1:], 2P from
concat(acc, acc)) changes: the loop is marked. One size for every unknown dim
satisfies the body's own checks (a batch dim that a matmul needs equal to
another one), and no size computed from shapes alone equals a large prime
unless it is that dim. A count only the data gives (fc.boolean_mask's rows:
Note [data-dependent sizes] in compiler/data_sized_run.py) is another large
prime, so that concat(acc, boolean_mask(x, m)) changes too.

Left native, as before this pass (the run-time check of Note [fixed shapes in
control flow] then sizes the loop on the fed shapes, and refuses, with an
UnsupportedOpError, a run whose values would change):
  - a value the body gives back at sizes of its own, whatever it took (a state
    fed as [?, 4] that the body computes as [2, 4]): it settles after one turn,
    and is fixed for every feed that fits the body;
  - a body the probe cannot size (a reshape to static dims that P does not
    divide, an unknown dim the body needs equal to a static one);
  - a body that swaps two unknown dims of one value ([?, ?] transposed): it
    looks fixed to a probe of one size.
Loops nested in a body or branch are marked first; an outer loop whose body
holds a marked one is run from the host too (compiler/host_driven.py). A loop
that holds a stack op (stack_push, stack_read: the gradient of a loop whose
values change shape, Note [while gradients of loops whose values change shape]
in passes/autodiff/rules_while.py) is marked whatever the probe says: the host
keeps the stack.
"""

from __future__ import annotations

from flowc.ir import Block, Module, Operation
from flowc.ir.errors import FlowcError
from flowc.ir.shapes import block_shapes

from .manager import Pass

HOST = "host"
# The ops of a stack of entries of any shape (ir/ops/stacks.py): the host keeps such a stack, so a loop that holds
# one is driven from the host and one outside a loop is a piece of its own (Note [stacks of entries of any shape]).
STACK_OPS = ("stack_push", "stack_read")


class MarkHostDriven(Pass):
    """Set `driven = "host"` on every while loop whose loop values may change shape (module docstring)."""

    name = "mark-host-driven"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= _mark_block(function.entry)
        return changed


def _mark_block(block: Block) -> bool:
    changed = False
    for op in block.ops:
        if op.name == "fusion":
            continue
        for region in op.regions:
            changed |= _mark_block(region.entry)
        if op.name == "while" and op.attributes.get("driven") != HOST and (holds_stack(op) or changing_loop_values(op)):
            op.attributes = op.attributes | {"driven": HOST}
            changed = True
    return changed


# (the loop values' unknown dims, a data-dependent count's) per probe: large primes (the docstring's probe)
PROBES = ((7919, 15485863), (104729, 32452843))


def changing_loop_values(loop: Operation) -> list[int]:
    """The positions of `loop`'s values whose shape the body may change (empty: it keeps every shape)."""
    body = loop.regions[1].entry
    yielded = body.terminator.operands
    candidates = [index for index, (arg, out) in enumerate(zip(body.args, yielded))
                  if out is not arg and None in arg.type.shape]
    if not candidates:
        return []
    return _probed(body, candidates)


def _probed(body: Block, candidates: list[int]) -> list[int]:
    if any(holds_marked_loop(op) for op in body.ops):
        return []  # an inner marked loop's results have no shape before it runs; the outer one is cut anyway
    taken, given = [], []
    for probe, data in PROBES:
        taken.append([tuple(probe if d is None else d for d in arg.type.shape) for arg in body.args])
        try:
            given.append(block_shapes(body, taken[-1], data))
        except FlowcError:
            return []
    return [index for index in candidates if given[0][index] != given[1][index]
            and any(shapes[index] != args[index] for shapes, args in zip(given, taken))]


def contains_host_driven(op: Operation) -> bool:
    """Whether `op` is, or holds in its regions, a loop driven from the host or a stack op the host runs."""
    return holds_stack(op) or holds_marked_loop(op)


def holds_marked_loop(op: Operation) -> bool:
    """Whether `op` is, or holds in its regions, a loop marked to run from the host."""
    return any(inner.name == "while" and inner.attributes.get("driven") == HOST for inner in op.walk())


def holds_stack(op: Operation) -> bool:
    """Whether `op` is, or holds in its regions, an op of a stack of entries of any shape (the gradient of a loop
    whose values change shape: Note [while gradients of loops whose values change shape] in rules_while.py)."""
    return any(inner.name in STACK_OPS for inner in op.walk())
