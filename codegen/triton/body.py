"""A kernel region's pointwise ops as Triton statements, one per op, over blocks of elements.

Every emitter (loop, reduction epilogues, matmul epilogues) loads its block
arguments into names, in the layout it works in (a [BLOCK] vector, a [ROWS,
COLUMNS] tile, a [ROWS, 1] column of per-row values), then asks for the
statements of the ops between loads and stores. Names broadcast as numpy
does, so a per-row value kept as [ROWS, 1] meets a [ROWS, COLUMNS] tile
without an explicit broadcast: `broadcast_to` is then the identity on its
operand's name. Constants inside a region are splats (the fusion pass clones
them there): each becomes a 0-d `tl.full` of the op's dtype, exact in float64.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from flowc.ir import Operation, Value
from flowc.ir.types import as_dtype

from .expressions import EXPRESSIONS, expression, triton_dtype

Names = dict[Value, str]


class UnsupportedPointwise(Exception):
    """An op the body writer has no Triton form for (the caller turns it into the target's error)."""


def pointwise_lines(ops: Iterable[Operation], names: Names, prefix: str = "v") -> list[str]:
    """Statements computing each op of `ops` (in order, terminators skipped) from `names`, which maps
    the values already in hand to their Triton names; each result gets a name `{prefix}{n}` in it."""
    lines: list[str] = []
    for op in ops:
        if op.is_terminator:
            continue
        result = op.results[0]
        if op.name == "broadcast_to":
            names[result] = names[op.operands[0]]
            continue
        if op.name == "constant":
            text = constant_text(op.attributes["value"], str(result.type.dtype))
        elif op.name in EXPRESSIONS:
            text = expression(op, [names[v] for v in op.operands])
        else:
            raise UnsupportedPointwise(op.name)
        name = f"{prefix}{len(names)}"
        names[result] = name
        lines.append(f"{name} = {text}")
    return lines


def constant_text(value: np.ndarray, dtype: str) -> str:
    """A splat constant as a 0-d Triton tensor of `dtype` (the first element of `value`)."""
    scalar = np.asarray(value).reshape(-1)[0].item()
    return f"tl.full([], {scalar_text(scalar)}, {triton_dtype(as_dtype(dtype))})"


def scalar_text(scalar: float | int | bool) -> str:
    """A Python number as source text Triton's frontend takes: repr rounds a float exactly; the
    non-finite ones are spelled as expressions of finite literals (1e308 * 10 overflows to inf)."""
    if isinstance(scalar, bool):
        return "1" if scalar else "0"
    if isinstance(scalar, float) and not math.isfinite(scalar):
        if math.isnan(scalar):
            return "(1e308 * 10 - 1e308 * 10)"
        return "(1e308 * 10)" if scalar > 0 else "(-1e308 * 10)"
    return repr(scalar)

