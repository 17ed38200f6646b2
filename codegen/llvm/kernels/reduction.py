"""Reduction kernels: reductions with their producers and consumers in one loop nest.

The fusion pass guarantees (passes/fusion.py): every reduction of a kernel
reduces the same axes of inputs of one full shape F; each region value is
either at F ("full": computed inside the loops over the reduced axes, e.g.
exp(x - max)) or at the reduced shape ("outer": computed once per output
element, e.g. the max itself, or 1 / sum). The kernel's work is the range of
output elements (outer index); for each, the reductions run one after the
other, each re-walking the reduced axes and recomputing the cheap full-level
values it needs (as XLA's row reductions do), then full-level results are
written in a last walk. So softmax is one kernel reading x three times from
cache and writing once.

Note [summation order]: a sum (and a max or min) is accumulated in L
independent partial results, the schedule's `partial_sums` (16 on every host,
passes/schedule.py's PARTIAL_SUMS): the k-th reduced point goes to lane k mod
L, and the lanes are combined pairwise at the end. It is a fixed order, so
results are deterministic and IEEE (no reassociation flags), and the lanes
become vector registers: a serial float sum cannot be vectorized without
reassociating. Sums differ from numpy's pairwise sums in the last bits, and
are about as accurate (Note [blocked sums]). A row known to be shorter than
2 * 16 is summed serially (`partial_sums = 1`), in index order, unless it is
the trailing axes of every argument that reads it: then each row is one
vector (Note [vector rows] in vector_rows.py), combined pairwise like the
lanes here.

Note [blocked sums]: a float partial sum that ran over the whole axis would
grow its error with n: sixteen lanes of float32 ones stop growing at 2**24
each, so the sum of 10**12 ones came out as 2.7e8. So a partial sum (a lane
here, a column of a tile in column_reduction.py) takes at most BLOCK_TERMS
terms, then is added into its lane's total with the exact rounding error of
that addition kept in a compensation (Knuth's two-sum, no branch), and starts
again from 0. The error is then that of BLOCK_TERMS serial terms plus about
one rounding, at any n (numpy's pairwise sum: O(log n) roundings). A block
costs a few vector ops per lane, against BLOCK_TERMS additions. Integer sums
are exact (modulo 2**bits) and max and min do not round: they are not blocked.
"""

from __future__ import annotations

import math

from llvmlite import ir as ll

from flowc.ir import BlockArgument, Operation, Value
from flowc.ir.ops.kernel_space import reduction_space, value_levels
from flowc.ir.ops.reduction import ArgReduction
from flowc.ir.types import DType

from ..body import Body
from ..elementwise import emit_min_max, float_flags, intrinsic
from ..kernel import DimTable, Kernel, decompose, dot, emit_dim, for_range, min_of, product
from ..launch import GRAIN, kernel_kind
from ..program import schedule_of
from ..types import I8, I64, compare_ints, compute_type, constant_of, load_value, rounded, store_value

# The reductions these kernels have a rule for (_initial, _combine, _arg_better): the emitter table that
# codegen/llvm/support.py reads. Which ops *are* reductions is their `is_reduction`, not this.
EMITTED_REDUCTIONS = frozenset({"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_any",
                                "reduce_all", "argmax", "argmin"})
# Reductions that combine with one instruction from an identity (the others are max and min).
IDENTITIES = {"reduce_sum": 0, "reduce_mean": 0, "reduce_prod": 1, "reduce_any": 0, "reduce_all": 1}
BLOCK_TERMS = 256  # the most terms one float partial sum takes (Note [blocked sums])
NO_INDEX = ll.Constant(I64, (1 << 63) - 1)  # an arg lane that has seen no point yet (Note [arg lanes])


def reduction_work(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, op: Operation) -> tuple[ll.Value, ll.Value]:
    space = reduction_space(op)
    outer = product(b, [emit_dim(b, dims, dims_pointer, space.full, a) for a in space.kept])
    inner = product(b, [emit_dim(b, dims, dims_pointer, space.full, a) for a in space.reduced])
    one = ll.Constant(I64, 1)
    grain = b.udiv(ll.Constant(I64, GRAIN), b.select(b.icmp_signed(">", inner, one), inner, one))
    return outer, b.select(b.icmp_signed(">", grain, one), grain, one)


@kernel_kind("reduction", reduction_work, schedules=("rows",))
def emit_reduction_kernel(kernel: Kernel) -> None:
    """The "rows" schedule; the others (row_blocks.py, vector_rows.py, column_reduction.py) build on
    ReductionEmitter, and the schedule pass (passes/schedule.py) says which one a kernel gets."""
    ReductionEmitter(kernel).emit()


class ReductionEmitter:
    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.b = kernel.b
        self.block = kernel.op.regions[0].entry
        self.space = reduction_space(kernel.op)
        self.sizes = [kernel.dim(self.space.full, a) for a in range(self.space.full.type.rank)]
        self.args = list(self.block.args)
        self.pointers = [kernel.operand_pointer(i, a.type.dtype) for i, a in enumerate(self.args)]
        self.level = value_levels(kernel.op, kernel.dims.ties.shape)
        # The "rows" schedule's parameters (passes/schedule.py); the other schedules have none of them.
        schedule = schedule_of(kernel.op)
        self.lanes = int(schedule.get("partial_sums", 1))  # type: ignore[call-overload]
        reductions = [op for op in self.block.ops if op.is_reduction]
        kept = schedule.get("kept_row")
        self.kept_row = None if kept is None else reductions[int(kept)].operands[0]  # type: ignore[call-overload]
        self.row_buffer: ll.Value | None = None
        self.short_rows: dict[str, ll.Value] = {}  # compute type -> the row buffer of short reductions

    # -- emission ----------------------------------------------------------------------

    def emit(self) -> None:
        b, kernel = self.b, self.kernel
        yields = self.block.terminator.operands
        if self.kept_row is not None:
            count = math.prod(self.space.full.type.shape[a] for a in self.space.reduced)
            self.row_buffer = kernel.alloca(ll.ArrayType(compute_type(self.kept_row.type.dtype), count), "row")
        with for_range(b, kernel.begin, kernel.end, "o") as outer:
            kept = decompose(b, outer, [self.sizes[a] for a in self.space.kept]) if self.space.kept else []
            coordinates: dict[int, ll.Value] = dict(zip(self.space.kept, kept))
            values = OuterValues(self, coordinates)
            for op in self.block.ops:  # in order: each outer value once its reductions are done
                if op.is_reduction:
                    total = self._reduce(op, coordinates, values.env)
                    values.set(op.result, rounded(b, total, op.result.type.dtype))  # float16: rounded once
                elif not op.is_terminator and self.level.get(op.results[0]) == "outer":
                    values.value(op.results[0])
            for index, value in enumerate(yields):
                if self.level.get(value) != "full":
                    pointer = kernel.result_pointer(index, value.type.dtype)
                    store_value(b, values.value(value), b.gep(pointer, [outer]), value.type.dtype)
            full_yields = [(i, v) for i, v in enumerate(yields) if self.level.get(v) == "full"]
            if full_yields:
                self._write_full(full_yields, coordinates, values.env)

    def _walk_reduced(self, coordinates: dict[int, ll.Value], visit) -> None:  # type: ignore[no-untyped-def]
        """Loops over the reduced axes (row-major), calling visit(body) at each point."""
        sizes = [self.sizes[a] for a in self.space.reduced]
        total = product(self.b, sizes)
        with for_range(self.b, ll.Constant(I64, 0), total, "r") as r:
            point = dict(coordinates)
            point.update(zip(self.space.reduced, decompose(self.b, r, sizes)))
            visit(point, r)

    def _full_body(self, point: dict[int, ll.Value], env: dict[Value, ll.Value]) -> Body:
        # Outer values computed so far are reused; arguments are read again at this point of F.
        outer_values = {v: x for v, x in env.items() if self.level.get(v) == "outer"}
        return Body(self.b, lambda arg: self._load_full(arg, point), outer_values)

    def _reduce(self, op: Operation, coordinates: dict[int, ll.Value], env: dict[Value, ll.Value]) -> ll.Value:
        if isinstance(op, ArgReduction):
            return self._arg_reduce(op, coordinates, env)
        if self.lanes == 1:
            return self._reduce_short_row(op, coordinates, env)
        b = self.b
        dtype = op.operands[0].type.dtype
        value_type = accumulator_type(dtype)
        lanes = self.kernel.alloca(ll.ArrayType(value_type, self.lanes), name=f"{op.name}.lanes")
        initial = _initial(op.name, value_type, dtype)
        for lane in range(self.lanes):
            b.store(initial, self._lane(lanes, ll.Constant(I64, lane)))

        def visit(point: dict[int, ll.Value], lane: ll.Value, r: ll.Value) -> None:
            x = self._full_body(point, env).value(op.operands[0])
            if op.operands[0] is self.kept_row:
                b.store(x, self._row_slot(r))
            slot = self._lane(lanes, lane)
            b.store(_combine(b, op, widened(b, x, dtype), b.load(slot)), slot)

        terms = [self.space.full.type.shape[a] for a in self.space.reduced]
        if blocked(op, None if None in terms else math.prod(terms), self.lanes * BLOCK_TERMS):
            self._walk_in_blocks(op, lanes, coordinates, visit)
        else:
            self._walk_reduced_in_lanes(coordinates, visit)
        result = narrowed(b, self._combine_lanes(op, lanes), dtype)
        if op.name == "reduce_mean":
            count = product(b, [self.sizes[a] for a in self.space.reduced])
            result = b.fdiv(result, b.sitofp(count, value_type))
        return result

    def _reduce_short_row(self, op: Operation, coordinates: dict[int, ll.Value],
                          env: dict[Value, ll.Value]) -> ll.Value:
        """A row known to be short (`partial_sums = 1`, passes/schedule.py): its values are computed
        into a stack row in a loop with no dependence between iterations, which LLVM vectorizes (the
        exp of a softmax over 10 classes), then added up serially, in index order, from there."""
        b = self.b
        dtype = op.operands[0].type.dtype
        value_type = compute_type(dtype)
        count = math.prod(self.space.full.type.shape[a] for a in self.space.reduced)
        if op.operands[0] is self.kept_row:
            row = self.row_buffer  # Note [kept row] (passes/schedule.py): the write walk reads it back
        else:
            key = str(value_type)
            if key not in self.short_rows:
                self.short_rows[key] = self.kernel.alloca(ll.ArrayType(value_type, count), "short_row")
            row = self.short_rows[key]

        def fill(point: dict[int, ll.Value], r: ll.Value) -> None:
            x = self._full_body(point, env).value(op.operands[0])
            b.store(x, b.gep(row, [ll.Constant(I64, 0), r]))

        self._walk_reduced(coordinates, fill)
        total = self.kernel.alloca(value_type, name=f"{op.name}.total")
        b.store(_initial(op.name, value_type, dtype), total)
        with for_range(b, ll.Constant(I64, 0), ll.Constant(I64, count), "s") as r:
            x = b.load(b.gep(row, [ll.Constant(I64, 0), r]))
            b.store(_combine(b, op, x, b.load(total)), total)
        result = b.load(total)
        if op.name == "reduce_mean":
            result = b.fdiv(result, constant_of(value_type, float(count)))
        return result

    def _lane(self, lanes: ll.Value, lane: ll.Value) -> ll.Value:
        return self.b.gep(lanes, [ll.Constant(I64, 0), lane])

    def _row_slot(self, r: ll.Value) -> ll.Value:
        return self.b.gep(self.row_buffer, [ll.Constant(I64, 0), r])

    def _walk_in_blocks(self, op: Operation, lanes: ll.Value, coordinates: dict[int, ll.Value],
                        visit) -> None:  # type: ignore[no-untyped-def]
        """Note [blocked sums]: where the row turns out longer than a block per lane, each block's lanes
        go into compensated totals, which are put back in the lanes at the end. A shorter row (one
        block) passes the tests of `many` only: its lanes hold the sums, as unblocked."""
        b = self.b
        totals = CompensatedSums(self.kernel, compute_type(op.operands[0].type.dtype), self.lanes, op.name)
        count = product(b, [self.sizes[a] for a in self.space.reduced])
        many = b.icmp_signed(">", count, ll.Constant(I64, self.lanes * BLOCK_TERMS))
        with b.if_then(many):
            totals.clear()

        def end_block() -> None:
            with b.if_then(many):
                totals.add_in(lanes)

        self._walk_reduced_in_lanes(coordinates, visit, end_block)
        with b.if_then(many):
            totals.finish(lanes)

    def _walk_reduced_in_lanes(self, coordinates: dict[int, ll.Value], visit,  # type: ignore[no-untyped-def]
                               end_block=None) -> None:
        """The reduced points in groups of L lanes, point k going to lane k mod L (Note [summation order]).

        The inner loop over a group has no dependence between its iterations, so
        LLVM's loop vectorizer turns it into vector ops on the lanes; a last,
        shorter group takes the points left over. With `end_block`, the groups
        come in blocks of BLOCK_TERMS per lane, end_block() called after each
        and after the last group (Note [blocked sums]).
        """
        b = self.b
        sizes = [self.sizes[a] for a in self.space.reduced]
        if self.lanes == 1:
            self._walk_reduced(coordinates, lambda point, r: visit(point, ll.Constant(I64, 0), r))
            return
        total = product(b, sizes)
        width = ll.Constant(I64, self.lanes)
        groups = b.udiv(total, width)

        def visit_group(base: ll.Value, count: ll.Value) -> None:
            with for_range(b, ll.Constant(I64, 0), count, "lane") as lane:
                r = b.add(base, lane)
                point = dict(coordinates)
                point.update(zip(self.space.reduced, decompose(b, r, sizes)))
                visit(point, lane, r)

        def visit_groups(first: ll.Value, last: ll.Value) -> None:
            with for_range(b, first, last, "group") as group:
                visit_group(b.mul(group, width), width)

        if end_block is None:
            visit_groups(ll.Constant(I64, 0), groups)
        else:
            per_block = ll.Constant(I64, BLOCK_TERMS)
            blocks = b.udiv(b.add(groups, ll.Constant(I64, BLOCK_TERMS - 1)), per_block)
            with for_range(b, ll.Constant(I64, 0), blocks, "block") as block:
                first = b.mul(block, per_block)
                visit_groups(first, min_of(b, b.add(first, per_block), groups))
                end_block()
        main = b.mul(groups, width)
        visit_group(main, b.sub(total, main))
        if end_block is not None:
            end_block()

    def _combine_lanes(self, op: Operation, lanes: ll.Value) -> ll.Value:
        """Lane k with lane k + half, halving until one is left: a fixed pairwise order."""
        b = self.b
        values = [b.load(self._lane(lanes, ll.Constant(I64, lane))) for lane in range(self.lanes)]
        return combine_pairwise(b, op, values)

    def _arg_reduce(self, op: Operation, coordinates: dict[int, ll.Value], env: dict[Value, ll.Value]) -> ll.Value:
        """argmax/argmin in one serial walk: the first best index wins, as in numpy."""
        if self.lanes > 1:
            return self._arg_reduce_in_lanes(op, coordinates, env)
        b = self.b
        dtype = op.operands[0].type.dtype
        value_type = compute_type(dtype)
        best = self.kernel.alloca(value_type, name=f"{op.name}.best")
        b.store(_initial(op.name, value_type, dtype), best)
        where = self.kernel.alloca(I64, name="argbest")
        b.store(ll.Constant(I64, 0), where)

        def visit(point: dict[int, ll.Value], r: ll.Value) -> None:
            x = self._full_body(point, env).value(op.operands[0])
            acc = b.load(best)
            take = _arg_better(b, op.name, x, acc, dtype)
            b.store(b.select(take, x, acc), best)
            b.store(b.select(take, r, b.load(where)), where)

        self._walk_reduced(coordinates, visit)
        index = b.load(where)
        return index if op.result.type.dtype.itemsize == 8 else b.trunc(index, compute_type(op.result.type.dtype))

    def _arg_reduce_in_lanes(self, op: Operation, coordinates: dict[int, ll.Value],
                             env: dict[Value, ll.Value]) -> ll.Value:
        """Note [arg lanes]: each of the L lanes keeps the first best of its points (k mod L = lane), as
        the serial walk does, and the lanes are combined pairwise, a tie going to the lower index: the
        first best of the row, found by vector compares and selects (a serial argmax over rows of
        2000 took 70 times numpy's). A lane that saw no point holds no index yet (NO_INDEX) and
        loses every tie."""
        b = self.b
        dtype = op.operands[0].type.dtype
        value_type = compute_type(dtype)
        bests = self.kernel.alloca(ll.ArrayType(value_type, self.lanes), name=f"{op.name}.bests")
        wheres = self.kernel.alloca(ll.ArrayType(I64, self.lanes), name=f"{op.name}.wheres")
        for lane in range(self.lanes):
            b.store(_initial(op.name, value_type, dtype), self._lane(bests, ll.Constant(I64, lane)))
            b.store(NO_INDEX, self._lane(wheres, ll.Constant(I64, lane)))

        def visit(point: dict[int, ll.Value], lane: ll.Value, r: ll.Value) -> None:
            x = self._full_body(point, env).value(op.operands[0])
            best_slot, where_slot = self._lane(bests, lane), self._lane(wheres, lane)
            best, where = b.load(best_slot), b.load(where_slot)
            take = b.or_(_arg_better(b, op.name, x, best, dtype), b.icmp_signed("==", where, NO_INDEX))
            b.store(b.select(take, x, best), best_slot)
            b.store(b.select(take, r, where), where_slot)

        self._walk_reduced_in_lanes(coordinates, visit)
        pairs = [(b.load(self._lane(bests, ll.Constant(I64, lane))), b.load(self._lane(wheres, ll.Constant(I64, lane))))
                 for lane in range(self.lanes)]
        while len(pairs) > 1:  # lane k with lane k + half, as _combine_lanes
            half = len(pairs) // 2
            pairs = [self._better_pair(op, pairs[k], pairs[k + half]) for k in range(half)]
        index = pairs[0][1]
        return index if op.result.type.dtype.itemsize == 8 else b.trunc(index, compute_type(op.result.type.dtype))

    def _better_pair(self, op: Operation, first: tuple[ll.Value, ll.Value],
                     second: tuple[ll.Value, ll.Value]) -> tuple[ll.Value, ll.Value]:
        """The better of two (value, index) candidates: by value, else the lower index."""
        b = self.b
        dtype = op.operands[0].type.dtype
        (value, index), (other, other_index) = first, second
        second_worse = b.not_(_arg_better(b, op.name, other, value, dtype))
        keep = b.or_(_arg_better(b, op.name, value, other, dtype),
                     b.and_(second_worse, b.icmp_signed("<", index, other_index)))
        return b.select(keep, value, other), b.select(keep, index, other_index)

    def _write_full(self, full_yields: list[tuple[int, Value]], coordinates: dict[int, ll.Value],
                    env: dict[Value, ll.Value]) -> None:
        b = self.b
        strides = _contiguous_strides(b, self.sizes)

        def visit(point: dict[int, ll.Value], r: ll.Value) -> None:
            body = self._full_body(point, env)
            if self.kept_row is not None:
                body.env[self.kept_row] = b.load(self._row_slot(r))
            offset = dot(b, [point[a] for a in range(len(self.sizes))], strides)
            for index, value in full_yields:
                pointer = self.kernel.result_pointer(index, value.type.dtype)
                store_value(b, body.value(value), b.gep(pointer, [offset]), value.type.dtype)

        self._walk_reduced(coordinates, visit)

    # -- loads ---------------------------------------------------------------------------

    def _load_full(self, arg: BlockArgument, point: dict[int, ll.Value]) -> ll.Value:
        """arg read at a point of F: right-aligned against F, size-1 dims broadcast."""
        rank = self.space.full.type.rank
        return self._load(arg, {axis - (rank - arg.type.rank): c for axis, c in point.items()})

    def _load_outer(self, arg: BlockArgument, coordinates: dict[int, ll.Value], keepdims: bool) -> ll.Value:
        """arg read once per output element by an op of the keepdims shape or of the dropped one
        (Note [outer reads])."""
        rank = self.space.full.type.rank
        if arg.type.rank == rank or keepdims:
            return self._load(arg, {a - (rank - arg.type.rank): c for a, c in coordinates.items()})
        kept = len(self.space.kept)
        by_position = {i: coordinates[a] for i, a in enumerate(self.space.kept)}
        return self._load(arg, {i - (kept - arg.type.rank): c for i, c in by_position.items()})

    # Note [outer reads]
    # An argument read once per output element is right-aligned, as numpy broadcasts, against its
    # reader's shape: the keepdims shape (F's rank, reduced axes 1) or the dropped one (the kept
    # axes only). With trailing axes reduced the two differ: a [b, 1] beside max(x[b, b, a], -1,
    # keepdims) moves along F's axis 1, beside the dropped [b, b] along axis 0; one kernel may hold
    # both readers (sibling fusion), so each alignment has its Body (OuterValues).

    def _load(self, arg: BlockArgument, coordinate_of_axis: dict[int, ll.Value]) -> ll.Value:
        pointer = self.b.gep(self.pointers[arg.index], [self._offset(arg, coordinate_of_axis)])
        return load_value(self.b, pointer, arg.type.dtype)

    def _offset(self, arg: BlockArgument, coordinate_of_axis: dict[int, ll.Value]) -> ll.Value:
        """arg's element at these coordinates of its own axes (size-1 and absent axes broadcast)."""
        b = self.b
        sizes = [self.kernel.dim(arg, a) for a in range(arg.type.rank)]
        strides = _contiguous_strides(b, sizes)
        coordinates, used = [], []
        for axis in range(arg.type.rank):
            if arg.type.shape[axis] == 1 or axis not in coordinate_of_axis:
                continue  # broadcast along this axis (or it is a reduced axis of a keepdims operand)
            coordinates.append(coordinate_of_axis[axis])
            used.append(strides[axis])
        return dot(b, coordinates, used)


class OuterValues:
    """The values of one output element, computed once (Note [outer reads]): ops of the keepdims
    shape and of the dropped shape read arguments aligned differently, so each kind has a Body;
    the reductions' results, shared, go to both."""

    def __init__(self, emitter: ReductionEmitter, coordinates: dict[int, ll.Value]):
        self.rank = emitter.space.full.type.rank
        self.bodies = {keepdims: Body(emitter.b, lambda arg, k=keepdims: emitter._load_outer(arg, coordinates, k))
                       for keepdims in (False, True)}

    def value(self, value: Value) -> ll.Value:
        return self.bodies[value.type.rank == self.rank].value(value)

    def set(self, value: Value, x: ll.Value) -> None:
        for body in self.bodies.values():
            body.env[value] = x

    @property
    def env(self) -> dict[Value, ll.Value]:
        return {**self.bodies[False].env, **self.bodies[True].env}


def _contiguous_strides(b: ll.IRBuilder, sizes: list[ll.Value]) -> list[ll.Value]:
    strides: list[ll.Value] = [ll.Constant(I64, 1)] * len(sizes)
    for axis in range(len(sizes) - 2, -1, -1):
        strides[axis] = product(b, [strides[axis + 1], sizes[axis + 1]])
    return strides


def accumulator_type(dtype: DType) -> ll.Type:
    """What a partial result is kept in: the compute type, but a byte for a bool (any, all). LLVM's
    loop vectorizer leaves loops that load and store i1 lanes scalar: reduce_any over rows of 2000
    took 20 times as long as a max of the same bools cast to int32."""
    return I8 if dtype.is_bool else compute_type(dtype)


def widened(b: ll.IRBuilder, x: ll.Value, dtype: DType) -> ll.Value:
    """A value in its accumulator type (accumulator_type)."""
    return b.zext(x, I8) if dtype.is_bool else x


def narrowed(b: ll.IRBuilder, x: ll.Value, dtype: DType) -> ll.Value:
    """An accumulated value back in its compute type."""
    return b.icmp_unsigned("!=", x, ll.Constant(I8, 0)) if dtype.is_bool else x


def _initial(name: str, value_type: ll.Type, dtype: DType) -> ll.Constant:
    """What a reduction of `dtype` starts from: its identity, or the lowest (max, argmax) or the highest
    (min, argmin) value of the dtype (0 and 255 for uint8)."""
    if name in IDENTITIES:
        return constant_of(value_type, IDENTITIES[name])
    low = name in ("reduce_max", "argmax")
    if dtype.is_float:
        return constant_of(value_type, float("-inf") if low else float("inf"))
    return ll.Constant(value_type, dtype.min if low else dtype.max)


def blocked(op: Operation, terms: int | None, per_block: int) -> bool:
    """Whether the reduction is a float sum whose `terms` points (None: known at run time) may take
    more than one block of `per_block` (Note [blocked sums])."""
    is_sum = op.name in ("reduce_sum", "reduce_mean") and op.operands[0].type.dtype.is_float
    return is_sum and (terms is None or terms > per_block)


class CompensatedSums:
    """Running totals, each with the exact rounding error of its additions kept apart (Note [blocked
    sums]), in stack arrays of `size`. Without a count, all of them at once as vectors: the lanes,
    in a few instructions (a loop, or calls of one shared function, cost LLVM more compile time:
    bench/RESULTS.md, Training steps); with a count, the
    first `count` in a loop: a column tile. Never fast-math: the two-sum is exact only as IEEE
    arithmetic, in this order."""

    def __init__(self, kernel: Kernel, value_type: ll.Type, size: int, name: str):
        self.b = kernel.b
        self.value_type = value_type
        self.vector_type = ll.VectorType(value_type, size)
        array = ll.ArrayType(value_type, size)
        self.totals = kernel.alloca(array, name=f"{name}.totals")
        self.compensations = kernel.alloca(array, name=f"{name}.compensations")

    def clear(self, count: ll.Value | None = None) -> None:
        self._each(count, lambda *values: [constant_of(values[0].type, 0)] * 3)  # the loads are dropped

    def add_in(self, partials: ll.Value, count: ll.Value | None = None) -> None:
        """Total i += partials[i], each partial then set back to 0 for the next block."""

        def two_sum(partial: ll.Value, total: ll.Value, compensation: ll.Value) -> tuple[ll.Value, ...]:
            b = self.b
            new = b.fadd(total, partial)
            partial_part = b.fsub(new, total)  # Knuth's two-sum: new + error == total + partial exactly
            error = b.fadd(b.fsub(total, b.fsub(new, partial_part)), b.fsub(partial, partial_part))
            return constant_of(partial.type, 0), new, b.fadd(compensation, error)

        self._each(count, two_sum, partials)

    def finish(self, results: ll.Value, count: ll.Value | None = None) -> None:
        """results[i] = total i with its compensation added; an infinite or NaN total as it is (its
        compensation is NaN: inf - inf)."""

        def compensated(result: ll.Value, total: ll.Value, compensation: ll.Value) -> tuple[ll.Value, ...]:
            b = self.b
            finite = b.fcmp_ordered("<", intrinsic(b, "llvm.fabs", total), constant_of(total.type, float("inf")))
            return b.select(finite, b.fadd(total, compensation), total), total, compensation

        self._each(count, compensated, results)

    def _each(self, count: ll.Value | None, update,  # type: ignore[no-untyped-def]
              other: ll.Value | None = None) -> None:
        """(other[i], total i, compensation i) = update(other[i], total i, compensation i), for every i
        as vectors (count None) or for i < count in a loop."""
        b = self.b
        arrays = [other if other is not None else self.totals, self.totals, self.compensations]
        if count is None:
            slots = [b.bitcast(a, self.vector_type.as_pointer()) for a in arrays]
            align = 8 if isinstance(self.value_type, ll.DoubleType) else 4  # the arrays' element alignment
            values = update(*[b.load(slot, align=align) for slot in slots])
            for value, slot in zip(values, slots):
                b.store(value, slot, align=align)
            return
        with for_range(b, ll.Constant(I64, 0), count, "compensated") as index:
            slots = [b.gep(a, [ll.Constant(I64, 0), index]) for a in arrays]
            values = update(*[b.load(slot) for slot in slots])
            for value, slot in zip(values, slots):
                b.store(value, slot)


def combine_pairwise(b: ll.IRBuilder, op: Operation, values: list[ll.Value]) -> ll.Value:
    """A power-of-two count of partial results combined k with k + half, halving (Note [summation
    order]): the fixed order every reduction kernel uses."""
    while len(values) > 1:
        half = len(values) // 2
        values = [_combine(b, op, values[k + half], values[k]) for k in range(half)]
    return values[0]


def _combine(b: ll.IRBuilder, op: Operation, x: ll.Value, acc: ll.Value) -> ll.Value:
    if op.name in ("reduce_sum", "reduce_mean"):
        return b.fadd(acc, x, flags=float_flags(b)) if op.operands[0].type.dtype.is_float else b.add(acc, x)
    if op.name == "reduce_prod":
        return b.fmul(acc, x, flags=float_flags(b)) if op.operands[0].type.dtype.is_float else b.mul(acc, x)
    if op.name in ("reduce_any", "reduce_all"):  # on i1 values (bools are computed as i1)
        return b.or_(acc, x) if op.name == "reduce_any" else b.and_(acc, x)
    proxy = _MinMax("maximum" if op.name == "reduce_max" else "minimum", op)
    return emit_min_max(b, proxy, [acc, x])  # numpy's NaN-propagating max/min


def _arg_better(b: ll.IRBuilder, name: str, x: ll.Value, best: ll.Value, dtype: DType) -> ll.Value:
    """numpy's argmax: the first NaN wins; otherwise the first strictly better value."""
    symbol = ">" if name == "argmax" else "<"
    if not dtype.is_float:
        return compare_ints(b, symbol, x, best, dtype)
    best_is_nan = b.fcmp_unordered("uno", best, best)
    x_is_nan = b.fcmp_unordered("uno", x, x)
    better = b.or_(x_is_nan, b.fcmp_ordered(symbol, x, best))
    return b.and_(b.not_(best_is_nan), better)


class _MinMax:
    """Stands in for a maximum/minimum op so the elementwise emitter can serve the reduction."""

    def __init__(self, name: str, reduction: Operation):
        self.name = name
        self.operands = reduction.operands
