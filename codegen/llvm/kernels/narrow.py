"""Generated code for narrow products (Note [narrow products] in passes/schedule.py).

C (m x n) = op(A) (m x k) @ op(B) (k x n) with n <= NARROW, every C[i, j] summed in k order, with
explicit vector types so the schedule is ours and not the vectorizer's guess. Three tilings, which
the schedule pass chooses and records with the tile sizes (`tiling`, `tile = [m, n, k]`); the
code here follows them:

- Dot tiles (A stored m x k, the forward x @ W): C[i, j] is a dot product of A's row i and op(B)'s
  column j, both contiguous along k, so one fma does `lanes` useful multiply-adds and each loaded
  vector of A feeds n chains. op(B)'s columns are B's rows when transposed; otherwise B is first
  copied, transposed, to the stack (at most PACK_BYTES, ir/ops/kernel_space.py). A few rows at once
  (the tile's m), as many as keep the m x n accumulators in registers; lanes are combined
  pairwise at the end, then the k % lanes last terms added in order.
- Row tiles (the rest: B too big to copy, or k unknown): a row
  of C is one vector of its n columns (padded to a power of two, the padding lanes zero), updated
  per p by one fma with a[i, p] broadcast. Several rows at once, so that each loaded row of op(B)
  feeds independent fma chains (an fma's latency is about four of its issue slots; one chain
  would run at a quarter of the unit's rate).
- Column tiles (op(A) = A^T, A stored k x m: the weight gradient x^T @ dz): `lanes` consecutive
  rows of C are one vector per column j; per p, one vector load of A's row p, then n fmas with
  B[p, j] broadcast. The n chains are independent and every lane does useful work, where a row
  tile of 10 columns pads to 16 lanes and loads A one element at a time. Each column vector goes
  to C as one scatter (C0's column gathered first for an update).

Dot tiles are one internal function per product, shared by its row path and, for a product split
by k across threads (Note [split-k products] in matmul.py), by its slices (narrow_slices): each
multiplies every row over a stretch of k into a partial product.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir as ll

from flowc.ir import Operation
from flowc.ir.types import DType

from ..kernel import Kernel, alloca_at_start, for_range, min_of
from ..program import schedule_of
from ..types import I32, I64, compute_type, declared, load_value, storage_type, store_value
from ..vectors import all_lanes, gather, load_vector, scatter, splat


@dataclass(frozen=True)
class Tiles:
    """A narrow product's tiles as its schedule records them: `tiling` and `tile = [m, n, k]`."""

    tiling: str  # "dot", "columns" or "rows"
    rows: int  # m: rows of C per tile
    columns: int  # n: columns of C at once (a dot or column tile's accumulators per row)
    depth: int  # k: terms of k per step, a dot tile's vector lanes (1 otherwise)

    @property
    def lanes(self) -> int:
        """The lanes of a dot tile's vectors (along k) or a column tile's (along m)."""
        return self.depth if self.tiling == "dot" else self.rows


def tiles_of(op: Operation) -> Tiles:
    """The tiles of fusion op `op`'s narrow product (schedule "narrow" or "split_k")."""
    schedule = schedule_of(op)
    return Tiles(str(schedule["tiling"]), *schedule["tile"])  # type: ignore[misc]


@dataclass
class Target:
    """Where C's elements go: C itself, or C0 + alpha * C (Note [accumulated update] in matmul.py) with
    C0's elements at the same offsets from `start`, rounded as the epilogue would round them."""

    pointer: ll.Value
    dtype: DType
    start: ll.Value | None = None
    alpha: ll.Value | None = None

    def store(self, b: ll.IRBuilder, value: ll.Value, offset: ll.Value) -> None:
        if self.start is not None:
            value = b.fadd(load_value(b, b.gep(self.start, [offset]), self.dtype), b.fmul(self.alpha, value))
        store_value(b, value, b.gep(self.pointer, [offset]), self.dtype)


def narrow_product(kernel: Kernel, matmul: Operation, pa: ll.Value, pb: ll.Value, c: ll.Value,
                   m: ll.Value, k: ll.Value, full_m: ll.Value,
                   accumulate: tuple[ll.Value, ll.Value] | None = None) -> None:
    """m rows of C from pa (op(A)'s first row) into c (or c = C0 + alpha * C for accumulate = (C0's
    rows, alpha)); full_m: op(A)'s row count (A's row stride when transposed)."""
    b = kernel.b
    pc = Target(c, matmul.result.type.dtype, *(accumulate or ()))
    if matmul.result.type.shape[-1] == 0:
        return  # C has no elements
    tiles = tiles_of(kernel.op)
    if tiles.tiling == "columns":
        n = matmul.result.type.shape[-1]
        columns = [range(j, min(n, j + tiles.columns)) for j in range(0, n, tiles.columns)]

        def column_tile(first: ll.Value) -> None:
            for js in columns:
                _column_tile(kernel, matmul, pa, pb, pc, first, tiles.lanes, js, k, full_m)

        done = _tiles(b, m, tiles.rows, column_tile)
    elif tiles.tiling == "dot":
        _shared_dot_tiles(kernel, matmul, tiles, pa, pb, pc, m, k, ll.Constant(I64, 0), k)
        return
    else:
        done = _tiles(b, m, tiles.rows,
                      lambda first: _row_tile(kernel, matmul, pa, pb, pc, first, tiles.rows, k, full_m))
    if not _whole_tiles(matmul, tiles.rows):
        with for_range(b, done, m, "nr") as i:  # rows left over, one by one
            _row_tile(kernel, matmul, pa, pb, pc, i, 1, k, full_m)


def _whole_tiles(matmul: Operation, rows: int) -> bool:
    """Whether every call's m is a multiple of the tile's `rows`, so that no rows are left over: C's m
    is known and a multiple of it, and the pieces of the work are whole tiles (matmul_work), each
    within one matrix of a batch. The single-row tiles that would never run are then not emitted:
    they were about a third of a dot tile function's code, and of its cold compile."""
    m = matmul.result.type.shape[-2]
    return isinstance(m, int) and m % rows == 0


def _tiles(b: ll.IRBuilder, m: ll.Value, size: int, emit) -> ll.Value:  # type: ignore[no-untyped-def]
    """emit(first) for each whole tile of `size` rows; returns the rows they cover."""
    width = ll.Constant(I64, size)
    count = b.udiv(m, width)
    with for_range(b, ll.Constant(I64, 0), count, "nt") as tile:
        emit(b.mul(tile, width))
    return b.mul(count, width)


def _padded(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _fma(b: ll.IRBuilder, vector: ll.VectorType) -> ll.Function:
    bits = 32 if isinstance(vector.element, ll.FloatType) else 64
    name = f"llvm.fma.v{vector.count}f{bits}"
    return declared(b.module, name, vector, [vector] * 3)


def _accumulators(kernel: Kernel, vector: ll.VectorType, count: int) -> list[ll.Value]:
    zeros = ll.Constant(vector, [ll.Constant(vector.element, 0.0)] * vector.count)
    sums = [kernel.alloca(vector, f"acc{r}") for r in range(count)]  # promoted to registers by LLVM
    for total in sums:
        kernel.b.store(zeros, total)
    return sums


def _b_element(b: ll.IRBuilder, matmul: Operation, pb: ll.Value, p: ll.Value, j: int, k: ll.Value) -> ll.Value:
    """op(B)[p, j]: B stored k x n, or n x k when transposed."""
    n = matmul.result.type.shape[-1]
    column = ll.Constant(I64, j)
    offset = b.add(b.mul(column, k), p) if matmul.transpose_b else b.add(b.mul(p, ll.Constant(I64, n)), column)
    return load_value(b, b.gep(pb, [offset]), matmul.result.type.dtype)


def _row_tile(kernel: Kernel, matmul: Operation, pa: ll.Value, pb: ll.Value, pc: Target, first: ll.Value,
              rows: int, k: ll.Value, full_m: ll.Value) -> None:
    """Rows first .. first + rows of C, one vector of the n columns each."""
    b = kernel.b
    dtype = matmul.result.type.dtype
    n = matmul.result.type.shape[-1]
    vector = ll.VectorType(compute_type(dtype), _padded(n))
    fma = _fma(b, vector)
    sums = _accumulators(kernel, vector, rows)
    with for_range(b, ll.Constant(I64, 0), k, "np") as p:
        y: ll.Value = ll.Constant(vector, [ll.Constant(vector.element, 0.0)] * vector.count)  # row p of op(B)
        for j in range(n):
            y = b.insert_element(y, _b_element(b, matmul, pb, p, j, k), ll.Constant(I32, j))
        for r, total in enumerate(sums):
            i = b.add(first, ll.Constant(I64, r))
            a_offset = b.add(b.mul(p, full_m), i) if matmul.transpose_a else b.add(b.mul(i, k), p)
            x = splat(b, load_value(b, b.gep(pa, [a_offset]), dtype), vector.count)
            b.store(b.call(fma, [x, y, b.load(total)]), total)
    width = ll.Constant(I64, n)
    for r, total in enumerate(sums):
        row = b.mul(b.add(first, ll.Constant(I64, r)), width)
        values = b.load(total)
        for j in range(n):
            pc.store(b, b.extract_element(values, ll.Constant(I32, j)), b.add(row, ll.Constant(I64, j)))


def _column_tile(kernel: Kernel, matmul: Operation, pa: ll.Value, pb: ll.Value, pc: Target, first: ll.Value,
                 lanes: int, columns: range, k: ll.Value, full_m: ll.Value) -> None:
    """Rows first .. first + lanes of C = A^T @ op(B) in the given columns, one vector of those rows
    per column."""
    b = kernel.b
    dtype = matmul.result.type.dtype
    n = matmul.result.type.shape[-1]
    vector = ll.VectorType(compute_type(dtype), lanes)
    fma = _fma(b, vector)
    sums = _accumulators(kernel, vector, len(columns))
    with for_range(b, ll.Constant(I64, 0), k, "np") as p:
        row = b.gep(pa, [b.add(b.mul(p, full_m), first)])  # A[p, first:first + lanes], contiguous
        x = load_vector(b, row, dtype, vector.count)
        for j, total in zip(columns, sums):
            y = splat(b, _b_element(b, matmul, pb, p, j, k), vector.count)
            b.store(b.call(fma, [x, y, b.load(total)]), total)
    # Each column to C as one scatter (its rows are n apart), C0's column gathered first for an
    # update, rounded as Target.store rounds; unrolled scalar stores took LLVM's SLP vectorizer about
    # 100 ms to compile, and a loop of them through a stack tile cost a training step 1 - 2 us.
    offsets = [lane * n for lane in range(lanes)]
    start = b.mul(first, ll.Constant(I64, n))
    for j, total in zip(columns, sums):
        at = b.add(start, ll.Constant(I64, j))
        value = b.load(total)
        if pc.start is not None:
            c0 = gather(b, b.gep(pc.start, [at]), offsets, dtype, all_lanes(lanes))
            value = b.fadd(c0, b.fmul(splat(b, pc.alpha, lanes), value))
        scatter(b, value, b.gep(pc.pointer, [at]), offsets, dtype, all_lanes(lanes))


def narrow_slices(kernel: Kernel, matmul: Operation, pa: ll.Value, pb: ll.Value, partials: ll.Value,
                  m: ll.Value, k: ll.Value, slices: ll.Value) -> None:
    """Note [split-k products] in matmul.py: for each slice s in [begin, end) of `slices`, the product of
    all m rows over the s-th stretch of k into partials + s * m * n. The stretches are whole vectors
    (`lanes` of k) cut as flowc_parallel_for cuts that many units into `slices` chunks, so slice s
    covers the rows of B that chunk s of a column-tiled A^T @ dz over the same k writes."""
    b = kernel.b
    n = matmul.result.type.shape[-1]
    tiles = tiles_of(kernel.op)
    width = ll.Constant(I64, tiles.lanes)
    one = ll.Constant(I64, 1)
    units = b.udiv(b.add(k, b.sub(width, one)), width)
    stretch = b.mul(b.udiv(b.add(units, b.sub(slices, one)), slices), width)
    with for_range(b, kernel.begin, kernel.end, "ks") as s:
        k0 = min_of(b, b.mul(s, stretch), k)
        k1 = min_of(b, b.add(k0, stretch), k)
        pc = Target(b.gep(partials, [b.mul(s, b.mul(m, ll.Constant(I64, n)))]), matmul.result.type.dtype)
        _shared_dot_tiles(kernel, matmul, tiles, pa, pb, pc, m, k, k0, b.sub(k1, k0))


class _Frame:
    """What the tile emitters use of a Kernel (its builder and stack slots), for a function of their own."""

    def __init__(self, function: ll.Function):
        self.b = ll.IRBuilder(function.append_basic_block("entry"))
        self._alloca_block = self.b.block

    def alloca(self, type: ll.Type, name: str = "") -> ll.Value:
        return alloca_at_start(self.b, self._alloca_block, type, name)


def _shared_dot_tiles(kernel: Kernel, matmul: Operation, tiles: Tiles, pa: ll.Value, pb: ll.Value, pc: Target,
                      m: ll.Value, k: ll.Value, k0: ll.Value, kk: ll.Value) -> None:
    """_dot_tiles as a call of one function per product and target kind, so that a split-k product's
    row path and slices (Note [split-k products]) share its code: the tiles, unrolled, are most of
    the product's compile time."""
    b = kernel.b
    element = compute_type(matmul.result.type.dtype)
    pointer = storage_type(matmul.result.type.dtype).as_pointer()
    accumulates = pc.start is not None
    name = f"kernel{kernel.number}_dot_tiles{'_accumulated' if accumulates else ''}"
    function = kernel.module.globals.get(name)
    if function is None:
        function = ll.Function(kernel.module, ll.FunctionType(ll.VoidType(), [
            pointer, pointer, pointer, pointer, element, I64, I64, I64, I64]), name=name)
        function.linkage = "internal"
        frame = _Frame(function)
        fa, fb, fc, f0, falpha, fm, fk, fk0, fkk = function.args
        target = Target(fc, matmul.result.type.dtype, f0 if accumulates else None, falpha if accumulates else None)
        # A k known here is a constant inside: the rows' and columns' strides become displacements of
        # the loads, not additions that compete with the fmas for their ports.
        static = k if isinstance(k, ll.Constant) else fk
        _dot_tiles(frame, matmul, tiles, fa, fb, target, fm, static, fk0, fkk)  # type: ignore[arg-type]
        frame.b.ret_void()
    start = b.bitcast(pc.start, pointer) if accumulates else ll.Constant(pointer, None)
    alpha = pc.alpha if accumulates else ll.Constant(element, 0.0)
    b.call(function, [b.bitcast(pa, pointer), b.bitcast(pb, pointer), b.bitcast(pc.pointer, pointer), start, alpha,
                      m, k, k0, kk])


def _dot_tiles(kernel: Kernel, matmul: Operation, tiles: Tiles, pa: ll.Value, pb: ll.Value, pc: Target,
               m: ll.Value, k: ll.Value, k0: ll.Value, kk: ll.Value) -> None:
    """m rows as dot tiles, then one by one (op(B) copied transposed first, unless it is), over the
    kk terms from k0 of k."""
    b = kernel.b
    n = matmul.result.type.shape[-1]
    # op(B)'s column j at j * k, in B itself or in the copy (which has room for all of k x n): a
    # constant stride for a known k.
    columns = b.gep(pb, [k0]) if matmul.transpose_b else _transposed_copy(kernel, matmul, pb, k0, kk)
    lanes, rows, group = tiles.lanes, tiles.rows, tiles.columns
    column_groups = [range(j, min(n, j + group)) for j in range(0, n, group)]
    a_start = b.gep(pa, [k0])

    def tile(first: ll.Value, rows: int) -> None:
        for js in column_groups:
            _dot_tile(kernel, matmul, a_start, columns, k, pc, first, rows, js, lanes, kk)

    done = _tiles(b, m, rows, lambda first: tile(first, rows))
    if rows > 1 and not _whole_tiles(matmul, rows):
        with for_range(b, done, m, "nd") as i:  # rows left over, one by one
            tile(i, 1)


def _transposed_copy(kernel: Kernel, matmul: Operation, pb: ll.Value, k0: ll.Value, kk: ll.Value) -> ll.Value:
    """Rows k0 .. k0 + kk of B (k x n) copied to a stack buffer, transposed: B[k0 + p, j] at j * k + p."""
    b = kernel.b
    dtype = matmul.result.type.dtype
    k, n = matmul.operands[1].type.shape[-2], matmul.result.type.shape[-1]
    buffer = kernel.alloca(ll.ArrayType(storage_type(dtype), k * n), "b_columns")  # as stored: read as B is
    buffer.align = 64  # whole vectors of a column at a multiple of `lanes` stay in one cache line
    columns = b.gep(buffer, [ll.Constant(I64, 0), ll.Constant(I64, 0)])
    width = ll.Constant(I64, n)
    with for_range(b, ll.Constant(I64, 0), kk, "pk") as p:
        row = b.mul(b.add(k0, p), width)
        for j in range(n):
            value = b.load(b.gep(pb, [b.add(row, ll.Constant(I64, j))]), align=dtype.itemsize)
            b.store(value, b.gep(columns, [b.add(p, ll.Constant(I64, j * k))]), align=dtype.itemsize)
    return columns


def _dot_tile(kernel: Kernel, matmul: Operation, pa: ll.Value, columns: ll.Value, stride: ll.Value, pc: Target,
              first: ll.Value, rows: int, js: range, lanes: int, k: ll.Value) -> None:
    """C[first .. first + rows, js] as dot products over k terms of A's rows and op(B)'s columns
    (row i at pa + i * stride, column j at columns + j * stride)."""
    b = kernel.b
    dtype = matmul.result.type.dtype
    n = matmul.result.type.shape[-1]
    element = compute_type(dtype)
    vector = ll.VectorType(element, lanes)
    fma = _fma(b, vector)
    sums = [_accumulators(kernel, vector, len(js)) for _ in range(rows)]
    a_rows = [b.gep(pa, [b.mul(b.add(first, ll.Constant(I64, r)), stride)]) for r in range(rows)]
    b_columns = [b.gep(columns, [b.mul(ll.Constant(I64, j), stride)]) for j in js]
    width = ll.Constant(I64, lanes)
    steps = b.udiv(k, width)

    def load(row: ll.Value, p: ll.Value) -> ll.Value:
        return load_vector(b, b.gep(row, [p]), dtype, lanes)

    with for_range(b, ll.Constant(I64, 0), steps, "dp") as step:
        p = b.mul(step, width)
        xs = [load(row, p) for row in a_rows]
        for c, column in enumerate(b_columns):
            y = load(column, p)
            for r, x in enumerate(xs):
                total = sums[r][c]
                b.store(b.call(fma, [x, y, b.load(total)]), total)
    results = [[kernel.alloca(element, "dot") for _ in js] for _ in range(rows)]
    totals = _sums_of_lanes(b, [b.load(total) for row in sums for total in row])
    for r in range(rows):
        for c in range(len(js)):
            b.store(totals[r * len(js) + c], results[r][c])
    if not (isinstance(k, ll.Constant) and k.constant % lanes == 0):
        with for_range(b, b.mul(steps, width), k, "dt") as p:  # the k % lanes last terms, in order
            xs = [load_value(b, b.gep(row, [p]), dtype) for row in a_rows]
            for c, column in enumerate(b_columns):
                y = load_value(b, b.gep(column, [p]), dtype)
                for r, x in enumerate(xs):
                    b.store(b.fadd(b.load(results[r][c]), b.fmul(x, y)), results[r][c])
    for r in range(rows):
        row = b.mul(b.add(first, ll.Constant(I64, r)), ll.Constant(I64, n))
        for c, j in enumerate(js):
            pc.store(b, b.load(results[r][c]), b.add(row, ll.Constant(I64, j)))


def _sums_of_lanes(b: ll.IRBuilder, vectors: list[ll.Value]) -> list[ll.Value]:
    """The sum of each vector's lanes, lanes k and k + half added, halving (the order of reduction.py's
    partial sums), for `lanes` vectors at a time: each step adds the halves of two vectors in one
    vector addition (their low halves side by side, plus their high halves), so 16 sums cost 15
    additions instead of 64, and lane i of the last vector holds vector i's sum. A last group is
    padded with -0.0, which leaves every sum as it is."""
    width = vectors[0].type.count
    padding = ll.Constant(vectors[0].type, [ll.Constant(vectors[0].type.element, -0.0)] * width)
    sums: list[ll.Value] = []
    for start in range(0, len(vectors), width):
        group = vectors[start:start + width]
        group += [padding] * (width - len(group))
        span = width  # lanes per vector's partial sums
        while span > 1:
            half = span // 2
            low = [lane for base in range(0, width, span) for lane in range(base, base + half)]
            high = [lane + half for lane in low]
            group = [b.fadd(b.shuffle_vector(x, y, _indices(low + [width + lane for lane in low])),
                            b.shuffle_vector(x, y, _indices(high + [width + lane for lane in high])))
                     for x, y in zip(group[::2], group[1::2])]
            span = half
        sums += [b.extract_element(group[0], ll.Constant(I32, i)) for i in range(width)]
    return sums[:len(vectors)]


def _indices(lanes: range) -> ll.Constant:
    return ll.Constant(ll.VectorType(I32, len(lanes)), [ll.Constant(I32, lane) for lane in lanes])
