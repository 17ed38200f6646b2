"""fc.nn convolutions and pooling, built from conv2d (ir/ops/conv.py), matmul and slices.

Note [convolution as one matmul]: a convolution is extract_patches (ir/ops/conv.py:
for each output pixel, the KH*KW input pixels under the filter, zero-padded, in one
[N, OH, OW, KH*KW*C] tensor, "im2col") and one matmul of that, as a
[N*OH*OW, KH*KW*C] matrix, by the filter reshaped to [KH*KW*C, O], which BLAS runs.
That is the meaning of the IR's conv2d op, and how a target computes it unless it has
a faster way (passes/expand_convolutions.py; the CPU's is Note [direct convolution] in
passes/schedule.py). The gradients follow from the rules of those ops: the filter's is
one matmul of the patches with the output gradient, the input's a matmul and then
fold_patches (the adjoint of extract_patches), or at stride 1 a convolution of the
output gradient (passes/autodiff/rules_conv.py). Composing the patches from KH*KW
strided slices and a concat instead gives the same values, but as KH*KW+1 copies, and
its gradient as KH*KW scatters: 2 to 7 times slower at 28x28x128 (measured).
conv2d_transpose and conv1d are conv2d of a rearranged input and filter.

depthwise_conv2d and the pools read the KH*KW strided slices of the padded input
(_windows) and combine them elementwise: a product and sum per channel, a maximum, a
sum. Their padding is a concat with a block of the pad value, whose shape comes from
`where(false, edge of x, value)`, which broadcasts a size-1 slice of x over the pad
width, so an unknown batch dim needs no static shape.

Layouts follow TF1: data_format NHWC (default) or NCHW, which is transposed to
NHWC and back; filters are [KH, KW, in, out] (conv2d), [KH, KW, in, multiplier]
(depthwise_conv2d), [KH, KW, out, in] (conv2d_transpose), [KW, in, out]
(conv1d). The spatial dims must be known when the graph is built (they fix the
slice bounds); the batch dim may be None.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from flowc.ir.errors import FlowcTypeError, GraphError

from .array_ops import concat, expand_dims, reshape, squeeze, strided_slice, transpose
from .graph import Tensor, name_scope
from .math_ops import apply, constant, convert_to_tensor, equal, maximum, reduce_max, reduce_min, reduce_sum, where
from .sources import user_location

__all__ = ["avg_pool", "bias_add", "conv1d", "conv2d", "conv2d_transpose", "depthwise_conv2d", "max_pool",
           "max_pool2d", "avg_pool2d"]

Pads = list[tuple[int, int]]


def _fail(op: str, message: str, error: type = GraphError) -> Exception:
    return error(message, op=op, where=user_location())


def _layout(op: str, data_format: str | None, rank: int) -> bool:
    """True when channels come first (NCHW / NCW); TF1's names and defaults."""
    last = {4: "NHWC", 3: "NWC"}[rank]
    first = {4: "NCHW", 3: "NCW"}[rank]
    if data_format in (None, last):
        return False
    if data_format == first:
        return True
    raise _fail(op, f"data_format must be {last!r} or {first!r}, got {data_format!r}")


def _spatial(op: str, what: str, value: Any, channels_first: bool, default: int = 1) -> tuple[int, int]:
    """strides / dilations / ksize: an int, or a list of 1, 2 or 4 ints (batch and channel entries 1)."""
    if value is None:
        return default, default
    values = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(values) == 1:
        values = values * 2
    elif len(values) == 4:
        outer = (values[0], values[1]) if channels_first else (values[0], values[3])
        if outer != (1, 1):
            raise _fail(op, f"{what} {values} must be 1 in the batch and channel dims")
        values = values[2:] if channels_first else values[1:3]
    elif len(values) != 2:
        raise _fail(op, f"{what} must be an int or a list of 1, 2 or 4 ints, got {value!r}")
    if min(values) < 1:
        raise _fail(op, f"{what} must be >= 1, got {value!r}")
    return values[0], values[1]


def _rank4(op: str, x: Tensor, what: str) -> None:
    if x.type.rank != 4:
        raise _fail(op, f"{what} must have rank 4, got {x.type}", FlowcTypeError)


def _spatial_dims(op: str, x: Tensor) -> tuple[int, int]:
    height, width = x.type.shape[1], x.type.shape[2]
    if height is None or width is None:
        raise _fail(op, f"the spatial dims of the input must be known when the graph is built, got {x.type}",
                    FlowcTypeError)
    return height, width


def _pads(op: str, padding: Any, sizes: Sequence[int], windows: Sequence[int], strides: Sequence[int],
          channels_first: bool) -> Pads:
    """(before, after) per spatial dim: SAME as TF1 (extra pad after), VALID none, or an explicit list."""
    if isinstance(padding, str):
        if padding == "VALID":
            return [(0, 0) for _ in sizes]
        if padding == "SAME":
            pads = []
            for size, window, stride in zip(sizes, windows, strides):
                total = max((-(-size // stride) - 1) * stride + window - size, 0)
                pads.append((total // 2, total - total // 2))
            return pads
        raise _fail(op, f"padding must be 'SAME', 'VALID' or a list of pairs, got {padding!r}")
    try:
        pairs = [(int(a), int(b)) for a, b in padding]
    except (TypeError, ValueError):
        raise _fail(op, f"padding must be 'SAME', 'VALID' or a list of pairs, got {padding!r}") from None
    rank = len(sizes) + 2
    if len(pairs) != rank:
        raise _fail(op, f"explicit padding needs {rank} (before, after) pairs, got {padding!r}")
    outer = [pairs[0], pairs[1]] if channels_first else [pairs[0], pairs[-1]]
    inner = pairs[2:] if channels_first else pairs[1:-1]
    if any(pair != (0, 0) for pair in outer) or any(min(pair) < 0 for pair in inner):
        raise _fail(op, f"explicit padding must be 0 in the batch and channel dims and >= 0, got {padding!r}")
    return inner


def _pad_axis(x: Tensor, axis: int, before: int, after: int, value: float) -> Tensor:
    """x with `before`/`after` entries of `value` added along `axis` (the module's docstring says how)."""
    if before == 0 and after == 0:
        return x
    pieces = []
    for count, at_end in ((before, False), (after, True)):
        if count == 0:
            continue
        index: list[Any] = [slice(None)] * x.type.rank
        index[axis] = slice(-1, None) if at_end else slice(0, 1)
        block = [1] * x.type.rank
        block[axis] = count
        fill = where(constant(np.zeros(block, dtype=bool)), strided_slice(x, tuple(index)),
                     constant(value, dtype=x.dtype))
        pieces.append((at_end, fill))
    return concat([p for e, p in pieces if not e] + [x] + [p for e, p in pieces if e], axis)


def _crop_or_pad(x: Tensor, axis: int, before: int, after: int) -> Tensor:
    """Like _pad_axis with zeros, where a negative count crops instead."""
    if before < 0 or after < 0:
        index: list[Any] = [slice(None)] * x.type.rank
        index[axis] = slice(max(-before, 0), x.type.shape[axis] - max(-after, 0))
        x = strided_slice(x, tuple(index))
    return _pad_axis(x, axis, max(before, 0), max(after, 0), 0.0)


def _check_strides_and_dilations(op: str, strides: tuple[int, int], dilations: tuple[int, int]) -> None:
    if max(strides) > 1 and max(dilations) > 1:
        raise _fail(op, f"strides {list(strides)} and dilations {list(dilations)} cannot both be > 1 (as TF1)")


def _out_sizes(op: str, x: Tensor, window: tuple[int, int], strides: tuple[int, int], dilations: tuple[int, int],
               pads: Pads) -> list[int]:
    """The number of window positions along each spatial dim of NHWC x."""
    height, width = _spatial_dims(op, x)
    padded = (height + sum(pads[0]), width + sum(pads[1]))
    outs = [(size - (k - 1) * d - 1) // s + 1 for size, k, d, s in zip(padded, window, dilations, strides)]
    if min(outs) < 1:
        raise _fail(op, f"the window {list(window)} (dilations {list(dilations)}) is larger than the padded input "
                        f"{list(padded)}", FlowcTypeError)
    return outs


def _windows(op: str, x: Tensor, window: tuple[int, int], strides: tuple[int, int], dilations: tuple[int, int],
             pads: Pads, value: float) -> tuple[list[Tensor], int, int]:
    """The KH*KW strided views [N, OH, OW, C] of padded NHWC x, one per window tap, in row-major order."""
    _check_strides_and_dilations(op, strides, dilations)
    outs = _out_sizes(op, x, window, strides, dilations, pads)
    x = _pad_axis(_pad_axis(x, 1, *pads[0], value), 2, *pads[1], value)
    views = []
    for i in range(window[0]):
        for j in range(window[1]):
            rows = slice(i * dilations[0], i * dilations[0] + (outs[0] - 1) * strides[0] + 1, strides[0])
            cols = slice(j * dilations[1], j * dilations[1] + (outs[1] - 1) * strides[1] + 1, strides[1])
            views.append(strided_slice(x, (slice(None), rows, cols, slice(None))))
    return views, outs[0], outs[1]


def _to_nhwc(x: Tensor, channels_first: bool) -> Tensor:
    return transpose(x, (0, 2, 3, 1)) if channels_first else x


def _from_nhwc(x: Tensor, channels_first: bool) -> Tensor:
    return transpose(x, (0, 3, 1, 2)) if channels_first else x


def _conv_nhwc(op: str, x: Tensor, kernel: Tensor, strides: tuple[int, int], padding: Any,
               dilations: tuple[int, int], channels_first: bool) -> Tensor:
    """Note [convolution as one matmul], on NHWC x and an HWIO kernel."""
    kh, kw, cin, cout = kernel.type.shape
    if None in (kh, kw, cin, cout):
        raise _fail(op, f"the filter's shape must be known, got {kernel.type}", FlowcTypeError)
    if x.type.shape[3] is not None and x.type.shape[3] != cin:
        raise _fail(op, f"the input has {x.type.shape[3]} channels but the filter {kernel.type} takes {cin}",
                    FlowcTypeError)
    window = (kh, kw)
    extents = tuple((k - 1) * d + 1 for k, d in zip(window, dilations))
    pads = _pads(op, padding, _spatial_dims(op, x), extents, strides, channels_first)
    _check_strides_and_dilations(op, strides, dilations)
    _out_sizes(op, x, window, strides, dilations, pads)
    return apply("conv2d", (x, kernel), name="conv", window=(kh, kw), strides=strides, dilations=dilations,
                 pads=(*pads[0], *pads[1]))


def _inputs(op: str, input: Any, filter: Any) -> tuple[Tensor, Tensor]:
    x = convert_to_tensor(input)
    kernel = convert_to_tensor(filter, dtype=x.dtype)
    if x.dtype.kind != "float" or kernel.dtype != x.dtype:
        raise _fail(op, f"input and filter must be float16, float32 or float64 of one dtype, got {x.type} and {kernel.type}",
                    FlowcTypeError)
    return x, kernel


def conv2d(input: Any, filter: Any = None, strides: Any = None, padding: Any = None, use_cudnn_on_gpu: bool = True,
           data_format: str = "NHWC", dilations: Any = None, name: str | None = None, filters: Any = None) -> Tensor:
    """2-D cross-correlation of `input` [N, H, W, C] (or NCHW) with `filter` [KH, KW, C, O], as tf.nn.conv2d.

    >>> import flowc as fc
    >>> fc.nn.conv2d(fc.zeros([2, 8, 8, 3]), fc.zeros([3, 3, 3, 5]), strides=2, padding="SAME").shape
    (2, 4, 4, 5)
    """
    op = "conv2d"
    with name_scope(name or "Conv2D"):
        x, kernel = _inputs(op, input, filters if filter is None else filter)
        _rank4(op, x, "input")
        _rank4(op, kernel, "filter")
        if padding is None:
            raise _fail(op, "padding is required: 'SAME', 'VALID' or a list of pairs")
        channels_first = _layout(op, data_format, 4)
        stride = _spatial(op, "strides", strides, channels_first)
        dilation = _spatial(op, "dilations", dilations, channels_first)
        out = _conv_nhwc(op, _to_nhwc(x, channels_first), kernel, stride, padding, dilation, channels_first)
        return _from_nhwc(out, channels_first)


def conv1d(value: Any = None, filters: Any = None, stride: Any = 1, padding: Any = None, use_cudnn_on_gpu: Any = None,
           data_format: str | None = None, name: str | None = None, input: Any = None, dilations: Any = None) -> Tensor:
    """1-D cross-correlation of [N, W, C] (or NCW) with filters [KW, C, O], as tf.nn.conv1d: conv2d on H = 1."""
    op = "conv1d"
    with name_scope(name or "conv1d"):
        x, kernel = _inputs(op, input if value is None else value, filters)
        if x.type.rank != 3 or kernel.type.rank != 3:
            raise _fail(op, f"input and filters must have rank 3, got {x.type} and {kernel.type}", FlowcTypeError)
        channels_first = _layout(op, data_format, 3)
        if not isinstance(padding, str):
            raise _fail(op, f"padding must be 'SAME' or 'VALID', got {padding!r}")
        stride_w = _one_spatial(op, "stride", stride, channels_first)
        dilation_w = _one_spatial(op, "dilations", dilations, channels_first)
        x = expand_dims(x, 2 if channels_first else 1)
        out = conv2d(x, expand_dims(kernel, 0), strides=[1, stride_w], padding=padding, dilations=[1, dilation_w],
                     data_format="NCHW" if channels_first else "NHWC")
        return squeeze(out, [2 if channels_first else 1])


def _one_spatial(op: str, what: str, value: Any, channels_first: bool) -> int:
    """conv1d's stride / dilations: an int, or a list of 1 or 3 ints (batch and channel entries 1)."""
    if isinstance(value, (list, tuple)) and len(value) == 3:
        outer = (value[0], value[1]) if channels_first else (value[0], value[2])
        if tuple(int(v) for v in outer) != (1, 1):
            raise _fail(op, f"{what} {list(value)} must be 1 in the batch and channel dims")
        value = value[2] if channels_first else value[1]
    return _spatial(op, what, value, False)[0]


def depthwise_conv2d(input: Any, filter: Any, strides: Any, padding: Any, rate: Any = None, name: str | None = None,
                     data_format: str | None = None, dilations: Any = None) -> Tensor:
    """Each input channel c convolved with its own filter[:, :, c, :]; output channel c * M + m, as TF1."""
    op = "depthwise_conv2d"
    with name_scope(name or "depthwise"):
        x, kernel = _inputs(op, input, filter)
        _rank4(op, x, "input")
        _rank4(op, kernel, "filter")
        channels_first = _layout(op, data_format, 4)
        stride = _spatial(op, "strides", strides, channels_first)
        dilation = _spatial(op, "dilations", dilations if rate is None else rate, channels_first)
        x = _to_nhwc(x, channels_first)
        kh, kw, cin, multiplier = kernel.type.shape
        if None in kernel.type.shape or (x.type.shape[3] is not None and x.type.shape[3] != cin):
            raise _fail(op, f"the filter {kernel.type} must be known and take the input's {x.type.shape[3]} channels",
                        FlowcTypeError)
        extents = tuple((k - 1) * d + 1 for k, d in zip((kh, kw), dilation))
        pads = _pads(op, padding, _spatial_dims(op, x), extents, stride, channels_first)
        views, out_height, out_width = _windows(op, x, (kh, kw), stride, dilation, pads, 0.0)
        taps = reshape(kernel, [kh * kw, cin, multiplier])
        total = None
        for tap, view in enumerate(views):  # [N, OH, OW, C, 1] * [C, M], summed over the taps
            term = expand_dims(view, 4) * taps[tap]
            total = term if total is None else total + term
        out = reshape(total, [-1, out_height, out_width, cin * multiplier])
        return _from_nhwc(out, channels_first)


def conv2d_transpose(value: Any = None, filter: Any = None, output_shape: Any = None, strides: Any = None,
                     padding: str = "SAME", data_format: str = "NHWC", name: str | None = None, input: Any = None,
                     filters: Any = None, dilations: Any = None) -> Tensor:
    """The gradient of conv2d with respect to its input: `filter` is [KH, KW, out, in], as tf.nn.conv2d_transpose.

    The input is spread `strides` apart (zeros between), padded so that each output pixel sees the taps that
    conv2d would have sent it, and correlated with the filter flipped in space, its channel axes swapped.
    """
    op = "conv2d_transpose"
    with name_scope(name or "conv2d_transpose"):
        x, kernel = _inputs(op, input if value is None else value, filters if filter is None else filter)
        _rank4(op, x, "input")
        _rank4(op, kernel, "filter")
        channels_first = _layout(op, data_format, 4)
        stride = _spatial(op, "strides", strides, channels_first)
        dilation = _spatial(op, "dilations", dilations, channels_first)
        if max(dilation) > 1:
            raise _fail(op, f"dilations {list(dilation)} > 1 are not supported by conv2d_transpose")
        shape = [int(d) for d in output_shape] if output_shape is not None else []
        if len(shape) != 4:
            raise _fail(op, f"output_shape must list 4 ints, got {output_shape!r}")
        out_size = (shape[2], shape[3]) if channels_first else (shape[1], shape[2])
        out_channels = shape[1] if channels_first else shape[3]
        kh, kw, kout, kin = kernel.type.shape
        x = _to_nhwc(x, channels_first)
        if kout != out_channels or (x.type.shape[3] is not None and x.type.shape[3] != kin):
            raise _fail(op, f"the filter {kernel.type} must map the input's {x.type.shape[3]} channels to "
                            f"output_shape's {out_channels}", FlowcTypeError)
        pads = _pads(op, padding, out_size, (kh, kw), stride, channels_first)
        in_size = _spatial_dims(op, x)
        for axis in (1, 2):
            size, step, window, (before, _) = in_size[axis - 1], stride[axis - 1], (kh, kw)[axis - 1], pads[axis - 1]
            expected = (out_size[axis - 1] + sum(pads[axis - 1]) - window) // step + 1
            if expected != size:
                raise _fail(op, f"output_shape {shape} with this filter, strides and padding makes an input of "
                                f"size {expected} along spatial axis {axis - 1}, not {size}", FlowcTypeError)
            x = _spread(x, axis, step)
            spread = (size - 1) * step + 1
            x = _crop_or_pad(x, axis, window - 1 - before, out_size[axis - 1] - 1 + before - (spread - 1))
        flipped = transpose(strided_slice(kernel, (slice(None, None, -1), slice(None, None, -1))), (0, 1, 3, 2))
        out = _conv_nhwc(op, x, flipped, (1, 1), "VALID", (1, 1), False)
        return _from_nhwc(out, channels_first)


def _spread(x: Tensor, axis: int, step: int) -> Tensor:
    """x with step - 1 zeros between neighbours along `axis` (none after the last)."""
    if step == 1 or x.type.shape[axis] == 1:
        return x
    size = x.type.shape[axis]
    zeros = where(constant(np.zeros([1] * (x.type.rank + 1), dtype=bool)), expand_dims(x, axis + 1),
                  constant(0.0, dtype=x.dtype))
    gaps = concat([expand_dims(x, axis + 1)] + [zeros] * (step - 1), axis + 1)
    shape = [-1 if d is None else d for d in x.type.shape]
    shape[axis] = size * step
    index: list[Any] = [slice(None)] * x.type.rank
    index[axis] = slice(0, (size - 1) * step + 1)
    return strided_slice(reshape(gaps, shape), tuple(index))


def _pool(op: str, value: Any, ksize: Any, strides: Any, padding: Any, data_format: str | None,
          average: bool) -> Tensor:
    x = convert_to_tensor(value)
    _rank4(op, x, "input")
    if average and x.dtype.kind != "float":
        raise _fail(op, f"input must be float16, float32 or float64, got {x.type}", FlowcTypeError)
    if x.dtype.kind not in ("float", "int", "uint"):  # TF1's MaxPool takes integers too (uint8 images)
        raise _fail(op, f"input must be a float or an integer tensor, got {x.type}", FlowcTypeError)
    channels_first = _layout(op, data_format, 4)
    window = _spatial(op, "ksize", ksize, channels_first)
    stride = _spatial(op, "strides", strides, channels_first)
    if not isinstance(padding, str):
        raise _fail(op, f"padding must be 'SAME' or 'VALID', got {padding!r}")
    x = _to_nhwc(x, channels_first)
    sizes = _spatial_dims(op, x)
    pads = _pads(op, padding, sizes, window, stride, channels_first)
    if _tiles_the_image(x, window, stride, pads):
        return _from_nhwc(_pool_tiles(x, window, average), channels_first)
    outside = 0.0 if average else -np.inf if x.dtype.kind == "float" else np.iinfo(x.dtype.np).min
    views, out_height, out_width = _windows(op, x, window, stride, (1, 1), pads, outside)
    total = views[0]
    for view in views[1:]:  # maximum's gradient goes to its first operand on a tie: to the first max, as TF1
        total = total + view if average else maximum(total, view)
    if average:  # TF1 divides by the number of input pixels under the window, padding not counted
        total = total / constant(_window_counts(sizes, window, stride, pads, (out_height, out_width)),
                                 dtype=x.dtype)
    return _from_nhwc(total, channels_first)


# Note [pooling of disjoint windows]
# The windows of a pool whose strides are its window and that needs no padding (the usual 2x2, stride
# 2, VALID) tile the image: x reshaped to [N, OH, KH, OW, KW, C] (a view) holds each window along axes
# 2 and 4, and the pool is a reduction over them. The KH*KW strided slices that _windows makes cost,
# in the gradient, a spread of each slice back over the image (a gather or concat per axis and slice):
# examples/cnn.py's training step ran 100 kernels, three quarters of its time in those (FLOWC_PROFILE=1;
# bench/RESULTS.md). Over the reshaped x, the mean is a reduce_sum divided by KH*KW; the maximum keeps
# the gradient of the slices' maximum chain, which goes to the first maximum of each window in
# row-major order, as TF1's: the first is the lowest window position that equals the window's
# maximum (a reduce_min of positions, no gradient through it), and the pool the sum over the window
# of x where it is the first, so that the gradient is dy there and zero elsewhere, one loop kernel. A
# window with a NaN has no position equal to its maximum: there the pool is the maximum itself (NaN),
# as the chain of maximums gives.


def _tiles_the_image(x: Tensor, window: tuple[int, int], stride: tuple[int, int], pads: Pads) -> bool:
    """Note [pooling of disjoint windows]: windows that tile x exactly, with no padding."""
    sizes = x.type.shape[1:]
    return (tuple(window) == tuple(stride) and all(p == (0, 0) for p in pads) and None not in sizes
            and all(size % k == 0 for size, k in zip(sizes[:2], window)))


def _pool_tiles(x: Tensor, window: tuple[int, int], average: bool) -> Tensor:
    """Note [pooling of disjoint windows]: the pool of NHWC x over windows that tile it."""
    from .gradients import stop_gradient

    _, height, width, channels = x.type.shape
    (kh, kw), axes = window, (2, 4)
    tiles = reshape(x, [-1, height // kh, kh, width // kw, kw, channels])
    if average:
        return reduce_sum(tiles, axes) / constant(kh * kw, dtype=x.dtype)
    fixed = stop_gradient(tiles)
    top = reduce_max(fixed, axes, keepdims=True)
    positions = constant(np.arange(kh * kw).reshape(1, 1, kh, 1, kw, 1), dtype=x.dtype)
    first = reduce_min(where(equal(fixed, top), positions, constant(kh * kw, dtype=x.dtype)), axes, keepdims=True)
    chosen = reduce_sum(where(equal(positions, first), tiles, constant(0, dtype=x.dtype)), axes)
    none = squeeze(equal(first, constant(kh * kw, dtype=x.dtype)), axes)
    return where(none, squeeze(top, axes), chosen)


def _window_counts(sizes: Sequence[int], window: Sequence[int], stride: Sequence[int], pads: Pads,
                   outs: Sequence[int]) -> np.ndarray:
    counts = []
    for size, k, s, (before, _), out in zip(sizes, window, stride, pads, outs):
        starts = np.arange(out) * s - before
        counts.append(np.minimum(starts + k, size) - np.maximum(starts, 0))
    return (counts[0][:, None] * counts[1][None, :])[:, :, None].astype(np.float64)


def max_pool(value: Any = None, ksize: Any = None, strides: Any = None, padding: Any = None,
             data_format: str = "NHWC", name: str | None = None, input: Any = None) -> Tensor:
    """The maximum over each window, as tf.nn.max_pool; the gradient goes to the first maximum of a window."""
    with name_scope(name or "MaxPool"):
        return _pool("max_pool", input if value is None else value, ksize, strides, padding, data_format, False)


def avg_pool(value: Any = None, ksize: Any = None, strides: Any = None, padding: Any = None,
             data_format: str = "NHWC", name: str | None = None, input: Any = None) -> Tensor:
    """The mean over each window, padding not counted, as tf.nn.avg_pool."""
    with name_scope(name or "AvgPool"):
        return _pool("avg_pool", input if value is None else value, ksize, strides, padding, data_format, True)


max_pool2d = max_pool
avg_pool2d = avg_pool


def bias_add(value: Any, bias: Any, data_format: str | None = None, name: str | None = None) -> Tensor:
    """value + bias along the channel axis (the last, or axis 1 for NC...), as tf.nn.bias_add."""
    op = "bias_add"
    with name_scope(name or "BiasAdd"):
        x = convert_to_tensor(value)
        b = convert_to_tensor(bias, dtype=x.dtype)
        if b.type.rank != 1 or x.type.rank < 2:
            raise _fail(op, f"bias must have rank 1 and value rank >= 2, got {b.type} and {x.type}", FlowcTypeError)
        channels_first = data_format in ("NCHW", "NCW", "NCDHW", "NC...")
        if not channels_first and data_format not in (None, "NHWC", "NWC", "NDHWC", "N...C"):
            raise _fail(op, f"data_format must put the channels last (NHWC, N...C) or second (NCHW, NC...), "
                            f"got {data_format!r}")
        axis = 1 if channels_first else x.type.rank - 1
        if x.type.shape[axis] is not None and b.type.shape[0] is not None and x.type.shape[axis] != b.type.shape[0]:
            raise _fail(op, f"bias {b.type} must match the channel dim of {x.type}", FlowcTypeError)
        if channels_first:
            b = reshape(b, [-1] + [1] * (x.type.rank - 2))
        return x + b
