"""Single kernels of shape_of, broadcast_dims, iota, pad and gather_nd (ir/ops/dims.py); reshape_dims is a view.

shape_of reads its operand's dims from the dims vector (Note [dims vector] in kernel.py), never
its elements; broadcast_dims is broadcast_to whose result dims come from other operands.
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, emit_dim, for_range, product
from ..launch import GRAIN, Launch
from ..types import I1, I64, as_index, compute_type, constant_of, load_value
from .single import AFTER_CHECKS, emit_broadcast_to, read, single


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


@single("gather_nd")
def emit_gather_nd(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    b = kernel.b
    params, indices = op.operands
    depth = indices.type.shape[-1]
    batch = coordinates[:indices.type.rank - 1]
    zero = ll.Constant(I64, 0)
    source = []
    for k in range(depth):
        index = read(kernel, indices, [*batch, ll.Constant(I64, k)])
        index = as_index(b, index, indices.type.dtype)
        limit = kernel.dim(params, k)
        bad = b.or_(b.icmp_signed("<", index, zero), b.icmp_signed(">=", index, limit))
        kernel.fail_if(bad, index)
        source.append(b.select(bad, zero, index))  # never read out of bounds
    return read(kernel, params, [*source, *coordinates[indices.type.rank - 1:]])


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
