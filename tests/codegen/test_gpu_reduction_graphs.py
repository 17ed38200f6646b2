"""Graphs of reductions on Session(target="gpu"): softmax, layer norm, means, arg-reductions, a softmax
cross-entropy training step, in Triton's interpreter against the reference target, every kernel also
built to PTX for sm_90 (gpu_check.py). The kernels one by one: test_gpu_reduction.py."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402
from flowc.ir.errors import RuntimeShapeError  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402

RNG = np.random.default_rng(2101)
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")


def normal(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(5, 10), (1, 10), (0, 10)])
def test_softmax_rows_of_a_known_length(shape):
    def build():
        x = fc.placeholder(fc.float32, [None, 10], name="x")
        return fc.nn.softmax(x)
    assert_gpu_matches(build, {"x": normal(*shape) * 5}, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(3, 1100), (2, 1), (4, 0)])
def test_softmax_and_log_softmax_of_unknown_rows(shape):
    def build():
        x = fc.placeholder(fc.float32, [None, None], name="x")
        return [fc.nn.softmax(x), fc.nn.log_softmax(x)]
    assert_gpu_matches(build, {"x": normal(*shape) * 5}, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("width", [64, 1030])
def test_layer_norm(width):
    def build():
        x = fc.placeholder(fc.float32, [None, width], name="x")
        gamma = fc.placeholder(fc.float32, [width], name="gamma")
        beta = fc.placeholder(fc.float32, [width], name="beta")
        mean = fc.reduce_mean(x, axis=1, keepdims=True)
        centered = x - mean
        variance = fc.reduce_mean(centered * centered, axis=1, keepdims=True)
        return centered * fc.rsqrt(variance + 1e-5) * gamma + beta
    assert_gpu_matches(build, {"x": normal(3, width) * 3 + 1, "gamma": normal(width), "beta": normal(width)},
                       rtol=1e-4, atol=1e-5)


def test_means_over_every_axis_and_two_unknown_dims():
    def build():
        x = fc.placeholder(fc.float64, [None, None, 3], name="x")
        return [fc.reduce_mean(x), fc.reduce_mean(x, axis=0), fc.reduce_mean(x, axis=[1, 2], keepdims=True),
                fc.reduce_mean(x, axis=1)]
    for shape in ((4, 7, 3), (1, 1, 3), (0, 2, 3), (3, 0, 3)):
        assert_gpu_matches(build, {"x": RNG.standard_normal(shape)}, rtol=1e-12, atol=1e-15)


def test_arg_reductions_and_bool_reductions():
    def build():
        x = fc.placeholder(fc.float32, [None, None], name="x")
        positive = x > 0.0
        return [fc.argmax(x, axis=1), fc.argmin(x, axis=0), fc.reduce_any(positive, axis=1),
                fc.reduce_all(positive, axis=0)]
    x = np.round(normal(6, 9))  # ties
    x[2, 4] = np.nan
    assert_gpu_matches(build, {"x": x})


def test_argmax_over_an_empty_axis_fails_as_on_the_cpu():
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float32, [None, None], name="x")
        y = fc.argmax(x, axis=1)
    with fc.Session(target="gpu", graph=graph) as session, pytest.raises(RuntimeShapeError, match="argmax"):
        session.run(y, {x: np.zeros((3, 0), np.float32)})


def test_softmax_cross_entropy_training_step():
    """A softmax regression step: the loss's row reductions and the gradient's column sums, three runs."""
    def build():
        x = fc.placeholder(fc.float32, [None, 12], name="x")
        labels = fc.placeholder(fc.float32, [None, 5], name="labels")
        w = fc.Variable(np.linspace(-1, 1, 60, dtype=np.float32).reshape(12, 5), name="w")
        b = fc.Variable(np.zeros(5, np.float32), name="b")
        logits = fc.matmul(x, w) + b
        loss = fc.reduce_mean(fc.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        step = fc.train.GradientDescentOptimizer(0.5).minimize(loss)
        return [loss, step]
    labels = np.eye(5, dtype=np.float32)[RNG.integers(0, 5, 7)]
    assert_gpu_matches(build, {"x": normal(7, 12), "labels": labels}, rtol=1e-5, atol=1e-6, runs=3)


@pytest.mark.parametrize("b", [0, 1, 4])
def test_an_outer_value_reads_a_keepdims_operand_of_an_unknown_dim_once(b):
    """flowc.fuzz --target gpu, seed 1120: the gradient of x4 - x5 by x4 sums dy over x5's b, and adds
    a slice of another cotangent, [?] at build time, 1 at run time. That add is one per kept point:
    its operand is read once (broadcast along the reduced axis, as the CPU reads it), not in the walk
    over b, which never ran for b = 0 and left the read without its index."""
    def build():
        x4 = fc.placeholder(fc.float32, [1], name="x4")
        x5 = fc.placeholder(fc.float32, [None], name="x5")
        v8 = fc.concat([x4, x4 - x5], axis=0)
        w = fc.placeholder(fc.float32, [None], name="w")
        return fc.gradients(fc.reduce_sum(v8 * w), [x4, x5])
    assert_gpu_matches(build, {"x4": normal(1), "x5": normal(b), "w": normal(b + 1)}, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("b", [1, 2, 5])
def test_a_full_value_of_a_kernel_whose_points_are_all_ones_is_stored_as_a_tile(b):
    """flowc.fuzz --target gpu, seed 1133: clip_by_norm of a mean over a [1]-long row (b = 1 or 2)
    keeps a kernel whose every axis is a static 1; its full result went to a scalar pointer with a tile
    of values and a tile of mask."""
    def build():
        x = fc.placeholder(fc.float32, [None, None], name="x")
        picked = x[::-2, 0][0::-2]
        return fc.clip_by_norm(fc.reduce_mean(picked, axis=-1), 1.0)
    assert_gpu_matches(build, {"x": normal(b, b)}, rtol=1e-6, atol=1e-7)
