"""A fuzz graph as plain data: inputs and op records over symbolic shapes.

Everything here round-trips through JSON, so the parent process can hand a
case to a worker, and the minimizer can edit a case and run it again.

Each value carries its `error`: how far the two targets may be apart on it.
EXACT values are bit-for-bit the same on both (integers, bools, and floats
computed only by correctly rounded IEEE operations: +, -, *, /, sqrt, max,
moves); F64 and F32 values went through an operation that may round
differently on `cpu` (a vectorized exp, a reassociated sum, an OpenBLAS
product), in that float width. The generator lets only EXACT values reach
operations that jump (comparisons, casts to integers, argmax), so a last-bit
difference never turns into a different bool or index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .dims import Dim, Shape, from_json, to_json

EXACT, F64, F32 = 0, 1, 2


def rounding_of(dtype: str) -> int:
    """The error level of an inexact operation that computes in `dtype`."""
    return F32 if dtype == "float32" else F64


@dataclass
class Value:
    name: str
    dtype: str  # "float32", "float64", "int32", "int64", "bool"
    shape: Shape
    error: int = EXACT

    @property
    def is_float(self) -> bool:
        return self.dtype in ("float32", "float64")


@dataclass
class Input:
    """A placeholder. `indexes` is the dim an index input must stay below (gather's indices)."""

    value: Value
    indexes: Dim | None = None


@dataclass
class OpRecord:
    """`result = TEMPLATES[op].format(*args, **attrs)`: one line of the graph."""

    result: Value
    op: str
    args: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    guard: bool = False  # keeps a later op in its domain (|x| + 1 before a division): the minimizer keeps it


@dataclass
class GraphSpec:
    symbols: list[str]
    inputs: list[Input]
    ops: list[OpRecord]
    outputs: list[str]
    gradients: bool = False  # also fetch the gradient of sum(output * weight) over float outputs

    def value(self, name: str) -> Value:
        for item in self.inputs:
            if item.value.name == name:
                return item.value
        for record in self.ops:
            if record.result.name == name:
                return record.result
        raise KeyError(name)


@dataclass
class Case:
    """What one worker job runs: a graph, and the symbol sizes of each of its runs."""

    seed: int
    spec: GraphSpec
    sizes: list[dict[str, int]]
    specials: bool = True  # feed 0, -0.0, inf and nan among the floats
    target: str = "cpu"  # the native target judged against `reference`

    def to_json(self) -> dict:
        return {"seed": self.seed, "spec": _spec_to_json(self.spec), "sizes": self.sizes, "specials": self.specials,
                "target": self.target}

    @staticmethod
    def from_json(data: dict) -> Case:
        return Case(data["seed"], _spec_from_json(data["spec"]), [dict(s) for s in data["sizes"]], data["specials"],
                    data.get("target", "cpu"))


def _value_to_json(value: Value) -> dict:
    return {"name": value.name, "dtype": value.dtype, "shape": [to_json(d) for d in value.shape], "error": value.error}


def _value_from_json(data: dict) -> Value:
    return Value(data["name"], data["dtype"], tuple(from_json(d) for d in data["shape"]), data["error"])


def _spec_to_json(spec: GraphSpec) -> dict:
    return {
        "symbols": spec.symbols,
        "inputs": [{"value": _value_to_json(i.value), "indexes": None if i.indexes is None else to_json(i.indexes)}
                   for i in spec.inputs],
        "ops": [{"result": _value_to_json(r.result), "op": r.op, "args": r.args, "attrs": r.attrs, "guard": r.guard}
                for r in spec.ops],
        "outputs": spec.outputs,
        "gradients": spec.gradients,
    }


def _spec_from_json(data: dict) -> GraphSpec:
    inputs = [Input(_value_from_json(i["value"]), None if i["indexes"] is None else from_json(i["indexes"]))
              for i in data["inputs"]]
    ops = [OpRecord(_value_from_json(r["result"]), r["op"], list(r["args"]), dict(r["attrs"]), r["guard"])
           for r in data["ops"]]
    return GraphSpec(list(data["symbols"]), inputs, ops, list(data["outputs"]), data["gradients"])
