"""Run-time checks: `check` stops a run where a condition is false (fc.debugging.assert_*,
fc.check_numerics).

The op is impure, so DCE keeps it though nobody reads its result (the front end reaches it through a
control dependency, as TF1's asserts are used). Its result is a copy of the condition, there only so
the op has a value to fuse and plan like any other; it is never differentiated.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import FlowcError
from ..op import Op
from ..types import DType, TensorType, bool_


class CheckFailed(FlowcError, ValueError):
    """A run-time check (an assert, check_numerics) found its condition false; TF1's InvalidArgumentError."""


def failure_message(message: str, index: int) -> str:
    """What a failed check says, the same from the reference target and the CPU's error slots."""
    return f"{message} (the condition is false at element {index}, in row-major order)"


class Check(Op):
    """The condition, unchanged; a run where any element is false stops with CheckFailed(message)."""

    name = "check"
    attrs = {"message": str}
    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = (bool_,)
    pure = False  # its effect is the error: never removed, folded or merged
    foldable = False
    differentiable = False

    def infer_type(self, condition: TensorType) -> TensorType:
        self.check_dtype(condition, "condition")
        return condition

    def reference(self, condition: np.ndarray) -> np.ndarray:
        false = np.flatnonzero(~condition.reshape(-1))
        if false.size:
            raise CheckFailed(failure_message(self.message, int(false[0])), op=self.name)
        return condition.copy()
