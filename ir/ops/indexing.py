"""Indexing: slice (numpy basic indexing), gather (indices from a tensor), one_hot.

Slices clamp like Python's; integer indices (a squeezed slice dim, gather's
indices) must be in range, checked at compile time where the dim is known and
at run time otherwise (IndexOutOfRange).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import FlowcError, FlowcTypeError, IndexOutOfRange
from ..op import Op, normalize_axes, normalize_axis
from ..types import DTYPES, INT_NAMES, INTS, NUMERIC, Dim, DType, TensorType, as_dtype, float32


class Slice(Op):
    """x[begin[0]:end[0]:strides[0], ...]: one Python slice per dim of x.

    Python's semantics: negative begin/end count from the end, out-of-range
    bounds clamp, a None end runs to the end in the stride's direction, and a
    negative stride walks backwards. A stride of 0 is an error.

    Dims in `squeeze_dims` are indexed by the single integer `begin[d]` (which
    may be negative) and removed from the result; their `end` and `stride` (the
    front end writes begin+1 and 1) are not used. Such an index must be in range.
    """

    name = "slice"
    attrs = {
        "begin": tuple[int, ...],
        "end": tuple[int | None, ...],
        "strides": tuple[int, ...],
        "squeeze_dims": tuple[int, ...],
    }
    defaults = {"squeeze_dims": ()}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        self.check_attributes(x)
        squeezed = normalize_axes(self.name, self.squeeze_dims, x.rank)
        dims: list[Dim] = []
        for axis, size in enumerate(x.shape):
            if axis in squeezed:
                self.check_index(axis, size, FlowcTypeError, f"axis {axis} of {x}")
            else:
                dims.append(None if size is None else len(self.kept(axis, size)))
        return x.with_shape(dims)

    def check_attributes(self, x: TensorType) -> None:
        lengths = {len(self.begin), len(self.end), len(self.strides)}
        if lengths != {x.rank}:
            raise FlowcTypeError(f"begin, end and strides need one entry per dim of {x}, got "
                                 f"{list(self.begin)}, {list(self.end)}, {list(self.strides)}", op=self.name)
        if 0 in self.strides:
            raise FlowcTypeError(f"stride 0 in strides {list(self.strides)}", op=self.name)

    def kept(self, axis: int, size: int) -> range:
        """The indices that dim `axis` of size `size` keeps."""
        return range(*slice(self.begin[axis], self.end[axis], self.strides[axis]).indices(size))

    def check_index(self, axis: int, size: int | None, error: type[FlowcError], where: str) -> None:
        index = self.begin[axis]
        if size is not None and not -size <= index < size:
            raise error(f"index {index} is out of range [{-size}, {size}) for {where}", op=self.name)

    def reference(self, x: np.ndarray) -> np.ndarray:
        squeezed = normalize_axes(self.name, self.squeeze_dims, x.ndim)
        index: list[int | slice] = []
        for axis, size in enumerate(x.shape):
            if axis in squeezed:
                self.check_index(axis, size, IndexOutOfRange, f"axis {axis} of shape {list(x.shape)}")
                index.append(self.begin[axis])
            else:
                index.append(slice(self.begin[axis], self.end[axis], self.strides[axis]))
        return np.array(x[tuple(index)])  # a copy: Note [fresh results] in shape.py


def check_indices(op: str, indices: np.ndarray, size: int, where: str) -> None:
    """Every index in [0, size); a negative one is an error, not counted from the end."""
    bad = indices[(indices < 0) | (indices >= size)]
    if bad.size:
        raise IndexOutOfRange(f"index {bad.flat[0]} is out of range [0, {size}) for {where}", op=op)


class Gather(Op):
    """Slices of `params` along `axis` picked by `indices`.

    result[p..., i..., q...] = params[p..., indices[i...], q...], so the
    result shape is params.shape[:axis] + indices.shape + params.shape[axis+1:].
    """

    name = "gather"
    attrs = {"axis": int}
    defaults = {"axis": 0}
    num_operands = 2
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES

    def infer_type(self, params: TensorType, indices: TensorType) -> TensorType:
        self.check_dtype(params, "params")
        if indices.dtype not in INTS:
            raise FlowcTypeError(f"indices must be integers ({INT_NAMES}), got {indices}", op=self.name)
        axis = normalize_axis(self.name, self.axis, params.rank)
        return params.with_shape(params.shape[:axis] + indices.shape + params.shape[axis + 1 :])

    def reference(self, params: np.ndarray, indices: np.ndarray) -> np.ndarray:
        axis = normalize_axis(self.name, self.axis, params.ndim)
        check_indices(self.name, indices, params.shape[axis], f"axis {axis} of params with shape {list(params.shape)}")
        return np.take(params, indices, axis=axis)


class OneHot(Op):
    """Indices spread over a new dim of size `depth` at `axis`: on_value at each index, off_value elsewhere.

    An index outside [0, depth) gives a row of off_value only, as in TensorFlow.
    """

    name = "one_hot"
    attrs = {"depth": int, "on_value": float, "off_value": float, "dtype": DType, "axis": int}
    defaults = {"on_value": 1.0, "off_value": 0.0, "dtype": float32, "axis": -1}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = INTS
    differentiable = False  # the only operand is an index

    @classmethod
    def normalize_attributes(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        attributes = super().normalize_attributes(attributes)
        values = {"on_value": float(attributes["on_value"]), "off_value": float(attributes["off_value"])}
        return {**attributes, **values, "dtype": as_dtype(attributes["dtype"])}

    def infer_type(self, indices: TensorType) -> TensorType:
        self.check_dtype(indices, "indices")
        if self.dtype not in NUMERIC:
            raise FlowcTypeError(f"dtype must be numeric, got {self.dtype.name}", op=self.name)
        if self.depth < 0:
            raise FlowcTypeError(f"depth must be >= 0, got {self.depth}", op=self.name)
        rank = indices.rank
        if not -rank - 1 <= self.axis <= rank:
            raise FlowcTypeError(f"axis {self.axis} is out of range [{-rank - 1}, {rank}] for {indices}",
                                 op=self.name)
        shape = list(indices.shape)
        shape.insert(self.axis % (rank + 1), self.depth)
        return TensorType(self.dtype, tuple(shape))

    def reference(self, indices: np.ndarray) -> np.ndarray:
        hot = indices[..., None] == np.arange(self.depth)  # out-of-range indices match nothing
        values = np.where(hot, self.on_value, self.off_value).astype(self.dtype.np)
        return np.moveaxis(values, -1, self.axis % (indices.ndim + 1))


class ScatterAdd(Op):
    """`base` with the slices of `updates` added at the positions `indices` pick along `axis`:
    TensorFlow's tensor_scatter_add along one axis, the adjoint of gather (gather takes, this adds).

    result = base; result[p..., indices[i...], q...] += updates[p..., i..., q...] for every i, so
    updates has gather's result shape, base.shape[:axis] + indices.shape + base.shape[axis+1:], and
    an index picked twice gets both slices (summed in the order of the indices, as np.add.at). The
    result has base's type: its sizes come from base at run time, known or not. Every index must be
    in [0, base.shape[axis]) (IndexOutOfRange), even where the slices hold no element.
    """

    name = "scatter_add"
    attrs = {"axis": int}
    defaults = {"axis": 0}
    num_operands = 3
    dtypes: ClassVar[tuple[DType, ...]] = NUMERIC

    def infer_type(self, base: TensorType, indices: TensorType, updates: TensorType) -> TensorType:
        self.check_dtype(base, "base")
        if indices.dtype not in INTS:
            raise FlowcTypeError(f"indices must be int32 or int64, got {indices}", op=self.name)
        axis = normalize_axis(self.name, self.axis, base.rank)
        want = base.shape[:axis] + indices.shape + base.shape[axis + 1:]
        if updates.dtype != base.dtype or updates.rank != len(want) or any(
                w is not None and u is not None and w != u for w, u in zip(want, updates.shape)):
            raise FlowcTypeError(f"updates must be {base.with_shape(want)} (base {base}, indices {indices}, "
                                 f"axis {self.axis}), got {updates}", op=self.name)
        return base

    def reference(self, base: np.ndarray, indices: np.ndarray, updates: np.ndarray) -> np.ndarray:
        axis = normalize_axis(self.name, self.axis, base.ndim)
        check_indices(self.name, indices, base.shape[axis], f"axis {axis} of base with shape {list(base.shape)}")
        result = base.copy()
        np.add.at(result, (slice(None),) * axis + (indices,), updates)
        return result
