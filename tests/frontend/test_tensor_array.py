"""fc.TensorArray: values against numpy, in and out of fc.while_loop, gradients against central differences.

Arrays run on every target in TARGETS, in loops too. A dynamic-size array that
grows at run time runs on GROWING_TARGETS: its row count is data, a data_dim in
a cond branch, which the CPU target runs from the host (Note [conds driven from
the host] in compiler/host_driven.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc import nest
from flowc.errors import FlowcError, IndexOutOfRange
from numeric_gradients import central_differences

TARGETS = ["reference", "cpu"]
LOOP_TARGETS = ["reference", "cpu"]
GROWING_TARGETS = ["reference", "cpu"]


def run(graph, fetches, feeds=None, target="reference"):
    with fc.Session(graph=graph, target=target) as sess:
        return sess.run(fetches, feeds)


# -- outside loops --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_write_read_stack_size(target):
    g = fc.Graph()
    with g.as_default():
        index = fc.placeholder(fc.int32, [])
        ta = fc.TensorArray(fc.float32, size=4)
        written = ta.write(0, [1.0, 2.0]).write(index, [5.0, 6.0])
        fetches = [written.stack(), written.read(index), written.read(0), written.size(), written.concat()]
    stacked, read, first, size, joined = run(g, fetches, {index: 2}, target)
    np.testing.assert_array_equal(stacked, np.float32([[1, 2], [0, 0], [5, 6], [0, 0]]))
    np.testing.assert_array_equal(read, np.float32([5, 6]))
    np.testing.assert_array_equal(first, np.float32([1, 2]))
    assert size == 4 and size.dtype == np.int32
    np.testing.assert_array_equal(joined, stacked.reshape(-1))
    assert written.element_shape == (2,) and ta.element_shape is None and written is not ta


@pytest.mark.parametrize("target", TARGETS)
def test_write_returns_a_new_array_and_leaves_the_old(target):
    g = fc.Graph()
    with g.as_default():
        old = fc.TensorArray(fc.int32, size=2, element_shape=[])
        new = old.write(1, 7)
    before, after = run(g, [old.stack(), new.stack()], target=target)
    np.testing.assert_array_equal(before, [0, 0])
    np.testing.assert_array_equal(after, [0, 7])


@pytest.mark.parametrize("target", TARGETS)
def test_unstack_gather_scatter(target, rng):
    value = rng.standard_normal((4, 3)).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        ta = fc.TensorArray(fc.float32, size=4).unstack(x)
        picked = ta.gather([3, 0, 3])
        scattered = fc.TensorArray(fc.float32, size=3).scatter([2, 0], x[:2])
        unknown = fc.TensorArray(fc.float32, size=0, dynamic_size=True).unstack(x)
        fetches = [ta.stack(), ta.read(1), picked, scattered.stack(), unknown.size(), unknown.read(3)]
    stacked, row, picked_value, scattered_value, size, last = run(g, fetches, {x: value}, target)
    np.testing.assert_array_equal(stacked, value)
    np.testing.assert_array_equal(row, value[1])
    np.testing.assert_array_equal(picked_value, value[[3, 0, 3]])
    np.testing.assert_array_equal(scattered_value, np.stack([value[1], np.zeros(3, np.float32), value[0]]))
    assert size == 4
    np.testing.assert_array_equal(last, value[3])


@pytest.mark.parametrize("target", TARGETS)
def test_unknown_dims_of_elements_come_from_the_value(target, rng):
    value = rng.standard_normal((5, 2)).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 2])
        ta = fc.TensorArray(fc.float32, size=3).write(1, x * 2.0)
        assert ta.element_shape == (None, 2)
    stacked = run(g, ta.stack(), {x: value}, target)
    np.testing.assert_array_equal(stacked, np.stack([np.zeros_like(value), value * 2, np.zeros_like(value)]))


@pytest.mark.parametrize("target", TARGETS)
def test_read_past_the_size_names_the_array_and_index(target):
    g = fc.Graph()
    with g.as_default():
        index = fc.placeholder(fc.int32, [])
        ta = fc.TensorArray(fc.float32, size=3, element_shape=[2], name="frames")
        read = ta.read(index)
    with pytest.raises(IndexOutOfRange, match=r"'frames/read'.*test_tensor_array.py:\d+.*index 5 is out of range "
                                              r"\[0, 3\)"):
        run(g, read, {index: 5}, target)


def test_build_time_errors_name_the_array():
    with fc.Graph().as_default():
        ta = fc.TensorArray(fc.float32, size=2, name="seq")
        with pytest.raises(IndexOutOfRange, match=r"TensorArray 'seq'.read \(created at test_tensor_array.py:\d+\): "
                                                  r"index 2 is out of range \[0, 2\)"):
            ta.write(0, [1.0]).read(2)
        with pytest.raises(FlowcError, match=r"TensorArray 'seq'.write.*holds float32"):
            ta.write(0, fc.constant([1, 2]))
        with pytest.raises(FlowcError, match=r"elements of this array are \[2\], got one of \[3\]"):
            ta.write(0, [1.0, 2.0]).write(1, [1.0, 2.0, 3.0])
        with pytest.raises(FlowcError, match=r"'seq'.stack.*cannot stack it: its element shape is unknown"):
            ta.stack()
        with pytest.raises(FlowcError, match=r"unstack of 3 elements into an array of size 2"):
            ta.unstack(fc.zeros([3, 4]))
        with pytest.raises(FlowcError, match="needs a size, or dynamic_size=True"):
            fc.TensorArray(fc.float32)
        with pytest.raises(FlowcError, match="handle or flow"):
            fc.TensorArray(fc.float32, size=1, flow=fc.constant(0.0))
        with pytest.raises(FlowcError, match="must be an int known when the graph is built"):
            fc.TensorArray(fc.float32, size=fc.placeholder(fc.int32, []))
        with pytest.raises(FlowcError, match=r"cannot carry it through a loop or cond: its element shape is "
                                             r"\[None, 3\] \(not all known\)"):
            partial = fc.TensorArray(fc.float32, size=2, element_shape=[None, 3])
            fc.while_loop(lambda i, t: i < 2, lambda i, t: (i + 1, t), [0, partial])


def test_a_tensor_array_is_composite():
    with fc.Graph().as_default():
        fixed = fc.TensorArray(fc.float32, size=3, element_shape=[2])
        growing = fc.TensorArray(fc.float32, size=0, dynamic_size=True, element_shape=[2])
        assert [t.shape for t in nest.flatten(fixed)] == [(3, 2)]
        assert [t.shape for t in nest.flatten(growing)] == [(None, 2), ()]
        rebuilt = nest.pack_sequence_as(growing, nest.flatten(growing))
        assert isinstance(rebuilt, fc.TensorArray) and rebuilt.dynamic_size


# -- in loops ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", LOOP_TARGETS)
def test_filled_by_a_while_loop(target, rng):
    value = rng.standard_normal((6, 3))
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [6, 3])
        inputs = fc.TensorArray(fc.float64, size=6).unstack(x)
        squares = fc.TensorArray(fc.float64, size=6, element_shape=[3])

        def body(i, total, out):
            row = inputs.read(i)
            return i + 1, total + row, out.write(i, total + row * row)

        _, total, squares = fc.while_loop(lambda i, total, out: i < 6, body, [0, fc.zeros([3], fc.float64), squares])
        result = squares.stack()
    got_total, got = run(g, [total, result], {x: value}, target)
    running = np.cumsum(value, 0) - value
    np.testing.assert_allclose(got, running + value * value, rtol=1e-12)
    np.testing.assert_allclose(got_total, value.sum(0), rtol=1e-12)


@pytest.mark.parametrize("target", GROWING_TARGETS)
def test_dynamic_size_grows_in_a_loop(target):
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, [])
        ta = fc.TensorArray(fc.float32, size=0, dynamic_size=True, element_shape=[2])
        _, ta = fc.while_loop(lambda i, t: i < n,
                              lambda i, t: (i + 1, t.write(2 * i, fc.cast(i, fc.float32) * fc.ones([2]))), [0, ta])
        index = fc.placeholder(fc.int32, [])
        fetches = [ta.stack(), ta.size(), ta.read(index)]
    stacked, size, _ = run(g, fetches, {n: 3, index: 0}, target)
    assert size == 5  # the last write was at 4
    np.testing.assert_array_equal(stacked, np.float32([[0, 0], [0, 0], [1, 1], [0, 0], [2, 2]]))
    with pytest.raises(IndexOutOfRange, match=r"'TensorArray/read'.*index 5 is out of range \[0, 5\)"):
        run(g, fetches, {n: 3, index: 5}, target)
    empty, empty_size = run(g, fetches[:2], {n: 0}, target)
    assert empty.shape == (0, 2) and empty_size == 0


@pytest.mark.parametrize("target", GROWING_TARGETS)
def test_dynamic_size_outside_loops(target):
    g = fc.Graph()
    with g.as_default():
        ta = fc.TensorArray(fc.int64, size=1, dynamic_size=True)
        ta = ta.write(0, np.int64(3)).write(3, np.int64(4))
    stacked, size = run(g, [ta.stack(), ta.size()], target=target)
    np.testing.assert_array_equal(stacked, np.int64([3, 0, 0, 4]))
    assert size == 4


@pytest.mark.parametrize("target", LOOP_TARGETS)
def test_gradients_through_writes_and_reads_in_a_loop(target, rng):
    value = rng.standard_normal((5, 3))
    weight = rng.standard_normal(3)
    cotangent = rng.standard_normal((5, 3))
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [5, 3])
        w = fc.placeholder(fc.float64, [3])
        inputs = fc.TensorArray(fc.float64, size=5).unstack(x)

        def body(i, h, out):
            h = fc.tanh(h * w + inputs.read(i))
            return i + 1, h, out.write(i, h)

        out = fc.TensorArray(fc.float64, size=5, element_shape=[3])
        _, _, out = fc.while_loop(lambda i, h, out: i < 5, body, [0, fc.zeros([3], fc.float64), out])
        loss = fc.reduce_sum(out.stack() * cotangent)
        gx, gw = fc.gradients(loss, [x, w])
    got_x, got_w = run(g, [gx, gw], {x: value, w: weight}, target)

    def np_loss():
        h, total = np.zeros(3), 0.0
        for i in range(5):
            h = np.tanh(h * weight + value[i])
            total += np.sum(h * cotangent[i])
        return total

    np.testing.assert_allclose(got_x, central_differences(np_loss, value), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got_w, central_differences(np_loss, weight), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("target", TARGETS)
def test_gradients_through_static_writes_and_gather(target, rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [3])
        y = fc.placeholder(fc.float64, [3])
        ta = fc.TensorArray(fc.float64, size=3).write(0, x * y).write(2, x * x)
        ta = ta.write(1, y)
        loss = fc.reduce_sum(ta.gather([2, 0, 2]) * fc.constant([[1.0], [2.0], [3.0]], fc.float64)) + fc.reduce_sum(
            ta.read(1) * ta.read(0))
        gx, gy = fc.gradients(loss, [x, y])
    got_x, got_y = run(g, [gx, gy], {x: a, y: b}, target)

    def np_loss():
        rows = np.stack([a * b, b, a * a])
        return np.sum(rows[[2, 0, 2]] * np.array([1.0, 2.0, 3.0])[:, None]) + np.sum(rows[1] * rows[0])

    np.testing.assert_allclose(got_x, central_differences(np_loss, a), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(got_y, central_differences(np_loss, b), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("target", GROWING_TARGETS)
def test_unstacked_dynamic_array_grows_in_a_loop_and_goes_through_cond(target):
    g = fc.Graph()
    with g.as_default():
        flag = fc.placeholder(fc.bool, [])
        ta = fc.TensorArray(fc.float32, size=0, dynamic_size=True).unstack(fc.constant([[1.0], [2.0]]))
        _, ta = fc.while_loop(lambda i, t: i < 4,
                              lambda i, t: (i + 1, t.write(i + 1, fc.reshape(fc.cast(i, fc.float32) * 10.0, [1]))),
                              [0, ta])
        chosen = fc.cond(flag, lambda: ta.write(0, [7.0]), lambda: ta)
        assert isinstance(chosen, fc.TensorArray)
        fetches = [chosen.stack(), chosen.size()]
    stacked, size = run(g, fetches, {flag: True}, target)
    np.testing.assert_array_equal(stacked, np.float32([[7], [0], [10], [20], [30]]))
    assert size == 5
    stacked, _ = run(g, fetches, {flag: False}, target)
    np.testing.assert_array_equal(stacked[0], [1.0])


@pytest.mark.parametrize("target", GROWING_TARGETS)
def test_scatter_of_indices_known_at_run_time(target, rng):
    value = rng.standard_normal((3, 2)).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        indices = fc.placeholder(fc.int32, [None])
        rows = fc.placeholder(fc.float32, [None, 2])
        fixed = fc.TensorArray(fc.float32, size=4).scatter(indices, rows)
        growing = fc.TensorArray(fc.float32, size=0, dynamic_size=True).scatter(indices, rows)
        fetches = [fixed.stack(), growing.stack(), growing.size()]
    got_fixed, got_growing, size = run(g, fetches, {indices: [3, 0, 1], rows: value}, target)
    want = np.stack([value[1], value[2], np.zeros(2, np.float32), value[0]])
    np.testing.assert_array_equal(got_fixed, want)
    np.testing.assert_array_equal(got_growing, want)
    assert size == 4
    with pytest.raises(IndexOutOfRange, match=r"index 4 is out of range \[0, 4\)"):
        run(g, fixed.stack(), {indices: [4], rows: value[:1]}, target)
