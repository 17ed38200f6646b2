"""Ops that move elements without computing: reshape, transpose, concat,
ensure_shape, relax_shape, expand_dims, squeeze, broadcast_to. Every dtype, bool included.

Note [fresh results]: a reference result never aliases an operand (hence the
`.copy()` after numpy calls that may return views). The runtime writes
variables back in place, so a fetched view of a variable would change after
the run that produced it.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import FlowcTypeError, RuntimeShapeError
from ..op import Op, normalize_axes, normalize_axis
from ..types import Dim, TensorType


class Reshape(Op):
    """The elements of x in row-major order, laid out as `shape`.

    At most one entry of `shape` is -1: it takes whatever the others leave.
    With unknown input dims that entry is unknown until run time.
    """

    name = "reshape"
    is_view = True
    attrs = {"shape": tuple[int, ...]}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        target = self.shape
        if any(d < -1 for d in target) or target.count(-1) > 1:
            raise FlowcTypeError(f"shape {list(target)} may hold one -1, other dims must be >= 0", op=self.name)
        known = math.prod(d for d in target if d != -1)
        if x.size is None:
            self.check_partial(x, known)
            return x.with_shape(None if d == -1 else d for d in target)
        if -1 in target:
            if known == 0 or x.size % known:
                raise self.mismatch(x, f"{x.size} elements do not fill dims of {known} elements")
            return x.with_shape(x.size // known if d == -1 else d for d in target)
        if known != x.size:
            raise self.mismatch(x, f"{x.size} elements, not {known}")
        return x.with_shape(target)

    def check_partial(self, x: TensorType, known: int) -> None:
        """With unknown input dims, reject only counts that no run-time size can match."""
        if -1 in self.shape:
            return
        fixed = math.prod(d for d in x.shape if d is not None)
        if (fixed == 0 and known != 0) or (fixed != 0 and known % fixed):
            raise self.mismatch(x, f"{known} elements is not a multiple of {fixed}")

    def mismatch(self, x: TensorType, why: str) -> FlowcTypeError:
        return FlowcTypeError(f"cannot reshape {x} to {list(self.shape)}: {why}", op=self.name)

    def reference(self, x: np.ndarray) -> np.ndarray:
        try:
            return x.reshape(self.shape).copy()
        except ValueError:
            raise RuntimeShapeError(
                f"cannot reshape an array of shape {list(x.shape)} ({x.size} elements) to {list(self.shape)}",
                op=self.name,
            ) from None


class Transpose(Op):
    """x with its dims permuted: result dim i is x's dim perm[i]."""

    name = "transpose"
    attrs = {"perm": tuple[int, ...]}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        if sorted(self.perm) != list(range(x.rank)):
            raise FlowcTypeError(
                f"perm {list(self.perm)} is not a permutation of {list(range(x.rank))} (operand {x})", op=self.name
            )
        return x.with_shape(x.shape[p] for p in self.perm)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.transpose(x, self.perm).copy()


class Concat(Op):
    """The operands joined along `axis`; they agree in dtype, rank and every other dim."""

    name = "concat"
    attrs = {"axis": int}
    num_operands = None  # variadic, at least one

    def infer_type(self, *xs: TensorType) -> TensorType:
        if not xs:
            raise FlowcTypeError("takes at least one operand", op=self.name)
        shown = ", ".join(str(t) for t in xs)
        if len({t.dtype for t in xs}) > 1 or len({t.rank for t in xs}) > 1:
            raise FlowcTypeError(f"operands must have one dtype and one rank, got {shown}", op=self.name)
        axis = normalize_axis(self.name, self.axis, xs[0].rank)
        shape = [None if i == axis else self.merge(i, [t.shape[i] for t in xs], shown) for i in range(xs[0].rank)]
        dims = [t.shape[axis] for t in xs]
        shape[axis] = None if None in dims else sum(d for d in dims if d is not None)
        return xs[0].with_shape(shape)

    def merge(self, axis: int, dims: list[Dim], shown: str) -> Dim:
        """The common size of a dim off the concat axis; None matches anything."""
        known = {d for d in dims if d is not None}
        if len(known) > 1:
            raise FlowcTypeError(f"dim {axis} differs between operands {shown}", op=self.name)
        return known.pop() if known else None

    def reference(self, *xs: np.ndarray) -> np.ndarray:
        try:
            return np.concatenate(xs, axis=self.axis)
        except ValueError:
            shapes = ", ".join(str(list(x.shape)) for x in xs)
            raise RuntimeShapeError(f"cannot concatenate shapes {shapes} on axis {self.axis}", op=self.name) from None


class EnsureShape(Op):
    """x itself, with the dims that `shape` gives known (-1: whatever x's is), as TensorFlow's
    ensure_shape. A static dim of x must agree when the graph is built, an unknown one when it runs.

    Gradient rules use it to give a gradient its value's type where a slice or a concat lost a size
    that the rule knows (passes/autodiff/build.py, refine_type); compiled code reads it as a view.
    """

    name = "ensure_shape"
    is_view = True
    attrs = {"shape": tuple[int, ...]}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        if len(self.shape) != x.rank or any(d < -1 for d in self.shape):
            raise FlowcTypeError(f"shape {list(self.shape)} must give one dim >= -1 per dim of {x}", op=self.name)
        for axis, (have, want) in enumerate(zip(x.shape, self.shape)):
            if want != -1 and have is not None and have != want:
                raise FlowcTypeError(f"{x} has {have} along axis {axis}, not {want}", op=self.name)
        return x.with_shape(d if want == -1 else want for d, want in zip(x.shape, self.shape))

    def reference(self, x: np.ndarray) -> np.ndarray:
        for axis, (have, want) in enumerate(zip(x.shape, self.shape)):
            if want != -1 and have != want:
                raise RuntimeShapeError(f"shape {list(x.shape)} has {have} along axis {axis}, not {want}",
                                        op=self.name)
        return x.copy()  # Note [fresh results]


class RelaxShape(Op):
    """x itself, its dims on `axes` unknown in the result's type: the inverse of ensure_shape.

    A type cannot otherwise forget a size: every unknown dim comes from a
    function argument. A while loop whose variable changes size (a shape
    invariant with None) starts from a value of known size, and its loop
    state's type must not know that size (compiler/control_flow_lowering.py).
    At run time the result has x's shape (`run_time_shape`, read by ir/shapes.py).
    Not folded: a folded constant would know the size again.
    """

    name = "relax_shape"
    is_view = True
    foldable = False
    attrs = {"axes": tuple[int, ...]}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        axes = normalize_axes(self.name, self.axes, x.rank)
        return x.with_shape(None if axis in axes else d for axis, d in enumerate(x.shape))

    def run_time_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(x_shape)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return x.copy()  # Note [fresh results]


class ExpandDims(Op):
    """x with a new dim of size 1 at `axis`, in [-rank-1, rank] (negative counts from the end)."""

    name = "expand_dims"
    is_view = True
    attrs = {"axis": int}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        if not -x.rank - 1 <= self.axis <= x.rank:
            raise FlowcTypeError(f"axis {self.axis} is out of range [{-x.rank - 1}, {x.rank}] for {x}", op=self.name)
        shape = list(x.shape)
        shape.insert(self.axis % (x.rank + 1), 1)
        return x.with_shape(shape)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.expand_dims(x, self.axis).copy()


class Squeeze(Op):
    """x without the dims `axes` (non-empty), each of which has size 1."""

    name = "squeeze"
    is_view = True
    attrs = {"axes": tuple[int, ...]}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        if not self.axes:
            raise FlowcTypeError("needs at least one axis", op=self.name)
        axes = normalize_axes(self.name, self.axes, x.rank)
        for axis in axes:
            if x.shape[axis] not in (1, None):  # an unknown dim is checked at run time
                raise FlowcTypeError(f"cannot squeeze axis {axis} of {x}: its size is not 1", op=self.name)
        return x.with_shape(d for i, d in enumerate(x.shape) if i not in axes)

    def reference(self, x: np.ndarray) -> np.ndarray:
        axes = normalize_axes(self.name, self.axes, x.ndim)
        for axis in axes:
            if x.shape[axis] != 1:
                raise RuntimeShapeError(
                    f"cannot squeeze axis {axis} of shape {list(x.shape)}: its size is not 1", op=self.name
                )
        return np.squeeze(x, axis=axes).copy()


class BroadcastTo(Op):
    """x broadcast to `shape` by numpy's rule: align from the right, size-1 dims stretch."""

    name = "broadcast_to"
    attrs = {"shape": tuple[int, ...]}
    num_operands = 1

    def infer_type(self, x: TensorType) -> TensorType:
        target: tuple[int, ...] = self.shape
        if any(d < 0 for d in target):
            raise FlowcTypeError(f"target shape {list(target)} has a negative dim", op=self.name)
        if x.rank > len(target):
            raise FlowcTypeError(f"cannot broadcast {x} to {list(target)}: rank {x.rank} > {len(target)}", op=self.name)
        for d, t in zip(reversed(x.shape), reversed(target)):
            if d not in (None, 1, t):  # an unknown dim must be 1 or t at run time
                raise FlowcTypeError(f"cannot broadcast {x} to {list(target)}: dim {d} is neither 1 nor {t}",
                                     op=self.name)
        return x.with_shape(target)

    def reference(self, x: np.ndarray) -> np.ndarray:
        try:
            return np.broadcast_to(x, self.shape).copy()  # a fresh, writable array: Note [fresh results]
        except ValueError:
            raise RuntimeShapeError(f"cannot broadcast shape {list(x.shape)} to {list(self.shape)}",
                                    op=self.name) from None
