"""The ulp bounds of sin, cos, atan, erf, log1p and expm1 (codegen/llvm/mathlib_special.py).

Same harness as test_mathlib.py (a JIT-compiled, vectorized loop around the emitter), same measure
(ulps of the exact result: float64 references for float32, long double ones for float64), over
bit-pattern walks, dense sweeps of each function's working range, and the edge values, which must
match numpy's (and C99's) exactly. erf's reference is the all-positive series
erf(x) = 2/sqrt(pi) exp(-x^2) sum 2^n x^(2n+1) / (1*3*...*(2n+1)), summed in long double.
"""

import numpy as np
import pytest
from test_mathlib import DTYPES, PRECISION, WIDE, assert_same_edges, bit_walk, edge_values, kernel, ulp_error

from flowc.codegen.llvm.mathlib_special import SPECIAL_EMITTERS, TRIG_LIMIT
from flowc.codegen.llvm.mathlib_special import SPECIAL_MAX_ULP as MAX_ULP

OPS = sorted(SPECIAL_EMITTERS)
DENSE = {"sin": (-100.0, 100.0), "cos": (-100.0, 100.0), "atan": (-20.0, 20.0), "erf": (-6.5, 6.5),
         "log1p": (-1.0, 4.0), "expm1": (-40.0, 40.0)}


def erf_series(x: np.ndarray) -> np.ndarray:
    a = np.minimum(np.abs(x), 7)  # erf(7) is 1 to 23 digits
    term, total = a.copy(), a.copy()
    for n in range(1, 220):
        term = term * (2 * a * a) / (2 * n + 1)
        total = total + term
    result = 2 / np.sqrt(np.pi * a.dtype.type(1)) * np.exp(-a * a) * total
    return np.where(np.isnan(x), x, np.copysign(np.where(np.abs(x) > 7, 1, result), x))


def reference(op: str, x: np.ndarray) -> np.ndarray:
    """The exact result in the wide type."""
    if x.dtype == np.longdouble and np.finfo(np.longdouble).nmant < 60:
        pytest.skip("float64 references need an extended long double")
    with np.errstate(all="ignore"):
        if op == "erf":
            return erf_series(x)
        return {"sin": np.sin, "cos": np.cos, "atan": np.arctan, "log1p": np.log1p, "expm1": np.expm1}[op](x)


def in_range(op: str, x: np.ndarray) -> np.ndarray:
    """sin and cos are bounded only below TRIG_LIMIT (no Payne-Hanek reduction beyond)."""
    return x[~(np.abs(x) >= TRIG_LIMIT)] if op in ("sin", "cos") else x


def measured(op: str, dtype: str, x: np.ndarray) -> float:
    got = kernel(op, dtype)(x)
    exact = reference(op, x.astype(WIDE[dtype]))
    error = ulp_error(got, exact, dtype)
    worst = int(np.argmax(error))
    assert error[worst] <= MAX_ULP[op, dtype], (
        f"{op}({x[worst]!r}) = {got[worst]!r}, exact {exact[worst]!r}: {error[worst]:.3f} ulp > {MAX_ULP[op, dtype]}")
    return float(error[worst])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_accuracy(op: str, dtype: str, rng: np.random.Generator) -> None:
    low, high = DENSE[op]
    count = 2**20 if op != "erf" else 2**17  # erf's reference series is slow
    x = np.concatenate([bit_walk(dtype, count, rng), np.linspace(low, high, count, dtype=dtype),
                        rng.uniform(low, high, count // 2).astype(dtype),
                        (np.exp2(rng.uniform(-60, 2, count // 2)) * rng.choice([-1, 1], count // 2)).astype(dtype),
                        edge_values(dtype)])
    measured(op, dtype, in_range(op, x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_edges_match_numpy(op: str, dtype: str) -> None:
    x = in_range(op, edge_values(dtype))
    with np.errstate(all="ignore"):
        expected = reference(op, x.astype(WIDE[dtype])).astype(dtype)
    assert_same_edges(kernel(op, dtype)(x), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_named_special_values(dtype: str) -> None:
    t = np.dtype(dtype).type
    inf, nan = t(np.inf), t(np.nan)
    x = np.array([inf, -inf, nan, -0.0, 0.0, -1.0, -2.0], dtype=dtype)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(kernel("sin", dtype)(x[:3]), [nan, nan, nan])
        np.testing.assert_array_equal(kernel("cos", dtype)(x[:3]), [nan, nan, nan])
        np.testing.assert_array_equal(kernel("atan", dtype)(x[:2]), [t(np.pi / 2), -t(np.pi / 2)])
        np.testing.assert_array_equal(kernel("erf", dtype)(x[:2]), [1, -1])
        np.testing.assert_array_equal(kernel("expm1", dtype)(x[:2]), [inf, -1])
        np.testing.assert_array_equal(kernel("log1p", dtype)(x[5:]), [-inf, nan])
    for op in ("sin", "atan", "erf", "log1p", "expm1"):  # odd at 0: -0.0 stays -0.0, subnormals stay
        tiny = np.array([-0.0, np.finfo(dtype).smallest_subnormal, -np.finfo(dtype).smallest_normal], dtype=dtype)
        got = kernel(op, dtype)(tiny)
        if op == "erf":  # erf(x) = 2x/sqrt(pi) there
            np.testing.assert_array_equal(np.signbit(got), np.signbit(tiny))
        else:
            np.testing.assert_array_equal(got, tiny)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(tiny))
    assert kernel("cos", dtype)(np.array([-0.0], dtype=dtype))[0] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_sin_cos_past_the_limit_stay_in_range(dtype: str, rng: np.random.Generator) -> None:
    """The documented limit: past TRIG_LIMIT the value is not accurate, but a finite x gives [-1, 1]."""
    x = (np.exp2(rng.uniform(41, 127, 4096)) * rng.choice([-1, 1], 4096)).astype(dtype)
    for op in ("sin", "cos"):
        got = kernel(op, dtype)(x)
        assert np.all(np.abs(got) <= 1), op


def test_precision_table_is_the_one_measured() -> None:
    assert set(PRECISION) == set(DTYPES)
