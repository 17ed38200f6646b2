"""LiftConstants: kernels that differ only in their constants read them at run time, so they are one kernel.

Note [constants lifted out of kernels]
A long graph repeats a few kernels with other numbers in them: the chain of bench_compile.py
multiplies by its own constant at each step, an unrolled RNN slices step t out of its input and
out of its output's gradient. Each number folded into the code makes a kernel of its own, and
LLVM compiles each (0.1 - 0.5 s for a chain kernel of 96 vectorized tanh and sigmoid), where
the code is the same but for an immediate operand. So where at least LIFT_MIN_KERNELS kernels
of a function's top level are the same but for their scalar constants (or the same row slice
of the same buffer but for the row), the numbers become data:

- a scalar constant (one element) that is not the same in all of them leaves each kernel's
  region and becomes a `constant` op of the function, read as an extra operand (the kernel's
  code loads it; the ones that all kernels share stay folded into the code);
- a slice of one whole row along axis 0 (`x[t]`, `x[t:t+1]`) becomes `read_row %x, %t` with
  %t such an operand, the row copied by the entry point (Note [a row read] in
  codegen/llvm/control.py); an unsqueezed slice is an `expand_dims` of that row, a view.

The kernels are then one LLVM function (Note [kernels emitted once] in codegen/llvm/dedup.py):
the key of a kernel holds its operands' types, not their values, and its code (so the object
cached on disk, Note [kernels compiled apart]) no longer holds the numbers, which live in the
entry point's globals. A graph with fewer such kernels keeps its numbers in the code, where
LLVM folds them (`x * 1.5`, a slice's constant offset): the kernels of bench_native.py and
bench_train.py are unchanged. Kernels in cond and while regions are left alone: they are called
directly, and inlined into the entry point (Note [kernels in loops]).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from flowc.ir import Block, Builder, Module, Operation, Value
from flowc.ir.types import int64

from .manager import Pass

LIFT_MIN_KERNELS = 16  # kernels alike but for their numbers, from which the numbers become data
LIFTED_KINDS = ("loop", "reduction", "matmul")  # kinds whose scalar constants may become operands


class LiftConstants(Pass):
    """Lift the numbers that make otherwise equal kernels different (Note [constants lifted out of kernels])."""

    name = "lift-constants"

    def __init__(self, min_kernels: int | None = None):
        self.min_kernels = min_kernels  # None: LIFT_MIN_KERNELS, read when the pass runs

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= lift_in_block(function.entry, self.min_kernels or LIFT_MIN_KERNELS)
        return changed


def lift_in_block(block: Block, min_kernels: int = LIFT_MIN_KERNELS) -> bool:
    """Lift the differing constants of the block's alike kernels; whether anything was lifted."""
    alike: dict[tuple, list[tuple[Operation, list[Any]]]] = defaultdict(list)
    for op in block.ops:
        shape = kernel_shape(op)
        if shape is not None:
            alike[shape[0]].append((op, shape[1]))
    changed = False
    for key, kernels in alike.items():
        if len(kernels) < min_kernels:
            continue
        differing = [position for position in range(len(kernels[0][1]))
                     if len({numbers[position] for _, numbers in kernels}) > 1]
        if not differing:
            continue
        for op, _ in kernels:
            if key[0] == "row":
                _lift_row(op)
            else:
                _lift_scalars(op, differing)
        changed = True
    return changed


def kernel_shape(op: Operation) -> tuple[tuple, list[Any]] | None:
    """A fusion op as (what it is without its numbers, its numbers in order); None: nothing to lift.

    The numbers are its scalar constants (a loop, reduction or matmul kernel), or the row of a
    kernel that slices one row along axis 0; two kernels with the same first part differ only in them.
    """
    if op.name != "fusion":
        return None
    block = op.regions[0].entry
    row = _row_slice(op)
    if row is not None:
        return ("row", row.operands[0].type, row.result.type), [row.begin[0]]
    if op.kind not in LIFTED_KINDS:
        return None
    number: dict[Value, int] = {argument: index for index, argument in enumerate(block.args)}
    items: list[Any] = [op.kind, _frozen(op.attributes), tuple(v.type for v in (*op.operands, *op.results))]
    numbers: list[Any] = []
    for inner in block.ops:
        if inner.regions or any(value not in number for value in inner.operands):
            return None
        if _is_scalar_constant(inner):
            items.append(("constant", inner.result.type))
            numbers.append(inner.value.tobytes())
        else:
            items.append((inner.name, _frozen(inner.attributes), tuple(number[v] for v in inner.operands),
                          tuple(r.type for r in inner.results)))
        for result in inner.results:
            number[result] = len(number)
    return tuple(items), numbers


def _is_scalar_constant(op: Operation) -> bool:
    return op.name == "constant" and op.value.size == 1


def _row_slice(op: Operation) -> Operation | None:
    """The slice of a single kernel that reads one whole row of its operand along axis 0 (x[t] or
    x[t:t+1] with 0 <= t), else None."""
    block = op.regions[0].entry
    inner = [o for o in block.ops if not o.is_terminator]
    if op.kind != "single" or len(inner) != 1 or inner[0].name != "slice":
        return None
    slice_op = inner[0]
    x = slice_op.operands[0]
    begin, end, strides = slice_op.begin, slice_op.end, slice_op.strides
    rows = x.type.shape[0] if x.type.rank else None
    if rows is None or not 0 <= begin[0] < rows or slice_op.squeeze_dims not in ((), (0,)):
        return None
    if slice_op.squeeze_dims == () and (end[0] != begin[0] + 1 or strides[0] != 1):
        return None
    whole = all(b == 0 and e in (None, d) and s == 1
                for b, e, s, d in zip(begin[1:], end[1:], strides[1:], x.type.shape[1:]))
    if not whole or x not in block.args or any(u.name == "return" for u, _ in op.results[0].uses):
        return None
    return slice_op


def _lift_scalars(op: Operation, positions: list[int]) -> None:
    """The scalar constants at `positions` (in region order) become operands of `op`."""
    block = op.regions[0].entry
    constants = [inner for inner in block.ops if _is_scalar_constant(inner)]
    outside = Builder.before(op)
    for position in positions:
        constant = constants[position]
        lifted = outside.create("constant", (), {"value": constant.value},
                                result_names=[constant.result.name]).result
        constant.result.replace_all_uses_with(_add_operand(op, lifted))
        constant.erase()


def _lift_row(op: Operation) -> None:
    """The row slice of `op` becomes read_row of its row, a lifted constant (and a view, unsqueezed)."""
    block = op.regions[0].entry
    slice_op = _row_slice(op)
    assert slice_op is not None
    outside = Builder.before(op)
    row_number = np.asarray(slice_op.begin[0], int64.np)
    index = outside.create("constant", (), {"value": row_number}, result_names=["row"]).result
    argument = _add_operand(op, index)
    row = Builder.before(slice_op).create("read_row", (slice_op.operands[0], argument)).result
    result = op.results[0]
    if slice_op.squeeze_dims == (0,):
        slice_op.result.replace_all_uses_with(row)
        slice_op.erase()
        return
    # x[t:t+1]: the kernel yields the row, an expand_dims (a view, no code) gives it back its dim.
    uses = list(result.uses)
    block.terminator.set_operand(0, row)
    slice_op.erase()
    result.type = row.type
    expanded = Builder(op.parent, op.parent.ops.index(op) + 1, op.loc).create(
        "expand_dims", (result,), {"axis": 0}, result_names=[result.name]).result
    for user, position in uses:
        user.set_operand(position, expanded)


def _add_operand(op: Operation, value: Value) -> Value:
    """`value` as a new last operand of fusion op `op`, and the region's new last argument for it."""
    op._append_operand(value)
    return op.regions[0].entry.add_arg(value.type, value.name)


def _frozen(attributes: dict[str, Any]) -> tuple:
    return tuple((name, value.tobytes() if isinstance(value, np.ndarray) else value)
                 for name, value in sorted(attributes.items()))

