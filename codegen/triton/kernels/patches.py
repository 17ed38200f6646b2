"""Single kernels of convolution patches (ir/ops/conv.py): extract_patches ("im2col") and its adjoint
fold_patches ("col2im"), each an element of its result at a time (single.py's output_elements).

fold_patches sums, per image pixel, the patch elements that came from it, tap after tap in the
reference's order (it adds the taps' views one after another), from +0.0; a tap that missed the pixel
adds 0, which changes no sum that starts at +0.0, so float results agree bit for bit.
"""

from __future__ import annotations

from flowc.ir import Operation

from ..expressions import triton_dtype
from ..kernel import TritonKernel, emits_single, single_op
from .single import SingleWriter, load, output_elements


@emits_single("extract_patches")
def emit_extract_patches(op: Operation, name: str) -> TritonKernel:
    """result[n, r, c, (i*KW + j)*C + k] = the zero-padded image at (r*SH + i*DH - top, c*SW + j*DW - left, k)."""
    inner = single_op(op)
    x = inner.operands[0]
    (sh, sw), (dh, dw), (_, kw) = inner.strides, inner.dilations, inner.window
    top, left = inner.pads[0], inner.pads[2]

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        n, r, c, column = coordinates
        channels = writer.dim(x, 3)
        lines = writer.lines
        lines.append(f"tap = {column} // {channels}")
        lines.append(f"k = {column} % {channels}")
        lines.append(f"row = {r} * {sh} + (tap // {kw}) * {dh} - {top}")
        lines.append(f"col = {c} * {sw} + (tap % {kw}) * {dw} - {left}")
        lines.append(f"within = ({mask}) & (row >= 0) & (row < {writer.dim(x, 1)}) & (col >= 0) & "
                     f"(col < {writer.dim(x, 2)})")
        return load(writer, x, [n, "row", "col", "k"], "within", other="0")

    return output_elements(op, name, value)


@emits_single("fold_patches")
def emit_fold_patches(op: Operation, name: str) -> TritonKernel:
    """image[n, y, x, k] = the sum over taps (i, j) of patches[n, r, c, (i*KW + j)*C + k] where
    y + top = r*SH + i*DH and x + left = c*SW + j*DW."""
    inner = single_op(op)
    patches = inner.operands[0]
    (sh, sw), (dh, dw), (kh, kw) = inner.strides, inner.dilations, inner.window
    top, left = inner.pads[0], inner.pads[2]
    dtype = triton_dtype(patches.type.dtype)

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        n, y, x, k = coordinates
        channels = writer.dim(op.results[0], 3)
        lines = writer.lines
        lines.append(f"image = tl.zeros([BLOCK], {dtype})")
        for i in range(kh):
            for j in range(kw):
                lines.append(f"down = {y} + {top - i * dh}")
                lines.append(f"across = {x} + {left - j * dw}")
                lines.append(f"r = down // {sh}")
                lines.append(f"c = across // {sw}")
                lines.append(f"hit = ({mask}) & (down >= 0) & (down % {sh} == 0) & (r < {writer.dim(patches, 1)}) & "
                             f"(across >= 0) & (across % {sw} == 0) & (c < {writer.dim(patches, 2)})")
                column = f"{i * kw + j} * {channels} + {k}"
                lines.append(f"image = image + {load(writer, patches, [n, 'r', 'c', column], 'hit', other='0')}")
        return "image"

    return output_elements(op, name, value)
