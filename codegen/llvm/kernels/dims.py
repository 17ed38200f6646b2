"""Single kernels of shape_of, broadcast_dims, iota and gather_nd (ir/ops/dims.py); reshape_dims is a view.

shape_of reads its operand's dims from the dims vector (Note [dims vector] in kernel.py), never
its elements; broadcast_dims is broadcast_to whose result dims come from other operands.
"""

from __future__ import annotations

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel
from ..types import I64, compute_type
from .single import emit_broadcast_to, read, single


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


single("broadcast_dims")(emit_broadcast_to)  # reads operand 0 only; the result's dims come from the dims vector


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
        if indices.type.dtype.itemsize < 8:
            index = b.sext(index, I64)
        limit = kernel.dim(params, k)
        bad = b.or_(b.icmp_signed("<", index, zero), b.icmp_signed(">=", index, limit))
        kernel.fail_if(bad, index)
        source.append(b.select(bad, zero, index))  # never read out of bounds
    return read(kernel, params, [*source, *coordinates[indices.type.rank - 1:]])
