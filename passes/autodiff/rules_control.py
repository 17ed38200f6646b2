"""Gradient rules of the region ops: cond, call and while.

Regions are closed functions of their arguments (Note [isolated regions]),
so each rule differentiates a copy of the body: the copy recomputes the
forward values the gradient needs, inside the new region or function, and
reverse mode runs over it there. Only float operands get gradients.

Note [while gradients with a stack]
Reverse mode through a loop needs the state entering every iteration, in reverse order. The
rule replaces the forward loop by a recording loop: the same loop, which also writes the state
entering iteration k into row k of a stack (write_row at its own i64 counter) for each loop
value the body's gradient reads and the body changes (a loop-invariant value, such as weights
or the sequence an RNN reads rows of, is read from outside instead). The forward results are
the recording loop's, so the forward computation runs once. The backward loop then walks
k = n-1 .. 0, reads state k (read_row) and applies the body's gradient to the cotangents.

Cost: 2n body evaluations (forward, and the forward part of each backward step) for n
iterations, and O(n * recorded state) memory. A stack's capacity is
  - exact and static, when the condition bounds a counter the body steps by one by a constant
    (`i < 200`, alone or in a logical_and: the maximum_iterations pattern): a [K, ...] stack;
  - exact at run time, when that bound is a loop-invariant value (`i < n`): fill_rows of it;
  - else the trip count, from a copy of the loop that counts: 3n body evaluations then. (A stack
    doubled when full, by a concat in the recording body, would save that pass, but a concat at
    offsets known only at run time has no gradient, so a second derivative through the loop,
    which differentiates the recording loop, could not be taken.)
Only the loop values whose cotangent can reach a result that has one are carried backwards
(a fixed point over the body's dependencies): the stacks themselves, or an integer counter,
never are. A second request on the same loop finds the recording loop, and records again.
The replaced forward loop is left without uses; the autodiff pass sweeps it (expand.py).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from flowc.ir import Block, BlockArgument, Builder, Function, Module, Operation, OpResult, Region, Value
from flowc.ir.ops.control import build_call, build_while, enclosing_module
from flowc.ir.types import int64

from ..fold import constant_value
from .build import match_type, zeros_like
from .clone import clone_block, clone_op, drop_dead
from .reverse import current_module, depends_on, differentiate
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


# -- while: Note [while gradients with a stack] -----------------------------------------------


@vjp("while", all_results=True)
def while_vjp(b: Builder, op: Operation, douts: list[Value | None]) -> Grads:
    init = list(op.operands)
    carried = _carried(op, douts)
    if not carried:
        return [None] * len(init)
    body = op.regions[1].entry
    step = _gradient_step(body, carried)
    state_args = step.args[len(carried):]
    invariant = {i for i, v in enumerate(body.terminator.operands) if v is body.args[i]}
    recorded = [i for i, arg in enumerate(state_args) if arg.uses and i not in invariant]
    seeds = seeds_for(b, op, douts, carried)  # before the results are replaced: zeros may read their shape
    count, stacks, final = _record(op, recorded)
    for result, value in zip(op.results, final):
        result.replace_all_uses_with(value)
    outside = [i for i, arg in enumerate(state_args) if arg.uses and i in invariant]

    def back(inner: Builder, k: Value, *rest: Value) -> list[Value]:
        cotangents, loop_stacks, kept = (rest[:len(carried)], rest[len(carried):len(carried) + len(recorded)],
                                         rest[len(carried) + len(recorded):])
        previous = inner.sub(k, _count(inner, 1))
        values: dict[Value, Value] = dict(zip(step.args, cotangents))
        values.update((state_args[i], inner.read_row(stack, previous)) for i, stack in zip(recorded, loop_stacks))
        values.update((state_args[i], value) for i, value in zip(outside, kept))
        for step_op in step.ops[:-1]:
            inner.insert(clone_op(step_op, values))
        return [previous, *(values[v] for v in step.terminator.operands), *loop_stacks, *kept]

    results = build_while(b, [count, *seeds, *stacks, *(init[i] for i in outside)],
                          lambda inner, k, *rest: inner.greater(k, _count(inner, 0)), back)
    for region in results[0].op.regions:
        drop_dead(region.entry)
    return scatter(len(init), carried, results[1:1 + len(carried)])


def _carried(op: Operation, douts: Sequence[Value | None]) -> list[int]:
    """The float loop values whose cotangent reaches a result with one: those with one, and,
    to a fixed point, every value the body computes such a value from."""
    body = op.regions[1].entry
    yielded = body.terminator.operands
    reached = [depends_on(body.ops, [arg]) for arg in body.args]
    reaches = [{j for j, y in enumerate(yielded) if y in values} for values in reached]
    carried = {j for j, d in enumerate(douts) if d is not None and op.results[j].type.dtype.is_float}
    while True:
        more = {i for i, targets in enumerate(reaches) if targets & carried} - carried
        if not more:
            return sorted(carried)
        carried |= more


def _gradient_step(body: Block, carried: list[int]) -> Block:
    """A block of (cotangents of the carried values, the state entering an iteration) yielding the
    cotangents of the carried values before it: one backward step, its unused parts dropped."""
    types = [body.args[i].type for i in carried] + body.arg_types
    step = Block(types, [*(f"d{body.args[i].name or i}" for i in carried), *(a.name for a in body.args)])
    inner = Builder.at_end(step)
    grads = body_gradient(inner, body, step.args[len(carried):], carried, carried, step.args[:len(carried)])
    inner.create("yield", grads)
    drop_dead(step)
    return step


def _record(op: Operation, recorded: list[int]) -> tuple[Value, list[Value], list[Value]]:
    """The recording loop, built before `op`: (its trip count, a stack per recorded loop value,
    the loop's results). Row k of a stack holds the value entering iteration k."""
    b = Builder.before(op)
    init = list(op.operands)
    cond, body = (region.entry for region in op.regions)
    capacity, static = _capacity(b, op)
    stacks = [_stack(b, init[i], capacity, static) for i in recorded]
    start = [_count(b, 0), *stacks]

    def check(inner: Builder, *state: Value) -> Value:
        return clone_block(inner, cond, state[len(start):])[1][0]

    def advance(inner: Builder, count: Value, *state: Value) -> list[Value]:
        rows, values = state[:len(stacks)], state[len(stacks):]
        written = [inner.write_row(stack, count, values[i]) for i, stack in zip(recorded, rows)]
        return [inner.add(count, _count(inner, 1)), *written, *clone_block(inner, body, values)[1]]

    results = build_while(b, [*start, *init], check, advance)
    return results[0], results[1:len(start)], results[len(start):]


def _stack(b: Builder, row: Value, capacity: Value, static: int | None) -> Value:
    """A buffer of `capacity` rows of `row`'s type (each overwritten before it is read); of type
    [static, ...] where that count is a constant, which compiled code can lay out."""
    if static is None:
        return b.fill_rows(capacity, row)
    one = b.expand_dims(row, axis=0)
    if row.type.is_static:
        return b.broadcast_to(one, shape=(static, *row.type.shape))
    rows, size = one, 1
    while size < static:  # doubled, then cut: a static row count without a shape read at run time
        rows, size = b.concat(rows, rows, axis=0), 2 * size
    if size == static:
        return rows
    rank = rows.type.rank
    return b.slice(rows, begin=(0,) * rank, end=(static, *(None,) * (rank - 1)), strides=(1,) * rank)


def _capacity(b: Builder, op: Operation) -> tuple[Value, int | None]:
    """A bound of the loop's trip count known before it runs, as an i64 value, and as an int where
    it is a constant; where the condition gives none, the trip count itself, by a loop that counts."""
    cond, body = (region.entry for region in op.regions)
    for test in _conjuncts(cond.terminator.operands[0]):
        counter, limit = test.op.operands
        if not (isinstance(counter, BlockArgument) and counter.block is cond and counter.type.rank == 0
                and limit.type.rank == 0 and _steps_by_one(body, counter.index)):
            continue
        bound = _loop_invariant(op, limit)
        if bound is None:
            continue  # a limit the body changes bounds nothing
        start = op.operands[counter.index]
        known, first = constant_value(bound), constant_value(start)
        if known is not None and first is not None:
            trips = max(int(known) - int(first), 0)
            return _count(b, trips), trips
        if known is not None:
            bound = b.constant(known)  # a constant of the cond region, made again outside
        return b.maximum(b.cast(b.sub(bound, start), dtype=int64), _count(b, 0)), None
    return _trip_count(b, op), None


def _loop_invariant(op: Operation, value: Value) -> Value | None:
    """`value` of the cond region as a value outside the loop: a constant, or a loop value the body
    yields unchanged (the bound of maximum_iterations), as its initial value; else None."""
    cond, body = (region.entry for region in op.regions)
    if constant_value(value) is not None:
        return value
    if isinstance(value, BlockArgument) and value.block is cond and \
            body.terminator.operands[value.index] is body.args[value.index]:
        return op.operands[value.index]
    return None


def _trip_count(b: Builder, op: Operation) -> Value:
    """How many times the loop runs: a copy of it that also counts."""
    cond, body = (region.entry for region in op.regions)

    def check(inner: Builder, count: Value, *state: Value) -> Value:
        return clone_block(inner, cond, state)[1][0]

    def advance(inner: Builder, count: Value, *state: Value) -> list[Value]:
        return [inner.add(count, _count(inner, 1)), *clone_block(inner, body, state)[1]]

    return build_while(b, [_count(b, 0), *op.operands], check, advance)[0]


def _conjuncts(flag: Value) -> list[Value]:
    """The `less` tests that `flag` is the logical_and of (itself, if it is one)."""
    if not isinstance(flag, OpResult):
        return []
    if flag.op.name == "logical_and":
        return [test for operand in flag.op.operands for test in _conjuncts(operand)]
    return [flag] if flag.op.name == "less" else []


def _steps_by_one(body: Block, index: int) -> bool:
    """Whether the body yields loop value `index` plus the constant 1."""
    step = body.terminator.operands[index]
    if not (isinstance(step, OpResult) and step.op.name == "add"):
        return False
    x, y = step.op.operands
    other = y if x is body.args[index] else x if y is body.args[index] else None
    one = constant_value(other) if other is not None else None
    return one is not None and one.shape == () and int(one) == 1


def _count(b: Builder, number: int) -> Value:
    return b.constant(np.asarray(number, dtype=np.int64))
