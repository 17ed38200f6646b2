"""Lowering the graph ops of fc.cond, fc.while_loop and fc.function: IR `cond`, `while` and `call`.

A region's block takes the region op's operands (Note [isolated regions] in
ir/ops/control.py); each sub-graph is lowered into its block recursively, its
Arg inputs standing for the explicit block arguments and its Capture inputs
for the block arguments that carry the captured outer tensors. So a region
op's operands are its explicit inputs, then the captures of all its
sub-graphs (each captured once).

`while` carries, in this order: the loop variables, then (with
maximum_iterations) an iteration counter and the bound, then the captures.
The cond region asks the user's cond and, with a bound, `counter < bound`
too; the body region yields the user's body results, the counter plus one,
and the bound and the captures unchanged.

Note [random streams in loops]
A random op draws the Philox stream of (seed, step), step an int64 taken
mod 2**64 whose low and high 32-bit halves are two words of the counter
(Note [random streams] in ir/ops/philox.py). Outside loops step is the run
counter r, so its high half is 0. A `while` whose body draws (`uses_step`)
carries one more state value, the turn's step, starting at r + 2**32 and
growing by 2**32 each turn: turn t (from 0) draws with
    step = r + (t + 1) * 2**32,
low half r, high half t + 1. So the streams of one op never overlap across
runs and turns, nor with a draw outside the loop, as long as r < 2**32 (four
billion runs) and t + 1 < 2**32 (4294967295 turns in one run); past that the
high half wraps and turn 2**32 - 1 would repeat the numbers drawn outside
loops in that run. Neither count is reached: a turn takes at least a
nanosecond, so 2**32 turns take over four seconds of a run spent in one loop,
and 2**32 runs of even a microsecond each take over an hour with a Session
doing nothing else. Different ops have different seeds, so their keys, not
their counters, keep them apart. A cond in the body takes the turn's step as
its run counter. A loop nested in a repeating body starts from a folded
counter instead (next Note). The gradient
sees the same numbers the forward loop drew: the turn's step is loop state
like any other, so the backward loop gets each turn's from the stack the
forward loop records (or the recomputed state, Note [while gradients by
recomputation] in passes/autodiff/rules_while.py), and a random op it
repeats, such as a dropout mask, draws what that turn drew.

Note [random streams in calls and nested loops]
A function (fc.function, TF1's Defun) is one IR function, its random ops'
seeds fixed once; TF1 draws new numbers at every call, from the kernel's
stream that all calls share. Here each call passes the function a counter of
its own, `fold_step(step, salt)`: a hash of the caller's counter (the run
counter, or a loop turn's step) under the call site's `step_salt`, a number
fixed when the call was made (distinct per call op in a graph, the same in
every program run). So two call sites differ, and one call site differs from
run to run and from turn to turn of a loop around it, and a seeded graph
draws the same numbers every time it is built. A while loop nested in a
repeating body (at any depth of conds) starts its turns' steps from the fold
of the outer turn's step under the loop's own salt, then grows them by 2**32
per turn as above, so each (outer turn, inner turn) draws its own numbers.
The hash is Philox itself: two float64 uniforms of the stream (salt,
step), each scaled to [0, 2**30) and floored, are the high and low halves
of the new counter, so it lies in [0, 2**62) and a loop's turns on top of it
cannot overflow int64 in any run that ends. Unlike the exact layout above,
this is a hash: two folds coincide with a probability of 2**-60 per pair
(among a million calls of one function, about one chance in two million),
and the turns of two nested loops' runs overlap only where their folds agree
in the low half (2**-30) with high halves closer than the turns taken (for a
thousand turns, about 2**-50 per pair). Unlike TF1, whose calls take the
next numbers in whatever order the executor runs them, a call's numbers do
not depend on the order calls run in. Every target computes the same bits
(a random_uniform, a floor, a cast, a product and a sum), so cpu and gpu
equal reference.

`call` calls an IR function made once per traced sub-graph in the module
being lowered (`called_functions`), taking its explicit inputs then its
captures (then, with `uses_step`, its folded counter), as a region does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from flowc.ir import Block, Builder, Function, Region, TensorType, Value
from flowc.ir.errors import FlowcError, FlowcTypeError
from flowc.ir.types import float64, int64
from flowc.ir.ops.control import build_call

from .func_graph import ARG, CAPTURE, FuncGraph
from .graph import CONST, NOOP, Operation, Tensor

Env = dict[Tensor, Value]


def emit_region_op(b: Builder, op: Operation, operands: list[Value], env: Env) -> None:
    """Lower a "cond", "while" or "call" graph op onto `b`; its results go into `env`."""
    from .lowering import RUN_COUNTER

    for value, tensor in zip(operands, op.inputs):
        if value.type.rank != tensor.type.rank:  # Note [placeholders of unknown rank] in unknown_rank.py
            raise FlowcTypeError(f"its input {tensor.name!r} was built as {tensor.type} and this run feeds it as "
                                 f"{value.type}: the sub-graphs of fc.cond, fc.while_loop and fc.function are "
                                 "built for one rank; give the placeholder of unknown rank that it comes from a "
                                 "shape", op=op.display_name, where=op.loc)
    if op.attrs.get("uses_step"):  # Note [random ops in sub-graphs] in func_graph.py: the last operand
        operands = [*operands, env[RUN_COUNTER]]  # type: ignore[index]
    try:
        results = EMITTERS[op.type](b, op, operands)
    except FlowcError as error:
        raise error.located(op=op.display_name, where=op.loc) from None
    for tensor, result in zip(op.outputs, results):
        env.setdefault(tensor, result)


FOLD_SCALE = float(1 << 30)  # Note [random streams in calls and nested loops]: each half of a folded counter


def fold_step(b: Builder, step: Value, salt: int) -> Value:
    """A counter for a call or a nested loop, hashed from `step` under `salt` (Note [random streams in
    calls and nested loops])."""
    halves = b.create("random_uniform", [step], {"shape": (2,), "dtype": float64, "seed": salt, "minval": 0.0,
                                                 "maxval": FOLD_SCALE}).result
    halves = b.create("cast", [b.create("floor", [halves]).result], {"dtype": int64}).result
    placed = b.create("mul", [halves, b.constant(np.asarray([1 << 32, 1], dtype=np.int64))]).result
    return b.create("reduce_sum", [placed], {"axes": (0,), "keepdims": False}).result  # high * 2**32 + low


def emit_sub_graph(b: Builder, graph: FuncGraph, args: Sequence[Value], captured: Sequence[Value],
                   step: Value | None = None) -> list[Value]:
    """The sub-graph's ops onto `b`: `args` for its Arg inputs, `captured` for its captures (in
    `graph.captures` order), `step` for the run counter its random ops take. Returns its outputs' values."""
    from .lowering import RUN_COUNTER, emit_op, needed_ops  # lowering.py calls back into this module

    env: Env = dict(zip(graph.inputs, args, strict=True))
    env.update(zip(graph.captured_inputs, captured, strict=True))
    if step is not None:
        env[RUN_COUNTER] = step  # type: ignore[index]
    from .debugging import PRINTS, emit_print_ops, prints_reached  # debugging.py imports lowering

    roots = [t.op for t in graph.outputs]
    printed = [t.op for spec in prints_reached(roots, set(env)) for t in spec.tensors]
    for op in needed_ops(roots + printed, set(env)):
        b.loc = op.loc
        if op.type not in (ARG, CAPTURE, NOOP, CONST):
            emit_op(b, op, env)
        elif op.type == CONST:
            env[op.outputs[0]] = b.create("constant", (), {"value": op.attrs["value"]}, result_names=[op.name]).result
        if op in PRINTS:  # Note [printing inside control flow] in ir/ops/checks.py: each turn prints
            emit_print_ops(b, op, env)
    return [env[t] for t in graph.outputs]


def _region(b: Builder, operands: Sequence[Value], body: Callable[[Builder, list[Value]], list[Value]]) -> Region:
    block = Block([v.type for v in operands], [v.name for v in operands])
    inner = Builder.at_end(block, loc=b.loc)
    inner.create("yield", body(inner, list(block.args)))
    return Region([block])


def _captured(graph: FuncGraph, outer: Sequence[Tensor], values: Sequence[Value]) -> list[Value]:
    """The values, among `values` (standing for the `outer` tensors), that the graph's captures take."""
    position = {tensor: i for i, tensor in enumerate(outer)}
    return [values[position[tensor]] for tensor in graph.captures]


def fit(b: Builder, value: Value, want: TensorType) -> Value:
    """`value` with exactly type `want`: relax_shape forgets the dims `want` does not know, ensure_shape
    states those it knows and the value's type does not (checked when it runs)."""
    pairs = enumerate(zip(value.type.shape, want.shape))
    forget = tuple(axis for axis, (have, wanted) in pairs if wanted is None and have is not None)
    if forget:
        value = b.create("relax_shape", [value], {"axes": forget}).result
    if value.type != want:
        value = b.create("ensure_shape", [value], {"shape": tuple(-1 if d is None else d for d in want.shape)}).result
    return value


def _emit_cond(b: Builder, op: Operation, operands: list[Value]) -> list[Value]:
    pred, *captured = operands
    outer = op.inputs[1:]
    types = [t.type for t in op.outputs]
    with_step = bool(op.attrs.get("uses_step"))

    def branch(graph: FuncGraph) -> Region:
        def body(inner: Builder, args: list[Value]) -> list[Value]:
            step = args[-1] if with_step else None
            outputs = emit_sub_graph(inner, graph, [], _captured(graph, outer, args), step)
            return [fit(inner, value, want) for value, want in zip(outputs, types)]

        return _region(b, captured, body)

    regions = [branch(op.attrs["then_branch"]), branch(op.attrs["else_branch"])]
    return list(b.create("cond", [pred, *captured], regions=regions, result_names=_names(op)).results)


TURN = 1 << 32  # Note [random streams in loops]: what the turn's step grows by each turn


def _emit_while(b: Builder, op: Operation, operands: list[Value]) -> list[Value]:
    count = op.attrs["num_loop_vars"]
    bounded = op.attrs["maximum_iterations"]
    with_step = bool(op.attrs.get("uses_step"))
    types = [t.type for t in op.outputs]
    init = [fit(b, value, want) for value, want in zip(operands[:count], types)]
    extra = []  # the counter and the bound
    if bounded:
        bound = operands[count]
        extra = [b.constant(np.asarray(0, dtype=bound.type.dtype.np)), bound]
    outer = op.inputs[count + len(extra) // 2:]
    captured = operands[count + len(extra) // 2:len(operands) - with_step]
    turn_step = []  # Note [random streams in loops]: the first turn's step, r + 2**32
    if with_step:
        start = operands[-1]
        if _called.repeating:  # Note [random streams in calls and nested loops]
            start = fold_step(b, start, op.attrs["step_salt"])
        turn_step = [b.create("add", [start, b.constant(np.asarray(TURN, dtype=np.int64))]).result]
    state = [*init, *extra, *captured, *turn_step]
    cond_graph, body_graph = op.attrs["cond_graph"], op.attrs["body_graph"]

    def check(inner: Builder, args: list[Value]) -> list[Value]:
        loop_vars, rest = args[:count], args[count + len(extra):len(args) - with_step]
        (flag,) = emit_sub_graph(inner, cond_graph, loop_vars, _captured(cond_graph, outer, rest))
        if bounded:
            counter, limit = args[count:count + 2]
            flag = inner.create("logical_and", [inner.create("less", [counter, limit]).result, flag]).result
        return [flag]

    def step(inner: Builder, args: list[Value]) -> list[Value]:
        loop_vars, rest = args[:count], args[count + len(extra):len(args) - with_step]
        here = args[-1] if with_step else None
        _called.repeating += 1
        try:
            outputs = emit_sub_graph(inner, body_graph, loop_vars, _captured(body_graph, outer, rest), here)
        finally:
            _called.repeating -= 1
        outputs = [fit(inner, value, want) for value, want in zip(outputs, types)]
        if bounded:
            counter, limit = args[count:count + 2]
            one = inner.constant(np.asarray(1, dtype=counter.type.dtype.np))
            outputs += [inner.create("add", [counter, one]).result, limit]
        if here is not None:
            rest = [*rest, inner.create("add", [here, inner.constant(np.asarray(TURN, dtype=np.int64))]).result]
        return [*outputs, *rest]

    loop = b.create("while", state, regions=[_region(b, state, check), _region(b, state, step)],
                    result_names=[*_names(op), *(f"{op.name}_state{i}" for i in range(len(state) - count))])
    results = list(loop.results[:count])
    if not op.attrs["back_prop"]:
        results = [b.create("stop_gradient", [r]).result if r.type.dtype.is_float else r for r in results]
    return results


def _names(op: Operation) -> list[str]:
    return [op.name] + [f"{op.name}_{i}" for i in range(1, len(op.outputs))]


# -- call: the functions of fc.function, one per traced sub-graph (compiler/function.py) -----------------


class _Called(threading.local):
    def __init__(self) -> None:
        # one per lowering in progress, innermost last: each traced sub-graph's function, then its `.vjp`
        self.tables: list[dict[FuncGraph, list[Function]]] = []
        self.repeating = 0  # while bodies around what is being lowered, within the function being lowered


_called = _Called()


@contextlib.contextmanager
def called_functions() -> Iterator[dict[FuncGraph, list[Function]]]:
    """While lowering one module: the IR functions made for the sub-graphs that its call ops call."""
    table: dict[FuncGraph, list[Function]] = {}
    _called.tables.append(table)
    try:
        yield table
    finally:
        _called.tables.pop()


def module_functions(table: dict[FuncGraph, list[Function]]) -> list[Function]:
    """The functions of the table with their gradients (Note [function gradients] in function.py), in order."""
    return [function for functions in table.values() for function in functions]


def _emit_call(b: Builder, op: Operation, operands: list[Value]) -> list[Value]:
    if op.attrs.get("uses_step"):  # Note [random streams in calls and nested loops]: the call's own counter
        operands = [*operands[:-1], fold_step(b, operands[-1], op.attrs["step_salt"])]
    return build_call(b, _function_for(op.attrs["function"], op.attrs["gradient"]), operands)


def _function_for(graph: FuncGraph, gradient: FuncGraph | None) -> Function:
    table = _called.tables[-1]
    if graph in table:
        return table[graph][0]
    taken = {f.name for functions in table.values() for f in functions} | {"main"}
    name = graph.name if graph.name not in taken else next(f"{graph.name}_{i}" for i in range(1, len(taken) + 2)
                                                           if f"{graph.name}_{i}" not in taken)
    from .lowering import STEP_TYPE

    inner = [*graph.inputs, *graph.captured_inputs]
    arg_types, arg_names = [t.type for t in inner], [t.op.name for t in inner]
    if graph.uses_step:  # its random ops' counter, folded by each call
        arg_types, arg_names = [*arg_types, STEP_TYPE], [*arg_names, "step"]
    function = Function(name, arg_types, [t.type for t in graph.outputs], arg_names)
    table[graph] = [function]
    b = Builder.at_end(function.entry)
    count, captured = len(graph.inputs), len(inner)
    step = function.args[-1] if graph.uses_step else None
    repeating, _called.repeating = _called.repeating, 0  # the function's counter is its own
    try:
        outputs = emit_sub_graph(b, graph, function.args[:count], function.args[count:captured], step)
    finally:
        _called.repeating = repeating
    b.create("return", outputs)
    if gradient is not None:
        table[graph].append(_gradient_function(function, graph, gradient))
    return function


def _gradient_function(function: Function, graph: FuncGraph, gradient: FuncGraph) -> Function:
    """`@f.vjp`, as passes/autodiff/rules_control.py's call_vjp would name and call it, from `gradient`."""
    wrt = [i for i, t in enumerate(function.arg_types) if t.dtype.is_float]
    seeds = [t for t in function.result_types if t.dtype.is_float]
    vjp = Function(f"{function.name}.vjp", [*function.arg_types, *seeds], [function.arg_types[i] for i in wrt],
                   [*(a.name for a in function.args), *(f"d{i}" for i in range(len(seeds)))])
    b = Builder.at_end(vjp.entry)
    count, args = len(graph.inputs), vjp.args
    captured = _captured(gradient, list(graph.captures), args[count:len(function.args)])
    grads = emit_sub_graph(b, gradient, [*args[:count], *args[len(function.args):]], captured)
    b.create("return", [fit(b, grads[i], function.arg_types[i]) for i in wrt])
    return vjp


EMITTERS: dict[str, Callable[[Builder, Operation, list[Value]], list[Value]]] = {
    "cond": _emit_cond,
    "while": _emit_while,
    "call": _emit_call,
}
