"""Reduction kernels as Triton programs: the "row_tiles" and "column_tiles" schedules.

A reduction kernel (Note [kernel contract] in ir/ops/fusion.py) reduces the
same axes of one full shape F; its other values are "full" (one per point of
F: softmax's exp(x - max)) or "outer" (one per kept point: the max, 1 / sum).
Both schedules see F as a matrix of kept points by reduced points, each
flattened row-major, and differ only in how a tile lies (the schedule's
`block = [rows, columns]`, passes/schedule_gpu.py):

    row_tiles     a tile is [rows of kept points, columns of reduced points];
                  reductions run along axis 1 and outer values are [rows, 1]
    column_tiles  a tile is [rows of reduced points, columns of kept points];
                  reductions run along axis 0 and outer values are [1, columns]

so one writer serves both, with the axis and the two index vectors swapped.
An argument's offset at a point of the tile is the sum of a part from the kept
index and a part from the reduced one, each computed on its index vector
before they broadcast: a run of axes the argument steps along, consecutive in
F, is its index times a stride; other axes are decomposed with // and %.

Note [reduction passes]
The reductions of a kernel run in passes: a reduction whose operand reads
another's result (softmax's sum reads the max) runs in the pass after it, and
reductions of one pass share a walk over the row. After each pass the outer
values it made possible are computed once per row; full values are written
in the last pass if they read nothing of it, else in a last walk of their
own. When the reduced extent is known and fits one block of the tile, there
is no walk at all: the program loads its rows once and every pass rereads
registers (Note [reduction tiles] in passes/schedule_gpu.py). Otherwise each
pass walks the row a block at a time, recomputing the full values it needs
from the arguments (Note [no expensive recompute] in passes/fusion.py).
Column tiles are always one pass: the contract lets no full value read a
reduced one unless the reduced axes are trailing.

Note [block sums]
A walk combines each block into a running result per row: the block's own
reduction (tl.reduce, a tree over its points), then one combine with the
running value. A float sum's running total keeps the rounding error of each
addition in a compensation (Knuth's two-sum: no multiplication, so fma
contraction cannot touch it; Triton does not reassociate), so a sum's error
is that of a tree over one block plus about one rounding, at any length, as
the CPU's blocked sums (Note [blocked sums] in codegen/llvm/kernels/reduction.py).
max and min propagate NaN (numpy's); argmax and argmin keep the first index
of the extremum, a NaN being the extremum (Note [NaN in max and min]). An
empty row gives the identity; a mean divides by the point count, 0 / 0 = NaN.
Integer sums and products wrap in the operand's type, as the reference's;
any and all count in int32.

A reduction over every axis is one row: one program walks all of it, in
blocks of the tile (no second stage over partial results yet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowc.ir import BlockArgument, Operation, Value
from flowc.ir.errors import UnsupportedOpError
from flowc.ir.ops.fusion import DimTies, UnknownDim
from flowc.ir.ops.kernel_space import Space, reduction_space
from flowc.ir.ops.reduction import ArgReduction
from flowc.ir.types import as_dtype

from ..body import UnsupportedPointwise, pointwise_lines, scalar_text
from ..expressions import triton_dtype
from ..kernel import Buffer, Extent, GridAxis, Parameter, TritonKernel, emits, helper

NO_INDEX = 2**31 - 1  # the index of a masked point: it loses every tie

PRODUCT = helper("reduce_product", '''
@triton.jit
def reduce_product(a, b):
    return a * b
''')
# The better of two (value, index) candidates of blocks, NaN already set aside: by value, a tie to the first.
ARG_MAX = helper("reduce_arg_max", '''
@triton.jit
def reduce_arg_max(a, a_index, b, b_index):
    take = (b > a) | ((b == a) & (b_index < a_index))
    return tl.where(take, b, a), tl.where(take, b_index, a_index)
''')
ARG_MIN = helper("reduce_arg_min", '''
@triton.jit
def reduce_arg_min(a, a_index, b, b_index):
    take = (b < a) | ((b == a) & (b_index < a_index))
    return tl.where(take, b, a), tl.where(take, b_index, a_index)
''')

# How each reduction combines: (its identity, the tl.reduce combine of a block, how two running
# values combine). Triton's own combine functions where one fits, through tl.reduce rather than
# tl.sum or tl.max: the interpreter runs those reductions as numpy calls, and a combine function of
# ours one point at a time (a [4, 1024] tile: 4096 calls); and tl.sum and tl.max are @jit functions
# of Triton's library, which a process that also builds for the GPU cannot interpret (kernel.py).
STANDARD = "tl.standard."
COMBINE = {"reduce_sum": ("zero", STANDARD + "_sum_combine", "+"),
           "reduce_mean": ("zero", STANDARD + "_sum_combine", "+"),
           "reduce_prod": ("one", PRODUCT, "*"),
           "reduce_max": ("lowest", STANDARD + "_elementwise_max", "tl.maximum"),
           "reduce_min": ("highest", STANDARD + "_elementwise_min", "tl.minimum"),
           "reduce_any": ("zero", STANDARD + "_elementwise_max", "tl.maximum"),
           "reduce_all": ("one", STANDARD + "_elementwise_min", "tl.minimum"),
           "argmax": ("lowest", STANDARD + "_argmax_combine_tie_break_left", ARG_MAX),
           "argmin": ("highest", STANDARD + "_argmin_combine_tie_break_left", ARG_MIN)}
# any and all count in int32: 0 or 1, combined by max or min; float16 sums, products and means in
# float32, rounded to half once at the end, as the reference's (ir/ops/reduction.py's `accumulator`)
WIDER = {"bool": "int32", "float16": "float32"}


@emits("reduction", "row_tiles", "column_tiles")
def emit_reduction(op: Operation, name: str) -> TritonKernel:
    return ReductionWriter(op, name).kernel()


@dataclass
class Slot:
    """An operand or result of the kernel: its parameter name and its shape (None: known at run time)."""

    index: int
    pointer: str
    shape: tuple[int | None, ...]


class ReductionWriter:
    """The Triton text of one reduction fusion op (module docstring)."""

    def __init__(self, op: Operation, name: str):
        self.op, self.name = op, name
        self.block = op.regions[0].entry
        self.reductions = [inner for inner in self.block.ops if inner.is_reduction]
        self.space = _space(op, self.reductions)
        self.rows_in_tile = op.attributes["schedule"] == "row_tiles"
        rows, columns = op.attributes["block"]  # type: ignore[misc]
        self.outer_block, self.inner_block = (rows, columns) if self.rows_in_tile else (columns, rows)
        self.axis = 1 if self.rows_in_tile else 0  # the tile's reduced axis
        self.outer_shape = "[BLOCK_OUTER, 1]" if self.rows_in_tile else "[1, BLOCK_OUTER]"
        self.tile_shape = "[BLOCK_OUTER, BLOCK_INNER]" if self.rows_in_tile else "[BLOCK_INNER, BLOCK_OUTER]"
        self.ties = ties_around(op)
        self.full_shape = self.ties.shape(self.space.full)
        self.slots = [Slot(i, f"x{i}", v.type.shape) for i, v in enumerate(op.operands)]
        self.slots += [Slot(len(op.operands) + j, f"y{j}", v.type.shape) for j, v in enumerate(op.results)]
        self.extents: dict[str, Extent] = {}
        self.lines: list[str] = []  # the function's statements at its top level
        self.walk: list[str] | None = None  # the statements of the walk being written, if one is
        self.outer_names: dict[object, str] = {}  # values and loads of one per kept point: top level
        self.full_names: dict[object, str] = {}  # values and loads at points of the tile: the walk's
        self.count = 0
        self.level = self._levels()
        inner = [d for d in (self.full_shape[a] for a in self.space.reduced) if isinstance(d, int)]
        # the reduced extent known and within one block: no walk, the values stay (Note [reduction passes])
        self.in_registers = len(inner) == len(self.space.reduced) and math.prod(inner) <= self.inner_block

    # -- the kernel ---------------------------------------------------------------------------

    def kernel(self) -> TritonKernel:
        self._prologue()
        passes = self._passes()
        full_yields = [(j, v) for j, v in enumerate(self.block.terminator.operands) if self._is_full(v)]
        last = max(passes.values(), default=0)
        late = any(self._pass_read(v, passes) == last for _, v in full_yields) or last == 0
        self._compute_ready_outer_values()
        for number in range(1, last + 1):
            chosen = [r for r in self.reductions if passes[r] == number]
            self._open_walk([self._initialize(r) for r in chosen])
            for reduction in chosen:
                self._reduce(reduction)
            if number == last and not late:
                self._store_full(full_yields)
            self._close_walk()
            for reduction in chosen:
                self._finish(reduction)
            self._compute_ready_outer_values()
        if late and full_yields:
            self._open_walk([])
            self._store_full(full_yields)
            self._close_walk()
        for j, value in enumerate(self.block.terminator.operands):
            if not self._is_full(value):
                self.lines.append(f"tl.store({self.slots[len(self.op.operands) + j].pointer} + outer, "
                                  f"{self._outer_value(value, value.type.rank == len(self.full_shape))}, "
                                  f"mask=outer_mask)")
        return self._assemble()

    def _assemble(self) -> TritonKernel:
        parameters: list[tuple[str, Parameter]] = [(s.pointer, Buffer(s.index)) for s in self.slots]
        parameters += sorted(self.extents.items())
        header = ", ".join([name for name, _ in parameters]
                           + ["BLOCK_OUTER: tl.constexpr", "BLOCK_INNER: tl.constexpr"])
        source = f"@triton.jit\ndef {self.name}({header}):\n" + "".join(f"    {line}\n" for line in self.lines)
        kept = [(axis, self.full_shape[axis]) for axis in self.space.kept]
        grid = GridAxis(tuple(self._extent_of(d) for _, d in kept if isinstance(d, UnknownDim)), self.outer_block,
                        math.prod(d for _, d in kept if isinstance(d, int)))
        tile = self.outer_block * self.inner_block
        return TritonKernel(self.name, source, tuple(parameters), (grid,),
                            {"BLOCK_OUTER": self.outer_block, "BLOCK_INNER": self.inner_block},
                            num_warps=self.op.attributes.get("warps", 8 if tile >= 8192 else 4))

    def _prologue(self) -> None:
        outer_vector = "[:, None]" if self.rows_in_tile else "[None, :]"
        # Note [64-bit offsets]: sizes are int32 parameters, but F may hold more than 2**31 points (an
        # H100 holds 2**31 floats four times over): counts, indices and offsets are int64.
        kept, reduced = ([self.full_shape[a] for a in axes] for axes in (self.space.kept, self.space.reduced))
        self.lines += [f"n_outer = tl.full([], 1, tl.int64) * {self._product(kept)}",
                       f"n_inner = tl.full([], 1, tl.int64) * {self._product(reduced)}",
                       f"outer = tl.program_id(0).to(tl.int64) * BLOCK_OUTER + tl.arange(0, BLOCK_OUTER){outer_vector}",
                       "outer_mask = outer < n_outer"]
        if self.in_registers:
            self.lines += [f"inner = tl.arange(0, BLOCK_INNER).to(tl.int64){self._inner_vector()}",
                           "inner_mask = inner < n_inner", "mask = outer_mask & inner_mask"]

    def _inner_vector(self) -> str:
        return "[None, :]" if self.rows_in_tile else "[:, None]"

    # -- walks --------------------------------------------------------------------------------

    def _open_walk(self, initial: list[list[str]]) -> None:
        """Start a walk over the row, block by block (Note [reduction passes]); in registers, the
        one block is already loaded and its values stay."""
        for lines in initial:
            self.lines += lines
        if self.in_registers:
            return
        self.walk = ["inner = start + tl.arange(0, BLOCK_INNER).to(tl.int64)" + self._inner_vector(),
                     "inner_mask = inner < n_inner", "mask = outer_mask & inner_mask"]
        self.full_names = {}

    def _close_walk(self) -> None:
        if self.walk is None:
            return
        self.lines.append("for start in range(0, n_inner, BLOCK_INNER):")
        self.lines += [f"    {line}" for line in self.walk]
        self.walk = None
        self.full_names = {}

    def _emit_full(self, line: str) -> None:
        (self.walk if self.walk is not None else self.lines).append(line)

    # -- reductions ---------------------------------------------------------------------------

    def _initialize(self, op: Operation) -> list[str]:
        """A reduction's running values, before its walk (none in registers)."""
        if self.in_registers:
            return []
        n, accumulator = self._number(op), self._accumulator_type(op)
        lines = [f"acc{n} = tl.full({self.outer_shape}, {self._identity(op)}, {accumulator})"]
        if self._compensated(op):
            lines.append(f"err{n} = tl.full({self.outer_shape}, 0, {accumulator})")
        if isinstance(op, ArgReduction):
            lines.append(f"at{n} = tl.full({self.outer_shape}, {NO_INDEX}, tl.int32)")
        if self._watches_nan(op):
            lines.append(f"nan{n} = tl.full({self.outer_shape}, {NO_INDEX}, tl.int32)")
        return lines

    def _reduce(self, op: Operation) -> None:
        """The reduction of the block in hand: its result in registers, or combined into the running one.
        Note [NaN in max and min]: a max, min, argmax or argmin over floats finds the first NaN's index
        apart and reduces the rest; the NaN, or its index, wins at the end (numpy's result)."""
        n, accumulator = self._number(op), self._accumulator_type(op)
        identity = f"tl.full([], {self._identity(op)}, {accumulator})"
        value = self._full_value(op.operands[0])
        emit, axis = self._emit_full, self.axis
        emit(f"part{n} = tl.where(mask, {value}.to({accumulator}), {identity})")
        if self._watches_nan(op):
            nan_at = f"tl.where(part{n} != part{n}, inner.to(tl.int32), {NO_INDEX})"
            emit(f"part_nan{n} = tl.reduce({nan_at}, {axis}, {STANDARD}_elementwise_min, keep_dims=True)")
            emit(f"part{n} = tl.where(part{n} != part{n}, {identity}, part{n})")
        _, block, combine = COMBINE[op.name]
        if isinstance(op, ArgReduction):  # indices within the block, as the interpreter counts them
            local = f"tl.broadcast_to(tl.arange(0, BLOCK_INNER){self._inner_vector()}, {self.tile_shape})"
            emit(f"part{n}, part_at{n} = tl.reduce((part{n}, {local}), {axis}, {block}, keep_dims=True)")
        else:
            emit(f"part{n} = tl.reduce(part{n}, {axis}, {block}, keep_dims=True).to({accumulator})")
        if self.in_registers:
            return
        if self._watches_nan(op):
            emit(f"nan{n} = tl.minimum(nan{n}, part_nan{n})")
        if isinstance(op, ArgReduction):  # the block's index counts from its start
            emit(f"acc{n}, at{n} = {combine}(acc{n}, at{n}, part{n}, (part_at{n} + start).to(tl.int32))")
        elif self._compensated(op):  # Note [block sums]: Knuth's two-sum, the error kept apart
            emit(f"total{n} = acc{n} + part{n}")
            emit(f"rounded{n} = total{n} - acc{n}")
            emit(f"err{n} = err{n} + ((acc{n} - (total{n} - rounded{n})) + (part{n} - rounded{n}))")
            emit(f"acc{n} = total{n}")
        elif combine in ("+", "*"):
            emit(f"acc{n} = acc{n} {combine} part{n}")
        else:
            emit(f"acc{n} = {combine}(acc{n}, part{n})")

    def _finish(self, op: Operation) -> None:
        """The reduction's result, per kept point, in its own type, after its walk."""
        n, result_type = self._number(op), op.results[0].type.dtype
        final, nan = (f"part{n}", f"part_nan{n}") if self.in_registers else (f"acc{n}", f"nan{n}")
        if isinstance(op, ArgReduction):
            index = f"part_at{n}" if self.in_registers else f"at{n}"
            if self._watches_nan(op):
                index = f"tl.where({nan} < {NO_INDEX}, {nan}, {index})"
            self._set_outer(op.results[0], f"{index}.to({triton_dtype(result_type)})")
            return
        if self._compensated(op):
            self.lines.append(f"{final} = tl.where(tl.abs({final}) < (1e308 * 10), {final} + err{n}, {final})")
        if self._watches_nan(op):
            self.lines.append(f"{final} = tl.where({nan} < {NO_INDEX}, {scalar_text(float('nan'))}, {final})")
        if op.name == "reduce_mean":
            self.lines.append(f"{final} = {final} / n_inner.to({self._accumulator_type(op)})")
        cast = f"({final} != 0)" if result_type.is_bool else f"{final}.to({triton_dtype(result_type)})"
        self._set_outer(op.results[0], cast)

    def _watches_nan(self, op: Operation) -> bool:
        return op.name in ("reduce_max", "reduce_min", "argmax", "argmin") and op.operands[0].type.dtype.is_float

    def _compensated(self, op: Operation) -> bool:
        return (not self.in_registers and op.name in ("reduce_sum", "reduce_mean")
                and op.operands[0].type.dtype.is_float)

    def _accumulator_type(self, op: Operation) -> str:
        dtype = str(op.operands[0].type.dtype)
        return triton_dtype(as_dtype(WIDER.get(dtype, dtype)))

    def _identity(self, op: Operation) -> str:
        which = COMBINE[op.name][0]
        dtype = op.operands[0].type.dtype
        if which in ("zero", "one"):
            return "0" if which == "zero" else "1"
        if dtype.is_float:
            return scalar_text(float("-inf") if which == "lowest" else float("inf"))
        return str(dtype.min if which == "lowest" else dtype.max)  # 0 and 255 for uint8

    def _number(self, op: Operation) -> int:
        return self.reductions.index(op)

    def _passes(self) -> dict[Operation, int]:
        """Each reduction's pass: one after the last of the reductions it reads (Note [reduction passes])."""
        passes: dict[Operation, int] = {}
        for reduction in self.reductions:
            passes[reduction] = 1 + self._pass_read(reduction.operands[0], passes)
        return passes

    def _pass_read(self, value: Value, passes: dict[Operation, int], seen: dict[Value, int] | None = None) -> int:
        """The latest pass among the reductions `value` reads, 0 for none."""
        seen = {} if seen is None else seen
        if value in seen:
            return seen[value]
        op = value.op if not isinstance(value, BlockArgument) else None
        if op is None:
            result = 0
        elif op in passes:
            result = passes[op]
        else:
            result = max((self._pass_read(v, passes, seen) for v in op.operands), default=0)
        seen[value] = result
        return result

    # -- values -------------------------------------------------------------------------------

    def _levels(self) -> dict[Value, str]:
        """"full" or "outer" for each value the region computes (kernel_space.value_levels, which
        needs a reduction; a kernel simplified to pointwise ops has none)."""
        level = {}
        for inner in self.block.ops:
            if inner.is_terminator:
                continue
            full = not inner.is_reduction and self.ties.shape(inner.results[0]) == self.full_shape
            for result in inner.results:
                level[result] = "full" if full else "outer"
        return level

    def _is_full(self, value: Value) -> bool:
        if isinstance(value, BlockArgument):
            return self.ties.shape(value) == self.full_shape and value.type.rank > 0
        return self.level[value] == "full"

    def _set_outer(self, value: Value, text: str) -> None:
        name = f"r{self._number(value.op)}"
        self.lines.append(f"{name} = {text}")
        self.outer_names[value] = name

    def _compute_ready_outer_values(self) -> None:
        """Every outer op whose operands are in hand, in order (after each pass, Note [reduction passes])."""
        for op in self.block.ops:
            if op.is_terminator or op.is_reduction or self.level[op.results[0]] != "outer":
                continue
            if op.results[0] in self.outer_names:
                continue
            inputs = [v for v in op.operands if not isinstance(v, BlockArgument)]
            if all(v in self.outer_names for v in inputs):
                keepdims = op.results[0].type.rank == len(self.full_shape)
                names = {v: self._outer_value(v, keepdims) for v in op.operands}
                self.outer_names[op.results[0]] = self._pointwise(op, names, self.lines)

    def _outer_value(self, value: Value, keepdims: bool) -> str:
        """A value of one per kept point; an argument aligned to its reader's shape: F's rank with the
        reduced axes 1 (`keepdims`) or the kept axes only (Note [outer reads] in the CPU's reduction.py)."""
        if isinstance(value, BlockArgument):
            return self._load(value, "full" if keepdims else "dropped", outer=True)
        return self.outer_names[value]

    def _full_value(self, value: Value) -> str:
        """A value at the points of the tile in hand: computed in this walk (or read from registers)."""
        if value in self.outer_names:
            return self.outer_names[value]
        if value in self.full_names:
            return self.full_names[value]
        if isinstance(value, BlockArgument):
            return self._load(value, "full")
        op = value.op
        if self.level[value] == "outer":
            raise AssertionError(f"{op.display_name} read before its pass")  # _passes orders them
        names = {v: self._full_value(v) for v in op.operands}
        self.full_names[value] = self._pointwise(op, names, self.walk if self.walk is not None else self.lines)
        return self.full_names[value]

    def _pointwise(self, op: Operation, names: dict[Value, str], lines: list[str]) -> str:
        local = dict(names)
        try:
            lines += pointwise_lines([op], local, prefix=f"v{self._next()}_")
        except UnsupportedPointwise:
            raise UnsupportedOpError(f"the gpu target has no Triton form of {op.name}",
                                     op=op.display_name, where=op.loc) from None
        return local[op.results[0]]

    def _store_full(self, yields: list[tuple[int, Value]]) -> None:
        for j, value in yields:
            slot = self.slots[len(self.op.operands) + j]
            offset = self._offset(slot, {a: a for a in range(len(self.full_shape))})
            if offset == "0":  # F is all 1s: a tile of pointers to the one element, as the value and mask are
                offset = f"tl.full({self.tile_shape}, 0, tl.int64)"
            self._emit_full(f"tl.store({slot.pointer} + {offset}, {self._full_value(value)}, mask=mask)")

    # -- addresses ----------------------------------------------------------------------------

    def _load(self, arg: BlockArgument, alignment: str, outer: bool = False) -> str:
        """Argument `arg` read at the tile's points: "full" right-aligned with F, "dropped"
        right-aligned with the kept axes; its static 1s broadcast. Read by an `outer` value (one per
        kept point), it broadcasts along the reduced axes too, as the CPU's outer reads (Note [outer
        reads] in codegen/llvm/kernels/reduction.py): a keepdims operand whose dim there is unknown
        at build time is 1 when the kernel runs (the run's shape checks), never a walk."""
        key = (arg, alignment, outer)
        rank, own = len(self.full_shape), arg.type.rank
        if alignment == "full":
            axes = {j: rank - own + j for j in range(own)}
        else:
            kept = self.space.kept
            axes = {j: kept[len(kept) - own + j] for j in range(own)}
        stepping = {f_axis: j for j, f_axis in axes.items()
                    if arg.type.shape[j] != 1 and not (outer and f_axis in self.space.reduced)}
        inner = any(a in self.space.reduced for a in stepping)
        names = self.full_names if inner else self.outer_names
        if key not in names:
            slot = self.slots[arg.index]
            offset = self._offset(slot, stepping)
            outer = any(a in self.space.kept for a in stepping)
            mask = "mask" if inner and outer else "inner_mask" if inner else "outer_mask" if outer else None
            name = f"a{arg.index}_{alignment}_{self._next()}"
            load = (f"tl.load({slot.pointer} + {offset}, mask={mask}, other=0)" if mask
                    else f"tl.load({slot.pointer})")
            if inner:
                self._emit_full(f"{name} = {load}")
            else:
                self.lines.append(f"{name} = {load}")
            names[key] = name
        return names[key]

    def _offset(self, slot: Slot, stepping: dict[int, int]) -> str:
        """The element offset in `slot` of the tile's points; `stepping` maps each F axis the slot
        moves along to its own axis."""
        parts = [self._group_offset(slot, stepping, group, index)
                 for group, index in ((self.space.kept, "outer"), (self.space.reduced, "inner"))]
        parts = [p for p in parts if p is not None]
        return " + ".join(parts) if parts else "0"

    def _group_offset(self, slot: Slot, stepping: dict[int, int], group: tuple[int, ...], index: str) -> str | None:
        axes = [a for a in group if a in stepping]
        if not axes:
            return None
        consecutive = group == tuple(range(group[0], group[-1] + 1)) if group else False
        if len(axes) == len(group) and consecutive:  # its own run of axes: the flat index, scaled
            return _scaled(index, self._stride(slot, stepping[group[-1]]))
        terms = [_scaled(self._coordinate(a, group, index), self._stride(slot, stepping[a])) for a in axes]
        return "(" + " + ".join(terms) + ")"

    def _coordinate(self, axis: int, group: tuple[int, ...], index: str) -> str:
        """F's coordinate along `axis` at the tile's points, from the flat index of its group."""
        inner = index == "inner"
        names = self.full_names if inner else self.outer_names
        key = ("coordinate", axis)
        if key not in names:
            after = self._product([self.full_shape[a] for a in group[group.index(axis) + 1:]])
            text = index if after == "1" else f"({index} // ({after}))"
            if axis != group[0]:
                text = f"{text} % ({self._dim_text(self.full_shape[axis])})"
            name = f"c{axis}_{self._next()}"
            (self._emit_full if inner else self.lines.append)(f"{name} = {text}")
            names[key] = name
        return names[key]

    def _stride(self, slot: Slot, axis: int) -> str:
        """The distance between neighbours along `axis` of `slot` (contiguous, row-major)."""
        return self._product([d if d is not None else self._extent_name(slot.index, a)
                              for a, d in enumerate(slot.shape) if a > axis])

    def _product(self, dims: list) -> str:  # type: ignore[type-arg]
        static = math.prod(d for d in dims if isinstance(d, int))
        names = [self._dim_text(d) for d in dims if not isinstance(d, int)]
        if static == 0:
            return "0"
        return " * ".join(names + ([str(static)] if static != 1 or not names else []))

    def _dim_text(self, dim: object) -> str:
        if isinstance(dim, int):
            return str(dim)
        if isinstance(dim, UnknownDim):
            extent = self._extent_of(dim)
            return self._extent_name(extent.slot, extent.axis)
        return str(dim)  # already an extent's name

    def _extent_name(self, slot: int, axis: int) -> str:
        name = f"n{slot}_{axis}"
        self.extents[name] = Extent(slot, axis)
        return name

    def _extent_of(self, dim: UnknownDim) -> Extent:
        """A slot axis of this run-time size (each of F's unknown dims is tied to one)."""
        values = [*self.block.args, *self.block.terminator.operands]
        for slot, value in enumerate(values):
            for axis, other in enumerate(self.ties.shape(value)):
                if other is dim:
                    return Extent(slot, axis)
        raise UnsupportedOpError("the gpu target needs each size of a reduction kernel to be one of its operands' "
                                 "or results'", op=self.op.display_name, where=self.op.loc)

    def _next(self) -> int:
        self.count += 1
        return self.count


# The last block's ties: its kernels are emitted one after the other.
_TIES: list[tuple[object, tuple[int, ...], DimTies]] = []


def ties_around(op: Operation) -> DimTies:
    """The ties between unknown dims of the block that holds `op`, as the verifier and the fusion pass
    see them (Note [unknown dims in a kernel]): a kernel's own ops may not tie a `?` of a value it
    computes to F's (the gradient of a mean: where(true, 1 / sum(x), y) with y of x's size outside)."""
    block = op.parent
    if block is None:
        return DimTies([op])
    key = tuple(map(id, block.ops))
    if not _TIES or _TIES[0][0] is not block or _TIES[0][1] != key:
        _TIES[:] = [(block, key, DimTies(block.ops))]
    return _TIES[0][2]


def _space(op: Operation, reductions: list[Operation]) -> Space:
    """reduction_space, or for a kernel simplified to pointwise ops, its yielded shape with nothing reduced."""
    if reductions:
        return reduction_space(op)
    full = op.regions[0].entry.terminator.operands[0]
    return Space(full, (), tuple(range(full.type.rank)))


def _scaled(index: str, stride: str) -> str:
    return index if stride == "1" else f"{index} * {stride}"  # from the left: int64 times each factor


