"""Elementwise math through the whole gpu target: fused chains of every transcendental, rounding and
floor-division op (codegen/triton/expressions.py, math.py, division.py) in loop kernels, on
Session(target="gpu") against the reference target, kernels built to PTX for sm_90 (gpu_check.py).
tests/codegen/test_triton_math.py holds each op to its ulp bound; here the ops meet splat constants,
broadcasts and each other inside one kernel."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402

FLOATS = {"float32": fc.float32, "float64": fc.float64}


@pytest.mark.parametrize("dtype", FLOATS)
def test_a_chain_of_every_transcendental(dtype, rng):
    def build():
        x = fc.placeholder(FLOATS[dtype], [None, 5], name="x")
        y = fc.placeholder(FLOATS[dtype], [5], name="y")
        a = fc.tanh(x) + fc.sigmoid(y) * fc.erf(x - y) - fc.atan(x * 3.0)
        b = fc.sin(x) * fc.cos(y) + fc.log1p(fc.abs(x)) - fc.expm1(-fc.square(y))
        c = fc.pow(fc.abs(x) + 0.5, y) + fc.exp(-x) * fc.log(fc.abs(y) + 1e-3) + fc.rsqrt(fc.abs(x) + 1.0)
        return [a, b, c]
    x = rng.standard_normal((6, 5)).astype(dtype) * 3
    y = rng.standard_normal(5).astype(dtype)
    tolerance = 2e-6 if dtype == "float32" else 1e-14  # a few ulps of each step, chained
    assert_gpu_matches(build, {"x": x, "y": y}, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [*FLOATS, "int32", "int64"])
def test_floor_division_rounding_and_sign(dtype, rng):
    def build():
        kind = getattr(fc, dtype)
        x = fc.placeholder(kind, [None], name="x")
        y = fc.placeholder(kind, [None], name="y")
        fetches = [fc.floordiv(x, y), fc.floormod(x, y), x % 3, 7 // y, fc.sign(x - y), fc.maximum(x, y)]
        if dtype in FLOATS:
            fetches += [fc.round(x * 0.5), fc.floor(x / 4.0), fc.ceil(-x / 4.0), fc.cast(x * 0.37, fc.int32),
                        fc.cast(x, fc.bool)]
        return fetches
    values = np.array([0, 1, -1, 5, -5, 7, -7, 12, -13, 100, 3, -3], dtype=dtype)
    divisors = np.array([3, -3, 2, -2, 1, -1, 4, 5, -6, 7, 0, 0], dtype=dtype)
    if dtype in FLOATS:
        values = np.concatenate([values, np.array([2.5, -2.5, 1e300 if dtype == "float64" else 3e38, np.nan, -0.0])])
        divisors = np.concatenate([divisors, np.array([0.75, np.inf, 0.1, 1.0, 2.0])])
    values, divisors = values.astype(dtype), divisors.astype(dtype)
    with np.errstate(all="ignore"):
        assert_gpu_matches(build, {"x": values, "y": divisors}, rtol=0, atol=0)


def test_bool_and_int_casts_and_logic(rng):
    def build():
        x = fc.placeholder(fc.int64, [None], name="x")
        flag = fc.placeholder(fc.bool, [None], name="flag")
        both = fc.logical_and(flag, x > 0)
        return [fc.cast(flag, fc.float32) * 2.5, fc.cast(both, fc.int32), fc.where(fc.logical_not(both), x, -x),
                fc.cast(x, fc.float64) / 3.0, fc.cast(fc.cast(x, fc.int32), fc.int64)]
    x = np.array([0, 1, -1, 2**40, -2**40 + 3, 7], dtype=np.int64)
    flag = np.array([True, False, True, True, False, True])
    assert_gpu_matches(build, {"x": x, "flag": flag}, rtol=0, atol=0)
