"""A concat of many inputs on the CPU: a loop over its inputs' runs rather than code per input.

Note [a concat of many inputs]: the per-element concat (single.py's emit_concat) branches to the
input whose stretch of the axis holds each coordinate, so its code is a copy of the read per
input: the `stack` of an RNN unrolled over 128 steps was one kernel of 112k characters of LLVM IR,
the costliest function LLVM optimized in that graph. Row-major, a concat's output is, for each
index of the axes before `axis` (an outer row), input 0's run of size_0 * inner elements, then
input 1's, and so on (inner: the product of the dims after `axis`). So this kernel walks the
runs that meet its share [begin, end) of the output, one memmove each, with the input's pointer
read from the kernel's context (its slots are the inputs' buffer pointers, in order) and the
sizes along the axis from a table (one constant where all are known and the same, as in a stack):
its code is the same whatever the input count. An input of size 0 is a run of length 0.
Few inputs keep the per-element kernel (CONCAT_RUNS_MIN_INPUTS), whose code is as it was.
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, min_of, product
from ..types import I1, I64, PTR, storage_type

CONCAT_RUNS_MIN_INPUTS = 8


def _i64(value: int) -> ll.Constant:
    return ll.Constant(I64, value)


def _axis_sizes(kernel: Kernel, op: Operation, axis: int) -> Callable[[ll.Value], ll.Value]:
    """index -> that input's size along `axis`: a constant where all are known and the same (a
    stack), else read from a table on the stack filled at the kernel's start (a kernel is compiled
    apart from its module, so it has no globals of its own: Note [kernels compiled apart])."""
    b = kernel.b
    known = {x.type.shape[axis] for x in op.operands}
    if len(known) == 1 and None not in known:
        size = _i64(known.pop())
        return lambda index: size
    table = kernel.alloca(ll.ArrayType(I64, len(op.operands)), "concat.sizes")
    for index, x in enumerate(op.operands):
        b.store(kernel.dim(x, axis), b.gep(table, [_i64(0), _i64(index)]))
    return lambda index: b.load(b.gep(table, [_i64(0), index]))


def emit_concat_runs(kernel: Kernel, op: Operation) -> None:
    """The output elements [begin, end), copied run by run (Note [a concat of many inputs])."""
    b = kernel.b
    out = op.result
    axis = op.axis % out.type.rank
    count = _i64(len(op.operands))
    itemsize = _i64(out.type.dtype.itemsize)
    element = storage_type(out.type.dtype).as_pointer()
    size_of = _axis_sizes(kernel, op, axis)
    inner = product(b, [kernel.dim(out, a) for a in range(axis + 1, out.type.rank)])
    row = b.mul(kernel.dim(out, axis), inner)
    target = kernel.result_pointer(0, out.type.dtype)
    memmove = kernel.module.declare_intrinsic("llvm.memmove", [PTR, PTR, I64])

    def run_of(index: ll.Value) -> ll.Value:
        return b.mul(size_of(index), inner)

    position, outer, input_index, offset = (kernel.alloca(I64, name) for name in ("concat.position", "concat.outer",
                                                                                 "concat.input", "concat.offset"))
    with b.if_then(b.icmp_signed("<", kernel.begin, kernel.end)):  # then row > 0: the output has elements
        first_outer = b.sdiv(kernel.begin, row)
        within = b.sub(kernel.begin, b.mul(first_outer, row))
        b.store(kernel.begin, position)
        b.store(first_outer, outer)
        b.store(_i64(0), input_index)
        b.store(within, offset)
        # the input whose run holds `within`: skip the runs that end at or before it
        _while(b, "concat.find", lambda: b.icmp_signed(">=", b.load(offset), run_of(b.load(input_index))),
               lambda: (b.store(b.sub(b.load(offset), run_of(b.load(input_index))), offset),
                        b.store(b.add(b.load(input_index), _i64(1)), input_index)))

        def copy_run() -> None:
            index = b.load(input_index)
            run = run_of(index)
            start = b.load(offset)
            here = b.load(position)
            length = min_of(b, b.sub(run, start), b.sub(kernel.end, here))
            source = b.bitcast(b.load(b.gep(kernel.slots, [index])), element)
            source = b.gep(source, [b.add(b.mul(b.load(outer), run), start)])
            b.call(memmove, [b.bitcast(b.gep(target, [here]), PTR), b.bitcast(source, PTR),
                             b.mul(length, itemsize), ll.Constant(I1, 0)])
            b.store(b.add(here, length), position)
            b.store(_i64(0), offset)
            following = b.add(index, _i64(1))
            wraps = b.icmp_signed("==", following, count)
            b.store(b.select(wraps, _i64(0), following), input_index)
            b.store(b.add(b.load(outer), b.zext(wraps, I64)), outer)

        _while(b, "concat.run", lambda: b.icmp_signed("<", b.load(position), kernel.end), copy_run)


def _while(b: ll.IRBuilder, name: str, condition, body) -> None:  # type: ignore[no-untyped-def]
    """while condition(): body() -- both emit their code where called."""
    header = b.append_basic_block(f"{name}.header")
    inside = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    b.cbranch(condition(), inside, done)
    b.position_at_end(inside)
    body()
    b.branch(header)
    b.position_at_end(done)
