"""Autodiff: every gradient request becomes the ops that compute its gradients.

Note [gradient requests] (ir/ops/autodiff.py) says what a request means. A
request is expanded in place: the reverse-mode ops go where it stood (after
every op it reads), its results are replaced by the gradients, and the ops a
rule built that nothing uses (the gradient of an operand that is no x, say)
are dropped at once, so an unoptimized run does not compute them. Requests
are expanded in block order, so a request on the results of an earlier one
(a second derivative) differentiates ordinary ops.

Once no request is left, stop_gradient has done its job and becomes its
operand: no backend has to know it.
"""

from __future__ import annotations

from flowc.ir import Block, Builder, Module, Operation, OpResult, Value

from ..manager import Pass
from ..rewrite import compact, is_dead, unlink
from .build import match_type, ones_like, zeros_like
from .clone import drop_dead
from .reverse import differentiate, differentiating


class Autodiff(Pass):
    """Expand gradient requests (and drop stop_gradient); a module without either is left alone."""

    name = "autodiff"

    def run(self, module: Module) -> bool:
        return expand_gradients(module)


def expand_gradients(module: Module) -> bool:
    """The pass as a function, for callers that must expand requests whatever the pipeline (driver.py)."""
    changed = False
    with differentiating(module):
        for function in list(module):  # rules may add functions (the gradients of callees): not visited
            changed |= _expand_block(function.entry)
    return _drop_stop_gradients(module) or changed


def _expand_block(block: Block) -> bool:
    changed = False
    for op in list(block.ops):
        for region in op.regions:
            changed |= _expand_block(region.entry)
        if op.name == "gradients":
            _expand(op)
            changed = True
    return changed


def _expand(request: Operation) -> None:
    block = request.parent
    assert block is not None
    index = block.ops.index(request)
    ys, xs, seeds = request.split(request.operands)
    staging = Block()  # built apart and spliced in once: inserting op by op would cost O(block) each
    b = Builder.at_end(staging, loc=request.loc)
    seeds = seeds or [ones_like(b, y) for y in ys]
    grads = differentiate(b, block.ops[:index], ys, xs, seeds)
    values = [match_type(b, zeros_like(b, x) if g is None else g, x) for g, x in zip(grads, xs)]
    for op in staging.ops:
        op.parent = block
    index = block.ops.index(request)  # a while's rule put its recording loop in the block
    block.ops[index:index] = staging.ops
    created = set(staging.ops)
    for result, value in zip(request.results, values):
        _name(value, result.name, created)
        result.replace_all_uses_with(value)
    request.erase()
    for op in reversed(staging.ops):
        if is_dead(op):
            unlink(op)
        else:
            for region in op.regions:  # the copied forward bodies in the gradients of region ops
                drop_dead(region.entry)
    for op in block.ops[:index]:  # a loop replaced by its recording loop (Note [while gradients with a stack])
        if op.name == "while" and is_dead(op):
            unlink(op)
    compact(block)


def _name(value: Value, name: str | None, created: set[Operation]) -> None:
    """Give a new gradient value the request's name for it, so IR dumps read like the graph."""
    if name and isinstance(value, OpResult) and value.op in created and value.name is None:
        value.name = name


def _drop_stop_gradients(module: Module) -> bool:
    stops = [op for op in module.walk() if op.name == "stop_gradient"]
    blocks = set()
    for op in stops:
        op.result.replace_all_uses_with(op.operands[0])
        blocks.add(unlink(op))
    for block in blocks:
        compact(block)
    return bool(stops)
