"""Reductions, scans and selection of the public API, beyond sum, mean, max and min:
reduce_prod, reduce_any, reduce_all, reduce_logsumexp, add_n, cumsum, cumprod, top_k, in_top_k.

reduce_prod, reduce_any and reduce_all are IR reductions (fused like reduce_sum); cumsum, cumprod
and top_k are IR ops of their own (ir/ops/scan.py, ir/ops/selection.py); reduce_logsumexp,
add_n and in_top_k are composed here from ops that fuse into one kernel or a few.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import FLOATS, INTS, int32, int64

from .array_ops import one_hot, reshape, squeeze
from .gradients import stop_gradient
from .graph import PLACEHOLDER, CONST, Tensor, control_dependencies, get_default_graph, name_scope
from .math_ops import (_axes, _reduction, abs, apply, cast, constant, convert_to_tensor, equal, exp, greater, less,
                       less_equal, log, logical_and, logical_or, not_equal, reduce_max, reduce_sum, where)
from .sources import user_location

__all__ = ["add_n", "cumprod", "cumsum", "in_top_k", "reduce_all", "reduce_any", "reduce_logsumexp",
           "reduce_prod", "top_k"]

reduce_prod = _reduction("reduce_prod", "Prod")
reduce_any = _reduction("reduce_any", "Any")
reduce_all = _reduction("reduce_all", "All")
reduce_prod.__doc__ = """Product over `axis` (all axes when None); 1 over an empty axis.

>>> import flowc as fc
>>> with fc.Session() as sess:
...     sess.run(fc.reduce_prod(fc.constant([[1.0, 2.0], [3.0, 4.0]]), axis=1))
array([ 2., 12.], dtype=float32)
"""
reduce_any.__doc__ = "Logical or of a bool tensor over `axis` (all axes when None); False over an empty axis."
reduce_all.__doc__ = "Logical and of a bool tensor over `axis` (all axes when None); True over an empty axis."


def integer_mean(x: Tensor, axis: int | Sequence[int] | None, keepdims: bool, name: str | None) -> Tensor:
    """TF1's Mean of integers: the sum, wrapping as the dtype does, divided by the number of elements
    summed and truncated toward zero (C's division, TF's kernel); 0 over an empty axis, where TF's
    kernel divides by zero. The quotient is taken in 64 bits, so that a count past the dtype's range
    divides right."""
    from .shape_ops import shape, size

    with name_scope(name or "Mean"):
        total = reduce_sum(x, axis, keepdims=keepdims)
        wide = int64  # holds every flowc integer
        if axis is None:
            count = size(x, out_type=wide)
        else:
            dims = shape(x, out_type=wide)
            count = constant(np.array(1, wide.np))
            for each in _axes(x, axis):
                count = count * dims[each if x.has_unknown_rank else each % x.type.rank]
        total = cast(total, wide)
        quotient = apply("floordiv", (total, count), name="floordiv")
        # floor and truncation differ on a negative quotient that is not exact: one more then
        inexact = logical_and(less(total, constant(np.array(0, wide.np))), not_equal(quotient * count, total))
        return cast(quotient + cast(inexact, wide), x.dtype)


def reduce_logsumexp(input_tensor: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False,
                     name: str | None = None) -> Tensor:
    """log(sum(exp(x))) over `axis`, computed as max + log(sum(exp(x - max))): no overflow for large
    x. A max that is not finite (all -inf, or an empty axis: -inf) shifts by 0, as TensorFlow does.

    >>> import flowc as fc
    >>> with fc.Session() as sess:
    ...     sess.run(fc.reduce_logsumexp(fc.constant([1000.0, 1000.0])))
    array(1000.6932, dtype=float32)
    """
    with name_scope(name or "ReduceLogSumExp"):
        x = convert_to_tensor(input_tensor)
        if x.dtype not in FLOATS:
            raise FlowcTypeError(f"input must be float16, float32 or float64, got {x.type}", op="reduce_logsumexp",
                                 where=user_location())
        # Every axis of an x of unknown rank is reduced by the rank rule (unknown_rank.py), and the
        # kept dims, all 1, are dropped by a reshape: whatever rank x is fed.
        every = axis is None and x.has_unknown_rank
        axes = None if every else _axes(x, axis)
        top = reduce_max(x, axes, keepdims=True)
        # The shift cancels out: stop_gradient keeps its rounding residue out of the gradient (as nn.softmax).
        shift = stop_gradient(where(less(abs(top), float("inf")), top, 0.0))
        # Kept dims until the end: the log and the add fuse into the reduction's kernel; the squeeze is free.
        total = log(reduce_sum(exp(x - shift), axes, keepdims=True)) + shift
        if every:
            return total if keepdims else reshape(total, [])
        return total if keepdims or not axes else squeeze(total, list(axes))


def add_n(inputs: Sequence[Any], name: str | None = None) -> Tensor:
    """The elementwise sum of tensors of one shape and dtype (no broadcasting, as TensorFlow's),
    added in order; the adds fuse into one kernel.

    >>> import flowc as fc
    >>> with fc.Session() as sess:
    ...     sess.run(fc.add_n([fc.constant([1, 2]), fc.constant([3, 4]), fc.constant([5, 6])]))
    array([ 9, 12], dtype=int32)
    """
    if isinstance(inputs, Tensor) or not isinstance(inputs, (list, tuple)) or not inputs:
        raise FlowcTypeError(f"inputs must be a non-empty list of tensors, got {inputs!r}", op="add_n",
                             where=user_location())
    tensors = [convert_to_tensor(value) for value in inputs]
    first = tensors[0]
    for tensor in tensors[1:]:
        same_shape = tensor.type.rank == first.type.rank and all(
            a is None or b is None or a == b for a, b in zip(tensor.type.shape, first.type.shape))
        if tensor.dtype != first.dtype or not same_shape:
            shown = ", ".join(str(t.type) for t in tensors)
            raise FlowcTypeError(f"inputs must have one shape and dtype, got {shown}", op="add_n",
                                 where=user_location())
    with name_scope(name or "AddN"):
        total = tensors[0] if len(tensors) > 1 else apply("identity", (first,), name="Identity")
        for tensor in tensors[1:]:
            total = apply("add", (total, tensor), name="add")
        return total


def _static_int(value: Any, what: str, op: str) -> int:
    """A Python int, or the value of a scalar constant tensor; anything else is refused."""
    if isinstance(value, Tensor):
        if value.op.type == CONST and np.ndim(value.op.attrs["value"]) == 0:
            return int(value.op.attrs["value"])
        kind = "a placeholder" if value.op.type == PLACEHOLDER else "a tensor computed at run time"
        raise FlowcTypeError(f"{what} must be known when the graph is built (a Python int or a constant); got "
                             f"{kind}, {value.name!r}", op=op, where=user_location())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise FlowcTypeError(f"{what} must be an int, got {value!r}", op=op, where=user_location())
    return int(value)


def _scan(kind: str, default_name: str, identity: int):  # type: ignore[no-untyped-def]
    def build(x: Any, axis: int = 0, exclusive: bool = False, reverse: bool = False,
              name: str | None = None) -> Tensor:
        return apply(kind, (convert_to_tensor(x),), name=name or default_name,
                     axis=_static_int(axis, "axis", kind), exclusive=bool(exclusive), reverse=bool(reverse))

    build.__name__ = kind
    build.__doc__ = (f"Running {'sum' if kind == 'cumsum' else 'product'} along `axis`; `exclusive` leaves each "
                     f"element out of its own result (the first is {identity}), `reverse` runs from the end.")
    return build


cumsum = _scan("cumsum", "Cumsum", 0)
cumprod = _scan("cumprod", "Cumprod", 1)


def top_k(input: Any, k: int = 1, sorted: bool = True, name: str | None = None) -> tuple[Tensor, Tensor]:
    """(values, indices) of the k largest entries along the last axis, largest first; among equal
    values the lower index first. The indices are int32. A `k` computed at run time (a scalar tensor)
    makes the results' last dim data (Note [data-dependent sizes] in compiler/data_sized_run.py); it must
    be in [0, n] for a last axis of n entries, checked when it runs.

    >>> import flowc as fc
    >>> values, indices = fc.nn.top_k(fc.constant([[1.0, 3.0, 2.0, 3.0]]), k=2)
    >>> with fc.Session() as sess:
    ...     sess.run([values, indices])
    [array([[3., 3.]], dtype=float32), array([[1, 3]], dtype=int32)]
    """
    x = convert_to_tensor(input)
    if isinstance(k, Tensor) and k.op.type != CONST:
        return _top_k_of_data(x, k, bool(sorted), name or "TopKV2")
    attrs = {"k": _static_int(k, "k", "top_k"), "sorted": bool(sorted)}
    op = get_default_graph().create_op("top_k", (x,), attrs, name=name or "TopKV2")
    return TopK(op.outputs[0], op.outputs[1])


class TopK(NamedTuple):
    """top_k's results, by position or by TF1's names."""

    values: Tensor
    indices: Tensor


def _top_k_of_data(x: Tensor, k: Tensor, sorted: bool, name: str) -> tuple[Tensor, Tensor]:
    """top_k of a k computed at run time: a data_dim of k sizes the results (ir/ops/selection.py), after a
    check that 0 <= k <= n, where TF1 stops the run too."""
    if k.type.rank != 0 or k.dtype not in INTS:
        raise FlowcTypeError(f"k must be an int32 or int64 scalar, got {k.type} ({k.name!r})", op="top_k",
                             where=user_location())
    if x.type.rank == 0:
        raise FlowcTypeError(f"input must have at least one dim, got a scalar {x.type}", op="top_k",
                             where=user_location())
    count = cast(k, int64)
    length = apply("shape_of", (x,), dtype=int64)[x.type.rank - 1]
    fits = logical_and(less_equal(constant(0, dtype=int64), count), less_equal(count, length))
    check = apply("check", (fits,), name=f"{name}_k_check",
                  message=f"top_k: k must be >= 0 and at most the size of the last axis of the input ({x.type})")
    with control_dependencies([check]):
        rows = apply("data_dim", (count,), name=f"{name}_rows")
    op = get_default_graph().create_op("top_k", (x, rows), {"k": -1, "sorted": sorted}, name=name)
    return TopK(op.outputs[0], op.outputs[1])


def in_top_k(predictions: Any, targets: Any, k: Any, name: str | None = None) -> Tensor:
    """Whether each row's target class is among its k largest predictions, as TensorFlow 1: classes
    tied with the k-th largest all count as in the top k; a row with a prediction that is not
    finite, or a target outside [0, classes), gives False.

    >>> import flowc as fc
    >>> p = fc.constant([[0.1, 0.5, 0.4], [0.3, 0.3, 0.3]])
    >>> with fc.Session() as sess:
    ...     sess.run(fc.nn.in_top_k(p, fc.constant([2, 1]), 1))
    array([False,  True])
    """
    with name_scope(name or "InTopK"):
        p, t = convert_to_tensor(predictions), convert_to_tensor(targets)
        if p.dtype not in FLOATS or p.type.rank != 2:
            raise FlowcTypeError(f"predictions must be a float matrix [batch, classes], got {p.type}", op="in_top_k",
                                 where=user_location())
        if t.dtype not in INTS or t.type.rank != 1:
            raise FlowcTypeError(f"targets must be an int32 or int64 vector [batch], got {t.type}", op="in_top_k",
                                 where=user_location())
        classes = p.type.shape[1]
        if classes is not None:
            hot = equal(one_hot(t, classes, dtype=int32), 1)
        else:  # each class's index, from a scan of ones shaped like p (NaN or not)
            ones = cast(logical_or(equal(p, p), not_equal(p, p)), int32)
            hot = equal(cumsum(ones, axis=1, exclusive=True), apply("expand_dims", (cast(t, int32),), axis=1))
        target = reduce_sum(where(hot, p, 0.0), 1, keepdims=True)
        better = reduce_sum(cast(greater(p, target), int32), 1)
        finite = apply("reduce_all", (less(abs(p), float("inf")),), axes=(1,), keepdims=False)
        known = apply("reduce_any", (hot,), axes=(1,), keepdims=False)  # the target is a class
        fewer = less(better, cast(k, int32) if isinstance(k, Tensor) else _static_int(k, "k", "in_top_k"))
        return logical_and(logical_and(known, finite), fewer)
