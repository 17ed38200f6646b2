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
{"float": "nan"}, a reference to another op {"op": "W"}, and the sub-graph of a cond or while
{"graph": {...}} (graph_def_regions.py).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from flowc.ir import TensorType, Value
from flowc.ir import op as registry
from flowc.ir.errors import FetchError, FlowcError, GraphError
from flowc.ir.types import DType, as_dtype
from flowc.ir.verifier import attribute_matches

from .graph import ASSIGN_KINDS, CONST, NOOP, PLACEHOLDER, READ, VARIABLE, Graph, Operation, Tensor, close_names, \
    get_default_graph
from .func_graph import FuncGraph
from .graph_def_check import Fields, check_document, node_label, parse_text, problem, shown
from .graph_def_regions import decode_graph, encode_graph, region_outputs
from .lowering import RANDOM_KINDS, REGION_KINDS, STEP_TYPE
from .sources import user_location
from .unknown_rank import RANK_RULES

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
    node = {
        "name": op.name,
        "op": op.type,
        "inputs": [t.name for t in op.inputs],
        "control_inputs": [c.name for c in op.control_inputs],
        "device": op.device,
        "loc": op.loc,
        "attrs": {key: _encode(value) for key, value in sorted(op.attrs.items())},
        "outputs": [{"dtype": t.dtype.name, "shape": list(t.type.shape)} for t in op.outputs],
    }
    if op.rank_rules:  # the attributes that follow from the inputs' ranks (unknown_rank.py)
        node["rank_rules"] = dict(sorted(op.rank_rules.items()))
    return node


def _encode(value: Any) -> Any:
    if isinstance(value, DType):
        return {"dtype": value.name}
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        return {"array": {"dtype": value.dtype.name, "shape": list(value.shape),
                          "base64": base64.b64encode(data.tobytes()).decode("ascii")}}
    if isinstance(value, Operation):
        return {"op": value.name}
    if isinstance(value, FuncGraph):  # the sub-graphs of cond and while: graph_def_regions.py
        return encode_graph(value, _node_to_def)
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return _encode(value.item())
    raise GraphError(f"cannot serialize attribute value {value!r}")


MAX_NESTING = 32  # lists in one attribute value: real ones nest one or two deep

# The graph-only kinds (lowering.py gives each its meaning): the types of the attributes each must
# have and of those it may have, and its number of inputs.
GRAPH_KIND_ATTRS: dict[str, dict[str, Any]] = {
    PLACEHOLDER: {"dtype": DType, "shape": tuple[int | None, ...]},
    CONST: {"value": np.ndarray},
    VARIABLE: {"dtype": DType, "shape": tuple[int, ...]},
    READ: {"var": Operation},
    NOOP: {},
    **{kind: {"var": Operation} for kind in ASSIGN_KINDS},
}
GRAPH_KIND_OPTIONAL_ATTRS: dict[str, dict[str, Any]] = {kind: {"use_locking": bool} for kind in ASSIGN_KINDS}
GRAPH_KIND_OPTIONAL_ATTRS[PLACEHOLDER] = {"unknown_rank": bool}  # Note [placeholders of unknown rank] in array_ops.py
GRAPH_KIND_INPUTS = {kind: 1 if kind in ASSIGN_KINDS else 0 for kind in GRAPH_KIND_ATTRS}


@functools.cache
def importable_kinds() -> frozenset[str]:
    """Every op type a node may have: the graph-only kinds and the IR ops a graph can hold
    (none with regions but cond and while, whose sub-graphs are attributes; no terminator, no call:
    a graph has no functions to call)."""
    ir_ops = [name for name, cls in registry.OPS.items() if not cls.num_regions and not cls.is_terminator]
    return frozenset([*GRAPH_KIND_ATTRS, *(name for name in ir_ops if name != "call"), *REGION_KINDS])


def _not_a_path(text: str | bytes | bytearray) -> None:
    """A file's path where its text belongs: a GraphError that says how to read the file."""
    path = text.decode(errors="replace") if isinstance(text, (bytes, bytearray)) else text
    stripped = path.strip()
    if not stripped or stripped[0] in "{[" or "\n" in stripped:
        return
    if os.path.exists(stripped) or stripped.endswith((".json", ".pb", ".pbtxt")):
        raise GraphError(f"import_graph_def takes a graph_def (a dict or its JSON text), not the file path "
                         f"{stripped!r}; read the file first: fc.import_graph_def(open(path).read()) for a file "
                         "that fc.write_graph wrote (TF1's import_graph_def also takes a GraphDef, not a path)",
                         op="import_graph_def", where=user_location())


def import_graph_def(graph_def: dict[str, Any] | str, name: str = "import",
                     return_elements: Sequence[str] | None = None) -> list[Tensor | Operation] | None:
    """Add the ops of a graph_def (a dict, or its JSON text) to the default graph under scope `name`.

    Returns the tensors and ops named in `return_elements` (names as in the def). A document
    that is not a well-formed graph_def raises a GraphError naming the node and what is wrong,
    and adds nothing to the graph.
    """
    if isinstance(return_elements, str):
        raise FetchError(f"return_elements is a list of names, got the string {return_elements!r}")
    if isinstance(graph_def, (str, bytes, bytearray)):
        _not_a_path(graph_def)
        graph_def = parse_text(graph_def, FORMAT)
    check_document(graph_def, FORMAT, VERSION)
    graph = get_default_graph()
    renamed: dict[str, Operation] = {}
    scope = _Scope(renamed, {node["name"] for node in graph_def["nodes"]}, graph)
    with graph.all_or_nothing():
        with graph.name_scope(name) if name else _no_scope():
            for node in graph_def["nodes"]:
                renamed[node["name"]] = _import_node(graph, node, scope)
        for spec in graph_def.get("variables", []):
            _import_variable(graph, spec, scope)
        for node in graph_def["nodes"]:
            if node["op"] == VARIABLE and getattr(renamed[node["name"]], "variable", None) is None:
                raise GraphError("no entry of the graph_def's variables describes this variable",
                                 op=node_label(node, 0), where=node.get("loc"))
        if graph_def.get("seed") is not None and graph.seed is None:
            graph.seed = graph_def["seed"]
        if return_elements is None:
            return None
        return [_return_element(graph, element, renamed) for element in return_elements]


class _Scope:
    """The nodes imported so far (by their names in the def) and the names of all nodes of the def."""

    def __init__(self, renamed: dict[str, Operation], names: set[str], graph: Graph):
        self.renamed = renamed
        self.names = names
        self.graph = graph  # where the nodes go: the graph imported into, or a sub-graph of it

    def operation(self, name: str, what: str) -> Operation:
        if name in self.renamed:
            return self.renamed[name]
        if name in self.names:
            raise GraphError(f"{what} names node {name!r}, which does not come before it in the graph_def "
                             "(a node comes after its inputs)")
        raise GraphError(f"{what} names node {name!r}, which the graph_def does not have"
                         f"{close_names(name, self.names)}")

    def tensor(self, name: str, what: str) -> Tensor:
        op_name, sep, index = name.rpartition(":")
        if not sep or not index.isdigit():
            raise GraphError(f"{what} {name!r} is not a tensor name such as 'op:0'")
        op = self.operation(op_name, f"{what} {name!r}")
        if int(index) >= len(op.outputs):
            raise GraphError(f"{what} {name!r}: node {op_name!r} has {_count(len(op.outputs), 'output')}")
        return op.outputs[int(index)]


def _import_node(graph: Graph, node: dict[str, Any], scope: _Scope) -> Operation:
    try:
        return _create_node(graph, node, scope)
    except FlowcError as error:
        # Named as in the document, created at the node's own line (not the import's), whoever raised it.
        error.op, error.where = node_label(node, 0), node.get("loc") or error.where
        raise error.located() from None


def _create_node(graph: Graph, node: dict[str, Any], scope: _Scope) -> Operation:
    kind = node["op"]
    if kind not in importable_kinds():
        raise GraphError(f"unknown op type {kind!r}{close_names(kind, importable_kinds())}")
    inputs = [scope.tensor(name, f"inputs[{i}]") for i, name in enumerate(node["inputs"])]
    controls = [scope.operation(name, f"control_inputs[{i}]") for i, name in enumerate(node["control_inputs"])]
    attrs = {key: _decode_attribute(key, value, scope) for key, value in node["attrs"].items()}
    declared = _declared_outputs(node["outputs"])
    if kind in REGION_KINDS:
        region_outputs(kind, inputs, attrs, declared)
        expected = declared
    else:
        expected = _check_kind(kind, inputs, attrs)
    if expected is not None and expected != declared:
        raise GraphError(f"declared outputs {declared} but its attributes give {expected}")
    with graph.control_dependencies(controls), graph.device(node["device"]) if node["device"] else _no_scope():
        base = node["name"].rsplit("/", 1)[-1]
        with _scopes(graph, node["name"]):
            # IR ops other than random ones get their types from their type rule, checked against the
            # declared ones below; random ops take the run counter only in IR (lowering adds it).
            inferred = kind in registry.OPS and kind not in RANDOM_KINDS and kind not in REGION_KINDS
            op = graph.create_op(kind, inputs, attrs, name=base, output_types=None if inferred else declared,
                                 rank_rules=_rank_rules(node, attrs))
    if [t.type for t in op.outputs] != declared:
        raise GraphError(f"declared outputs {declared} but its type rule gives {[t.type for t in op.outputs]}")
    op.loc = node.get("loc")
    return op


def _rank_rules(node: dict[str, Any], attrs: dict[str, Any]) -> dict[str, str] | None:
    """The node's rank rules (Note [placeholders of unknown rank] in unknown_rank.py), each a known rule of an
    attribute the node has."""
    rules = node.get("rank_rules")
    if not rules:
        return None
    for key, rule in rules.items():
        if key not in attrs or not isinstance(rule, str) or rule.partition(":")[0] not in RANK_RULES:
            raise GraphError(f"rank_rules gives attribute {key!r} the rule {rule!r}; the rules are "
                             f"{sorted(RANK_RULES)}, for attributes the node has ({sorted(attrs)})")
    return dict(rules)


def _declared_outputs(outputs: list[dict[str, Any]]) -> list[TensorType]:
    declared = []
    for index, output in enumerate(outputs):
        if any(d is not None and d < 0 for d in output["shape"]):
            raise GraphError(f"outputs[{index}].shape {output['shape']} has a negative dim")
        declared.append(TensorType(_dtype(output["dtype"], f"outputs[{index}].dtype"), tuple(output["shape"])))
    return declared


def _check_kind(kind: str, inputs: list[Tensor], attrs: dict[str, Any]) -> list[TensorType] | None:
    """Check the attributes' types (and, for graph-only and random kinds, everything else the
    IR type rule would); the output types they give, or None where the type rule gives them."""
    required = GRAPH_KIND_ATTRS[kind] if kind in GRAPH_KIND_ATTRS else registry.get(kind).attrs
    declared_attrs = {**required, **GRAPH_KIND_OPTIONAL_ATTRS.get(kind, {})}
    for key, value in attrs.items():
        if key in declared_attrs and not attribute_matches(value, declared_attrs[key]):
            raise GraphError(f"attribute {key!r} must be {_type_name(declared_attrs[key])}, got {_shown(value)}")
    if kind in RANDOM_KINDS:
        expected = registry.get(kind).num_operands - 1  # the run counter is lowering's, not the graph's
        if len(inputs) != expected:
            raise GraphError(f"takes {expected} input(s), got {len(inputs)}")
        return [r.type for r in registry.get(kind)([Value(STEP_TYPE), *(Value(t.type) for t in inputs)], attrs).results]
    if kind not in GRAPH_KIND_ATTRS:
        return None
    if not set(required) <= set(attrs) <= set(declared_attrs):
        optional = sorted(set(declared_attrs) - set(required))
        may = f" and may have {optional}" if optional else ""
        raise GraphError(f"has attributes {sorted(attrs)}; a {kind} has {sorted(required)}{may}")
    if len(inputs) != GRAPH_KIND_INPUTS[kind]:
        raise GraphError(f"takes {_count(GRAPH_KIND_INPUTS[kind], 'input')}, got {len(inputs)}")
    return _graph_kind_outputs(kind, inputs, attrs)


def _graph_kind_outputs(kind: str, inputs: list[Tensor], attrs: dict[str, Any]) -> list[TensorType]:
    if kind in (PLACEHOLDER, VARIABLE):
        if any(d is not None and d < 0 for d in attrs["shape"]):
            raise GraphError(f"attribute 'shape' {list(attrs['shape'])} has a negative dim")
        return [TensorType(attrs["dtype"], attrs["shape"])] if kind == PLACEHOLDER else []
    if kind == CONST:
        return [TensorType(_dtype(attrs["value"].dtype, "attribute 'value'"), attrs["value"].shape)]
    if kind == NOOP:
        return []
    variable = attrs["var"]
    if variable.type != VARIABLE:
        raise GraphError(f"attribute 'var' names {variable.display_name}, not a {VARIABLE}")
    variable_type = TensorType(variable.attrs["dtype"], variable.attrs["shape"])
    if kind in ASSIGN_KINDS:  # as fc.assign checks: one dtype, one rank, unknown dims allowed
        value = inputs[0].type
        dims_fit = all(d is None or d == v for d, v in zip(value.shape, variable_type.shape))
        if value.dtype != variable_type.dtype or value.rank != variable_type.rank or not dims_fit:
            raise GraphError(f"assigns {inputs[0].name!r} of type {value} to variable {variable.name!r} of type "
                             f"{variable_type}")
    return [variable_type]


def _dtype(value: Any, what: str) -> DType:
    try:
        return as_dtype(value)
    except FlowcError as error:
        raise GraphError(f"{what}: {error.detail}") from None


def _decode_attribute(key: str, value: Any, scope: _Scope) -> Any:
    try:
        return _decode(value, scope, 0)
    except FlowcError as error:
        raise GraphError(f"attribute {key!r}: {error.detail}") from None


def _decode(value: Any, scope: _Scope, depth: int) -> Any:
    if depth > MAX_NESTING:
        raise GraphError(f"lists nest deeper than {MAX_NESTING}")
    if isinstance(value, list):
        return tuple(_decode(v, scope, depth + 1) for v in value)
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or next(iter(value)) not in _TAGS:
        raise GraphError(f"an object in an attribute value has one key, one of {', '.join(_TAGS)}; "
                         f"got keys {sorted(map(str, value))}")
    (tag, content), = value.items()
    return _TAGS[tag](content, scope)


def _decode_dtype(content: Any, scope: _Scope) -> DType:
    if not isinstance(content, str):
        raise GraphError(f"a dtype is a name such as 'float32', got {shown(content)}")
    return _dtype(content, "dtype")


def _decode_array(content: Any, scope: _Scope) -> np.ndarray:
    if found := problem(content, _ARRAY, "the array"):
        raise GraphError(found)
    dtype = np.dtype(_dtype(content["dtype"], "the array's dtype").np).newbyteorder("<")
    shape = tuple(content["shape"])
    if any(d < 0 for d in shape):
        raise GraphError(f"the array's shape {list(shape)} has a negative dim")
    try:
        data = base64.b64decode(content["base64"], validate=True)
    except (binascii.Error, ValueError) as error:  # ValueError: a character outside ASCII
        raise GraphError(f"the array's base64 does not decode: {error}") from None
    want = math.prod(shape) * dtype.itemsize
    if len(data) != want:
        raise GraphError(f"the array holds {len(data)} bytes; shape {list(shape)} of {dtype.name} needs {want}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _decode_float(content: Any, scope: _Scope) -> float:
    if content not in ("nan", "inf", "-inf"):
        raise GraphError(f"a tagged float is 'nan', 'inf' or '-inf', got {shown(content)}")
    return float(content)


def _decode_op(content: Any, scope: _Scope) -> Operation:
    if not isinstance(content, str):
        raise GraphError(f"an op reference is a node name, got {shown(content)}")
    return scope.operation(content, "the op reference")


def _decode_sub_graph(content: Any, scope: _Scope) -> FuncGraph:
    return decode_graph(content, scope.graph, scope.tensor, _import_sub_graph_nodes)


def _import_sub_graph_nodes(graph: FuncGraph, nodes: list[dict[str, Any]], given: dict[str, Tensor]) -> Any:
    """Import `nodes` into the sub-graph, whose Arg and Capture tensors `given` holds; its tensor lookup."""
    renamed = {name.rsplit(":", 1)[0]: tensor.op for name, tensor in given.items()}
    scope = _Scope(renamed, {node["name"] for node in nodes} | set(renamed), graph)
    with graph.as_default():
        for node in nodes:
            if node["name"] in renamed:
                raise GraphError("a node of this name comes earlier in the sub-graph; names are unique",
                                 op=node_label(node, 0), where=node.get("loc"))
            renamed[node["name"]] = _import_node(graph, node, scope)
    return scope.tensor


_ARRAY = Fields({"dtype": str, "shape": [int], "base64": str}, {})
_TAGS = {"dtype": _decode_dtype, "array": _decode_array, "float": _decode_float, "op": _decode_op,
         "graph": _decode_sub_graph}


def _import_variable(graph: Graph, spec: dict[str, Any], scope: _Scope) -> None:
    from .state_ops import GLOBAL_VARIABLES, TRAINABLE_VARIABLES, Variable

    try:
        op = scope.operation(spec["op"], "op")
        if op.type != VARIABLE or getattr(op, "variable", None) is not None:
            raise GraphError(f"op names {op.display_name}: not a {VARIABLE}, or one that has a variable already")
        variable = Variable.__new__(Variable)
        variable.op = op
        variable.type = TensorType(op.attrs["dtype"], op.attrs["shape"])
        variable.initial_value = _variable_part(scope.tensor(spec["initial_value"], "initial_value"), None, variable)
        variable.initializer = _variable_part(scope.operation(spec["initializer"], "initializer"), "Assign", variable)
        variable._snapshot = _variable_part(scope.tensor(spec["snapshot"], "snapshot"), READ, variable)
    except FlowcError as error:
        raise error.located(op=f"variable {spec['op']!r}") from None
    variable.trainable = spec["trainable"]
    op.variable = variable
    graph.add_to_collection(GLOBAL_VARIABLES, variable)
    if variable.trainable:
        graph.add_to_collection(TRAINABLE_VARIABLES, variable)


def _variable_part(part: Any, kind: str | None, variable: Any) -> Any:
    """The initial value (a tensor of the variable's type), initializer (an Assign of it) or
    snapshot (a read of it) that a variable's entry names, checked."""
    op = part.op if isinstance(part, Tensor) else part
    if kind is None:
        if part.type != variable.type:
            raise GraphError(f"initial_value {part.name!r} is {part.type}, the variable is {variable.type}")
    elif op.type != kind or op.attrs.get("var") is not variable.op:
        raise GraphError(f"names {op.display_name}, not a {kind} of {variable.op.name!r}")
    return part


def _return_element(graph: Graph, name: Any, renamed: dict[str, Operation]) -> Tensor | Operation:
    """The imported tensor or op that `name` (as in the def) stands for; "v:0" is Variable v's value."""
    if not isinstance(name, str):
        raise FetchError(f"return_elements holds {name!r}, not a name of the graph_def")
    op_name, sep, index = name.rpartition(":")
    key = op_name if sep and index.isdigit() else name
    if key not in renamed:
        raise FetchError(f"return_elements names {name!r}, which the graph_def does not have")
    return graph.as_graph_element(f"{renamed[key].name}:{index}" if key != name else renamed[key].name)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _type_name(expected: Any) -> str:
    return expected.__name__ if isinstance(expected, type) else str(expected)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


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
    path = os.path.join(logdir, name)
    text = json.dumps(document, indent=1 if as_text else None, allow_nan=False)  # before touching any file
    try:
        os.makedirs(logdir, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    except FileExistsError:
        raise GraphError(f"cannot write the graph_def into {logdir!r}: it is a file, not a folder") from None
    except OSError as error:
        raise GraphError(f"cannot write the graph_def to {path!r}: {error.strerror or error}") from None
    return path
