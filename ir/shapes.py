"""Concrete shapes of every value of a function, for one set of argument shapes.

The same type rules that run at compile time run here on concrete shapes,
so a compiled function whose types have unknown dims learns every size it
needs (loop bounds, buffer sizes) from the fed shapes, without being
compiled again. Callers cache the result per set of argument shapes.

Compiled kernels read an operand whose dim is unknown at compile time as
moving along that axis, never as broadcast; `check_no_hidden_broadcast`
turns a run-time size that would need a broadcast there into an error
instead of an out-of-bounds read.
"""

from __future__ import annotations

from typing import Sequence

from .core import Block, Function, Operation, Value
from .errors import FlowcError, RuntimeShapeError
from .types import TensorType

Shapes = dict[Value, tuple[int, ...]]


def propagate_shapes(function: Function, arg_shapes: Sequence[tuple[int, ...]]) -> Shapes:
    shapes: Shapes = {}
    _propagate_block(function.entry, arg_shapes, shapes)
    return shapes


def _propagate_block(block: Block, arg_shapes: Sequence[tuple[int, ...]], shapes: Shapes) -> list[tuple[int, ...]]:
    for arg, shape in zip(block.args, arg_shapes, strict=True):
        shapes[arg] = tuple(shape)
    for op in block.ops:
        operand_shapes = [shapes[v] for v in op.operands]
        if op.is_terminator:
            return operand_shapes
        for result, shape in zip(op.results, _result_shapes(op, operand_shapes, shapes)):
            shapes[result] = shape
    return []


def _result_shapes(op: Operation, operand_shapes: list[tuple[int, ...]], shapes: Shapes) -> list[tuple[int, ...]]:
    if op.regions:
        if op.name != "fusion":
            raise FlowcError(f"cannot size the results of {op.name} before running it", op=op.display_name,
                             where=op.loc)
        return _propagate_block(op.regions[0].entry, operand_shapes, shapes)
    run_time_shape = getattr(op, "run_time_shape", None)  # relax_shape: its type forgets what its value has
    if run_time_shape is not None:
        return [run_time_shape(*operand_shapes)]
    types = [TensorType(v.type.dtype, s) for v, s in zip(op.operands, operand_shapes)]
    try:
        inferred = op.infer_type(*types)
    except FlowcError as error:
        raise RuntimeShapeError(f"at run time: {error.detail}", op=op.display_name, where=op.loc) from None
    inferred = [inferred] if isinstance(inferred, TensorType) else list(inferred)
    return [tuple(int(d) for d in t.shape) for t in inferred]  # type: ignore[arg-type]


def check_no_hidden_broadcast(op: Operation, shapes: Shapes) -> None:
    """Inside a kernel: an operand dim unknown at compile time must equal the result's dim at run time."""
    for nested in op.walk():
        if not nested.results or nested.regions or not (nested.elementwise or nested.name in ("matmul", "broadcast_to")):
            continue
        result = nested.results[0]
        batch = 2 if nested.name == "matmul" else 0
        for operand in nested.operands:
            _check_operand(nested, operand, result, batch, shapes)


def _check_operand(op: Operation, operand: Value, result: Value, skip_trailing: int, shapes: Shapes) -> None:
    offset = result.type.rank - operand.type.rank
    for axis in range(operand.type.rank - skip_trailing):
        if operand.type.shape[axis] is None and shapes[operand][axis] != shapes[result][axis + offset]:
            raise RuntimeShapeError(
                f"operand of shape {list(shapes[operand])} would broadcast along axis {axis} to "
                f"{list(shapes[result])}; compiled code needs a dim unknown at build time (None) to match at run "
                "time: to broadcast it, make it a static 1 (in the placeholder's shape, or with fc.reshape)", op=op.display_name, where=op.loc)
