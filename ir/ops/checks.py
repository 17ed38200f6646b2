"""Run-time checks: `check` stops a run where a condition is false (fc.debugging.assert_*,
fc.check_numerics); and `print`, which hands a value to the front end as the run goes (fc.Print
inside control flow, Note [printing inside control flow]).

The op is impure, so DCE keeps it though nobody reads its result (the front end reaches it through a
control dependency, as TF1's asserts are used). Its result is a copy of the condition, there only so
the op has a value to fuse and plan like any other; it is never differentiated.
"""

from __future__ import annotations

from typing import Callable, ClassVar

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


# Note [printing inside control flow]
# fc.Print and fc.print at the top level of a run print after it, from fetched values (Note [printing
# from a run] in compiler/debugging.py). Inside a while body, a cond branch or an fc.function the values
# of each turn are never results, so there the front end lowers each tensor to print into a `print` op:
# a copy of its operand that, where it runs, hands the value to PRINT_HANDLERS[0] with the op's `key`
# (which front-end spec prints it), `part` (which of the spec's `parts` tensors it is) and the array.
# The handler prints once the last part of a spec has come: so once per turn, in the order the turns
# run. The reference target calls the handler from `reference`; the CPU's code calls flowc_print in the
# support library (runtime/native/flowc_rt.c), which calls back into Python (runtime/printing.py). The
# op is impure: never folded, merged, hoisted out of its loop or removed.

# The dtype codes of the values flowc_print passes (codegen/llvm/kernels/checks.py, runtime/printing.py).
PRINT_DTYPES = ("float32", "float64", "int32", "int64", "bool", "float16", "uint8", "int8", "int16")

PrintHandler = Callable[[int, int, int, np.ndarray], None]
PRINT_HANDLERS: list[PrintHandler] = []  # the front end's, set when fc.Print is first used in a sub-graph


def deliver_print(key: int, part: int, parts: int, value: np.ndarray) -> None:
    """Hand one printed value to the front end's handler (none: nothing prints, as in an exported library)."""
    for handler in PRINT_HANDLERS[:1]:
        handler(key, part, parts, value)


class Print(Op):
    """Its operand, unchanged; each time it runs, the value goes to the print handler (Note [printing
    inside control flow])."""

    name = "print"
    attrs = {"key": int, "part": int, "parts": int}
    num_operands = 1
    pure = False
    foldable = False
    differentiable = False

    def infer_type(self, value: TensorType) -> TensorType:
        return value

    def reference(self, value: np.ndarray) -> np.ndarray:
        deliver_print(self.key, self.part, self.parts, value.copy())
        return value.copy()
