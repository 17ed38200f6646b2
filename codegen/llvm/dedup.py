"""Note [kernels emitted once]: fusion ops that would be emitted as the same LLVM function share one.

An unrolled RNN is hundreds of kernels and a handful of distinct ones: each step's matmul with
its bias and tanh is the same code, reading other buffers. Building each with llvmlite and printing
it cost more than LLVM compiling the distinct ones (Note [kernels compiled apart] in split.py
dedups only after that). So the entry point calls the first such kernel's function for each later
one that `kernel_key` finds equal.

The key holds everything an emitter reads: the fusion op's kind and attributes (the schedule),
its region op by op (names, attributes, types, which value each operand is), the dims slot of
every unknown dim of every value (Note [dims vector] in kernel.py), which results share an
operand's buffer, whether each result is read outside (a product's epilogue may skip storing it),
and the one-step flag (Note [one step]). Kernels whose code names their own number (a run-time
index check reports it) or whose launch emits functions of its own (a "single" kernel's index
check, a split-k product's slices) are never shared: `kernel_key` is None for them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowc.ir import Operation, Value

from .program import DimTable, schedule_of


def kernel_key(op: Operation, dims: DimTable, shared: set[tuple[int, int]], one_step: bool) -> tuple | None:
    """What makes `op`'s LLVM function what it is; None: emit it on its own."""
    if op.kind not in ("loop", "reduction", "matmul") or schedule_of(op)["schedule"] == "split_k":
        return None
    block = op.regions[0].entry
    number: dict[Value, int] = {}

    def described(value: Value) -> tuple:
        return value.type, tuple(dims.slots.get((value, axis)) for axis in range(value.type.rank))

    items: list[Any] = [op.kind, _frozen(op.attributes), tuple(sorted(shared)), one_step,
                        tuple(bool(result.uses) for result in op.results),
                        tuple(described(value) for value in (*op.operands, *op.results))]
    for argument in block.args:
        number[argument] = len(number)
        items.append(described(argument))
    for inner in block.ops:
        if inner.regions or any(value not in number for value in inner.operands):
            return None
        items.append((inner.name, _frozen(inner.attributes), tuple(number[value] for value in inner.operands),
                      tuple(described(result) for result in inner.results)))
        for result in inner.results:
            number[result] = len(number)
    return tuple(items)


def _frozen(attributes: dict[str, Any]) -> tuple:
    """Attributes as a hashable value (arrays by dtype, shape and bytes)."""
    return tuple((name, _value(value)) for name, value in sorted(attributes.items()))


def _value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return "array", value.dtype.str, value.shape, value.tobytes()
    if isinstance(value, (list, tuple)):
        return tuple(_value(item) for item in value)
    if isinstance(value, dict):
        return _frozen(value)
    return value
