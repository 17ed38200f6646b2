"""fc.nn.nce_loss and fc.nn.sampled_softmax_loss, as TensorFlow 1 computes them.

Both score each example against its num_true true classes and num_sampled classes drawn once per
batch (by default log_uniform_candidate_sampler, unique): the logits are inputs . w_c + b_c for
the rows of those classes only, minus log(expected count of c) so the sampling bias cancels
(TensorFlow's subtract_log_q). A sampled class that is also one of an example's true classes (an
accidental hit) gets -FLOAT_MAX added to its logit when remove_accidental_hits. NCE takes the
sigmoid cross entropy of every logit against labels 1/num_true (true) and 0 (sampled), summed
per example; sampled softmax the softmax cross entropy over the row. The sampled classes and
their counts carry no gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import int64

from .array_ops import concat, expand_dims, ones_like, reshape, zeros_like
from .candidate_sampling import log_uniform_candidate_sampler
from .gradients import stop_gradient
from .graph import Tensor, name_scope
from .math_ops import cast, convert_to_tensor, equal, log, matmul, reduce_sum, where
from .reduction_ops import reduce_any
from .nn import softmax_cross_entropy_with_logits
from .nn_ops import embedding_lookup, sigmoid_cross_entropy_with_logits
from .sources import user_location

__all__ = ["nce_loss", "sampled_softmax_loss"]

# TensorFlow's accidental-hit weight, float32's largest finite value, in either float dtype
FLOAT_MAX = float(np.finfo(np.float32).max)


def nce_loss(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int, num_classes: int,
             num_true: int = 1, sampled_values: Any = None, remove_accidental_hits: bool = False,
             partition_strategy: str = "mod", name: str = "nce_loss") -> Tensor:
    """The noise-contrastive estimation loss per example, [batch_size].

    weights [num_classes, dim] (or a list of its shards), biases [num_classes], labels
    [batch_size, num_true] int, inputs [batch_size, dim].

    >>> import flowc as fc
    >>> loss = fc.nn.nce_loss(fc.ones([10, 4]), fc.zeros([10]), fc.constant([[1], [2]]), fc.ones([2, 4]),
    ...                       num_sampled=3, num_classes=10)
    >>> loss.shape
    (2,)
    """
    with name_scope(name):
        logits, true_logits = _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                                              sampled_values, remove_accidental_hits, partition_strategy, "nce_loss")
        losses = sigmoid_cross_entropy_with_logits(labels=_target(true_logits, logits, num_true), logits=logits)
        return reduce_sum(losses, 1)


def sampled_softmax_loss(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int, num_classes: int,
                         num_true: int = 1, sampled_values: Any = None, remove_accidental_hits: bool = True,
                         partition_strategy: str = "mod", name: str = "sampled_softmax_loss") -> Tensor:
    """The softmax cross entropy over the true and the sampled classes only, per example, [batch_size]."""
    with name_scope(name):
        logits, true_logits = _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                                              sampled_values, remove_accidental_hits, partition_strategy,
                                              "sampled_softmax_loss")
        target = stop_gradient(_target(true_logits, logits, num_true))
        return softmax_cross_entropy_with_logits(labels=target, logits=logits)


def _target(true_logits: Tensor, logits: Tensor, num_true: int) -> Tensor:
    """1/num_true for each true class, 0 for each sampled one: [batch, num_true + num_sampled]."""
    sampled = logits[:, int(num_true):]
    return concat([ones_like(true_logits) / float(num_true), zeros_like(sampled)], 1)


def _sampled_logits(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int, num_classes: int,
                    num_true: int, sampled_values: Any, remove_accidental_hits: bool, partition_strategy: str,
                    op: str) -> tuple[Tensor, Tensor]:
    """([batch, num_true + num_sampled] logits, the true ones first; the true logits alone)."""
    x = convert_to_tensor(inputs)
    true = convert_to_tensor(labels)
    if not x.dtype.is_float or x.type.rank != 2 or x.type.shape[1] is None:
        raise FlowcTypeError(f"inputs must be a float matrix [batch_size, dim] with a known dim, got {x.type}",
                             op=op, where=user_location())
    if true.dtype.kind != "int" or true.type.rank != 2 or true.type.shape[1] != int(num_true):
        raise FlowcTypeError(f"labels must be int64 (or int32) of shape [batch_size, num_true={num_true}], "
                             f"got {true.type}", op=op, where=user_location())
    true = cast(true, int64)
    if sampled_values is None:
        sampled_values = log_uniform_candidate_sampler(true, num_true, num_sampled, True, num_classes)
    sampled, true_expected, sampled_expected = (stop_gradient(convert_to_tensor(v)) for v in sampled_values)
    sampled = cast(sampled, int64)
    dim = x.type.shape[1]
    true_flat = reshape(true, [-1])
    true_w = reshape(embedding_lookup(weights, true_flat, partition_strategy), [-1, int(num_true), dim])
    true_b = reshape(embedding_lookup(biases, true_flat, partition_strategy), [-1, int(num_true)])
    true_logits = reduce_sum(expand_dims(x, 1) * true_w, 2) + true_b
    sampled_w = embedding_lookup(weights, sampled, partition_strategy)
    sampled_logits = matmul(x, sampled_w, transpose_b=True) + embedding_lookup(biases, sampled, partition_strategy)
    if remove_accidental_hits:
        hits = reduce_any(equal(expand_dims(true, 2), reshape(sampled, [1, 1, -1])), 1)  # [batch, num_sampled]
        sampled_logits = sampled_logits + cast(where(hits, -FLOAT_MAX, 0.0), x.dtype)
    true_logits = true_logits - log(cast(true_expected, x.dtype))
    sampled_logits = sampled_logits - log(cast(sampled_expected, x.dtype))
    return concat([true_logits, sampled_logits], 1), true_logits
