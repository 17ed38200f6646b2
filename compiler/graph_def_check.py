"""The shape of a graph_def document, checked before any node of it is imported.

Each field must hold the JSON kind the format gives it (compiler/graph_def.py),
so a broken or hostile document is refused with the node and the field that is
wrong ("matmul 'dense/MatMul': inputs[0] must be a string, got the number 3")
rather than by a KeyError or TypeError half-way through the import. What the
values mean (an input names an earlier node, an op type exists, attribute types)
is checked node by node as the import goes; an error there undoes the import.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from flowc.ir.errors import GraphError


class Fields(NamedTuple):
    """A JSON object: the schema of each required and each optional field (others are ignored)."""

    required: dict[str, Any]
    optional: dict[str, Any]


# A schema is a Fields, a one-item list [item schema] for a JSON list, or a kind (str, int, bool,
# None, dict for any object) or a tuple of kinds.
OUTPUT = Fields({"dtype": str, "shape": [(int, None)]}, {})
NODE = Fields(
    {"name": str, "op": str, "inputs": [str], "control_inputs": [str], "device": str, "attrs": dict,
     "outputs": [OUTPUT]},
    {"loc": (str, None), "rank_rules": dict},  # rank_rules: Note [placeholders of unknown rank] in unknown_rank.py
)
VARIABLE = Fields({"op": str, "initial_value": str, "initializer": str, "snapshot": str, "trainable": bool}, {})
DOCUMENT = Fields({"nodes": list}, {"seed": (int, None), "variables": list})

_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", None: "null", dict: "an object",
               list: "a list"}


def check_document(document: Any, format: str, version: int) -> None:
    """Raise GraphError, naming the node or variable and the field, where `document` is malformed."""
    if not isinstance(document, dict):
        raise GraphError(f"a graph_def is a JSON object ({{\"format\": \"{format}\", ...}}), got {shown(document)}")
    _check_header(document, format, version)
    _raise_if(problem(document, DOCUMENT, "graph_def"))
    names: set[str] = set()
    for index, node in enumerate(document["nodes"]):
        label = node_label(node, index)
        _raise_if(problem(node, NODE, "the node"), op=label, where=_loc(node))
        if node["name"] in names:
            raise GraphError("a node of this name comes earlier in the graph_def; names are unique", op=label,
                             where=_loc(node))
        if "" in node["name"].split("/"):
            raise GraphError("a node name has no empty parts between '/'", op=label, where=_loc(node))
        names.add(node["name"])
    for index, spec in enumerate(document.get("variables", [])):
        label = f"variable {spec['op']!r}" if isinstance(spec, dict) and isinstance(spec.get("op"), str) \
            else f"variables[{index}]"
        _raise_if(problem(spec, VARIABLE, "the entry"), op=label)


def _check_header(document: dict[str, Any], format: str, version: int) -> None:
    if document.get("format") != format:
        found = f"format {document['format']!r}" if "format" in document else "no format"
        raise GraphError(f"not a flowc graph_def ({found}, expected {format!r})")
    if "version" not in document:
        raise GraphError(f"graph_def has no version ({_readable(version)})")
    found = document["version"]
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise GraphError(f"graph_def version {found!r} is not a version number ({_readable(version)})")
    if found > version:
        raise GraphError(f"graph_def version {found!r} is newer than this flowc reads ({version})")


def _readable(version: int) -> str:
    return "this flowc reads version 1" if version == 1 else f"this flowc reads versions 1 to {version}"


def problem(value: Any, schema: Any, path: str) -> str | None:
    """What is wrong with `value` against `schema` (the first thing found), or None."""
    if isinstance(schema, Fields):
        if not isinstance(value, dict):
            return f"{path} must be an object, got {shown(value)}"
        for key in schema.required:
            if key not in value:
                return f"{path} has no field {key!r}"
        for key, item_schema in (*schema.required.items(), *schema.optional.items()):
            inner = key if path.startswith("the ") else f"{path}.{key}"
            if key in value and (found := problem(value[key], item_schema, inner)):
                return found
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{path} must be a list, got {shown(value)}"
        for index, item in enumerate(value):
            if found := problem(item, schema[0], f"{path}[{index}]"):
                return found
        return None
    kinds = schema if isinstance(schema, tuple) else (schema,)
    if any(_is_kind(value, kind) for kind in kinds):
        return None
    return f"{path} must be {' or '.join(_KIND_NAMES[k] for k in kinds)}, got {shown(value)}"


def _is_kind(value: Any, kind: Any) -> bool:
    if kind is None:
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number
    return isinstance(value, kind)


def shown(value: Any) -> str:
    """A JSON value as a message shows it: its kind, and the value when it is short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:60]!r}" + ("..." if len(value) > 60 else "")
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"  # a dict given from Python may hold anything


def node_label(node: Any, index: int) -> str:
    """How errors name a node: "matmul 'dense/MatMul'", as they name an op of a graph."""
    if not isinstance(node, dict) or not isinstance(node.get("name"), str):
        return f"nodes[{index}]"
    kind = node.get("op")
    return f"{kind} '{node['name']}'" if isinstance(kind, str) else f"node '{node['name']}'"


def _loc(node: Any) -> str | None:
    loc = node.get("loc") if isinstance(node, dict) else None
    return loc if isinstance(loc, str) else None


def _raise_if(message: str | None, op: str | None = None, where: str | None = None) -> None:
    if message is not None:
        raise GraphError(message, op=op, where=where)


def parse_text(text: str | bytes | bytearray, format: str) -> Any:
    """The JSON value of a graph_def's text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        ending = " (the text ends there: is it cut short?)" if error.pos >= len(error.doc.rstrip()) else ""
        raise GraphError(f"graph_def is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
                         f"{ending}") from None
    except UnicodeDecodeError as error:
        raise GraphError(f"graph_def is not UTF-8 text: {error.reason} at byte {error.start}") from None
    except RecursionError:
        raise GraphError(f"graph_def nests its JSON too deep to be a {format}") from None
