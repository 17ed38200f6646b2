"""When are a native (`cpu` or `gpu`) result and a `reference` result the same? Stated once, here.

- Integers and bools: equal, element for element.
- EXACT floats (spec.py: only correctly rounded operations made them): equal,
  NaN where the reference has NaN. A zero's sign is not compared: a max over
  -0.0 and 0.0 may return either, by IEEE's rules.
- Inexact floats: the native exp, log, tanh, sigmoid, rsqrt and pow are a few
  ulp off (README), sums add 16 partial sums instead of numpy's pairwise
  order, and matmuls are OpenBLAS's; a chain of ops can grow those last bits.
  So |cpu - reference| may be TOLERANCE[level] times the output's scale (its
  largest finite magnitude, at least 1), plus SENSITIVITY times how far the
  reference itself moves when float32 is replaced by float64 throughout (the
  `wide` run): an output that cancels or sits on a rounding edge is allowed
  the spread its own roundings cause. Elements where the reference and its
  wide run disagree on being finite (an overflow edge) are not compared.
- Gradients: the same rule with GRADIENT_TOLERANCE, a level looser: they are
  chains of the forward's roundings and sums that undo broadcasts.
"""

from __future__ import annotations

import numpy as np

from .spec import EXACT, F32, F64

TOLERANCE = {F64: 1e-9, F32: 1e-4}
GRADIENT_TOLERANCE = {F64: 1e-7, F32: 1e-3}
SENSITIVITY = 16.0


def describe(index: tuple[int, ...], native: np.ndarray, reference: np.ndarray, target: str = "cpu") -> str:
    return f"at {list(index)}: {target} {native[index].item()!r}, reference {reference[index].item()!r}"


def difference(native: np.ndarray, reference: np.ndarray, error: int, tolerance: dict[int, float],
               wide: np.ndarray | None = None, target: str = "cpu") -> str | None:
    """None if `native` (the result of `target`) and `reference` agree under the rule above, else where
    and how they differ."""
    native, reference = np.asarray(native), np.asarray(reference)
    if native.shape != reference.shape or native.dtype != reference.dtype:
        return f"{target} gave {native.dtype}{list(native.shape)}, reference {reference.dtype}{list(reference.shape)}"
    if reference.dtype.kind not in "f":
        bad = native != reference
        return describe(first(bad), native, reference, target) if bad.any() else None
    c, r = native.astype(np.float64), reference.astype(np.float64)
    compared = np.ones(r.shape, bool)
    spread = np.zeros(r.shape)
    if error != EXACT and wide is not None and wide.shape == r.shape:
        w = wide.astype(np.float64)
        compared = (np.isfinite(r) == np.isfinite(w)) & (np.isnan(r) == np.isnan(w))
        with np.errstate(invalid="ignore"):
            spread = np.where(np.isfinite(r) & np.isfinite(w), np.abs(r - w), 0.0)
    nan_differs = np.isnan(c) != np.isnan(r)
    with np.errstate(invalid="ignore", over="ignore"):
        if error == EXACT:
            value_differs = ~np.isnan(r) & (c != r)
        else:
            finite = np.abs(r[np.isfinite(r)])
            scale = max(1.0, float(finite.max())) if finite.size else 1.0
            allowed = tolerance[error] * scale + SENSITIVITY * spread
            both_finite = np.isfinite(c) & np.isfinite(r)
            value_differs = np.where(both_finite, np.abs(c - r) > allowed, ~np.isnan(r) & (c != r))
    bad = (nan_differs | value_differs) & compared
    return describe(first(bad), c, r, target) if bad.any() else None


def first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.any() else ()
