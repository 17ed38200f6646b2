"""The graph ops of data parallelism: allreduce and broadcast of one tensor, and their packed forms
that move many tensors in a few large messages.

Note [gradients packed into buckets]
An MPI collective costs a latency per call (microseconds on a network, more across processes here)
plus its bytes over the bandwidth; a model of 100 small variables reduced one by one pays the latency
100 times. So `packed` flattens the tensors of one dtype, in order, into buckets of at most
`bucket_bytes` (a tensor bigger than that has a bucket of its own), concatenates each bucket, runs
one collective per bucket and slices the result back into the tensors' shapes. Fusion makes the
flatten-and-concat one copy kernel and each slice-and-reshape a view or a copy. The buckets are the
same on every rank, since every rank builds the same graph.

Note [overlapped buckets]
DistributedOptimizer reduces its buckets with the split collective (Note [split collectives] in
ir/ops/collective.py): `overlapped` starts every bucket, then waits for each. Its tensors come in
the order the backward pass produces them (the last layer's gradients first: optimizer.py), so the
first bucket is complete while the earlier layers' gradients are still being computed; the
placement pass (passes/collective_placement.py) moves each start to just after the kernel that
completes its bucket and each wait to just before the first kernel that reads the result, so the
reduction of one bucket runs while the backward pass computes the next. A bucket is closed at
`bucket_bytes` (Horovod's HOROVOD_FUSION_THRESHOLD, read from the environment as the default):
smaller buckets start sooner but pay the latency more often.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Sequence

from ..array_ops import concat, reshape
from ..graph import Tensor
from ..math_ops import apply, convert_to_tensor
from .topology import available, size

# Note [gradients packed into buckets]; Horovod's environment variable of the same meaning sets it.
BUCKET_BYTES = int(os.environ.get("HOROVOD_FUSION_THRESHOLD", 64 << 20))


def allreduce(tensor: Tensor, average: bool = True, name: str | None = None) -> Tensor:
    """The sum of `tensor` over every rank (its mean with `average`), on every rank (Horovod's allreduce).

    With one process it is `tensor` itself (divided by 1):

    >>> import numpy as np, flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.float32, [2], name="x")
    ...     mean = fc.distribute.allreduce(x)
    >>> with fc.Session(graph=g) as sess:
    ...     sess.run(mean, {x: np.float32([1.0, 3.0])})
    array([1., 3.], dtype=float32)
    """
    tensor = convert_to_tensor(tensor)
    if not available():  # no MPI: a job of one process
        return tensor
    total = apply("all_reduce", (tensor,), name=name or "Allreduce", reduction="sum")
    return total / convert_to_tensor(size(), dtype=total.dtype) if average else total


def allreduce_start(tensor: Tensor, name: str | None = None) -> Tensor:
    """The sum of `tensor` over the ranks, begun: only `allreduce_done` may read the result, which
    it returns once the reduction is complete (Note [split collectives] in ir/ops/collective.py)."""
    return apply("all_reduce_start", (convert_to_tensor(tensor),), name=name or "AllreduceStart", reduction="sum")


def allreduce_done(handle: Tensor, name: str | None = None) -> Tensor:
    """The sum begun by `allreduce_start`, waited for."""
    return apply("all_reduce_done", (handle,), name=name or "AllreduceDone")


def broadcast(tensor: Tensor, root_rank: int, name: str | None = None) -> Tensor:
    """Rank `root_rank`'s `tensor`, on every rank (Horovod's broadcast)."""
    tensor = convert_to_tensor(tensor)
    if not available():
        return tensor
    return apply("broadcast", (tensor,), name=name or "Broadcast", root=int(root_rank))


def packed(tensors: Sequence[Tensor], collective: Callable[[Tensor], Tensor],
           bucket_bytes: int = BUCKET_BYTES) -> list[Tensor]:
    """`collective` applied to every tensor, through one call per bucket (Note [gradients packed into
    buckets]); each tensor's shape must be known."""
    results: list[Tensor | None] = [None] * len(tensors)
    for bucket in buckets(tensors, bucket_bytes):
        flat = [reshape(tensors[i], [-1]) for i in bucket]
        whole = collective(flat[0] if len(flat) == 1 else concat(flat, axis=0))
        start = 0
        for i in bucket:
            count = math.prod(tensors[i].type.shape)
            results[i] = reshape(whole[start:start + count], list(tensors[i].type.shape))
            start += count
    return results  # type: ignore[return-value]


def overlapped(tensors: Sequence[Tensor], average: bool, bucket_bytes: int = BUCKET_BYTES) -> list[Tensor]:
    """Every tensor summed (averaged) over the ranks, one split all_reduce per bucket: every bucket is
    started before any is waited for (Note [overlapped buckets]); each tensor's shape must be known."""
    groups = buckets(tensors, bucket_bytes)
    started = []
    for bucket in groups:
        flat = [reshape(tensors[i], [-1]) for i in bucket]
        started.append(allreduce_start(flat[0] if len(flat) == 1 else concat(flat, axis=0)))
    results: list[Tensor | None] = [None] * len(tensors)
    for bucket, handle in zip(groups, started):
        whole = allreduce_done(handle)
        if average:
            whole = whole / convert_to_tensor(size(), dtype=whole.dtype)
        start = 0
        for i in bucket:
            count = math.prod(tensors[i].type.shape)
            results[i] = reshape(whole[start:start + count], list(tensors[i].type.shape))
            start += count
    return results  # type: ignore[return-value]


def buckets(tensors: Sequence[Tensor], bucket_bytes: int) -> list[list[int]]:
    """The tensors' indices grouped by dtype, in order, into runs of at most `bucket_bytes`."""
    groups: list[list[int]] = []
    open_bucket: dict[object, tuple[list[int], int]] = {}  # dtype -> (its bucket being filled, its bytes)
    for index, tensor in enumerate(tensors):
        nbytes = math.prod(tensor.type.shape) * tensor.type.dtype.itemsize
        bucket, filled = open_bucket.get(tensor.type.dtype, ([], 0))
        if bucket and filled + nbytes > bucket_bytes:
            bucket, filled = [], 0
        if not bucket:
            groups.append(bucket)
        bucket.append(index)
        open_bucket[tensor.type.dtype] = (bucket, filled + nbytes)
    return groups
