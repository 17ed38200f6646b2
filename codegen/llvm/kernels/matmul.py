"""Matmul kernels: one (batched) matrix product, then its elementwise epilogue in one pass.

Note [BLAS choice]: float matmuls call OpenBLAS's sgemm/dgemm from the
`scipy-openblas32` wheel, the build numpy and scipy ship, maintained by
their developers. A hand-written kernel would need packing, register
blocking and per-ISA microkernels to get near it; OpenBLAS is that already,
and it threads itself (see matmul_work). The wheel is one self-contained shared library
(libscipy_openblas.so, symbols prefixed `scipy_`, 32-bit ints), so an
exported flowc library can carry a copy of it beside itself and find it
through an $ORIGIN rpath, with no Python and no flowc present. Integer
matmuls (rare) are plain loops.

The epilogue (bias add, activation, an optimizer's update) reads each row
block of the product where sgemm left it and writes the kernel's result at
the same index, so it costs one pass over the block while it is in cache.
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation, Value

from ..blas import GEMM, is_narrow
from ..kernel import Kernel, decompose, dot, emit_dim, for_range, product
from ..module import kernel_kind
from ..program import DimTable
from ..types import I32, I64, compute_type, constant_of, load_value, store_value
from .loop import elementwise_loop
from .narrow import narrow_product

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


# Multiply-adds per piece of a narrow product's parallel work: below ~1M a thread's wake-up costs
# more than it saves (FLOWC_PROFILE: 784 -> 10 at batch 100 took ~37 us on one thread, ~65 us on two).
FLOP_GRAIN = 1 << 20




def matmul_work(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, op: Operation) -> tuple[ll.Value, ll.Value]:
    """Work = the rows of every product in the batch. BLAS products are one piece: OpenBLAS threads
    each call itself. Narrow ones (generated code) split across flowc's pool by FLOP_GRAIN.

    Measured on 2 cores (bench/): splitting the rows across flowc's pool as well runs two pools at
    once and is slower (MLP forward 0.9x numpy instead of 1.1x); splitting them with a
    single-threaded OpenBLAS is slower too (each piece packs B again). The kernel still takes any
    row range [begin, end), so a split needs only a different grain here.
    """
    matmul = _matmul_of(op)
    a, c = matmul.operands[0], matmul.result
    rows = product(b, [emit_dim(b, dims, dims_pointer, c, axis) for axis in range(c.type.rank - 1)])
    one = ll.Constant(I64, 1)
    if not is_narrow(matmul):
        return rows, b.select(b.icmp_signed(">", rows, one), rows, one)
    k = emit_dim(b, dims, dims_pointer, a, a.type.rank - 2 if matmul.transpose_a else a.type.rank - 1)
    per_row = b.add(b.mul(k, ll.Constant(I64, c.type.shape[-1])), one)
    grain = b.udiv(ll.Constant(I64, FLOP_GRAIN), per_row)
    return rows, b.select(b.icmp_signed(">", grain, one), grain, one)


def _matmul_of(op: Operation) -> Operation:
    return next(inner for inner in op.regions[0].entry.ops if inner.name == "matmul")


@kernel_kind("matmul", matmul_work)
def emit_matmul_kernel(kernel: Kernel) -> None:
    """Rows [begin, end) of the flattened (batch..., m) product, then the epilogue on those rows."""
    block = kernel.op.regions[0].entry
    matmul = _matmul_of(kernel.op)
    product_value = matmul.result
    yields = list(block.terminator.operands)
    target_index = kernel.op.product_result()
    target = kernel.result_pointer(target_index, product_value.type.dtype)
    _emit_products(kernel, matmul, target)
    epilogue = [(v, kernel.result_pointer(i, v.type.dtype)) for i, v in enumerate(yields) if v is not product_value]
    if epilogue:
        inputs = [(arg, kernel.operand_pointer(i, arg.type.dtype)) for i, arg in enumerate(block.args)]
        inputs.append((product_value, target))
        n = kernel.dim(product_value, product_value.type.rank - 1)
        b = kernel.b
        elementwise_loop(kernel, inputs, epilogue, b.mul(kernel.begin, n), b.mul(kernel.end, n))


def _emit_products(kernel: Kernel, matmul: Operation, target: ll.Value) -> None:
    """The product's rows [begin, end), one BLAS call (or loop nest) per batch they touch."""
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
    count = _min(b, b.sub(m, first), b.sub(kernel.end, row))  # rows of this batch in [row, end)
    coordinates = decompose(b, t, batch_sizes) if batch_sizes else []
    # Row `first` of op(a): a's row `first` (a is m x k), or its column `first` (a is k x m, transposed).
    a_row = first if matmul.transpose_a else b.mul(first, k)
    pa = b.gep(a_pointer, [b.add(dot(b, coordinates, a_strides), a_row)])
    pb = b.gep(b_pointer, [dot(b, coordinates, b_strides)])
    pc = b.gep(target, [b.mul(row, n)])
    if is_narrow(matmul):
        narrow_product(kernel, matmul, pa, pb, pc, count, k, m)
    elif dtype.name in GEMM:
        _call_gemm(kernel, matmul, pa, pb, pc, count, n, k, m)
    else:
        _integer_product(kernel, matmul, pa, pb, pc, count, n, k, m)
    row.add_incoming(b.add(row, count), b.block)
    b.branch(header)
    b.position_at_end(done)


def _min(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


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


def _call_gemm(kernel: Kernel, matmul: Operation, pa: ll.Value, pb: ll.Value, pc: ll.Value,
               m: ll.Value, n: ll.Value, k: ll.Value, full_m: ll.Value) -> None:
    """C (m x n) = op(A) (m x k) @ op(B) (k x n): m rows of a product whose op(A) has full_m rows."""
    b = kernel.b
    element = compute_type(matmul.result.type.dtype)
    pointer = element.as_pointer()
    signature = ll.FunctionType(ll.VoidType(), [I32, I32, I32, I32, I32, I32, element, pointer, I32, pointer, I32,
                                                element, pointer, I32])
    name = GEMM[matmul.result.type.dtype.name]
    gemm = kernel.module.globals.get(name) or ll.Function(kernel.module, signature, name=name)
    m32, n32, k32, full_m32 = (b.trunc(v, I32) for v in (m, n, k, full_m))
    lda = k32 if not matmul.transpose_a else full_m32
    ldb = n32 if not matmul.transpose_b else k32
    flags = [ll.Constant(I32, ROW_MAJOR), ll.Constant(I32, TRANS if matmul.transpose_a else NO_TRANS),
             ll.Constant(I32, TRANS if matmul.transpose_b else NO_TRANS)]
    empty = b.icmp_signed("==", b.mul(m, n), ll.Constant(I64, 0))
    with b.if_else(empty) as (then, otherwise):
        with then:
            pass  # nothing to write
        with otherwise:
            b.call(gemm, [*flags, m32, n32, k32, constant_of(element, 1), pa, lda, pb, ldb,
                          constant_of(element, 0), pc, n32])


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
