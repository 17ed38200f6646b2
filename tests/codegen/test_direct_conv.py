"""conv2d and conv2d_backprop_filter natively against the reference (Note [direct convolution] in
passes/schedule.py): the direct kernels on the shapes that hurt them (1x1 windows, odd sizes, channel
counts off the vector width, a batch of 0 or 1 or unknown, strides, dilations, every padding), at the
host's vector width and at AVX2's; the im2col fallback where the direct kernel does not apply; the
front end's gradients against the reference and against central differences; the schedule as data."""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_rows import reference, sample, type_text

import flowc as fc
from flowc import ir
from flowc.ir.errors import FlowcError
from flowc.options import CompileOptions
from flowc.targets import target_named
from flowc.passes import PassManager, optimize
from flowc.passes.schedule import TargetInfo, direct_applies

CASES = [  # image shape, filter shape, strides, dilations, pads (top, bottom, left, right)
    ((2, 7, 9, 3), (3, 3, 3, 16), (1, 1), (1, 1), (1, 1, 1, 1)),  # SAME, C = 3
    ((1, 8, 7, 5), (3, 2, 5, 20), (2, 3), (1, 1), (1, 0, 0, 2)),  # strides, O = 20: a masked last vector
    ((3, 9, 8, 4), (2, 3, 4, 33), (1, 1), (2, 3), (0, 2, 3, 0)),  # dilations, O = 33
    ((2, 5, 5, 7), (1, 1, 7, 16), (1, 1), (1, 1), (0, 0, 0, 0)),  # 1x1
    ((1, 1, 1, 4), (1, 1, 4, 24), (1, 1), (1, 1), (0, 0, 0, 0)),  # one pixel
    ((2, 6, 13, 9), (3, 3, 9, 70), (1, 1), (1, 1), (0, 0, 0, 0)),  # VALID, O = 70: more than one block
    ((0, 4, 4, 2), (3, 3, 2, 16), (1, 1), (1, 1), (1, 1, 1, 1)),  # batch 0
    ((2, 4, 4, 0), (3, 3, 0, 16), (1, 1), (1, 1), (1, 1, 1, 1)),  # no input channels
    ((1, 12, 30, 16), (3, 3, 16, 64), (1, 1), (1, 1), (1, 1, 1, 1)),  # interior tiles between the borders
    ((2, 5, 6, 3), (5, 5, 3, 17), (1, 1), (1, 1), (4, 4, 4, 4)),  # pads as wide as the window
    ((2, 9, 9, 6), (3, 3, 6, 4), (1, 1), (1, 1), (1, 1, 1, 1)),  # O = 4: im2col on hosts of 8 or more lanes
]


def attributes(window, strides, dilations, pads) -> str:
    def listed(values) -> str:
        return "[" + ", ".join(str(v) for v in values) + "]"

    return (f"dilations = {listed(dilations)}, pads = {listed(pads)}, strides = {listed(strides)}, "
            f"window = {listed(window)}")


def out_size(size: int, window: int, stride: int, dilation: int, before: int, after: int) -> int:
    return (size + before + after - (window - 1) * dilation - 1) // stride + 1


def conv_module(dtype: str, shape, kernel, strides, dilations, pads, unknown: bool) -> tuple[str, tuple]:
    """relu(conv2d(x, w) + b), and conv2d_backprop_filter(x, dy)."""
    out_height = out_size(shape[1], kernel[0], strides[0], dilations[0], pads[0], pads[1])
    out_width = out_size(shape[2], kernel[1], strides[1], dilations[1], pads[2], pads[3])
    out = (shape[0], out_height, out_width, kernel[3])
    batch = None if unknown else shape[0]
    x, y = type_text(dtype, (batch, *shape[1:])), type_text(dtype, (batch, *out[1:]))
    w, b = type_text(dtype, kernel), type_text(dtype, kernel[3:])
    attrs = attributes(kernel[:2], strides, dilations, pads)
    text = f"""
func @main(%x: {x}, %w: {w}, %b: {b}, %dy: {y}) -> ({y}, {w}) {{
  %c = conv2d %x, %w {{{attrs}}} : {y}
  %s = add %c, %b : {y}
  %r = relu %s : {y}
  %g = conv2d_backprop_filter %x, %dy {{{attrs}}} : {w}
  return %r, %g : {y}, {w}
}}
"""
    return text, out


def compile_cpu(text: str, vector_bytes: int | None) -> tuple:  # type: ignore[type-arg]
    """The module through the shared pipeline and the cpu target's passes for a vector width, built and loaded."""
    module = ir.parse_module(text, source="conv.ir")
    ir.verify(module)
    optimize(module, verify_each=True)
    target, options = target_named("cpu"), CompileOptions.from_environment(vector_bytes=vector_bytes)
    PassManager(target.passes(options), record=False).run(module)
    return target.load(target.build(module, options), options), module


def schedules(module: ir.Module) -> dict[str, str]:
    """The schedule of the kernel that holds each convolution op, by op name."""
    found = {}
    for op in module.walk():
        if op.name == "fusion":
            for inner in op.regions[0].entry.ops:
                if inner.name in ("conv2d", "conv2d_backprop_filter", "extract_patches"):
                    found[inner.name] = op.attributes["schedule"]
    return found


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("unknown", [False, True])
@pytest.mark.parametrize("vector_bytes", [None, 32])
def test_cpu_matches_reference(rng: np.random.Generator, case, dtype: str, unknown: bool,
                               vector_bytes: int | None) -> None:
    shape, kernel, strides, dilations, pads = case
    text, out = conv_module(dtype, shape, kernel, strides, dilations, pads, unknown)
    executable, module = compile_cpu(text, vector_bytes)
    lanes = (vector_bytes or _host_vector_bytes()) // np.dtype(dtype).itemsize
    direct = 2 * kernel[3] >= lanes
    assert schedules(module) == ({"conv2d": "direct", "conv2d_backprop_filter": "direct"} if direct
                                 else {"extract_patches": "single"})
    args = [sample(rng, shape, dtype), sample(rng, kernel, dtype) / 10, sample(rng, kernel[3:], dtype),
            sample(rng, out, dtype) / 10]
    want = reference(text, args)
    assert want[0].shape == out and want[1].shape == kernel
    for got, expected in zip(executable(args), want, strict=True):
        scale = max(1.0, float(np.abs(expected).max(initial=0)))
        np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == "float32" else 1e-12,
                                   atol=1e-5 * scale if dtype == "float32" else 1e-12 * scale)
        assert got.dtype == expected.dtype and got.shape == expected.shape


def _host_vector_bytes() -> int:
    from flowc.targets.cpu import host_target_info

    return host_target_info().vector_bytes


def test_the_reference_is_the_sum_over_taps_and_channels(rng: np.random.Generator) -> None:
    """conv2d's and conv2d_backprop_filter's references against direct loops over the definition."""
    x, w, dy = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((3, 2, 3, 4)), rng.standard_normal((2, 2, 6, 4))
    text, out = conv_module("float64", x.shape, w.shape, (2, 1), (1, 2), (1, 0, 1, 1), False)
    assert out == dy.shape
    y, g = reference(text.replace("%r, %g", "%c, %g").replace("%s = add %c, %b", "%s = add %c, %c"),
                     [x, w, np.zeros(4), dy])
    padded = np.pad(x, [(0, 0), (1, 0), (1, 1), (0, 0)])
    want_y, want_g = np.zeros(out), np.zeros(w.shape)
    for n, r, c, i, j in np.ndindex(2, out[1], out[2], 3, 2):
        pixel = padded[n, r * 2 + i, c + j * 2]
        want_y[n, r, c] += pixel @ w[i, j]
        want_g[i, j] += np.outer(pixel, dy[n, r, c])
    np.testing.assert_allclose(y, want_y, rtol=1e-12)
    np.testing.assert_allclose(g, want_g, rtol=1e-12)


LAYER_CASES = [  # image shape, filter shape, strides, padding, dilations, data_format
    ((2, 9, 7, 3), (3, 3, 3, 16), 1, "SAME", 1, "NHWC"),
    ((1, 8, 11, 4), (3, 3, 4, 20), 2, "SAME", 1, "NHWC"),
    ((3, 10, 9, 2), (3, 2, 2, 24), 1, "VALID", 2, "NHWC"),
    ((2, 6, 5, 3), (1, 1, 3, 16), 1, "VALID", 1, "NHWC"),
    ((2, 3, 8, 7), (3, 3, 3, 16), 1, "SAME", 1, "NCHW"),  # [N, C, H, W]
    ((2, 7, 7, 3), (3, 3, 3, 16), 1, [[0, 0], [2, 0], [1, 3], [0, 0]], 1, "NHWC"),
]


def layer(case, dtype):  # type: ignore[no-untyped-def]
    shape, kernel, strides, padding, dilations, data_format = case
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(getattr(fc, dtype), [None, *shape[1:]])
        w = fc.placeholder(getattr(fc, dtype), list(kernel))
        y = fc.nn.conv2d(x, w, strides=strides, padding=padding, dilations=dilations, data_format=data_format)
        r = fc.placeholder(getattr(fc, dtype), [None, *y.shape[1:]])
        loss = fc.reduce_sum(fc.nn.relu(y) * r)
        grads = fc.gradients(loss, [x, w])
    return g, x, w, r, y, loss, grads


@pytest.mark.parametrize("case", LAYER_CASES, ids=str)
@pytest.mark.parametrize("batch", [1, 3])
def test_conv2d_and_its_gradients_match_the_reference(rng: np.random.Generator, case, batch: int) -> None:
    g, x, w, r, y, loss, grads = layer(case, "float32")
    feeds = {x: sample(rng, (batch, *case[0][1:]), "float32"), w: sample(rng, case[1], "float32") / 10,
             r: sample(rng, (batch, *y.shape[1:]), "float32")}
    results = {}
    for target in ("reference", "cpu"):
        with fc.Session(graph=g, target=target) as sess:
            results[target] = sess.run([y, *grads], feeds)
    for got, want in zip(results["cpu"], results["reference"], strict=True):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("case", [LAYER_CASES[0], LAYER_CASES[1], LAYER_CASES[2], LAYER_CASES[4]], ids=str)
def test_native_gradients_match_central_differences(rng: np.random.Generator, case) -> None:
    """float64 on the cpu target: each element of x and w moved by +-h, the loss's slope against the gradient."""
    g, x, w, r, y, loss, grads = layer(case, "float64")
    feeds = {x: rng.standard_normal((2, *case[0][1:])), w: rng.standard_normal(case[1]) / 3,
             r: rng.standard_normal((2, *y.shape[1:]))}
    with fc.Session(graph=g, target="cpu") as sess:
        got = sess.run(grads, feeds)
        for placeholder, gradient in zip((x, w), got):
            value = feeds[placeholder]
            # Every element of a small operand; a sample of a larger one.
            picks = list(np.ndindex(*value.shape))
            picks = [picks[i] for i in rng.choice(len(picks), size=min(len(picks), 60), replace=False)]
            for index in picks:
                step = 1e-6
                moved = value.copy()
                moved[index] += step
                up = sess.run(loss, {**feeds, placeholder: moved})
                moved[index] -= 2 * step
                down = sess.run(loss, {**feeds, placeholder: moved})
                np.testing.assert_allclose(gradient[index], (up - down) / (2 * step), rtol=1e-5, atol=1e-6)


def test_an_empty_batch_and_then_a_full_one() -> None:
    """One compiled run for an unknown batch, fed 0, then 5, then 1 images."""
    g, x, w, r, y, loss, grads = layer(LAYER_CASES[0], "float32")
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal(LAYER_CASES[0][1]).astype(np.float32)
    with fc.Session(graph=g, target="cpu") as sess, fc.Session(graph=g, target="reference") as oracle:
        for batch in (0, 5, 1):
            feeds = {x: rng.standard_normal((batch, 9, 7, 3)).astype(np.float32), w: kernel,
                     r: rng.standard_normal((batch, 9, 7, 16)).astype(np.float32)}
            for got, want in zip(sess.run([y, *grads], feeds), oracle.run([y, *grads], feeds), strict=True):
                assert got.shape == want.shape
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_the_choice_is_the_vector_width_and_the_output_channels() -> None:
    """Note [direct convolution]: output channels filling half a vector, float32 or float64, not float16."""
    module = ir.parse_module("""
func @main(%x: f32[?,8,8,3], %w4: f32[3,3,3,4], %w8: f32[3,3,3,8], %h: f16[?,8,8,3], %wh: f16[3,3,3,64]) -> (f32[?,8,8,4], f32[?,8,8,8], f16[?,8,8,64]) {
  %a = conv2d %x, %w4 {dilations = [1, 1], pads = [1, 1, 1, 1], strides = [1, 1], window = [3, 3]} : f32[?,8,8,4]
  %b = conv2d %x, %w8 {dilations = [1, 1], pads = [1, 1, 1, 1], strides = [1, 1], window = [3, 3]} : f32[?,8,8,8]
  %c = conv2d %h, %wh {dilations = [1, 1], pads = [1, 1, 1, 1], strides = [1, 1], window = [3, 3]} : f16[?,8,8,64]
  return %a, %b, %c : f32[?,8,8,4], f32[?,8,8,8], f16[?,8,8,64]
}
""")
    a, b, c = [op for op in module.walk() if op.name == "conv2d"]
    avx512, avx2 = TargetInfo(64), TargetInfo(32)
    assert [direct_applies(op, avx512) for op in (a, b, c)] == [False, True, False]
    assert [direct_applies(op, avx2) for op in (a, b, c)] == [True, True, False]


def test_the_direct_kernels_write_no_patches(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The gradients of a conv layer whose input and output channels fill a vector: no patches anywhere
    (the input gradient is a convolution with the channel counts swapped)."""
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))
    g, x, w, r, y, loss, grads = layer(((2, 9, 7, 16), (3, 3, 16, 16), 1, "SAME", 1, "NHWC"), "float32")
    with fc.Session(graph=g, target="cpu") as sess:
        sess.run(grads, {x: np.ones((2, 9, 7, 16), np.float32), w: np.ones((3, 3, 16, 16), np.float32),
                         r: np.ones((2, 9, 7, 16), np.float32)})
    (scheduled,) = tmp_path.glob("*/09-schedule.ir")
    text = scheduled.read_text()
    assert "extract_patches" not in text and "fold_patches" not in text
    # The forward conv (relu's gradient reads it), the input gradient (a conv2d) and the filter's.
    assert len(re.findall(r'schedule = "direct"', text)) == 3


def misaligned(array: np.ndarray, offset: int) -> np.ndarray:
    """A copy of `array` whose data starts `offset` bytes past a 64-byte boundary."""
    raw = np.empty(array.nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    view = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    view[...] = array
    return view


@pytest.mark.parametrize("kernel", [(3, 3, 16, 64), (3, 3, 20, 70), (3, 3, 3, 16)], ids=str)
@pytest.mark.parametrize("offset", [4, 16, 0])
def test_misaligned_feeds_match_the_reference(rng: np.random.Generator, kernel, offset: int) -> None:
    """Note [aligned filter]: feeds that start 4 or 16 bytes past a cache line (a filter view offset by
    4 bytes among them), on odd image sizes; filters of 36 and 49 KiB read through the arena's copy,
    one of 1.7 KiB where it lies. Note [aligned gradient rows]: the filter gradient copies dy's rows
    that are not aligned (with O = 70, rows of 3080 bytes: aligned and not, alternately)."""
    shape = (2, 7, 11, kernel[2])
    text, out = conv_module("float32", shape, kernel, (1, 1), (1, 1), (1, 1, 1, 1), True)
    executable, module = compile_cpu(text, None)
    copied = any(op.name == "identity" for op in module.walk())
    assert copied == (np.prod(kernel) * 4 >= 1 << 15)
    (gradient,) = [op for op in module.walk() if op.name == "fusion"
                   and any(inner.name == "conv2d_backprop_filter" for inner in op.regions[0].entry.ops)]
    assert gradient.attributes.get("aligned_rows") is True
    args = [sample(rng, shape, "float32"), sample(rng, kernel, "float32") / 10, sample(rng, kernel[3:], "float32"),
            sample(rng, out, "float32") / 10]
    want = reference(text, args)
    fed = [misaligned(a, offset) for a in args]
    assert all(a.ctypes.data % 64 == offset for a in fed)
    for got, expected in zip(executable(fed), want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


@pytest.mark.parametrize("value, message", [
    ("true", "aligned_rows is a filter gradient's (conv2d_backprop_filter) parameter"),
    ("false", "aligned_rows is true where present, got False"),
])
def test_the_verifier_checks_aligned_rows(value: str, message: str) -> None:
    """Note [aligned gradient rows]: only a filter gradient's schedule has aligned_rows, and only true."""
    name = "conv2d" if value == "true" else "conv2d_backprop_filter"
    operand, result = ("f32[3,3,4,16]", "f32[?,6,6,16]") if name == "conv2d" else ("f32[?,6,6,16]", "f32[3,3,4,16]")
    module = ir.parse_module(f"""
func @main(%x: f32[?,6,6,4], %w: {operand}) -> {result} {{
  %y = fusion %x, %w {{aligned_rows = {value}, kind = "matmul", schedule = "direct", tile = [6, 1, 16]}} : {result} {{
  ^bb0(%a: f32[?,6,6,4], %b: {operand}):
    %c = {name} %a, %b {{dilations = [1, 1], pads = [1, 1, 1, 1], strides = [1, 1], window = [3, 3]}} : {result}
    yield %c : {result}
  }}
  return %y : {result}
}}
""")
    with pytest.raises(FlowcError, match=re.escape(message)):
        ir.verify(module)
