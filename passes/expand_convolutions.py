"""Expand conv2d and its filter gradient conv2d_backprop_filter into their meaning: extract_patches,
one matmul, reshapes (Note [convolution as one matmul] in compiler/conv_ops.py).

A target runs this before fusion on every conv2d it has no kernel of its own for: the GPU on
all of them, the CPU on those its direct kernel does not take (Note [direct convolution] in
passes/schedule.py, whose predicate the CPU target passes here as `keep`). What it leaves
is ordinary IR: the patches become a "single" kernel, the product a matmul kernel with the
bias and activation as its epilogue (tests/filecheck/fusion_conv_epilogue.ir), once the
reshape back to NHWC has moved below them: the pass applies that pattern of simplify's to
what it made (Note [reshape past elementwise] in passes/simplify.py), since the pipeline's
simplification ran before, on the conv2d.
"""

from __future__ import annotations

from typing import Callable

from flowc.ir import Builder, Module, Operation, Value

from .manager import Pass
from .rewrite import apply_patterns, pattern_table
from .simplify import elementwise_before_reshape

PATTERNS = (elementwise_before_reshape,)  # applied to the expanded IR (the module's docstring says why)


class ExpandConvolutions(Pass):
    """Rewrite each convolution for which `keep(op)` is false as extract_patches, reshape, matmul, reshape."""

    name = "expand-convolutions"

    def __init__(self, keep: Callable[[Operation], bool] = lambda op: False):
        self.keep = keep

    def run(self, module: Module) -> bool:
        convolutions = [op for function in module for op in function.walk()
                        if op.name in EXPANSIONS and not self.keep(op)]
        for op in convolutions:
            EXPANSIONS[op.name](op)
        if convolutions:
            apply_patterns(module, pattern_table(PATTERNS))
        return bool(convolutions)


def expand_conv2d(op: Operation) -> None:
    """patches [N*OH*OW, KH*KW*C] @ w [KH*KW*C, O], as [N, OH, OW, O]."""
    x, w = op.operands
    kh, kw, channels, out = w.type.shape
    taps = kh * kw * channels
    _, out_height, out_width, _ = op.result.type.shape
    b, rows = _patch_rows(op, taps)
    product = b.matmul(rows, b.reshape(w, shape=(taps, out)), transpose_a=False, transpose_b=False)
    _replace(op, b, product, (-1, out_height, out_width, out))


def expand_backprop_filter(op: Operation) -> None:
    """patches [N*OH*OW, KH*KW*C]^T @ dy [N*OH*OW, O], as [KH, KW, C, O]."""
    kh, kw, channels, out = op.result.type.shape
    b, rows = _patch_rows(op, kh * kw * channels)
    product = b.matmul(rows, b.reshape(op.operands[1], shape=(-1, out)), transpose_a=True, transpose_b=False)
    _replace(op, b, product, (kh, kw, channels, out))


def _patch_rows(op: Operation, taps: int) -> tuple[Builder, Value]:
    b = Builder.before(op)
    b.device = op.device
    patches = b.extract_patches(op.operands[0], window=op.window, strides=op.strides, dilations=op.dilations,
                                pads=op.pads)
    return b, b.reshape(patches, shape=(-1, taps))


def _replace(op: Operation, b: Builder, product: Value, shape: tuple[int, ...]) -> None:
    result = b.create("reshape", [product], {"shape": shape}, result_names=[op.result.name]).result
    op.result.replace_all_uses_with(result)
    op.erase()


EXPANSIONS: dict[str, Callable[[Operation], None]] = {"conv2d": expand_conv2d,
                                                       "conv2d_backprop_filter": expand_backprop_filter}
