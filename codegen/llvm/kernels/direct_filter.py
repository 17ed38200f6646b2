"""The direct filter gradient (Note [direct convolution] in passes/schedule.py): conv2d_backprop_filter's
items [begin, end) with no patches buffer.

An item is one filter tap (i, j) and a block of R input channels (`tile` = (R, V, L)); its result
is the rows tap*C + [c0, c0 + R) of the gradient, [KH*KW*C, O] as a matrix, so the items of a
piece are one run of rows, which the piece zeroes first and its epilogue reads after. For each
output row (n, r), in order, each item of the piece takes its R x V tile of sums (V vectors of L
output channels, in blocks across O) into registers, and for each output pixel c whose input
pixel lies in the image (a range of c, worked out per item: no test in the loop) loads dy's V
vectors at (n, r, c) and, per channel of the block, broadcasts the input element and adds the
product with one fma per vector; then stores the tile back. An output row's dy (OW * O elements)
and the KH input rows it reads stay in cache while every item of the piece passes over them.

Note [aligned gradient rows]
A tile loads dy's V vectors at each pixel: with dy fed from numpy (16-byte aligned), every such
load crosses a cache line, and the 28x28x128 filter gradient of bench/bench_conv.py ran about a
tenth slower than with dy 64-byte aligned. A copy of all of dy (as Note [aligned filter] copies the
filter) is a pass through memory that took as long as it saved; a copy of the output row that the
items are about to read, onto the kernel's stack, costs a pass over bytes that are then read from
L1 by every item of the piece. So a kernel scheduled with `aligned_rows = true` (rows of at most
ALIGNED_ROW_BYTES: passes/schedule.py) copies each row that does not start on a 64-byte boundary
into a 64-byte aligned buffer of its frame first (a stack buffer, not arena scratch: each thread's
piece needs its own, and one row is small), and reads the row where it lies when it does.
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, for_range, min_of
from ..program import schedule_of
from ..types import I1, I64, PTR, constant_of
from ..vectors import masked_load, masked_store, splat
from .direct_conv import DirectKernel


def _i64(value: int) -> ll.Constant:
    return ll.Constant(I64, value)


def filter_items(op: Operation) -> int:
    """The work of a direct filter gradient: filter taps x blocks of input channels."""
    kh, kw, channels, _ = op.result.type.shape
    return kh * kw * _blocks(op)


def _blocks(op: Operation) -> int:
    channels = op.result.type.shape[2]
    rows = int(schedule_of(op.parent_op)["tile"][0]) if op.parent_op is not None else 1
    return -(-channels // rows)  # 0 without input channels: no items, an empty result


class DirectFilterGradient(DirectKernel):
    """Items [kernel.begin, kernel.end) of conv2d_backprop_filter `op` into `target`."""

    def __init__(self, kernel: Kernel, op: Operation, target: ll.Value):
        x, dy = op.operands
        super().__init__(kernel, op, op.result.type.shape, dy.type.shape[1:3])
        self.op, self.target = op, target
        self.rows = self.tile[0]
        self.blocks = _blocks(op)
        self.batch = kernel.dim(x, 0)
        self.gradient = kernel.operand_pointer(dy.index, self.dtype)
        row = ll.ArrayType(self.element, self.out_width * self.out)
        aligned = schedule_of(kernel.op).get("aligned_rows") and self.out_width * self.out
        self.row_copy = kernel.alloca(row, "filter_dy_row", align=64) if aligned else None

    def first_row(self, item: ll.Value) -> ll.Value:
        """The first result row (tap * C + channel) of `item`; of the end for the item count."""
        b = self.b
        if not self.blocks:
            return _i64(0)
        tap = b.udiv(item, _i64(self.blocks))
        block = b.sub(item, b.mul(tap, _i64(self.blocks)))
        return b.add(b.mul(tap, _i64(self.channels)), min_of(b, b.mul(block, _i64(self.rows)), _i64(self.channels)))

    def emit(self) -> None:
        b = self.b
        if not self.blocks:
            return
        first, last = (b.mul(self.first_row(i), _i64(self.out)) for i in (self.kernel.begin, self.kernel.end))
        zero = constant_of(self.element, 0)
        with for_range(b, first, last, "filter_zero") as index:
            b.store(zero, b.gep(self.target, [index]))
        with for_range(b, _i64(0), self.batch, "filter_image") as n, \
                for_range(b, _i64(0), _i64(self.out_height), "filter_row") as r:
            gradient = self._gradient_row(n, r)
            with for_range(b, self.kernel.begin, self.kernel.end, "filter_item") as item:
                self._item(n, r, item, gradient)

    def _gradient_row(self, n: ll.Value, r: ll.Value) -> ll.Value:
        """dy's output row (n, r): where it lies, or its copy on the stack when it is not 64-byte aligned
        (Note [aligned gradient rows])."""
        b = self.b
        row = b.gep(self.gradient, [b.mul(b.add(b.mul(n, _i64(self.out_height)), r), _i64(self.out_width * self.out))])
        if self.row_copy is None:
            return row
        misaligned = b.icmp_unsigned("!=", b.and_(b.ptrtoint(row, I64), _i64(63)), _i64(0))
        copy = b.bitcast(self.row_copy, row.type)
        with b.if_then(misaligned):
            memcpy = self.kernel.module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
            size = _i64(self.out_width * self.out * self.op.result.type.dtype.itemsize)
            b.call(memcpy, [b.bitcast(copy, PTR), b.bitcast(row, PTR), size, ll.Constant(I1, 0)])
        return b.select(misaligned, copy, row)

    def _item(self, n: ll.Value, r: ll.Value, item: ll.Value, gradient: ll.Value) -> None:
        b, op = self.b, self.op
        tap = b.udiv(item, _i64(self.blocks))
        block = b.sub(item, b.mul(tap, _i64(self.blocks)))
        i = b.udiv(tap, _i64(self.window_width))
        j = b.sub(tap, b.mul(i, _i64(self.window_width)))
        input_row = b.sub(b.add(b.mul(r, _i64(op.strides[0])), b.mul(i, _i64(op.dilations[0]))), _i64(op.pads[0]))
        inside = b.and_(b.icmp_signed(">=", input_row, _i64(0)), b.icmp_signed("<", input_row, _i64(self.height)))
        with b.if_then(inside):
            # The output pixels c whose input column c*SW + j*DW - left is inside [0, W).
            shift = b.sub(b.mul(j, _i64(op.dilations[1])), _i64(op.pads[2]))  # the input column of pixel 0
            low = b.sub(_i64(0), shift)
            begin = b.select(b.icmp_signed("<=", low, _i64(0)), _i64(0),
                             b.udiv(b.add(low, _i64(op.strides[1] - 1)), _i64(op.strides[1])))
            high = b.sub(_i64(self.width - 1), shift)
            end = b.select(b.icmp_signed("<", high, _i64(0)), _i64(0),
                           min_of(b, b.add(b.udiv(high, _i64(op.strides[1])), _i64(1)), _i64(self.out_width)))
            channel = b.mul(block, _i64(self.rows))
            pixel_row = b.mul(b.add(b.mul(n, _i64(self.height)), input_row), _i64(self.width))
            image = b.gep(self.image, [b.add(b.mul(b.add(pixel_row, shift), _i64(self.channels)), channel)])
            result = b.gep(self.target, [b.mul(b.add(b.mul(tap, _i64(self.channels)), channel), _i64(self.out))])
            rest = self.channels % self.rows
            if not rest:
                self._blocks_of(image, gradient, result, begin, end, self.rows)
                return
            with b.if_else(b.icmp_signed("==", block, _i64(self.blocks - 1))) as (last, whole):
                with last:
                    self._blocks_of(image, gradient, result, begin, end, rest)
                with whole:
                    self._blocks_of(image, gradient, result, begin, end, self.rows)

    def _blocks_of(self, image: ll.Value, gradient: ll.Value, result: ll.Value, begin: ll.Value, end: ll.Value,
                   rows: int) -> None:
        """The item's `rows` channels, in blocks of V vectors across the output channels."""
        b = self.b
        block = self.vectors * self.lanes
        whole, rest = divmod(self.out, block)
        if whole:
            with for_range(b, _i64(0), _i64(whole), "filter_block") as number:
                self._tile(image, gradient, result, begin, end, rows, b.mul(number, _i64(block)), self.vectors,
                           self.lanes)
        if rest:
            vectors = -(-rest // self.lanes)
            self._tile(image, gradient, result, begin, end, rows, _i64(whole * block), vectors,
                       rest - (vectors - 1) * self.lanes)

    def _tile(self, image: ll.Value, gradient: ll.Value, result: ll.Value, begin: ll.Value, end: ll.Value,
              rows: int, first_channel: ll.Value, vectors: int, last_lanes: int) -> None:
        b, kernel = self.b, self.kernel
        mask = None if last_lanes == self.lanes else ll.Constant(
            ll.VectorType(ll.IntType(1), self.lanes), [ll.Constant(ll.IntType(1), int(lane < last_lanes))
                                                       for lane in range(self.lanes)])
        pointers = [[b.gep(result, [b.add(_i64(q * self.out + v * self.lanes), first_channel)])
                     for v in range(vectors)] for q in range(rows)]
        sums = [[kernel.alloca(self.vector, f"filter_sum{q}_{v}") for v in range(vectors)] for q in range(rows)]
        for q in range(rows):
            for v in range(vectors):
                b.store(self._load(pointers[q][v], mask if v == vectors - 1 else None), sums[q][v])
        step = self.op.strides[1] * self.channels
        with for_range(b, begin, end, "filter_pixel") as c:
            row = b.gep(gradient, [b.add(b.mul(c, _i64(self.out)), first_channel)])
            loaded = [self._load(b.gep(row, [_i64(v * self.lanes)]), mask if v == vectors - 1 else None)
                      for v in range(vectors)]
            pixel = b.gep(image, [b.mul(c, _i64(step))])
            for q in range(rows):
                broadcast = splat(b, b.load(b.gep(pixel, [_i64(q)])), self.lanes)
                for v in range(vectors):
                    total = sums[q][v]
                    b.store(b.call(self.fma, [broadcast, loaded[v], b.load(total)]), total)
        for q in range(rows):
            for v in range(vectors):
                self._store(b.load(sums[q][v]), pointers[q][v], mask if v == vectors - 1 else None)

    def _load(self, pointer: ll.Value, mask: ll.Value | None) -> ll.Value:
        if mask is not None:
            return masked_load(self.b, pointer, self.dtype, mask)
        return self.b.load(self.b.bitcast(pointer, self.vector.as_pointer()), align=self.dtype.itemsize)

    def _store(self, value: ll.Value, pointer: ll.Value, mask: ll.Value | None) -> None:
        if mask is not None:
            masked_store(self.b, value, pointer, self.dtype, mask)
            return
        self.b.store(value, self.b.bitcast(pointer, self.vector.as_pointer()), align=self.dtype.itemsize)
