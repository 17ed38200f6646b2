"""fc.map_fn, fc.scan, fc.foldl, fc.foldr against numpy loops; gradients against central differences.

All are fc.while_loops: they run on TARGETS (add "cpu" once the CPU target
compiles `while`).
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcError
from numeric_gradients import central_differences

TARGETS = ["reference", "cpu"]

Pair = collections.namedtuple("Pair", ["left", "right"])


def run(graph, fetches, feeds=None, target="reference"):
    with fc.Session(graph=graph, target=target) as sess:
        return sess.run(fetches, feeds)


@pytest.mark.parametrize("target", TARGETS)
def test_map_fn_nested_elems_and_results(target, rng):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((5,))
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None, 3])
        y = fc.placeholder(fc.float64, [None])
        result = fc.map_fn(lambda e: Pair(fc.reduce_sum(e["x"]) * e["y"], {"twice": e["x"] * 2.0}),
                           {"x": x, "y": y}, dtype=Pair(fc.float64, {"twice": fc.float64}))
        assert isinstance(result, Pair) and result.left.shape == (None,) and result.right["twice"].shape == (None, 3)
        empty = fc.map_fn(lambda e: fc.cast(e, fc.int32), fc.zeros([0, 2]))
    left, twice, empty_value = run(g, [result.left, result.right["twice"], empty], {x: a, y: b}, target)
    np.testing.assert_allclose(left, a.sum(1) * b, rtol=1e-12)
    np.testing.assert_allclose(twice, a * 2, rtol=1e-12)
    assert empty_value.shape == (0, 2) and empty_value.dtype == np.int32


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("reverse", [False, True])
def test_scan(target, reverse, rng):
    value = rng.standard_normal((6, 2))
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None, 2])
        running = fc.scan(lambda a, e: a * 0.5 + e, x, reverse=reverse)
        nested = fc.scan(lambda a, e: (a[0] + e, a[1] * e), x, initializer=(fc.zeros([2], fc.float64),
                                                                         fc.ones([2], fc.float64)), reverse=reverse)
    got_running, (got_sum, got_product) = run(g, [running, nested], {x: value}, target)
    order = range(5, -1, -1) if reverse else range(6)
    want_running, want_sum, want_product = np.zeros_like(value), np.zeros_like(value), np.zeros_like(value)
    a, total, product = None, np.zeros(2), np.ones(2)
    for i in order:
        a = value[i] if a is None else a * 0.5 + value[i]
        total, product = total + value[i], product * value[i]
        want_running[i], want_sum[i], want_product[i] = a, total, product
    np.testing.assert_allclose(got_running, want_running, rtol=1e-12)
    np.testing.assert_allclose(got_sum, want_sum, rtol=1e-12)
    np.testing.assert_allclose(got_product, want_product, rtol=1e-12)


@pytest.mark.parametrize("target", TARGETS)
def test_foldl_foldr(target):
    g = fc.Graph()
    with g.as_default():
        digits = fc.placeholder(fc.int32, [None])
        left = fc.foldl(lambda a, x: a * 10 + x, digits)
        right = fc.foldr(lambda a, x: a * 10 + x, digits)
        counted = fc.foldl(lambda a, x: Pair(a.left + 1, a.right + x), digits, initializer=Pair(0, 100))
        pairs = fc.foldr(lambda a, x: a + x[0] * x[1], (digits, digits * 2), initializer=0)
    got = run(g, [left, right, counted, pairs], {digits: np.int32([1, 2, 3, 4])}, target)
    assert [int(got[0]), int(got[1])] == [1234, 4321]
    assert isinstance(got[2], Pair) and (int(got[2].left), int(got[2].right)) == (4, 110)
    assert int(got[3]) == 2 * (1 + 4 + 9 + 16)


@pytest.mark.parametrize("target", TARGETS)
def test_gradients_match_central_differences(target, rng):
    value, weight = rng.standard_normal((4, 3)), rng.standard_normal(3)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None, 3])
        w = fc.placeholder(fc.float64, [3])
        mapped = fc.map_fn(lambda e: fc.tanh(e * w), x)
        scanned = fc.scan(lambda a, e: fc.tanh(a * w + e), x, initializer=fc.zeros([3], fc.float64), reverse=True)
        folded = fc.foldl(lambda a, e: a * fc.reduce_sum(e * w) + 1.0, x, initializer=fc.constant(0.5, fc.float64))
        loss = fc.reduce_sum(mapped * mapped) + fc.reduce_sum(scanned * fc.constant([1.0, -2.0, 3.0], fc.float64)) \
            + folded * folded
        gx, gw = fc.gradients(loss, [x, w])
    got_x, got_w = run(g, [gx, gw], {x: value, w: weight}, target)

    def np_loss():
        mapped_value = np.tanh(value * weight)
        a, scanned_value = np.zeros(3), np.zeros_like(value)
        for i in range(3, -1, -1):
            a = np.tanh(a * weight + value[i])
            scanned_value[i] = a
        fold = 0.5
        for i in range(4):
            fold = fold * np.sum(value[i] * weight) + 1.0
        return np.sum(mapped_value ** 2) + np.sum(scanned_value * [1.0, -2.0, 3.0]) + fold ** 2

    np.testing.assert_allclose(got_x, central_differences(np_loss, value), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got_w, central_differences(np_loss, weight), rtol=1e-6, atol=1e-8)


def test_back_prop_false_stops_gradients():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float64, [3])
        total = fc.foldl(lambda a, e: a + e, x, back_prop=False)
        assert fc.gradients(total, x) == [None]


def test_errors_name_the_op_and_line():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [4, 2])
        with pytest.raises(FlowcError, match=r"map_fn 'map' \(created at test_functional_ops.py:\d+\): dtype says fn "
                                             r"returns int32, fn returns float32"):
            fc.map_fn(lambda e: e * 2.0, x, dtype=fc.int32)
        with pytest.raises(FlowcError, match=r"scan 'scan'.*fn must return the structure of its accumulator"):
            fc.scan(lambda a, e: (a, a), x)
        with pytest.raises(FlowcError, match=r"foldl 'foldl'.*different first dims"):
            fc.foldl(lambda a, e: a, (x, fc.zeros([3])), initializer=0.0)
        with pytest.raises(FlowcError, match=r"elems\[1\] is a scalar"):
            fc.foldr(lambda a, e: a, (x, fc.constant(1.0)), initializer=0.0)
        with pytest.raises(FlowcError, match=r"map_fn needs the shape of fn's result known"):
            fc.map_fn(lambda e: e, fc.placeholder(fc.float32, [3, None]))
