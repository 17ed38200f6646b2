"""Reduction kernels over very short rows, a block of rows across the lanes.

Note [rows across lanes]: a kernel of vector rows (Note [vector rows]) whose rows hold at most as
many points as a vector has 32-bit lanes (L, the schedule's `lanes`: 16 with AVX-512) computes L
rows at once, lane l holding row o + l: each of the n columns of the block is one vector, gathered
from the rows;
a reduction combines the n column vectors with elementwise ops (no shuffles), in the pairwise
order of the vector-row kernel's lanes (columns k and k + half, halving, the missing ones the
identity), so both give the same bits; a per-row value (the max, log(sum)) is one vector for L
rows, so a transcendental runs once per L rows instead of once per row; full-level results are
scattered back to the rows. A last block of fewer than L rows runs with its lanes past the end
masked off (its loads, gathers, stores and scatters), so the body is emitted once.

As vector rows, a cross entropy over short rows is mostly one long dependent chain per row (max
across lanes, exp, sum across lanes, log), latency-bound; in blocks, L independent rows share
each instruction, so the chain's latency is paid once per L rows (figures: bench/RESULTS.md).
"""

from __future__ import annotations

import math

from llvmlite import ir as ll

from flowc.ir import BlockArgument, Operation, Value
from flowc.ir.ops.kernel_space import reads_rows

from ..body import Body
from ..kernel import Kernel, for_range
from ..launch import emits
from ..program import schedule_of
from ..types import I64, compute_type, constant_of, load_value, rounded
from ..vectors import gather, masked_load, masked_store, scatter, splat
from .reduction import _initial, combine_pairwise
from .vector_rows import VectorRowEmitter


@emits("reduction", "row_blocks")
class RowBlockEmitter(VectorRowEmitter):
    def __init__(self, kernel: Kernel):
        super().__init__(kernel)
        self.rows_per_block = int(schedule_of(kernel.op)["lanes"])  # L, the 32-bit lanes of the host's vector

    def emit(self) -> None:
        """Blocks of L rows over [begin, end), the last one's lanes past `end` masked off."""
        b, kernel = self.b, self.kernel
        lanes = self.rows_per_block
        size, one = ll.Constant(I64, lanes), ll.Constant(I64, 1)
        blocks = b.udiv(b.add(b.sub(kernel.end, kernel.begin), b.sub(size, one)), size)
        indices = ll.VectorType(I64, lanes)
        with for_range(b, ll.Constant(I64, 0), blocks, "ob") as block:
            first = b.add(kernel.begin, b.mul(block, size))
            left = splat(b, b.sub(kernel.end, first), lanes)
            self.mask = b.icmp_signed("<", ll.Constant(indices, [ll.Constant(I64, l) for l in range(lanes)]), left)
            self._emit_block(first)

    def _emit_block(self, first: ll.Value) -> None:
        """Rows first .. first + L."""
        b, kernel = self.b, self.kernel
        lanes = self.rows_per_block
        yields = self.block.terminator.operands
        per_row = Body(b, lambda arg: self._per_row_argument(arg, first), lanes=lanes)
        columns: list[Body] = []
        for j in range(self.count):
            columns.append(Body(b, lambda v, j=j: self._column_input(v, j, first, per_row),
                                loaded=self.row_inputs, lanes=lanes))
        for op in self.block.ops:  # in order: each per-row value once its reductions are done
            if op.is_reduction:  # no argmax or argmin here (passes/schedule.py)
                total = self._reduce_columns(op, [c.value(op.operands[0]) for c in columns])
                per_row.env[op.result] = rounded(b, total, op.result.type.dtype)
            elif not op.is_terminator and self.level.get(op.results[0]) == "outer":
                per_row.value(op.results[0])
        # Every result computed before any is stored: a result may be written over an argument
        # (Note [donated arguments]) that another one still reads.
        values = [[c.value(v) for c in columns] if self.level.get(v) == "full" else per_row.value(v) for v in yields]
        for index, (value, x) in enumerate(zip(yields, values)):
            pointer = kernel.result_pointer(index, value.type.dtype)
            if self.level.get(value) == "full":
                start = b.mul(first, ll.Constant(I64, self.count))
                for j, column in enumerate(x):
                    base = b.gep(pointer, [b.add(start, ll.Constant(I64, j))])
                    scatter(b, column, base, [l * self.count for l in range(lanes)], value.type.dtype, self.mask)
            else:
                masked_store(b, x, b.gep(pointer, [first]), value.type.dtype, self.mask)

    def _column_input(self, value: Value, j: int, first: ll.Value, per_row: Body) -> ll.Value:
        """Column j of an argument's rows across the block, a per-row argument's value (read at full
        level), or a per-row value."""
        if not isinstance(value, BlockArgument):
            return per_row.value(value)
        rank = self.space.full.type.rank
        point = {axis: ll.Constant(I64, 0) for axis in self.space.reduced}
        point[self.space.kept[0]] = first
        own = {axis - (rank - value.type.rank): c for axis, c in point.items()}
        shift = j if reads_rows(value, self.space.reduced, rank) else 0
        return self._lanes_of(value, self._offset(value, own), shift, self.space.kept[0] - (rank - value.type.rank))

    def _per_row_argument(self, arg: BlockArgument, first: ll.Value) -> ll.Value:
        """An argument read once per output element (as _load_outer reads it), for the block's rows."""
        rank = self.space.full.type.rank
        own_axis = self.space.kept[0] if arg.type.rank == rank else arg.type.rank - 1
        return self._lanes_of(arg, self._offset(arg, {own_axis: first}), 0, own_axis)

    def _lanes_of(self, arg: BlockArgument, offset: ll.Value, shift: int, own_axis: int) -> ll.Value:
        """arg's elements for the block's L rows, the first at offset + shift, the others a row's step
        along arg's axis own_axis apart: one load splatted, a vector load, or a gather."""
        b = self.b
        lanes = self.rows_per_block
        moves = 0 <= own_axis < arg.type.rank and arg.type.shape[own_axis] != 1
        step = math.prod(arg.type.shape[own_axis + 1:]) if moves else 0
        first = b.gep(self.pointers[arg.index], [b.add(offset, ll.Constant(I64, shift))])
        if step == 0:
            return splat(b, load_value(b, first, arg.type.dtype), lanes)
        if step == 1:
            return masked_load(b, first, arg.type.dtype, self.mask)
        return gather(b, first, [l * step for l in range(lanes)], arg.type.dtype, self.mask)

    def _reduce_columns(self, op: Operation, columns: list[ll.Value]) -> ll.Value:
        """The columns combined as _reduce_row combines a row's lanes: k with k + half, halving."""
        b = self.b
        dtype = op.operands[0].type.dtype
        value_type = ll.VectorType(compute_type(dtype), self.rows_per_block)
        identity = ll.Constant(value_type, [_initial(op.name, compute_type(dtype), dtype)] * self.rows_per_block)
        result = combine_pairwise(b, op, columns + [identity] * (self.width - self.count))
        if op.name == "reduce_mean":
            result = b.fdiv(result, constant_of(value_type, float(self.count)))
        return result
