"""Front-end bugs the differential fuzzer (flowc.fuzz) found with its control-flow, array and nn draws.

Each graph was rejected by the front end (a FlowcError at build time, or on both targets at run
time) though TensorFlow 1 accepts it; each test runs the minimized graph on both targets.
"""

import flowc as fc
import numpy as np
import pytest

TARGETS = ["reference", "cpu"]


def run(graph: fc.Graph, target: str, fetches: list, feed: dict) -> list:
    with fc.Session(graph=graph, target=target) as session:
        return session.run(fetches, feed)


@pytest.mark.parametrize("target", TARGETS)
def test_map_fn_scan_and_foldl_over_elements_with_a_zero_dim(target):
    """elems [n, 0] are n empty elements (fuzz seed 211: the row count read elems[:, 0], out of range)."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 0], name="x")
        y = fc.placeholder(fc.float32, [None, None], name="y")
        fetches = [fc.map_fn(lambda e: fc.reduce_sum(e) + 1.0, x), fc.foldl(lambda s, e: s + e, x),
                   fc.scan(lambda s, e: s * 2.0 + e, x), fc.map_fn(lambda e: fc.reduce_max(e), y)]
    mapped, folded, scanned, maxima = run(g, target, fetches, {x: np.zeros((3, 0), np.float32),
                                                               y: np.zeros((4, 0), np.float32)})
    np.testing.assert_array_equal(mapped, [1.0, 1.0, 1.0])
    assert folded.shape == (0,) and scanned.shape == (3, 0)
    np.testing.assert_array_equal(maxima, np.full(4, -np.inf, np.float32))  # an empty max, as reduce_max


@pytest.mark.parametrize("target", TARGETS)
def test_tile_by_zero_along_any_axis_of_a_value_with_unknown_dims(target):
    """fc.tile(x, [0, 1]) of x [3, None] is empty (fuzz seed 93: 'concat of no tensors')."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [3, None], name="x")
        tiles = [fc.tile(x, [0, 1]), fc.tile(x, [2, 0]), fc.tile(x, [0, 3])]
    assert [t.shape for t in tiles] == [(0, None), (6, None), (0, None)]
    data = np.arange(6, dtype=np.float32).reshape(3, 2)
    for got, multiples in zip(run(g, target, tiles, {x: data}), ([0, 1], [2, 0], [0, 3])):
        np.testing.assert_array_equal(got, np.tile(data, multiples))


@pytest.mark.parametrize("target", TARGETS)
def test_moments_keep_two_unknown_dims(target):
    """moments over the last axis of x [None, None, 3] (fuzz seed 1489: a reshape to [-1, -1])."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, None, 3], name="x")
        mean, variance = fc.nn.moments(x, axes=[2])
        outer_mean, outer_variance = fc.nn.moments(x, axes=[0, -1])
        fetches = [mean, variance, outer_mean, outer_variance]
        fetches += fc.gradients([fc.reduce_sum(variance * variance)], [x])
    data = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    got = run(g, target, fetches, {x: data})
    for value, want in zip(got, [data.mean(2), data.var(2), data.mean((0, 2)), data.var((0, 2))]):
        np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-6)
    centered = data - data.mean(2, keepdims=True)  # d/dx sum(var^2) = 2 var * 2 (x - mean) / n
    np.testing.assert_allclose(got[4], 4 * data.var(2, keepdims=True) * centered / 3, rtol=1e-4, atol=1e-5)
