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
from typing import Callable

from llvmlite import ir as ll

from flowc.ir import Operation, Value
from flowc.ir.ops.gang_rows import ROW_WRITES, row_plan

from .control import bytes_of, copy_bytes, emit_loop_header, emit_row_read, row_read
from .entry import EntryEmitter
from .gang import GANG_EMITTERS, GangEmitter
from .kernel import alloca_at_start, emit_dim, for_range, min_of, product
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
        body = op.regions[1].entry
        self.private_state = [i for i, arg in enumerate(body.args) if arg in plan.private]
        private_results = [op.results[i] for i in self.private_state]
        self.shared = {r: self.pointers[r] for r in private_results}  # where member 0 leaves them at the end
        slots: dict[object, ll.Value] = {}
        for value in values:  # the loop's values in a fixed order: the same code on every compile
            if value not in plan.private and value not in private_results:
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
        elif op.kind == "single":  # a write_row or scatter_add of one row (ir/ops/gang_rows.py)
            self._write_rows(op)
        else:
            kernel = self.kernel_of(op, True, WORK[op.kind](self.b, self.dims, self.dims_pointer, op))
            self._call_on_rows(kernel.function, op, op.results[0], op.kind != "matmul")
        self._record(number, start)
        if op.kind != "loop":
            self._return_on_error()

    def _write_rows(self, op: Operation) -> None:
        """write_row or scatter_add of one row: every member checks the index, then writes its rows. In
        place, the kernel stores (adds) the row's elements; else a write_row's kernel computes every
        element of its result, and a scatter_add's copies base first (scatter.py), here by rows."""
        kernel = self.kernel_of(op, True, None)
        pointers = [self.buffer(v) for v in (*op.operands, *op.results)]
        launch = Launch(kernel, self.b, self.entry, pointers, self.dims_pointer, self.parallel_for, lambda: None,
                        self.scratch)
        write = next(o for o in op.regions[0].entry.ops if o.name in ROW_WRITES)
        check_row_index(launch, write)
        self._return_on_error()
        if write.name == "write_row" and not writes_in_place(kernel):
            self._call_on_rows(kernel.function, op, op.results[0], True)
            return
        if not writes_in_place(kernel):
            base = op.operands[write.operands[0].index]
            self._copy_rows(self.buffer(op.results[0]), self.buffer(base), op.results[0])
        self._call_on_rows(kernel.function, op, op.operands[write.operands[2].index], True)

    def _call_on_rows(self, function: ll.Function, op: Operation, shape_of: Value, by_elements: bool) -> None:
        """function(context, begin, end) over this member's rows of `shape_of`: in rows (a BLAS product's
        work, rows along axis 0), or in the elements of those rows (row-major work), a call per run."""
        b = self.b
        context = context_of(b, [self.buffer(v) for v in (*op.operands, *op.results)], self.dims_pointer)
        if by_elements:
            self._each_run(shape_of, lambda begin, end: b.call(function, [context, begin, end]))
            return
        first, last = self.shares[self.rows_plan.rows[shape_of]]
        with b.if_then(b.icmp_signed("<", first, last)):
            b.call(function, [context, first, last])

    def _each_run(self, value: Value, emit: Callable[[ll.Value, ll.Value], None]) -> None:
        """emit(begin, end) for each run of this member's rows of `value` in its row-major elements: one
        run per index of the axes before its row axis (one in all where that is axis 0)."""
        b = self.b
        axis = self.rows_plan.axis[value]
        sizes = [emit_dim(b, self.dims, self.dims_pointer, value, a) for a in range(value.type.rank)]
        inner = product(b, sizes[axis + 1:])
        first, last = self.shares[self.rows_plan.rows[value]]
        with b.if_then(b.icmp_signed("<", first, last)):
            with for_range(b, ll.Constant(I64, 0), product(b, sizes[:axis]), "run") as run:
                rows = b.mul(run, sizes[axis])
                emit(b.mul(b.add(rows, first), inner), b.mul(b.add(rows, last), inner))

    def _row_slice(self, result: Value) -> Callable[[ll.Value, ll.Value, ll.Value], None]:
        """emit_row_read's copy: this member's rows of the row read's result."""
        return lambda to, source, nbytes: self._copy_rows(to, source, result)

    def _copy_rows(self, to: ll.Value, source: ll.Value, value: Value) -> None:
        """This member's rows of an owned value: a copy of bytes per run."""
        b, size = self.b, ll.Constant(I64, value.type.dtype.itemsize)

        def copy(begin: ll.Value, end: ll.Value) -> None:
            offset = b.mul(begin, size)
            copy_bytes(self, b.gep(to, [offset]), b.gep(source, [offset]), b.mul(b.sub(end, begin), size))

        self._each_run(value, copy)

    def _return_on_error(self) -> None:
        b = self.b
        code = b.load(b.gep(self.dims_pointer, [ll.Constant(I64, self.program.error_slot)]))
        with b.if_then(b.icmp_signed("!=", code, ll.Constant(I64, 0)), likely=False):
            b.ret_void()


GANG_EMITTERS["rows"] = RowGangEmitter
