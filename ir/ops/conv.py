"""Convolutions: conv2d, and the patches it may be computed from, extract_patches ("im2col")
and its adjoint fold_patches ("col2im").

conv2d is the 2-D cross-correlation of an NHWC image with an HWIO filter. Its meaning is
extract_patches followed by one matmul with the filter reshaped to [KH*KW*C, O] (Note
[convolution as one matmul] in compiler/conv_ops.py), and a target computes it either so
(passes/expand_convolutions.py rewrites it into those ops) or directly (Note [direct
convolution] in passes/schedule.py). extract_patches and fold_patches are plain data
movement, so each is one loop over its result (a "single" kernel on the CPU) and neither
needs a kernel of its own for the multiply-adds, which BLAS runs.

Shared attributes, all static: `window` (KH, KW), `strides` (SH, SW), `dilations`
(DH, DW) and `pads` (top, bottom, left, right) of zeros around the image.
"""

from __future__ import annotations

from typing import ClassVar, Iterator

import numpy as np

from ..errors import FlowcTypeError
from ..op import Op
from ..types import FLOATS, NUMERIC, Dim, DType, TensorType


class PatchOp(Op):
    attrs = {"window": tuple[int, ...], "strides": tuple[int, ...], "dilations": tuple[int, ...],
             "pads": tuple[int, ...]}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = NUMERIC

    def check_attributes(self, x: TensorType, what: str) -> None:
        self.check_dtype(x, what)
        if x.rank != 4:
            raise FlowcTypeError(f"{what} must have rank 4, got {x}", op=self.name)
        lengths = (len(self.window), len(self.strides), len(self.dilations), len(self.pads))
        if lengths != (2, 2, 2, 4) or min(self.window + self.strides + self.dilations) < 1 or min(self.pads) < 0:
            raise FlowcTypeError(f"window, strides, dilations need 2 ints >= 1 and pads 4 ints >= 0, got "
                                 f"{self.window}, {self.strides}, {self.dilations}, {self.pads}", op=self.name)

    def out_size(self, size: Dim, axis: int) -> Dim:
        """The number of window positions along spatial `axis` (0: height, 1: width) of an image of `size`."""
        if size is None:
            return None
        padded = size + self.pads[2 * axis] + self.pads[2 * axis + 1]
        count = (padded - (self.window[axis] - 1) * self.dilations[axis] - 1) // self.strides[axis] + 1
        if count < 1:
            raise FlowcTypeError(f"the window {list(self.window)} (dilations {list(self.dilations)}) does not fit "
                                 f"in the padded image of size {padded} along spatial axis {axis}", op=self.name)
        return count

    def taps(self) -> Iterator[tuple[int, int, int]]:
        """(tap number, row offset, column offset) of each window tap, in row-major order."""
        for i in range(self.window[0]):
            for j in range(self.window[1]):
                yield i * self.window[1] + j, i * self.dilations[0], j * self.dilations[1]

    def views(self, padded: np.ndarray, out_height: int, out_width: int) -> Iterator[tuple[int, np.ndarray]]:
        """(tap, the [N, OH, OW, C] view of `padded` that the tap reads), as basic-indexing views."""
        (sh, sw) = self.strides
        for tap, row, column in self.taps():
            yield tap, padded[:, row:row + (out_height - 1) * sh + 1:sh, column:column + (out_width - 1) * sw + 1:sw]

    def patches(self, x: np.ndarray, out_height: int, out_width: int) -> np.ndarray:
        """extract_patches' meaning: x zero-padded, each tap's view side by side, [N, OH, OW, KH*KW*C]."""
        top, bottom, left, right = self.pads
        padded = np.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)])
        return np.concatenate([view for _, view in self.views(padded, out_height, out_width)], axis=3)


class ExtractPatches(PatchOp):
    """[N, H, W, C] -> [N, OH, OW, KH*KW*C]: result[n, r, c, (i*KW + j)*C + k] is the zero-padded image at
    row r*SH + i*DH - top, column c*SW + j*DW - left, channel k."""

    name = "extract_patches"

    def infer_type(self, x: TensorType) -> TensorType:
        self.check_attributes(x, "image")
        n, height, width, channels = x.shape
        count = self.window[0] * self.window[1]
        return x.with_shape((n, self.out_size(height, 0), self.out_size(width, 1),
                             None if channels is None else count * channels))

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.patches(x, self.out_size(x.shape[1], 0), self.out_size(x.shape[2], 1))


class FoldPatches(PatchOp):
    """The adjoint of extract_patches: [N, OH, OW, KH*KW*C] -> [N, H, W, C], each patch element added back
    to the image pixel it came from (padding dropped). `size` is (H, W)."""

    name = "fold_patches"
    attrs = {**PatchOp.attrs, "size": tuple[int, ...]}

    def infer_type(self, patches: TensorType) -> TensorType:
        self.check_attributes(patches, "patches")
        n, out_height, out_width, columns = patches.shape
        count = self.window[0] * self.window[1]
        if len(self.size) != 2 or min(self.size) < 0:
            raise FlowcTypeError(f"size must be 2 ints >= 0, got {self.size}", op=self.name)
        expected = (self.out_size(self.size[0], 0), self.out_size(self.size[1], 1))
        if any(got is not None and got != want for got, want in zip((out_height, out_width), expected)) \
                or (columns is not None and columns % count):
            raise FlowcTypeError(f"patches {patches} do not come from an image of size {list(self.size)} with "
                                 f"window {list(self.window)}: expected [N, {expected[0]}, {expected[1]}, "
                                 f"a multiple of {count}]", op=self.name)
        return patches.with_shape((n, *self.size, None if columns is None else columns // count))

    def reference(self, patches: np.ndarray) -> np.ndarray:
        top, bottom, left, right = self.pads
        count = self.window[0] * self.window[1]
        channels = patches.shape[3] // count
        n, (height, width) = patches.shape[0], self.size
        padded = np.zeros((n, height + top + bottom, width + left + right, channels), dtype=patches.dtype)
        for tap, view in self.views(padded, patches.shape[1], patches.shape[2]):
            view += patches[..., tap * channels:(tap + 1) * channels]
        return np.array(padded[:, top:top + height, left:left + width])


class Conv2D(PatchOp):
    """[N, H, W, C] image, [KH, KW, C, O] filter -> [N, OH, OW, O]: result[n, r, c, o] is the sum over
    i, j, k of the zero-padded image at row r*SH + i*DH - top, column c*SW + j*DW - left, channel k,
    times filter[i, j, k, o]. `window` is the filter's (KH, KW)."""

    name = "conv2d"
    num_operands = 2
    dtypes = FLOATS

    def infer_type(self, x: TensorType, w: TensorType) -> TensorType:
        self.check_attributes(x, "image")
        self.check_dtype(w, "filter")
        if w.dtype != x.dtype or w.rank != 4 or None in w.shape or tuple(w.shape[:2]) != tuple(self.window) \
                or (x.shape[3] is not None and x.shape[3] != w.shape[2]):
            raise FlowcTypeError(f"the filter must be a known [{self.window[0]}, {self.window[1]}, {x.shape[3]}, O] "
                                 f"of the image's dtype, got {w} for the image {x}", op=self.name)
        n, height, width, _ = x.shape
        return x.with_shape((n, self.out_size(height, 0), self.out_size(width, 1), w.shape[3]))

    def reference(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        patches = self.patches(x, self.out_size(x.shape[1], 0), self.out_size(x.shape[2], 1))
        pixels, taps = int(np.prod(patches.shape[:3])), patches.shape[3]  # no -1: a size may be 0
        product = patches.reshape(pixels, taps) @ w.reshape(taps, w.shape[3])
        return product.reshape(*patches.shape[:3], w.shape[3]).astype(x.dtype)


class Conv2DBackpropFilter(PatchOp):
    """conv2d's gradient with respect to its filter: [N, H, W, C] image x, [N, OH, OW, O] output gradient
    dy -> [KH, KW, C, O]: result[i, j, k, o] is the sum over n, r, c of the zero-padded image at row
    r*SH + i*DH - top, column c*SW + j*DW - left, channel k, times dy[n, r, c, o]. `window` is the
    filter's (KH, KW); the other attributes are the convolution's."""

    name = "conv2d_backprop_filter"
    num_operands = 2
    dtypes = FLOATS

    def infer_type(self, x: TensorType, dy: TensorType) -> TensorType:
        self.check_attributes(x, "image")
        self.check_dtype(dy, "output gradient")
        expected = (self.out_size(x.shape[1], 0), self.out_size(x.shape[2], 1))
        if dy.dtype != x.dtype or dy.rank != 4 or x.shape[3] is None or dy.shape[3] is None \
                or any(got is not None and want is not None and got != want
                       for got, want in zip(dy.shape[:3], (x.shape[0], *expected))):
            batch = "N" if x.shape[0] is None else x.shape[0]
            raise FlowcTypeError(f"the output gradient must be [{batch}, {expected[0]}, {expected[1]}, O] of the "
                                 f"image's dtype, channels known, got {dy} for the image {x}", op=self.name)
        return x.with_shape((*self.window, x.shape[3], dy.shape[3]))

    def reference(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        patches = self.patches(x, dy.shape[1], dy.shape[2])
        pixels, taps = int(np.prod(patches.shape[:3])), patches.shape[3]  # no -1: a size may be 0
        product = patches.reshape(pixels, taps).T @ dy.reshape(pixels, dy.shape[3])
        return product.reshape(*self.window, x.shape[3], dy.shape[3]).astype(x.dtype)
