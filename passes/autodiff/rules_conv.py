"""Gradient rules of conv2d, conv2d_backprop_filter, extract_patches and fold_patches.

conv2d's filter gradient is an op of its own, conv2d_backprop_filter, which a target computes
directly or as its meaning, the patches transposed times dy (passes/expand_convolutions.py).
The input gradient is that of conv2d's meaning, a matmul then fold_patches, except at stride 1,
where it is itself a convolution (input_gradient says which), as fast as the forward one.

extract_patches copies image pixels into patches (a pixel into every patch whose
window covers it), so its gradient adds each patch element back to its pixel:
fold_patches with the same window. fold_patches is linear with extract_patches
as its transpose, so its gradient gathers the cotangent's pixels into patches.
"""

from __future__ import annotations

from flowc.ir import Builder, Operation, Value
from flowc.ir.types import TensorType

from .rules import Grads, unsupported, vjp


def _patch_attributes(op: Operation) -> dict[str, tuple[int, ...]]:
    return {"window": op.window, "strides": op.strides, "dilations": op.dilations, "pads": op.pads}


@vjp("extract_patches")
def extract_patches_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    (x,) = op.operands
    size = x.type.shape[1:3]
    if None in size:
        raise unsupported(op, f"folding patches back needs the image's height and width, {x.type} has them unknown")
    return [b.fold_patches(dy, size=tuple(size), **_patch_attributes(op))]


@vjp("fold_patches")
def fold_patches_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    return [b.extract_patches(dy, **_patch_attributes(op))]


@vjp("conv2d")
def conv2d_vjp(b: Builder, op: Operation, dy: Value) -> Grads:
    """dx: input_gradient; dw: conv2d_backprop_filter, the patches of x (as [N*OH*OW, KH*KW*C]) transposed
    times dy (as [N*OH*OW, O])."""
    x, w = op.operands
    return [input_gradient(b, op, x.type, w, dy), b.conv2d_backprop_filter(x, dy, **_patch_attributes(op))]


@vjp("conv2d_backprop_filter")
def conv2d_backprop_filter_vjp(b: Builder, op: Operation, g: Value) -> Grads:
    """Linear in each operand: g (a filter's shape) reaches x as the input gradient of a convolution by
    g of output gradient dy, and reaches dy as that convolution of x."""
    x, dy = op.operands
    return [input_gradient(b, op, x.type, g, dy), b.conv2d(x, g, **_patch_attributes(op))]


def input_gradient(b: Builder, op: Operation, x: TensorType, w: Value, dy: Value) -> Value:
    """The gradient, with respect to x, of the convolution by w with op's attributes, whose output gradient
    is dy: a convolution of dy (transposed_pads says when), else dy @ w^T folded back into pixels."""
    kh, kw, channels, out = w.type.shape
    pads = transposed_pads(op)
    if pads is not None:
        # dx[p] = sum over taps i of dy[p - i*D + top] w[i]: the filter flipped in space, its channel axes
        # swapped, correlated with dy padded by (extent - 1 - pad) on each side.
        flipped = b.slice(w, begin=(-1, -1, 0, 0), end=(None, None, None, None), strides=(-1, -1, 1, 1),
                          squeeze_dims=())
        return b.conv2d(dy, b.transpose(flipped, perm=(0, 1, 3, 2)), window=op.window, strides=(1, 1),
                        dilations=op.dilations, pads=pads)
    size = x.shape[1:3]
    if None in size:
        raise unsupported(op, f"folding patches back needs the image's height and width, {x} has them unknown")
    taps = kh * kw * channels
    rows = b.matmul(b.reshape(dy, shape=(-1, out)), b.reshape(w, shape=(taps, out)), transpose_b=True)
    columns = b.reshape(rows, shape=(-1, *dy.type.shape[1:3], taps))
    return b.fold_patches(columns, size=tuple(size), **_patch_attributes(op))


def transposed_pads(op: Operation) -> tuple[int, ...] | None:
    """The pads of the convolution of dy that is conv2d's input gradient, or None where there is
    none: at stride 1 (a stride leaves pixels between the window positions, which a plain
    convolution of dy would not skip) and when no pad is wider than the window's extent less one
    (such a pad holds window positions that read only zeros; their dy would be dropped)."""
    if tuple(op.strides) != (1, 1):
        return None
    extents = [(k - 1) * d for k, d in zip(op.window, op.dilations)]
    pads = (extents[0] - op.pads[0], extents[0] - op.pads[1], extents[1] - op.pads[2], extents[1] - op.pads[3])
    return pads if min(pads) >= 0 else None
