"""Tensors whose rank is known only when the graph runs: placeholders made without a shape.

Note [placeholders of unknown rank]
TF1 code makes placeholders without a shape, `X = fc.placeholder("float")`, and feeds them
scalars in one run and whole arrays in the next (the linear regression tutorial trains on one
sample at a time, then computes the cost of all of them with the same placeholders). The IR
has no type of unknown rank: a compiled program knows every value's rank. So the graph keeps
two things per op and each run is typed for the ranks it is fed:

- At build time a placeholder of unknown rank has a provisional type, a scalar of its dtype,
  and `has_unknown_rank` (its TensorShape has no rank). An op with such an input is typed on
  probes (`infer_unknown_rank`): the provisional types, then every unknown-rank input as rank
  1, 2, ... with unknown dims, until two probes type. Where both give one rank, the output
  has that rank (dims the probes disagree on are None): `reduce_sum(X)` is a scalar whatever
  X is. Otherwise the output has unknown rank too, its provisional type from the first probe:
  `matmul(X, W)` types (rank 2 on) though a scalar X would not, and is checked per run.
  Where no probe types, the op cannot take any rank and the build-time error is raised.
- Attributes that a front end works out from an input's rank (reduce_sum's axes for
  axis=None, transpose's perm for perm=None, x[0]'s slice of every further axis) are given
  to create_op as `rank_rules`, names from RANK_RULES (with an argument after a ":"),
  besides their value for the provisional type.

A run that feeds such a placeholder is lowered for the fed ranks (`fed_type`: the rank of the
array, every dim unknown, so one compile serves every size of that rank): lowering types each
op again from its operands' types, with the rank rules' attributes worked out for them. The
Session keeps one compiled program per combination of fed ranks, beside its other feed keys.
An op that cannot take the fed rank raises its type rule's FlowcError when the run is lowered,
naming the op, its line, and the placeholder's fed rank. Gradients follow, since autodiff runs
on the IR after lowering. A front end that decides more than an attribute from a rank (a
layer's weights from the last dim) decides it from the provisional type: give such a
placeholder a shape, as TF1's layers ask too. The sub-graphs of fc.cond, fc.while_loop and
fc.function are built once, for the provisional types: a run that feeds them another rank is
a FlowcTypeError naming the region op (control_flow_lowering.py).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from flowc.ir import TensorType
from flowc.ir.errors import FlowcError

MAX_PROBE_RANK = 4  # conv2d's inputs have rank 4: the highest rank an op of the front end asks for


def _padded(fill: Any) -> Callable[[Sequence[TensorType], Any, str], Any]:
    """A rule for x[...] (strided_slice): the attribute's entries for the first `argument` axes, then `fill`
    (a whole axis) for each further axis of the rank fed."""
    return lambda types, value, argument: tuple(value[:int(argument)]) + (fill,) * (types[0].rank - int(argument))


# rule name -> (the inputs' types, the attribute's value for the provisional types, the argument after
# a ":" in the rule) -> the attribute's value for inputs of these types
RANK_RULES: dict[str, Callable[[Sequence[TensorType], Any, str], Any]] = {
    "all_axes": lambda types, value, argument: tuple(range(types[0].rank)),  # reductions with axis=None
    "reversed_axes": lambda types, value, argument: tuple(reversed(range(types[0].rank))),  # transpose, perm=None
    "slice_begin": _padded(0),  # x[i, a:b] of an x of unknown rank: the leading axes indexed, the rest whole
    "slice_end": _padded(None),
    "slice_strides": _padded(1),
}


def fed_type(tensor: Any, value: Any) -> TensorType:
    """The type a run that feeds `value` to the unknown-rank `tensor` gives it: its rank, no dims."""
    return TensorType(tensor.dtype, (None,) * fed_rank(value))


def fed_rank(value: Any) -> int:
    """The rank of a fed value: an array's (numpy's or a device's), a Python number's or nested list's."""
    rank = getattr(value, "ndim", None)
    return int(rank) if rank is not None else int(np.ndim(value))


def resolved_attrs(attrs: dict[str, Any], rules: dict[str, str], types: Sequence[TensorType]) -> dict[str, Any]:
    """`attrs` with the rank rules' attributes worked out for inputs of `types`."""
    if not rules:
        return attrs
    resolved = dict(attrs)
    for key, rule in rules.items():
        name, _, argument = rule.partition(":")
        resolved[key] = RANK_RULES[name](types, attrs[key], argument)
    return resolved


def infer_unknown_rank(type: str, inputs: Sequence[Any], attrs: dict[str, Any], rules: dict[str, str], name: str,
                       loc: str | None) -> tuple[dict[str, Any], list[TensorType], frozenset[int]]:
    """Attributes, provisional output types and the outputs of unknown rank of an op with an input of
    unknown rank, from probes of its inputs' ranks (Note [placeholders of unknown rank])."""
    from .graph import infer_output_types

    typed: list[tuple[dict[str, Any], list[TensorType]]] = []
    first_error: FlowcError | None = None
    for probe in _probes(inputs):
        try:
            probed = _Typed.of(inputs, probe)
            typed.append(infer_output_types(type, probed, resolved_attrs(attrs, rules, probe), name, loc))
        except FlowcError as error:
            first_error = first_error or error
        if len(typed) == 2:
            break
    if not typed:
        assert first_error is not None
        raise first_error
    attrs, types = typed[0]
    if len(typed) == 1:
        return attrs, types, frozenset(range(len(types)))
    unknown = set()
    merged = []
    for index, (one, other) in enumerate(zip(typed[0][1], typed[1][1])):
        if one.rank != other.rank:
            unknown.add(index)
            merged.append(one)
        else:
            merged.append(one.with_shape([a if a == b else None for a, b in zip(one.shape, other.shape)]))
    return attrs, merged, frozenset(unknown)


def _probes(inputs: Sequence[Any]) -> list[list[TensorType]]:
    """The inputs' types to type an op on: their provisional types, then each unknown rank as 1, 2, ..."""
    probes = [[t.type for t in inputs]]
    for rank in range(1, MAX_PROBE_RANK + 1):
        probes.append([TensorType(t.dtype, (None,) * rank) if t.has_unknown_rank else t.type for t in inputs])
    return probes


class _Typed:
    """An input as infer_output_types reads it, with a probe's type (its hints name the input's op)."""

    __slots__ = ("type", "op", "dtype")

    def __init__(self, type: TensorType, op: Any):
        self.type, self.op, self.dtype = type, op, type.dtype

    @staticmethod
    def of(inputs: Sequence[Any], types: Sequence[TensorType]) -> list[Any]:
        return [_Typed(t, tensor.op) for tensor, t in zip(inputs, types)]


def fed_rank_hint(op: Any, env: dict[Any, Any]) -> str:
    """For an op that cannot take the ranks a run feeds: which placeholders of unknown rank it depends on,
    where they were made, and the rank each was fed (its value's rank in `env`)."""
    seen, stack, found = set(), list(op.inputs), []
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        if tensor.op.attrs.get("unknown_rank") and tensor in env:
            found.append(tensor)
        stack.extend(tensor.op.inputs)
    parts = [f"placeholder '{t.op.name}'{f' (made at {t.op.loc})' if t.op.loc else ''} is fed rank {env[t].type.rank}"
             for t in sorted(found, key=lambda t: t.op.id)]
    if not parts:
        return ""
    return ("; this run types it for the ranks fed to placeholders of unknown rank: " + ", ".join(parts) +
            "; feed a rank the op takes, or give the placeholder a shape")
