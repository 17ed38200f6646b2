"""Note [accumulated products after the loop] (passes/loop_products.py): a gradient loop's `acc +=
a^T @ d` of few rows per turn runs as one product of stacked rows after the loop. The CPU target
against the reference target and central differences in float64 (trip counts 0, 1, fewer than the
sequence's rows and all of them; batch 1 and odd sizes, narrow and BLAS products), float32 against
numpy's hand-written BPTT (the sums are reassociated: rtol 1e-4), that the rewrite ran where these
tests say, and that an index out of range still stops a run."""

from __future__ import annotations

import numpy as np
import pytest
from numeric_gradients import central_differences
from test_native_control import assert_same, compile_cpu

import flowc as fc
from flowc.ir.errors import IndexOutOfRange

ROWS = 5  # the sequence's rows


def rnn(dtype, steps: int, batch: int, inputs: int, hidden: int, centered: bool = False):  # type: ignore[no-untyped-def]
    """An RNN over the first `steps` rows of xs (a constant bound: static stacks), its loss and gradient;
    `centered`: each step's state less its mean over the batch (a turn that mixes rows)."""
    g = fc.Graph()
    with g.as_default():
        xs = fc.placeholder(dtype, [ROWS, batch, inputs], name="xs")
        h0 = fc.placeholder(dtype, [batch, hidden], name="h0")
        wx = fc.placeholder(dtype, [inputs, hidden], name="wx")
        wh = fc.placeholder(dtype, [hidden, hidden], name="wh")
        b = fc.placeholder(dtype, [hidden], name="b")
        def step(t, h):  # type: ignore[no-untyped-def]
            h = fc.tanh(fc.matmul(fc.gather(xs, t), wx) + fc.matmul(h, wh) + b)
            return t + 1, h - fc.reduce_mean(h, axis=0) if centered else h

        _, h = fc.while_loop(lambda t, h: t < steps, step, [fc.constant(0), h0])
        loss = fc.reduce_sum(h * h)
        gradients = fc.gradients(loss, [wx, wh, b, h0, xs])
    return g, [xs, h0, wx, wh, b], loss, [h, *gradients]


def feeds(placeholders, rng: np.random.Generator, dtype=np.float64) -> dict:  # type: ignore[no-untyped-def]
    return {p: (rng.standard_normal([int(d) for d in p.shape]) * 0.4).astype(dtype) for p in placeholders}


def products_after_loops(session: fc.Session) -> int:
    """Matmul kernels of the compiled program's top level that follow a while."""
    (compiled,) = session._cache.values()
    ops = compiled.executable.function.entry.ops
    first_loop = next(index for index, op in enumerate(ops) if op.name == "while")
    return sum(1 for op in ops[first_loop:] if op.name == "fusion" and op.kind == "matmul")


@pytest.mark.parametrize("steps, batch, inputs, hidden", [
    (0, 3, 5, 7), (1, 3, 5, 7), (ROWS, 3, 5, 7), (ROWS - 2, 3, 5, 7), (ROWS, 1, 5, 7), (3, 1, 4, 24), (ROWS, 5, 3, 24),
], ids=["n=0", "n=1", "n=T", "n<T", "batch 1", "batch 1 wide", "odd blas"])
def test_rnn_gradients_match_reference_and_differences(steps: int, batch: int, inputs: int, hidden: int) -> None:
    rng = np.random.default_rng(steps * 100 + batch * 10 + hidden)
    g, placeholders, loss, fetches = rnn(fc.float64, steps, batch, inputs, hidden)
    values = feeds(placeholders, rng)
    with fc.Session(graph=g, target="reference") as sess:
        want = sess.run(fetches, values)
    with fc.Session(graph=g, target="cpu") as sess:
        got = sess.run(fetches, values)
        assert products_after_loops(sess) == 2, "dWx and dWh after the loop"
        for value, expected in zip(got, want):
            np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)
        objective = lambda: float(sess.run(loss, values))
        for placeholder, gradient in zip([placeholders[2], placeholders[3]], got[1:3]):
            np.testing.assert_allclose(gradient, central_differences(objective, values[placeholder]),
                                       rtol=1e-5, atol=1e-7)


def numpy_bptt(steps: int, xs, h0, wx, wh, b):  # type: ignore[no-untyped-def]
    """d sum(h_n * h_n) / d (Wx, Wh) by hand, in float64."""
    states = [h0]
    for t in range(steps):
        states.append(np.tanh(xs[t] @ wx + states[-1] @ wh + b))
    dh, dwx, dwh = 2 * states[-1], np.zeros_like(wx), np.zeros_like(wh)
    for t in reversed(range(steps)):
        dpre = dh * (1 - states[t + 1] ** 2)
        dwx += xs[t].T @ dpre
        dwh += states[t].T @ dpre
        dh = dpre @ wh.T
    return dwx, dwh


@pytest.mark.parametrize("batch", [1, 8, 12])
def test_float32_sums_after_the_loop_stay_within_rounding(batch: int) -> None:
    """The sum over turns is reassociated (one product of all rows): float32 within rtol 1e-4 of float64."""
    rng = np.random.default_rng(batch)
    g, placeholders, loss, fetches = rnn(fc.float32, ROWS, batch, 64, 128)
    values = feeds(placeholders, rng, np.float32)
    with fc.Session(graph=g, target="cpu") as sess:
        got = sess.run(fetches[1:3], values)
        assert products_after_loops(sess) == 2
    want = numpy_bptt(ROWS, *(values[p].astype(np.float64) for p in placeholders))
    for value, expected in zip(got, want):
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_many_rows_per_turn_keep_the_per_turn_sums_where_rows_mix() -> None:
    """Batch 16, above MAX_ROWS_PER_TURN, each step centered over the batch: the products stay in the
    loop (slower after it on one thread, measured, and a gang would not own the rows anyway)."""
    assert_matches_reference(rnn(fc.float64, ROWS, 16, 64, 128, centered=True), seed=0, products_after=0)


@pytest.mark.parametrize("batch, inputs, hidden", [(16, 64, 128), (33, 8, 40)])
def test_many_rows_per_turn_leave_where_the_rest_keeps_rows_apart(batch: int, inputs: int, hidden: int) -> None:
    """Batch 16 and 33, above MAX_ROWS_PER_TURN, a plain RNN of states too big for every member to compute
    whole (Note [a gang that owns rows]): the sums leave the loop (then run by a gang whose members own
    rows), dW's products and db's column sum; xs's gradient too, a scatter_add of a row a turn; equal
    to the reference in float64."""
    assert_matches_reference(rnn(fc.float64, ROWS, batch, inputs, hidden), seed=batch, products_after=2)


def assert_matches_reference(built, seed: int, products_after: int) -> None:  # type: ignore[no-untyped-def]
    """rnn()'s float64 graph on cpu equal to the reference; `products_after` matmul kernels after its loops."""
    g, placeholders, _, fetches = built
    values = feeds(placeholders, np.random.default_rng(seed))
    with fc.Session(graph=g, target="reference") as sess:
        want = sess.run(fetches, values)
    with fc.Session(graph=g, target="cpu") as sess:
        got = sess.run(fetches, values)
        assert products_after_loops(sess) == products_after
    for value, expected in zip(got, want):
        np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)


# The pass's own input (tests/filecheck/licm_products.ir): %n turns read rows n-1 .. 0 of %hs (5 rows)
# and of %xs (4 rows), so n = 5 reads row 4 of %xs, out of range.
SUMS = """
func @main(%n: i64[], %hs: f64[5,2,3], %xs: f64[4,2,6], %d0: f64[2,4]) -> (f64[3,4], f64[6,4], f64[2,4]) {
  %zero = constant {value = dense<0.0>} : f64[]
  %gh0 = broadcast_to %zero {shape = [3, 4]} : f64[3,4]
  %gx0 = constant {value = dense<1.5>} : f64[6,4]
  %i, %d, %gh, %gx, %h, %x = while %n, %d0, %gh0, %gx0, %hs, %xs
      : i64[], f64[2,4], f64[3,4], f64[6,4], f64[5,2,3], f64[4,2,6] {
  ^bb0(%i: i64[], %d: f64[2,4], %gh: f64[3,4], %gx: f64[6,4], %h: f64[5,2,3], %x: f64[4,2,6]):
    %none = constant {value = dense<0>} : i64[]
    %go = greater %i, %none : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %d: f64[2,4], %gh: f64[3,4], %gx: f64[6,4], %h: f64[5,2,3], %x: f64[4,2,6]):
    %one = constant {value = dense<1>} : i64[]
    %k = sub %i, %one : i64[]
    %a = read_row %h, %k : f64[2,3]
    %b = gather %x, %k {axis = 0} : f64[2,6]
    %e = tanh %d : f64[2,4]
    %p = matmul %a, %e {transpose_a = true, transpose_b = false} : f64[3,4]
    %gh2 = add %gh, %p : f64[3,4]
    %q = matmul %b, %e {transpose_a = true, transpose_b = false} : f64[6,4]
    %gx2 = add %q, %gx : f64[6,4]
    yield %k, %e, %gh2, %gx2, %h, %x : i64[], f64[2,4], f64[3,4], f64[6,4], f64[5,2,3], f64[4,2,6]
  }
  return %gh, %gx, %d : f64[3,4], f64[6,4], f64[2,4]
}"""


def test_sums_of_ir_match_reference_for_every_trip_count() -> None:
    rng = np.random.default_rng(5)
    data = [rng.standard_normal((5, 2, 3)), rng.standard_normal((4, 2, 6)), rng.standard_normal((2, 4))]
    assert_same(SUMS, *([np.array(n, np.int64), *data] for n in range(5)))


def test_a_row_out_of_range_still_stops_the_run() -> None:
    rng = np.random.default_rng(6)
    data = [rng.standard_normal((5, 2, 3)), rng.standard_normal((4, 2, 6)), rng.standard_normal((2, 4))]
    with pytest.raises(IndexOutOfRange, match="out of range"):
        compile_cpu(SUMS)([np.array(5, np.int64), *data])
