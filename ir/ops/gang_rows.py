"""Which values of a while loop a gang's members own by rows, and which each computes for itself.

Note [a gang that owns rows]
In a recurrent network's loop every kernel works row by row along one dim, the batch: row r of
h_{t+1} needs row r of h_t and of x_t, and whole weights that the loop never changes. A gang whose
members each own the same rows of every such value (member m rows [r0, r1) of the batch) never
reads what another member wrote, so its turns need no barrier at all; the scalars (the step count,
the flag, a stack of them) are small, and every member computes them for itself, in stack slots of
its own. The members then run their turns apart, each at its own pace, and meet once after the
loop (flowc_run_gang returns when all are done). A loop is so when, over its regions:

  - every value is invariant (state the body yields unchanged: weights, the input sequence),
    private (of a static shape of at most PRIVATE_BYTES, computed from private and invariant values
    only, with its state's every turn), or owned by rows;
  - the rows are followed through the ops (a union-find over (value, axis), as DimTies does for
    sizes, but for static dims too): pointwise ops keep their axes (not a broadcast one), a matrix
    product its first operand's rows (its second must not depend on rows: a weight), a row read or
    write (gather or read_row of one scalar index along axis 0, write_row, scatter_add of one row)
    moves the row axis by one, a reduction keeps it where it is not reduced over; rows start at a
    product's result, a row read's result and a written row (axis 0 of each); every value that
    depends on rows has exactly one axis of rows, and no op sums or mixes rows (a reduction over
    them, a product contracting them, a row index that depends on rows, a broadcast along them).
    Rows that no op ties to the products' (an input row read only to be written into a stack) are
    a group of their own, shared out by their own size;
  - each kernel that writes owned rows can run on a range of them: a loop kernel whose results own
    rows along one axis (its work is row-major: a run of them per index of the axes before), a BLAS
    product whose results own rows along axis 0, a row read whose result does,
    a write_row or scatter_add whose row does (written in place, or after a copy of its base, which
    goes by rows too).

A loop that sums over the batch (an RNN's gradient adds dW += h^T @ dpre every turn) is not so, and
keeps the barriers of Note [loops run by a gang], unless LICM moves the sums after it (Note
[accumulated products after the loop] in passes/loop_products.py asks rows_kept_apart here first).
The memory plan gives the values of such a loop bytes of their own for the whole loop (one member
may be a turn ahead of another); codegen/llvm/gang_rows.py emits the members' code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core import BlockArgument, Operation, Value
from .fusion import is_pointwise
from .kernel_space import ROW_READS, one_row_index, row_read

PRIVATE_BYTES = 4096  # the most bytes of a value that every member computes for itself
ROW_WRITES = ("write_row", "scatter_add")  # base, one scalar index, a row: the row into (added to) base's row


@dataclass
class RowPlan:
    """Note [a gang that owns rows]: each value of a while loop's regions (their top level and their
    kernels' regions) that depends on rows, with its row axis; the private and invariant values."""

    axis: dict[Value, int]
    private: set[Value]
    invariant: set[Value]
    # each value's group of rows, as a top-level value and axis of its size: values that no op ties
    # (a row read only written into a stack) may hold rows of another size, shared out on their own
    rows: dict[Value, tuple[Value, int]]

    def owned(self, value: Value) -> bool:
        return value in self.axis


def row_plan(loop: Operation) -> RowPlan | None:
    """The rows plan of while loop `loop` (module docstring), or None where its kernels share rows."""
    condition, body = (region.entry for region in loop.regions)
    kernels = [op for block in (condition, body) for op in block.ops if not op.is_terminator]
    if any(op.name not in ("fusion", "constant") for op in kernels):
        return None
    plan = _plan(loop, kernels, set())
    if plan is None or not all(_runs_on_rows(op, plan) for op in kernels if op.name == "fusion"):
        return None
    return plan


def rows_kept_apart(loop: Operation, leaving: set[Operation]) -> bool:
    """Before fusion: whether the ops of `loop` but `leaving` (sums about to move after it, Note
    [accumulated products after the loop] in passes/loop_products.py) read each row at its own row
    only, the state those sums yield then unchanged."""
    condition, body = (region.entry for region in loop.regions)
    ops = [op for block in (condition, body) for op in block.ops if not op.is_terminator and op not in leaving]
    return _plan(loop, ops, leaving) is not None


def _plan(loop: Operation, ops: list[Operation], leaving: set[Operation]) -> RowPlan | None:
    """The rows plan over `ops`, the loop's ops but `leaving`, whose state becomes invariant."""
    condition, body = (region.entry for region in loop.regions)
    yielded = body.terminator.operands
    unchanged = [i for i, v in enumerate(yielded) if getattr(v, "op", None) in leaving]
    invariant = _invariant(loop) | {op.result for op in ops if op.name == "constant"} | \
        {block.args[i] for block in (condition, body) for i in unchanged}
    private = _private(loop, invariant)
    depends = _depends_on_rows(ops, invariant | private)
    ties = _RowTies()
    for op in ops:
        if op.name == "fusion":
            ties.add_kernel(op)
        elif op.name != "constant":
            ties.add(op)
    for i, arg in enumerate(body.args):
        if arg not in invariant | private:
            ties.tie_all(arg, yielded[i])
            ties.tie_all(arg, condition.args[i])
    if ties.failed or not any(o.name == "matmul" and o.result in depends for op in ops for o in _inner(op)):
        return None  # no product of rows to share out (a loop small enough is all private)
    starts = {ties.find(node) for op in ops for node in _row_starts(op, depends)}
    axis: dict[Value, int] = {}
    group: dict[Value, tuple[Value, int]] = {}
    for value in depends:
        axes = [a for a in range(value.type.rank) if ties.find((value, a)) in starts]
        if len(axes) != 1:
            return None
        axis[value] = axes[0]
        group[value] = ties.find((value, axes[0]))
    sizes = {}  # each group of rows: a top-level value and axis of its size
    for op in ops:
        for value in (*op.results, *op.operands):
            if value in group:
                sizes.setdefault(group[value], (value, axis[value]))
    plan = RowPlan(axis, private, invariant, {value: sizes[g] for value, g in group.items()})
    return plan if all(_mixes_no_rows(o, plan) for op in ops for o in _inner(op)) else None


def _row_starts(kernel: Operation, depends: dict[Value, None]) -> list[tuple[Value, int]]:
    """Where a kernel's ops put rows along an axis of their own: a product's rows, a row read's
    result rows, a written row's rows (all along axis 0)."""
    starts = []
    for op in _inner(kernel):
        if op.name == "matmul" or op.name in ROW_READS and op.result in depends:
            starts.append((op.result, 0))
        elif op.name in ROW_WRITES and op.operands[2] in depends and op.operands[2].type.rank > 0:
            starts.append((op.operands[2], 0))
    return starts


def _invariant(loop: Operation) -> set[Value]:
    """The state a body yields unchanged, as the arguments of both regions."""
    condition, body = (region.entry for region in loop.regions)
    same = [i for i, arg in enumerate(body.args) if body.terminator.operands[i] is arg]
    return {body.args[i] for i in same} | {condition.args[i] for i in same}


def _small(value: Value) -> bool:
    value_type = value.type
    return value_type.is_static and math.prod(value_type.shape) * value_type.dtype.itemsize <= PRIVATE_BYTES


def _private(loop: Operation, invariant: set[Value]) -> set[Value]:
    """The values every member computes for itself: small state whose every turn is so, and small
    results of kernels that read only such values, invariants and constants (a fixed point: state
    starts private and leaves as soon as one turn's value depends on something else)."""
    condition, body = (region.entry for region in loop.regions)
    candidates = {i for i, arg in enumerate(body.args) if arg not in invariant and _small(arg)}
    while True:
        private = {body.args[i] for i in candidates} | {condition.args[i] for i in candidates}
        for block in (condition, body):
            for op in block.ops:
                if op.is_terminator:
                    continue
                if all(_small(r) for r in op.results) and all(v in private or v in invariant for v in op.operands):
                    private.update(op.results)
        kept = {i for i in candidates if body.terminator.operands[i] in private}
        if kept == candidates:
            return private
        candidates = kept


def _depends_on_rows(ops: list[Operation], uniform: set[Value]) -> dict[Value, None]:
    """The values that hold rows, in the order of the ops (codegen emits by it): every value of the
    loop's ops (and their regions' arguments) but the private and invariant ones, and inside kernels
    every value computed from one of those."""
    depends: dict[Value, None] = {}
    for block in {op.parent: None for op in ops}:
        depends.update(dict.fromkeys(arg for arg in block.args if arg not in uniform))
    for op in ops:
        depends.update(dict.fromkeys(r for r in op.results if r not in uniform))
        if op.name == "fusion":
            inner = op.regions[0].entry
            depends.update(dict.fromkeys(arg for arg, operand in zip(inner.args, op.operands) if operand in depends))
            for o in inner.ops:
                if not o.is_terminator and any(v in depends for v in o.operands):
                    depends.update(dict.fromkeys(o.results))
    return depends


class _RowTies:
    """Union-find over (value, axis): the axes that the ops of Note [a gang that owns rows] keep in
    step, whatever their sizes. `failed` where a kernel holds an op the rows cannot follow."""

    def __init__(self) -> None:
        self.parent: dict[tuple[Value, int], tuple[Value, int]] = {}
        self.failed = False

    def find(self, node: tuple[Value, int]) -> tuple[Value, int]:
        parent = self.parent.setdefault(node, node)
        while parent != node:
            grand = self.parent.setdefault(parent, parent)
            self.parent[node] = grand
            node, parent = parent, grand
        return node

    def tie(self, a: tuple[Value, int], b: tuple[Value, int]) -> None:
        root, other = self.find(a), self.find(b)
        if root != other:
            self.parent[root] = other

    def tie_all(self, a: Value, b: Value) -> None:
        for axis in range(a.type.rank):
            self.tie((a, axis), (b, axis))

    def add_kernel(self, kernel: Operation) -> None:
        block = kernel.regions[0].entry
        for arg, operand in zip(block.args, kernel.operands):
            self.tie_all(arg, operand)
        for value, result in zip(block.terminator.operands, kernel.results):
            self.tie_all(value, result)
        for op in block.ops:
            if not op.is_terminator and op.name != "constant":
                self.add(op)

    def add(self, op: Operation) -> None:
        if len(op.results) != 1 or op.regions:  # a print, a nested loop: rows the ties do not follow
            self.failed = True
            return
        result = op.results[0]
        if is_pointwise(op):
            for operand in op.operands:
                offset = result.type.rank - operand.type.rank
                for axis in range(operand.type.rank):
                    if not (operand.type.shape[axis] == 1 and result.type.shape[axis + offset] != 1):
                        self.tie((operand, axis), (result, axis + offset))
        elif op.name == "matmul" and result.type.rank == 2 and not op.transpose_a:
            self.tie((op.operands[0], 0), (result, 0))
        elif op.name in ROW_READS and one_row_index(op):
            params = op.operands[0]
            for axis in range(1, params.type.rank):
                self.tie((params, axis), (result, axis - 1))
        elif op.name == "write_row" or op.name == "scatter_add" and one_row_index(op):
            buffer, _, row = op.operands
            self.tie_all(buffer, result)
            for axis in range(row.type.rank):
                self.tie((row, axis), (buffer, axis + 1))
        elif op.is_reduction:
            operand, axes = op.operands[0], op.reduced_axes()
            kept = [a for a in range(operand.type.rank) if a not in axes]
            for i, a in enumerate(kept):
                self.tie((operand, a), (result, a if op.keepdims else i))
        else:
            self.failed = True


def _inner(kernel: Operation) -> list[Operation]:
    """A kernel's ops; a plain op (before fusion) is its own."""
    if kernel.name == "constant":
        return []
    if kernel.name != "fusion":
        return [kernel]
    return [op for op in kernel.regions[0].entry.ops if not op.is_terminator]


def _mixes_no_rows(op: Operation, plan: RowPlan) -> bool:
    """Whether an op inside a kernel reads every row it needs at that row only (module docstring)."""
    if not any(plan.owned(v) for v in op.operands):
        return True
    if op.name == "matmul":
        a, b = op.operands
        return plan.axis.get(a) == 0 and not plan.owned(b)
    if op.name in ROW_READS or op.name in ROW_WRITES:
        return not plan.owned(op.operands[1])
    if op.is_reduction:
        operand = op.operands[0]
        return operand not in plan.axis or plan.axis[operand] not in op.reduced_axes()
    if is_pointwise(op):  # an owned [1, N] broadcast to [R, N]: every member would read row 0
        result = op.results[0]
        return not any(v in plan.axis and _broadcast(v, plan.axis[v], result) for v in op.operands)
    return True


def _broadcast(operand: Value, axis: int, result: Value) -> bool:
    """Whether a pointwise op broadcasts `operand` along its `axis` (a 1 under a longer dim)."""
    full = result.type.shape[axis + result.type.rank - operand.type.rank]
    return operand.type.shape[axis] == 1 and full != 1


def _runs_on_rows(kernel: Operation, plan: RowPlan) -> bool:
    """Whether codegen can run kernel `kernel` on a member's rows (module docstring), or it is private."""
    if all(r in plan.private for r in kernel.results):
        return True
    kind = kernel.attributes.get("kind")
    axes = {plan.axis.get(r) for r in kernel.results}
    if kind == "loop":  # its work is its results' elements, row-major: a run of rows per outer index
        return len(axes) == 1 and None not in axes
    if kind == "matmul":
        return axes == {0} and kernel.attributes.get("schedule") == "blas" and \
            sum(op.name == "matmul" for op in _inner(kernel)) == 1
    if kind == "single" and row_read(kernel) is not None:
        return axes == {0}
    body = [op for op in _inner(kernel) if op.name != "constant"]
    if kind != "single" or len(body) != 1 or kernel.regions[0].entry.terminator.operands != [body[0].result]:
        return False
    write = body[0]
    return write.name in ROW_WRITES and one_row_index(write) and plan.axis.get(write.operands[2]) == 0 and \
        all(isinstance(v, BlockArgument) for v in write.operands)
