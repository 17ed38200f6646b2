"""Synchronous data-parallel training: DistributedOptimizer and broadcast_global_variables (Horovod's).

Every rank builds the same graph and feeds its own slice of the global batch. The wrapped
optimizer's gradients are averaged over the ranks before the update (one all_reduce per bucket:
Note [gradients packed into buckets] in ops.py), so every rank applies the same update and the
variables stay equal, as long as they started equal: run broadcast_global_variables once after
the initializer.

    opt = fc.distribute.DistributedOptimizer(fc.train.GradientDescentOptimizer(0.1))
    train = opt.minimize(loss)
    sync = fc.distribute.broadcast_global_variables(0)
    sess.run(fc.global_variables_initializer()); sess.run(sync)
"""

from __future__ import annotations

from typing import Any, Sequence

from flowc.ir.errors import GraphError

from ..array_ops import reshape
from ..graph import READ, Operation, Tensor
from ..math_ops import convert_to_tensor
from ..sources import user_location
from ..state_ops import Variable, assign, global_variables, group
from ..train import GradsAndVars, Optimizer
from .ops import BUCKET_BYTES, allreduce, broadcast, overlapped, packed
from .topology import available


class DistributedOptimizer(Optimizer):
    """`optimizer` with its gradients averaged over every rank of the job before they are applied.

    `bucket_bytes` bounds one all_reduce's message (Note [gradients packed into buckets]; Horovod's
    HOROVOD_FUSION_THRESHOLD sets its default). With `overlap` (the default) the buckets follow the
    backward pass, last layer first, and each is reduced while the earlier layers' gradients are
    computed (Note [overlapped buckets] in ops.py); without, every bucket is reduced by a blocking
    all_reduce after the whole backward pass. The slots, learning rate and update rule are the
    wrapped optimizer's. On one process it trains as
    the wrapped optimizer does:

    >>> import numpy as np, flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     w = fc.Variable(np.float32([1.0, -2.0]), name="w")
    ...     opt = fc.distribute.DistributedOptimizer(fc.train.GradientDescentOptimizer(0.25))
    ...     step = opt.minimize(fc.reduce_sum(w * w))
    ...     init = fc.global_variables_initializer()
    ...     sync = fc.distribute.broadcast_global_variables(root_rank=0)
    >>> with fc.Session(graph=g) as sess:
    ...     _ = sess.run(init); _ = sess.run(sync); _ = sess.run(step)
    ...     sess.run(w)   # w - 0.25 * 2w, the gradient averaged over the one rank
    array([ 0.5, -1. ], dtype=float32)
    """

    def __init__(self, optimizer: Optimizer, name: str | None = None, use_locking: bool = False,
                 device_dense: str = "", device_sparse: str = "", compression: Any = None,
                 sparse_as_dense: bool = False, bucket_bytes: int = BUCKET_BYTES, overlap: bool = True):
        """Horovod's signature; `use_locking`, the devices, `compression` and `sparse_as_dense` are
        accepted as Horovod takes them and change nothing here (gradients are dense and uncompressed)."""
        if not isinstance(optimizer, Optimizer):
            raise GraphError(f"DistributedOptimizer wraps a flowc optimizer (fc.train.*Optimizer), got {optimizer!r}",
                             op="DistributedOptimizer", where=user_location())
        super().__init__(optimizer._learning_rate, name or f"Distributed{optimizer._name}", optimizer._use_locking)
        self._optimizer = optimizer
        self._bucket_bytes = bucket_bytes
        self._overlap = overlap

    def compute_gradients(self, loss: Tensor, var_list: Sequence[Variable] | None = None, *args: Any,
                          **kwargs: Any) -> GradsAndVars:
        """The wrapped optimizer's (gradient, variable) pairs, each gradient averaged over the ranks."""
        pairs = self._optimizer.compute_gradients(loss, var_list, *args, **kwargs)
        present = [index for index, (grad, _) in enumerate(pairs) if grad is not None]
        if not available() or not present:
            return pairs
        if self._overlap:
            present = backward_order(loss, present, [variable for _, variable in pairs])
        grads = [_known_shape(convert_to_tensor(pairs[i][0]), pairs[i][1]) for i in present]
        if self._overlap:
            averaged = overlapped(grads, True, self._bucket_bytes)
        else:
            averaged = packed(grads, lambda flat: allreduce(flat, average=True), self._bucket_bytes)
        result = list(pairs)
        for index, grad in zip(present, averaged):
            result[index] = (grad, pairs[index][1])
        return result

    def apply_gradients(self, grads_and_vars: GradsAndVars, global_step: Variable | None = None,
                        name: str | None = None) -> Operation:
        return self._optimizer.apply_gradients(grads_and_vars, global_step, name)

    def get_slot(self, var: Variable, name: str) -> Variable | None:
        return self._optimizer.get_slot(var, name)

    def get_slot_names(self) -> list[str]:
        return self._optimizer.get_slot_names()

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        return self._optimizer._apply_dense(grad, var)


def backward_order(loss: Tensor, indices: list[int], variables: Sequence[Variable]) -> list[int]:
    """`indices` (of `variables`) in the order the backward pass computes their gradients: reverse mode
    runs the forward ops backwards, so a variable read last in the forward pass gets its gradient
    first. A variable's place is its first read among the ops up to the loss (graph creation order is
    a topological order); ties keep the given order."""
    first_read: dict[Operation, int] = {}
    for op in loss.graph.get_operations()[:loss.op.id + 1]:
        for tensor in op.inputs:
            if tensor.op.type == READ:
                first_read.setdefault(tensor.op.attrs["var"], op.id)
    return sorted(indices, key=lambda i: -first_read.get(variables[i].op, -1))


def _known_shape(grad: Tensor, var: Variable) -> Tensor:
    """The gradient with its variable's (static) shape: packing needs every element count."""
    if None not in grad.type.shape:
        return grad
    return reshape(grad, list(var.type.shape))


def broadcast_global_variables(root_rank: int = 0, name: str | None = None) -> Operation:
    """One op that sets every global variable to rank `root_rank`'s value (run it once, after the
    initializer), with the values packed into a few broadcasts (Note [gradients packed into buckets])."""
    variables = global_variables()
    if not available() or not variables:
        return group(*[v.value() for v in variables], name=name or "broadcast_global_variables")
    values = packed([v.value() for v in variables], lambda flat: broadcast(flat, root_rank))
    return group(*[assign(v, value) for v, value in zip(variables, values)], name=name or "broadcast_global_variables")
