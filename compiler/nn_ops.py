"""fc.nn helpers real models use: activations, losses, normalization, embeddings, clipping.

Each is composed in the front end from primitive ops (no IR op of its own):
they are elementwise chains and reductions that fusion turns into the same
kernels a dedicated op would have.

Note [stable compositions]: log1p and expm1 are not primitives, so the
stable forms (softplus, the sigmoid cross entropies, elu, selu) compute them
with the classic corrections of log and exp (`_log1p`, `_expm1`):
log1p(t) = log(u) * t / (u - 1) with u = 1 + t rounded, exact to a few ulp.
Their gradients are given, not derived (`_with_derivative`: 1 / (1 + t) and
exp(x)), since the derived ones would carry the rounding that the
corrections cancel; and every branch a `where` leaves unselected is kept
finite, so no inf or NaN reaches a gradient through the branch not taken.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from flowc.ir.errors import FlowcTypeError, GraphError

from .array_ops import concat, gather, reshape, squeeze
from .gradients import stop_gradient
from .graph import Tensor, name_scope
from .math_ops import (
    abs,
    cast,
    constant,
    convert_to_tensor,
    exp,
    equal,
    greater,
    greater_equal,
    less,
    log,
    maximum,
    minimum,
    reduce_mean,
    reduce_sum,
    rsqrt,
    sqrt,
    where,
)
from .nn import named_labels_and_logits
from .sources import user_location

__all__ = [
    "batch_normalization", "clip_by_global_norm", "clip_by_norm", "clip_by_value", "elu", "embedding_lookup",
    "fused_batch_norm", "global_norm", "l2_loss", "l2_normalize", "leaky_relu", "moments", "relu6", "selu",
    "sigmoid_cross_entropy_with_logits", "softplus", "softsign", "weighted_cross_entropy_with_logits",
]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _float(x: Any, op: str) -> Tensor:
    tensor = convert_to_tensor(x)
    if not tensor.dtype.is_float:
        raise FlowcTypeError(f"expected a float32 or float64 tensor, got {tensor.name!r} of {tensor.type}",
                             op=op, where=user_location())
    return tensor


def _log1p(t: Tensor) -> Tensor:
    """log(1 + t) for t > -1, accurate for small t (Note [stable compositions])."""
    u = 1.0 + t
    tiny = equal(u, 1.0)
    value = where(tiny, t, log(u) * (t / where(tiny, 1.0, u - 1.0)))
    return _with_derivative(value, t, 1.0 / u)


def _expm1(x: Tensor) -> Tensor:
    """exp(x) - 1 for x <= 0 (callers clamp), accurate for small x (Note [stable compositions]).

    The correction only where x > -1/2: below, exp(x) - 1 is already accurate, and exp(x) may be
    subnormal, where log(exp(x)) is not x."""
    near_zero = greater(x, -0.5)
    small = where(near_zero, x, -0.25)
    u = exp(small)
    tiny = equal(u, 1.0)
    corrected = _with_derivative(where(tiny, small, (u - 1.0) * (small / log(where(tiny, 2.0, u)))), small, u)
    return where(near_zero, corrected, exp(x) - 1.0)


def _with_derivative(value: Tensor, x: Tensor, derivative: Tensor) -> Tensor:
    """`value`, whose gradient with respect to x is `derivative` (the corrections' own gradients
    would carry their rounding: t / (u - 1) is 1 to within eps / t only). x must be finite:
    x - stop_gradient(x) is then exactly 0 and the value is `value` to the bit."""
    return stop_gradient(value) + (x - stop_gradient(x)) * stop_gradient(derivative)


def _positive_part_and_magnitude(x: Tensor) -> tuple[Tensor, Tensor]:
    """max(x, 0) and |x| whose gradients at 0 are those of x itself (TensorFlow's softplus'(0) = 1/2)."""
    nonnegative = greater_equal(x, 0.0)
    return where(nonnegative, x, 0.0), where(nonnegative, x, -x)


def softplus(features: Any, name: str | None = None) -> Tensor:
    """log(1 + exp(x)), as max(x, 0) + log1p(exp(-|x|)): no overflow for any x.

    >>> import flowc as fc
    >>> fc.nn.softplus(fc.constant([0.0])).shape
    (1,)
    """
    with name_scope(name or "Softplus"):
        x = _float(features, "softplus")
        positive, magnitude = _positive_part_and_magnitude(x)
        return positive + _log1p(exp(-magnitude))


def _softplus_minus(x: Tensor, y: Tensor) -> Tensor:
    """softplus(x) - y, with y taken from max(x, 0) first: no cancellation where they are close."""
    positive, magnitude = _positive_part_and_magnitude(x)
    return (positive - y) + _log1p(exp(-magnitude))


def softsign(features: Any, name: str | None = None) -> Tensor:
    """x / (1 + |x|)."""
    with name_scope(name or "Softsign"):
        x = _float(features, "softsign")
        return x / (1.0 + abs(x))


def leaky_relu(features: Any, alpha: float = 0.2, name: str | None = None) -> Tensor:
    """x where x > 0, else alpha * x."""
    with name_scope(name or "LeakyRelu"):
        x = _float(features, "leaky_relu")
        return where(greater(x, 0.0), x, alpha * x)


def elu(features: Any, name: str | None = None) -> Tensor:
    """x where x > 0, else exp(x) - 1."""
    with name_scope(name or "Elu"):
        x = _float(features, "elu")
        return where(greater(x, 0.0), x, _expm1(minimum(x, 0.0)))


def selu(features: Any, name: str | None = None) -> Tensor:
    """scale * elu(x) with alpha on the negative side (Klambauer et al. 2017's constants)."""
    with name_scope(name or "Selu"):
        x = _float(features, "selu")
        return SELU_SCALE * where(greater(x, 0.0), x, SELU_ALPHA * _expm1(minimum(x, 0.0)))


def relu6(features: Any, name: str | None = None) -> Tensor:
    """min(max(x, 0), 6); the gradient is 1 strictly inside (0, 6), as TensorFlow's."""
    with name_scope(name or "Relu6"):
        x = _float(features, "relu6")
        inside = greater(x, 0.0) & less(x, 6.0)
        return where(inside, x, stop_gradient(minimum(maximum(x, 0.0), 6.0)))


def sigmoid_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None, logits: Any = None,
                                      name: str | None = None) -> Tensor:
    """-z log(sigmoid(x)) - (1 - z) log(1 - sigmoid(x)), as softplus(x) - x z: finite for any logits.

    labels= and logits= must be named, as in TensorFlow 1.
    """
    x, z = named_labels_and_logits("sigmoid_cross_entropy_with_logits", _sentinel, labels, logits)
    with name_scope(name or "logistic_loss"):
        x = _float(x, "sigmoid_cross_entropy_with_logits")
        z = _matching(z, x, "sigmoid_cross_entropy_with_logits")
        return _softplus_minus(x, x * z)


def weighted_cross_entropy_with_logits(labels: Any = None, logits: Any = None, pos_weight: Any = None,
                                       name: str | None = None, targets: Any = None) -> Tensor:
    """The sigmoid cross entropy with the positive term weighted by pos_weight:
    (1 - z) x + (1 + (q - 1) z) softplus(-x), finite for any logits."""
    op = "weighted_cross_entropy_with_logits"
    if targets is not None:
        if labels is not None:
            raise GraphError("give labels or targets (its old name), not both", op=op, where=user_location())
        labels = targets
    if labels is None or logits is None or pos_weight is None:
        raise GraphError("labels (or targets), logits and pos_weight are all needed", op=op, where=user_location())
    with name_scope(name or "logistic_loss"):
        x = _float(logits, op)
        z = _matching(labels, x, op)
        q = _matching(pos_weight, x, op)
        weight = 1.0 + (q - 1.0) * z
        positive, magnitude = _positive_part_and_magnitude(-x)
        return ((1.0 - z) * x + weight * positive) + weight * _log1p(exp(-magnitude))  # cancel first, as above


def _matching(value: Any, like: Tensor, op: str) -> Tensor:
    tensor = value if isinstance(value, Tensor) else convert_to_tensor(value, dtype=like.dtype)
    if tensor.dtype != like.dtype:
        raise FlowcTypeError(f"expected a {like.dtype.name} tensor (the dtype of {like.name!r}), "
                             f"got {tensor.name!r} of {tensor.type}",
                             op=op, where=user_location())
    return tensor


def l2_loss(t: Any, name: str | None = None) -> Tensor:
    """sum(t ** 2) / 2, a scalar."""
    with name_scope(name or "L2Loss"):
        x = _float(t, "l2_loss")
        return reduce_sum(x * x) * 0.5


def l2_normalize(x: Any, axis: int | Sequence[int] | None = None, epsilon: float = 1e-12, name: str | None = None,
                 dim: int | Sequence[int] | None = None) -> Tensor:
    """x / sqrt(max(sum(x ** 2, axis), epsilon)); `dim` is the old name of `axis`."""
    with name_scope(name or "l2_normalize"):
        x = _float(x, "l2_normalize")
        axis = dim if axis is None else axis
        square_sum = reduce_sum(x * x, axis, keepdims=True)
        return x * rsqrt(maximum(square_sum, epsilon))


def moments(x: Any, axes: Sequence[int], shift: Any = None, name: str | None = None, keep_dims: bool | None = None,
            keepdims: bool | None = None) -> tuple[Tensor, Tensor]:
    """(mean, variance) of x over `axes`; the variance is the biased one (divided by n).

    As TensorFlow 1, the variance takes the mean through stop_gradient (its gradient there is
    zero in exact arithmetic); `shift` is accepted and not used, as there.
    """
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with name_scope(name or "moments"):
        x = _float(x, "moments")
        axes = [int(a) for a in axes]
        mean = reduce_mean(x, axes, keepdims=True)
        centered = x - stop_gradient(mean)
        variance = reduce_mean(centered * centered, axes, keepdims=True)
        if not keep:  # squeezed, not reshaped: a reshape cannot say two unknown dims that stay
            reduced = sorted({a % x.type.rank for a in axes})
            mean, variance = squeeze(mean, reduced), squeeze(variance, reduced)
        return mean, variance


def batch_normalization(x: Any, mean: Any, variance: Any, offset: Any, scale: Any, variance_epsilon: float,
                        name: str | None = None) -> Tensor:
    """(x - mean) / sqrt(variance + epsilon) * scale + offset; offset and scale may be None."""
    with name_scope(name or "batchnorm"):
        x = _float(x, "batch_normalization")
        inverse = rsqrt(_matching(variance, x, "batch_normalization") + variance_epsilon)
        if scale is not None:
            inverse = inverse * _matching(scale, x, "batch_normalization")
        shifted = -_matching(mean, x, "batch_normalization") * inverse
        if offset is not None:
            shifted = shifted + _matching(offset, x, "batch_normalization")
        return x * inverse + shifted


def fused_batch_norm(x: Any, scale: Any, offset: Any, mean: Any = None, variance: Any = None, epsilon: float = 0.001,
                     data_format: str = "NHWC", is_training: bool = True,
                     name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Batch normalization of a 4-D x over all axes but the channels: (y, mean, variance).

    Training: the batch's mean and variance normalize x, and the variance returned is the
    unbiased one (times n / (n - 1)), as TensorFlow 1 returns it for moving averages.
    Inference: the given mean and variance normalize x and are returned as they are.
    """
    op = "fused_batch_norm"
    x = _float(x, op)
    if x.type.rank != 4:
        raise FlowcTypeError(f"x must be 4-D, got {x.type}", op=op, where=user_location())
    if data_format not in ("NHWC", "NCHW"):
        raise GraphError(f"data_format must be 'NHWC' or 'NCHW', got {data_format!r}", op=op, where=user_location())
    channel = 3 if data_format == "NHWC" else 1
    axes = [a for a in range(4) if a != channel]
    broadcast = [1, 1, 1, 1]
    broadcast[channel] = -1
    with name_scope(name or "FusedBatchNorm"):
        def per_channel(v: Any) -> Tensor:
            return reshape(_matching(v, x, op), broadcast)

        if is_training:
            if mean is not None or variance is not None:
                raise GraphError("mean and variance are for inference (is_training=False) only", op=op,
                                 where=user_location())
            batch_mean, batch_variance = moments(x, axes)
            unbiased = batch_variance * _bessel_correction(x, axes)
        else:
            if mean is None or variance is None:
                raise GraphError("inference (is_training=False) needs mean and variance", op=op,
                                 where=user_location())
            batch_mean, batch_variance = _matching(mean, x, op), _matching(variance, x, op)
            unbiased = batch_variance
        y = batch_normalization(x, per_channel(batch_mean), per_channel(batch_variance), per_channel(offset),
                                per_channel(scale), epsilon)
        return y, batch_mean, unbiased


def _bessel_correction(x: Tensor, axes: list[int]) -> Tensor | float:
    """n / max(n - 1, 1) for the n elements of x per channel; counted at run time where a dim is unknown."""
    if all(x.type.shape[a] is not None for a in axes):
        count = int(np.prod([x.type.shape[a] for a in axes]))
        return count / max(count - 1, 1)
    every = equal(x, x) | ~equal(x, x)  # true everywhere, NaN included: a tensor of x's (run-time) shape
    count = reduce_sum(cast(every, x.dtype), axes)
    return count / maximum(count - 1.0, 1.0)


def embedding_lookup(params: Any, ids: Any, partition_strategy: str = "mod", name: str | None = None,
                     validate_indices: bool = True, max_norm: float | None = None) -> Tensor:
    """Rows of `params` picked by `ids` (a gather: its gradient sums the rows of duplicate ids).

    `params` may be a list of shards of one table, split by `partition_strategy` as in
    TensorFlow 1: "mod" puts id i in shard i % n at row i // n, "div" cuts the ids into
    contiguous ranges. With `max_norm`, rows whose l2 norm exceeds it are scaled down to it.
    An id outside the table is an IndexOutOfRange error at run time.
    """
    op = "embedding_lookup"
    shards = list(params) if isinstance(params, (list, tuple)) else [params]
    if not shards:
        raise GraphError("params is an empty list", op=op, where=user_location())
    if partition_strategy not in ("mod", "div"):
        raise GraphError(f"partition_strategy must be 'mod' or 'div', got {partition_strategy!r}", op=op,
                         where=user_location())
    with name_scope(name or "embedding_lookup"):
        tables = [convert_to_tensor(shard) for shard in shards]
        ids = convert_to_tensor(ids)
        if len(tables) == 1:
            rows = gather(tables[0], ids)
        else:
            rows = gather(concat(tables, 0), _shard_rows(tables, ids, partition_strategy))
        if max_norm is None:
            return rows
        norm = sqrt(reduce_sum(rows * rows, -1, keepdims=True))
        return rows * where(greater(norm, max_norm), max_norm / maximum(norm, max_norm), 1.0)


def _shard_rows(tables: list[Tensor], ids: Tensor, strategy: str) -> Tensor:
    """Each id's row in the shards joined in order, through a table of them (checks the ids too)."""
    sizes = [t.type.shape[0] if t.type.shape else None for t in tables]
    if any(size is None for size in sizes):
        raise FlowcTypeError(f"sharded params need known first dims, got {[str(t.type) for t in tables]}",
                             op="embedding_lookup", where=user_location())
    starts = np.cumsum([0] + sizes[:-1])
    total = sum(sizes)
    if strategy == "mod":
        place = [(i % len(tables), i // len(tables)) for i in range(total)]
    else:
        place = [(int(np.searchsorted(starts, i, side="right") - 1), 0) for i in range(total)]
        place = [(shard, i - int(starts[shard])) for (shard, _), i in zip(place, range(total))]
    if any(row >= sizes[shard] for shard, row in place):
        raise FlowcTypeError(f"shard sizes {sizes} do not follow the {strategy!r} partition of {total} ids",
                             op="embedding_lookup", where=user_location())
    joined = np.array([starts[shard] + row for shard, row in place], dtype=ids.dtype.np)
    return gather(constant(joined, name="shard_rows"), ids)


def clip_by_value(t: Any, clip_value_min: Any, clip_value_max: Any, name: str | None = None) -> Tensor:
    """t with values below clip_value_min and above clip_value_max replaced by them."""
    with name_scope(name or "clip_by_value"):
        x = convert_to_tensor(t)
        return minimum(maximum(x, _matching(clip_value_min, x, "clip_by_value")),
                       _matching(clip_value_max, x, "clip_by_value"))


def clip_by_norm(t: Any, clip_norm: Any, axes: Sequence[int] | None = None, name: str | None = None) -> Tensor:
    """t * clip_norm / max(l2norm(t, axes), clip_norm): scaled down where its norm exceeds clip_norm."""
    with name_scope(name or "clip_by_norm"):
        x = _float(t, "clip_by_norm")
        limit = _matching(clip_norm, x, "clip_by_norm")
        square_sum = reduce_sum(x * x, axes, keepdims=True)
        nonzero = greater(square_sum, 0.0)
        norm = where(nonzero, sqrt(where(nonzero, square_sum, 1.0)), square_sum)
        return x * limit / maximum(norm, limit)


def global_norm(t_list: Sequence[Any], name: str | None = None) -> Tensor:
    """sqrt(sum of the squares of every element of every tensor); None entries are skipped."""
    tensors = _tensor_list(t_list, "global_norm")
    with name_scope(name or "global_norm"):
        squares = [reduce_sum(t * t) for t in tensors if t is not None]
        if not squares:
            raise GraphError("t_list holds no tensor", op="global_norm", where=user_location())
        total = squares[0]
        for square in squares[1:]:
            total = total + cast(square, total.dtype)
        return sqrt(total)


def clip_by_global_norm(t_list: Sequence[Any], clip_norm: Any, use_norm: Any = None,
                        name: str | None = None) -> tuple[list[Tensor | None], Tensor]:
    """(t_list scaled by clip_norm / max(global_norm, clip_norm), global_norm); None entries stay None.

    As TensorFlow 1, a global norm of inf or NaN makes every result NaN.
    """
    tensors = _tensor_list(t_list, "clip_by_global_norm")
    with name_scope(name or "clip_by_global_norm"):
        norm = global_norm(tensors) if use_norm is None else convert_to_tensor(use_norm)
        limit = _matching(clip_norm, norm, "clip_by_global_norm")
        scale = limit * minimum(1.0 / norm, 1.0 / limit) + (norm - norm)  # (norm - norm): NaN when norm is not finite
        clipped = [None if t is None else t * cast(scale, t.dtype) for t in tensors]
        return clipped, norm


def _tensor_list(t_list: Any, op: str) -> list[Tensor | None]:
    if isinstance(t_list, (Tensor, str)) or not hasattr(t_list, "__iter__"):
        raise GraphError(f"t_list must be a list of tensors, got {type(t_list).__name__}", op=op,
                         where=user_location())
    return [None if t is None else _float(t, op) for t in t_list]
