"""fc.nn: activations, softmax and cross entropies.

Composites of primitive ops, each written the numerically stable way (the
max is subtracted before exp), so large logits give no NaN and no inf.

The subtracted max goes through stop_gradient: the result does not depend on
it (it cancels), so its gradient is zero in exact arithmetic, and letting
the rounding residue flow through reduce_max would only add noise to the
gradient at the argmax. So the gradient of the cross entropies is exactly
softmax - labels, as computed, for any logits.
"""

from __future__ import annotations

from typing import Any

from flowc.ir.errors import FlowcTypeError

from .array_ops import one_hot
from .gradients import stop_gradient
from .graph import Tensor, name_scope
from .math_ops import convert_to_tensor, exp, log, reduce_max, reduce_sum, relu, sigmoid, tanh
from .reduction_ops import in_top_k, top_k
from .sources import user_location

__all__ = ["in_top_k", "top_k", "dynamic_rnn", "log_softmax", "relu", "rnn_cell", "sigmoid", "softmax", "softmax_cross_entropy_with_logits", "static_rnn",
           "sparse_softmax_cross_entropy_with_logits", "tanh"]


def softmax(logits: Any, axis: int = -1, name: str | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`.

    >>> import flowc as fc
    >>> fc.nn.softmax(fc.constant([[1.0, 2.0]])).shape
    (1, 2)
    """
    with name_scope(name or "Softmax"):
        x = convert_to_tensor(logits)
        e = exp(x - stop_gradient(reduce_max(x, axis, keepdims=True)))
        return e / reduce_sum(e, axis, keepdims=True)


def log_softmax(logits: Any, axis: int = -1, name: str | None = None) -> Tensor:
    """x - log(sum(exp(x))) along `axis`, computed from x - max(x)."""
    with name_scope(name or "LogSoftmax"):
        x = convert_to_tensor(logits)
        shifted = x - stop_gradient(reduce_max(x, axis, keepdims=True))
        return shifted - log(reduce_sum(exp(shifted), axis, keepdims=True))


def softmax_cross_entropy_with_logits(labels: Any, logits: Any, axis: int = -1, name: str | None = None) -> Tensor:
    """-sum(labels * log_softmax(logits)) along `axis`: one loss per example."""
    with name_scope(name or "softmax_cross_entropy_with_logits"):
        x = convert_to_tensor(logits)
        y = convert_to_tensor(labels, dtype=x.dtype)
        return -reduce_sum(y * log_softmax(x, axis), axis)


def sparse_softmax_cross_entropy_with_logits(labels: Any, logits: Any, name: str | None = None) -> Tensor:
    """Cross entropy against integer class labels (shape of logits without its last axis)."""
    with name_scope(name or "SparseSoftmaxCrossEntropyWithLogits"):
        x = convert_to_tensor(logits)
        y = convert_to_tensor(labels)
        classes = x.shape[-1] if x.shape else None
        if y.dtype.kind != "int" or y.type.rank != x.type.rank - 1 or classes is None:
            raise FlowcTypeError(
                f"labels must be int32/int64 of logits' shape without the last axis, and the number of classes "
                f"must be known; got labels {y.type} and logits {x.type}",
                op="sparse_softmax_cross_entropy_with_logits", where=user_location())
        return -reduce_sum(one_hot(y, classes, dtype=x.dtype) * log_softmax(x), -1)

# fc.nn.rnn_cell.*, fc.nn.static_rnn and dynamic_rnn, as tf.nn has them; imported last: they are built on the ops above.
from . import rnn_cell  # noqa: E402
from .rnn import dynamic_rnn, static_rnn  # noqa: E402
