"""Transfers between the partitions of a graph placed on several tasks: `send` and `recv`.

Where an edge of the graph crosses from one task to another, the producer's partition
ends it with `send %v {edge = 3, label = "...", peer = 1}` and the consumer's starts it
again with `%r = recv {edge = 3, label = "...", peer = 0} : f32[4, 8]` (compiler/partition.py).
`peer` is the other task's MPI rank, `edge` the edge's index in its run (the MPI tag is made
from it and the run's number, so two runs never mix), `label` says which ops the edge joins,
for error messages.

Neither op reaches a target: the partitioned executor cuts each partition into segments at its
receives, and a send's operand becomes a result of its segment and a recv's result an argument
of the next (compiler/partitioned_run.py). Both are impure, so no pass merges, removes, folds
or hoists one. Their reference meaning is a mailbox in the interpreter, keyed by the edge: a
send leaves its value there and the recv of the same edge takes it, so one interpreter can run
the partitions of a run one after another, each send before its recv.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FlowcError
from ..op import Op


class TransferMissing(FlowcError, LookupError):
    """A recv ran before any send of its edge (in the reference interpreter's mailbox)."""


def mailbox(interpreter: Any) -> dict[int, np.ndarray]:
    """The interpreter's values in flight, by edge; made on first use."""
    box = getattr(interpreter, "transfers", None)
    if box is None:
        box = interpreter.transfers = {}
    return box


class Send(Op):
    """Sends its operand to task `peer` over edge `edge`; no result."""

    name = "send"
    attrs = {"peer": int, "edge": int, "label": str}
    num_operands = 1
    pure = False  # its effect is the transfer: never removed, merged, folded or hoisted
    foldable = False
    differentiable = False

    def infer_type(self, value: Any) -> tuple[()]:
        return ()

    def evaluate(self, operands: list[Any], interpreter: Any) -> list[Any]:
        mailbox(interpreter)[self.edge] = operands[0]
        return []


class Recv(Op):
    """The value task `peer` sent over edge `edge`; its type is the edge's (given, no type rule)."""

    name = "recv"
    attrs = {"peer": int, "edge": int, "label": str}
    num_operands = 0
    pure = False  # a value from elsewhere: two recvs are never one, and none moves
    foldable = False
    differentiable = False

    def evaluate(self, operands: list[Any], interpreter: Any) -> list[Any]:
        box = mailbox(interpreter)
        if self.edge not in box:
            raise TransferMissing(f"nothing was sent over edge {self.edge} ({self.label}) before this recv",
                                  op=self.name)
        return [box.pop(self.edge)]
