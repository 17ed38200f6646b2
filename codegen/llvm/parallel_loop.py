"""Note [independent iterations]: loop metadata telling LLVM that a loop's iterations touch no
memory that another iteration touches, so its loop vectorizer needs no run-time overlap checks.

An elementwise loop (kernels/loop.py) writes each output at the iteration's own index and reads
each input at that index or, broadcast, at one that no iteration writes; a result that the memory
plan puts in an operand's buffer is read and written at the same index. So no iteration depends
on another: that is what `llvm.loop.parallel_accesses` states for the memory accesses of an
access group. Without it the loop vectorizer proves the buffers apart at run time, one check per
pair of written and other pointers, and gives up past its threshold (128 checks): a kernel with
40 outputs (the forward values that a long chain's gradient reads, Note [kernel size limit] in
passes/fusion.py) ran as scalars, about 3x slower than vectorized.

One access group and one loop id serve every such loop of a module: a kernel's code (and its hash,
Note [kernels compiled apart] in split.py) is then the same wherever it sits in the graph.
"""

from __future__ import annotations

import weakref

from llvmlite import ir as ll

_NODES: weakref.WeakKeyDictionary[ll.Module, tuple[ll.MDValue, ll.MDValue]] = weakref.WeakKeyDictionary()


class _DistinctNode(ll.MDValue):
    """`distinct !{...}`, which llvmlite's add_metadata (uniqued nodes only) cannot make; compared
    by identity, since a loop id refers to itself."""

    def descr(self, buf: list[str]) -> None:
        body: list[str] = []
        super().descr(body)
        buf += ["distinct ", *body]

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


def _nodes(module: ll.Module) -> tuple[ll.MDValue, ll.MDValue]:
    """The module's access group and the loop id that declares its accesses parallel."""
    if module not in _NODES:
        group = _DistinctNode(module, [], name=str(len(module.metadata)))
        parallel = module.add_metadata([ll.MetaDataString(module, "llvm.loop.parallel_accesses"), group])
        loop_id = _DistinctNode(module, [], name=str(len(module.metadata)))
        loop_id.operands = (loop_id, parallel)
        _NODES[module] = (group, loop_id)
    return _NODES[module]


def mark_parallel(function: ll.Function, blocks: list[ll.Block], latch: ll.Block) -> None:
    """Declare the loop whose body is `blocks` (its back edge ends `latch`) free of dependences
    between iterations, for every load and store in it (Note [independent iterations])."""
    group, loop_id = _nodes(function.module)
    for block in blocks:
        for instruction in block.instructions:
            if instruction.opname in ("load", "store"):
                instruction.set_metadata("llvm.access.group", group)
    latch.terminator.set_metadata("llvm.loop", loop_id)
