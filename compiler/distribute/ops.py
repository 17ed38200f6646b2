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
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from ..array_ops import concat, reshape
from ..graph import Tensor
from ..math_ops import apply, convert_to_tensor
from .topology import available, size

BUCKET_BYTES = 64 << 20  # Note [gradients packed into buckets]


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
