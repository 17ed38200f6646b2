"""fc.nn.conv2d, depthwise_conv2d, conv2d_transpose, conv1d, max_pool, avg_pool and bias_add.

Values against direct-loop numpy references (written here from TF1's documented
meaning, independent of the composition in compiler/conv_ops.py), on the
reference target and natively; gradients of input and filter against central
differences of those references in float64; bad arguments as FlowcErrors.
"""

from __future__ import annotations

import importlib.util
import itertools
import os

import numpy as np
import pytest

import flowc as fc
from flowc.codegen.llvm.program import kernel_op_names
from flowc.ir.errors import FlowcError

HERE = os.path.basename(__file__)


# -- numpy references: direct loops ---------------------------------------------------------


def same_pads(size: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (window - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resolve(padding, x_shape, window, strides, dilations):
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        return [same_pads(x_shape[1 + a], window[a], strides[a], dilations[a]) for a in range(2)]
    return [tuple(padding[1]), tuple(padding[2])]  # explicit, NHWC


def ref_conv2d(x, w, strides, padding, dilations=(1, 1)):
    (sh, sw), (dh, dw) = strides, dilations
    kh, kw, _, cout = w.shape
    pads = resolve(padding, x.shape, (kh, kw), strides, dilations)
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    oh = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, cout))
    for r, c, i, j in itertools.product(range(oh), range(ow), range(kh), range(kw)):
        out[:, r, c, :] += xp[:, r * sh + i * dh, c * sw + j * dw, :] @ w[i, j]
    return out


def ref_depthwise(x, w, strides, padding, dilations=(1, 1)):
    (sh, sw), (dh, dw) = strides, dilations
    kh, kw, channels, multiplier = w.shape
    pads = resolve(padding, x.shape, (kh, kw), strides, dilations)
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    oh = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, channels * multiplier))
    for r, c, i, j, k, m in itertools.product(range(oh), range(ow), range(kh), range(kw), range(channels),
                                              range(multiplier)):
        out[:, r, c, k * multiplier + m] += xp[:, r * sh + i * dh, c * sw + j * dw, k] * w[i, j, k, m]
    return out


def ref_conv2d_transpose(x, w, output_shape, strides, padding):
    """Each input pixel scatters its filter-weighted values to the output pixels conv2d read it from."""
    kh, kw = w.shape[:2]
    pads = resolve(padding, output_shape, (kh, kw), strides, (1, 1))
    out = np.zeros(output_shape)
    for n, r, c, i, j in itertools.product(range(x.shape[0]), range(x.shape[1]), range(x.shape[2]), range(kh),
                                           range(kw)):
        a, b = r * strides[0] + i - pads[0][0], c * strides[1] + j - pads[1][0]
        if 0 <= a < output_shape[1] and 0 <= b < output_shape[2]:
            out[n, a, b, :] += w[i, j] @ x[n, r, c, :]
    return out


def ref_pool(x, window, strides, padding, kind):
    pads = resolve(padding, x.shape, window, strides, (1, 1))
    oh = (x.shape[1] + sum(pads[0]) - window[0]) // strides[0] + 1
    ow = (x.shape[2] + sum(pads[1]) - window[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for r, c in itertools.product(range(oh), range(ow)):
        top, left = r * strides[0] - pads[0][0], c * strides[1] - pads[1][0]
        block = x[:, max(top, 0):top + window[0], max(left, 0):left + window[1], :]
        out[:, r, c, :] = block.max(axis=(1, 2)) if kind == "max" else block.mean(axis=(1, 2))
    return out


# -- running ----------------------------------------------------------------------------------


def run(build, arrays, target="reference", dtype=fc.float64):
    g = fc.Graph()
    with g.as_default():
        holders = [fc.placeholder(dtype, shape=a.shape) for a in arrays]
        out = build(*holders)
    with fc.Session(graph=g, target=target) as sess:
        return sess.run(out, dict(zip(holders, arrays)))


def nchw(x):
    return np.transpose(x, (0, 3, 1, 2))


CONV_CASES = [  # x shape, filter shape, strides, padding, dilations
    ((2, 7, 9, 3), (3, 3, 3, 4), (1, 1), "SAME", (1, 1)),
    ((2, 7, 9, 3), (3, 3, 3, 4), (1, 1), "VALID", (1, 1)),
    ((1, 8, 7, 2), (3, 2, 2, 3), (2, 3), "SAME", (1, 1)),
    ((1, 8, 7, 2), (3, 2, 2, 3), (2, 1), "VALID", (1, 1)),
    ((2, 9, 8, 1), (3, 3, 1, 2), (1, 1), "SAME", (2, 3)),
    ((2, 9, 8, 1), (2, 3, 1, 2), (1, 1), "VALID", (2, 2)),
    ((1, 6, 5, 2), (3, 3, 2, 2), (2, 2), [[0, 0], [1, 2], [0, 1], [0, 0]], (1, 1)),
    ((1, 1, 1, 3), (1, 1, 3, 2), (1, 1), "SAME", (1, 1)),
    ((3, 1, 6, 2), (1, 3, 2, 1), (1, 2), "SAME", (1, 1)),
    ((1, 5, 5, 1), (5, 5, 1, 1), (1, 1), "VALID", (1, 1)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}-{c[3]}-d{c[4]}"[:60])
def test_conv2d_matches_direct_loops(case, rng) -> None:
    shape, filter_shape, strides, padding, dilations = case
    x, w = rng.standard_normal(shape), rng.standard_normal(filter_shape)
    want = ref_conv2d(x, w, strides, padding, dilations)
    got = run(lambda a, b: fc.nn.conv2d(a, b, strides=[1, *strides, 1], padding=padding, dilations=dilations),
              [x, w])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES[::3], ids=lambda c: f"{c[0]}-s{c[2]}-{c[3]}"[:40])
def test_conv2d_nchw(case, rng) -> None:
    shape, filter_shape, strides, padding, dilations = case
    x, w = rng.standard_normal(shape), rng.standard_normal(filter_shape)
    want = nchw(ref_conv2d(x, w, strides, padding, dilations))
    pad = padding if isinstance(padding, str) else [padding[0], padding[3], padding[1], padding[2]]
    got = run(lambda a, b: fc.nn.conv2d(a, b, strides=[1, 1, *strides], padding=pad, data_format="NCHW",
                                        dilations=[1, 1, *dilations]), [nchw(x), w])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [fc.float32, fc.float64])
@pytest.mark.parametrize("case", CONV_CASES[:3] + CONV_CASES[4:5] + CONV_CASES[6:8], ids=str)
def test_conv2d_native_matches_reference(case, dtype, rng) -> None:
    shape, filter_shape, strides, padding, dilations = case
    x = rng.standard_normal(shape).astype(dtype.name)
    w = rng.standard_normal(filter_shape).astype(dtype.name)

    def build(a, b):
        return fc.nn.relu(fc.nn.bias_add(fc.nn.conv2d(a, b, strides, padding, dilations=dilations),
                                         fc.constant(np.arange(filter_shape[3]) * 0.1, dtype=dtype)))

    tol = 1e-5 if dtype == fc.float32 else 1e-12
    np.testing.assert_allclose(run(build, [x, w], "cpu", dtype), run(build, [x, w], "reference", dtype),
                               rtol=tol, atol=tol)


def test_conv2d_unknown_batch_and_empty_batch_natively(rng) -> None:
    w = rng.standard_normal((3, 3, 2, 3))
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=[None, 5, 6, 2])
        y = fc.nn.conv2d(x, fc.constant(w), strides=1, padding="SAME")
    with fc.Session(graph=g, target="cpu") as sess:
        for batch in (3, 1, 0):
            xs = rng.standard_normal((batch, 5, 6, 2))
            np.testing.assert_allclose(sess.run(y, {x: xs}), ref_conv2d(xs, w, (1, 1), "SAME"), atol=1e-12)


@pytest.mark.parametrize("case", [((2, 6, 7, 3), (3, 3, 3, 2), (1, 1), "SAME", (1, 1)),
                                  ((1, 7, 6, 2), (3, 2, 2, 1), (2, 2), "VALID", (1, 1)),
                                  ((1, 7, 7, 1), (2, 2, 1, 3), (1, 1), "SAME", (2, 2))], ids=str)
def test_depthwise_conv2d(case, rng) -> None:
    shape, filter_shape, strides, padding, dilations = case
    x, w = rng.standard_normal(shape), rng.standard_normal(filter_shape)
    want = ref_depthwise(x, w, strides, padding, dilations)

    def build(a, b):
        return fc.nn.depthwise_conv2d(a, b, [1, *strides, 1], padding, dilations=dilations)

    np.testing.assert_allclose(run(build, [x, w]), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(run(build, [x, w], "cpu"), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [((2, 4, 5, 3), (3, 3, 2, 3), (2, 7, 9, 2), (2, 2), "SAME"),
                                  ((2, 4, 5, 3), (3, 3, 2, 3), (2, 8, 10, 2), (2, 2), "SAME"),
                                  ((1, 3, 3, 2), (3, 2, 4, 2), (1, 7, 6, 4), (2, 2), "VALID"),
                                  ((1, 3, 4, 1), (2, 2, 1, 1), (1, 3, 4, 1), (1, 1), "SAME"),
                                  ((1, 2, 2, 2), (4, 4, 1, 2), (1, 9, 9, 1), (3, 3), "VALID")], ids=str)
def test_conv2d_transpose(case, rng) -> None:
    shape, filter_shape, output_shape, strides, padding = case
    x, w = rng.standard_normal(shape), rng.standard_normal(filter_shape)
    want = ref_conv2d_transpose(x, w, output_shape, strides, padding)

    def build(a, b):
        return fc.nn.conv2d_transpose(a, b, output_shape, [1, *strides, 1], padding)

    np.testing.assert_allclose(run(build, [x, w]), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(run(build, [x, w], "cpu"), want, rtol=1e-12, atol=1e-12)


def test_conv2d_transpose_is_the_input_gradient_of_conv2d(rng) -> None:
    x, w, dy = rng.standard_normal((2, 7, 9, 3)), rng.standard_normal((3, 3, 3, 4)), rng.standard_normal((2, 4, 5, 4))

    def build(a, b, c):
        forward = fc.nn.conv2d(a, b, 2, "SAME")
        (gradient,) = fc.gradients(forward, [a], grad_ys=c)
        return gradient - fc.nn.conv2d_transpose(c, b, [2, 7, 9, 3], 2, "SAME")

    np.testing.assert_allclose(run(build, [x, w, dy]), 0, atol=1e-12)


@pytest.mark.parametrize("data_format", ["NWC", "NCW"])
def test_conv1d(data_format, rng) -> None:
    x, w = rng.standard_normal((2, 11, 3)), rng.standard_normal((3, 3, 4))
    want = ref_conv2d(x[:, None], w[None], (1, 2), "SAME")[:, 0]
    feed = x if data_format == "NWC" else np.transpose(x, (0, 2, 1))
    got = run(lambda a, b: fc.nn.conv1d(a, b, stride=2, padding="SAME", data_format=data_format), [feed, w])
    np.testing.assert_allclose(got, want if data_format == "NWC" else np.transpose(want, (0, 2, 1)), atol=1e-12)


POOL_CASES = [((2, 7, 9, 3), (2, 2), (2, 2), "VALID"), ((2, 7, 9, 3), (3, 3), (2, 2), "SAME"),
              ((1, 5, 4, 1), (3, 2), (1, 1), "SAME"), ((1, 1, 1, 2), (1, 1), (1, 1), "VALID"),
              ((1, 6, 6, 2), (3, 3), (3, 2), "SAME"),
              ((2, 8, 6, 3), (2, 2), (2, 2), "VALID"), ((1, 6, 9, 2), (3, 3), (3, 3), "SAME")]  # windows tiling x


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pool_matches_direct_loops(case, kind, rng) -> None:
    shape, window, strides, padding = case
    x = rng.standard_normal(shape)
    pool = fc.nn.max_pool if kind == "max" else fc.nn.avg_pool
    want = ref_pool(x, window, strides, padding, kind)
    np.testing.assert_allclose(run(lambda a: pool(a, [1, *window, 1], [1, *strides, 1], padding), [x]), want,
                               atol=1e-12)
    np.testing.assert_allclose(run(lambda a: pool(a, window, strides, padding), [x], "cpu", fc.float32),
                               want.astype(np.float32), rtol=1e-6, atol=1e-6)
    got = run(lambda a: pool(a, [1, 1, *window], [1, 1, *strides], padding, data_format="NCHW"), [nchw(x)])
    np.testing.assert_allclose(got, nchw(want), atol=1e-12)


def test_max_pool_gradient_goes_to_the_first_maximum() -> None:
    """TF1's MaxPoolGrad gives a window's gradient to the first of its tied maxima in row-major order
    (tensorflow issue 4886: max_pool of [1, 2, 2, 2] gives the gradient [0, 1, 0, 0])."""
    x = np.array([[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 0.0, 3.0]]).reshape(1, 2, 4, 1)
    want = np.array([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).reshape(1, 2, 4, 1)
    for target in ("reference", "cpu"):
        got = run(lambda a: fc.gradients(fc.reduce_sum(fc.nn.max_pool(a, 2, 2, "VALID")), [a])[0], [x], target)
        np.testing.assert_array_equal(got, want)


def first_maximum_gradient(x, dy, window):
    """Direct loops: each window's dy to its first maximum in row-major order, none to a window with a NaN."""
    grad = np.zeros_like(x)
    for n, r, c, k in itertools.product(*(range(d) for d in dy.shape)):
        block = x[n, r * window[0]:(r + 1) * window[0], c * window[1]:(c + 1) * window[1], k]
        if not np.isnan(block).any():
            i, j = np.unravel_index(np.argmax(block), block.shape)
            grad[n, r * window[0] + i, c * window[1] + j, k] = dy[n, r, c, k]
    return grad


@pytest.mark.parametrize("window", [(2, 2), (3, 2), (1, 3)], ids=str)
def test_max_pool_of_windows_tiling_the_image(window, rng) -> None:
    """Note [pooling of disjoint windows]: a reduction over the reshaped image; the gradient to the first
    of tied maxima (few distinct values: many ties), a window with a NaN pooled to NaN, and no slice,
    gather or concat in any kernel of the gradient."""
    x = rng.integers(0, 3, (2, 2 * window[0], 3 * window[1], 3)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    dy = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        a = fc.placeholder(fc.float32, shape=[None, *x.shape[1:]])
        d = fc.placeholder(fc.float32, shape=[None, 2, 3, 3])
        y = fc.nn.max_pool(a, [1, *window, 1], [1, *window, 1], "VALID")
        (dx,) = fc.gradients(y, [a], grad_ys=d)
    six = x.reshape(2, 2, window[0], 3, window[1], 3)
    for target in ("reference", "cpu"):
        with fc.Session(graph=g, target=target) as sess:
            pooled, grad = sess.run([y, dx], {a: x, d: dy})
            if target == "cpu":
                (compiled,) = sess._cache.values()
                ops = {name for kernel in compiled.executable.program.kernel_ops for name in kernel_op_names(kernel)}
                assert not ops & {"slice", "gather", "concat"}, ops
        np.testing.assert_array_equal(pooled, six.max(axis=(2, 4)))
        np.testing.assert_array_equal(grad, first_maximum_gradient(x, dy, window))


@pytest.mark.parametrize("dtype", [fc.uint8, fc.int32])
def test_integer_max_pool_of_windows_tiling_the_image(dtype, rng) -> None:
    """Note [pooling of disjoint windows] on TF1's integer max pools (uint8 images): the same reduction."""
    x = rng.integers(0, 100, (2, 4, 6, 3)).astype(dtype.np)
    want = x.reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4))
    for target in ("reference", "cpu"):
        got = run(lambda a: fc.nn.max_pool(a, 2, 2, "VALID"), [x], target, dtype)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_bias_add(rng) -> None:
    x, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal(5)
    np.testing.assert_allclose(run(fc.nn.bias_add, [x, b]), x + b)
    c = rng.standard_normal(3)
    np.testing.assert_allclose(run(lambda a, d: fc.nn.bias_add(a, d, data_format="NCHW"), [x, c]),
                               x + c[:, None, None])
    (gradient,) = run(lambda a, d: fc.gradients(fc.reduce_sum(fc.nn.bias_add(a, d) * a), [d]), [x, b])
    np.testing.assert_allclose(gradient, x.sum(axis=(0, 1, 2)))


# -- gradients against central differences ------------------------------------------------------


def central_differences(f, arrays, index, cotangent, step=1e-6):
    grad = np.zeros_like(arrays[index])
    for position in np.ndindex(grad.shape):
        shifted = [a.copy() for a in arrays]
        shifted[index][position] += step
        up = np.sum(f(*shifted) * cotangent)
        shifted[index][position] -= 2 * step
        grad[position] = (up - np.sum(f(*shifted) * cotangent)) / (2 * step)
    return grad


GRADIENT_CASES = [
    ("conv2d SAME stride 2", lambda a, b: fc.nn.conv2d(a, b, 2, "SAME"),
     lambda a, b: ref_conv2d(a, b, (2, 2), "SAME"), (2, 5, 6, 2), (3, 3, 2, 3)),
    ("conv2d VALID dilation 2", lambda a, b: fc.nn.conv2d(a, b, 1, "VALID", dilations=2),
     lambda a, b: ref_conv2d(a, b, (1, 1), "VALID", (2, 2)), (1, 6, 5, 2), (2, 2, 2, 2)),
    ("conv2d explicit", lambda a, b: fc.nn.conv2d(a, b, [1, 2, 1, 1], [[0, 0], [1, 0], [2, 1], [0, 0]]),
     lambda a, b: ref_conv2d(a, b, (2, 1), [[0, 0], [1, 0], [2, 1], [0, 0]]), (1, 5, 4, 2), (2, 3, 2, 2)),
    ("depthwise", lambda a, b: fc.nn.depthwise_conv2d(a, b, [1, 2, 2, 1], "SAME"),
     lambda a, b: ref_depthwise(a, b, (2, 2), "SAME"), (1, 5, 5, 2), (3, 3, 2, 2)),
    ("conv2d_transpose", lambda a, b: fc.nn.conv2d_transpose(a, b, [1, 7, 6, 2], [1, 2, 2, 1], "SAME"),
     lambda a, b: ref_conv2d_transpose(a, b, (1, 7, 6, 2), (2, 2), "SAME"), (1, 4, 3, 3), (3, 3, 2, 3)),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=lambda c: c[0])
def test_gradients_against_central_differences(case, rng) -> None:
    _, build, reference, x_shape, w_shape = case
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    cotangent = rng.standard_normal(reference(x, w).shape)
    got = run(lambda a, b: fc.gradients(fc.reduce_sum(build(a, b) * cotangent), [a, b]), [x, w])
    for index in (0, 1):
        np.testing.assert_allclose(got[index], central_differences(reference, [x, w], index, cotangent),
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=lambda c: c[0])
def test_gradients_natively_match_the_reference_with_an_unknown_batch(case, rng) -> None:
    _, build, reference, x_shape, w_shape = case
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    cotangent = rng.standard_normal(reference(x, w).shape)[:1]  # broadcast over the batch
    results = {}
    for target in ("reference", "cpu"):
        g = fc.Graph()
        with g.as_default():
            a = fc.placeholder(fc.float64, shape=[None, *x_shape[1:]])
            b = fc.placeholder(fc.float64, shape=w_shape)
            out = fc.gradients(fc.reduce_sum(build(a, b) * cotangent), [a, b])
        with fc.Session(graph=g, target=target) as sess:
            results[target] = sess.run(out, {a: x, b: w})
    for got, want in zip(results["cpu"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_gradient_against_central_differences(kind, rng) -> None:
    x = rng.permutation(2 * 5 * 6 * 2).reshape(2, 5, 6, 2) * 0.1  # distinct: no ties
    cotangent = rng.standard_normal(ref_pool(x, (3, 3), (2, 2), "SAME", kind).shape)
    pool = fc.nn.max_pool if kind == "max" else fc.nn.avg_pool
    (got,) = run(lambda a: fc.gradients(fc.reduce_sum(pool(a, 3, 2, "SAME") * cotangent), [a]), [x])
    want = central_differences(lambda a: ref_pool(a, (3, 3), (2, 2), "SAME", kind), [x], 0, cotangent)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


# -- bad arguments --------------------------------------------------------------------------


BAD = [
    ("conv2d", "rank 4", lambda: fc.nn.conv2d(fc.zeros([4, 4, 2]), fc.zeros([3, 3, 2, 1]), 1, "SAME")),
    ("conv2d", "channels", lambda: fc.nn.conv2d(fc.zeros([1, 4, 4, 2]), fc.zeros([3, 3, 3, 1]), 1, "SAME")),
    ("conv2d", "padding must be", lambda: fc.nn.conv2d(fc.zeros([1, 4, 4, 2]), fc.zeros([3, 3, 2, 1]), 1, "same")),
    ("conv2d", "cannot both be > 1",
     lambda: fc.nn.conv2d(fc.zeros([1, 9, 9, 2]), fc.zeros([3, 3, 2, 1]), 2, "SAME", dilations=2)),
    ("conv2d", "batch and channel", lambda: fc.nn.conv2d(fc.zeros([1, 4, 4, 2]), fc.zeros([3, 3, 2, 1]),
                                                         [2, 1, 1, 1], "SAME")),
    ("conv2d", "data_format", lambda: fc.nn.conv2d(fc.zeros([1, 4, 4, 2]), fc.zeros([3, 3, 2, 1]), 1, "SAME",
                                                   data_format="HWCN")),
    ("conv2d", "larger than", lambda: fc.nn.conv2d(fc.zeros([1, 2, 2, 1]), fc.zeros([3, 3, 1, 1]), 1, "VALID")),
    ("max_pool", "rank 4", lambda: fc.nn.max_pool(fc.zeros([4, 4]), 2, 2, "VALID")),
    ("avg_pool", "padding must be", lambda: fc.nn.avg_pool(fc.zeros([1, 4, 4, 1]), 2, 2, "FULL")),
    ("depthwise_conv2d", "channels",
     lambda: fc.nn.depthwise_conv2d(fc.zeros([1, 4, 4, 2]), fc.zeros([3, 3, 3, 1]), [1, 1, 1, 1], "SAME")),
    ("conv2d_transpose", "output_shape",
     lambda: fc.nn.conv2d_transpose(fc.zeros([1, 4, 4, 2]), fc.zeros([3, 3, 1, 2]), [1, 5, 5, 1], 2, "SAME")),
    ("bias_add", "channel dim", lambda: fc.nn.bias_add(fc.zeros([2, 3]), fc.zeros([4]))),
]


@pytest.mark.parametrize("op, words, call", BAD, ids=[f"{b[0]}-{b[1]}" for b in BAD])
def test_bad_arguments_name_the_op_and_the_line(op, words, call) -> None:
    with fc.Graph().as_default(), pytest.raises(FlowcError) as info:
        call()
    assert info.value.op == op, str(info.value)
    assert words in str(info.value)
    assert HERE in (info.value.where or ""), str(info.value)


# -- the example ----------------------------------------------------------------------------


def test_cnn_example_reaches_its_accuracy() -> None:
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "cnn.py")
    spec = importlib.util.spec_from_file_location("cnn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.train(progress=False)
    assert result["test_accuracy"] >= 0.97, result
    assert result["curve"][-1] < result["curve"][0] / 10  # the loss falls
