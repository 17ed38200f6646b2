"""Run-time shapes as values, and the ops whose result shape comes from other values' dims:
shape_of, reshape_dims, broadcast_dims, iota; gather_nd; pad (constant); and data_dim and where_indices,
whose result's size is data (Note [data-dependent sizes]).

Note [dims from operands]
`fc.reshape(x, [fc.shape(x)[0], -1])` and `fc.zeros_like(x)` on a None dim need a result
size known only at run time. Rather than reading a shape tensor's value (compiled code sizes
every buffer from the fed shapes before any kernel runs: ir/shapes.py), the front end traces
such a shape back to the dims it was taken from (compiler/shape_ops.py) and gives reshape_dims
and broadcast_dims those values as extra operands: entry i of the result shape is `shape[i]`
where `source[i]` is 0, and dim `source_axis[i]` of operand `source[i]` otherwise. The type
rule then reads that dim off the operand's type, so propagate_shapes gives it at run time as
it does every other size, and DimTies ties the two (ir/ops/fusion.py, _view_ties).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..errors import FlowcTypeError, IndexOutOfRange, RuntimeShapeError
from ..op import Op
from ..types import DTYPES, INDEX_DTYPES, INT_NAMES, INTS, NUMERIC, Dim, DType, TensorType, int32, int64


class ShapeOf(Op):
    """The dims of x as a rank-1 integer tensor: TensorFlow's tf.shape."""

    name = "shape_of"
    attrs = {"dtype": DType}
    defaults = {"dtype": int32}
    num_operands = 1
    differentiable = False  # a size has no gradient

    def infer_type(self, x: TensorType) -> TensorType:
        if self.dtype not in INDEX_DTYPES:
            raise FlowcTypeError(f"dtype must be int32 or int64, got {self.dtype.name}", op=self.name)
        return TensorType(self.dtype, (x.rank,))

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.array(x.shape, dtype=self.dtype.np)


class DimsFromOperands(Op):
    """The shared part of reshape_dims and broadcast_dims (Note [dims from operands])."""

    attrs = {"shape": tuple[int, ...], "source": tuple[int, ...], "source_axis": tuple[int, ...]}
    num_operands = None  # x, then the values whose dims the shape names
    first_source: ClassVar[int] = 1  # the operand that `source` 1 names (iota has no x)

    def target(self, x: TensorType, sources: tuple[TensorType, ...]) -> list[Dim]:
        """The result shape the attributes name: a static size, -1 (inferred) or an operand's dim."""
        if not len(self.shape) == len(self.source) == len(self.source_axis):
            raise FlowcTypeError(f"shape {list(self.shape)}, source {list(self.source)} and source_axis "
                                 f"{list(self.source_axis)} need one entry per result dim", op=self.name)
        dims: list[Dim] = []
        for size, source, axis in zip(self.shape, self.source, self.source_axis):
            if source == 0:
                dims.append(size)
                continue
            if not 1 <= source <= len(sources) or not 0 <= axis < sources[source - 1].rank:
                raise FlowcTypeError(f"dim {axis} of operand {source} does not exist ({len(sources)} source "
                                     "operands)", op=self.name)
            dims.append(sources[source - 1].shape[axis])
        return dims

    def source_dim(self, axis: int) -> tuple[int, int] | None:
        """(operand index, its axis) that result dim `axis` is, or None for a static or inferred one."""
        source = self.source[axis]
        return None if source == 0 else (source - 1 + self.first_source, self.source_axis[axis])

    def run_shape(self, sources: tuple[np.ndarray, ...]) -> list[int]:
        return [size if source == 0 else sources[source - 1].shape[axis]
                for size, source, axis in zip(self.shape, self.source, self.source_axis)]


class ReshapeDims(DimsFromOperands):
    """x reshaped as reshape does, some target dims being dims of other operands (known at run time)."""

    name = "reshape_dims"
    is_view = True

    def infer_type(self, x: TensorType, *sources: TensorType) -> TensorType:
        target = self.target(x, sources)
        if any(d is not None and d < -1 for d in target) or target.count(-1) > 1:
            raise FlowcTypeError(f"shape {self.shown(target)} may hold one -1, other dims must be >= 0",
                                 op=self.name)
        known = [d for d in target if d != -1]
        if x.size is None or None in known:
            return x.with_shape(None if d == -1 else d for d in target)
        count = math.prod(known)  # type: ignore[arg-type]
        if -1 in target:
            if count == 0 or x.size % count:
                raise self.mismatch(x, target, f"{x.size} elements do not fill dims of {count} elements")
            return x.with_shape(x.size // count if d == -1 else d for d in target)
        if count != x.size:
            raise self.mismatch(x, target, f"{x.size} elements, not {count}")
        return x.with_shape(target)

    @staticmethod
    def shown(target: list[Dim]) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in target) + "]"

    def mismatch(self, x: TensorType, target: list[Dim], why: str) -> FlowcTypeError:
        return FlowcTypeError(f"cannot reshape {x} to {self.shown(target)}: {why}", op=self.name)

    def reference(self, x: np.ndarray, *sources: np.ndarray) -> np.ndarray:
        shape = self.run_shape(sources)
        try:
            return x.reshape(shape).copy()  # Note [fresh results] in shape.py
        except ValueError:
            raise RuntimeShapeError(f"cannot reshape an array of shape {list(x.shape)} ({x.size} elements) to "
                                    f"{list(shape)}", op=self.name) from None


class BroadcastDims(DimsFromOperands):
    """x (of static shape) broadcast, as broadcast_to, to a shape some of whose dims are other operands'."""

    name = "broadcast_dims"

    def infer_type(self, x: TensorType, *sources: TensorType) -> TensorType:
        target = self.target(x, sources)
        if any(d is not None and d < 0 for d in target):
            raise FlowcTypeError(f"target shape {list(target)} has a negative dim", op=self.name)
        if not x.is_static or x.rank > len(target):
            raise FlowcTypeError(f"cannot broadcast {x} to rank {len(target)}: x needs a static shape of "
                                 "at most that rank", op=self.name)
        for d, t in zip(reversed(x.shape), reversed(target)):
            if d != 1 and t is not None and d != t:
                raise FlowcTypeError(f"cannot broadcast {x} to {ReshapeDims.shown(target)}: dim {d} is neither "
                                     f"1 nor {t}", op=self.name)
        return x.with_shape(target)

    def reference(self, x: np.ndarray, *sources: np.ndarray) -> np.ndarray:
        shape = self.run_shape(sources)
        try:
            return np.broadcast_to(x, shape).copy()
        except ValueError:
            raise RuntimeShapeError(f"cannot broadcast shape {list(x.shape)} to {shape}", op=self.name) from None


class Iota(DimsFromOperands):
    """[0, 1, ..., n-1] in `dtype`, n being the one entry of the shape (a static size or an operand's dim):
    fc.range(fc.shape(x)[0]). Its operands only lend their dims."""

    name = "iota"
    attrs = {**DimsFromOperands.attrs, "dtype": DType}
    first_source = 0
    differentiable = False

    def infer_type(self, *sources: TensorType) -> TensorType:
        target = self.target(None, sources)  # type: ignore[arg-type]
        if len(target) != 1 or (target[0] is not None and target[0] < 0):
            raise FlowcTypeError(f"needs one length >= 0, got {ReshapeDims.shown(target)}", op=self.name)
        if self.dtype not in NUMERIC:
            raise FlowcTypeError(f"dtype must be numeric, got {self.dtype.name}", op=self.name)
        return TensorType(self.dtype, tuple(target))

    def reference(self, *sources: np.ndarray) -> np.ndarray:
        return np.arange(self.run_shape(sources)[0]).astype(self.dtype.np)


class DataDim(Op):
    """No elements, dim 0 of size `count` (a scalar >= 0): the point where a size that is data becomes a
    dim that later ops are sized by (Note [data-dependent sizes])."""

    name = "data_dim"
    num_operands = 1
    differentiable = False  # a size has no gradient
    foldable = False  # the program is cut here (compiler/data_sized_run.py), even at a constant count

    def infer_type(self, count: TensorType) -> TensorType:
        if count.dtype not in INTS or count.rank != 0:
            raise FlowcTypeError(f"count must be an int32 or int64 scalar, got {count}", op=self.name)
        return TensorType(int64, (None, 0))

    def reference(self, count: np.ndarray) -> np.ndarray:
        rows = int(count)
        if rows < 0:
            raise RuntimeShapeError(f"a dim of {rows} elements: the count must be >= 0", op=self.name)
        return np.empty((rows, 0), np.int64)


class WhereIndices(Op):
    """The coordinates of the true (nonzero) elements of cond in row-major order, int64 [n, rank]:
    TensorFlow's where(cond). n is dim 0 of `rows`, a data_dim of cond's count of true elements
    (Note [data-dependent sizes]); a count that disagrees with cond is an error, never a short result."""

    name = "where_indices"
    num_operands = 2  # cond, rows
    differentiable = False

    def infer_type(self, cond: TensorType, rows: TensorType) -> TensorType:
        if rows.rank != 2 or rows.shape[1] != 0:
            raise FlowcTypeError(f"rows must be a data_dim (of shape [n, 0]), got {rows}", op=self.name)
        return TensorType(int64, (rows.shape[0], cond.rank))

    def reference(self, cond: np.ndarray, rows: np.ndarray) -> np.ndarray:
        found = np.argwhere(cond).astype(np.int64)  # [n, rank], a scalar included
        if len(found) != rows.shape[0]:
            raise RuntimeShapeError(f"cond has {len(found)} true elements, its rows operand says {rows.shape[0]}",
                                    op=self.name)
        return found


class Pad(Op):
    """x with `before[i]` and `after[i]` elements of `value` added around axis i (TF1's pad, CONSTANT mode;
    the mirror modes are slices and concats in the front end). One pass over the result."""

    name = "pad"
    attrs = {"before": tuple[int, ...], "after": tuple[int, ...], "value": float}
    defaults = {"value": 0.0}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        if len(self.before) != x.rank or len(self.after) != x.rank or min((*self.before, *self.after), default=0) < 0:
            raise FlowcTypeError(f"before {list(self.before)} and after {list(self.after)} need a count >= 0 per dim "
                                 f"of {x}", op=self.name)
        return x.with_shape(None if d is None else d + b + a for d, b, a in zip(x.shape, self.before, self.after))

    def reference(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 0:
            return x.copy()  # nothing to pad (np.pad refuses a scalar)
        value = np.array(self.value).astype(x.dtype)
        return np.pad(x, list(zip(self.before, self.after)), constant_values=value)


class GatherNd(Op):
    """Slices of params picked by index vectors: the last dim of indices (K, static) indexes
    params' first K dims, so result[i...] = params[indices[i..., 0], ..., indices[i..., K-1]],
    of shape indices.shape[:-1] + params.shape[K:]. Indices must be in range (not counted from the end)."""

    name = "gather_nd"
    num_operands = 2
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES

    def infer_type(self, params: TensorType, indices: TensorType) -> TensorType:
        self.check_dtype(params, "params")
        if indices.dtype not in INTS:
            raise FlowcTypeError(f"indices must be integers ({INT_NAMES}), got {indices}", op=self.name)
        if indices.rank < 1 or indices.shape[-1] is None:
            raise FlowcTypeError(f"indices need a last dim of static size, got {indices}", op=self.name)
        depth = indices.shape[-1]
        if depth > params.rank:
            raise FlowcTypeError(f"index vectors of {depth} entries for params {params} of rank {params.rank}",
                                 op=self.name)
        return params.with_shape(indices.shape[:-1] + params.shape[depth:])

    def reference(self, params: np.ndarray, indices: np.ndarray) -> np.ndarray:
        depth = indices.shape[-1]
        for k in range(depth):
            column = indices[..., k]
            bad = column[(column < 0) | (column >= params.shape[k])]
            if bad.size:
                raise IndexOutOfRange(f"index {bad.flat[0]} is out of range [0, {params.shape[k]}) for axis {k} "
                                      f"of params with shape {list(params.shape)}", op=self.name)
        shape = indices.shape[:-1] + params.shape[depth:]
        if depth == 0:  # empty index vectors pick the whole of params, once per vector
            return np.broadcast_to(params, shape).copy()
        return np.array(params[tuple(indices[..., k] for k in range(depth))]).reshape(shape)
