"""Every run-time size of an exported function as a formula of its input dims, for C to evaluate.

A Session works out each value's concrete shape per set of fed shapes with
the IR's type rules (ir/shapes.py). An exported library has no Python, so the
exporter states those sizes as code instead. Note [dims as affine formulas]:
each slot of the dims vector (DimTable in codegen/llvm/program.py) is a size
that some type rule computes from the input dims. The input dims fall into
groups: those the ops tie together (DimTies) are one size. Almost every rule
copies a dim (elementwise ops, matmul, transpose, gather) or adds and scales
them (concat adds, a reshape to [-1] multiplies by a static size), so each
slot is c0 + sum(c_g * group_g). The exporter finds the coefficients by
running the type rules on a few sets of group sizes, checks the formula on
another set, and refuses (a FlowcError naming the op) a size that no such
formula gives: a strided slice of an unknown dim, a reshape that multiplies
two unknown dims.

Checks that the C code makes before running: every static input dim equals
its size, every input dim of one group is one size, every slot is >= 0, and
an argmax or argmin reduces an axis that is not empty (ir/ops/reduction.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowc.codegen.llvm.program import DimTable
from flowc.ir import Function
from flowc.ir.errors import FlowcError
from flowc.ir.ops.fusion import UnknownDim
from flowc.ir.shapes import check_no_hidden_broadcast, propagate_shapes

# Group sizes of the probes: distinct, odd and > 1, so that no size is mistaken for a broadcast 1
# and no two groups coincide; the checking probe's sizes appear in no other probe.
_BASE = (5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61)
_STEP = 6
_CHECK_OFFSET = 100


class ExportShapeError(FlowcError):
    """A size an exported library would need at run time that flowc cannot state as C."""


@dataclass(frozen=True)
class InputDim:
    """One axis of one input: a static size to check, or the group whose size it gives."""

    input: int
    axis: int
    static: int | None  # the size it must have (a static dim, or an unknown one tied to a static)
    group: int | None  # else: the group it belongs to


@dataclass(frozen=True)
class Formula:
    """A slot's size: constant + sum(coefficient * group size)."""

    constant: int
    terms: tuple[tuple[int, int], ...]  # (group, coefficient), coefficients nonzero

    def evaluate(self, groups: list[int]) -> int:
        return self.constant + sum(c * groups[g] for g, c in self.terms)


@dataclass
class DimsPlan:
    """What the C code computes from the input dims (Note [dims as affine formulas])."""

    inputs: list[InputDim]  # every axis of every input, in order
    group_count: int
    slots: list[Formula]  # per slot of the dims vector
    nonempty: list[tuple[int, str]] = field(default_factory=list)  # (slot, op) that must be >= 1
    symbolic: dict = field(default_factory=dict)  # (value, axis) -> slot: the DimTable's slots

    def shape_of(self, value) -> list[int | tuple[str, int]]:  # noqa: ANN001
        """Per axis of a value: its static size, or ("slot", s)."""
        return [d if d is not None else ("slot", self.symbolic[value, a]) for a, d in enumerate(value.type.shape)]


def plan_dims(function: Function, table: DimTable, fixed: dict[int, tuple[int, ...]]) -> DimsPlan:
    """The dims plan of `function`, whose arguments are inputs except those in `fixed` (argument
    index -> its concrete shape: variables, the run counter), which have that shape on every run."""
    inputs, groups = _input_dims(function, table, fixed)
    count = len(groups)
    base = [_BASE[g % len(_BASE)] + 64 * (g // len(_BASE)) for g in range(count)]
    values_at = [_slot_values(function, table, fixed, inputs, base)]
    for g in range(count):
        moved = list(base)
        moved[g] += _STEP
        values_at.append(_slot_values(function, table, fixed, inputs, moved))
    checking = [b + _CHECK_OFFSET + 2 * g for g, b in enumerate(base)]
    checked = _slot_values(function, table, fixed, inputs, checking)
    formulas = []
    for slot in range(len(table)):
        formula = _fit(slot, base, values_at)
        if formula is None or formula.evaluate(checking) != checked[slot]:
            raise ExportShapeError(_unstated(function, table, slot))
        formulas.append(formula)
    plan = DimsPlan(inputs, count, formulas, symbolic=dict(table.slots))
    for op in function.walk():
        if op.name in ("argmax", "argmin"):
            axis = op.reduced_axes()[0]
            if op.operands[0].type.shape[axis] is None:
                plan.nonempty.append((table.slots[op.operands[0], axis], op.display_name))
    return plan


def _input_dims(function: Function, table: DimTable, fixed: dict[int, tuple[int, ...]]) -> tuple[list[InputDim], list]:
    inputs: list[InputDim] = []
    groups: list[UnknownDim] = []
    for index, arg in enumerate(function.args):
        if index in fixed:
            continue
        for axis, (dim, symbol) in enumerate(zip(arg.type.shape, table.ties.shape(arg))):
            if dim is not None or not isinstance(symbol, UnknownDim):
                inputs.append(InputDim(index, axis, dim if dim is not None else int(symbol), None))
                continue
            if symbol not in groups:
                groups.append(symbol)
            inputs.append(InputDim(index, axis, None, groups.index(symbol)))
    return inputs, groups


def _slot_values(function: Function, table: DimTable, fixed: dict[int, tuple[int, ...]], inputs: list[InputDim],
                 groups: list[int]) -> list[int]:
    """Each slot's size when the groups have these sizes, by the type rules themselves."""
    shapes = {i: list(fixed[i]) for i in fixed}
    for dim in inputs:
        shapes.setdefault(dim.input, [])
        shapes[dim.input].append(dim.static if dim.group is None else groups[dim.group])
    arg_shapes = [tuple(shapes.get(i, ())) for i in range(len(function.args))]
    try:
        concrete = propagate_shapes(function, arg_shapes)
        for op in function.entry.ops:
            if op.name == "fusion":
                check_no_hidden_broadcast(op, concrete)
    except FlowcError as error:
        raise ExportShapeError(f"cannot export: with the inputs' unknown dims set to {groups}, the type rules "
                               f"fail ({error}); an exported library needs its sizes to follow from the "
                               "input dims") from None
    values = [0] * len(table)
    for (value, axis), slot in table.slots.items():
        values[slot] = concrete[value][axis]
    return values


def _fit(slot: int, base: list[int], values_at: list[list[int]]) -> Formula | None:
    terms = []
    for g in range(len(base)):
        change = values_at[g + 1][slot] - values_at[0][slot]
        if change % _STEP:
            return None
        if change:
            terms.append((g, change // _STEP))
    constant = values_at[0][slot] - sum(c * base[g] for g, c in terms)
    return Formula(constant, tuple(terms))


def _unstated(function: Function, table: DimTable, slot: int) -> str:
    value, axis = next(key for key, s in table.slots.items() if s == slot)
    owner = getattr(value, "op", None)
    where = f"{owner.display_name}" + (f" (created at {owner.loc})" if owner.loc else "") if owner else "an argument"
    return (f"cannot export: axis {axis} of the result of {where} ({value.type}) has a size that is not a sum of "
            "multiples of the input dims (a strided slice or a product of two unknown dims); an exported library "
            "computes its sizes from the input dims: make that dim static, or feed the value")
