"""Reverse mode over the ops of one block: the core of the autodiff pass.

`differentiate` takes the ops that may compute the ys (a block's ops up to a
gradient request, or the ops cloned into a region), finds those on a path
from the xs to the ys, and walks them backwards: each op's rule turns the
cotangents of its results into cotangents of its operands, which add up
where a value has several uses. Only float values carry gradients; an op
whose `differentiable` flag is off (a comparison, stop_gradient) lets none
through.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator, Sequence

from flowc.ir import Builder, Module, Operation, Value
from flowc.ir.errors import FlowcError

from .build import accumulate, refine_type
from .rules import VJP_RULES

# The module being differentiated: a rule of `call` finds the callee there even for a call copied
# into a region that is not in the module yet.
_MODULE: ContextVar[Module | None] = ContextVar("autodiff_module", default=None)
# Whether the target can hold a value whose size is data (Note [while gradients by recomputation]).
_SIZED_BY_DATA: ContextVar[bool] = ContextVar("autodiff_sized_by_data", default=True)


@contextlib.contextmanager
def differentiating(module: Module, sized_by_data: bool = True) -> Iterator[None]:
    token, sized = _MODULE.set(module), _SIZED_BY_DATA.set(sized_by_data)
    try:
        yield
    finally:
        _MODULE.reset(token)
        _SIZED_BY_DATA.reset(sized)


def current_module() -> Module | None:
    return _MODULE.get()


def sized_by_data() -> bool:
    return _SIZED_BY_DATA.get()


# The values whose cotangents the running `differentiate` keeps (those that depend on its xs): a rule
# may skip the gradient of an operand outside it (a while carries no cotangent it would drop).
_ACTIVE: ContextVar[set[Value] | None] = ContextVar("autodiff_active", default=None)


def needs_gradient(value: Value) -> bool:
    """Whether the gradient of `value`, an operand of the op whose rule runs, is kept."""
    active = _ACTIVE.get()
    return active is None or value in active


def differentiate(b: Builder, ops: Sequence[Operation], ys: Sequence[Value], xs: Sequence[Value],
                  seeds: Sequence[Value]) -> list[Value | None]:
    """Cotangents of the xs when each y has cotangent `seed`; None where no y depends on an x.

    New ops go where `b` inserts, which must be after every op of `ops`.
    """
    active = depends_on(ops, xs)
    path = _on_path(ops, ys, active)
    cotangents: dict[Value, Value] = {}
    for y, seed in zip(ys, seeds):
        if y in active:
            cotangents[y] = accumulate(b, cotangents.get(y), seed)
    for op in reversed(path):
        douts = [cotangents.get(r) for r in op.results]
        if all(d is None for d in douts) or not op.differentiable:
            continue
        douts = [d if d is None else refine_type(b, d, r) for d, r in zip(douts, op.results)]
        token = _ACTIVE.set(active)
        try:
            grads = _apply_rule(b, op, douts)
        finally:
            _ACTIVE.reset(token)
        for operand, grad in zip(op.operands, grads, strict=True):
            if grad is not None and operand in active:
                cotangents[operand] = accumulate(b, cotangents.get(operand), grad)
    return [cotangents.get(x) for x in xs]


def _apply_rule(b: Builder, op: Operation, douts: list[Value | None]) -> Sequence[Value | None]:
    rule = VJP_RULES.get(op.name)
    if rule is None:
        raise FlowcError(f"the op {op.name} is marked differentiable but has no gradient rule",
                         op=op.display_name, where=op.loc)
    # Gradient ops point at the line of the op they differentiate, and run where it runs (TF1's
    # colocate_gradients_with_ops): a layer's backward pass stays on its task (compiler/placement.py).
    saved, b.loc = b.loc, op.loc
    saved_device, b.device = b.device, op.device
    try:
        return rule.fn(b, op, douts if rule.all_results else douts[0])
    finally:
        b.loc, b.device = saved, saved_device


def depends_on(ops: Sequence[Operation], xs: Sequence[Value]) -> set[Value]:
    """The float values that the xs reach, the float xs themselves included."""
    active = {x for x in xs if x.type.dtype.is_float}
    for op in ops:
        if op.differentiable and any(v in active for v in op.operands):
            active.update(r for r in op.results if r.type.dtype.is_float)
    return active


def _on_path(ops: Sequence[Operation], ys: Sequence[Value], active: set[Value]) -> list[Operation]:
    """The ops, in order, between the xs and the ys: an active result of theirs reaches a y."""
    needed = {y for y in ys if y in active}
    path: list[Operation] = []
    for op in reversed(ops):
        if any(r in needed for r in op.results):
            path.append(op)
            needed.update(v for v in op.operands if v in active)
    path.reverse()
    return path
