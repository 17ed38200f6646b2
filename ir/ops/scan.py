"""Scans along one axis: cumsum and cumprod, with TensorFlow's `exclusive` and `reverse`.

result[..., i, ...] combines x[..., j, ...] for j <= i (j < i when `exclusive`; j >= i, or j > i,
when `reverse`), in the order of j along the walk, in the operand's dtype. An exclusive scan
starts from the identity (0 for cumsum, 1 for cumprod), so its first element is the identity.
The CPU walks each line along the axis serially (codegen/llvm/kernels/scan.py), as numpy's
cumsum does, so float results agree with the reference bit for bit.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..op import Op, normalize_axis
from ..types import NUMERIC, DType, TensorType


class Scan(Op):
    """A running combination of `x` along `axis` (see the module docstring)."""

    attrs = {"axis": int, "exclusive": bool, "reverse": bool}
    defaults = {"exclusive": False, "reverse": False}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = NUMERIC
    identity: ClassVar[int] = 0
    ufunc: ClassVar[Any] = np.add

    def infer_type(self, x: TensorType) -> TensorType:
        self.check_dtype(x)
        normalize_axis(self.name, self.axis, x.rank)
        return x

    def scan_axis(self) -> int:
        """The axis, non-negative."""
        return normalize_axis(self.name, self.axis, self.operands[0].type.rank)

    def reference(self, x: np.ndarray) -> np.ndarray:
        axis = normalize_axis(self.name, self.axis, x.ndim)
        walked = np.flip(x, axis) if self.reverse else x
        if self.exclusive and x.shape[axis] > 0:
            first = np.full_like(np.take(walked, [0], axis=axis), self.identity)
            walked = np.concatenate([first, np.take(walked, np.arange(x.shape[axis] - 1), axis=axis)], axis=axis)
        with np.errstate(all="ignore"):  # overflow to inf (or wrapping integers) is the meaning
            result = type(self).ufunc.accumulate(walked, axis=axis, dtype=x.dtype)
        return np.ascontiguousarray(np.flip(result, axis) if self.reverse else result)


class Cumsum(Scan):
    """Running sum along `axis`."""

    name = "cumsum"


class Cumprod(Scan):
    """Running product along `axis`."""

    name = "cumprod"
    identity = 1
    ufunc = np.multiply
