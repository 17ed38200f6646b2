"""extract_patches and fold_patches on the CPU: "single" kernels (kernels/single.py) over the result's
elements [begin, end), emitted as runs of channels rather than one element at a time.

Note [patches by channel runs]: both ops move whole channel vectors. A patch row (n, r, c, tap) of
extract_patches is C contiguous channels of one image pixel (or zeros where the window hangs over
the padding); an image pixel of fold_patches is the sum of C-channel runs of the patches whose
windows cover it. So the kernel walks rows, works out the pixel (the divisions) once per row, and
copies or sums a run of channels in an inner loop that LLVM vectorizes. A thread's share [begin,
end) may start or stop inside a row: the first and last rows are partial runs.
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, decompose, for_range
from ..types import I64, compute_type, constant_of, load_value, rounded, store_value
from .single import SINGLE_KERNELS


def _i64(value: int) -> ll.Constant:
    return ll.Constant(I64, value)


def _inside(b: ll.IRBuilder, index: ll.Value, limit: ll.Value) -> ll.Value:
    return b.and_(b.icmp_signed(">=", index, _i64(0)), b.icmp_signed("<", index, limit))


def _max(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _min(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _rows(kernel: Kernel, run: ll.Value, body: Callable[[ll.Value, ll.Value, ll.Value, ll.Value], None]) -> None:
    """body(row, row start, first channel, end channel) for each row of `run` elements that meets
    [begin, end) (Note [patches by channel runs])."""
    b = kernel.b
    width = _max(b, run, _i64(1))  # a run of 0 channels has no elements, so no rows: only avoid / 0
    first = b.sdiv(kernel.begin, width)
    last = b.sdiv(b.add(kernel.end, b.sub(width, _i64(1))), width)
    with for_range(b, first, last, "row") as row:
        start = b.mul(row, width)
        begin = _max(b, b.sub(kernel.begin, start), _i64(0))
        end = _min(b, b.sub(kernel.end, start), run)
        body(row, start, begin, end)


def emit_extract_patches(kernel: Kernel, op: Operation) -> None:
    b = kernel.b
    x, out = op.operands[0], op.result
    dtype = x.type.dtype
    height, width, channels = kernel.dim(x, 1), kernel.dim(x, 2), kernel.dim(x, 3)
    source, target = kernel.operand_pointer(0, dtype), kernel.result_pointer(0, dtype)
    taps = op.window[0] * op.window[1]
    row_sizes = [kernel.dim(out, 0), kernel.dim(out, 1), kernel.dim(out, 2), _i64(taps)]

    def body(row: ll.Value, start: ll.Value, begin: ll.Value, end: ll.Value) -> None:
        n, out_row, out_column, tap = decompose(b, row, row_sizes)
        tap_row = b.udiv(tap, _i64(op.window[1]))
        tap_column = b.sub(tap, b.mul(tap_row, _i64(op.window[1])))
        pixel_row = b.sub(b.add(b.mul(out_row, _i64(op.strides[0])), b.mul(tap_row, _i64(op.dilations[0]))),
                          _i64(op.pads[0]))
        pixel_column = b.sub(b.add(b.mul(out_column, _i64(op.strides[1])),
                                   b.mul(tap_column, _i64(op.dilations[1]))), _i64(op.pads[2]))
        inside = b.and_(_inside(b, pixel_row, height), _inside(b, pixel_column, width))
        with b.if_else(inside) as (copy, zero):
            with copy:
                pixel = b.add(b.mul(b.add(b.mul(n, height), pixel_row), width), pixel_column)
                base = b.mul(pixel, channels)
                with for_range(b, begin, end, "channel") as channel:
                    value = load_value(b, b.gep(source, [b.add(base, channel)]), dtype)
                    store_value(b, value, b.gep(target, [b.add(start, channel)]), dtype)
            with zero:
                with for_range(b, begin, end, "channel") as channel:
                    store_value(b, constant_of(compute_type(dtype), 0), b.gep(target, [b.add(start, channel)]),
                                dtype)

    _rows(kernel, channels, body)


def emit_fold_patches(kernel: Kernel, op: Operation) -> None:
    """Each image pixel: the sum, over the taps whose window position lands on it, of that run."""
    b = kernel.b
    patches, out = op.operands[0], op.result
    dtype = patches.type.dtype
    taps = op.window[0] * op.window[1]
    channels = kernel.dim(out, 3)
    out_height, out_width = kernel.dim(patches, 1), kernel.dim(patches, 2)
    source, target = kernel.operand_pointer(0, dtype), kernel.result_pointer(0, dtype)
    row_sizes = [kernel.dim(out, 0), kernel.dim(out, 1), kernel.dim(out, 2)]
    zero = constant_of(compute_type(dtype), 0)
    add = b.fadd if dtype.kind == "float" else b.add

    def body(row: ll.Value, start: ll.Value, begin: ll.Value, end: ll.Value) -> None:
        n, pixel_row, pixel_column = decompose(b, row, row_sizes)
        runs = []  # (whether the tap's window position is real, the start of its run)
        for i in range(op.window[0]):
            for j in range(op.window[1]):
                position_row, row_ok = _position(b, pixel_row, op.pads[0] - i * op.dilations[0], op.strides[0],
                                                 out_height)
                position_column, column_ok = _position(b, pixel_column, op.pads[2] - j * op.dilations[1],
                                                       op.strides[1], out_width)
                ok = b.and_(row_ok, column_ok)
                patch = b.add(b.mul(b.add(b.mul(n, out_height), position_row), out_width), position_column)
                run = b.mul(b.add(b.mul(patch, _i64(taps)), _i64(i * op.window[1] + j)), channels)
                runs.append((ok, b.select(ok, run, _i64(0))))
        with for_range(b, begin, end, "channel") as channel:
            total: ll.Value = zero
            for ok, run in runs:
                element = load_value(b, b.gep(source, [b.add(run, channel)]), dtype)
                # float16: rounded to half per tap, as the reference's view += patch in float16
                total = rounded(b, add(total, b.select(ok, element, zero)), dtype)
            store_value(b, total, b.gep(target, [b.add(start, channel)]), dtype)

    _rows(kernel, channels, body)


def _position(b: ll.IRBuilder, pixel: ll.Value, shift: int, stride: int, count: ll.Value) -> tuple[ll.Value, ll.Value]:
    """The window position (pixel + shift) / stride and whether it is a whole number in [0, count);
    0 where it is not, so that the run it starts is inside the patches."""
    offset = b.add(pixel, _i64(shift))
    nonnegative = b.icmp_signed(">=", offset, _i64(0))
    safe = b.select(nonnegative, offset, _i64(0))
    position = safe if stride == 1 else b.udiv(safe, _i64(stride))
    exact = b.icmp_signed("==", b.mul(position, _i64(stride)), safe)
    ok = b.and_(b.and_(nonnegative, exact), b.icmp_signed("<", position, count))
    return b.select(ok, position, _i64(0)), ok


SINGLE_KERNELS["extract_patches"] = emit_extract_patches
SINGLE_KERNELS["fold_patches"] = emit_fold_patches
