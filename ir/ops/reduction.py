"""Reductions over axes: sum, mean, max, min, prod, any, all, and the arg-reductions argmax, argmin.

`axes` is always explicit in IR (the front end spells out "all axes"); an empty
tuple reduces nothing. Negative axes count from the end, as in numpy.

Over a zero-size axis each reduction gives its identity, as TensorFlow does: sum
0, mean 0 / 0 = NaN, max the dtype's lowest value, min its highest (so an empty
batch runs, and a softmax over an empty axis is empty), prod 1, any False, all
True; argmax and argmin have
no index to give and raise. Every target, and the constant folder, does this.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import FlowcTypeError, RuntimeShapeError
from ..op import Op, normalize_axes, normalize_axis, reduced_type
from ..types import FLOATS, INDEX_DTYPES, NUMERIC, DType, TensorType, as_dtype, bool_, int64


class Reduction(Op):
    """Reduce `x` over `axes`; the reduced axes stay as size 1 when `keepdims`."""

    attrs = {"axes": tuple[int, ...], "keepdims": bool}
    defaults = {"keepdims": False}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = NUMERIC
    is_reduction = True

    def infer_type(self, x: TensorType) -> TensorType:
        self.check_dtype(x)
        return reduced_type(self.name, x, self.axes, self.keepdims)

    def reduced_axes(self) -> tuple[int, ...]:
        """The axes reduced, non-negative and sorted (what fusion, autodiff and codegen ask of every
        reduction, argmax and argmin included)."""
        return normalize_axes(self.name, self.axes, self.operands[0].type.rank)


def lowest(dtype: np.dtype) -> Any:
    """The identity of max: -inf for floats, the smallest integer for ints."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def highest(dtype: np.dtype) -> Any:
    """The identity of min: +inf for floats, the largest integer for ints."""
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


class ReduceSum(Reduction):
    """Sum over `axes`, accumulated in the operand's dtype (float16 in float32); an empty axis sums to 0."""

    name = "reduce_sum"

    def reference(self, x: np.ndarray) -> np.ndarray:
        # dtype=: numpy would widen int32 sums to int64; flowc keeps the operand's dtype.
        total = np.sum(x, axis=self.axes, keepdims=self.keepdims, dtype=accumulator(x.dtype))
        return rounded(total, x.dtype)


def rounded(total: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A float32 accumulation of float16 rounded back to half (inf past its range, quietly)."""
    with np.errstate(over="ignore"):
        return np.asarray(total, dtype=dtype)


def accumulator(dtype: np.dtype) -> np.dtype:
    """The dtype a sum or product of `dtype` accumulates in: float16 in float32, rounded to half once at
    the end (what TF's kernels and the GPU target do; numpy would round every partial sum to half),
    every other dtype in itself."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


class ReduceMean(Reduction):
    """Mean over `axes`: the sum divided by the number of reduced elements (NaN when 0)."""

    name = "reduce_mean"
    dtypes = FLOATS

    def reference(self, x: np.ndarray) -> np.ndarray:
        axes = normalize_axes(self.name, self.axes, x.ndim)
        count = int(np.prod([x.shape[a] for a in axes]))
        total = np.sum(x, axis=axes, keepdims=self.keepdims, dtype=accumulator(x.dtype))
        # Not np.mean: it warns on an empty axis. 0/0 gives the NaN numpy gives, quietly.
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.asarray(np.divide(total, count), dtype=x.dtype)


class ReduceMax(Reduction):
    """Largest element over `axes`; NaN if any is NaN. An empty axis gives max's identity, the lowest
    value of the dtype (-inf, or the smallest integer), as TensorFlow's reduce_max does: a batch
    that happens to be empty runs rather than fails, and a softmax over it is empty."""

    name = "reduce_max"

    def reference(self, x: np.ndarray) -> np.ndarray:
        # initial=: numpy raises on an empty axis; it changes nothing where there are elements.
        return np.asarray(np.max(x, axis=self.axes, keepdims=self.keepdims, initial=lowest(x.dtype)))


class ReduceMin(Reduction):
    """Smallest element over `axes`; NaN if any is NaN. An empty axis gives min's identity, the
    highest value of the dtype (+inf, or the largest integer), as TensorFlow's reduce_min."""

    name = "reduce_min"

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.min(x, axis=self.axes, keepdims=self.keepdims, initial=highest(x.dtype)))


class ReduceProd(Reduction):
    """Product over `axes`, in the operand's dtype (integers wrap); an empty axis gives 1."""

    name = "reduce_prod"

    def reference(self, x: np.ndarray) -> np.ndarray:
        product = np.prod(x, axis=self.axes, keepdims=self.keepdims, dtype=accumulator(x.dtype))
        return rounded(product, x.dtype)


class ReduceAny(Reduction):
    """Logical or over `axes` of a bool tensor; an empty axis gives False."""

    name = "reduce_any"
    dtypes = (bool_,)
    differentiable = False  # bool in, bool out

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.array(np.any(x, axis=self.axes, keepdims=self.keepdims))  # a copy even over no axes


class ReduceAll(Reduction):
    """Logical and over `axes` of a bool tensor; an empty axis gives True."""

    name = "reduce_all"
    dtypes = (bool_,)
    differentiable = False

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.array(np.all(x, axis=self.axes, keepdims=self.keepdims))


class ArgReduction(Op):
    """Index along `axis` of the chosen element (the first one on ties and NaN, as numpy).

    A zero-size axis has no index to give, so it is an error, as in TensorFlow (and numpy): at build
    time when the axis is statically 0, at run time (both targets, from `checked_axis` here and
    from this type rule on the fed shapes) when a None dim is fed 0, even when the result is empty.
    """

    attrs = {"axis": int, "dtype": DType}
    defaults = {"dtype": int64}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = NUMERIC
    differentiable = False  # an index has no derivative
    is_reduction = True
    keepdims = False  # as Reduction's attribute reads: the reduced axis is always dropped

    @classmethod
    def normalize_attributes(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        attributes = super().normalize_attributes(attributes)
        return {**attributes, "dtype": as_dtype(attributes["dtype"])}

    def infer_type(self, x: TensorType) -> TensorType:
        self.check_dtype(x)
        if self.dtype not in INDEX_DTYPES:
            raise FlowcTypeError(f"index dtype must be int32 or int64, got {self.dtype.name}", op=self.name)
        axis = normalize_axis(self.name, self.axis, x.rank)
        if x.shape[axis] == 0:
            raise FlowcTypeError(self.empty_axis_message(axis, x.shape), op=self.name)
        return TensorType(self.dtype, x.shape[:axis] + x.shape[axis + 1 :])

    def reduced_axes(self) -> tuple[int, ...]:
        """(axis,), non-negative: as Reduction.reduced_axes."""
        return (self.axis % self.operands[0].type.rank,)

    def empty_axis_message(self, axis: int, shape: tuple[int | None, ...]) -> str:
        shown = ["?" if d is None else d for d in shape]
        return f"{self.name} over zero-size axis {axis} of shape {shown}: an empty axis has no index to return"

    def checked_axis(self, x: np.ndarray) -> int:
        axis = normalize_axis(self.name, self.axis, x.ndim)
        if x.shape[axis] == 0:
            raise RuntimeShapeError(self.empty_axis_message(axis, x.shape), op=self.name)
        return axis


class ArgMax(ArgReduction):
    """Index of the largest element along `axis`."""

    name = "argmax"

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(x, axis=self.checked_axis(x)).astype(self.dtype.np)


class ArgMin(ArgReduction):
    """Index of the smallest element along `axis`."""

    name = "argmin"

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.argmin(x, axis=self.checked_axis(x)).astype(self.dtype.np)
