"""The gradient rule of `while`: a stack of the loop's states, or their recomputation.

Note [while gradients with a stack]
Reverse mode through a loop needs the state entering every turn, in reverse order. The rule
replaces the forward loop by a recording loop: the same loop, which also writes the state
leaving turn k into row k + 1 of a stack (write_row at its own i64 counter; row 0, the
initial value, is what the stack is filled with) for each loop value the body changes and the
body's gradient reads, entering or leaving a turn (a loop-invariant value, such as weights or
the sequence an RNN reads rows of, is read from outside instead). The forward results are the
recording loop's, so the forward computation runs once. The backward loop then walks
k = n-1 .. 0, reads rows k and k + 1 (read_row) and applies the body's gradient to the
cotangents. A float value that the turn yields and the gradient reads (tanh's result, for its
derivative) is row k + 1, not computed again, so a backward step is mostly the gradient alone:
for an RNN, its three matmuls, as a hand-written BPTT has.

Cost: n body evaluations forward and n backward steps for n turns, and O(n * recorded state)
memory. A stack holds one row more than a bound of the trip count:
  - exact and static, when the condition bounds an integer counter the body steps by one by a
    constant (`i < 200`, alone or in a logical_and: the maximum_iterations pattern, whose bound
    is a loop value fed a constant): a [K + 1, ...] stack;
  - exact at run time, when that bound is a loop-invariant value (`i < n`): fill_rows of it;
  - else the trip count, from a copy of the loop that counts: the body runs 2n times forward
    then. (A stack doubled when full, by a concat in the recording body, would save that pass,
    but the gradient of a concat at offsets known only at run time is a gather, whose own gradient
    a second derivative through the loop would need along a dim known only at run time.)
A cotangent is carried backwards only for a float loop value that reaches, through the body (to
a fixed point), both a result that has a cotangent and an initial value whose gradient is kept
(reverse.needs_gradient): the stacks, an integer counter, or the sequence of an RNN whose weights
alone are differentiated, carry none. A second request on the same loop finds the recording
loop, and records again (a second derivative: stacks of the stacks the first one reads).
The replaced forward loop is left without uses; the autodiff pass sweeps it (expand.py).

Note [while gradients by recomputation]
A target that sizes every buffer from the fed shapes (the cpu target; Target.sized_by_data is
False) cannot hold a stack whose row count is data: fill_rows is refused there. For such a
target, where no constant bounds the trip count, the rule counts the iterations first (a copy
of the loop with a counter), then walks k = n-1 down to 0, recomputing state k from the initial
values (an inner loop of k iterations) and applying the body's gradient to it: O(n^2) body
evaluations for n iterations, no memory beyond the state. expand_gradients says which scheme
the target allows (reverse.py's `differentiating`).

Note [while gradients of loops whose values change shape]
A loop value that grows or shrinks from turn to turn (concat(acc, ...) per turn, acc[1:]; declared
with a shape invariant of None dims) does not fit a stack of rows of its initial value's shape.
Where the probe of mark-host-driven (passes/host_driven.py's changing_loop_values) finds such a
value, every recorded value goes to a stack of entries of any shape instead (stack_push and
stack_read: Note [stacks of entries of any shape] in ir/ops/stacks.py): the initial value is pushed
before the recording loop (entry 0), each turn pushes the value leaving it (entry k + 1), and the
backward loop reads entries k and k + 1 as it reads rows. Such a stack needs no bound of the trip
count, so neither a counting copy of the loop nor recomputation: n body evaluations forward, n
backward steps, whatever the target. The reference target computes the stack's byte form; the cpu
target runs a loop holding a stack op from the host, the stack a list of arrays there (Note [loops
driven from the host] in compiler/host_driven.py), as it runs the forward loop already. A loop
whose values keep their shapes is differentiated as before, its IR unchanged. A second derivative
through such a loop is refused (a FlowcError naming the loop): the stack ops carry no gradient, and the
backward loop reads its values from a stack. A second request on the same loop records again, as
above: the recording loop's stacks are loop values like others, which carry no cotangent.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from flowc.ir import Block, BlockArgument, Builder, Operation, OpResult, Value
from flowc.ir.ops.control import build_while
from flowc.ir.errors import FlowcError
from flowc.ir.types import INTS, TensorType, int64, uint8

from ..fold import constant_value
from ..host_driven import changing_loop_values
from .clone import clone_block, clone_op, drop_dead
from .reverse import depends_on, needs_gradient, sized_by_data
from .rules import Grads, vjp
from .rules_control import body_gradient, scatter, seeds_for


@vjp("while", all_results=True)
def while_vjp(b: Builder, op: Operation, douts: list[Value | None]) -> Grads:
    init = list(op.operands)
    carried = _carried(op, douts)
    if not carried:
        return [None] * len(init)
    ragged = _changes_shape(op)  # Note [while gradients of loops whose values change shape]
    if not ragged and not sized_by_data() and _static_bound(op) is None:
        return _recompute(b, op, douts, carried)
    body = op.regions[1].entry
    step = _gradient_step(body, carried)
    count_state = len(body.args)
    state_args = step.args[len(carried):len(carried) + count_state]
    next_args = step.args[len(carried) + count_state:]
    invariant = {i for i, v in enumerate(body.terminator.operands) if v is body.args[i]}
    recorded = [i for i in range(count_state) if (state_args[i].uses or next_args[i].uses) and i not in invariant]
    seeds = seeds_for(b, op, douts, carried)  # before the results are replaced: zeros may read their shape
    count, stacks, final = _record(op, recorded, ragged)
    for result, value in zip(op.results, final):
        result.replace_all_uses_with(value)
    outside = [i for i in range(count_state) if state_args[i].uses and i in invariant]

    def back(inner: Builder, k: Value, *rest: Value) -> list[Value]:
        cotangents, loop_stacks, kept = (rest[:len(carried)], rest[len(carried):len(carried) + len(recorded)],
                                         rest[len(carried) + len(recorded):])
        previous = inner.sub(k, _count(inner, 1))
        values: dict[Value, Value] = dict(zip(step.args, cotangents))
        for i, stack in zip(recorded, loop_stacks):  # row k - 1: the state entering the turn; row k: leaving it
            values.update((args[i], _read(inner, stack, row, args[i].type, ragged))
                          for args, row in ((state_args, previous), (next_args, k)) if args[i].uses)
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
    """The float loop values whose cotangent is worth carrying backwards: one that reaches a
    result with a cotangent (the body computes such a value from it, to a fixed point) and that
    reaches an initial value whose gradient is kept (it feeds such a value, to a fixed point)."""
    body = op.regions[1].entry
    yielded = body.terminator.operands
    reached = [depends_on(body.ops, [arg]) for arg in body.args]
    feeds = [{j for j, y in enumerate(yielded) if y in values} for values in reached]  # i -> the j it reaches
    floats = {i for i, v in enumerate(op.operands) if v.type.dtype.is_float}
    forward = _closure({j for j, d in enumerate(douts) if d is not None} & floats,
                       lambda j: {i for i in floats if j in feeds[i]})
    backward = _closure({i for i in floats if needs_gradient(op.operands[i])}, lambda i: feeds[i] & floats)
    return sorted(forward & backward)


def _closure(start: set[int], step: Callable[[int], set[int]]) -> set[int]:
    found, pending = set(start), list(start)
    while pending:
        for other in step(pending.pop()) - found:
            found.add(other)
            pending.append(other)
    return found


def _gradient_step(body: Block, carried: list[int]) -> Block:
    """One backward step, its unused parts dropped: a block of (cotangents of the carried values,
    the state entering a turn, the state leaving it) yielding the cotangents of the carried values
    before the turn. A float value the turn yields, which the gradient reads (tanh's result, for its
    derivative), is taken from the state leaving it, not computed again (Note [while gradients with
    a stack]): the copy of the body is then mostly dead."""
    names = [a.name for a in body.args]
    types = [body.args[i].type for i in carried] + body.arg_types + body.arg_types
    step = Block(types, [*(f"d{names[i] or i}" for i in carried), *names, *(f"{n or i}.next" for i, n in
                                                                           enumerate(names))])
    inner = Builder.at_end(step)
    state, following = step.args[len(carried):len(carried) + len(names)], step.args[len(carried) + len(names):]
    yielded: list[Value] = []
    grads = body_gradient(inner, body, state, carried, carried, step.args[:len(carried)], yielded)
    inner.create("yield", grads)
    for value, leaving in zip(yielded, following):
        if value.type.dtype.is_float and not isinstance(value, BlockArgument):
            value.replace_all_uses_with(leaving)  # the same numbers, kept by the recording loop
    drop_dead(step)
    return step


def _record(op: Operation, recorded: list[int], ragged: bool) -> tuple[Value, list[Value], list[Value]]:
    """The recording loop, built before `op`: (its trip count n, a stack per recorded loop value,
    the loop's results). Row k of a stack, 0 <= k <= n, holds the value entering turn k (row n:
    the value the loop ends with); row 0 is the initial value the stack is filled with (`ragged`: a
    stack of entries of any shape, row 0 pushed first)."""
    b = Builder.before(op)
    init = list(op.operands)
    cond, body = (region.entry for region in op.regions)
    stacks = _ragged_stacks(b, [init[i] for i in recorded]) if ragged else _row_stacks(b, op, recorded)
    start = [_count(b, 0), *stacks]

    def check(inner: Builder, *state: Value) -> Value:
        return clone_block(inner, cond, state[len(start):])[1][0]

    def advance(inner: Builder, count: Value, *state: Value) -> list[Value]:
        rows, values = state[:len(stacks)], state[len(stacks):]
        following = clone_block(inner, body, values)[1]
        after = inner.add(count, _count(inner, 1))
        written = [inner.stack_push(stack, following[i]) if ragged else inner.write_row(stack, after, following[i])
                   for i, stack in zip(recorded, rows)]
        return [after, *written, *following]

    results = build_while(b, [*start, *init], check, advance)
    return results[0], results[1:len(start)], results[len(start):]


def _row_stacks(b: Builder, op: Operation, recorded: list[int]) -> list[Value]:
    """A stack of rows per recorded loop value, each row the shape of its initial value, row 0 that value."""
    capacity, static = _capacity(b, op)
    rows = _count(b, static + 1) if static is not None else b.add(capacity, _count(b, 1))
    return [_stack(b, op.operands[i], rows, None if static is None else static + 1) for i in recorded]


def _stack(b: Builder, row: Value, capacity: Value, static: int | None) -> Value:
    """A buffer of `capacity` rows, each `row`; of type [static, ...] where that count is a
    constant, which compiled code can lay out."""
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
    bounds = _bounds(op)
    if not bounds:
        return _trip_count(b, op), None
    bound, start = bounds[0]
    static = _static(bound, start)
    if static is not None:
        return _count(b, static), static
    known = constant_value(bound)
    if known is not None:
        bound = b.constant(known)  # a constant of the cond region, made again outside
    return b.maximum(b.cast(b.sub(bound, start), dtype=int64), _count(b, 0)), None


def _static_bound(op: Operation) -> int | None:
    """A constant bound of the loop's trip count, if its condition gives one."""
    return next((n for n in (_static(bound, start) for bound, start in _bounds(op)) if n is not None), None)


def _static(bound: Value, start: Value) -> int | None:
    known, first = constant_value(bound), constant_value(start)
    return None if known is None or first is None else max(int(known) - int(first), 0)


def _bounds(op: Operation) -> list[tuple[Value, Value]]:
    """(limit, start) of each `counter < limit` that the condition asks (alone or in a logical_and),
    where the body steps the counter by one and keeps the limit: the loop runs at most
    limit - start times. The limit is a constant (of the cond region) or a value outside."""
    cond, body = (region.entry for region in op.regions)
    found = []
    for test in _conjuncts(cond.terminator.operands[0]):
        counter, limit = test.op.operands
        if not (isinstance(counter, BlockArgument) and counter.block is cond and counter.type.rank == 0
                and counter.type.dtype in INTS and _steps_by_one(body, counter.index)):
            continue
        bound = _loop_invariant(op, limit)
        if bound is not None:  # a limit the body changes bounds nothing
            found.append((bound, op.operands[counter.index]))
    # A constant bound first: a stack of static size
    return sorted(found, key=lambda pair: _static(*pair) is None)


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


def _recompute(b: Builder, op: Operation, douts: list[Value | None], wrt: list[int]) -> Grads:
    """Note [while gradients by recomputation]."""
    init = list(op.operands)
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


def _run_body(b: Builder, op: Operation, start: Sequence[Value], times: Value) -> list[Value]:
    """The loop state after `times` iterations of the body from `start` (the condition is not asked)."""
    body = op.regions[1].entry

    def check(inner: Builder, count: Value, limit: Value, *state: Value) -> Value:
        return inner.less(count, limit)

    def advance(inner: Builder, count: Value, limit: Value, *state: Value) -> list[Value]:
        return [inner.add(count, _count(inner, 1)), limit, *clone_block(inner, body, state)[1]]

    return build_while(b, [_count(b, 0), times, *start], check, advance)[2:]


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


def _changes_shape(op: Operation) -> bool:
    """Whether a value of the loop may change shape from turn to turn (Note [while gradients of loops whose
    values change shape]). A loop that reads a stack is the backward loop of such a loop's gradient: refused,
    as its stack_read carries no gradient. (A recording loop, which pushes, is differentiated again as any loop:
    a second request on the same loop.)"""
    if any(inner.name == "stack_read" for inner in op.walk()):
        raise FlowcError("cannot differentiate this while loop again: it reads a stack of values whose shapes "
                         "change from turn to turn, the gradient of a loop whose values change shape, and a second "
                         "derivative through such a loop is not supported", op=op.display_name, where=op.loc)
    return bool(changing_loop_values(op))


def _ragged_stacks(b: Builder, values: list[Value]) -> list[Value]:
    """A stack of entries of any shape per value, the value pushed as entry 0."""
    empty = b.constant(np.zeros(0, dtype=uint8.np))
    return [b.stack_push(empty, value) for value in values]


def _read(b: Builder, stack: Value, index: Value, like: TensorType, ragged: bool) -> Value:
    """Row `index` of a stack: of rows, or (`ragged`) of entries of any shape, read as `like`."""
    if ragged:
        return b.stack_read(stack, index, dtype=like.dtype, shape=like.shape)
    return b.read_row(stack, index)


def _count(b: Builder, number: int) -> Value:
    return b.constant(np.asarray(number, dtype=np.int64))
