"""fc.losses: TensorFlow 1's tf.losses, with its `weights`, `reduction` and LOSSES collection.

Each loss computes per-element losses, multiplies them by `weights` (a scalar or a tensor that
broadcasts to them) and reduces them by `reduction` (Reduction.SUM_BY_NONZERO_WEIGHTS by
default: the weighted sum over the number of nonzero weights, 0 when there are none). The
result is added to `loss_collection` (LOSSES), which get_total_loss sums with the
regularization losses.
"""

from __future__ import annotations

import re
from typing import Any

from flowc.ir.errors import FlowcTypeError, GraphError

from .graph import Tensor, get_default_graph, name_scope
from .math_ops import abs, cast, convert_to_tensor, minimum, not_equal, reduce_sum, square, where
from .nn import softmax_cross_entropy_with_logits, sparse_softmax_cross_entropy_with_logits
from .nn_ops import sigmoid_cross_entropy_with_logits
from .shape_ops import ones_like, size
from .sources import user_location
from .variable_scope import REGULARIZATION_LOSSES

LOSSES = "losses"


class Reduction:
    """How a loss reduces its weighted per-element losses (TensorFlow 1's strings)."""

    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.NONE, cls.SUM, cls.SUM_OVER_BATCH_SIZE, cls.MEAN, cls.SUM_BY_NONZERO_WEIGHTS)


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, 0 where the denominator is 0 (no weight at all)."""
    positive = not_equal(denominator, 0.0)
    return where(positive, numerator / where(positive, denominator, ones_like(denominator)), 0.0 * numerator)


def compute_weighted_loss(losses: Any, weights: Any = 1.0, scope: str | None = None,
                          loss_collection: str | None = LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """`losses` times `weights`, reduced by `reduction`, added to `loss_collection`."""
    op = "compute_weighted_loss"
    if reduction not in Reduction.all():
        raise GraphError(f"invalid reduction {reduction!r}: expected one of {', '.join(Reduction.all())}", op=op,
                         where=user_location())
    with name_scope(scope or "weighted_loss"):
        losses = convert_to_tensor(losses)
        if not losses.dtype.is_float:
            raise FlowcTypeError(f"losses must be float16, float32 or float64, got {losses.type}", op=op, where=user_location())
        weights = convert_to_tensor(weights, dtype=losses.dtype)
        weighted = losses * weights
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            total = reduce_sum(weighted)
            if reduction == Reduction.SUM:
                loss = total
            elif reduction == Reduction.MEAN:
                loss = _safe_divide(total, reduce_sum(weights * ones_like(losses)))
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                loss = _safe_divide(total, cast(size(losses), losses.dtype))
            else:
                present = cast(not_equal(weights * ones_like(losses), 0.0), losses.dtype)
                loss = _safe_divide(total, reduce_sum(present))
        if loss_collection is not None:
            get_default_graph().add_to_collection(loss_collection, loss)
        return loss


def _pair(labels: Any, predictions: Any, op: str) -> tuple[Tensor, Tensor]:
    predictions = convert_to_tensor(predictions)
    if not predictions.dtype.is_float:
        raise FlowcTypeError(f"predictions must be float16, float32 or float64, got {predictions.type}", op=op,
                             where=user_location())
    labels = cast(convert_to_tensor(labels), predictions.dtype)
    known = [(a, b) for a, b in zip(labels.type.shape, predictions.type.shape) if a is not None and b is not None]
    if labels.type.rank != predictions.type.rank or any(a != b for a, b in known):
        raise FlowcTypeError(f"labels {labels.type} and predictions {predictions.type} must have one shape", op=op,
                             where=user_location())
    return labels, predictions


def mean_squared_error(labels: Any, predictions: Any, weights: Any = 1.0, scope: str | None = None,
                       loss_collection: str | None = LOSSES,
                       reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """(predictions - labels)^2, weighted and reduced."""
    with name_scope(scope or "mean_squared_error"):
        labels, predictions = _pair(labels, predictions, "mean_squared_error")
        return compute_weighted_loss(square(predictions - labels), weights, None, loss_collection, reduction)


def absolute_difference(labels: Any, predictions: Any, weights: Any = 1.0, scope: str | None = None,
                        loss_collection: str | None = LOSSES,
                        reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """|predictions - labels|, weighted and reduced."""
    with name_scope(scope or "absolute_difference"):
        labels, predictions = _pair(labels, predictions, "absolute_difference")
        return compute_weighted_loss(abs(predictions - labels), weights, None, loss_collection, reduction)


def huber_loss(labels: Any, predictions: Any, weights: Any = 1.0, delta: float = 1.0, scope: str | None = None,
               loss_collection: str | None = LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """0.5 e^2 where |e| <= delta, else delta (|e| - 0.5 delta), e = predictions - labels."""
    with name_scope(scope or "huber_loss"):
        labels, predictions = _pair(labels, predictions, "huber_loss")
        error = abs(predictions - labels)
        quadratic = minimum(error, delta)
        linear = error - quadratic
        return compute_weighted_loss(0.5 * square(quadratic) + delta * linear, weights, None, loss_collection,
                                     reduction)


def _smooth(labels: Tensor, label_smoothing: float, classes: Any) -> Tensor:
    return labels if not label_smoothing else labels * (1.0 - label_smoothing) + label_smoothing / classes


def softmax_cross_entropy(onehot_labels: Any, logits: Any, weights: Any = 1.0, label_smoothing: float = 0,
                          scope: str | None = None, loss_collection: str | None = LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Softmax cross entropy per example ([batch, classes] one-hot labels), weighted and reduced;
    label_smoothing s makes the labels labels (1 - s) + s / classes."""
    with name_scope(scope or "softmax_cross_entropy_loss"):
        labels, logits = _pair(onehot_labels, logits, "softmax_cross_entropy")
        classes = logits.type.shape[-1]
        if label_smoothing and classes is None:
            raise FlowcTypeError(f"label_smoothing needs the number of classes, got logits {logits.type}",
                                 op="softmax_cross_entropy", where=user_location())
        losses = softmax_cross_entropy_with_logits(labels=_smooth(labels, label_smoothing, classes), logits=logits)
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def sparse_softmax_cross_entropy(labels: Any, logits: Any, weights: Any = 1.0, scope: str | None = None,
                                 loss_collection: str | None = LOSSES,
                                 reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Softmax cross entropy per example with class-index labels, weighted and reduced."""
    with name_scope(scope or "sparse_softmax_cross_entropy_loss"):
        losses = sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def sigmoid_cross_entropy(multi_class_labels: Any, logits: Any, weights: Any = 1.0, label_smoothing: float = 0,
                          scope: str | None = None, loss_collection: str | None = LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Sigmoid cross entropy per element, weighted and reduced; label_smoothing s makes the labels
    labels (1 - s) + s / 2."""
    with name_scope(scope or "sigmoid_cross_entropy_loss"):
        labels, logits = _pair(multi_class_labels, logits, "sigmoid_cross_entropy")
        losses = sigmoid_cross_entropy_with_logits(labels=_smooth(labels, label_smoothing, 2.0), logits=logits)
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def add_loss(loss: Any, loss_collection: str | None = LOSSES) -> None:
    """Add a loss computed otherwise to `loss_collection`, so get_total_loss counts it."""
    if loss_collection is not None:
        get_default_graph().add_to_collection(loss_collection, convert_to_tensor(loss))


def _in_scope(tensors: list[Any], scope: str | None) -> list[Any]:
    if scope is None:
        return tensors
    return [t for t in tensors if re.match(scope, getattr(t, "name", ""))]


def get_losses(scope: str | None = None, loss_collection: str = LOSSES) -> list[Tensor]:
    return _in_scope(get_default_graph().get_collection(loss_collection), scope)


def get_regularization_losses(scope: str | None = None) -> list[Tensor]:
    return _in_scope(get_default_graph().get_collection(REGULARIZATION_LOSSES), scope)


def _sum(tensors: list[Tensor], name: str) -> Tensor:
    with name_scope(name):
        total = tensors[0]
        for tensor in tensors[1:]:
            total = total + tensor
        return total


def get_regularization_loss(scope: str | None = None, name: str = "total_regularization_loss") -> Tensor:
    """The sum of the regularization losses (0.0 when there are none)."""
    losses = get_regularization_losses(scope)
    return _sum(losses, name) if losses else convert_to_tensor(0.0)


def get_total_loss(add_regularization_losses: bool = True, name: str = "total_loss",
                   scope: str | None = None) -> Tensor:
    """The sum of the LOSSES collection and (by default) the regularization losses."""
    losses = get_losses(scope) + (get_regularization_losses(scope) if add_regularization_losses else [])
    if not losses:
        raise GraphError("no losses found: add them with the fc.losses functions or fc.losses.add_loss",
                         op="get_total_loss", where=user_location())
    return _sum(losses, name)


__all__ = ["LOSSES", "Reduction", "absolute_difference", "add_loss", "compute_weighted_loss", "get_losses",
           "get_regularization_loss", "get_regularization_losses", "get_total_loss", "huber_loss",
           "mean_squared_error", "sigmoid_cross_entropy", "softmax_cross_entropy", "sparse_softmax_cross_entropy"]
