"""The direct convolution (Note [direct convolution] in passes/schedule.py): a conv2d's output rows
[begin, end), numbered over (image, output row), with no patches buffer.

Each row is cut into blocks of V vectors of L output channels (`tile` = (P, V, L)); each block
into tiles of P output pixels. A tile is P * V vector sums, stack slots that LLVM keeps in
registers; per filter tap (i, j) and input channel k, it loads the filter's V vectors
w[i, j, k, o0 : o0 + V*L], and for each pixel broadcasts x[n, r, c, k] and adds the product with
one fma per vector. The filter row i of a tile is skipped when its input row lies in the padding
(one branch per tile and row); the taps whose input column lies in the padding are known at
build time (the spatial sizes are static), so a border tile simply has no code for them, and the
tiles between the borders, all alike, run as one loop. A last block of fewer than V*L channels
loads and stores its last vector through a mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, for_range
from ..program import schedule_of
from ..types import I64, compute_type, constant_of, declared
from ..vectors import masked_load, masked_store, splat


def _i64(value: int) -> ll.Constant:
    return ll.Constant(I64, value)


@dataclass(frozen=True)
class Tile:
    """Pixels [start, start + count) of an output row; `taps[p]`: the filter columns j whose input
    column is inside the image for pixel p (None: all, an interior tile)."""

    start: int
    count: int
    taps: tuple[tuple[int, ...], ...] | None


def row_tiles(conv: Operation, pixels: int) -> list[Tile | tuple[int, int]]:
    """The row's tiles in order, a run of interior whole tiles as (first tile, end tile) numbers."""
    width = conv.operands[0].type.shape[2]
    out_width = conv.result.type.shape[2]
    window, stride, dilation, left = conv.window[1], conv.strides[1], conv.dilations[1], conv.pads[2]
    tiles: list[Tile | tuple[int, int]] = []
    for number, start in enumerate(range(0, out_width, pixels)):
        count = min(pixels, out_width - start)
        taps = tuple(tuple(j for j in range(window) if 0 <= (start + p) * stride + j * dilation - left < width)
                     for p in range(count))
        if count == pixels and all(len(t) == window for t in taps):
            last = tiles[-1] if tiles else None
            if isinstance(last, tuple) and last[1] == number:
                tiles[-1] = (last[0], number + 1)
            else:
                tiles.append((number, number + 1))
        else:
            tiles.append(Tile(start, count, taps))
    return tiles


class DirectKernel:
    """What the direct conv2d and its filter gradient (direct_filter.py) both read: the tile (P or R, V, L)
    of the kernel's schedule, the vector type and its fma, the image x (operand 0) and its sizes, the
    filter's [KH, KW, C, O] and the output's spatial sizes."""

    def __init__(self, kernel: Kernel, op: Operation, filter_shape: Sequence[int], out_spatial: Sequence[int]):
        self.kernel, self.b = kernel, kernel.b
        x = op.operands[0]
        self.dtype = op.result.type.dtype
        self.element = compute_type(self.dtype)
        self.tile = tuple(int(t) for t in schedule_of(kernel.op)["tile"])
        _, self.vectors, self.lanes = self.tile
        self.vector = ll.VectorType(self.element, self.lanes)
        _, self.height, self.width, _ = x.type.shape
        self.window_height, self.window_width, self.channels, self.out = filter_shape
        self.out_height, self.out_width = out_spatial
        self.image = kernel.operand_pointer(x.index, self.dtype)
        bits = 32 if self.element == ll.FloatType() else 64
        self.fma = declared(kernel.module, f"llvm.fma.v{self.lanes}f{bits}", self.vector, [self.vector] * 3)


class DirectConvolution(DirectKernel):
    """Rows [kernel.begin, kernel.end) of conv2d `conv` into `target` (the product's buffer)."""

    def __init__(self, kernel: Kernel, conv: Operation, target: ll.Value):
        w = conv.operands[1]
        super().__init__(kernel, conv, w.type.shape, conv.result.type.shape[1:3])
        self.conv, self.target = conv, target
        self.pixels = self.tile[0]
        self.filter = kernel.operand_pointer(w.index, self.dtype)

    def emit(self) -> None:
        b = self.b
        block = self.vectors * self.lanes
        whole, rest = divmod(self.out, block)
        with for_range(b, self.kernel.begin, self.kernel.end, "conv_row") as row:
            n = b.udiv(row, _i64(self.out_height))
            out_row = b.sub(row, b.mul(n, _i64(self.out_height)))
            self.rows = self._input_rows(n, out_row)
            self.out_pointer = b.gep(self.target, [b.mul(row, _i64(self.out_width * self.out))])
            if whole:
                with for_range(b, _i64(0), _i64(whole), "conv_block") as number:
                    self._block(b.mul(number, _i64(block)), self.vectors, self.lanes)
            if rest:
                vectors = -(-rest // self.lanes)
                self._block(_i64(whole * block), vectors, rest - (vectors - 1) * self.lanes)

    def _input_rows(self, n: ll.Value, out_row: ll.Value) -> list[tuple[ll.Value, ll.Value]]:
        """Per filter row i: (whether its input row is inside the image, that row's first element)."""
        b = self.b
        top, stride, dilation = self.conv.pads[0], self.conv.strides[0], self.conv.dilations[0]
        rows = []
        for i in range(self.window_height):
            input_row = b.add(b.mul(out_row, _i64(stride)), _i64(i * dilation - top))
            inside = b.and_(b.icmp_signed(">=", input_row, _i64(0)), b.icmp_signed("<", input_row, _i64(self.height)))
            safe = b.select(inside, input_row, _i64(0))
            pixel = b.add(b.mul(n, _i64(self.height)), safe)
            rows.append((inside, b.gep(self.image, [b.mul(pixel, _i64(self.width * self.channels))])))
        return rows

    def _block(self, first_channel: ll.Value, vectors: int, last_lanes: int) -> None:
        """Output channels [first_channel, + vectors * lanes), the last vector `last_lanes` wide."""
        b = self.b
        for tile in row_tiles(self.conv, self.pixels):
            if isinstance(tile, Tile):
                self._tile(_i64(tile.start), tile.count, tile.taps, first_channel, vectors, last_lanes)
                continue
            with for_range(b, _i64(tile[0]), _i64(tile[1]), "conv_tile") as number:
                self._tile(b.mul(number, _i64(self.pixels)), self.pixels, None, first_channel, vectors, last_lanes)

    def _tile(self, start: ll.Value, count: int, taps: tuple[tuple[int, ...], ...] | None,
              first_channel: ll.Value, vectors: int, last_lanes: int) -> None:
        b, kernel = self.b, self.kernel
        conv = self.conv
        sums = [[kernel.alloca(self.vector, f"conv_sum{p}_{v}") for v in range(vectors)] for p in range(count)]
        zero = constant_of(self.vector, 0)
        for row in sums:
            for total in row:
                b.store(zero, total)
        mask = None if last_lanes == self.lanes else ll.Constant(
            ll.VectorType(ll.IntType(1), self.lanes), [ll.Constant(ll.IntType(1), int(lane < last_lanes))
                                                       for lane in range(self.lanes)])
        step = conv.strides[1] * self.channels  # elements between the input pixels of neighbouring outputs
        for i, (inside, input_row) in enumerate(self.rows):
            with b.if_then(inside):
                for j in range(self.window_width):
                    active = [p for p in range(count) if taps is None or j in taps[p]]
                    if not active:
                        continue
                    column = b.sub(b.add(b.mul(start, _i64(conv.strides[1])), _i64(j * conv.dilations[1])),
                                   _i64(conv.pads[2]))
                    # Pixel 0's column may be in the padding when it is not active: only offsets are formed
                    # from it, and the active pixels' addresses are inside the image.
                    first_pixel = b.gep(input_row, [b.mul(column, _i64(self.channels))])
                    tap = (i * self.window_width + j) * self.channels * self.out
                    filter_row = b.gep(self.filter, [b.add(_i64(tap), first_channel)])
                    with for_range(b, _i64(0), _i64(self.channels), "conv_channel") as channel:
                        weights = b.gep(filter_row, [b.mul(channel, _i64(self.out))])
                        loaded = [self._load(b.gep(weights, [_i64(v * self.lanes)]),
                                             mask if v == vectors - 1 else None) for v in range(vectors)]
                        for p in active:
                            value = b.load(b.gep(first_pixel, [b.add(channel, _i64(p * step))]))
                            broadcast = splat(b, value, self.lanes)
                            for v in range(vectors):
                                total = sums[p][v]
                                b.store(b.call(self.fma, [broadcast, loaded[v], b.load(total)]), total)
        for p in range(count):
            pixel = b.gep(self.out_pointer, [b.add(b.mul(b.add(start, _i64(p)), _i64(self.out)), first_channel)])
            for v in range(vectors):
                self._store(b.load(sums[p][v]), b.gep(pixel, [_i64(v * self.lanes)]),
                            mask if v == vectors - 1 else None)

    def _load(self, pointer: ll.Value, mask: ll.Value | None) -> ll.Value:
        if mask is not None:
            return masked_load(self.b, pointer, self.dtype, mask)
        return self.b.load(self.b.bitcast(pointer, self.vector.as_pointer()), align=self.dtype.itemsize)

    def _store(self, value: ll.Value, pointer: ll.Value, mask: ll.Value | None) -> None:
        if mask is not None:
            masked_store(self.b, value, pointer, self.dtype, mask)
            return
        self.b.store(value, self.b.bitcast(pointer, self.vector.as_pointer()), align=self.dtype.itemsize)


