"""Running a function some of whose sizes are data, on a target that sizes every buffer from the fed shapes.

Note [data-dependent sizes]
fc.where(cond) with one argument, and fc.boolean_mask built on it, have as many rows as cond has
true elements: a size that only the data says. Compiled code sizes every buffer, and plans its
arena, from the fed shapes before any kernel runs (ir/shapes.py, compiler/native.py). So the IR says
where such a size becomes known, and the front end writes (compiler/index_ops.py)

    %Where_count = reduce_sum %flags : i64[]            the count: a reduction, native code
    %Where_rows = data_dim %Where_count : i64[?,0]      no elements; its dim 0 is the count
    %Where = where_indices %cond, %Where_rows : i64[?,1]  sized by that dim, as iota is by its operand's

fc.range and fc.linspace of bounds or a count computed at run time, and fc.nn.top_k of a run-time k, are
the same shape: the count (ceil((limit - start) / delta), num, k), a data_dim of it, and an iota (or
top_k's second operand) sized by that dim (compiler/index_ops.py, reduction_ops.py). Where a count has
a bound TF1 enforces (delta != 0, num > 0, 0 <= k <= n) a `check` before the data_dim stops the run.

A target with `cuts_at_data_dims` (cpu and gpu) runs such a function cut at each top-level
data_dim (`split`): segment 0 holds every op that needs no data_dim's value and returns, among its
results, the counts; the host reads each count and makes its data_dim's value, an empty array of
shape [count, 0]; segment 1 takes that as an argument, so its dim is a fed dim like any other:
propagate_shapes sizes everything after it from there (the coordinates, the gather of boolean_mask,
reductions of it, its gradient), the dims table gets it and the arena is planned for it. A data_dim
whose count itself needs a data_dim (the mask of a masked tensor) starts a later segment. Each
segment is a function compiled through the whole pipeline (driver.compile_lowered), as a
partitioned run's are (Note [partitioned runs] in partitioned_run.py); a value that crosses a cut
is a result of its segment and an argument of the later ones that read it; constants are copied
into each segment that reads them, so they stay constants there.

Why cut rather than let a kernel write the count into the dims vector and size what follows in
native code: the outputs, the arena and every later kernel's loop bounds come from one plan made
in Python per set of argument shapes; a count known only inside the native call would need a
second allocator and planner in native code. Cut, the count is one more argument shape, and all
of that is reused. The price: a run whose count the segment after the cut has not seen lays out
its arena again (propagate_shapes, in Python: bench/bench_boolean_mask.py's "a new count each run"
row); a segment keeps the layouts of its latest LAYOUTS_KEPT argument
shapes (`max_layouts` of NativeExecutable and GpuExecutable), so a training loop whose count
changes every step does not collect them without end.

On the gpu target the segments take and give device tensors (`run_on_device`): only the counts come
back to the host, as a cond's predicate does (runtime/gpu.py); where_indices is one Triton program
walking cond block by block (codegen/triton/kernels/gathers.py).

An fc.function's calls are inlined first (after the gradients are expanded: a call may carry a
custom gradient), so a data_dim in a called function is cut like one of main's. Inside a while_loop
body or a cond branch, one native call runs the whole loop or cond, so the host cannot stop there
to read a count. The cpu and gpu targets drive such a loop or cond from the host instead (Note [conds
driven from the host] in host_driven.py): the mark-host-driven pass marks a while or cond whose
regions hold a data_dim, each region becomes a function of its own, and that function is cut at its
data_dims here, as main is; an outer loop holding it is cut around it. So a dynamic TensorArray,
whose growth by a count of rows known only at run time is a data_dim under a cond
(compiler/tensor_array.py), grows in a loop body: per write, the host reads the predicate, the count
and the body's pieces' results. A program that skipped that pass meets codegen/llvm/support.py's
refusal of a data_dim in a region, naming the op; fc.export refuses one anywhere (its C caller
allocates every output before the call: compiler/aot/build.py). The reference target evaluates
data_dim as any op: an empty [count, 0].
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from flowc.codegen.llvm.support import check_no_recursion
from flowc.ir import Function, Module, Operation, Value, print_function
from flowc.ir.errors import RuntimeShapeError
from flowc.ir.printer import value_names
from flowc.passes import PassManager, default_pipeline, expand_gradients
from flowc.passes.inline import Inline
from flowc.passes.autodiff.clone import outline

from .driver import CUT, compile_lowered
from .lowering import Lowered, Signature
from .options import CompileOptions

LAYOUTS_KEPT = 16  # argument shapes whose layouts a segment after a cut keeps (Note [data-dependent sizes])
_dumps = itertools.count()
_SEGMENT = Signature((), (), False, (), ())  # a segment's arguments and results are main's values, not feeds


@dataclass
class Segment:
    """The ops of `main` between two cuts, compiled as one function named `main`."""

    cuts: list[Operation]  # the data_dims whose values the host makes before this segment runs
    inputs: list[Value]  # main's values it reads: arguments, earlier segments' results, data_dims
    outputs: list[Value]  # its values that later segments, cuts or main's return read
    function: Function | None = None  # None: nothing to compute
    executable: Any = None


def split(function: Function) -> list[Segment]:
    """`function` cut at each top-level data_dim: segment k holds the ops that need the values of k data_dims
    one after another (the count of each is computed the segment before it)."""
    level: dict[Value, int] = dict.fromkeys(function.args, 0)
    groups: list[list[Operation]] = [[]]
    cuts: list[list[Operation]] = [[]]
    constants = {}
    ops = [op for op in function.entry.ops if not op.is_terminator]
    for op in ops:
        if op.name == "constant":
            constants[op.result] = op  # copied into each segment that reads it
            continue
        here = max((level[v] for v in op.operands if v not in constants), default=0)
        if op.name == CUT:
            here += 1
        while len(groups) <= here:
            groups.append([])
            cuts.append([])
        (cuts if op.name == CUT else groups)[here].append(op)
        for result in op.results:
            level[result] = here
    returned = function.entry.ops[-1].operands
    needed_later = [set() for _ in groups]
    for index in range(len(groups)):
        later = [*(op for group in groups[index + 1:] for op in group), *(op for c in cuts[index + 1:] for op in c)]
        needed_later[index] = {v for op in later for v in op.operands} | set(returned)
    return [_segment(group, cuts[index], needed_later[index], constants) for index, group in enumerate(groups)]


def _segment(group: list[Operation], cuts: list[Operation], needed: set[Value],
             constants: dict[Value, Operation]) -> Segment:
    defined = {r for op in group for r in op.results}
    used = [v for op in group for v in op.operands if v not in defined]
    copied = [constants[v] for v in dict.fromkeys(used) if v in constants]
    inputs = list(dict.fromkeys(v for v in used if v not in constants))
    outputs = [r for op in group for r in op.results if r in needed]
    segment = Segment(cuts, inputs, outputs)
    if outputs or any(not op.pure for op in group):
        segment.function = outline([*copied, *group], inputs, outputs)
    return segment


@dataclass
class DataSizedExecutable:
    """A function run as its segments (Note [data-dependent sizes]): called as any executable, on main's
    arguments, giving main's results; on the gpu target's device tensors too (`run_on_device`)."""

    function: Function
    segments: list[Segment]
    returned: list[Value] = field(default_factory=list)
    constants: dict[Value, np.ndarray] = field(default_factory=dict)  # main's, for a count that is one

    fresh_outputs = True  # each result a segment's own (`_fresh` copies an argument passed through, a repeat)

    @property
    def state_on_device(self) -> bool:
        """Whether its segments take and give device tensors (Note [state on the device] in runtime/gpu.py)."""
        return any(getattr(segment.executable, "state_on_device", False) for segment in self.segments)

    def __call__(self, args: Sequence[Any]) -> list[Any]:
        return self._run(args, lambda executable, values: executable(values))

    def run_on_device(self, args: Sequence[Any]) -> list[Any]:
        return self._run(args, lambda executable, values: executable.run_on_device(values))

    def _run(self, args: Sequence[Any], call: Callable[[Any, list[Any]], list[Any]]) -> list[Any]:
        env: dict[Value, Any] = {**self.constants, **dict(zip(self.function.args, args))}
        for segment in self.segments:
            for cut in segment.cuts:
                env[cut.result] = _rows(cut, env[cut.operands[0]])
            if segment.executable is not None:
                env.update(zip(segment.outputs, call(segment.executable, [env[v] for v in segment.inputs])))
        given = {id(value) for value in (*args, *self.constants.values())}
        return _fresh([env[v] for v in self.returned], given)

    def close(self) -> None:
        for segment in self.segments:
            close = getattr(segment.executable, "close", None)
            if close is not None:
                close()


def _fresh(values: list[Any], arguments: set[int]) -> list[Any]:
    """`values`, a copy where one is an argument or constant passed through or a value already given (as the
    materialized results of one compiled function are: passes/memory.py)."""
    seen = set(arguments)
    results = []
    for value in values:
        if id(value) in seen:
            value = value.copy() if isinstance(value, np.ndarray) else value.clone()
        seen.add(id(value))
        results.append(value)
    return results


def _rows(cut: Operation, count: Any) -> np.ndarray:
    """A data_dim's value: no elements, dim 0 the count."""
    rows = int(count)  # a 0-d numpy array, or a device tensor read back
    if rows < 0:
        raise RuntimeShapeError(f"a dim of {rows} elements: the count must be >= 0", op=cut.display_name,
                                where=cut.loc)
    return np.empty((rows, 0), np.int64)


def data_sized_executable(lowered: Lowered, target: Any, options: CompileOptions) -> DataSizedExecutable | None:
    """`lowered` compiled for `target` as segments cut at its data_dims (Note [data-dependent sizes]); None
    where no data_dim is at main's top level once calls are inlined (one inside a loop or a branch:
    the target's own pipeline refuses it, naming the op)."""
    module = lowered.module
    expand_gradients(module, sized_by_data=target.sized_by_data)  # first: a call may carry a custom gradient
    if len(module.functions) > 1:  # a data_dim of an fc.function: at main's top level once inlined
        check_no_recursion(module, target.name)
        Inline().run(module)
    if not any(op.name == CUT for op in module["main"].entry.ops):
        return None
    if options.optimize:  # once over the whole: one count for a mask that two ops read, dead code gone
        PassManager(default_pipeline(options.fast_math), verify_each=options.verify, record=False).run(module)
    function = module["main"]
    constants = {op.result: op.value for op in function.entry.ops if op.name == "constant"}
    executable = DataSizedExecutable(function, split(function), list(function.entry.ops[-1].operands), constants)
    if options.dump_dir:
        dump_segments(function, executable.segments, options.dump_dir)
    for segment in executable.segments:
        if segment.function is None:
            continue
        part = Module([segment.function])  # calls were inlined
        segment.executable = compile_lowered(Lowered(part, _SEGMENT), target, options)
        if hasattr(segment.executable, "max_layouts") and segment.cuts:
            segment.executable.max_layouts = LAYOUTS_KEPT
    return executable


def describe(function: Function, segments: Sequence[Segment]) -> str:
    """`function`'s segments as text: before each, the data_dims whose counts the host reads; then its function."""
    names = value_names(function)
    parts = []
    for index, segment in enumerate(segments):
        cuts = ", ".join(f"{names[cut.result]} = data_dim {names[cut.operands[0]]}" for cut in segment.cuts)
        head = f"// segment {index}" + (f", after the host makes {cuts}" if cuts else "")
        parts.append(f"{head}\n{print_function(segment.function) if segment.function else '// (nothing to compute)'}")
    return "\n".join(parts)


def dump_segments(function: Function, segments: Sequence[Segment], dump_dir: str) -> None:
    """FLOWC_DUMP_IR=DIR: the segments of a run cut at its data_dims, as DIR/data-sized-NNN.ir (each segment's
    own passes are dumped as any compile's)."""
    os.makedirs(dump_dir, exist_ok=True)
    with open(os.path.join(dump_dir, f"data-sized-{next(_dumps):03d}.ir"), "w") as f:
        f.write(describe(function, segments))
