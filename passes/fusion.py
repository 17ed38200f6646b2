"""Fuse: group the ops of each function into kernels, `fusion` ops with a region.

After the pass, the top-level block of a function (and of every cond and
while region) holds only constants, views (reshape, expand_dims, squeeze:
free renamings of a contiguous buffer), `fusion` ops and the terminator. Every
other op sits in exactly one kernel, whose kind and contents follow Note
[kernel contract] in ir/ops/fusion.py; each backend turns a kernel into one
loop nest. Fusion never changes what is computed: a kernel evaluates its ops
in their original order, on the same values.

What fuses with what, and why:

- Loop fusion. Elementwise ops and broadcast_to of one result shape S form
  one loop kernel: a chain like tanh(x*a+b)*sigmoid(x)+relu(x-0.5) reads x
  once and writes once, instead of once per op.
- Input fusion. A reduction takes its elementwise producers of its operand's
  shape F into its kernel, so they are computed while the reduction reads
  them and never stored.
- Reduction epilogues. Elementwise consumers of a reduction at the reduced
  shape (the divide of a mean, the log of a sum) join its kernel: one value
  per row. When the reduction runs over the trailing axes with keepdims,
  consumers at the full shape F join too (they read one value per row,
  broadcast along the row), and so do later reductions over the same axes:
  softmax (max, x - max, exp, sum, divide) and layer norm (mean, x - mean,
  square, mean, + eps, rsqrt, *, * gamma, + beta) are one kernel each, which
  the backend runs as a few passes over each row. Over other axes (the
  column sums of a gradient) the reduced values are not ready until the whole
  input is read, so only producers and reduced-shape consumers fuse.
- Matmul epilogues. A matmul is its own kernel (its operands are never
  fused into it: a tiled matmul rereads them many times); elementwise
  consumers of its result shape (bias add, relu) are applied as each tile of
  the result is written.
- Multi-output fusion. A value computed in a kernel and also used elsewhere
  is yielded as an extra result, never recomputed. Two kernels that read the
  same value and depend on each other in no way merge when the union is a
  valid kernel (sibling fusion: the value is read once).
- Everything else (transpose, concat, slice, gather, one_hot, random_*,
  call) is a "single" kernel of one op.
- `cond` and `while` stay in the block, beside the kernels, with their
  regions' ops fused inside: a backend emits them as branches and loops
  around their regions' kernels (the CPU's codegen/llvm/control.py).

Note [no expensive recompute]
Inside a kernel every op is computed once per element of its own result:
an op of a smaller shape than its consumer (exp of a [10] vector added to an
[N,10] matrix) is never fused into that consumer, where it would be
recomputed N times; it becomes its own kernel and its result an operand.
The contract says so by shape (a loop kernel's ops all have shape S), so the
grouping below never needs a cost model. The one exception is bounded: a
full-shape producer in a trailing-axes reduction kernel with several
reductions (softmax) may be read by each pass over the row, so the backend
recomputes it at most once per pass (or keeps the row in a scratch buffer).

Grouping is greedy over a DAG of groups (one per op at first): first each op
tries to merge the groups of its producers into its own (fusion anchors,
matmul and reduction kernels, first; then the latest producer first, so a
chain p1 -> p2 -> op merges p2 before p1), then siblings merge; both repeat
until nothing merges. A merge must give a valid kernel (the contract, plus:
every op of a matmul kernel besides the matmul depends on it) and must keep
the group DAG acyclic: groups A and B may merge only if no path from one to
the other runs through a third group (Note [acyclic merges]).

Note [kernel size limit]
LLVM optimizes and emits a kernel in time that grows faster than its size:
a chain of 1,000 elementwise ops with its gradient, fused whole, was one
kernel that took 20 s to compile, and 128 column sums of an unrolled RNN's
bias gradient one of 14 s (bench/RESULTS.md, Compile time). So a merge that
would make a kernel bigger than `max_kernel_size` is refused, and the grown
kernel stops there: the next op starts a kernel of its own and the value
between the two is written to memory and read back. The size counts an op
as 1 and a reduction as REDUCTION_SIZE (a reduction emits a blocked,
compensated sum: many times the code of an add). The limit is large enough
that every kernel of an ordinary layer (softmax, layer norm, an optimizer's
update, a matmul's epilogue) stays whole; the fused IR shows where a long
chain was cut (tests/filecheck/fusion_size_limit.ir).

Reductions are also counted on their own: a kernel holds at most
MAX_KERNEL_REDUCTIONS of them, whatever its size. Each column sum costs LLVM
about 60 ms (a kernel of 10 column sums and their adds, the bias gradient of
an RNN unrolled over 128 steps, took 0.5 s alone). Cut at 3, the sums make
kernels that are alike, which are then one LLVM function (Note [kernels
emitted once] in codegen/llvm/dedup.py): the RNN's cold compile went from
2.4 to 1.9 s of CPU time, its step time the same. The kernels of
bench_native.py and bench_train.py hold at most 3 (the softmax cross
entropy's), so they are as before (tests/filecheck/fusion_reduction_cap.ir
shows the cut).

Note [incremental contract]
Checking a candidate merge costs the edges between the two groups, not
their size: a chain of N elementwise ops into a reduction grows one kernel
op by op, and re-checking the whole union on each merge made fusion
quadratic in the graph's size. Each group is already a
valid kernel, so only what the union adds can break the contract: a loop
kernel has one iteration shape, so two loop groups merge exactly when their
shapes agree; for a reduction kernel a group keeps its reductions' (shape,
axes) and its elementwise ops' shapes (a Summary, merged by set union), and
the only reads to check are those from one group into the other. Matmul
kernels (a matmul and its short epilogue) keep the full check. A merge
moves the smaller group's ops into the larger group, and a group's ops are
put in block order once, when planning ends.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from flowc.ir import Block, Module, Operation, OpResult, Region, Value
from flowc.ir.ops.fusion import (DimTies, Fusion, SymbolicShape, is_pointwise, is_trailing, kernel_problem,
                                 reduced_shapes)
from flowc.ir.ops.kernel_space import PRODUCTS
from flowc.ir.ops.structure import Constant, Yield

from .manager import Pass

MAX_KERNEL_SIZE = 96  # Note [kernel size limit]: what one kernel may hold, counted by kernel_size
REDUCTION_SIZE = 8  # what one reduction counts for (its emitted code against an elementwise op's)
MAX_KERNEL_REDUCTIONS = 3  # Note [kernel size limit]: reductions one kernel may hold, whatever its size
FIXED = "fixed"  # constants, views, terminators and existing kernels: never merged
ANCHORS = ("matmul", "reduction")  # their kernels take producers and consumers first


class Fuse(Pass):
    """Group every computing op into `fusion` kernels (see the module docstring)."""

    name = "fuse"

    def __init__(self, max_kernel_size: int = MAX_KERNEL_SIZE):
        self.max_kernel_size = max_kernel_size  # Note [kernel size limit]

    def run(self, module: Module) -> bool:
        changed = False
        for function in module:
            changed |= fuse_block(function.entry, self.max_kernel_size)
        return changed

    def __repr__(self) -> str:
        return f"Fuse(max_kernel_size={self.max_kernel_size})"


def fuse_block(block: Block, max_kernel_size: int = MAX_KERNEL_SIZE) -> bool:
    """Fuse the ops of `block`, after those of the regions of its cond and while ops."""
    changed = False
    for op in block.ops:
        if op.name != "fusion":
            for region in op.regions:
                for inner in region.blocks:
                    changed |= fuse_block(inner, max_kernel_size)
    planner = Planner(block, max_kernel_size)
    if not planner.groups():
        return changed
    planner.plan()
    emit(block, planner.order)
    return True


# -- the group DAG -------------------------------------------------------------------------------


@dataclass
class Summary:
    """What the contract of a reduction kernel needs of a loop or reduction group (Note [incremental contract])."""

    keys: set[tuple[SymbolicShape, tuple[int, ...]]]  # its reductions' operand shape and axes
    shapes: set[SymbolicShape]  # its elementwise ops' result shapes


@dataclass(eq=False)
class Group:
    """Ops that become one kernel (or one fixed top-level op); in block order once planned."""

    ops: list[Operation]
    kind: str
    position: int = 0  # increases along the planner's order, a topological order of the groups
    outputs: list[Value] = field(default_factory=list)
    # The groups that read its results and those whose results it reads, kept up to date by merges.
    successors: set[Group] = field(default_factory=set)
    predecessors: set[Group] = field(default_factory=set)
    summary: Summary | None = None  # made on first use, then merged (Note [incremental contract])
    size: int = 0  # kernel_size of its ops (Note [kernel size limit])
    reductions: int = 0  # how many of its ops are reductions (Note [kernel size limit])


def kernel_size(op: Operation) -> int:
    """What `op` counts for against a kernel's size limit (Note [kernel size limit])."""
    return REDUCTION_SIZE if op.is_reduction else 1


def initial_kind(op: Operation) -> str:
    if op.name == "constant" or op.is_view or op.name in ("fusion", "cond", "while") or op.is_terminator:
        return FIXED
    if op.name in PRODUCTS:
        return "matmul"
    if op.is_reduction:
        return "reduction"
    return "loop" if is_pointwise(op) else "single"


class Planner:
    """Decides the groups of one block and keeps them in a topological order.

    Note [acyclic merges]
    Merging groups A and B (A before B in the order) creates a cycle exactly
    when a path from A to B runs through a third group C: C would both feed
    and depend on the merged group. The search follows successors of A
    (except B) among groups before B; any group it reaches that feeds B
    forbids the merge. Otherwise the groups it reached (descendants of A that
    lie between A and B) move to just after the merged group, which takes
    B's place, so the order stays topological. When A has more successors
    than groups lie between A and B (a kernel that many later ops read), the
    same descendants are found by one sweep over those groups instead.
    """

    def __init__(self, block: Block, max_kernel_size: int = MAX_KERNEL_SIZE):
        self.index = {op: i for i, op in enumerate(block.ops)}
        self.ties = DimTies(block.ops)  # which unknown dims are one size (Note [unknown dims in a kernel])
        self.max_kernel_size = max_kernel_size
        self.order = [Group([op], initial_kind(op), size=kernel_size(op), reductions=int(op.is_reduction))
                      for op in block.ops if not op.is_terminator]
        self.group_of = {group.ops[0]: group for group in self.order}
        for position, group in enumerate(self.order):
            group.position = position
        for op, group in self.group_of.items():
            for producer in self.producers(op):
                producer.successors.add(group)
                group.predecessors.add(producer)

    def groups(self) -> list[Group]:
        return [g for g in self.order if g.kind != FIXED]

    # -- edges ----------------------------------------------------------------------------------

    def producers(self, op: Operation) -> set[Group]:
        found = {self.group_of[v.op] for v in op.operands if isinstance(v, OpResult) and v.op in self.group_of}
        found.discard(self.group_of[op])
        return found

    # -- the greedy plan ------------------------------------------------------------------------

    def plan(self) -> None:
        while self.fuse_producers() | self.fuse_siblings():
            pass
        for group in self.order:
            group.ops.sort(key=self.index.__getitem__)

    def fuse_producers(self) -> bool:
        """Each op, in block order, merges the groups of its producers into its own while it can."""
        changed = False
        for op in sorted(self.group_of, key=self.index.__getitem__):
            while self.group_of[op].kind != FIXED:
                candidates = sorted(self.producers(op), key=lambda g: (g.kind not in ANCHORS, -g.position))
                if not any(self.try_merge(g, self.group_of[op]) for g in candidates):
                    break
                changed = True
        return changed

    def fuse_siblings(self) -> bool:
        """Groups that read the same value and do not depend on each other merge (multi-output fusion)."""
        readers: dict[Value, list[Operation]] = {}
        for op in sorted(self.group_of, key=self.index.__getitem__):
            for value in op.operands:
                if not is_splat_constant(value):  # a splat is an immediate, not a read worth sharing
                    readers.setdefault(value, []).append(op)
        changed = False
        for ops in readers.values():
            kernels: list[Group] = []  # the readers' kernels so far, each a candidate for the next reader
            for op in ops:
                group = self.group_of[op]
                if group.kind not in ("loop", "reduction") or group in kernels:
                    continue
                for index, kernel in enumerate(kernels):
                    if self.try_merge(kernel, group, siblings=True):
                        kernels[index] = self.group_of[op]
                        changed = True
                        break
                else:
                    kernels.append(group)
        return changed

    def try_merge(self, a: Group, b: Group, siblings: bool = False) -> bool:
        """Merge a and b if the union is a valid kernel and the merge keeps the DAG acyclic."""
        if FIXED in (a.kind, b.kind) or "single" in (a.kind, b.kind):
            return False
        if a.size + b.size > self.max_kernel_size or a.reductions + b.reductions > MAX_KERNEL_REDUCTIONS:
            return False  # Note [kernel size limit]
        kind = merged_kind(a.kind, b.kind)
        if kind is None or not self.union_is_kernel(kind, a, b):
            return False
        first, second = (a, b) if a.position < b.position else (b, a)
        between = self.descendants_before(first, second, direct_ok=not siblings)
        if between is None:
            return False
        self.merge(first, second, kind, between)
        return True

    # -- the contract, checked incrementally (Note [incremental contract]) -------------------------

    def union_is_kernel(self, kind: str, a: Group, b: Group) -> bool:
        """Whether the union of two valid groups is a valid kernel of `kind`."""
        if kind == "loop":  # each loop group has one iteration shape
            return same_loop_shape(a, b, self.ties)
        if kind == "matmul":
            return valid_kernel(kind, sorted(a.ops + b.ops, key=self.index.__getitem__), self.ties)
        return self.reduction_union_ok(a, b)

    def reduction_union_ok(self, a: Group, b: Group) -> bool:
        """The reduction contract (ir/ops/fusion.py's _reduction_problem) of a union of loop and
        reduction groups: one (shape, axes) of reduction, every elementwise op at the full, kept or
        dropped shape, and a full-shape op reads a reduced value of the other group only where the
        reduction is over trailing axes with keepdims. Reads inside each group were checked before."""
        summary_a, summary_b = self.summary(a), self.summary(b)
        keys = summary_a.keys | summary_b.keys
        if len(keys) != 1:
            return not keys
        ((full, axes),) = keys
        kept, dropped = reduced_shapes(full, axes)
        if not summary_a.shapes | summary_b.shapes <= {full, kept, dropped}:
            return False
        trailing = is_trailing(axes, len(full))
        shape = self.ties.shape
        for reader, value in self.reads_between(a, b):
            if reader.is_reduction or shape(reader.results[0]) != full:
                continue
            read = shape(value)
            if read != full and not (trailing and read == kept):
                return False
        return True

    def reads_between(self, a: Group, b: Group) -> Iterator[tuple[Operation, Value]]:
        """(op, operand) where the op is in one group and the operand a result of the other,
        found from the smaller group's side."""
        small, big = (a, b) if len(a.ops) <= len(b.ops) else (b, a)
        group_of = self.group_of
        for op in small.ops:
            for value in op.operands:
                if isinstance(value, OpResult) and group_of.get(value.op) is big:
                    yield op, value
            for result in op.results:
                for user in result.users:
                    if group_of.get(user) is big:
                        yield user, result

    def summary(self, group: Group) -> Summary:
        if group.summary is None:
            summary = group.summary = Summary(set(), set())
            for op in group.ops:
                if op.is_reduction:
                    summary.keys.add((self.ties.shape(op.operands[0]), op.reduced_axes()))
                else:
                    summary.shapes.add(self.ties.shape(op.results[0]))
        return group.summary

    def descendants_before(self, first: Group, second: Group, direct_ok: bool) -> list[Group] | None:
        """Descendants of `first` placed before `second`; None if one of them feeds `second` (a cycle)."""
        if second in first.successors and not direct_ok:
            return None
        start, stop = self.span(first, second)
        if stop - start < len(first.successors):
            return self.descendants_in_span(first, second, start, stop)
        return self.descendants_by_search(first, second)

    def descendants_by_search(self, first: Group, second: Group) -> list[Group] | None:
        """descendants_before by a search from `first` along successors placed before `second`."""
        seen: set[Group] = set()
        stack = [g for g in first.successors if g.position < second.position and g is not second]
        while stack:
            group = stack.pop()
            if group in seen:
                continue
            seen.add(group)
            if second in group.successors:
                return None
            stack.extend(g for g in group.successors if g.position < second.position and g not in seen)
        return sorted(seen, key=lambda g: g.position)

    def descendants_in_span(self, first: Group, second: Group, start: int, stop: int) -> list[Group] | None:
        """descendants_before by a sweep over the groups between `first` and `second` in the order."""
        reached = {first}
        found = []
        for group in self.order[start + 1:stop - 1]:
            if not group.predecessors.isdisjoint(reached):
                reached.add(group)
                found.append(group)
        reached.discard(first)
        return None if not second.predecessors.isdisjoint(reached) else found

    def span(self, first: Group, second: Group) -> tuple[int, int]:
        """The slice of the order from `first` to `second`, both included."""
        start = bisect.bisect_left(self.order, first.position, key=lambda g: g.position)
        stop = bisect.bisect_left(self.order, second.position, key=lambda g: g.position) + 1
        return start, stop

    def merge(self, first: Group, second: Group, kind: str, between: list[Group]) -> None:
        """Replace the span from `first` to `second` of the order: the groups in it that do not
        descend from `first`, then the merged group, then those that do (`between`). The merged
        group is the larger of the two, which takes the other's ops: each op moves O(log N) times."""
        merged, absorbed = (first, second) if len(first.ops) >= len(second.ops) else (second, first)
        group_of = self.group_of
        if kind == "matmul":
            merged.summary = None  # only loop and reduction groups have one
        else:
            summary, other = self.summary(merged), self.summary(absorbed)
            merged.summary = Summary(summary.keys | other.keys, summary.shapes | other.shapes)
        merged.ops.extend(absorbed.ops)
        merged.size += absorbed.size
        merged.reductions += absorbed.reductions
        for op in absorbed.ops:
            group_of[op] = merged
        merged.kind = kind
        self.move_edges(absorbed, merged)
        start, stop = self.span(first, second)
        span = self.order[start:stop]
        moved = set(between)
        replacement = [g for g in span[1:-1] if g not in moved] + [merged] + between
        # Positions only need to increase along the order: the span reuses its own (one is left unused).
        for group, position in zip(replacement, [g.position for g in span[1:]]):
            group.position = position
        self.order[start:stop] = replacement


    @staticmethod
    def move_edges(absorbed: Group, merged: Group) -> None:
        """The edges of `absorbed` become `merged`'s; those between the two disappear."""
        for producer in absorbed.predecessors:
            producer.successors.discard(absorbed)
            if producer is not merged:
                producer.successors.add(merged)
                merged.predecessors.add(producer)
        for consumer in absorbed.successors:
            consumer.predecessors.discard(absorbed)
            if consumer is not merged:
                consumer.predecessors.add(merged)
                merged.successors.add(consumer)
        merged.predecessors.discard(absorbed)
        merged.successors.discard(absorbed)
        absorbed.predecessors, absorbed.successors = set(), set()


def merged_kind(a: str, b: str) -> str | None:
    """The kind of the union of two groups, None if no kernel holds both."""
    kinds = {a, b}
    if kinds == {"loop"}:
        return "loop"
    if "matmul" in kinds:
        return "matmul" if kinds <= {"matmul", "loop"} and kinds != {"matmul"} else None
    return "reduction"


def same_loop_shape(a: Group, b: Group, ties: DimTies) -> bool:
    """Two loop groups of one iteration shape: their union is a loop kernel, no need to check each op."""
    return ties.shape(a.ops[0].results[0]) == ties.shape(b.ops[0].results[0])


def valid_kernel(kind: str, ops: list[Operation], ties: DimTies) -> bool:
    """The contract, and for a matmul kernel: every other op is its epilogue (depends on it)."""
    if kernel_problem(kind, ops, ties=ties) is not None:
        return False
    if kind != "matmul":
        return True
    depends: set[Value] = set()
    for op in ops:
        if op.name in PRODUCTS or any(v in depends for v in op.operands):
            depends.update(op.results)
        else:
            return False
    return True


# -- building the kernels --------------------------------------------------------------------


def emit(block: Block, order: list[Group]) -> None:
    """Rebuild `block` in the planned order, each group of ops as a fusion op."""
    terminator = block.ops[-1]
    for group in order:
        if group.kind != FIXED:
            group.outputs = kernel_outputs(group)
    cloned: set[Operation] = set()
    ops: list[Operation] = []
    for group in order:
        ops.append(group.ops[0] if group.kind == FIXED else build_kernel(group, cloned))
    block.ops = []
    for op in [*ops, terminator]:
        block.append(op)
    for constant in cloned:
        if not constant.result.uses:  # every reader took a copy into its kernel
            constant.erase()


def kernel_outputs(group: Group) -> list[Value]:
    """The values of the group used outside it, in order; a single kernel yields all its results.

    A group whose values nobody reads (dead code, when DCE has not run) yields its last op's
    results rather than nothing: a kernel always has a result.
    """
    if group.kind == "single":
        return list(group.ops[0].results)
    members = set(group.ops)
    used = [r for op in group.ops for r in op.results if any(user not in members for user in r.users)]
    return used or list(group.ops[-1].results)


def is_splat_constant(value: Value) -> bool:
    if not (isinstance(value, OpResult) and value.op.name == "constant"):
        return False
    array = np.ascontiguousarray(value.op.value).reshape(-1)
    if array.size == 0:
        return False
    bits = array.view(np.dtype(f"u{array.dtype.itemsize}"))
    return bool(np.all(bits == bits[0]))


def build_kernel(group: Group, cloned: set[Operation]) -> Fusion:
    """Move the group's ops into the region of a new fusion op; outside users read its results."""
    members = set(group.ops)
    inputs: dict[Value, None] = {}
    splats: dict[Value, None] = {}
    for op in group.ops:
        for value in op.operands:
            if isinstance(value, OpResult) and value.op in members:
                continue
            # A splat read elementwise is an immediate for codegen; anything else is an operand.
            (splats if is_pointwise(op) and is_splat_constant(value) else inputs)[value] = None
    body = Block([v.type for v in inputs], [v.name for v in inputs])
    arguments = dict(zip(inputs, body.args))
    copies = {}
    for value in splats:
        copies[value] = body.append(Constant([], {"value": value.op.value}, result_names=[value.name])).result
        cloned.add(value.op)
    for op in group.ops:
        for index, value in enumerate(op.operands):
            if is_pointwise(op) and value in copies:
                op.set_operand(index, copies[value])
            elif value in arguments:
                op.set_operand(index, arguments[value])
        body.append(op)
    body.append(Yield(group.outputs))
    kernel = Fusion(list(inputs), {"kind": group.kind}, regions=[Region([body])], loc=group.ops[-1].loc,
                    result_names=[v.name for v in group.outputs])
    inside = members | {body.ops[-1]}
    for old, new in zip(group.outputs, kernel.results):
        for user, index in list(old.uses):
            if user not in inside:
                user.set_operand(index, new)
    return kernel
