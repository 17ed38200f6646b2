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

import numpy as np

from flowc.ir.errors import FlowcTypeError, GraphError

from .array_ops import gather, one_hot
from .gradients import stop_gradient
from .graph import Tensor, name_scope
from .math_ops import constant, convert_to_tensor, exp, log, reduce_max, reduce_sum, relu, sigmoid, tanh
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


def softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None, logits: Any = None, dim: int = -1,
                                      name: str | None = None, axis: int | None = None) -> Tensor:
    """-sum(labels * log_softmax(logits)) along `axis`: one loss per example.

    labels= and logits= must be named, as in TensorFlow 1 (`_sentinel` refuses positional
    arguments): the two have the same type, so a swap would give a wrong loss, silently.
    """
    x, y = named_labels_and_logits("softmax_cross_entropy_with_logits", _sentinel, labels, logits)
    with name_scope(name or "softmax_cross_entropy_with_logits"):
        x = convert_to_tensor(x)
        y = convert_to_tensor(y, dtype=x.dtype)
        axis = dim if axis is None else axis
        return -reduce_sum(y * log_softmax(x, axis), axis)


def sparse_softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None, logits: Any = None,
                                             name: str | None = None) -> Tensor:
    """Cross entropy against integer class labels (shape of logits without its last axis).

    A label outside [0, classes) is an IndexOutOfRange error naming this op and the label, at
    run time, as TensorFlow 1 raises: the labels pass through a gather from [0, classes), which
    checks them on every target (it would otherwise be a one_hot row of zeros and a loss of 0).
    """
    x, y = named_labels_and_logits("sparse_softmax_cross_entropy_with_logits", _sentinel, labels, logits)
    with name_scope(name or "SparseSoftmaxCrossEntropyWithLogits"):
        x = convert_to_tensor(x)
        y = convert_to_tensor(y)
        classes = x.type.shape[-1] if x.type.shape else None
        if y.dtype.kind != "int" or y.type.rank != x.type.rank - 1 or classes is None:
            raise FlowcTypeError(
                f"labels must be int32/int64 of logits' shape without the last axis, and the number of classes "
                f"must be known; got labels {y.type} and logits {x.type}",
                op="sparse_softmax_cross_entropy_with_logits", where=user_location())
        class_ids = constant(np.arange(classes, dtype=y.dtype.np), name="class_ids")
        checked = gather(class_ids, y, name="labels_in_range")
        return -reduce_sum(one_hot(checked, classes, dtype=x.dtype) * log_softmax(x), -1)


def named_labels_and_logits(op: str, sentinel: Any, labels: Any, logits: Any) -> tuple[Any, Any]:
    """(logits, labels), both given by name: TensorFlow 1's `_sentinel` rule."""
    if sentinel is not None or labels is None or logits is None:
        given = "positional arguments" if sentinel is not None else "labels= and logits= missing"
        raise GraphError(f"only named arguments are accepted: call {op}(labels=..., logits=...); got {given}",
                         op=op, where=user_location())
    return logits, labels

# fc.nn.rnn_cell.*, fc.nn.static_rnn and dynamic_rnn, as tf.nn has them; imported last: they are built on the ops above.
from . import rnn_cell  # noqa: E402
from .rnn import dynamic_rnn, static_rnn  # noqa: E402
# fc.nn.conv2d, pooling and bias_add (conv_ops.py: composed from slices, concat and matmul).
from .conv_ops import (avg_pool, avg_pool2d, bias_add, conv1d, conv2d, conv2d_transpose,  # noqa: E402
                       depthwise_conv2d, max_pool, max_pool2d)

__all__ += ["avg_pool", "avg_pool2d", "bias_add", "conv1d", "conv2d", "conv2d_transpose", "depthwise_conv2d",
            "max_pool", "max_pool2d"]

from .nn_ops import *  # noqa: E402,F401,F403  (activations, losses, normalization, embedding_lookup, clipping)
from .nn_ops import __all__ as _nn_ops_all  # noqa: E402
from .random_ops import dropout  # noqa: E402

__all__ += [*_nn_ops_all, "dropout"]

# candidate samplers and the sampled losses (candidate_sampling.py, sampled_losses.py)
from .candidate_sampling import (fixed_unigram_candidate_sampler, log_uniform_candidate_sampler,  # noqa: E402
                                 uniform_candidate_sampler)
from .sampled_losses import nce_loss, sampled_softmax_loss  # noqa: E402

__all__ += ["fixed_unigram_candidate_sampler", "log_uniform_candidate_sampler", "nce_loss", "sampled_softmax_loss",
            "uniform_candidate_sampler"]
