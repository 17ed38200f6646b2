"""Single kernels that read elements picked by indices: gather, gather_nd, read_row, write_row, the
run-time assertion `check`, and where_indices, which writes them (ir/ops/indexing.py, dims.py, rows.py,
checks.py are the specification).

An index out of range is an error (IndexOutOfRange, or CheckFailed for a false check): the kernel
records it in its error flags (Note [error flags] in kernel.py), reads nothing out of bounds (a bad
index reads nothing, its element is 0), and the launcher raises after the run.

Note [indices of empty slices] (as the CPU's, codegen/llvm/kernels/single.py): a gather whose slices
hold no element has an empty result, yet an index out of range is still an error. The gathers here
run over index positions, not result elements, so every index is read and checked however small the
slices are; a row op's kernel runs at least one program (GridAxis.minimum), which checks the index.
"""

from __future__ import annotations

import math

from flowc.ir import Operation, Value

from ..kernel import Extent, GridAxis, TritonKernel, emits_single, single_op
from .single import BLOCK, SingleWriter, extents, load, output_elements

TILE = 1024  # elements a gather's program copies per step: BLOCK_I index positions by BLOCK_Q of a slice


def _tile(slice_size: int | None) -> tuple[int, int]:
    """(positions, slice elements) per step: a known slice length decides how wide a step is."""
    columns = 64 if slice_size is None else min(1 << max(slice_size - 1, 0).bit_length(), 256)
    return TILE // columns, columns


def _slice_size(value: Value, axes: range) -> int | None:
    dims = [value.type.shape[a] for a in axes]
    return None if None in dims else math.prod(dims)  # type: ignore[arg-type]


@emits_single("gather")
def emit_gather(op: Operation, name: str) -> TritonKernel:
    """result[p, i, q] = params[p, indices[i], q], over positions m = p * I + i (p: params' dims before
    the axis, i: the indices' elements, q: params' dims after it), BLOCK_I positions per program,
    each position's slice copied BLOCK_Q elements at a time."""
    inner = single_op(op)
    params, indices = inner.operands
    axis = inner.axis % params.type.rank
    writer = SingleWriter(op, name)
    outer, limit, slice_size = indexed_positions(writer, params, indices, axis, "readable")
    writer.lines.append(f"source = (p * {limit} + index) * {slice_size}")
    _copy_slices(writer, params, "source", f"offsets * {slice_size}", slice_size)
    return writer.kernel((indexed_grid(writer, params, indices, axis, outer, limit),))


def indexed_positions(writer: SingleWriter, table: Value, indices: Value, axis: int,
                      valid: str) -> tuple[str, str, str]:
    """The start of a kernel that takes (gather) or adds (scatter_add) `table`'s slices along `axis` at
    `indices`: positions m = p * I + i, BLOCK_I per program, each an index loaded and checked (`valid`
    names the mask of the in-range ones). Returns the texts of table's size before the axis, its size
    along it and its slice's size."""
    rows, columns = _tile(_slice_size(table, range(axis + 1, table.type.rank)))
    writer.constants.update(BLOCK_I=rows, BLOCK_Q=columns)
    outer = writer.size_of(table, range(axis))
    count = writer.size(indices)
    limit = writer.dim(table, axis)
    slice_size = writer.size_of(table, range(axis + 1, table.type.rank))
    lines = writer.lines
    lines.append("offsets = tl.program_id(0).to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)")
    lines.append(f"inside = offsets < {outer} * {count}")
    lines.append(f"p = offsets // tl.maximum({count}, 1)")
    lines.append(f"i = offsets % tl.maximum({count}, 1)")
    lines.append(f"index = tl.load({writer.pointer(indices)} + i, mask=inside, other=0).to(tl.int64)")
    lines.append(f"{valid} = inside & (index >= 0) & (index < {limit})")
    writer.fail_where(f"(index < 0) | (index >= {limit})", "index", "inside")
    return outer, limit, slice_size


def indexed_grid(writer: SingleWriter, table: Value, indices: Value, axis: int, outer: str, limit: str) -> GridAxis:
    """The end of such a kernel: the check of indices whose slices hold no element, and its grid."""
    if not outer.isdigit() or outer == "0":  # table's dims before the axis may hold no element
        _check_when_empty(writer, indices, outer, limit)
    return GridAxis((*_extents_of(writer, table, range(axis)), *extents(writer, indices)), writer.constants["BLOCK_I"],
                    minimum=1)


def _extents_of(writer: SingleWriter, value: Value, axes: range) -> tuple[Extent, ...]:
    return tuple(Extent(writer.slot(value), a) for a in axes)


def _copy_slices(writer: SingleWriter, params: Value, source: str, target: str, slice_size: str) -> None:
    """Lines copying each position's slice, `slice_size` elements from params at `source` to the result
    at `target`, where `readable` (the rest of the positions inside get 0)."""
    lines = writer.lines
    lines.append(f"for start in range(0, {slice_size}, BLOCK_Q):")
    lines.append("    q = start + tl.arange(0, BLOCK_Q)")
    lines.append(f"    column = q < {slice_size}")
    lines.append(f"    values = tl.load({writer.pointer(params)} + ({source})[:, None] + q[None, :], "
                 "mask=readable[:, None] & column[None, :], other=0)")
    result = writer.pointer(writer.op.results[0])
    lines.append(f"    tl.store({result} + ({target})[:, None] + q[None, :], values, "
                 "mask=inside[:, None] & column[None, :])")


def _check_when_empty(writer: SingleWriter, indices: Value, outer: str, limit: str) -> None:
    """Note [indices of empty slices]: with no position to copy (params' dims before the axis hold 0
    elements) the one program launched checks every index."""
    lines = writer.lines
    lines.append(f"if {outer} == 0:")
    lines.append(f"    for first in range(0, {writer.size(indices)}, BLOCK_I):")
    lines.append("        position = first + tl.arange(0, BLOCK_I)")
    lines.append(f"        among = position < {writer.size(indices)}")
    lines.append(f"        other = tl.load({writer.pointer(indices)} + position, mask=among, other=0).to(tl.int64)")
    lines.append(f"        wrong = among & ((other < 0) | (other >= {limit}))")
    errors = writer.errors()
    lines.append(f"        tl.store({errors} + position * 0, 1, mask=wrong)")
    lines.append(f"        tl.store({errors} + 1 + position * 0, other, mask=wrong)")


@emits_single("gather_nd")
def emit_gather_nd(op: Operation, name: str) -> TritonKernel:
    """result[i, q] = params[indices[i, 0], ..., indices[i, K-1], q], over the index vectors i."""
    inner = single_op(op)
    params, indices = inner.operands
    depth = indices.type.shape[-1]
    writer = SingleWriter(op, name)
    rows, columns = _tile(_slice_size(params, range(depth, params.type.rank)))
    writer.constants.update(BLOCK_I=rows, BLOCK_Q=columns)
    count = writer.size_of(indices, range(indices.type.rank - 1))
    slice_size = writer.size_of(params, range(depth, params.type.rank))
    lines = writer.lines
    lines.append("offsets = tl.program_id(0).to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)")
    lines.append(f"inside = offsets < {count}")
    lines.append("readable = inside")
    lines.append("source = offsets * 0")
    strides = writer.strides(params)
    for k in range(depth):
        limit = writer.dim(params, k)
        lines.append(f"index = tl.load({writer.pointer(indices)} + offsets * {depth} + {k}, mask=inside, "
                     "other=0).to(tl.int64)")
        writer.fail_where(f"(index < 0) | (index >= {limit})", "index", "inside")
        lines.append(f"readable = readable & (index >= 0) & (index < {limit})")
        lines.append(f"source = source + index * {strides[k]}")
    _copy_slices(writer, params, "source", f"offsets * {slice_size}", slice_size)
    grid = GridAxis(_extents_of(writer, indices, range(indices.type.rank - 1)), rows, minimum=1)
    return writer.kernel((grid,))


@emits_single("where_indices")
def emit_where_indices(op: Operation, name: str) -> TritonKernel:
    """One program walks cond in blocks of BLOCK elements, in order: a block's true elements take the rows
    after the blocks before (the running count plus the block's exclusive cumsum) and write their
    coordinates there. Its rows were counted before (Note [data-dependent sizes] in
    compiler/data_sized_run.py); a count that disagrees is an error (the count it found), and no row
    past the end is written."""
    inner = single_op(op)
    cond, rows = inner.operands
    writer = SingleWriter(op, name)
    writer.constants["BLOCK"] = BLOCK
    total, limit, rank = writer.size(cond), writer.dim(rows, 0), cond.type.rank
    dims = [d if d != "0" else "1" for d in writer.dims(cond)]  # no coordinate of an empty cond is computed
    strides = writer.strides(cond)
    out = writer.pointer(op.results[0])
    lines = writer.lines
    lines.append("row = tl.zeros([], tl.int64)")
    lines.append(f"for start in range(0, {total}, BLOCK):")
    lines.append("    offsets = start + tl.arange(0, BLOCK).to(tl.int64)")
    lines.append(f"    inside = offsets < {total}")
    lines.append(f"    flags = (tl.load({writer.pointer(cond)} + offsets, mask=inside, other=0) != 0) & inside")
    lines.append("    count = flags.to(tl.int64)")
    # tl.associative_scan and tl.reduce with Triton's combine, not tl.cumsum and tl.sum: those are @jit
    # functions of Triton's library, which the interpreter cannot run here (kernels/reduction.py's STANDARD)
    lines.append("    position = row + tl.associative_scan(count, 0, tl.standard._sum_combine) - count")
    lines.append(f"    write = flags & (position < {limit})")
    for axis in range(rank):
        coordinate = f"(offsets // ({strides[axis]})) % ({dims[axis]})"
        lines.append(f"    tl.store({out} + position * {rank} + {axis}, {coordinate}, mask=write)")
    lines.append("    row = row + tl.reduce(count, 0, tl.standard._sum_combine)")
    lines.append("offsets = tl.arange(0, BLOCK).to(tl.int64)")
    writer.fail_where(f"offsets * 0 + row != {limit}", "offsets * 0 + row", "offsets == 0")
    return writer.kernel((GridAxis((), 1, minimum=1),))


def _row_index(writer: SingleWriter, buffer: Value, index: Value) -> str:
    """Lines reading the row index once per block, flagging one outside [0, n) (from the first lane
    of the first program); the returned name is the index, 0 where it is bad."""
    rows = writer.dim(buffer, 0)
    lines = writer.lines
    lines.append(f"row = tl.load({writer.pointer(index)} + offsets * 0).to(tl.int64)")
    lines.append(f"bad_row = (row < 0) | (row >= {rows})")
    writer.fail_where("bad_row", "row", "offsets == 0")
    return "tl.where(bad_row, 0, row)"


@emits_single("read_row")
def emit_read_row(op: Operation, name: str) -> TritonKernel:
    inner = single_op(op)
    buffer, index = inner.operands

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        row = _row_index(writer, buffer, index)
        row_size = writer.size_of(buffer, range(1, buffer.type.rank))
        return (f"tl.load({writer.pointer(buffer)} + {row} * {row_size} + offsets, "
                f"mask=tl.where(bad_row, offsets < 0, {mask}), other=0)")

    return output_elements(op, name, value, minimum=1)


@emits_single("write_row")
def emit_write_row(op: Operation, name: str) -> TritonKernel:
    """A copy of the buffer, the value's elements in the row written."""
    inner = single_op(op)
    buffer, index, row_value = inner.operands

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        row = _row_index(writer, buffer, index)
        row_size = writer.size_of(buffer, range(1, buffer.type.rank))
        writer.lines.append(f"written = (offsets // tl.maximum({row_size}, 1)) == {row}")
        writer.lines.append(f"old = tl.load({writer.pointer(buffer)} + offsets, mask={mask})")
        new = (f"tl.load({writer.pointer(row_value)} + offsets % tl.maximum({row_size}, 1), "
               f"mask=({mask}) & written & (bad_row == 0))")
        return f"tl.where(written & (bad_row == 0), {new}, old)"

    return output_elements(op, name, value, minimum=1)


@emits_single("check")
def emit_check(op: Operation, name: str) -> TritonKernel:
    """A copy of the condition; a false element's row-major index goes to the error flags."""
    condition = single_op(op).operands[0]

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        writer.lines.append(f"holds = {load(writer, condition, coordinates, mask)}")
        writer.fail_where("holds == 0", "offsets", mask)
        return "holds"

    return output_elements(op, name, value)
