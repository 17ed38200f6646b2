"""LICM: loop-invariant code motion out of while bodies.

An op of a while body whose operands are all loop-invariant computes the
same value on every turn: it moves before the loop and runs once. Invariant
are the state values the body yields back unchanged (`yield ..., %w, ...`
for its own argument %w: they keep their initial value on every turn),
constants, and the results of ops already found invariant. Regions are
isolated (Note [isolated regions]), so a hoisted value the body still reads
enters as extra loop state: a new operand of the while, a new argument of both
regions, yielded back unchanged by the body (and so itself invariant to an
enclosing loop's LICM, once this loop has been hoisted out of it).

    %i, %w = while %zero, %w0 {...} {            %ww = mul %w0, %w0
    ^bb0(%i, %w):                                %i, %w, %v = while %zero, %w0, %ww {...} {
      %ww = mul %w, %w             ->            ^bb0(%i, %w, %v):
      %j = add %i, %ww                             %j = add %i, %v
      yield %j, %w                                 yield %j, %w, %v

A product by the transpose of invariant state, x @ W^T, first becomes x @
transpose(W), so that the transpose leaves the loop (Note [invariant transposed
operand]). A product of few rows summed into state on each turn becomes one
product of stacked rows after the loop (Note [accumulated products after the loop]
in passes/loop_products.py).

What stays: constants (free, and codegen inlines splats), views (free),
impure ops, ops with regions, and ops that check their operands at run time
(gather, slice): hoisted out of a loop that runs no turn, a bad index would
stop a run that never computed it. Inner loops go first, so code hoisted out
of an inner loop can leave the outer one too.

Why a pass of the CPU target (after Inline, before Fuse) and not of the
shared pipeline: after inlining, a callee's invariant code in a loop is
hoisted too; fusion then sees the hoisted ops beside the code before the loop
and fuses them there; and the shared pipeline's output, which autodiff's while
rule copies bodies from and the reference target runs, stays the program as
written.
"""

from __future__ import annotations

from flowc.ir import Block, Builder, Module, Operation, Value

from .autodiff.clone import clone_op
from .loop_products import invariant_state, sink_accumulated_products, with_extra_state
from .manager import Pass
from .schedule import is_narrow

RUN_TIME_CHECKED = ("gather", "slice", "scatter_add", "gather_nd")  # may stop a run on a bad index (codegen/llvm/kernels/single.py)


class LICM(Pass):
    """Hoist the loop-invariant ops of every while body (see the module docstring)."""

    name = "licm"

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= _licm_block(function.entry)
        return changed


def _licm_block(block: Block) -> bool:
    changed = False
    for op in list(block.ops):
        if op.name == "fusion":
            continue
        for region in op.regions:
            changed |= _licm_block(region.entry)
        if op.name == "while":
            changed |= hoist_invariants(op)
    return changed


def hoist_invariants(loop: Operation) -> bool:
    """Move the invariant ops of `loop`'s body before it, then its accumulated products after it (the
    body they leave is then as it will run: Note [accumulated products after the loop]); True if any moved."""
    changed = _transpose_invariant_operands(loop.regions[1].entry, invariant_state(loop.regions[1].entry))
    loop, hoisted = _hoist(loop)
    _, sunk = sink_accumulated_products(loop)
    return changed | hoisted | sunk


def _hoist(loop: Operation) -> tuple[Operation, bool]:
    """The invariant ops of `loop`'s body before it: (the loop, rebuilt where it gained state; whether any moved)."""
    body = loop.regions[1].entry
    invariant = invariant_state(body)
    hoisted: list[Operation] = []
    for op in body.ops:
        if op.name == "constant":
            invariant.update(op.results)
        elif _movable(op) and all(v in invariant for v in op.operands):
            invariant.update(op.results)
            hoisted.append(op)
    if not hoisted:
        return loop, False
    outside = _copy_before(loop, body, hoisted)
    members = set(hoisted)
    needed = [r for op in hoisted for r in op.results if any(user not in members for user in r.users)]
    state = len(loop.operands)
    loop = with_extra_state(loop, [outside[r] for r in needed])
    new_body = loop.regions[1].entry
    for value, arg in zip(needed, new_body.args[state:]):
        for user, index in list(value.uses):
            if user not in members:
                user.set_operand(index, arg)
    for op in reversed(hoisted):
        op.erase()
    for op in [op for op in new_body.ops if op.name == "constant" and not op.result.uses]:
        op.erase()  # read only by hoisted ops, which took copies
    return loop, True


def _transpose_invariant_operands(body: Block, invariant: set[Value]) -> bool:
    """Note [invariant transposed operand]: `matmul %x, %w {transpose_b = true}` in a body, %w
    invariant, becomes `matmul %x, transpose(%w)`, and the scan that follows hoists the transpose:
    the loop then runs a plain product on a copy of W^T made once. OpenBLAS's x @ W^T is much slower
    than x @ W at an RNN's sizes: 200 products of 32 x 128 by 128 x 128^T took 3.28 ms of CPU
    against 1.91 ms with W^T contiguous (one thread, SkylakeX kernels), and the gradient of every
    RNN has one, dh_{t-1} = dz_t @ Wh^T. Only BLAS products (not narrow ones, which read B their own
    way: Note [narrow products] in passes/schedule.py) of two-dimensional operands. True if any."""
    changed = False
    for op in list(body.ops):
        if op.name != "matmul" or not op.transpose_b or is_narrow(op):
            continue
        x, w = op.operands
        if w not in invariant or w.type.rank != 2 or op.result.type.rank != 2 or not w.type.dtype.is_float:
            continue
        b = Builder.before(op)
        wt = b.transpose(w, perm=(1, 0))
        product = b.create("matmul", [x, wt], {**op.attributes, "transpose_b": False}, result_names=[op.result.name])
        op.result.replace_all_uses_with(product.result)
        op.erase()
        changed = True
    return changed


def _movable(op: Operation) -> bool:
    return op.pure and not op.regions and not op.is_terminator and not op.is_view and \
        op.name not in RUN_TIME_CHECKED and bool(op.operands)


def _copy_before(loop: Operation, body: Block, hoisted: list[Operation]) -> dict[Value, Value]:
    """Copies of the hoisted ops before the loop, reading the loop's operands for the invariant state
    (which keeps its initial value) and copies of the body's constants; body value -> its copy."""
    b = Builder.before(loop)
    mapping: dict[Value, Value] = dict(zip(body.args, loop.operands))
    for op in hoisted:
        for value in op.operands:
            owner = getattr(value, "op", None)
            if owner is not None and owner.name == "constant" and value not in mapping:
                b.insert(clone_op(owner, mapping))
        b.insert(clone_op(op, mapping))
    return mapping
