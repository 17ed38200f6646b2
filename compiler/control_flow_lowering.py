"""Lowering the graph ops of fc.cond and fc.while_loop: IR `cond` and `while` with regions.

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
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from flowc.ir import Block, Builder, Region, TensorType, Value
from flowc.ir.errors import FlowcError

from .func_graph import ARG, CAPTURE, FuncGraph
from .graph import CONST, NOOP, Operation, Tensor

Env = dict[Tensor, Value]


def emit_region_op(b: Builder, op: Operation, operands: list[Value], env: Env) -> None:
    """Lower a "cond" or "while" graph op onto `b`; its results go into `env`."""
    try:
        results = EMITTERS[op.type](b, op, operands)
    except FlowcError as error:
        raise error.located(op=op.display_name, where=op.loc) from None
    for tensor, result in zip(op.outputs, results):
        env.setdefault(tensor, result)


def emit_sub_graph(b: Builder, graph: FuncGraph, args: Sequence[Value], captured: Sequence[Value]) -> list[Value]:
    """The sub-graph's ops onto `b`: `args` for its Arg inputs, `captured` for its captures (in
    `graph.captures` order). Returns the values of its outputs."""
    from .lowering import emit_op, needed_ops  # lowering.py calls back into this module

    env: Env = dict(zip(graph.inputs, args, strict=True))
    env.update(zip(graph.captured_inputs, captured, strict=True))
    for op in needed_ops([t.op for t in graph.outputs], set(env)):
        b.loc = op.loc
        if op.type in (ARG, CAPTURE, NOOP):
            continue
        if op.type == CONST:
            env[op.outputs[0]] = b.create("constant", (), {"value": op.attrs["value"]}, result_names=[op.name]).result
        else:
            emit_op(b, op, env)
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
    forget = tuple(axis for axis, (have, w) in enumerate(zip(value.type.shape, want.shape)) if w is None and have is not None)
    if forget:
        value = b.create("relax_shape", [value], {"axes": forget}).result
    if value.type != want:
        value = b.create("ensure_shape", [value], {"shape": tuple(-1 if d is None else d for d in want.shape)}).result
    return value


def _emit_cond(b: Builder, op: Operation, operands: list[Value]) -> list[Value]:
    pred, *captured = operands
    outer = op.inputs[1:]
    types = [t.type for t in op.outputs]

    def branch(graph: FuncGraph) -> Region:
        def body(inner: Builder, args: list[Value]) -> list[Value]:
            outputs = emit_sub_graph(inner, graph, [], _captured(graph, outer, args))
            return [fit(inner, value, want) for value, want in zip(outputs, types)]

        return _region(b, captured, body)

    regions = [branch(op.attrs["then_branch"]), branch(op.attrs["else_branch"])]
    return list(b.create("cond", [pred, *captured], regions=regions, result_names=_names(op)).results)


def _emit_while(b: Builder, op: Operation, operands: list[Value]) -> list[Value]:
    count = op.attrs["num_loop_vars"]
    bounded = op.attrs["maximum_iterations"]
    types = [t.type for t in op.outputs]
    init = [fit(b, value, want) for value, want in zip(operands[:count], types)]
    extra = []  # the counter and the bound
    if bounded:
        bound = operands[count]
        extra = [b.constant(np.asarray(0, dtype=bound.type.dtype.np)), bound]
    outer = op.inputs[count + len(extra) // 2:]
    captured = operands[count + len(extra) // 2:]
    state = [*init, *extra, *captured]
    cond_graph, body_graph = op.attrs["cond_graph"], op.attrs["body_graph"]

    def check(inner: Builder, args: list[Value]) -> list[Value]:
        loop_vars, rest = args[:count], args[count + len(extra):]
        (flag,) = emit_sub_graph(inner, cond_graph, loop_vars, _captured(cond_graph, outer, rest))
        if bounded:
            counter, limit = args[count:count + 2]
            flag = inner.create("logical_and", [inner.create("less", [counter, limit]).result, flag]).result
        return [flag]

    def step(inner: Builder, args: list[Value]) -> list[Value]:
        loop_vars, rest = args[:count], args[count + len(extra):]
        outputs = emit_sub_graph(inner, body_graph, loop_vars, _captured(body_graph, outer, rest))
        outputs = [fit(inner, value, want) for value, want in zip(outputs, types)]
        if bounded:
            counter, limit = args[count:count + 2]
            one = inner.constant(np.asarray(1, dtype=counter.type.dtype.np))
            outputs += [inner.create("add", [counter, one]).result, limit]
        return [*outputs, *rest]

    loop = b.create("while", state, regions=[_region(b, state, check), _region(b, state, step)],
                    result_names=[*_names(op), *(f"{op.name}_state{i}" for i in range(len(state) - count))])
    results = list(loop.results[:count])
    if not op.attrs["back_prop"]:
        results = [b.create("stop_gradient", [r]).result if r.type.dtype.is_float else r for r in results]
    return results


def _names(op: Operation) -> list[str]:
    return [op.name] + [f"{op.name}_{i}" for i in range(1, len(op.outputs))]


EMITTERS: dict[str, Callable[[Builder, Operation, list[Value]], list[Value]]] = {
    "cond": _emit_cond,
    "while": _emit_while,
}
