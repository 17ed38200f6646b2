"""Ops that only the autodiff pass gives a meaning: `gradients` and `stop_gradient`.

Note [gradient requests]
`gradients %ys..., %xs..., %grad_ys... {num_ys = N, num_xs = M}` asks for
the gradient of sum_i sum(grad_ys[i] * ys[i]) with respect to each x: one
result per x, of the x's type. Without grad_ys (the operands end after the
xs) each y is weighted by ones. A request has no numpy meaning of its own:
the autodiff pass (passes/autodiff) replaces it by the reverse-mode
derivative of the ops that compute the ys from the xs, before anything else
runs, whatever the optimization level. Requests are expanded in block order,
so a request whose ys depend on another's results (a second derivative)
sees that one already expanded into ordinary ops: a request is never
differentiated itself.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import FlowcError, FlowcTypeError
from ..op import Op
from ..types import DTYPES, DType, TensorType


class Gradients(Op):
    """A gradient request: Note [gradient requests]."""

    name = "gradients"
    attrs = {"num_ys": int, "num_xs": int}
    differentiable = False  # expanded before any request that depends on it
    foldable = False  # no reference to fold with

    def infer_type(self, *types: TensorType) -> tuple[TensorType, ...]:
        ys, xs, grad_ys = self.split(list(types))
        for what, group in (("y", ys), ("x", xs), ("grad_y", grad_ys)):
            for index, t in enumerate(group):
                if not t.dtype.is_float:
                    raise FlowcTypeError(f"{what} {index} must be float16, float32 or float64, got {t}",
                                         op=self.name)
        for index, (y, seed) in enumerate(zip(ys, grad_ys)):
            if not compatible(y, seed):
                raise FlowcTypeError(f"grad_y {index} must have the type of y {index} ({y}), got {seed}",
                                     op=self.name)
        return tuple(xs)

    def split(self, operands: list) -> tuple[list, list, list]:
        """(ys, xs, grad_ys) of a list laid out like the operands; grad_ys is [] when not given."""
        ys, xs = self.num_ys, self.num_xs
        if ys < 1 or xs < 1 or len(operands) not in (ys + xs, 2 * ys + xs):
            raise FlowcTypeError(f"takes {ys} ys, {xs} xs and optionally {ys} grad_ys (num_ys, num_xs >= 1), "
                                 f"got {len(operands)} operands", op=self.name)
        return operands[:ys], operands[ys:ys + xs], operands[ys + xs:]

    def reference(self, *operands: np.ndarray) -> np.ndarray:
        raise FlowcError("a gradient request has no value of its own; the autodiff pass expands it",
                         op=self.name)


class StopGradient(Op):
    """x itself; autodiff lets no gradient through it (tf.stop_gradient), then removes it."""

    name = "stop_gradient"
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES
    differentiable = False  # the point of the op: its gradient is zero

    def infer_type(self, x: TensorType) -> TensorType:
        return x

    def reference(self, x: np.ndarray) -> np.ndarray:
        return np.array(x, copy=True)  # a fresh result, as identity: Note [fresh results] in shape.py


def compatible(a: TensorType, b: TensorType) -> bool:
    """Same dtype and rank, and every dim equal where both are known."""
    return a.dtype == b.dtype and a.rank == b.rank and all(
        x is None or y is None or x == y for x, y in zip(a.shape, b.shape))
