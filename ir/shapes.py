"""Concrete shapes of every value of a function, for one set of argument shapes.

The same type rules that run at compile time run here on concrete shapes,
so a compiled function whose types have unknown dims learns every size it
needs (loop bounds, buffer sizes) from the fed shapes, without being
compiled again. Callers cache the result per set of argument shapes.

Compiled kernels read an operand whose dim is unknown at compile time as
moving along that axis, never as broadcast; `check_no_hidden_broadcast`
turns a run-time size that would need a broadcast there into an error
instead of an out-of-bounds read.

Note [fixed shapes in control flow]
Compiled code gives each value one size per set of fed shapes, the same on
every turn of a loop and whichever branch runs: a `cond`'s result takes the
shape both branches yield, a `while`'s state the shape of its initial values.
Both regions of a cond (and a while's cond and body) are sized here, once,
without running them; a cond whose branches yield different shapes, or a
loop body that yields a state of another shape than it took, cannot live in
that storage and is refused (UnsupportedOpError) before any code runs, rather
than run wrong. By induction the sizes then hold on every turn, which is what
lets DimTies tie a loop's state to its initial values (ir/ops/fusion.py).
A Session or fc.jit on the cpu target never brings this check a loop whose
values change, or a cond whose branches differ, where its mark-host-driven
pass can see it: such a loop or cond runs from the host instead (Notes [loops
driven from the host] and [conds driven from the host] in
compiler/host_driven.py).
"""

from __future__ import annotations

from typing import Sequence

from .core import Block, Function, Operation, Value
from .errors import FlowcError, RuntimeShapeError, UnsupportedOpError
from .types import TensorType

Shapes = dict[Value, tuple[int, ...]]


def propagate_shapes(function: Function, arg_shapes: Sequence[tuple[int, ...]],
                     target: str = "compiled code") -> Shapes:
    """Every value's shape; `target` names who needs fixed shapes in control flow, for its errors."""
    shapes: Shapes = {}
    _propagate_block(function.entry, arg_shapes, shapes, target)
    return shapes


def block_shapes(block: Block, arg_shapes: Sequence[tuple[int, ...]], data_size: int) -> list[tuple[int, ...]]:
    """The shapes `block` yields for arguments of `arg_shapes` (a loop body's next state, say), a dim that
    only the data sizes (data_dim's: Note [data-dependent sizes] in data_sized_run.py, or one that a nested
    loop changes from turn to turn) taken as `data_size`."""
    return _propagate_block(block, arg_shapes, {}, "compiled code", data_size)


def _propagate_block(block: Block, arg_shapes: Sequence[tuple[int, ...]], shapes: Shapes,
                     target: str, data_size: int | None = None) -> list[tuple[int, ...]]:
    for arg, shape in zip(block.args, arg_shapes, strict=True):
        shapes[arg] = tuple(shape)
    for op in block.ops:
        operand_shapes = [shapes[v] for v in op.operands]
        if op.is_terminator:
            return operand_shapes
        for result, shape in zip(op.results, _result_shapes(op, operand_shapes, shapes, target, data_size)):
            shapes[result] = shape
    return []


def _result_shapes(op: Operation, operand_shapes: list[tuple[int, ...]], shapes: Shapes,
                   target: str, data_size: int | None = None) -> list[tuple[int, ...]]:
    if op.name == "cond":
        return _cond_shapes(op, operand_shapes, shapes, target, data_size)
    if op.name == "while":
        return _while_shapes(op, operand_shapes, shapes, target, data_size)
    if op.regions:
        if op.name != "fusion":
            raise FlowcError(f"cannot size the results of {op.name} before running it", op=op.display_name,
                             where=op.loc)
        return _propagate_block(op.regions[0].entry, operand_shapes, shapes, target, data_size)
    run_time_shape = getattr(op, "run_time_shape", None)  # relax_shape: its type forgets what its value has
    if run_time_shape is not None:
        return [run_time_shape(*operand_shapes)]
    types = [TensorType(v.type.dtype, s) for v, s in zip(op.operands, operand_shapes)]
    try:
        inferred = op.infer_type(*types)
    except FlowcError as error:
        raise RuntimeShapeError(f"at run time: {error.detail}", op=op.display_name, where=op.loc) from None
    inferred = [inferred] if isinstance(inferred, TensorType) else list(inferred)
    if data_size is not None:  # block_shapes: a dim the type rules leave unknown is the data's
        return [tuple(data_size if d is None else int(d) for d in t.shape) for t in inferred]
    return [tuple(int(d) for d in t.shape) for t in inferred]  # type: ignore[arg-type]


def _cond_shapes(op: Operation, operand_shapes: list[tuple[int, ...]], shapes: Shapes,
                 target: str, data_size: int | None = None) -> list[tuple[int, ...]]:
    """Note [fixed shapes in control flow]: both branches, which must agree."""
    then, other = (_propagate_block(region.entry, operand_shapes[1:], shapes, target, data_size)
                   for region in op.regions)
    if data_size is not None:  # block_shapes: which branch runs is data, so a dim they disagree on is too
        return [a if a == b or len(a) != len(b) else tuple(x if x == y else data_size for x, y in zip(a, b))
                for a, b in zip(then, other)]
    for index, (a, b) in enumerate(zip(then, other)):
        if a != b:
            raise UnsupportedOpError(
                f"{target} does not run this cond: its result {index} would be {list(a)} from the then branch and "
                f"{list(b)} from the else branch, and compiled code sizes a result before the branch is chosen; "
                "make both branches yield the same shape, or use target 'reference'", op=op.display_name,
                where=op.loc)
    return then


def _while_shapes(op: Operation, operand_shapes: list[tuple[int, ...]], shapes: Shapes,
                  target: str, data_size: int | None = None) -> list[tuple[int, ...]]:
    """Note [fixed shapes in control flow]: the body must give the state back at the shapes it took."""
    condition, body = op.regions
    _propagate_block(condition.entry, operand_shapes, shapes, target, data_size)
    after = _propagate_block(body.entry, operand_shapes, shapes, target, data_size)
    if data_size is not None:  # block_shapes: a dim that a turn changes ends at a size only the run gives
        return [tuple(d if d == t else data_size for d, t in zip(before, turned))
                for before, turned in zip(operand_shapes, after)]
    for index, (before, turned) in enumerate(zip(operand_shapes, after)):
        if tuple(before) != turned:
            raise UnsupportedOpError(
                f"{target} does not run this while loop: loop value {index} enters as {list(before)} and the body "
                f"yields it as {list(turned)}; compiled code keeps loop values in storage of one size for the "
                "whole loop, so a loop value may not change its shape between iterations (keep it at one shape, "
                "e.g. by padding to a maximum size, or use target 'reference')", op=op.display_name, where=op.loc)
    return [tuple(s) for s in operand_shapes]


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
