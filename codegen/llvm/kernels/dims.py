"""Single kernels of shape_of, broadcast_dims, iota, pad, gather_nd and where_indices (ir/ops/dims.py);
reshape_dims is a view (and data_dim is no kernel: Note [data-dependent sizes] in compiler/data_sized_run.py).

shape_of reads its operand's dims from the dims vector (Note [dims vector] in kernel.py), never
its elements; broadcast_dims is broadcast_to whose result dims come from other operands.
"""

from __future__ import annotations

import contextlib

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, emit_dim, for_range, product
from ..launch import GRAIN, Launch
from ..types import I1, I64, as_index, compute_type, constant_of, load_value
from .single import AFTER_CHECKS, SERIAL_KERNELS, SINGLE_KERNELS, emit_broadcast_to, read, single


@single("shape_of")
def emit_shape_of(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    b = kernel.b
    x = op.operands[0]
    value: ll.Value = ll.Constant(I64, 0)
    for axis in reversed(range(x.type.rank)):  # a select per dim: the rank is small
        here = b.icmp_signed("==", coordinates[0], ll.Constant(I64, axis))
        value = b.select(here, kernel.dim(x, axis), value)
    wanted = compute_type(op.result.type.dtype)
    return value if wanted == I64 else b.trunc(value, wanted)


@single("iota")
def emit_iota(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    wanted = compute_type(op.result.type.dtype)
    if isinstance(wanted, (ll.FloatType, ll.DoubleType)):
        return kernel.b.sitofp(coordinates[0], wanted)
    return coordinates[0] if wanted == I64 else kernel.b.trunc(coordinates[0], wanted)


single("broadcast_dims")(emit_broadcast_to)


@single("pad")
def emit_pad(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    """x's element at the coordinates less the padding in front, else the value."""
    b = kernel.b
    x = op.operands[0]
    zero = ll.Constant(I64, 0)
    inside: ll.Value = ll.Constant(I1, 1)
    source = []
    for axis, coordinate in enumerate(coordinates):
        shifted = b.sub(coordinate, ll.Constant(I64, op.before[axis]))
        size = kernel.dim(x, axis)
        here = b.and_(b.icmp_signed(">=", shifted, zero), b.icmp_signed("<", shifted, size))
        inside = b.and_(inside, here)
        source.append(b.select(here, shifted, zero))
    value_type = compute_type(op.result.type.dtype)
    if isinstance(value_type, (ll.FloatType, ll.DoubleType)):
        padding = constant_of(value_type, op.value)
    else:  # as numpy's astype: truncated toward zero, or nonzero for a bool
        padding = constant_of(value_type, bool(op.value) if value_type == I1 else int(op.value))
    if x.type.size == 0:
        return padding
    if x.type.is_static:  # a clamped position is inside x: read it, select
        return b.select(inside, read(kernel, x, source), padding)
    result = kernel.alloca(value_type, "pad.value")  # a branch: x may be empty at run time
    b.store(padding, result)
    with b.if_then(inside):
        b.store(read(kernel, x, source), result)
    return b.load(result)  # reads operand 0 only; the result's dims come from the dims vector


def emit_gather_nd(kernel: Kernel, op: Operation) -> None:
    """Each index vector picks a contiguous slice of params (its dims after the first K): the kernel walks
    its output elements [begin, end) slice by slice, finds each slice's source once (checking the
    index vector, never reading out of bounds) and copies the elements in a loop LLVM vectorizes."""
    b = kernel.b
    params, indices = op.operands
    depth = indices.type.shape[-1]
    size = product(b, [kernel.dim(params, axis) for axis in range(depth, params.type.rank)])
    one, zero = ll.Constant(I64, 1), ll.Constant(I64, 0)
    step = b.select(b.icmp_signed("==", size, zero), one, size)  # an empty slice: no element to walk
    source = kernel.operand_pointer(params.index, params.type.dtype)
    picks = kernel.operand_pointer(indices.index, indices.type.dtype)
    out = kernel.result_pointer(0, op.result.type.dtype)
    strides = [size]
    for axis in range(depth - 1, 0, -1):
        strides.insert(0, b.mul(strides[0], kernel.dim(params, axis)))
    first, last = b.sdiv(kernel.begin, step), b.sdiv(b.add(kernel.end, b.sub(step, one)), step)
    with for_range(b, first, last, "slice") as number:
        offset: ll.Value = zero
        for k in range(depth):
            index = load_value(b, b.gep(picks, [b.add(b.mul(number, ll.Constant(I64, depth)), ll.Constant(I64, k))]),
                               indices.type.dtype)
            index = as_index(b, index, indices.type.dtype)
            bad = b.or_(b.icmp_signed("<", index, zero), b.icmp_signed(">=", index, kernel.dim(params, k)))
            kernel.fail_if(bad, index)
            offset = b.add(offset, b.mul(b.select(bad, zero, index), strides[k]))
        start = b.mul(number, size)
        low = b.sub(_max(b, kernel.begin, start), start)
        high = b.sub(_min(b, kernel.end, b.add(start, size)), start)
        to, origin = b.gep(out, [start]), b.gep(source, [offset])
        with for_range(b, low, high, "element") as element:
            b.store(b.load(b.gep(origin, [element])), b.gep(to, [element]))


def _max(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _min(b: ll.IRBuilder, x: ll.Value, y: ll.Value) -> ll.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


SINGLE_KERNELS["gather_nd"] = emit_gather_nd


def check_gather_nd_indices(launch: Launch, op: Operation) -> None:
    """Note [indices of empty slices] in single.py, for gather_nd: where the slices it picks may be
    empty, the kernel over its (empty) result reads no index, so the entry point checks them all."""
    params, indices = op.operands
    depth = indices.type.shape[-1]
    trailing = params.type.shape[depth:]
    if depth == 0 or all(d is not None and d != 0 for d in trailing):
        return
    b, kernel = launch.b, launch.kernel

    def dim(value, axis):  # type: ignore[no-untyped-def]  (read by the entry point, not the kernel)
        return emit_dim(b, kernel.dims, launch.dims_pointer, value, axis)

    slice_size = product(b, [dim(params, a) for a in range(depth, params.type.rank)])
    count = product(b, [dim(indices, a) for a in range(indices.type.rank)])
    check = _emit_nd_index_check(kernel.sibling("indices"), op)
    with b.if_then(b.icmp_signed("==", slice_size, ll.Constant(I64, 0)), likely=False):
        b.call(launch.parallel_for, [check, launch.context([]), count, ll.Constant(I64, GRAIN)])


def _emit_nd_index_check(kernel: Kernel, op: Operation) -> ll.Function:
    """Each entry of the indices against the dim of params it indexes (entry p: dim p mod depth)."""
    b = kernel.b
    params, indices = op.operands
    depth = indices.type.shape[-1]
    pointer = kernel.operand_pointer(indices.index, indices.type.dtype)
    with for_range(b, kernel.begin, kernel.end, "i") as position:
        index = load_value(b, b.gep(pointer, [position]), indices.type.dtype)
        index = as_index(b, index, indices.type.dtype)
        which = b.srem(position, ll.Constant(I64, depth))
        limit: ll.Value = kernel.dim(params, 0)
        for k in range(1, depth):
            limit = b.select(b.icmp_signed("==", which, ll.Constant(I64, k)), kernel.dim(params, k), limit)
        kernel.fail_if(b.or_(b.icmp_signed("<", index, ll.Constant(I64, 0)), b.icmp_signed(">=", index, limit)), index)
    return kernel.finish()


AFTER_CHECKS["gather_nd"] = check_gather_nd_indices


def emit_where_indices(kernel: Kernel, op: Operation) -> None:
    """One walk over cond in row-major order, each nonzero element's coordinates written to the next row:
    serial (a row's number is the count of true elements before it), so its work is one step. The
    walk is a loop nest, its counters the coordinates. No branch on the data: every element's
    coordinates are stored at the next row while there is one, and the row moves on only for a
    true element (a false one's are overwritten by the next true one's). The rows were counted
    before (rows is their data_dim); were that count another, the kernel fails, naming the row it
    reached, and never writes past the end."""
    b = kernel.b
    cond, rows = op.operands
    rank = cond.type.rank
    limit = kernel.dim(rows, 0)
    source = kernel.operand_pointer(cond.index, cond.type.dtype)
    out = kernel.result_pointer(0, op.result.type.dtype)
    row, element = kernel.alloca(I64, "row"), kernel.alloca(I64, "element")
    b.store(ll.Constant(I64, 0), row)
    b.store(ll.Constant(I64, 0), element)
    with contextlib.ExitStack() as nest:
        coordinates = [nest.enter_context(for_range(b, ll.Constant(I64, 0), kernel.dim(cond, axis), f"c{axis}"))
                       for axis in range(rank)]
        index = b.load(element)
        b.store(b.add(index, ll.Constant(I64, 1)), element)
        flag = b.zext(_nonzero(b, load_value(b, b.gep(source, [index]), cond.type.dtype)), I64)
        at = b.load(row)
        inside = b.icmp_signed("<", at, limit)
        kernel.fail_if(b.and_(b.not_(inside), b.trunc(flag, I1)), at)
        with b.if_then(inside, likely=True):
            base = b.mul(at, ll.Constant(I64, rank))
            for axis, coordinate in enumerate(coordinates):
                b.store(coordinate, b.gep(out, [b.add(base, ll.Constant(I64, axis))]))
        b.store(b.add(at, flag), row)
    found = b.load(row)
    kernel.fail_if(b.icmp_signed("!=", found, limit), found)


def _nonzero(b: ll.IRBuilder, value: ll.Value) -> ll.Value:
    """As numpy's nonzero: a float is true unless it is +-0 (NaN is true)."""
    if value.type == I1:
        return value
    if isinstance(value.type, (ll.FloatType, ll.DoubleType)):
        return b.fcmp_unordered("!=", value, constant_of(value.type, 0.0))
    return b.icmp_signed("!=", value, ll.Constant(value.type, 0))


SINGLE_KERNELS["where_indices"] = emit_where_indices
SERIAL_KERNELS.add("where_indices")
