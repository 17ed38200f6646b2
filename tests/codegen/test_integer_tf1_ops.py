"""What TF1 computes on integers where flowc used to refuse: `/` (truediv), reduce_mean (a truncated
quotient) and max_pool (uint8 images among them); native against the reference target, and both
against numpy written out independently."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FlowcTypeError

from test_small_ints import full_range, run_both

INTEGERS = ["int8", "int16", "int32", "int64", "uint8", "uint16"]
SHAPES = [(0, 3), (1, 1), (3, 17), (5, 33)]  # fed to [None, None]: the two unknown dims differ


def truncated_mean(x: np.ndarray, axis) -> np.ndarray:  # type: ignore[no-untyped-def]
    """TF1's Mean of integers: the sum in x's dtype (wrapping), divided toward zero; 0 where empty."""
    total = np.sum(x, axis=axis, dtype=x.dtype).astype(object)
    count = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    if count == 0:
        return np.zeros_like(np.asarray(total, dtype=x.dtype))
    quotient = np.vectorize(lambda s: abs(int(s)) // count * (1 if s >= 0 else -1), otypes=[object])(total)
    return quotient.astype(x.dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", INTEGERS)
def test_reduce_mean_of_integers_truncates_toward_zero(rng, dtype, shape) -> None:
    x = full_range(rng, shape, dtype)
    got = run_both(lambda x: [fc.reduce_mean(x), fc.reduce_mean(x, axis=0), fc.reduce_mean(x, axis=-1, keepdims=True),
                              fc.reduce_mean(x, axis=[0, 1])], {"x": x})
    assert all(value.dtype == np.dtype(dtype) for value in got)
    np.testing.assert_array_equal(got[0], truncated_mean(x, None))
    np.testing.assert_array_equal(got[1], truncated_mean(x, 0))
    np.testing.assert_array_equal(got[2], truncated_mean(x, 1)[:, None])
    np.testing.assert_array_equal(got[3], truncated_mean(x, None))


def test_reduce_mean_of_integers_known_values() -> None:
    """TF1's documented example (the mean of [[1, 0], [1, 0]] is 0), and negative quotients that are
    not exact rounding toward zero, not toward -inf as floor division would."""
    got = run_both(lambda x: [fc.reduce_mean(x), fc.reduce_mean(x, axis=1)],
                   {"x": np.array([[1, 0], [1, 0], [-5, -4], [-7, 0]], np.int32)})
    assert got[0] == (1 + 0 + 1 + 0 - 5 - 4 - 7 + 0) // 8 + 1  # -14 / 8 = -1.75: -1
    np.testing.assert_array_equal(got[1], [0, 0, -4, -3])


@pytest.mark.parametrize("dtype, quotient", [("int8", "float32"), ("uint16", "float32"), ("int32", "float64"),
                                             ("int64", "float64"), ("uint8", "float32")])
def test_slash_on_integers_is_truediv(rng, dtype, quotient) -> None:
    """Python 3's `/` on TF1 tensors is truediv: integers become floats wide enough for every value
    (float32 up to 16 bits, float64 beyond); `//` stays floor division."""
    x = full_range(rng, (4, 9), dtype)
    y = full_range(rng, (4, 9), dtype)
    got = run_both(lambda x, y: [x / y, fc.divide(x, y), x // y], {"x": x, "y": y}, exact=False)
    assert got[0].dtype == got[1].dtype == np.dtype(quotient) and got[2].dtype == np.dtype(dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = x.astype(quotient) / y.astype(quotient)
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    np.testing.assert_array_equal(got[1], got[0])


def test_slash_on_bools_names_the_op() -> None:
    a = fc.placeholder(fc.bool, [2])
    with pytest.raises(FlowcTypeError, match="div.*needs numbers.*bool"):
        a / a


def max_pool_numpy(x: np.ndarray, window, stride) -> np.ndarray:  # type: ignore[no-untyped-def]
    """VALID max pooling of NHWC x, the windows written out."""
    n, h, w, c = x.shape
    out_h, out_w = (h - window[0]) // stride[0] + 1, (w - window[1]) // stride[1] + 1
    out = np.empty((n, out_h, out_w, c), x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride[0]: i * stride[0] + window[0], j * stride[1]: j * stride[1] + window[1], :]
            out[:, i, j, :] = patch.max(axis=(1, 2))
    return out


@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int32", "int64", "uint16"])
def test_max_pool_of_integers(rng, dtype, batch) -> None:
    """TF1's MaxPool takes integers (uint8 images unconverted); SAME padding never wins a window, even
    where every pixel is the dtype's lowest value."""
    x = full_range(rng, (batch, 7, 5, 3), dtype)
    if batch:
        x[0, :3, :3, 0] = np.iinfo(dtype).min
    graph = fc.Graph()
    with graph.as_default():
        images = fc.placeholder(dtype, [None, 7, 5, 3])
        fetches = [fc.nn.max_pool(images, [1, 3, 2, 1], [1, 2, 2, 1], "VALID"),
                   fc.nn.max_pool(images, [1, 3, 3, 1], [1, 2, 2, 1], "SAME"),
                   fc.nn.max_pool(fc.transpose(images, [0, 3, 1, 2]), [1, 1, 2, 2], [1, 1, 1, 1], "VALID",
                                  data_format="NCHW")]
    results = {}
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=graph) as session:
            results[target] = session.run(fetches, {images: x})
    for got, want in zip(results["cpu"], results["reference"]):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(results["cpu"][0], max_pool_numpy(x, (3, 2), (2, 2)))
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=np.iinfo(dtype).min)
    np.testing.assert_array_equal(results["cpu"][1], max_pool_numpy(padded, (3, 3), (2, 2)))
    np.testing.assert_array_equal(results["cpu"][2], max_pool_numpy(x, (2, 2), (1, 1)).transpose(0, 3, 1, 2))


def test_avg_pool_of_integers_is_refused_as_tf1() -> None:
    images = fc.placeholder(fc.uint8, [1, 4, 4, 1])
    with pytest.raises(FlowcTypeError, match="avg_pool.*float16, float32 or float64, got u8"):
        fc.nn.avg_pool(images, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
    with pytest.raises(FlowcTypeError, match="max_pool.*float or an integer tensor, got bool"):
        fc.nn.max_pool(fc.cast(images, fc.bool), [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
