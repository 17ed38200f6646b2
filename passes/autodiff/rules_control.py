"""Gradient rules of the region ops cond and call, and what the rule of while shares with them.

Regions are closed functions of their arguments (Note [isolated regions]),
so each rule differentiates a copy of the body: the copy recomputes the
forward values the gradient needs, inside the new region or function, and
reverse mode runs over it there. Only float operands get gradients.

The rule of `while` is in rules_while.py.
"""

from __future__ import annotations

from typing import Sequence

from flowc.ir import Block, Builder, Function, Module, Operation, Region, Value
from flowc.ir.ops.control import build_call, enclosing_module

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
                  seeds: Sequence[Value], yielded: list[Value] | None = None) -> list[Value]:
    """Copy `block` onto `args` and return d(outputs . seeds)/d(args[wrt]), each of its arg's type.
    The copied values the block yields are appended to `yielded`, if given."""
    copies, values = clone_block(b, block, args)
    if yielded is not None:
        yielded.extend(values)
    xs = [args[i] for i in wrt]
    grads = differentiate(b, copies, [values[i] for i in outputs], xs, seeds)
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
