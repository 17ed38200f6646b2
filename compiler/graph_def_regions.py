"""The sub-graphs of fc.cond and fc.while_loop in a graph_def, and the checks of their ops on import.

A cond or while node carries its sub-graphs as attributes tagged "graph":

    {"graph": {"name": "true", "purpose": "the true branch of cond 'cond'", "owner": "cond 'cond'",
               "nodes": [... nodes as at the top level, Arg and Capture among them ...],
               "inputs": ["arg0:0", ...], "captures": [["x:0", "x:0"], ...], "outputs": ["mul:0", ...]}}

`captures` pairs a tensor of the enclosing graph (named as there) with the
Capture node that stands for it inside. On import a sub-graph is rebuilt as a
FuncGraph of the graph it is imported into, its Capture nodes captured anew,
and the region op is checked as fc.cond and fc.while_loop check what they
build: operand layout, types and the sub-graphs' signatures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowc.ir import TensorType
from flowc.ir.errors import GraphError
from flowc.ir.types import INTS, bool_

from .func_graph import ARG, CAPTURE, FuncGraph
from .graph import Graph, Operation, Tensor
from .graph_def_check import NODE, Fields, node_label, problem, shown

GRAPH = Fields({"name": str, "purpose": str, "nodes": list, "inputs": [str], "captures": [[str]], "outputs": [str]},
               {"owner": (str, None), "random": bool})
COND_ATTRS = {"then_branch": FuncGraph, "else_branch": FuncGraph, "uses_step": bool}
CALL_ATTRS = {"function": FuncGraph, "gradient": (FuncGraph, type(None)), "uses_step": bool, "step_salt": int}
WHILE_ATTRS = {"cond_graph": FuncGraph, "body_graph": FuncGraph, "num_loop_vars": int, "maximum_iterations": bool,
               "back_prop": bool, "parallel_iterations": int, "swap_memory": bool, "uses_step": bool,
               "step_salt": int}


def encode_graph(graph: FuncGraph, node_to_def: Callable[[Operation], dict[str, Any]]) -> dict[str, Any]:
    return {"graph": {
        "name": graph.name, "purpose": graph.purpose, "owner": graph.owner, "random": graph.allows_random,
        "nodes": [node_to_def(op) for op in graph.get_operations()],
        "inputs": [t.name for t in graph.inputs],
        "captures": [[outer.name, inner.name] for outer, inner in graph.captures.items()],
        "outputs": [t.name for t in graph.outputs],
    }}


TensorLookup = Callable[[str, str], Tensor]  # (name in the document, what names it) -> the tensor


def decode_graph(content: Any, outer: Graph, outer_tensor: TensorLookup,
                 import_nodes: Callable[[FuncGraph, list[dict[str, Any]], dict[str, Tensor]], TensorLookup]
                 ) -> FuncGraph:
    """A FuncGraph of `outer` rebuilt from a "graph" tag's content.

    `outer_tensor(name, what)` finds a tensor of the enclosing graph by its name in the document;
    `import_nodes(graph, nodes, given)` imports the nodes other than Arg and Capture (whose tensors
    `given` holds, by document name) and returns the same kind of lookup for the sub-graph's tensors.
    """
    if found := problem(content, GRAPH, "the sub-graph"):
        raise GraphError(found)
    graph = FuncGraph(content["name"], outer, content["purpose"], content.get("owner"), content.get("random", False))
    captured_by = {}
    for index, pair in enumerate(content["captures"]):
        if len(pair) != 2:
            raise GraphError(f"the sub-graph's captures[{index}] must pair an outer tensor with a Capture, "
                             f"got {len(pair)} names")
        captured_by[pair[1]] = outer_tensor(pair[0], f"the sub-graph's captures[{index}]")
    given: dict[str, Tensor] = {}
    for index, node in enumerate(content["nodes"]):
        if found := problem(node, NODE, "the node"):
            raise GraphError(found, op=node_label(node, index))
        if node["op"] not in (ARG, CAPTURE):
            continue
        name = f"{node['name']}:0"
        if node["inputs"] or len(node["outputs"]) != 1:
            raise GraphError(f"an {node['op']} takes no inputs and has one output", op=node_label(node, index))
        if node["op"] == ARG:
            given[name] = graph.add_input(_output_type(node, index), name=node["name"])
        elif name not in captured_by:
            raise GraphError("no entry of the sub-graph's captures names this Capture", op=node_label(node, index))
        else:
            given[name] = graph.capture(captured_by[name])
            if given[name].type != _output_type(node, index):
                raise GraphError(f"captures {captured_by[name].name!r} of type {captured_by[name].type} but declares "
                                 f"{_output_type(node, index)}", op=node_label(node, index))
    if len(given) != len(content["inputs"]) + len(content["captures"]) or len(graph.captures) != len(captured_by):
        raise GraphError("the sub-graph's Arg and Capture nodes do not match its inputs and captures")
    inner_tensor = import_nodes(graph, [n for n in content["nodes"] if n["op"] not in (ARG, CAPTURE)], given)
    inputs = [inner_tensor(name, f"the sub-graph's inputs[{i}]") for i, name in enumerate(content["inputs"])]
    if inputs != graph.inputs:
        raise GraphError("the sub-graph's inputs must name its Arg nodes, in order")
    graph.outputs = [inner_tensor(name, f"the sub-graph's outputs[{i}]") for i, name in enumerate(content["outputs"])]
    graph.structured_outputs = list(graph.outputs)
    return graph


def _output_type(node: dict[str, Any], index: int) -> TensorType:
    from .graph_def import _declared_outputs

    return _declared_outputs(node["outputs"])[0]


# -- checking a cond or while node ---------------------------------------------------------------------


def region_outputs(kind: str, inputs: list[Tensor], attrs: dict[str, Any], declared: list[TensorType]) -> None:
    """Raise GraphError unless a cond or while node's inputs, attributes and declared outputs fit together."""
    required = {"cond": COND_ATTRS, "while": WHILE_ATTRS, "call": CALL_ATTRS}[kind]
    if kind in ("while", "call"):  # documents written before loops and functions could draw random numbers
        attrs.setdefault("uses_step", False)
        attrs.setdefault("step_salt", 0)
    if set(attrs) != set(required):
        raise GraphError(f"has attributes {sorted(attrs)}; a {kind} has {sorted(required)}")
    for key, want in required.items():
        value = attrs[key]
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            wanted = "a sub-graph" if FuncGraph in (want if isinstance(want, tuple) else (want,)) else want.__name__
            raise GraphError(f"attribute {key!r} must be {wanted}, got {shown(value)}")
    {"cond": _check_cond, "while": _check_while, "call": _check_call}[kind](inputs, attrs, declared)


def _check_call(inputs: list[Tensor], attrs: dict[str, Any], declared: list[TensorType]) -> None:
    body, gradient = attrs["function"], attrs["gradient"]
    count = len(body.inputs)
    if [t.type for t in inputs[:count]] != [t.type for t in body.inputs]:
        raise GraphError(f"the function takes {[t.type for t in body.inputs]}, the inputs are "
                         f"{[t.type for t in inputs[:count]]}")
    _check_captures(inputs[count:], [body])
    if attrs["uses_step"] != body.uses_step:
        raise GraphError(f"uses_step is {attrs['uses_step']}, but the function's random ops say otherwise")
    if [t.type for t in body.outputs] != declared:
        raise GraphError(f"the function returns {[t.type for t in body.outputs]}, the declared outputs are {declared}")
    if gradient is not None:
        seeds = [t for t in declared if t.dtype.is_float]
        if [t.type for t in gradient.inputs] != [*(t.type for t in body.inputs), *seeds]:
            raise GraphError("the gradient must take the function's inputs, then one gradient per float output")
        if any(outer not in body.captures for outer in gradient.captures) or len(gradient.outputs) < count:
            raise GraphError("the gradient must capture only what the function does and return one value per input")
        _check_fits([t.type for t in gradient.outputs[:count]],
                    [t.type.with_shape([None] * t.type.rank) for t in body.inputs], "the gradient returns")


def _check_cond(inputs: list[Tensor], attrs: dict[str, Any], declared: list[TensorType]) -> None:
    branches = [attrs["then_branch"], attrs["else_branch"]]
    if not inputs or inputs[0].type != TensorType(bool_, ()):
        raise GraphError("input 0 must be the bool[] predicate")
    _check_captures(inputs[1:], branches)
    if attrs["uses_step"] != any(branch.uses_step for branch in branches):
        raise GraphError(f"uses_step is {attrs['uses_step']}, but the branches' random ops say otherwise")
    for branch in branches:
        if branch.inputs:
            raise GraphError(f"a branch takes no Arg inputs, {branch.name!r} has {len(branch.inputs)}")
        _check_fits([t.type for t in branch.outputs], declared, f"branch {branch.name!r} returns")


def _check_while(inputs: list[Tensor], attrs: dict[str, Any], declared: list[TensorType]) -> None:
    count, bounded = attrs["num_loop_vars"], attrs["maximum_iterations"]
    cond, body = attrs["cond_graph"], attrs["body_graph"]
    if count != len(declared) or len(inputs) < count + bounded:
        raise GraphError(f"num_loop_vars is {count}, with {len(declared)} outputs and {len(inputs)} inputs")
    if attrs["parallel_iterations"] < 1:
        raise GraphError(f"parallel_iterations must be positive, got {attrs['parallel_iterations']}")
    _check_fits([t.type for t in inputs[:count]], declared, "the initial values are")
    if attrs["uses_step"] != body.uses_step:
        raise GraphError(f"uses_step is {attrs['uses_step']}, but the body's random ops say otherwise")
    if bounded and (inputs[count].dtype not in INTS or inputs[count].type.rank != 0):
        raise GraphError(f"maximum_iterations must be a scalar int, got {inputs[count].type}")
    _check_captures(inputs[count + bounded:], [cond, body])
    for graph in (cond, body):
        if [t.type for t in graph.inputs] != declared:
            raise GraphError(f"sub-graph {graph.name!r} takes {[t.type for t in graph.inputs]}, the loop state is "
                             f"{declared}")
    if [t.type for t in cond.outputs] != [TensorType(bool_, ())]:
        raise GraphError(f"the cond sub-graph must return one bool[], returns {[t.type for t in cond.outputs]}")
    _check_fits([t.type for t in body.outputs], declared, "the body returns")


def _check_captures(operands: list[Tensor], graphs: list[FuncGraph]) -> None:
    union = list(dict.fromkeys(t for g in graphs for t in g.captures))
    if operands != union:
        raise GraphError(f"the inputs after the explicit ones must be the sub-graphs' captures, in order: "
                         f"{[t.name for t in union]}, got {[t.name for t in operands]}")


def _check_fits(types: list[TensorType], declared: list[TensorType], what: str) -> None:
    """Each type fits its declared one: the same dtype and rank, every declared dim its own."""
    fits = len(types) == len(declared) and all(
        t.dtype == d.dtype and t.rank == d.rank and all(w is None or w == h for h, w in zip(t.shape, d.shape))
        for t, d in zip(types, declared))
    if not fits:
        raise GraphError(f"{what} {types}, which do not fit the declared outputs {declared}")
