"""Comparing float16 results of the cpu target with the reference's, in units of float16's spacing.

Note [how far float16 results may be apart]
Both targets compute each float16 op in float (or numpy's float16 ufuncs, which do the same) and
round its result to half, so + - * / sqrt, the exact ops (abs, max, floor, casts ...) and chains of
them agree bit for bit: rounding a float result to half is rounding the exact result once
(float keeps 24 bits, at least 2 * 11 + 2). Where they may differ, by how much:
  - a transcendental: both round a float approximation to half (numpy's libm, flowc's mathlib); the
    two floats differ by an ulp of float or so, which moves the half result by at most one of its
    ulps, and only where the float lands next to a tie of half: 1 ulp of half;
  - rsqrt, sigmoid: the reference computes them as numpy float16 formulas (1 / sqrt(x), 1 / (1 + e)),
    a rounding per op, flowc as one float approximation rounded once: 1 and 2 ulps;
  - a float sum (reduce_sum, mean, matmul's products): both sum in float and round once, in
    different orders (numpy's pairwise, flowc's lanes); the float totals differ by a few float ulps,
    so the half results by at most 1 ulp of the total.
Ops that read such a value inherit its ulp, scaled by the op's condition: a softmax's exp and
division each add one.
"""

from __future__ import annotations

import numpy as np

import flowc as fc
from flowc.ir.types import as_dtype


def half_ulps(got: np.ndarray, want: np.ndarray) -> float:
    """The largest |got - want| in units of float16's spacing at |want| (0 where both are the same
    number, inf or NaN); inf where only one of them is NaN or inf."""
    assert got.dtype == want.dtype == np.float16 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    if same.all():
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):  # spacing(inf) is NaN: apart from anything else
        spacing = np.spacing(np.abs(want[~same])).astype(np.float64)
        apart = np.abs(g[~same] - w[~same]) / spacing
    return float(np.max(np.where(np.isnan(apart), np.inf, apart)))  # NaN against a number, inf against another


def assert_half_close(got: np.ndarray, want: np.ndarray, ulps: float = 0, context: str = "") -> None:
    """got within `ulps` of float16's spacing of want (Note [how far float16 results may be apart]);
    ulps 0: bit for bit (NaN where NaN)."""
    if want.dtype != np.float16:
        assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, context)
        np.testing.assert_array_equal(got, want, err_msg=context)
        return
    apart = half_ulps(got, want)
    assert apart <= ulps, f"{context}: {apart} ulps apart (at most {ulps}):\n{got}\n{want}"


def run_both(build, feeds: dict[str, np.ndarray], shapes: dict[str, list] | None = None,  # type: ignore[no-untyped-def]
             graph: fc.Graph | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Build a graph of placeholders named like `feeds` (every dim None unless `shapes` says), run it on
    'cpu' and 'reference': (cpu's results, the reference's)."""
    g = graph or fc.Graph()
    with g.as_default():
        placeholders = {name: fc.placeholder(as_dtype(v.dtype), shape=(shapes or {}).get(name, [None] * v.ndim),
                                             name=name) for name, v in feeds.items()}
        out = build(**placeholders)
    results = {}
    for target in ("cpu", "reference"):
        with fc.Session(target=target, graph=g) as session:
            got = session.run(out, {placeholders[k]: v for k, v in feeds.items()})
        results[target] = list(got) if isinstance(out, (list, tuple)) else [got]
    return results["cpu"], results["reference"]


def check_both(build, feeds: dict[str, np.ndarray], ulps: float | list[float] = 0,  # type: ignore[no-untyped-def]
               shapes: dict[str, list] | None = None) -> list[np.ndarray]:
    """run_both, each result within its `ulps` (one for all, or one per result); the cpu's results."""
    got, want = run_both(build, feeds, shapes)
    bounds = ulps if isinstance(ulps, list) else [ulps] * len(want)
    context = str({k: v.shape for k, v in feeds.items()})
    for index, (g, w, bound) in enumerate(zip(got, want, bounds, strict=True)):
        assert_half_close(g, w, bound, f"result {index} of {context}")
    return got
