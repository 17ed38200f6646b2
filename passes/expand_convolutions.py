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

The convolutions it keeps get their filter copied into the arena when the function takes it as an
argument (Note [aligned filter]).
"""

from __future__ import annotations

from typing import Callable

from flowc.ir import Builder, Function, Module, Operation, Value

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
        copied = [copy_filter(function, op) for function in module for op in function.walk()
                  if op.name == "conv2d" and self.keep(op)]
        return bool(convolutions) or any(copied)


# Note [aligned filter]
# The direct kernel (Note [direct convolution] in passes/schedule.py) loads, per input channel, V
# vectors of the filter's output channels, w[i, j, k, o0 : o0 + V*L]. A filter that numpy allocated is
# 16-byte aligned, so with AVX-512 every one of those loads crosses a cache line, and a large filter
# streams from L2 once per tile: the 28x28x128 and 56x56x64 forwards of bench/bench_conv.py ran about
# a fifth slower with the filter fed from numpy than 64-byte aligned (bench/RESULTS.md). What kernels
# write (temps, and results, so variables' values too) is 64-byte aligned already
# (runtime/allocator.py); a fed argument may start anywhere. So a kept conv2d whose filter is an
# argument of the function, of at least ALIGNED_FILTER_BYTES, reads an `identity` copy of it instead:
# a loop kernel of its own, whose result is an arena temp (64-byte aligned: PlanMemory.layout),
# written once per run and read by every tile. The copy costs one pass over the filter, next to a
# pass over it per tile of P output pixels; it is wasted where the argument was aligned (a variable:
# the IR does not tell a feed from one), so it is made only for output images of at least
# ALIGNED_FILTER_PIXELS pixels, some 16 tiles or more per image (a 7x7 layer of a 3x3x512x512
# filter at batch 1 would copy 9 MiB to speed up 14 passes over it). A smaller filter stays in L1,
# where the loads that cross a line cost little, while the copy's kernel would be a visible part of a
# small convolution (examples/cnn.py's layers, whose filters are variables in any case).
ALIGNED_FILTER_BYTES = 1 << 15
ALIGNED_FILTER_PIXELS = 64


def copy_filter(function: Function, op: Operation) -> bool:
    """Note [aligned filter]: conv2d `op` reads an identity copy of its filter when the filter is one of
    `function`'s arguments of at least ALIGNED_FILTER_BYTES and its output images have at least
    ALIGNED_FILTER_PIXELS pixels."""
    w = op.operands[1]
    if not any(w is argument for argument in function.args):
        return False
    if (w.type.size or 0) * w.type.dtype.itemsize < ALIGNED_FILTER_BYTES:
        return False
    _, out_height, out_width, _ = op.result.type.shape
    if out_height * out_width < ALIGNED_FILTER_PIXELS:
        return False
    b = Builder.before(op)
    b.device = op.device
    copy = b.create("identity", [w], result_names=[f"{w.name}_aligned" if w.name else None]).result
    op.set_operand(1, copy)
    return True


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
