"""Single kernels that move elements: transpose, slice, concat, pad, broadcast_to, broadcast_dims, and
those that make them from coordinates alone: iota, one_hot, shape_of (ir/ops/shape.py, indexing.py,
dims.py are the specification). Each computes an element of its result from the element's
coordinates (single.py's output_elements), the meaning of the CPU's kernels (codegen/llvm/kernels/
single.py, dims.py) element for element.
"""

from __future__ import annotations

from flowc.ir import Operation

from ..expressions import triton_dtype
from ..kernel import TritonKernel, emits_single, single_op
from .single import SingleWriter, load, output_elements, scalar_of


@emits_single("transpose")
def emit_transpose(op: Operation, name: str) -> TritonKernel:
    inner = single_op(op)

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        source = [""] * len(coordinates)
        for out_axis, in_axis in enumerate(inner.perm):
            source[in_axis] = coordinates[out_axis]
        return load(writer, inner.operands[0], source, mask)

    return output_elements(op, name, value)


@emits_single("broadcast_to", "broadcast_dims")
def emit_broadcast(op: Operation, name: str) -> TritonKernel:
    """x's dims aligned from the right; a size-1 dim stays at 0 (an unknown one is asked at run time)."""
    inner = single_op(op)
    x = inner.operands[0]

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        shift = len(coordinates) - x.type.rank
        source = []
        for axis in range(x.type.rank):
            size, coordinate = x.type.shape[axis], coordinates[axis + shift]
            if size == 1:
                source.append("0")
            elif size is None:  # 1 or the result's dim: the remainder is either
                source.append(f"({coordinate} % {writer.dim(x, axis)})")
            else:
                source.append(coordinate)
        return load(writer, x, source, mask)

    return output_elements(op, name, value)


@emits_single("slice")
def emit_slice(op: Operation, name: str) -> TritonKernel:
    """Per dim of x: Python's slice start plus the coordinate times the stride, or a squeezed index."""
    inner = single_op(op)
    x = inner.operands[0]

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        out = iter(coordinates)
        source = []
        for axis in range(x.type.rank):
            begin, size = inner.begin[axis], x.type.shape[axis]
            n = writer.dim(x, axis)
            if axis in [d % x.type.rank for d in inner.squeeze_dims]:
                source.append(_squeezed_index(writer, begin, size, n, mask))
                continue
            step = inner.strides[axis]
            start = _slice_start(begin, size, n, step)
            source.append(f"({start} + {next(out)} * {step})")
        return load(writer, x, source, mask)

    return output_elements(op, name, value)


def _squeezed_index(writer: SingleWriter, begin: int, size: int | None, n: str, mask: str) -> str:
    """A squeezed dim's index: `begin`, counted from the end when negative; the type rule checked it
    where the dim is known, the kernel checks it otherwise (and reads index 0 then)."""
    if size is not None:
        return str(begin % size)
    index = f"({begin} + {n})" if begin < 0 else str(begin)
    bad = f"({index} < 0) | ({index} >= {n})"
    writer.fail_where(bad, f"offsets * 0 + {begin}", mask)
    return f"tl.where({bad}, 0, {index})"


def _slice_start(begin: int, size: int | None, n: str, step: int) -> str:
    """Python's slice(begin, _, step).indices(n)[0], folded where n is known."""
    if size is not None:
        return str(range(size)[slice(begin, None, step)].start if size else 0)
    if step > 0:
        return f"tl.maximum({begin} + {n}, 0)" if begin < 0 else f"tl.minimum({begin}, {n})"
    return f"tl.maximum({begin} + {n}, -1)" if begin < 0 else f"tl.minimum({begin}, {n} - 1)"


@emits_single("concat")
def emit_concat(op: Operation, name: str) -> TritonKernel:
    """Each operand's stretch of the axis, loaded where the coordinate is inside it."""
    inner = single_op(op)
    axis = inner.axis % inner.results[0].type.rank

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        writer.lines.append(f"joined = tl.zeros([BLOCK], {triton_dtype(inner.results[0].type.dtype)})")
        start = "0"
        for x in inner.operands:
            stop = f"{start} + {writer.dim(x, axis)}" if start != "0" else writer.dim(x, axis)
            here = f"({mask}) & ({coordinates[axis]} >= {start}) & ({coordinates[axis]} < {stop})"
            source = list(coordinates)
            source[axis] = f"({coordinates[axis]} - ({start}))"
            writer.lines.append(f"joined = tl.where({here}, {load(writer, x, source, here)}, joined)")
            start = stop
        return "joined"

    return output_elements(op, name, value)


@emits_single("pad")
def emit_pad(op: Operation, name: str) -> TritonKernel:
    """x's element at the coordinates less the padding in front, the value elsewhere."""
    inner = single_op(op)
    x = inner.operands[0]
    dtype = str(inner.results[0].type.dtype)

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        source, inside = [], [f"({mask})"]
        for axis, coordinate in enumerate(coordinates):
            shifted = f"({coordinate} - {inner.before[axis]})" if inner.before[axis] else coordinate
            source.append(shifted)
            inside.append(f"({shifted} >= 0) & ({shifted} < {writer.dim(x, axis)})")
        writer.lines.append(f"padding = {scalar_of(inner.value, dtype)}")
        writer.lines.append(f"within = {' & '.join(inside)}")
        return f"tl.where(within, {load(writer, x, source, 'within')}, padding)"

    return output_elements(op, name, value)


@emits_single("iota")
def emit_iota(op: Operation, name: str) -> TritonKernel:
    dtype = triton_dtype(single_op(op).results[0].type.dtype)
    return output_elements(op, name, lambda writer, coordinates, mask: f"offsets.to({dtype})")


@emits_single("one_hot")
def emit_one_hot(op: Operation, name: str) -> TritonKernel:
    """on_value where the index (read at the other coordinates) is the coordinate along the axis."""
    inner = single_op(op)
    dtype = str(inner.results[0].type.dtype)
    axis = inner.axis % inner.results[0].type.rank

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        index = load(writer, inner.operands[0], coordinates[:axis] + coordinates[axis + 1:], mask)
        return (f"tl.where({index} == {coordinates[axis]}, {scalar_of(inner.on_value, dtype)}, "
                f"{scalar_of(inner.off_value, dtype)})")

    return output_elements(op, name, value)


@emits_single("shape_of")
def emit_shape_of(op: Operation, name: str) -> TritonKernel:
    """Dim c0 of x, read from the sizes (a literal or a run-time size), never from x's elements."""
    inner = single_op(op)
    x = inner.operands[0]
    dtype = triton_dtype(inner.results[0].type.dtype)

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        text = "offsets * 0"
        for axis in reversed(range(x.type.rank)):
            text = f"tl.where(c0 == {axis}, {writer.dim(x, axis)}, {text})"
        return f"({text}).to({dtype})"

    return output_elements(op, name, value)
