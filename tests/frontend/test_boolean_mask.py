"""fc.where(cond) with one argument and fc.boolean_mask on the cpu target, against the reference target
and numpy: a result size that is data (Note [data-dependent sizes] in compiler/data_sized_run.py).

The shapes that hurt: no true element (a [0, ...] result), all true, a size-0 input, two None dims fed
different sizes in one Session, masks of rank 1, 2 and 3, an axis, int and float inputs, a mask of a
masked tensor (two cuts), reductions of the result, gradients (against the reference and central
differences in float64) and a training step; and the clear errors where a run cannot be cut.
"""

from __future__ import annotations

import numpy as np
import pytest
from numeric_gradients import central_differences

import flowc as fc
from flowc.ir.errors import UnsupportedOpError

DTYPES = [fc.float32, fc.float64, fc.int32, fc.int64]


def sample(rng: np.random.Generator, shape: tuple, dtype: fc.DType) -> np.ndarray:
    if dtype in (fc.int32, fc.int64):
        return rng.integers(-3, 4, shape).astype(dtype.np)
    return rng.standard_normal(shape).astype(dtype.np)


def run_on(target: str, graph: fc.Graph, fetches: list, feeds: list[dict]) -> list[list[np.ndarray]]:
    with fc.Session(target=target, graph=graph) as sess:
        return [sess.run(fetches, feed) for feed in feeds]


def assert_same(got: list[list[np.ndarray]], want: list[list[np.ndarray]], rtol: float = 0.0) -> None:
    """Same shapes, dtypes and values (NaN where the other has NaN: the mean of nothing)."""
    for got_run, want_run in zip(got, want, strict=True):
        for g, w in zip(got_run, want_run, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
            np.testing.assert_allclose(g, w, rtol=rtol, atol=0)


def test_the_issue_reproducer_on_every_kind_of_batch(rng) -> None:
    """The brief's program: rows whose sum is positive; batches with some, none and all such rows, and none."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        m = fc.reduce_sum(x, 1) > 0
        outs = [fc.boolean_mask(x, m), fc.where(m), fc.where(x > 0)]
    batches = [sample(rng, (5, 3), fc.float32), -np.abs(sample(rng, (4, 3), fc.float32)),
               np.abs(sample(rng, (6, 3), fc.float32)) + 0.5, np.zeros((0, 3), np.float32)]
    feeds = [{x: batch} for batch in batches]
    got = run_on("cpu", g, outs, feeds)
    assert_same(got, run_on("reference", g, outs, feeds))
    for batch, (masked, rows, positives) in zip(batches, got):
        np.testing.assert_array_equal(masked, batch[batch.sum(1) > 0])
        np.testing.assert_array_equal(rows, np.argwhere(batch.sum(1) > 0))
        np.testing.assert_array_equal(positives, np.argwhere(batch > 0))
    assert got[1][0].shape == (0, 3) and got[1][1].shape == (0, 1) and got[2][0].shape == (6, 3)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("mask_rank", [1, 2, 3])
def test_masks_of_rank_one_to_three_over_int_and_float_tensors(dtype: fc.DType, mask_rank: int, rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(dtype, [None, None, 2])
        m = fc.placeholder(fc.bool, [None] * mask_rank)
        outs = [fc.boolean_mask(x, m), fc.where(m), fc.reduce_sum(fc.boolean_mask(x, m), 0)]
    feeds = []
    for shape in [(3, 4, 2), (5, 1, 2), (0, 3, 2), (2, 0, 2)]:
        value = sample(rng, shape, dtype)
        for mask in (rng.random(shape[:mask_rank]) < 0.5, np.zeros(shape[:mask_rank], bool),
                     np.ones(shape[:mask_rank], bool)):
            feeds.append({x: value, m: mask})
    got = run_on("cpu", g, outs, feeds)
    assert_same(got, run_on("reference", g, outs, feeds), rtol=1e-5)  # the sums: another order of adds
    for feed, (masked, _, _) in zip(feeds, got):
        np.testing.assert_array_equal(masked, feed[x][feed[m]])


def test_two_unknown_dims_fed_different_sizes_in_one_session(rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None, None])
        outs = [fc.boolean_mask(x, x > 0), fc.where(x), fc.reduce_max(fc.boolean_mask(x, x > -10.0))]
    feeds = [{x: sample(rng, shape, fc.float64)} for shape in [(3, 5), (6, 2), (4, 1), (3, 5), (1, 7)]]
    got = run_on("cpu", g, outs, feeds)
    assert_same(got, run_on("reference", g, outs, feeds))
    for feed, (masked, _, _) in zip(feeds, got):
        np.testing.assert_array_equal(masked, feed[x][feed[x] > 0])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_where_of_a_number_tensor_is_its_nonzero_elements(dtype: fc.DType, rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(dtype, [None, 3])
        found = fc.where(x)
    value = sample(rng, (6, 3), dtype)
    if dtype.is_float:
        value[0, 1], value[2, 2] = np.nan, -0.0  # NaN is nonzero, -0.0 is zero (numpy's argwhere)
    feeds = [{x: value}, {x: np.zeros((2, 3), dtype.np)}]
    got = run_on("cpu", g, [found], feeds)
    assert_same(got, run_on("reference", g, [found], feeds))
    np.testing.assert_array_equal(got[0][0], np.argwhere(value))


@pytest.mark.parametrize("shape, mask_shape, axis", [((2, 5, 3), (5,), 1), ((2, 4, 3), (4, 3), 1),
                                                     ((3, 2, 4), (4,), 2), ((4, 3), (4, 3), 0)])
def test_boolean_mask_along_an_axis(shape: tuple, mask_shape: tuple, axis: int, rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None] * len(shape))
        m = fc.placeholder(fc.bool, mask_shape)
        y = fc.boolean_mask(x, m, axis=axis)
        (grad,) = fc.gradients(fc.reduce_sum(fc.sin(y)), [x])
    value = sample(rng, shape, fc.float64)
    feeds = [{x: value, m: rng.random(mask_shape) < 0.5}, {x: value, m: np.zeros(mask_shape, bool)}]
    got = run_on("cpu", g, [y, grad], feeds)
    assert_same(got, run_on("reference", g, [y, grad], feeds), rtol=1e-12)
    for feed, (masked, gradient) in zip(feeds, got):
        index = (slice(None),) * axis + (feed[m],)
        np.testing.assert_array_equal(masked, value[index])
        want = np.zeros_like(value)
        want[index] = np.cos(value[index])
        np.testing.assert_allclose(gradient, want, rtol=1e-12)


def test_a_mask_of_a_masked_tensor_is_cut_twice(rng) -> None:
    """The second count reads the first mask's result: three segments, each count read before the next."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 2])
        rows = fc.boolean_mask(x, x[:, 0] > 0)
        both = fc.boolean_mask(rows, rows[:, 1] > 0)
        outs = [rows, both, fc.reduce_sum(both)]
    feeds = [{x: sample(rng, (n, 2), fc.float32)} for n in (9, 1, 0, 30)]
    got = run_on("cpu", g, outs, feeds)
    assert_same(got, run_on("reference", g, outs, feeds), rtol=1e-6)
    for feed, (_, picked, _) in zip(feeds, got):
        value = feed[x]
        np.testing.assert_array_equal(picked, value[(value[:, 0] > 0) & (value[:, 1] > 0)])


def test_the_gradient_against_the_reference_and_central_differences(rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None, 3])
        w = fc.placeholder(fc.float64, [3])
        keep = fc.reduce_sum(x * w, 1) > 0  # the mask depends on x and w; its gradient does not flow
        loss = fc.reduce_sum(fc.exp(fc.boolean_mask(x * w, keep)) * fc.boolean_mask(x, keep))
        grads = fc.gradients(loss, [x, w])
    x_value, w_value = sample(rng, (7, 3), fc.float64), sample(rng, (3,), fc.float64)
    feeds = [{x: x_value, w: w_value}, {x: x_value, w: -100 * np.abs(w_value) * np.sign(x_value.sum(0))}]
    got = run_on("cpu", g, [loss, *grads], feeds)
    assert_same(got, run_on("reference", g, [loss, *grads], feeds), rtol=1e-12)
    with fc.Session(target="cpu", graph=g) as sess:
        def value() -> float:
            return float(sess.run(loss, {x: x_value, w: w_value}))

        np.testing.assert_allclose(got[0][1], central_differences(value, x_value), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(got[0][2], central_differences(value, w_value), rtol=1e-6, atol=1e-8)


def test_a_training_step_whose_loss_masks_rows_matches_the_reference(rng) -> None:
    """Regression on the rows whose label is known (label >= 0): the mask changes every step's count."""
    x_value = sample(rng, (64, 4), fc.float32)
    labels = (x_value @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)).astype(np.float32)
    labels[rng.random(64) < 0.4] = -1.0
    results = {}
    for target in ("cpu", "reference"):
        g = fc.Graph()
        with g.as_default():
            x = fc.placeholder(fc.float32, [None, 4])
            y = fc.placeholder(fc.float32, [None])
            w = fc.Variable(np.zeros(4, np.float32))
            known = y > -0.5
            error = fc.boolean_mask(fc.reduce_sum(x * w, 1), known) - fc.boolean_mask(y, known)
            loss = fc.reduce_mean(error * error)
            train = fc.train.GradientDescentOptimizer(0.1).minimize(loss)
            init = fc.global_variables_initializer()
        losses = []
        with fc.Session(target=target, graph=g) as sess:
            sess.run(init)
            for step in range(12):
                batch = slice(8 * (step % 4), 8 * (step % 4) + 8 + step)
                losses.append(sess.run([loss, train], {x: x_value[batch], y: labels[batch]})[0])
            results[target] = (np.array(losses), sess.run(w))
    np.testing.assert_allclose(results["cpu"][0], results["reference"][0], rtol=1e-5)
    np.testing.assert_allclose(results["cpu"][1], results["reference"][1], rtol=1e-5, atol=1e-6)
    assert results["cpu"][0][-1] < results["cpu"][0][0]


def test_jit_runs_a_boolean_mask(rng) -> None:
    @fc.jit
    def positives(x):
        return fc.boolean_mask(x, x > 0), fc.where(x < 0)

    for shape in [(5,), (0,), (7,)]:
        value = sample(rng, shape, fc.float32)
        picked, negative = positives(value)
        np.testing.assert_array_equal(picked, value[value > 0])
        np.testing.assert_array_equal(negative, np.argwhere(value < 0))


def test_inside_a_while_loop_the_cpu_target_runs_it_from_the_host(rng) -> None:
    """The loop holds a data_dim: it is driven from the host, its body cut at the count (Note [conds driven
    from the host] in compiler/host_driven.py)."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None])

        def body(i, total):
            return i + 1, total + fc.reduce_sum(fc.boolean_mask(x, x > fc.cast(i, fc.float32)))

        _, total = fc.while_loop(lambda i, total: i < 3, body, [fc.constant(0), fc.constant(0.0)])
    value = np.array([0.5, 1.5, 2.5, -1.0], np.float32)
    with fc.Session(target="reference", graph=g) as sess:
        np.testing.assert_allclose(sess.run(total, {x: value}), 4.5 + 4.0 + 2.5)
    with fc.Session(target="cpu", graph=g) as sess:
        np.testing.assert_allclose(sess.run(total, {x: value}), 4.5 + 4.0 + 2.5)
        np.testing.assert_allclose(sess.run(total, {x: -value}), 1.0)
        np.testing.assert_allclose(sess.run(total, {x: value[:0]}), 0.0)


def test_export_refuses_a_size_that_is_data(tmp_path) -> None:
    def masked(x):
        return fc.boolean_mask(x, x > 0)

    with pytest.raises(UnsupportedOpError, match=r"data_dim 'Where_rows.*exported function cannot have a result "
                                                 r"size that is data"):
        fc.export(str(tmp_path / "masked"), masked, fc.TensorSpec([None], fc.float32))


def test_a_masked_value_read_by_a_while_loop_and_a_cond_after_the_cut(rng) -> None:
    """The loop and the cond are in the segment after the cut, their operands the masked value (its size
    one of the segment's fed dims): no data_dim inside them, so they compile."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None])
        y = fc.boolean_mask(x, x > 0)
        _, looped = fc.while_loop(lambda i, t: i < 3, lambda i, t: (i + 1, t + fc.reduce_sum(y) +
                                                                      fc.cast(fc.size(y), fc.float32)),
                                  [fc.constant(0), fc.constant(0.0)])
        chosen = fc.cond(fc.reduce_sum(y) > 1.0, lambda: fc.reduce_max(y), lambda: fc.reduce_sum(y) * 0.0)
    feeds = [{x: np.array([1.0, -2.0, 3.0, 0.5], np.float32)}, {x: -np.ones(3, np.float32)},
             {x: sample(rng, (40,), fc.float32)}]
    got = run_on("cpu", g, [looped, chosen], feeds)
    assert_same(got, run_on("reference", g, [looped, chosen], feeds), rtol=1e-6)
    np.testing.assert_allclose(got[0], [3 * (4.5 + 3), 3.0])


def test_inside_a_cond_branch_the_cpu_target_runs_it_from_the_host() -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None])
        chosen = fc.cond(fc.reduce_sum(x) > 0, lambda: fc.reduce_sum(fc.boolean_mask(x, x > 1.0)),
                         lambda: fc.reduce_sum(x))
    value = np.array([0.5, 1.5, 2.5], np.float32)
    with fc.Session(target="reference", graph=g) as sess:
        np.testing.assert_allclose(sess.run(chosen, {x: value}), 4.0)
    with fc.Session(target="cpu", graph=g) as sess:
        np.testing.assert_allclose(sess.run(chosen, {x: value}), 4.0)
        np.testing.assert_allclose(sess.run(chosen, {x: -value}), -4.5)


def test_a_gradient_through_where_of_a_cond_of_other_dims_is_a_shape_error_not_wrong_places() -> None:
    """gather_nd(x, where(c)) with c [2, 3] against x's leading [3, 2]: the same count of elements, the
    coordinates in range, so the forward runs; the gradient's select of c against x's shape refuses it."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, None, 2])
        c = fc.placeholder(fc.bool, [None, None])
        picked = fc.gather_nd(x, fc.where(c))
        (grad,) = fc.gradients(fc.reduce_sum(picked), [x])
    feed = {x: np.ones((3, 2, 2), np.float32), c: np.array([[True, False, False], [False, True, False]])}
    with fc.Session(target="cpu", graph=g) as sess:
        np.testing.assert_array_equal(sess.run(picked, feed), np.ones((2, 2), np.float32))
        with pytest.raises(fc.errors.RuntimeShapeError, match="broadcast"):
            sess.run(grad, feed)


def test_a_boolean_mask_in_an_fc_function_is_cut_once_its_calls_are_inlined(rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [None, 2])

        @fc.function
        def positive_rows(v: fc.Tensor) -> fc.Tensor:
            return fc.boolean_mask(v, v[:, 0] > 0)

        total = fc.reduce_sum(positive_rows(x) ** 2) + fc.reduce_sum(positive_rows(-x))
        (grad,) = fc.gradients(total, [x])
    feeds = [{x: sample(rng, (n, 2), fc.float64)} for n in (6, 0, 3)]
    got = run_on("cpu", g, [total, grad], feeds)
    assert_same(got, run_on("reference", g, [total, grad], feeds), rtol=1e-12)
