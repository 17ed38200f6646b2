"""Seeded random tensors.

Note [counter-based random numbers]: a random op is a pure function of its
seed, the Session's run counter and the element index (Philox, see
ir/ops/philox.py), so every run draws new numbers, two Sessions with the same
seeds draw the same ones, and every backend can compute the same bits.
"""

from __future__ import annotations

import math
import secrets
from typing import Any, Sequence

import numpy as np

from flowc.ir import TensorType
from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import DType, as_dtype, float16, float32, float64, int64

from .array_ops import expand_dims, gather, reshape, zeros
from .graph import Graph, Tensor, get_default_graph, name_scope
from .math_ops import (argmax, cast, constant, convert_to_tensor, equal, less, log, maximum, minimum, reduce_sum, sqrt,
                       where)
from .sources import user_location
from .tensor_shape import plain_dim

_SEED_MASK = (1 << 63) - 1


def op_seed(graph: Graph, seed: int | None) -> int:
    """TensorFlow's rule: the graph seed and the op seed together fix the stream.

    With neither set, the stream differs from one program run to the next.
    """
    graph_seed = graph.seed
    if graph_seed is None and seed is None:
        return secrets.randbits(63)
    if seed is None:
        # distinct per op, stable for the same program; a sub-graph's ops count from its own offset
        # (Note [random ops in sub-graphs] in func_graph.py)
        seed = len(graph.get_operations()) + getattr(graph, "seed_offset", 0)
    return ((graph_seed or 0) * 0x9E3779B97F4A7C15 + int(seed)) & _SEED_MASK


def _random(kind: str, shape: Sequence[int], dtype: DType | str, seed: int | None, name: str | None,
            **params: float) -> Tensor:
    graph = get_default_graph()
    out_type = TensorType(as_dtype(dtype), _drawn_shape(shape, f"{kind} '{name or kind}'"))
    attrs = {"shape": out_type.shape, "dtype": out_type.dtype, "seed": op_seed(graph, seed), **params}
    return graph.create_op(kind, (), attrs, name=name or kind, output_types=[out_type]).outputs[0]


def _drawn_shape(shape: Any, op: str) -> tuple[int, ...]:
    """The shape to draw for, as ints; a None or tensor dim is a FlowcTypeError that says what to do."""
    dims = [plain_dim(d) for d in shape] if isinstance(shape, (list, tuple, np.ndarray)) else None
    if dims is None or not all(isinstance(d, (int, np.integer)) or hasattr(d, "value") for d in dims):
        raise FlowcTypeError(f"shape {shape!r} has a dim that is not a number: random numbers are drawn for a "
                             "static shape here; give every dim a size (e.g. the batch size you feed), or for "
                             "dropout on a None batch use fc.nn.dropout, which draws for the run-time shape",
                             op=op, where=user_location())
    return tuple(int(d) for d in dims)


def random_normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0, dtype: DType | str = float32,
                  seed: int | None = None, name: str | None = None) -> Tensor:
    """Normally distributed values.

    >>> import flowc as fc
    >>> fc.random_normal([3, 4], seed=1).shape
    (3, 4)
    """
    return _random("random_normal", shape, dtype, seed, name, mean=float(mean), stddev=float(stddev))


def random_uniform(shape: Sequence[int], minval: float = 0.0, maxval: float = 1.0, dtype: DType | str = float32,
                   seed: int | None = None, name: str | None = None) -> Any:
    """Uniformly distributed values in [minval, maxval)."""
    return _random("random_uniform", shape, dtype, seed, name, minval=float(minval), maxval=float(maxval))


def _uniform_like(x: Tensor, seed: int | None, dtype: DType | None = None) -> Tensor:
    """Uniform numbers in [0, 1) of x's shape, None dims included (random_uniform_like), and of `dtype`
    (default: x's)."""
    graph = get_default_graph()
    dtype = dtype or x.dtype
    attrs = {"dtype": dtype, "seed": op_seed(graph, seed), "minval": 0.0, "maxval": 1.0}
    out_type = TensorType(dtype, x.type.shape)
    op = graph.create_op("random_uniform_like", (x,), attrs, name="random_uniform", output_types=[out_type])
    return op.outputs[0]


# -- built on random_uniform: dropout, truncated_normal, random_shuffle, categorical ---------


def _static_shape(shape: Sequence[Any], op: str) -> tuple[int, ...]:
    if any(d is None for d in map(plain_dim, shape)):
        raise FlowcTypeError(f"needs a static shape, got {list(shape)} (random numbers are drawn for a known "
                             "number of elements)", op=op, where=user_location())
    return tuple(int(d) for d in shape)


def dropout(x: Any, keep_prob: Any = None, noise_shape: Sequence[int] | None = None, seed: int | None = None,
            name: str | None = None, rate: Any = None) -> Tensor:
    """x / keep_prob where a uniform draw is below keep_prob, else 0 (rate = 1 - keep_prob).

    The mask is drawn over `noise_shape` (default: x's shape, None dims included) and broadcast
    to x, new at every run.

    >>> import flowc as fc
    >>> fc.nn.dropout(fc.ones([4, 8]), rate=0.5, seed=1).shape
    (4, 8)
    """
    op = "dropout"
    if (keep_prob is None) == (rate is None):
        raise GraphError("give exactly one of keep_prob and rate", op=op, where=user_location())
    with name_scope(name or "dropout"):
        x = convert_to_tensor(x)
        if not x.dtype.is_float:
            raise FlowcTypeError(f"x must be float32 or float64, got {x.type}", op=op, where=user_location())
        keep = keep_prob if rate is None else (1.0 - rate if not isinstance(rate, Tensor) else 1.0 - rate)
        if not isinstance(keep, Tensor):
            keep = float(keep)
            if not 0.0 < keep <= 1.0:
                given = f"keep_prob {keep_prob}" if rate is None else f"rate {rate}"
                raise GraphError(f"{given} is out of range: keep_prob must be in (0, 1], rate in [0, 1)", op=op,
                                 where=user_location())
            if keep == 1.0:
                return x
        # float16's mask is drawn in float32 (the random ops draw float32 or float64: ir/ops/random.py)
        draw = float32 if x.dtype == float16 else x.dtype
        if noise_shape is None:
            uniform = _uniform_like(x, seed, draw)
        else:
            uniform = random_uniform(_static_shape(noise_shape, op), dtype=draw, seed=seed)
        keep_tensor = convert_to_tensor(keep, dtype=x.dtype)
        kept = less(uniform, keep_tensor if draw == x.dtype else cast(keep_tensor, draw))
        return x / keep_tensor * cast(kept, x.dtype)


# Acklam's rational approximation of the normal quantile: relative error below 1.15e-9 over (0, 1)
_CENTRAL_NUMERATOR = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
                      -3.066479806614716e+01, 2.506628277459239e+00)
_CENTRAL_DENOMINATOR = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
                        -1.328068155288572e+01, 1.0)
_TAIL_NUMERATOR = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
                   4.374664141464968e+00, 2.938163982698783e+00)
_TAIL_DENOMINATOR = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00, 1.0)
_TAIL_BELOW = 0.02425


def _polynomial(coefficients: Sequence[float], x: Tensor) -> Tensor:
    value = coefficients[0] * x + coefficients[1]
    for c in coefficients[2:]:
        value = value * x + c
    return value


def normal_quantile(p: Tensor) -> Tensor:
    """The standard normal quantile of p in (0, 1) (float64), to 1.15e-9 relative (Acklam)."""
    low = minimum(p, 1.0 - p)  # the tail formula on the nearer tail, mirrored by sign
    q = p - 0.5
    r = q * q
    central = q * _polynomial(_CENTRAL_NUMERATOR, r) / _polynomial(_CENTRAL_DENOMINATOR, r)
    t = sqrt(-2.0 * log(maximum(low, 1e-300)))
    tail = _polynomial(_TAIL_NUMERATOR, t) / _polynomial(_TAIL_DENOMINATOR, t)
    return where(less(low, _TAIL_BELOW), where(less(p, 0.5), tail, -tail), central)


_TRUNCATED_AT = 2.0
_CDF_BELOW = 0.5 * math.erfc(_TRUNCATED_AT / math.sqrt(2.0))  # Phi(-2)


def truncated_normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0, dtype: DType | str = float32,
                     seed: int | None = None, name: str | None = None) -> Tensor:
    """Normal numbers conditioned on lying within 2 stddev of the mean, as TensorFlow's (which
    redraws the others).

    Note [counter-based truncated normal]: redrawing takes an unbounded number of draws, which a
    counter-based stream cannot give each element. Instead the inverse CDF: a float64 uniform u
    maps to p = Phi(-2) + u (Phi(2) - Phi(-2)) and the value is Phi^-1(p), whose distribution is
    the truncated normal itself. Phi^-1 is Acklam's rational approximation (relative error below
    1.15e-9, from log, sqrt and arithmetic), computed in float64, clamped to [-2, 2] (the
    approximation could overshoot 2 by ~2e-9) and only then scaled and rounded to `dtype`. Each value
    is within 1.2e-9 relative of the exact quantile of its uniform draw: 50 times below float32's
    rounding, so a float32 result differs from the exactly rounded one only where the quantile lies
    within that distance of a rounding boundary (and then by one ulp).
    """
    op = "truncated_normal"
    out_dtype = as_dtype(dtype)
    if not out_dtype.is_float:
        raise FlowcTypeError(f"dtype must be float32 or float64, got {out_dtype.name}", op=op, where=user_location())
    with name_scope(name or "truncated_normal"):
        u = random_uniform(_static_shape(shape, op), dtype=float64, seed=seed)
        p = _CDF_BELOW + u * (1.0 - 2.0 * _CDF_BELOW)
        z = minimum(maximum(normal_quantile(p), -_TRUNCATED_AT), _TRUNCATED_AT)
        return cast(mean + stddev * z, out_dtype)


def random_shuffle(value: Any, seed: int | None = None, name: str | None = None) -> Tensor:
    """value with its first dim permuted at random (a new permutation every run).

    Every element draws a float64 key; its place is the number of keys below it (ties, of
    probability ~n^2 / 2^53, go by index), so all n! orders are equally likely. The ranks are
    counted by comparing all pairs: O(n^2) work for n rows, fine for thousands of rows.
    """
    op = "random_shuffle"
    with name_scope(name or "random_shuffle"):
        x = convert_to_tensor(value)
        if x.type.rank == 0:
            return x
        n = _static_shape(x.type.shape[:1], op)[0]
        keys = random_uniform([n], dtype=float64, seed=seed)
        index = constant(np.arange(n, dtype=np.int64))
        mine, theirs = reshape(keys, [n, 1]), reshape(keys, [1, n])
        before = less(theirs, mine) | (equal(theirs, mine) & less(reshape(index, [1, n]), reshape(index, [n, 1])))
        rank = reduce_sum(cast(before, int64), 1)  # rank[i]: where row i goes
        source = reduce_sum(cast(equal(reshape(rank, [1, n]), reshape(index, [n, 1])), int64)
                            * reshape(index, [1, n]), 1)  # source[r]: the row that goes to r
        return gather(x, source)


def categorical(logits: Any, num_samples: int, dtype: DType | str | None = None, seed: int | None = None,
                name: str | None = None) -> Tensor:
    """[batch, num_samples] class indices drawn from softmax(logits) per row (logits [batch, classes];
    the batch may be None).

    Gumbel-max, exact: argmax(logits - log(E)) with E ~ Exp(1) per class is distributed as
    softmax(logits); computed in float64. A class whose logit is -inf is never drawn.
    """
    op = "categorical"
    with name_scope(name or "categorical"):
        x = convert_to_tensor(logits)
        if not x.dtype.is_float or x.type.rank != 2:
            raise FlowcTypeError(f"logits must be a float matrix [batch, classes], got {x.type}", op=op,
                                 where=user_location())
        classes = _static_shape(x.type.shape[1:], op)[0]
        samples = int(num_samples)
        if classes == 0 and samples > 0:
            raise FlowcTypeError("logits have no class to draw from", op=op, where=user_location())
        if samples < 0:
            raise FlowcTypeError(f"num_samples must be >= 0, got {num_samples}", op=op, where=user_location())
        rows = expand_dims(cast(x, float64), 1)  # [batch, 1, classes]; the batch may be known only at run time
        u = _uniform_like(rows + zeros([1, samples, 1], float64), seed)
        scores = rows - log(-log(1.0 - u))
        return argmax(scores, axis=2, output_type=as_dtype(dtype) if dtype is not None else int64)


def multinomial(logits: Any, num_samples: int, seed: int | None = None, name: str | None = None,
                output_dtype: DType | str | None = None) -> Tensor:
    """TensorFlow 1's older name of categorical."""
    return categorical(logits, num_samples, dtype=output_dtype, seed=seed, name=name or "multinomial")
