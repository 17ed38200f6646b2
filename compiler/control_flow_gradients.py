"""Which inputs of a cond or while graph op a gradient reaches, for fc.gradients' None rule.

fc.gradients gives None for an x that no y depends on through ops that let
gradients through (gradients.py). Through a region op that is decided per
result, by looking into the sub-graphs: a cond result reaches the captured
tensors that either branch's result depends on; a while result reaches the
loop variables and captures that its body result depends on, then those that
theirs depend on, to a fixed point (the body runs many times). The predicate,
the loop condition and maximum_iterations decide which values flow, not how
much: no gradient goes to them. A loop built with back_prop=False reaches
nothing (lowering puts a stop_gradient on its results).
"""

from __future__ import annotations

from typing import Callable

from .func_graph import FuncGraph
from .graph import Tensor

Reached = Callable[[list[Tensor]], set[Tensor]]  # gradients.py's walk: every tensor the ys depend on


def region_gradient_inputs(tensor: Tensor, reached: Reached) -> list[Tensor]:
    op = tensor.op
    if op.type == "cond":
        graphs = (op.attrs["then_branch"], op.attrs["else_branch"])
        return _floats([outer for graph in graphs for outer in _captures_reached(graph, [tensor.value_index],
                                                                                 reached)[1]])
    if not op.attrs["back_prop"]:
        return []
    body: FuncGraph = op.attrs["body_graph"]
    loop_vars, captures = _loop_closure(body, tensor.value_index, reached)
    return _floats([op.inputs[i] for i in sorted(loop_vars)] + captures)


def _captures_reached(graph: FuncGraph, outputs: list[int], reached: Reached) -> tuple[set[int], list[Tensor]]:
    """The Arg indices and the outer tensors of captures that the graph's `outputs` depend on."""
    inner = reached([graph.outputs[i] for i in outputs])
    args = {i for i, arg in enumerate(graph.inputs) if arg in inner}
    return args, [outer for outer, capture in graph.captures.items() if capture in inner]


def _loop_closure(body: FuncGraph, index: int, reached: Reached) -> tuple[set[int], list[Tensor]]:
    variables, captures, frontier = {index}, {}, [index]
    while frontier:
        args, outer = _captures_reached(body, frontier, reached)
        captures.update(dict.fromkeys(outer))
        frontier = sorted(args - variables)
        variables |= args
    return variables, list(captures)


def _floats(tensors: list[Tensor]) -> list[Tensor]:
    return [t for t in dict.fromkeys(tensors) if t.dtype.is_float]
