"""Gradient rules of conv2d, extract_patches and fold_patches.

conv2d's gradients are those of its meaning, extract_patches and a matmul (Note [convolution as
one matmul] in compiler/conv_ops.py), with one shortcut: at stride 1 the input's gradient is
itself a convolution (conv2d_vjp says which), so it runs as fast as the forward one.

extract_patches copies image pixels into patches (a pixel into every patch whose
window covers it), so its gradient adds each patch element back to its pixel:
fold_patches with the same window. fold_patches is linear with extract_patches
as its transpose, so its gradient gathers the cotangent's pixels into patches.
"""

from __future__ import annotations

from flowc.ir import Builder, Operation, Value

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
    """dw: the patches of x, as a [N*OH*OW, KH*KW*C] matrix, transposed times dy as [N*OH*OW, O].
    dx: a convolution of dy (transposed_pads says when), else dy @ w^T folded back into pixels."""
    x, w = op.operands
    kh, kw, channels, out = w.type.shape
    taps = kh * kw * channels
    patches = b.extract_patches(x, **_patch_attributes(op))
    dw = b.reshape(b.matmul(b.reshape(patches, shape=(-1, taps)), b.reshape(dy, shape=(-1, out)), transpose_a=True),
                   shape=tuple(w.type.shape))
    pads = transposed_pads(op)
    if pads is not None:
        # dx[p] = sum over taps i of dy[p - i*D + top] w[i]: the filter flipped in space, its channel axes
        # swapped, correlated with dy padded by (extent - 1 - pad) on each side.
        flipped = b.slice(w, begin=(-1, -1, 0, 0), end=(None, None, None, None), strides=(-1, -1, 1, 1),
                          squeeze_dims=())
        return [b.conv2d(dy, b.transpose(flipped, perm=(0, 1, 3, 2)), window=op.window, strides=(1, 1),
                         dilations=op.dilations, pads=pads), dw]
    size = x.type.shape[1:3]
    if None in size:
        raise unsupported(op, f"folding patches back needs the image's height and width, {x.type} has them unknown")
    rows = b.matmul(b.reshape(dy, shape=(-1, out)), b.reshape(w, shape=(taps, out)), transpose_b=True)
    columns = b.reshape(rows, shape=(-1, *dy.type.shape[1:3], taps))
    return [b.fold_patches(columns, size=tuple(size), **_patch_attributes(op)), dw]


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
