"""Local rewrites: patterns keyed by op name and the greedy driver that applies them.

A pattern looks at one op, guards first, and rewrites through the Rewriter:

    @pattern("mul")
    def drop_mul_by_one(op: Operation, rw: Rewriter) -> None:
        '''x * 1 -> x. Exact for NaN, inf and -0.0: no fast-math flag needed.'''
        ...
        rw.replace_all_uses(op.result, x)

The driver keeps a worklist: ops a rewrite touched (users of replaced values,
ops it created) are visited again, and a pure op left without uses is erased
at once, so a module reaches its fixed point in time linear in its size for
the usual rewrites.

Note [linear rewriting]: a block's ops are a Python list, where finding an
op (list.index) or removing one (list.remove) costs time linear in the
block. Done once per rewrite, that is quadratic in a block of 100k ops. So
passes never touch the list per op: an erased op is `unlink`ed (its uses
dropped, its parent cleared) and the list is `compact`ed once at the end;
ops a pattern creates wait on the op they go before and are spliced in then.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable

from flowc.ir import Block, Builder, Module, Operation, OpResult, Value

PatternFn = Callable[[Operation, "Rewriter"], None]
PATTERNS: dict[str, list[PatternFn]] = {}
ANY_OP = "*"  # patterns that look at every op (constant folding)


def pattern(*op_names: str) -> Callable[[PatternFn], PatternFn]:
    """Register a rewrite for ops of these names ('*' for every op)."""

    def register(fn: PatternFn) -> PatternFn:
        fn.op_names = op_names  # type: ignore[attr-defined]
        for name in op_names:
            PATTERNS.setdefault(name, []).append(fn)
        return fn

    return register


def pattern_table(fns: Iterable[PatternFn]) -> dict[str, list[PatternFn]]:
    """The op-name table of a chosen set of patterns, for a pass that applies only those."""
    table: dict[str, list[PatternFn]] = {}
    for fn in fns:
        for name in fn.op_names:  # type: ignore[attr-defined]
            table.setdefault(name, []).append(fn)
    return table


class _TrackingBuilder(Builder):
    """Inserts before `anchor`: the ops wait in the rewriter until it splices them in (Note [linear rewriting])."""

    def __init__(self, rewriter: Rewriter, anchor: Operation):
        super().__init__(anchor.parent, None, anchor.loc)
        self.rewriter = rewriter
        self.anchor = anchor

    def insert(self, op: Operation) -> Operation:
        op.parent = self.block
        self.rewriter.pending.setdefault(self.anchor, []).append(op)
        self.rewriter.blocks.add(self.block)
        self.rewriter.touched.append(op)
        return op


class Rewriter:
    """What a pattern may do to the module; the driver learns from it what changed."""

    def __init__(self, fast_math: bool = False):
        self.fast_math = fast_math  # allows rewrites that change NaN, inf or -0.0 results
        self.changed = False
        self.touched: list[Operation] = []
        self.pending: dict[Operation, list[Operation]] = {}  # op -> new ops that go right before it
        self.blocks: set[Block] = set()  # blocks whose op list `finish` must rebuild

    def builder_before(self, op: Operation) -> Builder:
        """A builder inserting right before `op`, carrying its source location."""
        return _TrackingBuilder(self, op)

    def replace_all_uses(self, old: Value, new: Value) -> None:
        if old is new:
            return
        self.touched.extend(old.users)
        old.replace_all_uses_with(new)
        self.changed = True

    def replace_op(self, op: Operation, new_values: Iterable[Value]) -> None:
        """Replace each result of `op` with the matching value, then erase `op`."""
        for old, new in zip(op.results, new_values, strict=True):
            if new.name is None:
                new.name = old.name  # keep the user's name for the value
            self.replace_all_uses(old, new)
        self.erase(op)

    def erase(self, op: Operation) -> None:
        self.touched.extend(producers(op))
        self.blocks.add(unlink(op))
        self.changed = True

    def finish(self) -> None:
        """Put the op lists right: created ops in place, erased ones out."""
        for block in self.blocks:
            compact(block, self.pending)
        self.pending.clear()
        self.blocks.clear()


def unlink(op: Operation) -> Block:
    """Erase `op` as Operation.erase does, but leave it in its block's list for `compact`
    (Note [linear rewriting]). Returns the block it was in."""
    for result in op.results:
        if result.uses:
            raise ValueError(f"cannot erase {op.name}: result {result.index} still has uses")
    for nested in list(op.walk())[::-1]:
        nested.drop_operand_uses()
    block = op.parent
    op.parent = None
    return block


def compact(block: Block, pending: dict[Operation, list[Operation]] | None = None) -> None:
    """Rebuild the block's op list: unlinked ops out, each pending op right before the op it waits on."""
    pending = pending if pending is not None else {}
    ops: list[Operation] = []
    stack = list(reversed(block.ops))
    while stack:
        op = stack.pop()
        before = pending.pop(op, None)
        if before:  # they go first (and may have ops waiting on them in turn); then op itself
            stack.append(op)
            stack.extend(reversed(before))
        elif op.parent is block:
            ops.append(op)
    block.ops = ops


def producers(op: Operation) -> list[Operation]:
    return [v.op for v in op.operands if isinstance(v, OpResult)]


def is_dead(op: Operation) -> bool:
    return op.pure and not op.is_terminator and all(not r.uses for r in op.results)


def apply_patterns(module: Module, patterns: dict[str, list[PatternFn]] | None = None,
                   fast_math: bool = False) -> bool:
    """Apply patterns greedily until none matches; returns whether anything changed."""
    patterns = PATTERNS if patterns is None else patterns
    rewriter = Rewriter(fast_math)
    worklist = deque(module.walk())
    queued = {id(op) for op in worklist}
    while worklist:
        op = worklist.popleft()
        queued.discard(id(op))
        if op.parent is None:
            continue  # erased by an earlier rewrite
        if is_dead(op):
            rewriter.erase(op)
        else:
            for fn in patterns.get(op.name, []) + patterns.get(ANY_OP, []):
                fn(op, rewriter)
                if op.parent is None:
                    break
            if op.parent is not None and is_dead(op):
                rewriter.erase(op)
        for touched in rewriter.touched:
            if id(touched) not in queued and touched.parent is not None:
                worklist.append(touched)
                queued.add(id(touched))
        rewriter.touched.clear()
    rewriter.finish()
    return rewriter.changed
