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

A cond gets `driven = "host"` when the same probe, or (at a function's top
level) one that sizes apart the unknown dims its block does not tie, run on its
operands, sizes its branches' results differently, when it reads a value whose
shape follows such a cond's result, or when a branch holds a data_dim (and a
while when its regions hold one): Note [conds driven from the host] in
compiler/host_driven.py.
"""

from __future__ import annotations

from flowc.ir import Block, Module, Operation, Region, Value
from flowc.ir.errors import FlowcError
from flowc.ir.ops.fusion import DimTies, UnknownDim
from flowc.ir.shapes import block_shapes

from .manager import Pass

HOST = "host"
# The ops of a stack of entries of any shape (ir/ops/stacks.py): the host keeps such a stack, so a loop that holds
# one is driven from the host and one outside a loop is a piece of its own (Note [stacks of entries of any shape]).
STACK_OPS = ("stack_push", "stack_read")
DATA_DIM = "data_dim"  # Note [data-dependent sizes] in compiler/data_sized_run.py


class MarkHostDriven(Pass):
    """Set `driven = "host"` on every while loop whose loop values may change shape, every cond whose
    branches may yield different shapes, and every loop or cond whose regions read a count (module docstring)."""

    name = "mark-host-driven"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= _mark_block(function.entry, set(), top_level=True)
        return changed


def _mark_block(block: Block, shaped_by_branch: set[Value], top_level: bool = False) -> bool:
    """Mark `block`'s loops and conds, inner ones first; `shaped_by_branch` holds the values whose shapes
    may depend on which branch of a host-driven cond ran (grown as the block is walked). Only a function's
    own block probes its conds' untied dims (changing_branch_results): in a loop body, a marked cond makes
    every turn pieces, so there, as for loops, only a difference under one size marks it."""
    changed = False
    ties: list[DimTies | None] = [] if top_level else [None]  # the block's, made for its first cond
    for op in block.ops:
        if op.name == "fusion":
            continue
        for region in op.regions:
            changed |= _mark_block(region.entry, branch_shaped_args(op, region, shaped_by_branch))
        if op.attributes.get("driven") != HOST and _runs_from_host(op, shaped_by_branch, block, ties):
            op.attributes = op.attributes | {"driven": HOST}
            changed = True
        shaped_by_branch.update(branch_shaped_results(op, shaped_by_branch))
    return changed


def _runs_from_host(op: Operation, shaped_by_branch: set[Value], block: Block, ties: list[DimTies | None]) -> bool:
    if op.name == "while":
        return holds_stack(op) or bool(changing_loop_values(op)) or holds_data_dim(op)
    if op.name != "cond":
        return False
    if holds_data_dim(op) or any(v in shaped_by_branch for v in op.operands):
        return True
    if not ties:
        ties.append(block_ties(block))
    return bool(changing_branch_results(op, ties[0]))


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
    if any(holds_marked(op) for op in body.ops):
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
    """Whether `op` is, or holds in its regions, a loop or cond driven from the host or a stack op the host
    runs."""
    return holds_stack(op) or holds_marked(op)


def holds_marked(op: Operation) -> bool:
    """Whether `op` is, or holds in its regions, a loop or cond marked to run from the host."""
    return any(inner.name in ("while", "cond") and inner.attributes.get("driven") == HOST for inner in op.walk())


def holds_stack(op: Operation) -> bool:
    """Whether `op` is, or holds in its regions, an op of a stack of entries of any shape (the gradient of a loop
    whose values change shape: Note [while gradients of loops whose values change shape] in rules_while.py)."""
    return any(inner.name in STACK_OPS for inner in op.walk())

# -- conds (Note [conds driven from the host] in compiler/host_driven.py) -------------------------------


def changing_branch_results(cond: Operation, ties: DimTies | None = None) -> list[int]:
    """The positions of `cond`'s results whose shape the two branches may give differently (empty: the same
    from both, or not sized). Two probes size the branches on the cond's operands: the loops' (module
    docstring: one size P for every unknown dim), and, with `ties` (the unknown dims of the block that
    holds the cond, tied as passes/fusion.py ties them), a size of its own for each dim the IR does not
    tie to another, so that cond(p, x, z) of untied x and z is seen to differ. A probe that cannot size a
    branch says nothing; a difference under either marks the result. With `ties` (a function's top level,
    where a marked cond costs a few native calls a run, not a few a turn), a cond that no probe sizes is
    marked too: nothing says its branches agree."""
    if any(contains_host_driven(op) for region in cond.regions for op in region.entry.ops):
        return []  # an inner host-driven op's results have no shape before it runs; the cond is cut anyway
    candidates = [index for index, result in enumerate(cond.results) if None in result.type.shape]
    if not candidates:
        return []  # static results: the type rule made both branches agree
    operands = cond.operands[1:]
    probes = [([tuple(probe if d is None else d for d in v.type.shape) for v in operands], data)
              for probe, data in PROBES]
    if ties is not None:
        probes += [(_untied_sizes(operands, ties, start), data) for start, data in UNTIED_PROBES]
    changing: set[int] = set()
    sized = False
    for taken, data in probes:
        try:
            then, other = (block_shapes(region.entry, taken, data) for region in cond.regions)
        except FlowcError:
            continue
        sized = True
        changing.update(index for index in candidates if then[index] != other[index])
    if not sized and ties is not None:
        return candidates
    return sorted(changing)


# the first size of each untied probe (the sizes are the primes from there on), and its data-dependent count
UNTIED_PROBES = ((1_000_003, 49_979_687), (2_000_003, 67_867_967))


def _untied_sizes(operands: list[Value], ties: DimTies, start: int) -> list[tuple[int, ...]]:
    """Each operand's shape, every unknown dim sized by its tied group: a prime from `start` per group."""
    sizes: dict[int, int] = {}
    shapes = []
    for value in operands:
        shape = []
        for dim in ties.shape(value):
            if isinstance(dim, UnknownDim):
                if dim.number not in sizes:
                    sizes[dim.number] = _next_prime(max(sizes.values(), default=start - 1) + 1)
                dim = sizes[dim.number]
            shape.append(dim)
        shapes.append(tuple(shape))
    return shapes


def _next_prime(n: int) -> int:
    while any(n % k == 0 for k in range(2, int(n ** 0.5) + 1)):
        n += 1
    return n


def block_ties(block: Block) -> DimTies:
    """The unknown dims of `block`'s values tied by its ops, its conds left out: a cond ties its results to
    both branches' yields, which would tie the very dims a cond of different shapes does not."""
    return DimTies([op for op in block.ops if op.name != "cond" and not op.is_terminator])


def branch_shaped_args(op: Operation, region: Region, shaped_by_branch: set[Value]) -> set[Value]:
    """The arguments of `op`'s `region` that take a value of `shaped_by_branch`."""
    outer = op.operands[1:] if op.name == "cond" else op.operands
    if len(outer) != len(region.entry.args):
        return set()  # a fusion's or call's region: not walked for conds
    return {arg for arg, value in zip(region.entry.args, outer) if value in shaped_by_branch}


def branch_shaped_results(op: Operation, shaped_by_branch: set[Value]) -> list[Value]:
    """`op`'s results of unknown dims whose shapes may depend on which branch of a host-driven cond ran:
    each of such a cond, and each of an op that reads a value of `shaped_by_branch`."""
    host_cond = op.name == "cond" and op.attributes.get("driven") == HOST
    if not host_cond and not any(v in shaped_by_branch for v in op.operands):
        return []
    return [result for result in op.results if None in result.type.shape]


def holds_data_dim(op: Operation) -> bool:
    """Whether a region of `op` holds a data_dim at its own level: the host reads its count between the
    native calls of a host-driven op's pieces (Note [data-dependent sizes] in compiler/data_sized_run.py)."""
    return any(inner.name == DATA_DIM for region in op.regions for inner in region.entry.ops)
