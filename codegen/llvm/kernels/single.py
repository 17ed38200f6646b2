"""Kernels of one op that moves data rather than computing on it: transpose, slice, concat,
gather, one_hot, broadcast_to, read_row, write_row, and the random ops.

Each is a loop over the output's linear index (split across threads like a
loop kernel) that works out, per output element, which input element it
reads: an emitter per op name computes that element's value from the
element's coordinates. Not vectorized; these ops move memory once.
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation

from ..kernel import Kernel, decompose, dot, emit_dim, for_range, product
from ..launch import GRAIN, Launch, elementwise_work, kernel_kind
from ..program import DimTable
from ..types import I64, as_index, compute_type, constant_of, load_value, storage_type, store_value
from .concat_runs import CONCAT_RUNS_MIN_INPUTS, emit_concat_runs
from .philox import emit_random

# op name -> (kernel, op, output coordinates) -> the output element's value
SingleEmitter = Callable[[Kernel, Operation, list[ll.Value]], ll.Value]
SINGLE_EMITTERS: dict[str, SingleEmitter] = {}
# op name -> an emitter of the whole kernel over its output elements [begin, end), for an op that
# moves contiguous runs (kernels/patches.py) rather than one element at a time
SINGLE_KERNELS: dict[str, Callable[[Kernel, Operation], None]] = {}
# ops whose kernel walks everything in one step, in order (where_indices: kernels/dims.py): work 1
SERIAL_KERNELS: set[str] = set()
# op name -> a check the entry point runs after the kernel (Note [indices of empty slices]), for an
# op whose kernel may read none of its indices (kernels/dims.py registers gather_nd's)
AFTER_CHECKS: dict[str, Callable[[Launch, Operation], None]] = {}
# op name -> a call the entry point makes before the kernel (all_reduce_done's wait: kernels/collective.py)
BEFORE_CALLS: dict[str, Callable[[Launch, Operation], None]] = {}
# Note [line ops]: an op whose every output element depends on a whole line of its operand along one
# axis (a scan, top_k) is emitted per line rather than per element: its work is the number of lines
# (kernels/scan.py registers these). op name -> (the op's line axis, the emitter of the lines
# [kernel.begin, kernel.end), numbered row-major over the other axes).
LineEmitter = Callable[[Kernel, Operation], None]
LINE_EMITTERS: dict[str, tuple[Callable[[Operation], int], LineEmitter]] = {}
# op name -> its own parallel work (count, grain) in place of one per output element, for an op whose
# kernel (in SINGLE_KERNELS) splits its work otherwise (scatter_add: kernels/scatter.py) ...
OpWork = Callable[[ll.IRBuilder, DimTable, ll.Value, Operation], tuple[ll.Value, ll.Value]]
SINGLE_WORK: dict[str, OpWork] = {}
# ... and, for such an op, the entry point's calls in place of launch_single's
SINGLE_LAUNCHES: dict[str, Callable[[Launch, Operation], None]] = {}


def single(*names: str) -> Callable[[SingleEmitter], SingleEmitter]:
    def register(fn: SingleEmitter) -> SingleEmitter:
        for name in names:
            SINGLE_EMITTERS[name] = fn
        return fn

    return register


def launch_single(launch: Launch) -> None:
    """The kernel over its output; then, for a gather whose slices may be empty, a check of its
    indices where they are (Note [indices of empty slices]). A row op's index is checked first,
    once, by the entry point; a write_row in place runs over one row (Note [rows written in place])."""
    op = _the_op(launch.kernel)
    if op.name in SINGLE_LAUNCHES:
        SINGLE_LAUNCHES[op.name](launch, op)
        return
    if op.name in ("read_row", "write_row"):
        check_row_index(launch, op)
    if op.name == "write_row" and writes_in_place(launch.kernel):
        row = op.operands[2]
        size = product(launch.b, [emit_dim(launch.b, launch.kernel.dims, launch.dims_pointer, row, a)
                                  for a in range(row.type.rank)])
        launch.b.call(launch.parallel_for, [launch.kernel.function, launch.context([]), size, ll.Constant(I64, GRAIN)])
        return
    if op.name in BEFORE_CALLS:
        BEFORE_CALLS[op.name](launch, op)
    launch.default()
    if op.name in AFTER_CHECKS:
        AFTER_CHECKS[op.name](launch, op)
    if op.name == "gather":
        check_indices_of_empty_slices(launch, op)


def check_indices_of_empty_slices(launch: Launch, op: Operation) -> None:
    """Note [indices of empty slices], for an op whose operands 0 and 1 are params (or base) and the
    indices along its `axis` (gather, scatter_add): a check of every index where the slices are empty."""
    if not _slices_may_be_empty(op):
        return
    b, kernel = launch.b, launch.kernel
    params, indices = op.operands[:2]
    axis = op.axis % params.type.rank

    def dim(value, axis):  # type: ignore[no-untyped-def]  (read by the entry point, not the kernel)
        return emit_dim(b, kernel.dims, launch.dims_pointer, value, axis)

    slice_size = product(b, [dim(params, a) for a in range(params.type.rank) if a != axis])
    count = product(b, [dim(indices, a) for a in range(indices.type.rank)])
    check = _emit_index_check(kernel.sibling("indices"), op)
    with b.if_then(b.icmp_signed("==", slice_size, ll.Constant(I64, 0)), likely=False):
        b.call(launch.parallel_for, [check, launch.context([]), count, ll.Constant(I64, GRAIN)])


# Note [indices of empty slices]
# A gather from params whose slices hold no element (params [0, 0], or [5, 0] along axis 0) has an
# empty result, so the kernel over its output never reads an index; but an index out of range is
# still an error, as the reference (and TensorFlow) say. Where a slice may be empty (a dim other
# than the axis unknown or 0), the entry point checks the indices after such a kernel.


def _slices_may_be_empty(op: Operation) -> bool:
    params = op.operands[0]
    axis = op.axis % params.type.rank
    return any(d is None or d == 0 for a, d in enumerate(params.type.shape) if a != axis)


def _emit_index_check(kernel: Kernel, op: Operation) -> ll.Function:
    b = kernel.b
    params, indices = op.operands[:2]
    limit = kernel.dim(params, op.axis % params.type.rank)
    pointer = kernel.operand_pointer(indices.index, indices.type.dtype)
    with for_range(b, kernel.begin, kernel.end, "i") as position:
        index = load_value(b, b.gep(pointer, [position]), indices.type.dtype)
        index = as_index(b, index, indices.type.dtype)
        kernel.fail_if(b.or_(b.icmp_signed("<", index, ll.Constant(I64, 0)), b.icmp_signed(">=", index, limit)), index)
    return kernel.finish()


def _the_op(kernel: Kernel) -> Operation:
    return next(o for o in kernel.op.regions[0].entry.ops if not o.is_terminator and o.name != "constant")


def check_row_index(launch: Launch, op: Operation) -> None:
    """In the entry point, before the kernel: the row index in [0, n), else the error slots name this
    kernel and the index. The kernel itself clamps, so it never reads or writes out of bounds."""
    b, kernel = launch.b, launch.kernel
    buffer, index = op.operands[:2]
    pointer = b.bitcast(launch.buffers[index.index], storage_type(index.type.dtype).as_pointer())
    value = load_value(b, pointer, index.type.dtype)
    value = as_index(b, value, index.type.dtype)
    rows = emit_dim(b, kernel.dims, launch.dims_pointer, buffer, 0)
    bad = b.or_(b.icmp_signed("<", value, ll.Constant(I64, 0)), b.icmp_signed(">=", value, rows))
    with b.if_then(bad, likely=False):
        b.store(ll.Constant(I64, kernel.number + 1), b.gep(launch.dims_pointer, [ll.Constant(I64, kernel.error_slot)]))
        b.store(value, b.gep(launch.dims_pointer, [ll.Constant(I64, kernel.error_slot + 1)]))


def writes_in_place(kernel: Kernel) -> bool:
    """A write_row whose result the memory plan put in its buffer operand's bytes."""
    return kernel.shared is not None and (0, 0) in kernel.shared


def single_work(b: ll.IRBuilder, dims: DimTable, dims_pointer: ll.Value, op: Operation) -> tuple[ll.Value, ll.Value]:
    """Every output element (elementwise_work), or every line of a line op (Note [line ops])."""
    inner = next(o for o in op.regions[0].entry.ops if not o.is_terminator and o.name != "constant")
    if inner.name in SERIAL_KERNELS:
        return ll.Constant(I64, 1), ll.Constant(I64, 1)
    if inner.name in SINGLE_WORK:
        return SINGLE_WORK[inner.name](b, dims, dims_pointer, inner)
    if inner.name not in LINE_EMITTERS:
        return elementwise_work(b, dims, dims_pointer, op)
    x = inner.operands[0]
    axis = LINE_EMITTERS[inner.name][0](inner)
    sizes = [emit_dim(b, dims, dims_pointer, x, a) for a in range(x.type.rank)]
    length = sizes[axis]
    one = ll.Constant(I64, 1)
    grain = b.udiv(ll.Constant(I64, GRAIN), b.select(b.icmp_signed(">", length, one), length, one))
    return product(b, sizes[:axis] + sizes[axis + 1:]), b.select(b.icmp_signed(">", grain, one), grain, one)


@kernel_kind("single", single_work, launch_single)
def emit_single_kernel(kernel: Kernel) -> None:
    b = kernel.b
    op = _the_op(kernel)
    if op.name in LINE_EMITTERS:
        LINE_EMITTERS[op.name][1](kernel, op)
        return
    if op.name == "write_row" and writes_in_place(kernel):
        _emit_row_store(kernel, op)
        return
    if op.name in SINGLE_KERNELS:
        SINGLE_KERNELS[op.name](kernel, op)
        return
    if op.name == "concat" and len(op.operands) >= CONCAT_RUNS_MIN_INPUTS:  # Note [a concat of many inputs]
        emit_concat_runs(kernel, op)
        return
    out = op.result
    sizes = [kernel.dim(out, a) for a in range(out.type.rank)]
    pointer = kernel.result_pointer(0, out.type.dtype)
    with for_range(b, kernel.begin, kernel.end, "e") as index:
        coordinates = decompose(b, index, sizes) if sizes else []
        value = SINGLE_EMITTERS[op.name](kernel, op, coordinates)
        store_value(b, value, b.gep(pointer, [index]), out.type.dtype)


def strides_of(kernel: Kernel, value) -> list[ll.Value]:  # type: ignore[no-untyped-def]
    """Row-major element strides of a (contiguous) region value."""
    b = kernel.b
    strides: list[ll.Value] = [ll.Constant(I64, 1)] * value.type.rank
    for axis in range(value.type.rank - 2, -1, -1):
        strides[axis] = b.mul(strides[axis + 1], kernel.dim(value, axis + 1))
    return strides


def read(kernel: Kernel, value, coordinates: list[ll.Value]) -> ll.Value:  # type: ignore[no-untyped-def]
    """The element of block argument `value` at `coordinates`."""
    offset = dot(kernel.b, coordinates, strides_of(kernel, value))
    pointer = kernel.operand_pointer(value.index, value.type.dtype)
    return load_value(kernel.b, kernel.b.gep(pointer, [offset]), value.type.dtype)


@single("transpose")
def emit_transpose(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    source = [ll.Constant(I64, 0)] * len(coordinates)
    for out_axis, in_axis in enumerate(op.perm):
        source[in_axis] = coordinates[out_axis]
    return read(kernel, op.operands[0], source)


@single("broadcast_to")
def emit_broadcast_to(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    x = op.operands[0]
    offset = len(coordinates) - x.type.rank
    source = [ll.Constant(I64, 0) if x.type.shape[a] == 1 else coordinates[a + offset] for a in range(x.type.rank)]
    return read(kernel, x, source)


@single("slice")
def emit_slice(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    b = kernel.b
    x = op.operands[0]
    out = iter(coordinates)
    source = []
    for axis in range(x.type.rank):
        n = kernel.dim(x, axis)
        begin = ll.Constant(I64, op.begin[axis])
        if axis in op.squeeze_dims:
            index = b.select(b.icmp_signed("<", begin, ll.Constant(I64, 0)), b.add(begin, n), begin)
            kernel.fail_if(b.or_(b.icmp_signed("<", index, ll.Constant(I64, 0)), b.icmp_signed(">=", index, n)),
                           ll.Constant(I64, op.begin[axis]))
            source.append(index)
            continue
        step = op.strides[axis]
        source.append(b.add(_slice_start(b, begin, n, step), b.mul(next(out), ll.Constant(I64, step))))
    return read(kernel, x, source)


def _slice_start(b: ll.IRBuilder, begin: ll.Value, n: ll.Value, step: int) -> ll.Value:
    """Python's slice(begin, _, step).indices(n)[0]."""
    zero, minus_one = ll.Constant(I64, 0), ll.Constant(I64, -1)
    negative = b.icmp_signed("<", begin, zero)
    if step > 0:
        wrapped = b.add(begin, n)
        low = b.select(b.icmp_signed("<", wrapped, zero), zero, wrapped)
        return b.select(negative, low, b.select(b.icmp_signed(">", begin, n), n, begin))
    wrapped = b.add(begin, n)
    low = b.select(b.icmp_signed("<", wrapped, minus_one), minus_one, wrapped)
    last = b.sub(n, ll.Constant(I64, 1))
    return b.select(negative, low, b.select(b.icmp_signed(">", begin, last), last, begin))


@single("concat")
def emit_concat(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    """Branches to the operand whose stretch of the axis holds the coordinate."""
    b = kernel.b
    axis = op.axis % op.result.type.rank
    result = kernel.alloca(compute_type(op.result.type.dtype), "concat.value")
    start: ll.Value = ll.Constant(I64, 0)
    done = b.append_basic_block("concat.done")
    for x in op.operands:
        stop = b.add(start, kernel.dim(x, axis))
        inside = b.icmp_signed("<", coordinates[axis], stop)
        here, later = b.append_basic_block("concat.here"), b.append_basic_block("concat.next")
        b.cbranch(inside, here, later)
        b.position_at_end(here)
        source = list(coordinates)
        source[axis] = b.sub(coordinates[axis], start)
        b.store(read(kernel, x, source), result)
        b.branch(done)
        b.position_at_end(later)
        start = stop
    b.branch(done)  # unreachable: the coordinate is inside the last stretch
    b.position_at_end(done)
    return b.load(result)


@single("gather")
def emit_gather(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    b = kernel.b
    params, indices = op.operands
    axis = op.axis % params.type.rank
    k = indices.type.rank
    index = read(kernel, indices, coordinates[axis:axis + k])
    index = as_index(b, index, indices.type.dtype)
    limit = kernel.dim(params, axis)
    kernel.fail_if(b.or_(b.icmp_signed("<", index, ll.Constant(I64, 0)), b.icmp_signed(">=", index, limit)), index)
    clamped = b.select(b.icmp_signed("<", index, ll.Constant(I64, 0)), ll.Constant(I64, 0), index)
    clamped = b.select(b.icmp_signed(">=", clamped, limit), ll.Constant(I64, 0), clamped)  # never read out of bounds
    return read(kernel, params, [*coordinates[:axis], clamped, *coordinates[axis + k:]])


def _row_index(kernel: Kernel, op: Operation) -> ll.Value:
    """The row index, clamped into [0, n) (the entry point reports a bad one: check_row_index)."""
    b = kernel.b
    index = read(kernel, op.operands[1], [])
    index = as_index(b, index, op.operands[1].type.dtype)
    rows = kernel.dim(op.operands[0], 0)
    inside = b.and_(b.icmp_signed(">=", index, ll.Constant(I64, 0)), b.icmp_signed("<", index, rows))
    return b.select(inside, index, ll.Constant(I64, 0))


@single("read_row")
def emit_read_row(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    return read(kernel, op.operands[0], [_row_index(kernel, op), *coordinates])


@single("write_row")
def emit_write_row(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    """A copy of the buffer, the value's elements in the written row."""
    b = kernel.b
    buffer, _, value = op.operands
    written = b.icmp_signed("==", coordinates[0], _row_index(kernel, op))
    return b.select(written, read(kernel, value, coordinates[1:]), read(kernel, buffer, coordinates))


def _emit_row_store(kernel: Kernel, op: Operation) -> None:
    """write_row in place: the result is the buffer's bytes, so only the row's elements are stored."""
    b = kernel.b
    buffer, _, value = op.operands
    sizes = [kernel.dim(value, a) for a in range(value.type.rank)]
    start = b.mul(_row_index(kernel, op), product(b, sizes))
    pointer = kernel.result_pointer(0, buffer.type.dtype)
    with for_range(b, kernel.begin, kernel.end, "e") as index:
        element = read(kernel, value, decompose(b, index, sizes) if sizes else [])
        store_value(b, element, b.gep(pointer, [b.add(start, index)]), buffer.type.dtype)


@single("one_hot")
def emit_one_hot(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    b = kernel.b
    indices = op.operands[0]
    axis = op.axis % op.result.type.rank
    index = read(kernel, indices, coordinates[:axis] + coordinates[axis + 1:])
    index = as_index(b, index, indices.type.dtype)
    value_type = compute_type(op.result.type.dtype)
    hot = b.icmp_signed("==", index, coordinates[axis])
    return b.select(hot, _number(value_type, op.on_value), _number(value_type, op.off_value))


def _number(value_type: ll.Type, number: float) -> ll.Constant:
    return constant_of(value_type, number if isinstance(value_type, (ll.FloatType, ll.DoubleType)) else int(number))


@single("random_uniform", "random_normal")
def emit_random_op(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    b = kernel.b
    step = read(kernel, op.operands[0], [])
    sizes = [ll.Constant(I64, d) for d in op.result.type.shape]
    index = dot(b, coordinates, _static_strides(sizes)) if coordinates else ll.Constant(I64, 0)
    return emit_random(b, op, step, index)


@single("random_uniform_like")
def emit_random_like_op(kernel: Kernel, op: Operation, coordinates: list[ll.Value]) -> ll.Value:
    """Its shape is its operand's, perhaps known only at run time: the row-major index from the result's dims."""
    step = read(kernel, op.operands[0], [])
    index = dot(kernel.b, coordinates, strides_of(kernel, op.result)) if coordinates else ll.Constant(I64, 0)
    return emit_random(kernel.b, op, step, index)


def _static_strides(sizes: list[ll.Constant]) -> list[ll.Value]:
    strides, running = [], 1
    for size in reversed(sizes):
        strides.append(ll.Constant(I64, running))
        running *= size.constant
    return strides[::-1]
