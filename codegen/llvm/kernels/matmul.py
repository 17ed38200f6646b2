"""Matmul kernels: one (batched) matrix product, then its elementwise epilogue in one pass.

Note [BLAS choice]: float matmuls call OpenBLAS's sgemm/dgemm from the
`scipy-openblas32` wheel, the build numpy and scipy ship, maintained by
their developers. A hand-written kernel would need packing, register
blocking and per-ISA microkernels to get near it; OpenBLAS is that already,
and it threads itself (see matmul_work), on flowc's pool (Note [one pool] in
runtime/native/flowc_rt.c). The wheel is one self-contained shared library
(libscipy_openblas.so, symbols prefixed `scipy_`, 32-bit ints), so an
exported flowc library can carry a copy of it beside itself and find it
through an $ORIGIN rpath, with no Python and no flowc present. Integer
matmuls (rare) are plain loops.

The epilogue (bias add, activation, an optimizer's update) reads each row
block of the product where sgemm left it and writes the kernel's result at
the same index, so it costs one pass over the block while it is in cache.
An SGD update `W - lr * P` needs no epilogue at all: gemm accumulates into W
(Note [accumulated update]), which saves the pass over W that an epilogue
would make.

A kernel scheduled "direct" has a convolution for its product (conv2d or
conv2d_backprop_filter: Note [direct convolution] in passes/schedule.py), written
by direct_conv.py or direct_filter.py piece by piece, each piece's epilogue after it.
"""

from __future__ import annotations

import hashlib

from llvmlite import ir as ll

from flowc.ir import BlockArgument, Operation, Value
from flowc.ir.ops.kernel_space import PRODUCTS, accumulated_update

from ..blas import GEMM, OPENBLAS_SET_CALLBACK, OPENBLAS_SET_THREADS
from ..kernel import Kernel, decompose, dot, emit_dim, for_range, min_of, product
from ..launch import GRAIN, PARALLEL_FOR, SCRATCH_BYTES, Launch, kernel_kind
from ..program import DimTable, schedule_of
from ..types import I32, I64, PTR, compute_type, constant_of, declared, load_value, store_value
from .direct_conv import DirectConvolution
from .direct_filter import DirectFilterGradient, filter_items
from .loop import elementwise_loop
from .narrow import Target, narrow_product, narrow_slices, tiles_of

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


# Multiply-adds per piece of a narrow product's parallel work (the pool runs anything under two
# pieces inline, and makes equal pieces). Small enough that a classifier's 784 -> 10 layer at a
# batch of 100 splits in two (faster than inline: a training loop keeps the pool's workers awake
# between steps; bench/RESULTS.md).
FLOP_GRAIN = 1 << 18




def matmul_work(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, op: Operation) -> tuple[ll.Value, ll.Value]:
    """Work = the rows of every product in the batch. BLAS products are one piece: OpenBLAS threads
    each call itself, as gangs on flowc's pool (Note [one pool]). Narrow ones (generated code) split
    across the pool by FLOP_GRAIN.

    Splitting the rows across flowc's pool as well as OpenBLAS's threads was slower (measured
    before OpenBLAS used flowc's pool: bench/RESULTS.md), and so was splitting them with a
    single-threaded OpenBLAS (each piece packs B again). A split would now also make
    each piece's OpenBLAS call start threads of its own (a gang inside a task). The kernel still
    takes any row range [begin, end), so a split needs only a different grain here.

    A narrow product's work is counted in its schedule's tiles (the tile's m rows), so that the
    pieces are whole tiles: 784 x 100 @ 100 x 10 in two pieces of 392 rows left 8 of each to
    single-row tiles. The kernel turns them back into rows (_rows_of_tiles).
    """
    matmul = _matmul_of(op)
    a, c = matmul.operands[0], matmul.result
    one = ll.Constant(I64, 1)
    if _schedule(op) == "direct" and matmul.name == "conv2d_backprop_filter":
        # Its items, in one piece per thread: every piece passes over all of x and dy (direct_filter.py),
        # so more pieces than threads would read them from memory more often for no better balance.
        items = ll.Constant(I64, filter_items(matmul))
        threads = b.sext(b.call(declared(b.module, "flowc_num_threads", I32, []), []), I64)
        grain = b.udiv(items, b.select(b.icmp_signed(">", threads, one), threads, one))
        return items, b.select(b.icmp_signed(">", grain, one), grain, one)
    if _schedule(op) == "direct":  # a convolution's output rows (image, row), pieces of FLOP_GRAIN
        _, height, width, out = c.type.shape
        kh, kw, channels, _ = matmul.operands[1].type.shape
        rows = b.mul(emit_dim(b, dims, dims_pointer, a, 0), ll.Constant(I64, height))
        grain = max(1, FLOP_GRAIN // max(1, width * out * kh * kw * channels))
        return rows, ll.Constant(I64, grain)
    rows = product(b, [emit_dim(b, dims, dims_pointer, c, axis) for axis in range(c.type.rank - 1)])
    if not _is_narrow(op):
        return rows, b.select(b.icmp_signed(">", rows, one), rows, one)
    k = emit_dim(b, dims, dims_pointer, a, a.type.rank - 2 if matmul.transpose_a else a.type.rank - 1)
    height = ll.Constant(I64, tiles_of(op).rows)
    per_tile = b.mul(b.add(b.mul(k, ll.Constant(I64, c.type.shape[-1])), one), height)
    grain = b.udiv(ll.Constant(I64, FLOP_GRAIN), per_tile)
    tiles = b.udiv(b.add(rows, b.sub(height, one)), height)
    return tiles, b.select(b.icmp_signed(">", grain, one), grain, one)


def _rows_of_tiles(kernel: Kernel, matmul: Operation) -> None:
    """A narrow product's [begin, end) counts tiles (matmul_work): make them rows, the last clipped."""
    b = kernel.b
    c = matmul.result
    rows = product(b, [kernel.dim(c, axis) for axis in range(c.type.rank - 1)])
    height = ll.Constant(I64, tiles_of(kernel.op).rows)
    kernel.begin, kernel.end = (min_of(b, b.mul(tiles, height), rows) for tiles in (kernel.begin, kernel.end))


def _matmul_of(op: Operation) -> Operation:
    """The kernel's product: a matmul, or a convolution (schedule "direct")."""
    return next(inner for inner in op.regions[0].entry.ops if inner.name in PRODUCTS)


def launch_matmul(launch: Launch) -> None:
    """Note [split-k products]: a narrow x @ W with a short batch and a long k splits across the
    pool by k, not by rows, where the rule its schedule records holds (passes/schedule.py: at
    least two slices, m * n * slices elements within `partial_bytes`, and slices * m <= k).
    Each piece multiplies every row over its own stretch of k, that is its own rows of W, into a
    partial product in the scratch; then the caller sums the partials in k's order and runs the
    epilogue.

    Why: the weight gradient x^T @ dz (column tiles) splits by W's rows, and its update writes those
    rows in place, so after a training step each core holds the W rows it wrote, modified. A row
    split of the next step's x @ W made every piece read all of W, half of it from the other core's
    cache, and the update then took those lines back, so the two products alternating ran well
    below their speed alone; split by k at the same rows as the gradient, each core reads only the
    rows it holds (a C model's figures: bench/RESULTS.md). The stretches are cut as
    flowc_parallel_for cuts the gradient's tiles (narrow_slices), and the pool's caller claims the
    first chunk of each, so each core keeps its rows.

    The sum's order depends on the slice count, that is on the thread count: results may differ from
    a one-thread run by rounding, as a threaded BLAS's may.
    """
    op = launch.kernel.op
    matmul = _matmul_of(op)
    if _schedule(op) != "split_k":
        launch.default()
        return
    b = launch.b
    dims, dims_pointer = launch.kernel.dims, launch.dims_pointer
    a, c = matmul.operands[0], matmul.result
    m, k = emit_dim(b, dims, dims_pointer, c, 0), emit_dim(b, dims, dims_pointer, a, 1)
    n, lanes, one = c.type.shape[-1], ll.Constant(I64, tiles_of(op).lanes), ll.Constant(I64, 1)
    units = b.udiv(b.add(k, b.sub(lanes, one)), lanes)
    # The gradient's grain (matmul_work): its tiles are `lanes` rows of W, over the batch.
    per_unit = b.mul(b.add(b.mul(m, ll.Constant(I64, n)), one), lanes)
    grain = b.udiv(ll.Constant(I64, FLOP_GRAIN), per_unit)
    grain = b.select(b.icmp_signed(">", grain, one), grain, one)
    chunks = declared(launch.kernel.module, "flowc_parallel_chunks", I64, [I64, I64])
    slices = b.call(chunks, [units, grain])
    size = b.mul(b.mul(slices, m), ll.Constant(I64, n * c.type.dtype.itemsize))
    # The partials go to the entry's scratch: the recorded bound, and never more than the scratch.
    limit = min(int(schedule_of(op)["partial_bytes"]), SCRATCH_BYTES)
    # No more partials than W has elements: the combine's pass over them, on the caller alone, grows
    # with the batch, what the split saves with W (a 256 x 512 @ 512 x 10 inference product in 4
    # slices ran 1 - 2 % slower than by rows).
    fits = b.and_(b.and_(b.icmp_signed(">=", slices, ll.Constant(I64, 2)),
                         b.icmp_signed("<=", size, ll.Constant(I64, limit))),
                  b.icmp_signed("<=", b.mul(slices, m), k))
    with b.if_else(fits) as (split, whole):
        with split:
            count = launch.local(I64, "slices")
            b.store(slices, count)
            context = launch.context([launch.scratch(), count])
            b.call(launch.parallel_for, [_emit_slices(launch.kernel.sibling("slices"), matmul), context, slices, one])
            b.call(launch.kernel.function, [context, ll.Constant(I64, 0), m])  # the combine (emit_matmul_kernel)
        with whole:
            launch.default(launch.context([ll.Constant(PTR, None), ll.Constant(PTR, None)]))


def _schedule(op: Operation) -> str:
    """The product kernel's schedule (passes/schedule.py): blas, narrow, split_k or generic."""
    return str(schedule_of(op)["schedule"])


def _is_narrow(op: Operation) -> bool:
    return _schedule(op) in ("narrow", "split_k")


def _emit_slices(kernel: Kernel, matmul: Operation) -> ll.Function:
    """Slices [begin, end) of a split-k product (launch_matmul) into their partials."""
    b = kernel.b
    a, bb = matmul.operands
    dtype = matmul.result.type.dtype
    partials, count = kernel.extra_pointer(0), kernel.extra_pointer(1)
    slices = b.load(b.bitcast(count, I64.as_pointer()))
    m, k = kernel.dim(matmul.result, 0), kernel.dim(a, 1)
    narrow_slices(kernel, matmul, kernel.operand_pointer(a.index, dtype), kernel.operand_pointer(bb.index, dtype),
                  b.bitcast(partials, compute_type(dtype).as_pointer()), m, k, slices)
    return kernel.finish()


@kernel_kind("matmul", matmul_work, launch_matmul, schedules=("blas", "narrow", "split_k", "generic", "direct"))
def emit_matmul_kernel(kernel: Kernel) -> None:
    """Rows [begin, end) of the flattened (batch..., m) product, then the epilogue on those rows. A
    product that may split by k (launch_matmul) finds in its context, after the dims, either null
    (compute the rows) or the slices' partials and their count (sum them: the combine), so the
    epilogue's code, much of the kernel's compile time, is there once."""
    matmul = _matmul_of(kernel.op)
    if _schedule(kernel.op) == "direct":
        _emit_direct(kernel, matmul)
        return
    if _schedule(kernel.op) != "split_k":
        if _is_narrow(kernel.op):
            _rows_of_tiles(kernel, matmul)
        _emit_with(kernel, matmul, _emit_products)
        return
    b = kernel.b
    partials = kernel.extra_pointer(0)
    combines = b.icmp_unsigned("!=", partials, ll.Constant(PTR, None))
    begin, end = kernel.begin, kernel.end
    _rows_of_tiles(kernel, matmul)  # the row path counts tiles; the combine, rows
    kernel.begin, kernel.end = b.select(combines, begin, kernel.begin), b.select(combines, end, kernel.end)

    def products(kernel: Kernel, matmul: Operation, target: ll.Value,
                 accumulate: tuple[ll.Value, ll.Value] | None = None) -> None:
        with b.if_else(combines) as (combine, compute):
            with combine:
                _sum_partials(kernel, matmul, partials, target, accumulate)
            with compute:
                _emit_products(kernel, matmul, target, accumulate)

    _emit_with(kernel, matmul, products)


def _sum_partials(kernel: Kernel, matmul: Operation, partials: ll.Value, target: ll.Value,
                  accumulate: tuple[ll.Value, ll.Value] | None) -> None:
    """Rows [begin, end) of a split-k product: its partials (the slice count in the context's next
    pointer) summed in slice order, into target (or target = C0 + alpha * the sum)."""
    b = kernel.b
    dtype = matmul.result.type.dtype
    values = b.bitcast(partials, compute_type(dtype).as_pointer())
    slices = b.load(b.bitcast(kernel.extra_pointer(1), I64.as_pointer()))
    n = ll.Constant(I64, matmul.result.type.shape[-1])
    size = b.mul(kernel.dim(matmul.result, 0), n)
    pc = Target(target, dtype, *(accumulate or ()))
    first, last = b.mul(kernel.begin, n), b.mul(kernel.end, n)
    # Slice by slice into slice 0's partial, whole rows at a time (loops LLVM vectorizes), then to the
    # target: target may be C0's own buffer (an update in place), so it holds no partial sum.
    with for_range(b, ll.Constant(I64, 1), slices, "cs") as s:
        other = b.gep(values, [b.mul(s, size)])
        with for_range(b, first, last, "ci") as i:
            total = b.gep(values, [i])
            b.store(b.fadd(b.load(total), b.load(b.gep(other, [i]))), total)
    with for_range(b, first, last, "co") as i:
        pc.store(b, b.load(b.gep(values, [i])), i)


def _emit_with(kernel: Kernel, matmul: Operation, products) -> None:  # type: ignore[no-untyped-def]
    """The kernel's rows [begin, end): products(kernel, matmul, target, accumulate=None) writes the
    product's rows into target (or target = C0 + alpha * product for accumulate = (C0, alpha)), then
    the epilogue, or the accumulated update (Note [accumulated update])."""
    update = _accumulated_update(kernel, matmul)
    if update is None:
        _emit_product_and_epilogue(kernel, matmul, products)
        return
    b = kernel.b
    index, start, alpha = update
    dtype = matmul.result.type.dtype
    out = kernel.result_pointer(index, dtype)
    operands = [v.index for v in matmul.operands]
    if not any(kernel.may_share(index, o) for o in operands):  # as the memory plan makes them
        products(kernel, matmul, out, (kernel.operand_pointer(start.index, dtype), alpha))
        return
    a, bb = (kernel.operand_pointer(o, dtype) for o in operands)
    # The result's buffer may be a dead operand's (Note [donated arguments]): BLAS must not write A or B.
    apart = b.and_(b.icmp_unsigned("!=", out, a), b.icmp_unsigned("!=", out, bb))
    with b.if_else(apart) as (accumulate, separately):
        with accumulate:
            products(kernel, matmul, out, (kernel.operand_pointer(start.index, dtype), alpha))
        with separately:
            _emit_product_and_epilogue(kernel, matmul, products)


def product_result(op: Operation) -> int:
    """A matmul kernel: the result whose buffer receives the product (BLAS writes it whole, then the
    epilogue reads it back at each index): the product's own result if yielded, else result 0.
    The CPU target's separate-products pass makes every kernel with an epilogue yield its product."""
    block = op.regions[0].entry
    product = next(inner for inner in block.ops if inner.name in PRODUCTS).result
    yields = list(block.terminator.operands)
    return yields.index(product) if product in yields else 0


def _emit_product_and_epilogue(kernel: Kernel, matmul: Operation, products) -> None:  # type: ignore[no-untyped-def]
    """The product into its buffer, then the epilogue reading it back there, row block by row block."""
    block = kernel.op.regions[0].entry
    product_value = matmul.result
    yields = list(block.terminator.operands)
    target = kernel.result_pointer(product_result(kernel.op), product_value.type.dtype)
    products(kernel, matmul, target)
    if all(v is product_value for v in yields):
        return
    b = kernel.b
    n = kernel.dim(product_value, product_value.type.rank - 1)
    first, last = b.mul(kernel.begin, n), b.mul(kernel.end, n)
    if _is_narrow(kernel.op):
        _emit_epilogue(kernel, matmul, first, last)
        return
    # A BLAS kernel is one piece (matmul_work), run inline: its epilogue, a function of flat indices,
    # spreads over the pool itself. (The bias and relu after the MLP bench's 256 x 784 @ 784 x 512
    # ran on one core.) A piece that does not start at row 0 calls it for its own range.
    epilogue = kernel.sibling("epilogue")
    _emit_epilogue(epilogue, matmul, epilogue.begin, epilogue.end)
    function, context = epilogue.finish(), kernel.function.args[0]
    # Not inlined into the part's call below: LLVM would optimize and vectorize the epilogue twice (the copy
    # for the pool and the inlined one), about a fifth of the MLP forward's cold compile, to save one call.
    function.attributes.add("noinline")
    function = _epilogue_once(function)
    parallel_for = declared(kernel.module, "flowc_parallel_for", PARALLEL_FOR.return_type, list(PARALLEL_FOR.args))
    with b.if_else(b.icmp_signed("==", first, ll.Constant(I64, 0))) as (whole, part):
        with whole:
            b.call(parallel_for, [function, context, last, ll.Constant(I64, GRAIN)])
        with part:
            b.call(function, [context, first, last])


def _emit_direct(kernel: Kernel, product: Operation) -> None:
    """A convolution (its output rows) or its filter gradient (its items: direct_filter.py) into the
    product's buffer, then the epilogue on the elements this piece wrote, while they are in cache."""
    b = kernel.b
    block = kernel.op.regions[0].entry
    target = kernel.result_pointer(product_result(kernel.op), product.result.type.dtype)
    if product.name == "conv2d":
        DirectConvolution(kernel, product, target).emit()
        _, _, width, out = product.result.type.shape
        first, last = (b.mul(row, ll.Constant(I64, width * out)) for row in (kernel.begin, kernel.end))
    else:
        gradient = DirectFilterGradient(kernel, product, target)
        gradient.emit()
        out = ll.Constant(I64, product.result.type.shape[3])
        first, last = (b.mul(gradient.first_row(item), out) for item in (kernel.begin, kernel.end))
    if any(v is not product.result for v in block.terminator.operands):
        _emit_epilogue(kernel, product, first, last)


# Note [epilogues compiled once]
# The layers of an MLP end alike: the bias and relu after 256 x 784 @ 784 x
# 512 and after 256 x 512 @ 512 x 512 are the same code, reading the same slots of their kernels'
# contexts, while the kernels differ (their k). Such kernels are not one function (Note [kernels emitted
# once] in dedup.py), but their epilogues are: a BLAS kernel's epilogue is named after the hash of its
# text (`flowc_epilogue_<hash>`), and a kernel whose epilogue's text is one already in the module calls
# that one. LLVM optimized and vectorized each copy, a tenth of the MLP forward's cold compile; the split
# of a big module (split.py) copies the helper into each module that calls it, as any other internal
# helper.



def _epilogue_once(function: ll.Function) -> ll.Function:
    """Note [epilogues compiled once]: the module's function with `function`'s text, under its hash name:
    `function` itself, renamed, if the first, else it is taken out of the module."""
    module = function.module
    del module.globals[function.name]
    # The body's text: every epilogue has the kernels' signature and attributes. Not str(function), which
    # llvmlite keeps (with the function's reference) and would print under the old name.
    text = "".join(str(block) for block in function.blocks)
    name = "flowc_epilogue_" + hashlib.sha256(text.encode()).hexdigest()[:20]
    known = module.globals.get(name)
    if known is not None:
        return known
    function.name = name
    module.globals[name] = function
    return function


def _emit_epilogue(kernel: Kernel, matmul: Operation, first: ll.Value, last: ll.Value) -> None:
    """The epilogue at the flat indices [first, last) of the product, read back from its buffer."""
    block = kernel.op.regions[0].entry
    product_value = matmul.result
    yields = list(block.terminator.operands)
    target = kernel.result_pointer(product_result(kernel.op), product_value.type.dtype)
    epilogue = [(v, kernel.result_pointer(i, v.type.dtype)) for i, v in enumerate(yields) if v is not product_value]
    inputs = [(arg, kernel.operand_pointer(i, arg.type.dtype)) for i, arg in enumerate(block.args)]
    inputs.append((product_value, target))
    elementwise_loop(kernel, inputs, epilogue, first, last)


def _accumulated_update(kernel: Kernel, matmul: Operation) -> tuple[int, BlockArgument, ll.Value] | None:
    """Note [accumulated update]: an epilogue `C0 - s * P` (or `C0 + s * P`, `C0 - P`, `C0 + P`) of a
    float product P, P used nowhere else (kernel_space.py's accumulated_update): the SGD update of
    a weight matrix. gemm computes it as alpha * A @ B + 1 * C straight into the result (C0 copied
    there first unless the result is C0's own buffer); a narrow product stores C0 + alpha * C in
    place of C, rounded as the epilogue rounds it. Either way the product is never stored and read
    back. Where the schedule says so (`accumulate = true`), returns (the update's result index, C0,
    alpha); else None."""
    if not schedule_of(kernel.op).get("accumulate"):
        return None
    update = accumulated_update(kernel.op)
    assert update is not None, "the verifier checks that an accumulating kernel's epilogue is an update"
    element = compute_type(matmul.result.type.dtype)
    factor = update.factor
    if factor is None:
        scale = constant_of(element, 1.0)
    elif isinstance(factor, BlockArgument):
        scale = kernel.b.load(kernel.operand_pointer(factor.index, factor.type.dtype))
    else:
        scale = constant_of(element, float(factor.op.value.reshape(-1)[0]))  # type: ignore[attr-defined]
    return update.result, update.start, kernel.b.fneg(scale) if update.negated else scale


def _emit_products(kernel: Kernel, matmul: Operation, target: ll.Value,
                   accumulate: tuple[ll.Value, ll.Value] | None = None) -> None:
    """The product's rows [begin, end), one BLAS call (or loop nest) per batch they touch. With
    `accumulate` = (C0, alpha): target = alpha * product + C0 (Note [accumulated update])."""
    b = kernel.b
    a, bb = matmul.operands
    c = matmul.result
    dtype = c.type.dtype
    m, n = kernel.dim(c, c.type.rank - 2), kernel.dim(c, c.type.rank - 1)
    k = kernel.dim(a, a.type.rank - 2 if matmul.transpose_a else a.type.rank - 1)
    a_pointer = kernel.operand_pointer(a.index, dtype)
    b_pointer = kernel.operand_pointer(bb.index, dtype)
    batch_sizes = [kernel.dim(c, axis) for axis in range(c.type.rank - 2)]
    a_strides = _batch_strides(kernel, a, c, product(b, [m, k]))
    b_strides = _batch_strides(kernel, bb, c, product(b, [k, n]))
    start = b.block
    header, body, done = (b.append_basic_block(name) for name in ("rows.header", "rows.body", "rows.done"))
    b.branch(header)
    b.position_at_end(header)
    row = b.phi(I64, name="row")  # a row of the flattened (batch..., m) product
    row.add_incoming(kernel.begin, start)
    b.cbranch(b.icmp_signed("<", row, kernel.end), body, done)
    b.position_at_end(body)
    t = b.udiv(row, m, name="batch")
    first = b.sub(row, b.mul(t, m), name="first")
    count = min_of(b, b.sub(m, first), b.sub(kernel.end, row))  # rows of this batch in [row, end)
    coordinates = decompose(b, t, batch_sizes) if batch_sizes else []
    # Row `first` of op(a): a's row `first` (a is m x k), or its column `first` (a is k x m, transposed).
    a_row = first if matmul.transpose_a else b.mul(first, k)
    pa = b.gep(a_pointer, [b.add(dot(b, coordinates, a_strides), a_row)])
    pb = b.gep(b_pointer, [dot(b, coordinates, b_strides)])
    pc = b.gep(target, [b.mul(row, n)])
    if _is_narrow(kernel.op):
        start = None if accumulate is None else (b.gep(accumulate[0], [b.mul(row, n)]), accumulate[1])
        narrow_product(kernel, matmul, pa, pb, pc, count, k, m, start)
    elif _schedule(kernel.op) == "blas" and accumulate is not None:
        start_rows, alpha = accumulate
        _copy_unless_same(b, b.gep(start_rows, [b.mul(row, n)]), pc, b.mul(count, n))
        _call_gemm(kernel, matmul, pa, pb, pc, count, n, k, m, alpha, constant_of(alpha.type, 1))
    elif _schedule(kernel.op) == "blas":
        _call_gemm(kernel, matmul, pa, pb, pc, count, n, k, m)
    else:
        _integer_product(kernel, matmul, pa, pb, pc, count, n, k, m)
    row.add_incoming(b.add(row, count), b.block)
    b.branch(header)
    b.position_at_end(done)


def _batch_strides(kernel: Kernel, operand: Value, result: Value, matrix: ll.Value) -> list[ll.Value]:
    """Elements to step in `operand` per step of each batch axis of the result (0 where it broadcasts)."""
    b = kernel.b
    batch_rank = result.type.rank - 2
    own_rank = operand.type.rank - 2
    strides: list[ll.Value] = [ll.Constant(I64, 0)] * batch_rank
    running = matrix
    for axis in range(batch_rank - 1, -1, -1):
        own = axis - (batch_rank - own_rank)
        if own < 0:
            continue
        if not (operand.type.shape[own] == 1 and result.type.shape[axis] != 1):
            strides[axis] = running
        running = product(b, [running, kernel.dim(operand, own)])
    return strides


def _copy_unless_same(b: ll.IRBuilder, source: ll.Value, target: ll.Value, count: ll.Value) -> None:
    """target[:count] = source[:count] unless they are the same buffer (LLVM makes the loop a memcpy)."""
    with b.if_then(b.icmp_unsigned("!=", source, target)):
        with for_range(b, ll.Constant(I64, 0), count, "copy") as i:
            b.store(b.load(b.gep(source, [i])), b.gep(target, [i]))


def _call_gemm(kernel: Kernel, matmul: Operation, pa: ll.Value, pb: ll.Value, pc: ll.Value,
               m: ll.Value, n: ll.Value, k: ll.Value, full_m: ll.Value,
               alpha: ll.Value | None = None, beta: ll.Value | None = None) -> None:
    """C (m x n) = alpha op(A) (m x k) @ op(B) (k x n) + beta C (by default 1 and 0): m rows of a
    product whose op(A) has full_m rows."""
    b = kernel.b
    element = compute_type(matmul.result.type.dtype)
    pointer = element.as_pointer()
    signature = ll.FunctionType(ll.VoidType(), [I32, I32, I32, I32, I32, I32, element, pointer, I32, pointer, I32,
                                                element, pointer, I32])
    name = GEMM[matmul.result.type.dtype.name]
    gemm = kernel.module.globals.get(name) or ll.Function(kernel.module, signature, name=name)
    m32, n32, k32, full_m32 = (b.trunc(v, I32) for v in (m, n, k, full_m))
    # A leading dimension is at least 1 even where its dim is 0 (BLAS's rule; k = 0 gives C = beta C).
    lda = _at_least_one(b, k32 if not matmul.transpose_a else full_m32)
    ldb = _at_least_one(b, n32 if not matmul.transpose_b else k32)
    flags = [ll.Constant(I32, ROW_MAJOR), ll.Constant(I32, TRANS if matmul.transpose_a else NO_TRANS),
             ll.Constant(I32, TRANS if matmul.transpose_b else NO_TRANS)]
    empty = b.icmp_signed("==", b.mul(m, n), ll.Constant(I64, 0))
    with b.if_else(empty) as (then, otherwise):
        with then:
            pass  # nothing to write
        with otherwise:
            # Note [small products on one thread] in runtime/native/flowc_rt.c.
            begin = declared(kernel.module, "flowc_serial_blas_begin", I32, [I64])
            end = declared(kernel.module, "flowc_serial_blas_end", ll.VoidType(), [I32])
            begun = b.call(begin, [b.mul(b.mul(m, n), k)])
            b.call(gemm, [*flags, m32, n32, k32, constant_of(element, 1) if alpha is None else alpha, pa, lda, pb,
                          ldb, constant_of(element, 0) if beta is None else beta, pc, _at_least_one(b, n32)])
            b.call(end, [begun])


def _at_least_one(b: ll.IRBuilder, value: ll.Value) -> ll.Value:
    one = ll.Constant(I32, 1)
    return b.select(b.icmp_signed("<", value, one), one, value)


def emit_openblas_adoption(module: ll.Module) -> None:
    """A constructor that hands OpenBLAS's threading to flowc's pool when the artifact is loaded
    (Note [one pool] in runtime/native/flowc_rt.c): OpenBLAS, a dependency, is initialized first."""
    set_callback = ll.Function(module, ll.FunctionType(ll.VoidType(), [PTR]), name=OPENBLAS_SET_CALLBACK)
    set_threads = ll.Function(module, ll.FunctionType(ll.VoidType(), [I32]), name=OPENBLAS_SET_THREADS)
    adopt = ll.Function(module, ll.FunctionType(ll.VoidType(), [set_callback.type, set_threads.type]),
                        name="flowc_adopt_openblas")
    init = ll.Function(module, ll.FunctionType(ll.VoidType(), []), name="flowc_init_openblas")
    init.linkage = "internal"
    b = ll.IRBuilder(init.append_basic_block("entry"))
    b.call(adopt, [set_callback, set_threads])
    b.ret_void()
    entry = ll.LiteralStructType([I32, init.type, PTR])
    ctors = ll.GlobalVariable(module, ll.ArrayType(entry, 1), name="llvm.global_ctors")
    ctors.linkage = "appending"
    ctors.initializer = ll.Constant(ll.ArrayType(entry, 1), [
        ll.Constant(entry, [ll.Constant(I32, 65535), init, ll.Constant(PTR, None)])])


def _integer_product(kernel: Kernel, matmul: Operation, pa: ll.Value, pb: ll.Value, pc: ll.Value,
                     m: ll.Value, n: ll.Value, k: ll.Value, full_m: ll.Value) -> None:
    """c[i, j] = sum_p a[i, p] * b[p, j] for m rows, integers wrapping as numpy's do."""
    b = kernel.b
    dtype = matmul.result.type.dtype
    zero = ll.Constant(I64, 0)
    acc = kernel.alloca(compute_type(dtype), "acc")
    with for_range(b, zero, m, "mi") as i, for_range(b, zero, n, "mj") as j:
        b.store(constant_of(compute_type(dtype), 0), acc)
        with for_range(b, zero, k, "mp") as p:
            a_offset = b.add(b.mul(p, full_m), i) if matmul.transpose_a else b.add(b.mul(i, k), p)
            b_offset = b.add(b.mul(j, k), p) if matmul.transpose_b else b.add(b.mul(p, n), j)
            x = load_value(b, b.gep(pa, [a_offset]), dtype)
            y = load_value(b, b.gep(pb, [b_offset]), dtype)
            b.store(b.add(b.load(acc), b.mul(x, y)), acc)
        store_value(b, b.load(acc), b.gep(pc, [b.add(b.mul(i, n), j)]), dtype)
