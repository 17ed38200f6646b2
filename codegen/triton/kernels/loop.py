"""Loop kernels, schedule "blocks": one program per `block` elements of the result, masked at the tail.

Every value a loop kernel yields has the result shape S (Note [kernel contract]
in ir/ops/fusion.py), so a program takes `block` consecutive flat offsets of S
and computes the whole region there:

    @triton.jit
    def k0(in0, in1, out0, n0, n1, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inside = offsets < tl.full([], 1, tl.int64) * n0 * n1
        i1 = offsets % n1
        i0 = offsets // n1
        a0 = tl.load(in0 + offsets, mask=inside)     # f32[?,?]: the result's shape, flat offsets
        a1 = tl.load(in1 + i1, mask=inside)          # f32[?]: broadcast along axis 0
        v2 = (a0 + a1)
        tl.store(out0 + offsets, v2, mask=inside)

An operand reads at the multi-index of the result, numpy-aligned from the
right: a missing leading dim or a static 1 is broadcast (index 0), any other
dim moves with the result's (ir/shapes.py's check_no_hidden_broadcast makes
an unknown one equal the result's at run time). So every size in the
arithmetic is one of the result's extents, the kernel's only size parameters;
an operand that broadcasts nowhere reads at the flat offsets, with no
division. Offsets are int64 unless S is static and smaller than 2**31.
"""

from __future__ import annotations

import math

from flowc.ir import Operation, Value

from ..body import pointwise_lines
from ..kernel import Buffer, Extent, GridAxis, TritonKernel, emits

INT32_LIMIT = 2**31


@emits("loop", "blocks")
def emit_loop(op: Operation, name: str) -> TritonKernel:
    """The loop kernel `op` as one Triton function named `name` (module docstring)."""
    block = op.regions[0].entry
    shape = op.results[0].type.shape
    rank = len(shape)
    operands, results = len(op.operands), len(op.results)
    result_slot = operands  # every result has shape S: the first one's extents size everything
    extents = [f"n{axis}" for axis in range(rank)]
    wide = any(d is None for d in shape) or math.prod(shape) >= INT32_LIMIT
    lines = [_offsets_line(wide), f"inside = offsets < {_size_text(extents, wide)}"]
    used = [arg for arg in block.args if arg.uses]
    indexed = [axis for arg in used for axis in _broadcast_axes(arg.type.shape, shape) or ()]
    if indexed:
        lines += _index_lines(extents, min(indexed))
    names: dict[Value, str] = {}
    for arg in used:
        names[arg] = f"a{arg.index}"
        lines.append(f"a{arg.index} = {_load_text(f'in{arg.index}', arg.type.shape, shape, extents)}")
    lines += pointwise_lines(block.ops, names)
    for index, value in enumerate(block.terminator.operands):
        lines.append(f"tl.store(out{index} + offsets, {names[value]}, mask=inside)")
    pointers = [f"in{i}" for i in range(operands)] + [f"out{i}" for i in range(results)]
    parameters = tuple((p, Buffer(slot)) for slot, p in enumerate(pointers))
    parameters += tuple((n, Extent(result_slot, axis)) for axis, n in enumerate(extents))
    block_size = int(op.attributes["block"])
    signature = ", ".join([*pointers, *extents, "BLOCK: tl.constexpr"])
    source = f"@triton.jit\ndef {name}({signature}):\n" + "".join(f"    {line}\n" for line in lines)
    grid = (GridAxis(tuple(Extent(result_slot, axis) for axis in range(rank)), block_size),)
    return TritonKernel(name, source, parameters, grid, {"BLOCK": block_size})


def _offsets_line(wide: bool) -> str:
    program = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    return f"offsets = {program} * BLOCK + tl.arange(0, BLOCK)"


def _size_text(extents: list[str], wide: bool) -> str:
    """The number of elements of S. Starting from an int64 0-d tensor keeps the product in int64 (an
    extent may arrive as a Python int the JIT made a constant, e.g. 1)."""
    first = ["tl.full([], 1, tl.int64)"] if wide else ["1"]
    return " * ".join(first + extents)


def _index_lines(extents: list[str], lowest: int) -> list[str]:
    """The result's multi-index i{lowest} .. i{r-1} from the flat offsets, last axis fastest."""
    lines, rest = [], "offsets"
    for axis in reversed(range(lowest, len(extents))):
        if axis == 0:
            lines.append(f"i0 = {rest}")
            break
        lines.append(f"i{axis} = {rest} % {extents[axis]}")
        if axis > lowest:
            lines.append(f"q{axis} = {rest} // {extents[axis]}")
            rest = f"q{axis}"
    return lines


def _broadcast_axes(operand: tuple, result: tuple) -> list[int] | None:
    """The result axes along which an operand of this static shape moves, None when it reads at the
    flat offsets (it broadcasts nowhere: every dim it lacks or has as 1 is a static 1 of the result)."""
    offset = len(result) - len(operand)
    moving = [offset + axis for axis, dim in enumerate(operand) if dim != 1]
    if all(result[axis] == 1 for axis in range(len(result)) if axis not in moving):
        return None
    return moving


def _load_text(pointer: str, operand: tuple, result: tuple, extents: list[str]) -> str:
    moving = _broadcast_axes(operand, result)
    if moving is None:
        return f"tl.load({pointer} + offsets, mask=inside)"
    if not moving:  # one element, read by every program: no mask needed (S is not empty, or no launch)
        return f"tl.load({pointer})"
    # Horner over the operand's moving axes: ((i_a * n_b + i_b) * n_c + i_c) ...
    offset = f"i{moving[0]}"
    for axis in moving[1:]:
        offset = f"({offset} * {extents[axis]} + i{axis})"
    return f"tl.load({pointer} + {offset}, mask=inside)"
