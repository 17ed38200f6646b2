"""Gradient rules of the region ops: cond, call and while.

Regions are closed functions of their arguments (Note [isolated regions]),
so each rule differentiates a copy of the body: the copy recomputes the
forward values the gradient needs, inside the new region or function, and
reverse mode runs over it there. Only float operands get gradients.

Note [while gradients by recomputation]
Reverse mode through a loop needs the state of every iteration, in reverse
order, and the IR has no stack to keep them in. So the gradient loop counts
the iterations first (a copy of the loop with a counter), then walks k = n-1
down to 0, recomputing state k from the initial values (an inner loop of k
iterations) and applying the body's gradient to it. That costs O(n^2) body
evaluations for n iterations: exact, and fine for the short loops of control
flow; a long loop wants a stack (a later issue).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from flowc.ir import Block, Builder, Function, Module, Operation, Region, Value
from flowc.ir.ops.control import build_call, build_while, enclosing_module

from .build import match_type, zeros_like
from .clone import clone_block, drop_dead
from .reverse import current_module, differentiate
from .rules import Grads, unsupported, vjp


def floats(values: Sequence[Value]) -> list[int]:
    return [i for i, v in enumerate(values) if v.type.dtype.is_float]


def seeds_for(b: Builder, op: Operation, douts: Sequence[Value | None], indices: Sequence[int]) -> list[Value]:
    """The cotangents of the float results, zeros where none flows, each of its result's exact type."""
    return [zeros_like(b, op.results[i]) if douts[i] is None else match_type(b, douts[i], op.results[i])
            for i in indices]


def body_gradient(b: Builder, block: Block, args: Sequence[Value], wrt: Sequence[int], outputs: Sequence[int],
                  seeds: Sequence[Value]) -> list[Value]:
    """Copy `block` onto `args` and return d(outputs . seeds)/d(args[wrt]), each of its arg's type."""
    copies, yielded = clone_block(b, block, args)
    xs = [args[i] for i in wrt]
    grads = differentiate(b, copies, [yielded[i] for i in outputs], xs, seeds)
    return [match_type(b, zeros_like(b, x) if g is None else g, x) for g, x in zip(grads, xs)]


def scatter(count: int, at: Sequence[int], values: Sequence[Value], offset: int = 0) -> list[Value | None]:
    """One entry per operand: values[k] for operand offset + at[k], None elsewhere."""
    out: list[Value | None] = [None] * count
    for index, value in zip(at, values):
        out[offset + index] = value
    return out


@vjp("cond", all_results=True)
def cond_vjp(b: Builder, op: Operation, douts: list[Value | None]) -> Grads:
    pred, *args = op.operands
    wrt, outputs = floats(args), [i for i, d in enumerate(douts) if d is not None]
    if not wrt:
        return [None] * len(op.operands)
    seeds = [match_type(b, douts[i], op.results[i]) for i in outputs]
    regions = [_branch_gradient(region.entry, args, wrt, outputs, seeds) for region in op.regions]
    grads = b.create("cond", [pred, *args, *seeds], regions=regions).results
    return scatter(len(op.operands), wrt, grads, offset=1)


def _branch_gradient(branch: Block, args: Sequence[Value], wrt: list[int], outputs: list[int],
                     seeds: Sequence[Value]) -> Region:
    operands = [*args, *seeds]
    block = Block([v.type for v in operands], [v.name for v in operands])
    inner = Builder.at_end(block)
    grads = body_gradient(inner, branch, block.args[:len(args)], wrt, outputs, block.args[len(args):])
    inner.create("yield", grads)
    drop_dead(block)
    return Region([block])


@vjp("call", all_results=True)
def call_vjp(b: Builder, op: Operation, douts: list[Value | None]) -> Grads:
    module = enclosing_module(op) or current_module()  # a copied call sits in a region not yet placed
    if module is None:
        raise unsupported(op, f"the callee {op.callee} is not in a module")
    callee = module[op.callee.name]
    wrt, outputs = floats(callee.args), floats(op.results)
    if not wrt:
        return [None] * len(op.operands)
    gradient = _callee_gradient(module, callee, wrt, outputs)
    grads = build_call(b, gradient, [*op.operands, *seeds_for(b, op, douts, outputs)])
    return scatter(len(op.operands), wrt, grads)


def _callee_gradient(module: Module, callee: Function, wrt: list[int], outputs: list[int]) -> Function:
    """`@f.vjp(args..., cotangents of f's float results) -> gradients of f's float args`, made once."""
    name = f"{callee.name}.vjp"
    if name in module.functions:
        return module[name]
    seed_types = [callee.result_types[i] for i in outputs]
    function = module.add(Function(name, [*callee.arg_types, *seed_types], [callee.arg_types[i] for i in wrt],
                                   [*(a.name for a in callee.args), *(f"d{i}" for i in outputs)]))
    b = Builder.at_end(function.entry)  # added before its body: a recursive callee finds it
    n = len(callee.args)
    b.create("return", body_gradient(b, callee.entry, function.args[:n], wrt, outputs, function.args[n:]))
    drop_dead(function.entry)
    return function


# -- while: Note [while gradients by recomputation] -------------------------------------------


@vjp("while", all_results=True)
def while_vjp(b: Builder, op: Operation, douts: list[Value | None]) -> Grads:
    init = list(op.operands)
    wrt = floats(init)
    if not wrt:
        return [None] * len(init)
    trips = _trip_count(b, op)
    seeds = seeds_for(b, op, douts, wrt)

    def step(inner: Builder, k: Value, *rest: Value) -> list[Value]:
        cotangents, start = rest[:len(wrt)], rest[len(wrt):]
        previous = inner.sub(k, _count(inner, 1))
        state = _run_body(inner, op, start, previous)
        grads = body_gradient(inner, op.regions[1].entry, state, wrt, wrt, cotangents)
        return [previous, *grads, *start]

    results = build_while(b, [trips, *seeds, *init], lambda inner, k, *rest: inner.greater(k, _count(inner, 0)), step)
    for region in results[0].op.regions:
        drop_dead(region.entry)
    return scatter(len(init), wrt, results[1:1 + len(wrt)])


def _trip_count(b: Builder, op: Operation) -> Value:
    """How many times the loop runs: a copy of it that also counts."""
    cond, body = (region.entry for region in op.regions)

    def check(inner: Builder, count: Value, *state: Value) -> Value:
        return clone_block(inner, cond, state)[1][0]

    def advance(inner: Builder, count: Value, *state: Value) -> list[Value]:
        return [inner.add(count, _count(inner, 1)), *clone_block(inner, body, state)[1]]

    return build_while(b, [_count(b, 0), *op.operands], check, advance)[0]


def _run_body(b: Builder, op: Operation, start: Sequence[Value], times: Value) -> list[Value]:
    """The loop state after `times` iterations of the body from `start` (the condition is not asked)."""
    body = op.regions[1].entry

    def check(inner: Builder, count: Value, limit: Value, *state: Value) -> Value:
        return inner.less(count, limit)

    def advance(inner: Builder, count: Value, limit: Value, *state: Value) -> list[Value]:
        return [inner.add(count, _count(inner, 1)), limit, *clone_block(inner, body, state)[1]]

    return build_while(b, [_count(b, 0), times, *start], check, advance)[2:]


def _count(b: Builder, number: int) -> Value:
    return b.constant(np.asarray(number, dtype=np.int64))

