"""Gradient rules of extract_patches and fold_patches: each is the other's adjoint.

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
