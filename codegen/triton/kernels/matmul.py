"""Matmul kernels on the GPU: one (batched) product in tiles of C, its epilogue applied to each tile as it is stored.

A "dot_tiles" kernel (passes/schedule_gpu.py, Note [dot tiles]) runs a grid of
(batch, row tiles, column tiles) programs. Each program computes one
[BLOCK_M, BLOCK_N] tile of one product of the batch, walking k in steps of
BLOCK_K with loads masked at the edges (zeros outside, so a k of 0 leaves the
tile at zero). Floats go through tl.dot on a tile of op(A) and one of op(B):
float32 as IEEE products (no tf32) and the 16-bit floats in a float32
accumulator, float64 in a float64 one (Triton builds it to sm_90's fp64
mma.sync, IEEE fused multiply-adds). tl.dot takes no int32 or int64 (only
int8): for them each step of k adds a column of op(A) times a row of op(B) to
the tile (BLOCK_K steps unrolled), in the product's dtype, so they wrap as
numpy's do. Not a broadcast [m, k, n] product summed with tl.sum: kernels call
no @jit function of Triton's library (kernel.py's _import_file), and the
interpreter runs a reduction with a combine function of its own one element at
a time. A transpose is only a pair of strides.

Then the epilogue: the region's pointwise ops (codegen/triton/body.py) on the
tile, each other block argument loaded at the tile's indices of C as its shape
broadcasts there (a bias row as a [1, BLOCK_N] row, a full C0 of an
accumulated update as a tile, a scalar learning rate as one value), and every
yielded value stored at the tile of its result. An SGD update `W - lr * P`
(`accumulate`, Note [accumulated update] in codegen/llvm/kernels/matmul.py) is
that epilogue: W's tile is read once, as the tile is stored.

Batch dims: the program's batch index is split into C's batch axes; an operand
steps along an axis unless its dim there is a static 1 or it lacks the axis
(a 2-D B shared by every product). A dim unknown at build time equals C's at
run time (Note [unknown dims in a kernel]: the runtime's
check_no_hidden_broadcast holds it), so the strides follow the static shapes.
Offsets are int64 where they may pass 2**31 (one matrix may hold more
elements), int32 within the tiles of A and B that the k loop walks
(write_product).

The grid is (row tiles, column tiles), or (batch, row tiles, column tiles) for a
batched product: CUDA allows 2**31 - 1 programs on the first axis and 65535 on
the others, and the first holds what grows with the data, a product's rows or
the batch. So a batched product takes up to 65535 row tiles (a million rows of
the least tile, 16), and any product as many column tiles.
"""

from __future__ import annotations

from flowc.ir import BlockArgument, Operation, Value
from flowc.ir.errors import UnsupportedOpError

from ..body import UnsupportedPointwise, pointwise_lines
from ..expressions import triton_dtype
from ..kernel import Buffer, Extent, GridAxis, Parameter, TritonKernel, emits

# What tl.dot multiplies on an NVIDIA GPU (int8 too, which the IR has not), with the dtype it
# accumulates in; the schedule's tiles for them are at least 16 in every dim (passes/schedule_gpu.py's
# DOT_TILES).
ACCUMULATORS = {"float16": "tl.float32", "bfloat16": "tl.float32", "float32": "tl.float32", "float64": "tl.float64"}
DOT_DTYPES = tuple(ACCUMULATORS)
# C tiles this big get 8 warps where the schedule names none (`warps`, passes/schedule_gpu.py's dot_warps)
WIDE_TILE = 128 * 128


@emits("matmul", "dot_tiles")
def emit_matmul(op: Operation, name: str) -> TritonKernel:
    """The Triton kernel of matmul fusion op `op` (module docstring)."""
    return MatmulWriter(op, name).kernel()


class MatmulWriter:
    """The source of one matmul kernel, written line by line, and its parameters."""

    def __init__(self, op: Operation, name: str):
        self.op, self.name = op, name
        block = op.regions[0].entry
        self.block = block
        self.matmul = next(inner for inner in block.ops if inner.name == "matmul")
        # The contract makes the product's operands block arguments: their index is their slot.
        assert all(isinstance(v, BlockArgument) for v in self.matmul.operands), op
        self.product = self.matmul.result
        self.rank = self.product.type.rank  # C's rank; every result of the kernel has C's shape
        self.results = len(op.operands)  # the slot of the first result
        self.lines: list[str] = []
        self.parameters: list[tuple[str, Parameter]] = []
        for slot in range(len(op.operands) + len(op.results)):
            self.parameters.append((self.buffer(slot), Buffer(slot)))
        for slot, value in enumerate((*op.operands, *op.results)):
            self.parameters += [(self.extent(slot, axis), Extent(slot, axis)) for axis in range(value.type.rank)]

    # -- names ------------------------------------------------------------------------------

    def buffer(self, slot: int) -> str:
        return f"x{slot}" if slot < self.results else f"y{slot - self.results}"

    def extent(self, slot: int, axis: int) -> str:
        return f"{self.buffer(slot)}_{axis}"

    # -- the kernel -------------------------------------------------------------------------

    def kernel(self) -> TritonKernel:
        tile_m, tile_n, tile_k = (int(size) for size in self.op.attributes["tile"])
        c = self.results  # the first result's slot: its extents are C's
        self.write_indices()
        self.write_product()
        self.write_epilogue()
        arguments = [name for name, _ in self.parameters] + ["BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr",
                                                             "BLOCK_K: tl.constexpr"]
        source = (f"@triton.jit\ndef {self.name}({', '.join(arguments)}):\n"
                  + "".join(f"    {line}\n" for line in self.lines))
        batch = tuple(Extent(c, axis) for axis in range(self.rank - 2))
        tiles = (GridAxis((Extent(c, self.rank - 2),), tile_m), GridAxis((Extent(c, self.rank - 1),), tile_n))
        grid = (GridAxis(batch), *tiles) if batch else tiles
        return TritonKernel(name=self.name, source=source, parameters=tuple(self.parameters), grid=grid,
                            constants={"BLOCK_M": tile_m, "BLOCK_N": tile_n, "BLOCK_K": tile_k},
                            num_warps=self.op.attributes.get("warps", 8 if tile_m * tile_n >= WIDE_TILE else 4),
                            num_stages=self.op.attributes.get("stages"))

    def write_indices(self) -> None:
        """C's sizes, this program's rows and columns of C and its index along each batch axis of C."""
        c, rank = self.results, self.rank
        a = self.matmul.operands[0]
        k_axis = a.type.rank - (2 if self.matmul.transpose_a else 1)
        first = 1 if rank > 2 else 0  # the grid axis of row tiles: after the batch's, if there is one
        self.lines += [
            f"m = {self.extent(c, rank - 2)}",
            f"n = {self.extent(c, rank - 1)}",
            f"k = {self.extent(a.index, k_axis)}",
            *(["batch = tl.program_id(0).to(tl.int64)"] if rank > 2 else []),
            f"row_start = tl.program_id({first}).to(tl.int64) * BLOCK_M",
            f"column_start = tl.program_id({first + 1}).to(tl.int64) * BLOCK_N",
            "tile_rows = tl.arange(0, BLOCK_M)",
            "tile_columns = tl.arange(0, BLOCK_N)",
            "rows = row_start + tile_rows",
            "columns = column_start + tile_columns",
            "row_inside = rows < m",
            "column_inside = columns < n",
            "inside = row_inside[:, None] & column_inside[None, :]",
        ]
        rest = "batch"
        for axis in reversed(range(rank - 2)):  # the innermost batch axis varies fastest
            if axis == 0:
                self.lines.append(f"at0 = {rest}")
            else:
                self.lines += [f"at{axis} = {rest} % {self.extent(c, axis)}",
                               f"rest{axis} = {rest} // {self.extent(c, axis)}"]
                rest = f"rest{axis}"

    def base(self, value: BlockArgument, matrix_axes: int) -> str:
        """The offset of `value`'s elements for this program's product: its batch axes (all but the last
        `matrix_axes`) where it steps along them, each times the product of its later extents."""
        slot, shape = value.index, value.type.shape
        offset = self.rank - len(shape)
        terms = []
        for axis in range(len(shape) - matrix_axes):
            if shape[axis] == 1:
                continue  # broadcast along this axis of C
            later = [self.extent(slot, after) for after in range(axis + 1, len(shape))]
            terms.append(" * ".join([f"at{axis + offset}", *later]))  # the int64 index first: no i32 overflow
        return " + ".join(terms) or "0"

    def write_product(self) -> None:
        """`product`: this program's tile of op(A) @ op(B), in the product's dtype.

        The tile's first elements of A and B are found in int64 (`a_at`, `b_at`: scalars, once); the
        offsets within a tile, walked along k by advancing the pointers, are int32 where the extents
        are, as in the hot loop they cost a multiply per element."""
        matmul = self.matmul
        a, b = matmul.operands
        a_last = self.extent(a.index, a.type.rank - 1)
        b_last = self.extent(b.index, b.type.rank - 1)
        # op(A)[i, j] and op(B)[j, l] as strides over A's and B's row-major matrices.
        a_rows, a_inner = ("1", a_last) if matmul.transpose_a else (a_last, "1")
        b_inner, b_columns = ("1", b_last) if matmul.transpose_b else (b_last, "1")
        dtype = str(self.product.type.dtype)
        self.lines += [
            f"a_at = {plus(self.buffer(a.index), self.base(a, 2), strided('row_start', a_rows))}",
            f"b_at = {plus(self.buffer(b.index), self.base(b, 2), strided('column_start', b_columns))}",
            f"acc = tl.full([BLOCK_M, BLOCK_N], 0, {ACCUMULATORS.get(dtype, triton_dtype(self.product.type.dtype))})",
        ]
        if dtype in DOT_DTYPES:
            self.write_dot_steps(a_rows, a_inner, b_inner, b_columns)
            self.lines.append(f"product = acc.to({self.buffer(a.index)}.dtype.element_ty)")
        else:
            self.write_rank_one_steps(a_rows, a_inner, b_inner, b_columns)
            self.lines.append("product = acc")

    def write_dot_steps(self, a_rows: str, a_inner: str, b_inner: str, b_columns: str) -> None:
        """The k loop for tl.dot: a [BLOCK_M, BLOCK_K] tile of op(A) times a [BLOCK_K, BLOCK_N] one."""
        a_offsets = f"{strided('tile_rows[:, None]', a_rows)} + {strided('tile_inner[None, :]', a_inner)}"
        b_offsets = f"{strided('tile_inner[:, None]', b_inner)} + {strided('tile_columns[None, :]', b_columns)}"
        self.lines += [
            "tile_inner = tl.arange(0, BLOCK_K)",
            f"a_tiles = a_at + {a_offsets}",
            f"b_tiles = b_at + {b_offsets}",
            "for start in range(0, k, BLOCK_K):",
            "    a_tile = tl.load(a_tiles, mask=row_inside[:, None] & (tile_inner[None, :] < k - start), other=0)",
            "    b_tile = tl.load(b_tiles, mask=(tile_inner[:, None] < k - start) & column_inside[None, :], other=0)",
            # float32 operands multiplied exactly (not as tf32), as the reference does
            '    acc = tl.dot(a_tile, b_tile, acc, input_precision="ieee")',
            f"    a_tiles += {strided('BLOCK_K', a_inner)}",
            f"    b_tiles += {strided('BLOCK_K', b_inner)}",
        ]

    def write_rank_one_steps(self, a_rows: str, a_inner: str, b_inner: str, b_columns: str) -> None:
        """The k loop without tl.dot: a column of op(A) times a row of op(B) per step of k, BLOCK_K steps
        unrolled. The masks compare the step as a vector (`tile_rows * 0 + step`, which the compiler
        folds): the interpreter makes a Python int's comparison a Python bool, which no mask takes."""
        self.lines += [
            f"a_columns = a_at + {strided('tile_rows', a_rows)}",
            f"b_rows = b_at + {strided('tile_columns', b_columns)}",
            "for start in range(0, k, BLOCK_K):",
            "    for step in tl.static_range(BLOCK_K):",
            "        a_column = tl.load(a_columns, mask=row_inside & (tile_rows * 0 + step < k - start), other=0)",
            "        b_row = tl.load(b_rows, mask=(tile_columns * 0 + step < k - start) & column_inside, other=0)",
            "        acc += a_column[:, None] * b_row[None, :]",
            f"        a_columns += {a_inner}",
            f"        b_rows += {b_inner}",
        ]

    def write_epilogue(self) -> None:
        """Load the other block arguments the region reads, compute its pointwise ops, store every result."""
        names: dict[Value, str] = {self.product: "product"}
        for argument in self.block.args:
            if any(user is not self.matmul for user, _ in argument.uses):
                names[argument] = self.load_at_tile(argument)
        ops = [inner for inner in self.block.ops if inner is not self.matmul]
        try:
            self.lines += pointwise_lines(ops, names)
        except UnsupportedPointwise as error:
            culprit = next(inner for inner in ops if inner.name == str(error))
            raise UnsupportedOpError(f"the gpu target has no Triton form of {culprit.name} in a matmul epilogue; "
                                     "target 'cpu' runs it", op=culprit.display_name, where=culprit.loc) from None
        batch = "batch * m * n + " if self.rank > 2 else ""
        self.lines.append(f"c_at = {batch}rows[:, None] * n + columns[None, :]")
        for index, value in enumerate(self.block.terminator.operands):
            out = self.buffer(self.results + index)
            self.lines.append(f"tl.store({out} + c_at, tl.broadcast_to({names[value]}, [BLOCK_M, BLOCK_N]), "
                              "mask=inside)")

    def load_at_tile(self, argument: BlockArgument) -> str:
        """Load `argument` at this tile's indices of C, as its shape broadcasts there: a [BLOCK_M, BLOCK_N]
        tile, a [1, BLOCK_N] row, a [BLOCK_M, 1] column or one value."""
        slot, shape = argument.index, argument.type.shape
        rank = len(shape)
        terms, masks = [self.buffer(slot), self.base(argument, min(rank, 2))], []
        if rank >= 2 and shape[-2] != 1:
            terms.append(strided("rows[:, None]", self.extent(slot, rank - 1)))
            masks.append("row_inside[:, None]")
        if rank >= 1 and shape[-1] != 1:
            terms.append("columns[None, :]")
            masks.append("column_inside[None, :]")
        mask = f", mask={' & '.join(masks)}, other=0" if masks else ""
        name = f"{self.buffer(slot)}_tile"
        self.lines.append(f"{name} = tl.load({plus(*terms)}{mask})")
        return name


def strided(index: str, stride: str) -> str:
    return index if stride == "1" else f"{index} * {stride}"


def plus(*terms: str) -> str:
    return " + ".join(term for term in terms if term != "0")
