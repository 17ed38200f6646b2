"""Expand conv2d into its meaning: extract_patches, one matmul, reshapes (Note [convolution as one
matmul] in compiler/conv_ops.py).

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

from flowc.ir import Builder, Module, Operation

from .manager import Pass
from .rewrite import apply_patterns, pattern_table
from .simplify import elementwise_before_reshape

PATTERNS = (elementwise_before_reshape,)  # applied to the expanded IR (the module's docstring says why)


class ExpandConvolutions(Pass):
    """Rewrite each conv2d for which `keep(op)` is false as extract_patches, reshape, matmul, reshape."""

    name = "expand-convolutions"

    def __init__(self, keep: Callable[[Operation], bool] = lambda op: False):
        self.keep = keep

    def run(self, module: Module) -> bool:
        convolutions = [op for function in module for op in function.walk()
                        if op.name == "conv2d" and not self.keep(op)]
        for op in convolutions:
            expand(op)
        if convolutions:
            apply_patterns(module, pattern_table(PATTERNS))
        return bool(convolutions)


def expand(op: Operation) -> None:
    x, w = op.operands
    kh, kw, channels, out = w.type.shape
    taps = kh * kw * channels
    _, out_height, out_width, _ = op.result.type.shape
    b = Builder.before(op)
    b.device = op.device
    patches = b.extract_patches(x, window=op.window, strides=op.strides, dilations=op.dilations, pads=op.pads)
    rows = b.reshape(patches, shape=(-1, taps))
    product = b.matmul(rows, b.reshape(w, shape=(taps, out)), transpose_a=False, transpose_b=False)
    result = b.create("reshape", [product], {"shape": (-1, out_height, out_width, out)},
                      result_names=[op.result.name]).result
    op.result.replace_all_uses_with(result)
    op.erase()
