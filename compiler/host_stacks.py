"""Stacks of entries of any shape kept on the host, for programs run in pieces from it.

A stack op (stack_push, stack_read: Note [stacks of entries of any shape] in ir/ops/stacks.py) is
the gradient of a loop whose values change shape. The cpu target runs every loop that holds one
from the host (passes/host_driven.py marks it), and each stack op is a piece of its own between the
native pieces (compiler/host_driven.py's _host_op): the stack is a HostStack, a Python list of the
entries' arrays, never the byte form the reference target computes, so a push or a read costs O(1)
rather than a copy of the stack. Native code never sees a stack: only these pieces and the loops'
state lists carry one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flowc.ir import Operation
from flowc.ir.ops.stacks import entries, read_entry


@dataclass(frozen=True)
class HostStack:
    """The first `size` arrays of `arrays`. A push onto the top of its list appends to it and shares it: a stack
    is pushed once per turn in the recording loop, so that is the one case to make cheap; a push onto a stack
    that another push already grew copies the list, which keeps every stack value what it was (SSA values are
    never changed in place, and CSE may give one stack two users)."""

    arrays: list[np.ndarray]
    size: int

    def pushed(self, value: np.ndarray) -> HostStack:
        arrays = self.arrays if len(self.arrays) == self.size else self.arrays[:self.size]
        arrays.append(np.array(value))  # a copy: an argument of the run, say, must not change under the stack
        return HostStack(arrays, self.size + 1)

    def clone(self) -> HostStack:
        """Itself: no push changes a stack value (a run cut at a data-dependent count copies a value it passes
        through with clone(), as it does a device tensor: compiler/data_sized_run.py's _fresh)."""
        return self


def as_host_stack(stack: Any, dtype: np.dtype, rank: int) -> HostStack:
    """`stack` as a HostStack: one already, or the byte form a native piece computed (the empty constant)."""
    if isinstance(stack, HostStack):
        return stack
    arrays = entries(np.asarray(stack), rank, dtype)
    return HostStack(arrays, len(arrays))


@dataclass
class StackOp:
    """A stack_push or stack_read run on the host, reading and writing the pieces' environment."""

    op: Operation

    def run(self, env: dict) -> None:
        stack, operand = (env[v] for v in self.op.operands)
        if self.op.name == "stack_push":
            env[self.op.result] = as_host_stack(stack, operand.dtype, operand.ndim).pushed(operand)
            return
        host = as_host_stack(stack, self.op.dtype.np, len(self.op.shape))
        env[self.op.result] = read_entry(self.op.display_name, host.arrays, operand, host.size, self.op.loc)

    def close(self) -> None:
        pass
