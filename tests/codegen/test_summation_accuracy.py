"""Float sums stay accurate at any size (Note [blocked sums] in codegen/llvm/kernels/reduction.py).

Sixteen running partial sums of float32 ones stop growing at 2**24 each, so before the sums
were blocked `reduce_sum` of 2**31 ones gave 2**28 and a column of 2**25 ones 2**24. The big
inputs here are a fed scalar broadcast and turned into ones inside the kernel (`x * 0 + 1`, which
no pass folds: NaN * 0 is NaN), so billions of terms cost no memory; the random ones are checked
against float64 numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.ir.types import as_dtype

BIG = 2**31 + 3  # past 16 lanes * 2**24 and past int32 indexing
TIGHT = {np.float32: 5e-7, np.float64: 1e-15}  # relative to the sum of |x|: a few ulps, not n of them


def run(build, feeds):  # type: ignore[no-untyped-def]
    """build(**placeholders) compiled for the CPU and run once on the feeds."""
    g = fc.Graph()
    with g.as_default():
        ph = {k: fc.placeholder(as_dtype(v.dtype), shape=list(v.shape), name=k) for k, v in feeds.items()}
        out = build(**ph)
    with fc.Session(target="cpu", graph=g) as sess:
        return sess.run(out, {ph[k]: v for k, v in feeds.items()})


def ones(x, shape):  # type: ignore[no-untyped-def]
    """Ones of `shape`, computed in the kernel from a fed scalar (nothing folds them)."""
    return fc.broadcast_to(x, shape) * 0.0 + 1.0


def one() -> dict[str, np.ndarray]:
    return {"x": np.ones((1,), np.float32)}


def test_full_sum_of_two_billion_ones() -> None:
    total, mean = run(lambda x: [fc.reduce_sum(ones(x, [BIG])), fc.reduce_mean(ones(x, [BIG]))], one())
    assert abs(float(total) - BIG) / BIG < 1e-6, total
    assert abs(float(mean) - 1) < 1e-6, mean


def test_row_sums_and_fused_row_kernels_of_half_a_billion_ones() -> None:
    """Rows of 2**29 + 3 ones: a sum, a mean, a layer-norm-like kernel (the variance reads the mean)
    and a softmax-like one (log-sum-exp after the max), each one kernel per row."""
    n = 2**29 + 3

    def build(x):  # type: ignore[no-untyped-def]
        rows = ones(x, [2, n])
        mean = fc.reduce_mean(rows, axis=1, keepdims=True)
        variance = fc.reduce_mean(fc.square(rows - mean), axis=1)
        peak = fc.reduce_max(rows, axis=1, keepdims=True)
        log_sum_exp = fc.log(fc.reduce_sum(fc.exp(rows - peak), axis=1))
        return [fc.reduce_sum(rows, axis=1), fc.reduce_mean(rows, axis=1), variance, log_sum_exp]

    total, mean, variance, log_sum_exp = run(build, one())
    np.testing.assert_allclose(total, [n, n], rtol=1e-6)
    np.testing.assert_allclose(mean, [1, 1], rtol=1e-6)
    np.testing.assert_allclose(variance, [0, 0], atol=1e-6)
    np.testing.assert_allclose(log_sum_exp, [np.log(n)] * 2, rtol=1e-6)


def test_column_sums_of_long_columns() -> None:
    """Over axis 0 (the column schedule): 2**25 + 3 rows, past the 2**24 where a float32 column stops."""
    n = 2**25 + 3
    total, mean = run(lambda x: [fc.reduce_sum(ones(x, [n, 32]), axis=0), fc.reduce_mean(ones(x, [n, 32]), axis=0)],
                      {"x": np.ones((1, 32), np.float32)})
    np.testing.assert_allclose(total, np.full(32, n), rtol=1e-6)
    np.testing.assert_allclose(mean, np.ones(32), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_sums_match_float64(dtype) -> None:  # type: ignore[no-untyped-def]
    """10**7 terms, positive (no cancellation to hide behind) and normal, as a full sum, rows,
    columns and a mean: within TIGHT of the exact sum, relative to the sum of magnitudes."""
    rng = np.random.default_rng(0)
    positive = rng.random(10**7).astype(dtype)
    normal = rng.standard_normal(10**7).astype(dtype)
    for data in (positive, normal):
        # numpy sums columns serially: in float64 that is itself some 300 ulps off at 250000 rows,
        # so the exact sums come from x86's 64-bit long double (float64 where that is all there is).
        wide = data.astype(np.longdouble)
        results = run(lambda x, rows, columns: [fc.reduce_sum(x), fc.reduce_mean(x), fc.reduce_sum(rows, axis=1),
                                                fc.reduce_sum(columns, axis=0)],
                      {"x": data, "rows": data.reshape(4, -1), "columns": data.reshape(-1, 40)})
        cases = [(results[0], wide.sum(), np.abs(wide).sum()),
                 (results[1], wide.mean(), np.abs(wide).mean()),
                 (results[2], wide.reshape(4, -1).sum(1), np.abs(wide).reshape(4, -1).sum(1)),
                 (results[3], wide.reshape(-1, 40).sum(0), np.abs(wide).reshape(-1, 40).sum(0))]
        for got, want, magnitude in cases:
            assert got.dtype == dtype
            error = float(np.max(np.abs(got.astype(np.longdouble) - want) / magnitude))
            assert error < TIGHT[dtype], (error, got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_sums_keep_infinities_and_nan(dtype) -> None:  # type: ignore[no-untyped-def]
    """A block's compensation of an infinite total is NaN (inf - inf); the total is kept as it is."""
    huge = np.finfo(dtype).max
    for special, want in [((np.inf,), np.inf), ((-np.inf,), -np.inf), ((np.inf, -np.inf), np.nan),
                          ((np.nan,), np.nan), ((huge, huge), np.inf)]:
        data = np.ones((9000, 20), dtype)
        data[[4100 + 7 * k for k in range(len(special))], 3] = special  # in the second block of each schedule
        total, columns, rows, means = run(
            lambda x, flat: [fc.reduce_sum(flat), fc.reduce_sum(x, axis=0), fc.reduce_sum(fc.transpose(x), axis=1),
                             fc.reduce_mean(x, axis=0)], {"x": data, "flat": data.T.ravel()})
        np.testing.assert_equal(total, np.asarray(want, dtype))
        for sums, rest in ((columns, 9000), (rows, 9000), (means, 1)):
            np.testing.assert_equal(sums[3], np.asarray(want, dtype))  # inf / 9000 is inf
            np.testing.assert_equal(np.delete(sums, 3), np.full(19, rest, dtype))
