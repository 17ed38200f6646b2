"""What every "single" kernel (one op that moves data: transpose, gather, a random op, ...) is written
with, and the kernel of a single op simplified away: a copy of its operand.

A single kernel's emitter (kernel.py's SINGLE_OPS) states the op in terms of its slots: its block
arguments are the fusion op's operands, its results the fusion op's results. SingleWriter keeps the
parameters that this takes (a buffer per slot read or written, the run-time size of each dim that
the IR leaves unknown; a known one is a literal) and writes the source of the `@triton.jit` function.

Most single ops compute each element of their result from the element's coordinates
(`output_elements`): a program takes BLOCK consecutive elements of the result (row-major, 64-bit
offsets), splits each offset into coordinates along the result's dims, and the op's emitter turns
those into the element's value, every load masked to the elements inside the result.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from flowc.ir import Operation, Value
from flowc.ir.core import BlockArgument

from ..body import constant_text
from ..kernel import ERRORS, Buffer, Extent, GridAxis, Parameter, TritonKernel, emits_single

BLOCK = 1024  # result elements per program, as a loop kernel's block (passes/schedule_gpu.py's LOOP_BLOCK)


class SingleWriter:
    """The parameters and lines of one single kernel, over the slots of fusion op `op`."""

    def __init__(self, op: Operation, name: str):
        self.op, self.name = op, name
        self.parameters: list[tuple[str, Parameter]] = []
        self.constants: dict[str, int] = {}
        self.lines: list[str] = []
        self._slots: dict[Value, int] = {v: len(op.operands) + i for i, v in enumerate(op.results)}
        for i, v in enumerate(op.regions[0].entry.ops[-1].operands):  # the op's results, as the region names them
            if not isinstance(v, BlockArgument):
                self._slots.setdefault(v, len(op.operands) + i)
        self._slots.update((v, i) for i, v in enumerate(op.regions[0].entry.args))

    def slot(self, value: Value) -> int:
        """The slot of `value`: a block argument is an operand; a result (the fusion op's, or an op's
        of the region that it yields) is a result."""
        return self._slots[value]

    def _parameter(self, name: str, parameter: Parameter) -> str:
        if (name, parameter) not in self.parameters:
            self.parameters.append((name, parameter))
        return name

    def pointer(self, value: Value) -> str:
        """The name of the buffer of `value` (a block argument or a result)."""
        slot = self.slot(value)
        return self._parameter(f"slot{slot}", Buffer(slot))

    def dim(self, value: Value, axis: int) -> str:
        """Dim `axis` of `value`: a literal where the IR knows it, else a run-time parameter."""
        static = value.type.shape[axis]
        if static is not None:
            return str(static)
        slot = self.slot(value)
        return self._parameter(f"dim{slot}_{axis}", Extent(slot, axis))

    def dims(self, value: Value) -> list[str]:
        return [self.dim(value, axis) for axis in range(value.type.rank)]

    def size(self, value: Value) -> str:
        """The number of elements of `value`, as text (int64 where it may pass 2**31)."""
        return product(self.dims(value), wide=True)

    def size_of(self, value: Value, axes: range) -> str:
        """The number of elements along these axes of `value`, as text."""
        return product([self.dim(value, axis) for axis in axes], wide=True)

    def strides(self, value: Value) -> list[str]:
        """Row-major element strides of `value` (every buffer is contiguous), as text."""
        dims = self.dims(value)
        return [product(dims[axis + 1:]) for axis in range(len(dims))]

    def offset(self, value: Value, coordinates: list[str]) -> str:
        """The row-major offset in `value` of the element at `coordinates`."""
        terms = [c if s == "1" else f"{c} * {s}" for c, s in zip(coordinates, self.strides(value))
                 if s != "0" and c != "0"]
        return " + ".join(terms) if terms else "0"

    def errors(self) -> str:
        """The name of the error flags (Note [error flags] in kernel.py)."""
        return self._parameter("errors", ERRORS)

    def fail_where(self, bad: str, detail: str, mask: str) -> None:
        """Lines recording `detail` where `bad` holds (among lanes in `mask`) in the error flags."""
        errors = self.errors()
        # a where, not `bad & mask`: the interpreter makes ints of a scalar bool & a block of them
        self.lines.append(f"failed = tl.where({bad}, {mask}, offsets < 0)")
        self.lines.append(f"tl.store({errors} + offsets * 0, 1, mask=failed)")
        self.lines.append(f"tl.store({errors} + 1 + offsets * 0, ({detail}).to(tl.int64), mask=failed)")

    def kernel(self, grid: tuple[GridAxis, ...], num_warps: int = 4) -> TritonKernel:
        names = [name for name, _ in self.parameters] + [f"{name}: tl.constexpr" for name in self.constants]
        body = "\n".join(f"    {line}" for line in self.lines)
        source = f"@triton.jit\ndef {self.name}({', '.join(names)}):\n{body}\n"
        return TritonKernel(self.name, source, tuple(self.parameters), grid, dict(self.constants), num_warps)


def product(factors: list[str], wide: bool = False) -> str:
    """The product of these texts, folding the literals. `wide`: in int64 where it multiplies a run-time
    size (a 32-bit parameter) by anything, so a count of 2**31 elements or more does not wrap; a
    product that multiplies an int64 coordinate needs no such care (it is evaluated from the left)."""
    known = math.prod(int(f) for f in factors if f.isdigit())
    rest = [f for f in factors if not f.isdigit()]
    if known == 0:
        return "0"
    if wide and rest and (len(rest) > 1 or known != 1):
        return " * ".join([f"tl.full([], {known}, tl.int64)", *rest])
    return " * ".join(([] if known == 1 and rest else [str(known)]) + rest)


def extents(writer: SingleWriter, value: Value) -> tuple[Extent, ...]:
    """The extents of `value`'s dims, for a grid (the launcher reads them off the shapes)."""
    slot = writer.slot(value)
    return tuple(Extent(slot, axis) for axis in range(value.type.rank))


# An emitter of one element block: (writer, the result's coordinates as names, the mask of the lanes
# inside the result) -> the text of the block's values (lines it needs appended to writer.lines).
ElementValue = Callable[[SingleWriter, list[str], str], str]


def output_elements(op: Operation, name: str, value: ElementValue, minimum: int = 0) -> TritonKernel:
    """A kernel over the elements of the (first) result, each computed by `value` from its coordinates;
    at least `minimum` programs (one that checks an index runs on an empty result too)."""
    writer = SingleWriter(op, name)
    out = op.results[0]
    writer.constants["BLOCK"] = BLOCK
    dims = writer.dims(out)
    lines = writer.lines
    lines.append("offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)")
    lines.append(f"inside = offsets < {writer.size(out)}")
    coordinates = [f"c{axis}" for axis in range(len(dims))]
    rest = "offsets"
    for axis in range(len(dims) - 1, 0, -1):
        # an empty result launched anyway (`minimum`) has a dim 0: divide by 1 there (its lanes are masked)
        divisor = dims[axis] if dims[axis].isdigit() or not minimum else f"tl.maximum({dims[axis]}, 1)"
        divisor = "1" if divisor == "0" else divisor
        lines.append(f"c{axis} = {rest} % {divisor}")
        lines.append(f"rest{axis} = {rest} // {divisor}")
        rest = f"rest{axis}"
    if dims:
        lines.append(f"c0 = {rest}")
    text = value(writer, coordinates, "inside")
    lines.append(f"tl.store({writer.pointer(out)} + offsets, {text}, mask=inside)")
    return writer.kernel((GridAxis(extents(writer, out), BLOCK, minimum=minimum),))


def load(writer: SingleWriter, value: Value, coordinates: list[str], mask: str, other: str | None = None) -> str:
    """The text of a masked load of `value`'s elements at `coordinates`."""
    # `offsets * 0 +`: a block of offsets even where none depends on the lane (a slice's single element,
    # a squeezed index); the compiler folds it away
    offset = "offsets * 0" if (offset := writer.offset(value, coordinates)) == "0" else f"offsets * 0 + {offset}"
    tail = "" if other is None else f", other={other}"
    return f"tl.load({writer.pointer(value)} + {offset}, mask={mask}{tail})"


@emits_single("identity")
def emit_identity(op: Operation, name: str) -> TritonKernel:
    """A single kernel whose op was simplified away copies what it yields: an operand, or a splat."""
    yielded = op.regions[0].entry.ops[-1].operands[0]

    def value(writer: SingleWriter, coordinates: list[str], mask: str) -> str:
        if not isinstance(yielded, BlockArgument) and yielded.owner.name == "constant":
            splat = np.asarray(yielded.owner.attributes["value"])  # fusion clones only splats into kernels
            return constant_text(splat, str(yielded.type.dtype))
        return f"tl.load({writer.pointer(yielded)} + offsets, mask={mask})"

    return output_elements(op, name, value)


def scalar_of(number: float, dtype: str) -> str:
    """`number` as a constant of `dtype`, converted as numpy's astype converts it."""
    return constant_text(np.array(number).astype(dtype), dtype)

