"""A GraphSpec built into an `fc.Graph`, through the public front end.

Each record's line (calls.py) is evaluated with the values built so far in
scope, exactly as the reproducer's line would run. `wide=True` builds the
same graph with float32 replaced by float64 throughout: the comparison uses it
to see how much an output moves when its roundings change (compare.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flowc as fc

from .calls import render
from .dims import Sym
from .spec import GraphSpec, OpRecord, Value


class SpecMismatch(Exception):
    """The front end inferred another static shape or dtype than the generator tracked."""


@dataclass
class Built:
    graph: fc.Graph
    tensors: dict[str, fc.Tensor]
    outputs: list[fc.Tensor]
    weights: dict[str, fc.Tensor] = field(default_factory=dict)  # weight placeholder name -> placeholder
    gradients: list[fc.Tensor] = field(default_factory=list)
    gradient_of: list[str] = field(default_factory=list)  # the input each gradient is taken by


def widened(dtype: str, wide: bool) -> str:
    return "float64" if wide and dtype == "float32" else dtype


def placeholder_shape(value: Value) -> list[int | None]:
    return [None if isinstance(d, Sym) else d for d in value.shape]


def widened_record(record: OpRecord) -> OpRecord:
    if record.attrs.get("dtype") != "float32":
        return record
    return OpRecord(record.result, record.op, record.args, {**record.attrs, "dtype": "float64"}, record.guard)


def check(value: Value, tensor: fc.Tensor, wide: bool) -> None:
    want_dtype = widened(value.dtype, wide)
    static_ok = all(isinstance(d, Sym) or d == got for d, got in zip(value.shape, tensor.shape))
    if tensor.dtype.name != want_dtype or len(tensor.shape) != len(value.shape) or not static_ok:
        raise SpecMismatch(f"{value.name}: the generator expected {want_dtype}{list(value.shape)}, "
                           f"the front end made {tensor.dtype.name}{list(tensor.shape)}")


def weight_name(output: str) -> str:
    return f"w_{output}"


def build(spec: GraphSpec, wide: bool = False) -> Built:
    graph = fc.Graph()
    tensors: dict[str, fc.Tensor] = {}
    with graph.as_default():
        for item in spec.inputs:
            value = item.value
            dtype = getattr(fc, widened(value.dtype, wide))
            tensors[value.name] = fc.placeholder(dtype, placeholder_shape(value), name=value.name)
        for record in spec.ops:
            line = render(widened_record(record) if wide else record)
            # One namespace, as at a script's top level: the lambdas of a cond or a loop body see the values.
            tensors[record.result.name] = eval(line, {"fc": fc, **tensors})
            check(record.result, tensors[record.result.name], wide)
        built = Built(graph, tensors, [tensors[name] for name in spec.outputs])
        if spec.gradients:
            add_gradients(spec, built, wide)
    return built


def add_gradients(spec: GraphSpec, built: Built, wide: bool) -> None:
    """The gradient of sum(output * weight) over the float outputs, by each float data input."""
    losses = []
    for name in spec.outputs:
        value = spec.value(name)
        if value.is_float:
            weight = fc.placeholder(getattr(fc, widened(value.dtype, wide)), placeholder_shape(value),
                                    name=weight_name(name))
            built.weights[weight_name(name)] = weight
            losses.append(fc.reduce_sum(built.tensors[name] * weight))
    xs = [i.value.name for i in spec.inputs if i.value.is_float and i.indexes is None]
    if not losses or not xs:
        return
    for x, gradient in zip(xs, fc.gradients(losses, [built.tensors[x] for x in xs])):
        if gradient is not None:
            built.gradients.append(gradient)
            built.gradient_of.append(x)
