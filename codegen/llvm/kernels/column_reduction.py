"""Reduction kernels over leading axes: the sum over the batch of a bias gradient, batch statistics.

Note [column reductions]: when a kernel reduces F's leading axes and keeps its trailing ones, the
kept elements of a row of F are contiguous, and the reduced ones are a stride apart. The scalar
walk of reduction.py would sum each output element down its column, one strided load at a time,
a slow walk for a bias gradient. Here the kept elements are cut into tiles of T, the schedule's
`tile = [T]` (passes/schedule.py's COLUMN_TILE); per tile each reduction keeps T partial results
on the stack and adds the rows in, one after the other, in a loop over the tile that LLVM vectorizes
(each output element is independent). Each element is summed in row order, as numpy sums over a
leading axis, a float sum in blocks of BLOCK_TERMS rows added into a compensated total (Note
[blocked sums] in reduction.py), so a column of 10**8 float32 ones sums to 10**8, not 2**24. Later
reductions and the results read the earlier ones' totals from the stack.

Every argument must step along all of F's reduced axes or none, and along all kept axes or none
(a full operand, a bias, a per-row scale, a scalar), so its offset at a point is linear in the
kept index.
"""

from __future__ import annotations

import math

from llvmlite import ir as ll

from flowc.ir import BlockArgument, Operation, Value
from flowc.ir.ops.kernel_space import steps_along
from flowc.ir.types import DType

from ..body import Body
from ..kernel import for_range, min_of, product
from ..launch import emits
from ..program import schedule_of
from ..types import I64, compute_type, load_value, rounded, store_value
from .reduction import (BLOCK_TERMS, CompensatedSums, ReductionEmitter, _combine, _initial, accumulator_type, blocked,
                        narrowed, widened)


@emits("reduction", "column")
class ColumnReductionEmitter(ReductionEmitter):
    def emit(self) -> None:
        b, kernel = self.b, self.kernel
        (self.tile,) = schedule_of(kernel.op)["tile"]  # type: ignore[misc]
        self.kept_count = product(b, [self.sizes[a] for a in self.space.kept])
        self.row_count = product(b, [self.sizes[a] for a in self.space.reduced])
        reductions = [op for op in self.block.ops if op.is_reduction]
        self.totals: dict[DType, CompensatedSums] = {}  # per dtype, shared by its float sums one after the other
        self.partials = {op.result: kernel.alloca(ll.ArrayType(accumulator_type(op.operands[0].type.dtype), self.tile),
                                                  f"{op.name}.partial") for op in reductions}
        width = ll.Constant(I64, self.tile)
        tiles = b.udiv(b.add(b.sub(kernel.end, kernel.begin), ll.Constant(I64, self.tile - 1)), width)
        with for_range(b, ll.Constant(I64, 0), tiles, "tile") as tile:
            first = b.add(kernel.begin, b.mul(tile, width))
            last = b.select(b.icmp_signed("<", b.add(first, width), kernel.end), b.add(first, width), kernel.end)
            done: list[Operation] = []
            for op in reductions:
                self._accumulate(op, done, first, last)
                done.append(op)
            self._write(done, first, last)

    def _partial(self, op: Operation, first: ll.Value, o: ll.Value) -> ll.Value:
        return self.b.gep(self.partials[op.result], [ll.Constant(I64, 0), self.b.sub(o, first)])

    def _body(self, done: list[Operation], first: ll.Value, row: ll.Value | None, o: ll.Value) -> Body:
        """Region values at row `row` (None: at the output element) and kept index o; the finished
        reductions' totals read from their partial results."""
        env: dict[Value, ll.Value] = {}
        for op in done:
            total = narrowed(self.b, self.b.load(self._partial(op, first, o)), op.operands[0].type.dtype)
            if op.name == "reduce_mean":
                total = self.b.fdiv(total, self.b.sitofp(self.row_count, total.type))
            env[op.result] = rounded(self.b, total, op.result.type.dtype)  # a float16 sum: in float, rounded once
        return Body(self.b, lambda arg: self._load_at(arg, row, o), env)

    def _accumulate(self, op: Operation, done: list[Operation], first: ll.Value, last: ll.Value) -> None:
        b = self.b
        dtype = op.operands[0].type.dtype
        initial = _initial(op.name, accumulator_type(dtype), dtype)
        with for_range(b, first, last, "init") as o:
            b.store(initial, self._partial(op, first, o))
        rows = [self.space.full.type.shape[a] for a in self.space.reduced]
        if not blocked(op, None if None in rows else math.prod(rows), BLOCK_TERMS):
            self._add_rows(op, done, first, last, ll.Constant(I64, 0), self.row_count)
            return
        # Note [blocked sums]: where there are more rows than a block, each block's partial results go
        # into compensated totals, which are put back at the end; with fewer, `many` is only tested.
        partials = self.partials[op.result]
        if dtype not in self.totals:
            self.totals[dtype] = CompensatedSums(self.kernel, compute_type(dtype), self.tile, "column")
        totals = self.totals[dtype]
        count = b.sub(last, first)
        many = b.icmp_signed(">", self.row_count, ll.Constant(I64, BLOCK_TERMS))
        with b.if_then(many):
            totals.clear(count)
        per_block = ll.Constant(I64, BLOCK_TERMS)
        blocks = b.udiv(b.add(self.row_count, ll.Constant(I64, BLOCK_TERMS - 1)), per_block)
        with for_range(b, ll.Constant(I64, 0), blocks, "block") as block:
            start = b.mul(block, per_block)
            self._add_rows(op, done, first, last, start, min_of(b, b.add(start, per_block), self.row_count))
            with b.if_then(many):
                totals.add_in(partials, count)
        with b.if_then(many):
            totals.finish(partials, count)

    def _add_rows(self, op: Operation, done: list[Operation], first: ll.Value, last: ll.Value, start: ll.Value,
                  stop: ll.Value) -> None:
        """The partial results of kept elements first .. last += their rows start .. stop."""
        b = self.b
        with for_range(b, start, stop, "row") as row:
            with for_range(b, first, last, "col") as o:  # independent elements: vectorized
                x = self._body(done, first, row, o).value(op.operands[0])
                slot = self._partial(op, first, o)
                b.store(_combine(b, op, widened(b, x, op.operands[0].type.dtype), b.load(slot)), slot)

    def _write(self, done: list[Operation], first: ll.Value, last: ll.Value) -> None:
        b = self.b
        yields = list(self.block.terminator.operands)
        outer = [(i, v) for i, v in enumerate(yields) if self.level.get(v) != "full"]
        full = [(i, v) for i, v in enumerate(yields) if self.level.get(v) == "full"]
        if outer:
            with for_range(b, first, last, "out") as o:
                body = self._body(done, first, None, o)
                values = [body.value(value) for _, value in outer]  # all read before any is written
                for (index, value), x in zip(outer, values):
                    pointer = self.kernel.result_pointer(index, value.type.dtype)
                    store_value(b, x, b.gep(pointer, [o]), value.type.dtype)
        if full:
            with for_range(b, ll.Constant(I64, 0), self.row_count, "wrow") as row:
                with for_range(b, first, last, "wcol") as o:
                    body = self._body(done, first, row, o)
                    offset = b.add(b.mul(row, self.kept_count), o)
                    values = [body.value(value) for _, value in full]
                    for (index, value), x in zip(full, values):
                        pointer = self.kernel.result_pointer(index, value.type.dtype)
                        store_value(b, x, b.gep(pointer, [offset]), value.type.dtype)

    def _load_at(self, arg: BlockArgument, row: ll.Value | None, o: ll.Value) -> ll.Value:
        """arg at (row, kept index o): its offset is row * (kept elements it has) + o, each term only
        where it steps along those axes; at an output element (row None) the row term is dropped."""
        b = self.b
        along_rows = row is not None and steps_along(arg, self.space.full, self.space.reduced)
        along_kept = steps_along(arg, self.space.full, self.space.kept)
        offset: ll.Value = ll.Constant(I64, 0)
        if along_rows:
            offset = b.mul(row, self.kept_count) if along_kept else row
        if along_kept:
            offset = b.add(offset, o)
        return load_value(b, b.gep(self.pointers[arg.index], [offset]), arg.type.dtype)

