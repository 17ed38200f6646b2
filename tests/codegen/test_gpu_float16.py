"""float16 on the gpu target: graphs run in Triton's interpreter against the reference (numpy float16,
each op rounded to half; sums and matmul accumulated in float32), every kernel built to PTX for sm_90.
Tolerances are a half's: an ulp is 2**-10 relative, and a transcendental here is rounded once from
float64 where numpy's runs in float32 and rounds (so the two may differ by an ulp)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402

ULP = 2.0**-10


def half(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float16)


def test_arithmetic_is_rounded_to_half_per_op_exactly(rng: np.random.Generator) -> None:
    """+ - * / and sqrt correctly rounded to half (from float64: exact enough), as numpy's are."""
    def build():
        x = fc.placeholder(fc.float16, [None, 33], name="x")
        y = fc.placeholder(fc.float16, [33], name="y")
        return [x + y, x - y, x * y, x / y, fc.sqrt(fc.abs(x)), fc.floor(x * 4.0), fc.maximum(x, y), x * 1e-4]

    results = assert_gpu_matches(build, {"x": half(rng, (5, 33)), "y": half(rng, (33,))}, rtol=0.0, atol=0.0)
    assert all(r.dtype == np.float16 for r in results)


def test_chains_of_arithmetic_within_an_ulp(rng: np.random.Generator) -> None:
    """A product then a sum: on a GPU Triton may contract them to one fma (kernel.py's fp_fusion), rounded
    once rather than twice, as it does for float32: an ulp of a half apart at most."""
    def build():
        x = fc.placeholder(fc.float16, [None, 33], name="x")
        y = fc.placeholder(fc.float16, [33], name="y")
        return [x * y + 1.0, (x - y) / (y * y + 0.5), fc.sqrt(x * x + 2.0)]

    assert_gpu_matches(build, {"x": half(rng, (5, 33)), "y": half(rng, (33,))}, rtol=1.01 * ULP, atol=2.0**-24)


def test_transcendentals_within_an_ulp(rng: np.random.Generator) -> None:
    def build():
        x = fc.placeholder(fc.float16, [64], name="x")
        return [fc.exp(x), fc.tanh(x), fc.sigmoid(x), fc.log(fc.abs(x) + 0.1), fc.pow(fc.abs(x) + 0.5, x)]

    assert_gpu_matches(build, {"x": half(rng, (64,), 2.0)}, rtol=1.01 * ULP, atol=2.0**-24)


def test_casts_to_and_from_half(rng: np.random.Generator) -> None:
    def build():
        x = fc.placeholder(fc.float32, [7], name="x")
        h = fc.cast(x, fc.float16)
        return [h, fc.cast(h, fc.float64), fc.cast(h * 3.0, fc.int32)]

    data = np.array([1e-8, 7e4, -2.5, 1 / 3, 3.7, 65519.0, -6e-5], np.float32)
    assert_gpu_matches(build, {"x": data}, rtol=0.0, atol=0.0)


def test_reductions_accumulate_in_float32(rng: np.random.Generator) -> None:
    """A sum of 4096 ones is 4096 (a half accumulator stops at 2048); sums and means of data within an
    ulp of the reference's float32 sum rounded once."""
    def build():
        x = fc.placeholder(fc.float16, [None, 4096], name="x")
        return [fc.reduce_sum(x, axis=1), fc.reduce_mean(x, axis=1), fc.reduce_max(x, axis=1),
                fc.reduce_sum(x, axis=0)]

    data = half(rng, (3, 4096))
    data[0] = 1.0
    results = assert_gpu_matches(build, {"x": data}, rtol=2 * ULP, atol=1e-3)
    assert results[0][0] == 4096


def test_softmax_rows(rng: np.random.Generator) -> None:
    def build():
        x = fc.placeholder(fc.float16, [None, 50], name="x")
        return fc.nn.softmax(x)

    assert_gpu_matches(build, {"x": half(rng, (6, 50), 3.0)}, rtol=4 * ULP, atol=1e-4)


@pytest.mark.parametrize("m, k, n", [(5, 40, 3), (130, 70, 129)])
def test_matmul_with_bias_relu_epilogue(m: int, k: int, n: int, rng: np.random.Generator) -> None:
    """tl.dot on half tiles (128 x 128 x 32), float32 accumulation, rounded to half before the epilogue,
    as the reference rounds the product before the bias add."""
    def build():
        a = fc.placeholder(fc.float16, [None, k], name="a")
        b = fc.placeholder(fc.float16, [k, n], name="b")
        bias = fc.placeholder(fc.float16, [n], name="bias")
        return fc.nn.relu(fc.matmul(a, b) + bias)

    feeds = {"a": half(rng, (m, k), k**-0.5), "b": half(rng, (k, n)), "bias": half(rng, (n,))}
    assert_gpu_matches(build, feeds, rtol=2 * ULP, atol=2e-3)


def test_gradient_step_of_a_half_layer(rng: np.random.Generator) -> None:
    def build():
        x = fc.placeholder(fc.float16, [None, 8], name="x")
        w = fc.Variable(half(rng, (8, 4), 0.3), name="w")
        loss = fc.reduce_mean(fc.square(fc.tanh(fc.matmul(x, w))))
        (grad,) = fc.gradients(loss, [w])
        return [loss, grad]

    assert_gpu_matches(build, {"x": half(rng, (16, 8))}, rtol=8 * ULP, atol=2e-3)


def test_a_torch_half_tensor_is_fed_as_it_is_and_a_float32_one_refused() -> None:
    torch = pytest.importorskip("torch")
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float16, [None, 4], name="x")
        y = x * 3.0 + 0.5
    data = torch.tensor([[0.1, 1.0, -2.0, 70.0]], dtype=torch.float16)
    with fc.Session(target="gpu", graph=graph) as session:
        got = session.run(y, {"x": data})
        assert got.dtype == np.float16
        want = data.numpy() * np.float16(3.0) + np.float16(0.5)
        np.testing.assert_allclose(got, want, rtol=1.01 * ULP)
        with pytest.raises(fc.errors.FeedError, match="expects float16, got a float32"):
            session.run(y, {"x": data.to(torch.float32)})


def test_sgd_steps_on_half_variables(rng: np.random.Generator) -> None:
    """Three steps of GradientDescentOptimizer on float16 weights: the update W - lr * dW in half."""
    w0, x0 = half(rng, (6, 3), 0.5), half(rng, (10, 6))

    def build():
        x = fc.placeholder(fc.float16, [None, 6], name="x")
        w = fc.Variable(w0, name="w")
        b = fc.Variable(np.zeros(3, np.float16), name="b")
        loss = fc.reduce_mean(fc.square(fc.matmul(x, w) + b - 1.0))
        train = fc.train.GradientDescentOptimizer(0.1).minimize(loss)
        with fc.control_dependencies([train]):
            return [fc.identity(w), fc.identity(b)]

    results = assert_gpu_matches(build, {"x": x0}, rtol=8 * ULP, atol=2e-3, runs=3)
    assert results[0].dtype == np.float16 and not np.array_equal(results[0], w0)
