"""Graphs as versioned JSON documents: as_graph_def, import_graph_def, write_graph.

    {"format": "flowc.GraphDef", "version": 1, "seed": null,
     "nodes": [{"name": "x", "op": "Placeholder", "inputs": [], "control_inputs": [],
                "device": "", "loc": "model.py:3", "attrs": {...},
                "outputs": [{"dtype": "float32", "shape": [null, 64]}]}, ...],
     "variables": [{"op": "W", "initial_value": "zeros:0", "initializer": "W/Assign",
                    "snapshot": "W/read:0", "trainable": true}]}

Attribute values are JSON scalars and lists, except tagged objects: a dtype
{"dtype": "float32"}, an array {"array": {"dtype", "shape", "base64"}} (bytes,
little-endian, so values round-trip bit for bit), a non-finite float
{"float": "nan"}, and a reference to another op {"op": "W"}.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from flowc.ir import TensorType
from flowc.ir import op as registry
from flowc.ir.errors import FetchError, GraphError
from flowc.ir.types import DType, as_dtype

from .graph import Graph, Operation, Tensor, get_default_graph
from .lowering import RANDOM_KINDS

FORMAT = "flowc.GraphDef"
VERSION = 1


def graph_to_def(graph: Graph) -> dict[str, Any]:
    nodes = [_node_to_def(op) for op in graph.get_operations()]
    variables = [
        {"op": v.op.name, "initial_value": v.initial_value.name, "initializer": v.initializer.name,
         "snapshot": v._snapshot.name, "trainable": v.trainable}
        for v in graph.get_collection("variables")
    ]
    return {"format": FORMAT, "version": VERSION, "seed": graph.seed, "nodes": nodes, "variables": variables}


def _node_to_def(op: Operation) -> dict[str, Any]:
    return {
        "name": op.name,
        "op": op.type,
        "inputs": [t.name for t in op.inputs],
        "control_inputs": [c.name for c in op.control_inputs],
        "device": op.device,
        "loc": op.loc,
        "attrs": {key: _encode(value) for key, value in sorted(op.attrs.items())},
        "outputs": [{"dtype": t.dtype.name, "shape": list(t.shape)} for t in op.outputs],
    }


def _encode(value: Any) -> Any:
    if isinstance(value, DType):
        return {"dtype": value.name}
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        return {"array": {"dtype": value.dtype.name, "shape": list(value.shape),
                          "base64": base64.b64encode(data.tobytes()).decode("ascii")}}
    if isinstance(value, Operation):
        return {"op": value.name}
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return _encode(value.item())
    raise GraphError(f"cannot serialize attribute value {value!r}")


def _decode(value: Any, ops: dict[str, Operation]) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v, ops) for v in value)
    if not isinstance(value, dict):
        return value
    if "dtype" in value:
        return as_dtype(value["dtype"])
    if "array" in value:
        spec = value["array"]
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        array = np.frombuffer(base64.b64decode(spec["base64"]), dtype=dtype).reshape(spec["shape"])
        return array.astype(dtype.newbyteorder("="))
    if "float" in value:
        return float(value["float"])
    if "op" in value:
        return ops[value["op"]]
    raise GraphError(f"cannot read attribute value {value!r}")


def import_graph_def(graph_def: dict[str, Any] | str, name: str = "import",
                     return_elements: Sequence[str] | None = None) -> list[Tensor | Operation] | None:
    """Add the ops of a graph_def (a dict, or its JSON text) to the default graph under scope `name`.

    Returns the tensors and ops named in `return_elements` (names as in the def).
    """
    document = json.loads(graph_def) if isinstance(graph_def, str) else graph_def
    _check_header(document)
    graph = get_default_graph()
    renamed: dict[str, Operation] = {}
    with graph.name_scope(name) if name else _no_scope():
        for node in document["nodes"]:
            renamed[node["name"]] = _import_node(graph, node, renamed)
    for spec in document.get("variables", []):
        _import_variable(graph, spec, renamed)
    if document.get("seed") is not None and graph.seed is None:
        graph.seed = document["seed"]
    if return_elements is None:
        return None
    return [_return_element(graph, element, renamed) for element in return_elements]


def _check_header(document: dict[str, Any]) -> None:
    if document.get("format") != FORMAT:
        raise GraphError(f"not a flowc graph_def (format {document.get('format')!r}, expected {FORMAT!r})")
    if not isinstance(document.get("version"), int) or document["version"] > VERSION:
        raise GraphError(f"graph_def version {document.get('version')!r} is newer than this flowc reads ({VERSION})")


def _import_node(graph: Graph, node: dict[str, Any], renamed: dict[str, Operation]) -> Operation:
    inputs = [_lookup(name, renamed) for name in node["inputs"]]
    attrs = {key: _decode(value, renamed) for key, value in node["attrs"].items()}
    declared = [TensorType(as_dtype(o["dtype"]), tuple(o["shape"])) for o in node["outputs"]]
    with graph.control_dependencies([renamed[c] for c in node["control_inputs"]]):
        with graph.device(node["device"]) if node["device"] else _no_scope():
            base = node["name"].rsplit("/", 1)[-1]
            with _scopes(graph, node["name"]):
                # Random ops take the run counter only in IR (lowering adds it): no type rule on import.
                inferred = node["op"] in registry.OPS and node["op"] not in RANDOM_KINDS
                output_types = None if inferred else declared
                op = graph.create_op(node["op"], inputs, attrs, name=base, output_types=output_types)
    if [t.type for t in op.outputs] != declared:
        raise GraphError(f"node {node['name']!r}: declared outputs {declared} but its type rule gives "
                         f"{[t.type for t in op.outputs]}")
    op.loc = node.get("loc")
    return op


def _import_variable(graph: Graph, spec: dict[str, Any], renamed: dict[str, Operation]) -> None:
    from .state_ops import GLOBAL_VARIABLES, TRAINABLE_VARIABLES, Variable

    variable = Variable.__new__(Variable)
    variable.op = renamed[spec["op"]]
    variable.type = TensorType(as_dtype(variable.op.attrs["dtype"]), tuple(variable.op.attrs["shape"]))
    variable.initial_value = _lookup(spec["initial_value"], renamed)
    variable.initializer = renamed[spec["initializer"]]
    variable._snapshot = _lookup(spec["snapshot"], renamed)
    variable.trainable = spec["trainable"]
    variable.op.variable = variable
    graph.add_to_collection(GLOBAL_VARIABLES, variable)
    if variable.trainable:
        graph.add_to_collection(TRAINABLE_VARIABLES, variable)


def _lookup(name: str, renamed: dict[str, Operation]) -> Tensor | Operation:
    op_name, sep, index = name.rpartition(":")
    if sep and index.isdigit():
        return renamed[op_name].outputs[int(index)]
    return renamed[name]


def _return_element(graph: Graph, name: str, renamed: dict[str, Operation]) -> Tensor | Operation:
    """The imported tensor or op that `name` (as in the def) stands for; "v:0" is Variable v's value."""
    op_name, sep, index = name.rpartition(":")
    key = op_name if sep and index.isdigit() else name
    if key not in renamed:
        raise FetchError(f"return_elements names {name!r}, which the graph_def does not have")
    return graph.as_graph_element(f"{renamed[key].name}:{index}" if key != name else renamed[key].name)


def _scopes(graph: Graph, full_name: str) -> Any:
    """Re-enter the node's name scopes so it gets the same relative name."""
    stack = contextlib.ExitStack()
    for part in full_name.split("/")[:-1]:
        stack.enter_context(graph.name_scope(part))
    return stack


def _no_scope() -> Any:
    return contextlib.nullcontext()


def write_graph(graph_or_graph_def: Graph | dict[str, Any], logdir: str, name: str, as_text: bool = True) -> str:
    """Write the graph_def as JSON to logdir/name; returns the path."""
    document = graph_or_graph_def.as_graph_def() if isinstance(graph_or_graph_def, Graph) else graph_or_graph_def
    os.makedirs(logdir, exist_ok=True)
    path = os.path.join(logdir, name)
    with open(path, "w") as f:
        json.dump(document, f, indent=1 if as_text else None, allow_nan=False)
    return path
