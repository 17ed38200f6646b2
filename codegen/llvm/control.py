"""`cond` and `while` in the entry point: real branches and loops around their regions' kernels.

The memory plan decided where everything lives (Note [control flow storage]
in passes/memory.py): a region's arguments are the bytes of the cond's
operands or of the loop state, and a yielded value that a kernel of the
region computes was usually written in place into the result (or the state)
already. What is left here is the control flow and the copies the plan could
not avoid:

    cond %p, %args:                     while %init:
      if p: <then kernels>                state <- init (copies)
            result <- yields (copies)     loop: <cond region kernels>
      else: <else kernels>                      if !flag: done
            result <- yields (copies)           <body kernels>
                                                state <- yields (copies); loop
                                          done: (the results are the state)

The copies at a body's yield never read a state buffer (MaterializeResults
made each yielded value a kernel result of the body), so their order does not
matter. No Python runs per turn: one Session.run is still one native call.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Protocol, Sequence

from llvmlite import ir as ll

from flowc.ir import Block, Operation, Value
from flowc.ir.ops.kernel_space import row_read

from .kernel import emit_dim, product
from .program import DimTable, Program, StoragePlan
from .types import I1, I8, I64, PTR, as_index, storage_type


class EntryEmitter(Protocol):
    """What this file needs of module.py's EntryEmitter (which imports this file, so not the reverse)."""

    b: ll.IRBuilder
    module: ll.Module
    program: Program
    pointers: dict[Value, ll.Value]
    plan: StoragePlan
    dims: DimTable
    dims_pointer: ll.Value

    def buffer(self, value: Value) -> ll.Value: ...

    def emit_block(self, block: Block, in_control: bool = False) -> None: ...


def emit_cond(emitter: EntryEmitter, op: Operation) -> None:
    b = emitter.b
    flag = b.load(b.bitcast(emitter.buffer(op.operands[0]), I8.as_pointer()), name="pred")
    then_block, else_block = b.append_basic_block("cond.then"), b.append_basic_block("cond.else")
    done = b.append_basic_block("cond.done")
    b.cbranch(b.icmp_unsigned("!=", flag, ll.Constant(I8, 0)), then_block, else_block)
    for block, region in zip((then_block, else_block), op.regions):
        b.position_at_end(block)
        emitter.emit_block(region.entry, in_control=True)
        _copy_into(emitter, region.entry.terminator.operands, op.results)
        b.branch(done)
    b.position_at_end(done)


def emit_while(emitter: EntryEmitter, op: Operation) -> None:
    b = emitter.b
    body = op.regions[1].entry
    _copy_into(emitter, op.operands, op.results)  # the state starts as the initial values
    header, done = emit_loop_header(emitter, op, "while")
    emitter.emit_block(body, in_control=True)
    _copy_into(emitter, body.terminator.operands, op.results)
    b.branch(header)
    b.position_at_end(done)


def emit_loop_header(emitter: EntryEmitter, op: Operation, name: str,
                     before_flag: Callable[[], None] | None = None) -> tuple[ll.Block, ll.Block]:
    """A while loop's header: its cond region's kernels, then (after `before_flag`, a gang's barrier)
    the branch on the flag into the turn, where the builder is left, or out. (header, done)."""
    b = emitter.b
    condition = op.regions[0].entry
    header, turn = b.append_basic_block(f"{name}.cond"), b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    emitter.emit_block(condition, in_control=True)
    if before_flag is not None:
        before_flag()
    (flag_value,) = condition.terminator.operands
    flag = b.load(b.bitcast(emitter.buffer(flag_value), I8.as_pointer()), name="going")
    b.cbranch(b.icmp_unsigned("!=", flag, ll.Constant(I8, 0)), turn, done)
    b.position_at_end(turn)
    return header, done


def _copy_into(emitter: EntryEmitter, sources: Sequence[Value], targets: Sequence[Value]) -> None:
    """targets[i] <- sources[i] wherever the plan did not already put them in the same bytes."""
    plan = emitter.plan
    for source, target in zip(sources, targets, strict=True):
        if plan.buffer_of(source) != plan.buffer_of(target):
            _copy(emitter, emitter.buffer(target), emitter.buffer(source), source)


def _copy(emitter: EntryEmitter, to: ll.Value, source_pointer: ll.Value, value: Value) -> None:
    nbytes = bytes_of(emitter, value)
    if isinstance(nbytes, ll.Constant) and nbytes.constant == 0:
        return
    copy_bytes(emitter, to, source_pointer, nbytes)


def bytes_of(emitter: EntryEmitter, value: Value) -> ll.Value:
    """The size of `value`'s bytes (a constant where its shape is static)."""
    sizes = [emit_dim(emitter.b, emitter.dims, emitter.dims_pointer, value, axis) for axis in range(value.type.rank)]
    return product(emitter.b, [*sizes, ll.Constant(I64, value.type.dtype.itemsize)])


def copy_bytes(emitter: EntryEmitter, to: ll.Value, source_pointer: ll.Value, nbytes: ll.Value) -> None:
    memcpy = emitter.module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
    emitter.b.call(memcpy, [to, source_pointer, nbytes, ll.Constant(I1, 0)])


# By control_kind: "cond", "while", and "gang", a loop run by a gang (`threads = "gang"` or "rows";
# registered by gang.py, which emits it).
CONTROL_EMITTERS: dict[str, Callable[[EntryEmitter, Operation], None]] = {"cond": emit_cond, "while": emit_while}


def control_kind(op: Operation) -> str:
    """The CONTROL_EMITTERS key of a cond or while op: a loop marked `threads` has its own."""
    return "gang" if op.name == "while" and "threads" in op.attributes else op.name


# Note [a row read]
# A loop over a sequence reads step t as gather(seq, t): one index, along axis 0, so one contiguous
# row of the sequence. The generic gather kernel (kernels/single.py) checks and reads the index per
# element, as it must for a tensor of indices; for this one, the entry point checks the index once
# and copies the row (memcpy): an RNN's x_t costs a copy of its bytes per step. A bad index sets the
# error slots as the kernel would (kernel number + 1 and the index), and nothing is read. A kernel of
# one read_row is the same read (the rows of an unrolled RNN's x and gradient, made read_row by
# Note [constants lifted out of kernels] in passes/lift_constants.py).
#
# Note [a row read as a view]
# In a compiled loop's body, x_t = gather(seq, t) of a sequence that the loop yields unchanged (so no
# kernel writes its bytes while the loop runs: passes/memory.py's _unchanged_state), read only by
# kernels of the body, needs no bytes of its own: after the index check, its buffer is the row
# itself, and the copy goes (a gang's members then copy nothing either).


def row_view(op: Operation) -> bool:
    """Whether row read kernel `op` may be a view of its row (Note [a row read as a view])."""
    gather = row_read(op)
    block = op.parent
    loop = block.parent.parent if block is not None and block.parent is not None else None
    if gather is None or getattr(loop, "name", None) != "while" or "driven" in loop.attributes:
        return False
    body = loop.regions[1].entry
    params = op.operands[gather.operands[0].index]
    unchanged = block is body and params in body.args and body.terminator.operands[body.args.index(params)] is params
    users = [user for user, _ in op.results[0].uses]
    return unchanged and all(user.name == "fusion" and user.parent is block for user in users)


def emit_row_read(emitter: EntryEmitter, op: Operation, number: int,
                  copy: Callable[[ll.Value, ll.Value, ll.Value], None] | None = None) -> None:
    """Note [a row read]: check the index, then copy its row into the kernel's result; `copy(to,
    source, nbytes)` in place of one memcpy (a gang's members copy a slice each: gang.py). Where the
    read may be a view (Note [a row read as a view]), the result's buffer becomes the row instead."""
    b = emitter.b
    gather = row_read(op)
    params, indices = (op.operands[v.index] for v in gather.operands)  # type: ignore[union-attr]
    index_pointer = b.bitcast(emitter.buffer(indices), storage_type(indices.type.dtype).as_pointer())
    index = b.load(index_pointer)
    index = as_index(b, index, indices.type.dtype)
    limit = emit_dim(b, emitter.dims, emitter.dims_pointer, params, 0)
    bad = b.or_(b.icmp_signed("<", index, ll.Constant(I64, 0)), b.icmp_signed(">=", index, limit))
    if row_view(op):
        with b.if_then(bad, likely=False):
            slot = emitter.program.error_slot
            for offset, value in ((0, ll.Constant(I64, number + 1)), (1, index)):
                b.store(value, b.gep(emitter.dims_pointer, [ll.Constant(I64, slot + offset)]))
        row = b.select(bad, ll.Constant(I64, 0), index)  # the run stops before anything reads a bad row
        emitter.pointers[op.results[0]] = b.gep(emitter.buffer(params), [b.mul(row, _row_bytes(emitter, params))])
        return
    with b.if_else(bad, likely=False) as (failed, good):
        with failed:
            slot = emitter.program.error_slot
            for offset, value in ((0, ll.Constant(I64, number + 1)), (1, index)):
                b.store(value, b.gep(emitter.dims_pointer, [ll.Constant(I64, slot + offset)]))
        with good:
            row_bytes = _row_bytes(emitter, params)
            source = b.gep(emitter.buffer(params), [b.mul(index, row_bytes)])
            (copy or partial(copy_bytes, emitter))(emitter.buffer(op.results[0]), source, row_bytes)


def _row_bytes(emitter: EntryEmitter, params: Value) -> ll.Value:
    """The bytes of one row of `params` along axis 0."""
    b = emitter.b
    sizes = [emit_dim(b, emitter.dims, emitter.dims_pointer, params, axis) for axis in range(1, params.type.rank)]
    return product(b, [*sizes, ll.Constant(I64, params.type.dtype.itemsize)])
