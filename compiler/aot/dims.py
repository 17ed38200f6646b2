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

An input dim may also be the result of a rule: `reshape(x @ W, [-1]) - y` makes y's length that of
x's rows, though no tie says so (a reshape ties nothing). Such a group is dependent: the probes find
it by a fixed point (each group set to the size that its slot's computed members give), its size is
the formula of its slot, and C checks the input dim against it rather than reading it.

Checks that the C code makes before running: every static input dim equals
its size, every input dim of one group is one size, every slot is >= 0, and
an argmax or argmin reduces an axis that is not empty (ir/ops/reduction.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowc.codegen.llvm.program import DimTable
from flowc.ir import Function, Value
from flowc.ir.errors import FlowcError
from flowc.ir.ops.fusion import UnknownDim
from flowc.ir.shapes import check_no_hidden_broadcast, propagate_shapes
from flowc.ir.types import TensorType

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
    group: int | None  # else: the (free) group whose size it gives
    slot: int | None = None  # else: the slot whose size it must have (a dependent group's)


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
    symbolic: dict[tuple[Value, int], int] = field(default_factory=dict)  # the DimTable's slots

    def codes(self, value: Value) -> list[int]:
        """A value's dims as the C tables encode them: a static size, or -(slot + 1)."""
        return [d if d is not None else -(self.symbolic[value, a] + 1) for a, d in enumerate(value.type.shape)]


def plan_dims(function: Function, table: DimTable, fixed: dict[int, tuple[int, ...]]) -> DimsPlan:
    """The dims plan of `function`, whose arguments are inputs except those in `fixed` (argument
    index -> its concrete shape: variables, the run counter), which have that shape on every run."""
    inputs, symbols = _input_dims(function, table, fixed)
    count = len(symbols)
    base = [_BASE[g % len(_BASE)] + 64 * (g // len(_BASE)) for g in range(count)]
    settled, _ = _settle(function, table, fixed, inputs, base)
    free = [g for g in range(count) if settled[g] == base[g]]
    probes = [base]
    for g in free:
        moved = list(base)
        moved[g] += _STEP
        probes.append(moved)
    values_at = [_settle(function, table, fixed, inputs, probe)[1] for probe in probes]
    checking = [b + _CHECK_OFFSET + 2 * g for g, b in enumerate(base)]
    checked = _settle(function, table, fixed, inputs, checking)[1]
    formulas = []
    for slot in range(len(table)):
        formula = _fit(slot, [base[g] for g in free], values_at)
        formula = formula and Formula(formula.constant, tuple((free[i], c) for i, c in formula.terms))
        if formula is None or formula.evaluate(checking) != checked[slot]:
            raise ExportShapeError(_unstated(function, table, slot))
        formulas.append(formula)
    number = {g: i for i, g in enumerate(free)}  # C numbers the free groups only
    slot_of_group = {dim.group: table.slots[function.args[dim.input], dim.axis] for dim in inputs
                     if dim.group is not None}
    inputs = [dim if dim.group is None
              else InputDim(dim.input, dim.axis, None, number[dim.group]) if dim.group in number
              else InputDim(dim.input, dim.axis, None, None, slot_of_group[dim.group]) for dim in inputs]
    formulas = [Formula(f.constant, tuple((number[g], c) for g, c in f.terms)) for f in formulas]
    plan = DimsPlan(inputs, len(free), formulas, symbolic=dict(table.slots))
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


def _settle(function: Function, table: DimTable, fixed: dict[int, tuple[int, ...]], inputs: list[InputDim],
            groups: list[int]) -> tuple[list[int], list[int]]:
    """The group sizes after the fixed point (a dependent group takes the size its slot's computed
    members give), and each slot's size there, by the type rules themselves."""
    groups = list(groups)
    group_slots = {dim.group: table.slots[function.args[dim.input], dim.axis]
                   for dim in inputs if dim.group is not None}
    for _ in range(2 * len(groups) + 2):
        guess = {slot: groups[g] for g, slot in group_slots.items()}
        computed = _tolerant_shapes(function, _arg_shapes(function, fixed, inputs, groups), table, guess)
        # One group at a time, the last input's first: two groups that the rules make equal both
        # disagree with the probe, and the earlier one stays free (the one C reads).
        for g in sorted(group_slots, reverse=True):
            given = next((computed[key] for key, s in table.slots.items()
                          if s == group_slots[g] and key in computed and computed[key] != groups[g]), None)
            if given is not None:
                groups[g] = given
                break
        else:
            break
    arg_shapes = _arg_shapes(function, fixed, inputs, groups)
    try:
        concrete = propagate_shapes(function, arg_shapes)
        for op in function.entry.ops:
            if op.name == "fusion":
                check_no_hidden_broadcast(op, concrete)
    except FlowcError as error:
        raise ExportShapeError(f"cannot export: with the inputs' shapes {arg_shapes}, the type rules fail ({error}); "
                               "an exported library needs its sizes to follow from the input dims") from None
    values = [0] * len(table)
    for (value, axis), slot in table.slots.items():
        values[slot] = concrete[value][axis]
    return groups, values


def _arg_shapes(function: Function, fixed: dict[int, tuple[int, ...]], inputs: list[InputDim],
                groups: list[int]) -> list[tuple[int, ...]]:
    shapes = {i: list(fixed[i]) for i in fixed}
    for dim in inputs:
        shapes.setdefault(dim.input, []).append(dim.static if dim.group is None else groups[dim.group])
    return [tuple(shapes.get(i, ())) for i in range(len(function.args))]


def _tolerant_shapes(function: Function, arg_shapes: list[tuple[int, ...]], table: DimTable,
                     guess: dict[int, int]) -> dict:
    """Each (value, axis) size that propagate_shapes finds, going on past an op whose rule fails: its
    results take their static dims, and for unknown ones the size `guess` gives their slot (else 0).
    Only the results of ops that did not fail are in the answer."""
    shapes: dict = {}
    computed: dict = {}

    def block_shapes(block, given):  # noqa: ANN001, ANN202
        for arg, shape in zip(block.args, given):
            shapes[arg] = tuple(shape)
        for op in block.ops:
            operands = [shapes[v] for v in op.operands]
            if op.is_terminator:
                return operands
            try:
                if op.name == "cond":  # both branches take the operands after the predicate
                    results = [block_shapes(region.entry, operands[1:]) for region in op.regions][0]
                elif op.name == "while":  # the state keeps its shapes (Note [fixed shapes in control flow])
                    for region in op.regions:
                        block_shapes(region.entry, operands)
                    results = operands
                elif op.regions:
                    results = block_shapes(op.regions[0].entry, operands)
                elif getattr(op, "run_time_shape", None) is not None:  # relax_shape: its type forgets dims
                    results = [op.run_time_shape(*operands)]
                else:
                    inferred = op.infer_type(*[TensorType(v.type.dtype, s) for v, s in zip(op.operands, operands)])
                    inferred = [inferred] if isinstance(inferred, TensorType) else list(inferred)
                    results = [tuple(int(d) for d in t.shape) for t in inferred]
                for result, shape in zip(op.results, results):
                    shapes[result] = tuple(shape)
                    computed.update({(result, axis): size for axis, size in enumerate(shape)})
            except FlowcError:
                for result in op.results:
                    shapes[result] = tuple(d if d is not None else guess.get(table.slots.get((result, a)), 0)
                                           for a, d in enumerate(result.type.shape))
        return []

    block_shapes(function.entry, arg_shapes)
    return computed


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
