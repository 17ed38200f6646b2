"""A while loop marked `threads = "rows"` (Note [a gang that owns rows] in ir/ops/gang_rows.py): its
gang function, where each member owns the same rows of every value the loop computes.

    gang<N>(context, gang, member, members):
                  rows [r0, r1): this member's share of each group of rows
                  private state <- init (every member, into stack slots of its own)
                  owned and invariant state <- init (shared out as gang.py does)
                  barrier: every member has its initial values
                  loop: <cond kernels, private>; if !flag: break
                        <body kernels: private ones whole, the others on rows [r0, r1)>
                        state <- yields (private: whole; owned: rows [r0, r1))
                  member 0: the loop's private results <- its stack slots

No barrier in a turn: no member reads a row another writes, and each computes the scalars itself.
A kernel that fails fails on every member alike (its inputs are private or invariant: a row index
out of range, a private kernel's check), so each member stops on its own. Owned values never share
bytes with each other in the memory plan (passes/memory.py), so a member a turn ahead never
overwrites what one behind still reads.
"""

from __future__ import annotations

import math

from llvmlite import ir as ll

from flowc.ir import Operation, Value
from flowc.ir.ops.gang_rows import row_plan

from .control import bytes_of, copy_bytes, emit_loop_header, emit_row_read, row_read
from .entry import EntryEmitter
from .gang import GANG_EMITTERS, GangEmitter
from .kernel import alloca_at_start, emit_dim, min_of, product
from .kernels.single import check_row_index, writes_in_place
from .launch import WORK, Launch, context_of
from .types import I8, I64, PTR


class RowGangEmitter(GangEmitter):
    """GangEmitter's member code for a loop whose members own rows (module docstring)."""

    def __init__(self, outer: EntryEmitter, function: ll.Function, values: list[Value], op: Operation):
        super().__init__(outer, function, values, op)
        plan = row_plan(op)
        if plan is None:
            raise AssertionError("a loop marked threads = \"rows\" whose kernels share rows")
        self.rows_plan = plan
        self.shared = dict(self.pointers)  # the bytes every member sees, for the private results at the end
        body = op.regions[1].entry
        self.private_state = [i for i, arg in enumerate(body.args) if arg in plan.private]
        slots: dict[object, ll.Value] = {}
        for value in [*plan.private, *(op.results[i] for i in self.private_state)]:
            if value not in self.pointers:
                continue
            root = self.plan.buffer_of(value)
            if root not in slots:
                size = max(math.prod(value.type.shape) * value.type.dtype.itemsize, 1)
                slot = alloca_at_start(self.at_entry, function.entry_basic_block, ll.ArrayType(I8, size), "own", 64)
                slots[root] = self.at_entry.bitcast(slot, PTR)
            self.pointers[value] = slots[root]
        self.shares: dict[tuple[Value, int], tuple[ll.Value, ll.Value]] = {}
        for size_of in dict.fromkeys(plan.rows.values()):  # this member's rows of each group, made up front
            self.shares[size_of] = self._share_rows(*size_of)

    def _share_rows(self, value: Value, axis: int) -> tuple[ll.Value, ll.Value]:
        """[first, last): this member's rows of `value`'s axis, an equal share of them."""
        b, one = self.b, ll.Constant(I64, 1)
        total = emit_dim(b, self.dims, self.dims_pointer, value, axis)
        chunk = b.sdiv(b.add(total, b.sub(self.members, one)), self.members)
        first = min_of(b, b.mul(self.member, chunk), total)
        return first, min_of(b, b.add(first, chunk), total)

    def emit_loop(self, op: Operation) -> None:
        b = self.b
        body = op.regions[1].entry
        private = set(self.private_state)
        for i in self.private_state:
            self._copy_whole(op.results[i], op.operands[i])
        shared = [i for i in range(len(op.results)) if i not in private]
        self._copy_state([op.operands[i] for i in shared], [op.results[i] for i in shared])
        # Every member has read the initial values before any starts a turn: member 0, done with the
        # loop, writes its private results into the bytes an initial value may share.
        if self.pending or self.barriers == 0:
            self._barrier()
        header, done = emit_loop_header(self, op, "rows")
        self.emit_block(body, in_control=True)
        for i, (source, target) in enumerate(zip(body.terminator.operands, op.results)):
            if self.plan.buffer_of(source) == self.plan.buffer_of(target):
                continue
            if i in private:
                self._copy_whole(target, source)
            else:
                self._copy_rows(self.buffer(target), self.buffer(source), source)
        b.branch(header)
        b.position_at_end(done)
        with b.if_then(b.icmp_signed("==", self.member, ll.Constant(I64, 0))):
            for i in self.private_state:
                result = op.results[i]
                copy_bytes(self, self.shared[result], self.buffer(result), bytes_of(self, result))
        b.ret_void()
        self.at_entry.position_at_end(self.at_entry.block)
        self.at_entry.branch(self.start)

    def _copy_whole(self, target: Value, source: Value) -> None:
        copy_bytes(self, self.buffer(target), self.buffer(source), bytes_of(self, source))

    def emit_kernel(self, op: Operation, in_control: bool) -> None:
        number = self.numbers[op]
        start = self.timer.now() if self.timer else None
        if all(r in self.rows_plan.private for r in op.results):  # every member all of it, on its own bytes
            self._launch(op, direct=True)
        elif row_read(op) is not None:
            emit_row_read(self, op, number, self._row_slice(op.results[0]))
        elif op.kind == "single":  # a write_row in place (ir/ops/gang_rows.py)
            self._write_rows(op)
        else:
            kernel = self.kernel_of(op, True, WORK[op.kind](self.b, self.dims, self.dims_pointer, op))
            self._call_on_rows(kernel.function, op, op.results[0], op.kind != "matmul")
        self._record(number, start)
        if op.kind != "loop":
            self._return_on_error()

    def _write_rows(self, op: Operation) -> None:
        """write_row in place: every member checks the index, then stores its rows of the row."""
        kernel = self.kernel_of(op, True, None)
        if not writes_in_place(kernel):
            raise AssertionError("a write_row of a rows loop that the memory plan did not put in place")
        pointers = [self.buffer(v) for v in (*op.operands, *op.results)]
        launch = Launch(kernel, self.b, self.entry, pointers, self.dims_pointer, self.parallel_for, lambda: None,
                        self.scratch)
        write = next(o for o in op.regions[0].entry.ops if o.name == "write_row")
        check_row_index(launch, write)
        self._return_on_error()
        row = op.operands[write.operands[2].index]
        self._call_on_rows(kernel.function, op, row, True)

    def _call_on_rows(self, function: ll.Function, op: Operation, shape_of: Value, by_elements: bool) -> None:
        """function(context, begin, end) over this member's rows of `shape_of` (row axis 0): in rows
        (a BLAS product's work), or in the elements of those rows (row-major work)."""
        b = self.b
        context = context_of(b, [self.buffer(v) for v in (*op.operands, *op.results)], self.dims_pointer)
        inner = self._inner(shape_of) if by_elements else ll.Constant(I64, 1)
        first, last = self.shares[self.rows_plan.rows[shape_of]]
        with b.if_then(b.icmp_signed("<", first, last)):
            b.call(function, [context, b.mul(first, inner), b.mul(last, inner)])

    def _inner(self, value: Value) -> ll.Value:
        """Elements of a row of `value` along its axis 0."""
        return product(self.b, [emit_dim(self.b, self.dims, self.dims_pointer, value, a)
                                for a in range(1, value.type.rank)])

    def _row_slice(self, result: Value):  # type: ignore[no-untyped-def]
        """emit_row_read's copy: this member's rows of the row read's result."""
        def copy(to: ll.Value, source: ll.Value, nbytes: ll.Value) -> None:
            b = self.b
            row_bytes = b.mul(self._inner(result), ll.Constant(I64, result.type.dtype.itemsize))
            first, last = self.shares[self.rows_plan.rows[result]]
            begin, end = b.mul(first, row_bytes), b.mul(last, row_bytes)
            with b.if_then(b.icmp_signed("<", begin, end)):
                copy_bytes(self, b.gep(to, [begin]), b.gep(source, [begin]), b.sub(end, begin))
        return copy

    def _copy_rows(self, to: ll.Value, source: ll.Value, value: Value) -> None:
        """This member's rows of an owned value, along its row axis: one run of bytes per index of
        the axes before it."""
        b = self.b
        axis = self.rows_plan.axis[value]
        sizes = [emit_dim(b, self.dims, self.dims_pointer, value, a) for a in range(value.type.rank)]
        row_bytes = product(b, [*sizes[axis + 1:], ll.Constant(I64, value.type.dtype.itemsize)])
        outer = product(b, sizes[:axis])
        block_bytes = b.mul(sizes[axis], row_bytes)
        first, last = self.shares[self.rows_plan.rows[value]]
        begin, length = b.mul(first, row_bytes), b.mul(b.sub(last, first), row_bytes)
        with b.if_then(b.icmp_signed(">", length, ll.Constant(I64, 0))):
            index = alloca_at_start(b, self.entry.entry_basic_block, I64, "run")  # a loop over the outer indices
            b.store(ll.Constant(I64, 0), index)
            check, step, after = (b.append_basic_block(f"rows.copy.{s}") for s in ("check", "step", "after"))
            b.branch(check)
            b.position_at_end(check)
            i = b.load(index)
            b.cbranch(b.icmp_signed("<", i, outer), step, after)
            b.position_at_end(step)
            offset = b.add(b.mul(i, block_bytes), begin)
            copy_bytes(self, b.gep(to, [offset]), b.gep(source, [offset]), length)
            b.store(b.add(i, ll.Constant(I64, 1)), index)
            b.branch(check)
            b.position_at_end(after)

    def _return_on_error(self) -> None:
        b = self.b
        code = b.load(b.gep(self.dims_pointer, [ll.Constant(I64, self.program.error_slot)]))
        with b.if_then(b.icmp_signed("!=", code, ll.Constant(I64, 0)), likely=False):
            b.ret_void()


GANG_EMITTERS["rows"] = RowGangEmitter
