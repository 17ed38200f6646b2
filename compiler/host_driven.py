"""A CPU program cut at its loops whose values change shape, run piece by piece from Python.

Note [loops driven from the host]
The CPU entry point sizes every buffer before it runs: from the fed shapes it
works out each value's shape once (ir/shapes.py), lays out the arena and
allocates the results, then makes one native call (compiler/native.py). A loop
value that grows or shrinks from turn to turn (concat(acc, x) per turn, a
beam's sequences one token longer per step) has no one size to lay out, so
such a loop cannot live in that call. Rather than refuse it, the CPU target
runs it the way the gpu target runs every loop (runtime/gpu.py's `_while`):
from the host. The pass mark-host-driven (passes/host_driven.py) sets
`driven = "host"` on each loop whose values may change shape, and only on
those; a program without one is one native call, as before.

A program with one is cut into pieces, in order (as partitioned_run.py cuts a
partition at its recvs): runs of ops that hold no such loop become one native
function each, compiled through the target's whole pipeline (fusion, memory
plan, one entry point); a marked loop becomes two native functions, its
condition and its body, each of the loop values' types, whose changing dims
are unknown dims (None), which the CPU target runs at any fed size; Python
calls the condition, then the body, turn by turn, each turn's values fed to
the next. A cond or an outer loop that holds a marked loop is cut the same way:
the cond's predicate chooses which branch function Python calls, the outer
loop's body is itself a program of pieces. Nothing else changes: a loop of
fixed shapes inside a piece stays native code.

What it costs: two native calls a turn, the condition's and the body's, each
with its Python around it; and since the body meets new argument shapes every
turn, each turn also lays the body out anew (the IR's type rules on the new
shapes, the arena: compiler/native.py's _layout). The condition takes only the
loop values it reads, so it is laid out once. A loop that appends one float a
turn costs hundreds of times what the same work at one shape compiled does
(bench/bench_host_driven_loop.py; figures in bench/RESULTS.md). A loop that can
keep one shape (padded to its largest size, with a count beside it) stays
compiled and is that much faster.

Gradients: the rule of such a loop keeps each turn's values in a stack of
entries of any shape (Note [while gradients of loops whose values change
shape] in passes/autodiff/rules_while.py). Its ops are pieces of their own
here, run in Python on a list of the entries' arrays (compiler/host_stacks.py);
the loops that push and read them are marked, so run from the host, whatever
their shapes. fc.export has no host to drive a loop from: it refuses
such a loop when it sizes the program (ExportShapeError), and the gradient
of one at its first stack op (UnsupportedOpError, codegen/llvm/support.py).

Note [conds driven from the host]
A cond's result takes one size in the entry point whichever branch runs, and
both branches are sized before the predicate is known (Note [fixed shapes in
control flow] in ir/shapes.py), so fc.cond(p, lambda: x * 2, lambda:
concat([x, x])) has no one size for its result. mark-host-driven gives such a
cond `driven = "host"` too, and it is cut like a cond that holds a marked
loop: Python reads the predicate and calls the chosen branch, a native
function of the cond's operands whose result dims are unknown dims; the other
branch is never sized. A cond is marked when
  - a probe of both branches on the cond's operands gives a result two
    shapes: the loops' probe (one size for every unknown dim), or, for a cond
    at the function's top level, one that gives each unknown dim its own size
    unless the ops of the block tie it to another (passes/fusion.py's
    DimTies), so that cond(p, x + 1, z * 2) of two placeholders differs while
    a cond on x and exp(x) does not. In a loop body only the first: marked,
    a cond there makes every turn pieces, and two loop values the body does
    not tie are mostly one size all the same (a state and its copy);
  - it reads a value whose shape follows such a cond's result (its gradient's
    cond reads the cotangent of that result): sized on both branches in native
    code, its branch not taken might not size at all (x + y where y is twice
    x's size), though it never runs;
  - a branch holds a data_dim (Note [data-dependent sizes] in
    data_sized_run.py): the host reads the count between two native calls of
    the branch, which is compiled cut there; a while whose body or condition
    holds one is marked for the same reason.
A cond at the function's top level that no probe sizes (a branch multiplies
concat(x, x) by a w fed twice x's size) is marked too: there it costs a few
native calls a run. In a loop body such a cond stays native, as a loop the
probe cannot size does, and the run-time check refuses a run whose branches
disagree.

A dynamic fc.TensorArray written at an index past its size grows under a cond
whose then branch concatenates rows counted by a data_dim
(compiler/tensor_array.py): the cond is marked, and a loop that writes the
array is cut around it, its other ops native pieces. Each write is then a few
native calls and, as the buffer grows, new layouts
(bench/bench_host_driven_cond.py): a size given up front keeps the loop one
native call.

What it costs: the program around the cond becomes pieces, two or three
native calls instead of one, and a branch meets new argument shapes as the
data changes (a layout each, LAYOUTS_KEPT kept). A cond of equal shapes stays
native. fc.export refuses such a cond when it sizes the program, as it does a
marked loop: a C caller has no host to choose the branch.

The gpu target cuts its programs the same way (its driven_from_host): its
executable also sizes every value from the argument shapes before it runs
(runtime/gpu.py), so a marked loop or cond is pieces there too, each piece a
gpu executable; the pieces hand each other host arrays (a copy to and from
the device per piece), and the Session keeps such a program's variables on
the host.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from flowc.ir import Block, Function, Module, Operation, Value
from flowc.passes.autodiff.clone import outline
from flowc.passes.host_driven import STACK_OPS, contains_host_driven

from .driver import compile_lowered, compile_optimized, has_cuts
from .host_stacks import StackOp
from .lowering import Lowered, Signature
from .options import CompileOptions

_NO_SIGNATURE = Signature((), (), False, (), ())  # a piece's arguments are not feeds or variables
# A body whose values change shape meets new argument shapes every turn: its native function keeps this many
# shape layouts (each with its arena) and starts over after, rather than one per turn for the whole run.
LAYOUTS_KEPT = 8

Env = dict[Value, np.ndarray]


class HostDrivenExecutable:
    """A function run as pieces (Note [loops driven from the host]): called as the Session calls any
    executable, on the function's arguments, giving its results."""

    fresh_outputs = False  # a result may be an argument passed through: the Session copies what aliases

    def __init__(self, function: Function, target: Any, options: CompileOptions):
        self.function = function
        self.pieces = _pieces(function.entry, target, options)

    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        return run_block(self.function.entry, self.pieces, list(args))

    def close(self) -> None:
        for piece in self.pieces:
            piece.close()


def run_block(block: Block, pieces: list[Any], args: list[np.ndarray]) -> list[np.ndarray]:
    env: Env = dict(zip(block.args, args))
    for piece in pieces:
        piece.run(env)
    return [env[v] for v in block.terminator.operands]


@dataclass
class _Native:
    """Ops that hold no host-driven loop: one native function of what they read, giving what others read."""

    inputs: list[Value]
    outputs: list[Value]
    executable: Any

    def run(self, env: Env) -> None:
        env.update(zip(self.outputs, self.executable([env[v] for v in self.inputs])))

    def close(self) -> None:
        _close(self.executable)


@dataclass
class _Loop:
    """A while loop driven from the host: its condition and body, each a native function (or pieces)."""

    op: Operation
    condition: Any
    body: Any
    read: list[int]  # the loop values the condition reads: a value it ignores may change shape freely

    def run(self, env: Env) -> None:
        state = [env[v] for v in self.op.operands]
        read = self.read
        while bool(self.condition([state[i] for i in read])[0]):
            state = self.body(state)
        env.update(zip(self.op.results, state))

    def close(self) -> None:
        _close(self.condition)
        _close(self.body)


@dataclass
class _Branches:
    """A cond driven from the host, or holding a host-driven op: the predicate, read on the host, chooses the
    branch to call (Note [conds driven from the host])."""

    op: Operation
    then: Any
    other: Any

    def run(self, env: Env) -> None:
        predicate, *args = [env[v] for v in self.op.operands]
        env.update(zip(self.op.results, (self.then if bool(predicate) else self.other)(args)))

    def close(self) -> None:
        _close(self.then)
        _close(self.other)


def _pieces(block: Block, target: Any, options: CompileOptions) -> list[Any]:
    pieces: list[Any] = []
    run: list[Operation] = []
    for op in block.ops:
        if op.is_terminator:
            break
        if not contains_host_driven(op):
            run.append(op)
            continue
        if run:
            pieces.append(_native(run, target, options))
            run = []
        pieces.append(_host_op(op, target, options))
    if run:
        pieces.append(_native(run, target, options))
    return [piece for piece in pieces if piece is not None]


def _host_op(op: Operation, target: Any, options: CompileOptions) -> Any:
    if op.name in STACK_OPS:  # the host keeps the stack (compiler/host_stacks.py)
        return StackOp(op)
    if op.name == "while":
        condition, body = (region.entry for region in op.regions)
        # The condition takes only what it reads: a growing value it ignores then costs it no new layout a turn.
        read = [index for index, arg in enumerate(condition.args) if arg.uses]
        return _Loop(op, _compiled(_region_function(condition, read), target, options),
                     _compiled(_region_function(body), target, options), read)
    assert op.name == "cond", op.name  # the only other op with regions left before fusion
    return _Branches(op, *(_compiled(_region_function(region.entry), target, options) for region in op.regions))


def _native(ops: list[Operation], target: Any, options: CompileOptions) -> _Native | None:
    inside = set(ops)
    defined = {r for op in ops for r in op.results}
    inputs = list(dict.fromkeys(v for op in ops for v in op.operands if v not in defined))
    outputs = [r for op in ops for r in op.results if any(user not in inside for user, _ in r.uses)]
    if not outputs and all(op.pure for op in ops):
        return None
    return _Native(inputs, outputs, _compiled(outline(ops, inputs, outputs), target, options))


def _region_function(block: Block, taken: list[int] | None = None) -> Function:
    """A region's block as a function of its arguments (those at `taken`, or all), returning what it yields."""
    yielded = block.terminator.operands
    args = [block.args[i] for i in taken] if taken is not None else list(block.args)
    return outline(block.ops[:-1], args, yielded)


def _compiled(function: Function, target: Any, options: CompileOptions) -> Any:
    lowered = Lowered(Module([function]), _NO_SIGNATURE)
    if target.cuts_at_data_dims and has_cuts(lowered.module):  # a boolean_mask in a loop body, cut at its count
        return compile_lowered(lowered, target, options)
    executable = compile_optimized(lowered, target, options)
    if hasattr(executable, "max_layouts"):  # a NativeExecutable, or the gpu target's executable
        executable.max_layouts = LAYOUTS_KEPT
    return executable


def _close(executable: Any) -> None:
    close = getattr(executable, "close", None)
    if close is not None:
        close()
