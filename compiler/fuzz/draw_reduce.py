"""Draws of the reductions and scans beyond sum/mean/max/min: reduce_prod, reduce_any,
reduce_all, reduce_logsumexp, cumsum, cumprod (exclusive, reversed), top_k.

top_k's indices jump where two values are close, so they are drawn over EXACT
values only; its values may come from any.
"""

from __future__ import annotations

from .draws import Draws
from .kinds import FLOATS, NUMERIC
from .spec import EXACT, rounding_of

REDUCE_TEMPLATES = {
    "cumulative": "fc.{function}({0}, axis={axis}, exclusive={exclusive}, reverse={reverse})",
    "top_k": "fc.nn.top_k({0}, k={k})[{part}]",
}


class ReduceDraws(Draws):
    def op_reduce_more(self) -> bool:
        function = self.random.choice(["reduce_prod", "reduce_any", "reduce_all", "reduce_logsumexp"])
        allowed = {"reduce_prod": NUMERIC, "reduce_logsumexp": FLOATS}.get(function, ("bool",))
        x = self.pick(lambda v: v.dtype in allowed and v.shape != ())
        if x is None:
            return False
        keepdims = self.chance(0.5)
        axis, chosen = self.axes(len(x.shape))  # type: ignore[attr-defined]
        shape = tuple(1 if i in chosen else d for i, d in enumerate(x.shape) if keepdims or i not in chosen)
        error = max(x.error, rounding_of(x.dtype)) if x.is_float else EXACT
        self.add("reduce", [x], x.dtype, shape, error, function=function, axis=axis, keepdims=keepdims)
        return True

    def op_cumulative(self) -> bool:
        x = self.pick(lambda v: v.dtype in NUMERIC and v.shape != ())
        if x is None:
            return False
        rank = len(x.shape)
        function = self.random.choice(["cumsum", "cumsum", "cumprod"])
        error = max(x.error, rounding_of(x.dtype)) if x.is_float else EXACT
        self.add("cumulative", [x], x.dtype, x.shape, error, function=function, axis=self.random.randrange(-rank, rank),
                 exclusive=self.chance(0.4), reverse=self.chance(0.4))
        return True

    def op_top_k(self) -> bool:
        part = self.random.choice([0, 1])
        x = self.pick(lambda v: v.dtype in NUMERIC and v.shape != () and (part == 0 or v.error == EXACT))
        if x is None:
            return False
        last = x.shape[-1]
        # k must not exceed the last dim: any k up to a static one; 1 or 0 for an unknown one (0 rows: both raise)
        k = self.random.randint(0, min(last, 4)) if isinstance(last, int) else self.random.choice([0, 1, 1])
        dtype, error = ("int32", EXACT) if part == 1 else (x.dtype, x.error)
        self.add("top_k", [x], dtype, x.shape[:-1] + (k,), error, k=k, part=part)
        return True

