"""Reduction kernels over short rows, each row one vector.

Note [vector rows]: when a reduction kernel reduces F's trailing axes and they hold a known count
n of at most VECTOR_ROW points (passes/schedule.py), each row is one LLVM vector of n lanes padded
to a power of two.
The arguments' rows are loaded once; every full-level value (softmax's exp(x - max)) is computed
once per row, as vector ops; each reduction sets the padding lanes to its identity and combines
lanes k and k + half, halving, as the scalar kernel combines its partial sums (Note [summation
order], a fixed order); full-level results are stored from the same vectors. The scalar walk of
reduction.py reads and computes a row again for each reduction and adds it up in a serial
chain, which costs most on the short rows of a classifier's cross entropy.
"""

from __future__ import annotations

import math

from llvmlite import ir as ll

from flowc.ir import BlockArgument, Operation, Value
from flowc.ir.ops.kernel_space import reads_rows

from ..body import Body
from ..kernel import Kernel, decompose, for_range
from ..types import I1, I32, I64, compute_type, constant_of, load_value, rounded, store_value
from ..launch import emits
from .reduction import OuterValues, ReductionEmitter, _combine, _initial

@emits("reduction", "vector_rows")
class VectorRowEmitter(ReductionEmitter):
    def __init__(self, kernel: Kernel):
        super().__init__(kernel)
        self.count = math.prod(self.space.full.type.shape[a] for a in self.space.reduced)
        self.width = 1 << max(0, (self.count - 1).bit_length())
        outer_values = {v for v, level in self.level.items() if level == "outer"}
        self.row_inputs: set[Value] = set(self.block.args) | outer_values  # what the row body loads or splats

    def emit(self) -> None:
        b, kernel = self.b, self.kernel
        yields = self.block.terminator.operands
        with for_range(b, kernel.begin, kernel.end, "o") as outer:
            kept = decompose(b, outer, [self.sizes[a] for a in self.space.kept]) if self.space.kept else []
            coordinates: dict[int, ll.Value] = dict(zip(self.space.kept, kept))
            scalars = OuterValues(self, coordinates)
            row = Body(b, lambda v: self._row_input(v, coordinates, scalars), loaded=self.row_inputs, lanes=self.width)
            for op in self.block.ops:  # in order: each outer value once its reductions are done
                if op.is_reduction:  # no argmax or argmin here (passes/schedule.py)
                    total = self._reduce_row(op, row.value(op.operands[0]))
                    scalars.set(op.result, rounded(b, total, op.result.type.dtype))
                elif not op.is_terminator and self.level.get(op.results[0]) == "outer":
                    scalars.value(op.results[0])
            start = b.mul(outer, ll.Constant(I64, self.count))
            # Every result computed before any is stored: a result may be written over an argument
            # (Note [donated arguments]) that another one still reads.
            values = [row.value(v) if self.level.get(v) == "full" else scalars.value(v) for v in yields]
            for index, (value, x) in enumerate(zip(yields, values)):
                pointer = kernel.result_pointer(index, value.type.dtype)
                if self.level.get(value) == "full":
                    self._store_row(x, pointer, start, value)
                else:
                    store_value(b, x, b.gep(pointer, [outer]), value.type.dtype)

    def _vector(self, value: Value) -> ll.VectorType:
        return ll.VectorType(compute_type(value.type.dtype), self.width)

    def _splat(self, scalar: ll.Value, value: Value) -> ll.Value:
        vector = self._vector(value)
        x = self.b.insert_element(ll.Constant(vector, ll.Undefined), scalar, ll.Constant(I32, 0))
        zeros = ll.Constant(ll.VectorType(I32, self.width), [ll.Constant(I32, 0)] * self.width)
        return self.b.shuffle_vector(x, ll.Constant(vector, ll.Undefined), zeros)

    def _row_input(self, value: Value, coordinates: dict[int, ll.Value], scalars: OuterValues) -> ll.Value:
        """An argument's row (a splat where it has one value per row), or a per-row value splatted."""
        if not isinstance(value, BlockArgument):
            return self._splat(scalars.value(value), value)
        rank = self.space.full.type.rank
        if not reads_rows(value, self.space.reduced, rank):
            return self._splat(self._load_full(value, coordinates), value)
        b = self.b
        start = dict(coordinates)
        start.update((axis, ll.Constant(I64, 0)) for axis in self.space.reduced)
        first = self._element_pointer(value, {axis - (rank - value.type.rank): c for axis, c in start.items()})
        # n scalar loads into the low lanes (LLVM makes them vector loads): a padded vector load could
        # read past the end of the buffer. The padding lanes hold 0 and are never stored.
        vector: ll.Value = constant_of(self._vector(value), 0)
        for lane in range(self.count):
            element = load_value(b, b.gep(first, [ll.Constant(I64, lane)]), value.type.dtype)
            vector = b.insert_element(vector, element, ll.Constant(I32, lane))
        return vector

    def _element_pointer(self, arg: BlockArgument, coordinate_of_axis: dict[int, ll.Value]) -> ll.Value:
        return self.b.gep(self.pointers[arg.index], [self._offset(arg, coordinate_of_axis)])

    def _store_row(self, vector: ll.Value, pointer: ll.Value, start: ll.Value, value: Value) -> None:
        b = self.b
        for lane in range(self.count):
            store_value(b, b.extract_element(vector, ll.Constant(I32, lane)),
                        b.gep(pointer, [b.add(start, ll.Constant(I64, lane))]), value.type.dtype)

    def _reduce_row(self, op: Operation, row: ll.Value) -> ll.Value:
        b = self.b
        dtype = op.operands[0].type.dtype
        value_type = compute_type(dtype)
        identity = ll.Constant(ll.VectorType(value_type, self.width),
                               [_initial(op.name, value_type, dtype)] * self.width)
        if self.count < self.width:
            mask = ll.Constant(ll.VectorType(I1, self.width), [int(lane < self.count) for lane in range(self.width)])
            row = b.select(mask, row, identity)
        width = self.width
        while width > 1:  # lanes k and k + half, as _combine_lanes
            half = width // 2
            low = b.shuffle_vector(row, ll.Constant(row.type, ll.Undefined), _indices(range(half)))
            high = b.shuffle_vector(row, ll.Constant(row.type, ll.Undefined), _indices(range(half, width)))
            row = _combine(b, op, high, low)
            width = half
        result = b.extract_element(row, ll.Constant(I32, 0))
        if op.name == "reduce_mean":
            result = b.fdiv(result, constant_of(value_type, float(self.count)))
        return result


def _indices(lanes: range) -> ll.Constant:
    return ll.Constant(ll.VectorType(I32, len(lanes)), [ll.Constant(I32, lane) for lane in lanes])

