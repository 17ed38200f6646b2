"""The scalar computation of a kernel's region at one point of its iteration space."""

from __future__ import annotations

from typing import Callable

from llvmlite import ir as ll

from flowc.ir import BlockArgument, Value

from .elementwise import LLVM_EMITTERS
from .types import compute_type, constant_of, rounded

# Ops that only re-index: at a point of the iteration space they are their operand.
PASS_THROUGH = ("broadcast_to",)


class Body:
    """Computes region values on demand, each once, at the current point.

    `load` reads a block argument (or a value in `loaded`) at the current point; `env` may be seeded
    with values computed elsewhere (a reduction's result, hoisted out of the
    loop that reads it).
    """

    def __init__(self, b: ll.IRBuilder, load: Callable[[Value], ll.Value],
                 env: dict[Value, ll.Value] | None = None, loaded: set[Value] | None = None,
                 lanes: int | None = None):
        self.b = b
        self.load = load
        self.env: dict[Value, ll.Value] = dict(env or {})
        self.loaded = loaded  # values read from memory; None: the block arguments
        self.lanes = lanes  # computing `lanes` points at once, as vectors (constants splatted); None: scalars

    def value(self, value: Value) -> ll.Value:
        stack = [value]
        while stack:  # iterative, so long elementwise chains do not hit Python's recursion limit
            current = stack[-1]
            if current in self.env:
                stack.pop()
                continue
            if current in self.loaded if self.loaded is not None else isinstance(current, BlockArgument):
                self.env[current] = self.load(current)
                stack.pop()
                continue
            missing = [v for v in current.op.operands if v not in self.env]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            self.env[current] = self._emit(current)
        return self.env[value]

    def _emit(self, value: Value) -> ll.Value:
        op = value.op
        if op.name == "constant":
            array = op.value
            scalar = compute_type(value.type.dtype)
            return constant_of(ll.VectorType(scalar, self.lanes) if self.lanes else scalar, array.reshape(-1)[0].item())
        operands = [self.env[v] for v in op.operands]
        if op.name in PASS_THROUGH:
            return operands[0]
        # A float16 result rounded to half before anything reads it (Note [float16 on the CPU])
        return rounded(self.b, LLVM_EMITTERS[op.name](self.b, op, operands), value.type.dtype)
