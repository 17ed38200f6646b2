"""Memory planning: where each top-level value of a fused function lives.

Runs after fusion, on a function whose top level holds only constants, view
ops (reshape, expand_dims, squeeze), fusion kernels and the return. Each
value gets a storage:
  arg i      a buffer the caller passes in (a feed or a variable's value)
  result j   a buffer the caller passes for result j (from its caching allocator)
  temp t     a slice of one scratch arena, reused once the value is dead
  const      global data in the compiled code
  view v     the same bytes as value v (views of contiguous buffers are free)

Lifetimes are in steps of the top-level op order. Temps' offsets depend on
their sizes, which may depend on fed sizes, so `layout` runs per set of
shapes (cached by the caller); everything else is decided here, once.

Note [donated arguments]: the caller may offer an argument's buffer for a
result (a variable's old value for its new one, as XLA's donation does). The
plan accepts the offer only if the argument is dead after the kernel that
produces the result, and that kernel either does not read the argument or
reads it only at the same index it writes, after which it never reads that
index again: a loop kernel reading it at the result's shape; a matmul
kernel's epilogue (bias, optimizer update), if the matrix product neither
reads it nor is written into its buffer; a reduction kernel reading it once
per output element, at the output's shape (the update of a bias from its
summed gradient). The new value is then written into the variable's own
buffer: no copy of a parameter per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from flowc.ir import Function, Module, Operation, Value
from flowc.ir.printer import value_names

from .manager import Pass


@dataclass(frozen=True)
class Storage:
    kind: str  # "arg" | "result" | "temp" | "const" | "view"
    index: int = -1
    of: Value | None = None  # for a view: the value whose bytes it shares


@dataclass
class MemoryPlan:
    storage: dict[Value, Storage] = field(default_factory=dict)
    temps: list[Value] = field(default_factory=list)
    lifetimes: list[tuple[int, int]] = field(default_factory=list)  # per temp: (defined at step, last used at step)
    donated: dict[int, int] = field(default_factory=dict)  # result index -> argument index written in place

    def describe(self, function: Function) -> str:
        """The plan as text (FLOWC_DUMP_IR writes it beside the fused IR): each value's storage, and
        the temps' lifetimes in steps of the top-level op order."""
        names = value_names(function)
        lines = []
        for value, storage in self.storage.items():
            where = f"{storage.kind} {storage.index}" if storage.index >= 0 else storage.kind
            if storage.kind == "view":
                where = f"view of {names.get(storage.of, '?')}"
            if storage.kind == "result" and storage.index in self.donated:
                where += f", written in place of arg {self.donated[storage.index]}"
            if storage.kind == "temp":
                start, end = self.lifetimes[storage.index]
                where += f", live in steps {start}..{end}"
            lines.append(f"{names.get(value, '?')}: {value.type} in {where}")
        return "\n".join(lines) + "\n"

    def buffer_of(self, value: Value) -> tuple[str, int | Value]:
        """Which buffer a value's bytes are in: views resolved, a donated result as its argument, a
        const as itself. Two values of one kernel are in the same bytes only if these are equal:
        temps alive at the same step never share arena bytes (layout)."""
        storage = self.storage[value]
        while storage.kind == "view":
            storage = self.storage[storage.of]
        if storage.kind == "result" and storage.index in self.donated:
            return "arg", self.donated[storage.index]
        return (storage.kind, value) if storage.kind == "const" else (storage.kind, storage.index)

    def layout(self, nbytes: Sequence[int], alignment: int = 64) -> tuple[list[int], int]:
        """Arena offsets of the temps given their sizes, and the arena's peak size.

        Greedy, largest first: each temp takes the lowest offset that no temp
        alive at the same time overlaps (the usual offset assignment of TFLite's
        and XLA's heap simulators).
        """
        order = sorted(range(len(nbytes)), key=lambda t: -nbytes[t])
        sizes = [_round_up(max(nbytes[t], 1), alignment) for t in order]
        place = _place_by_arrays if len(order) > ARRAYS_FROM else _place_by_loops
        offsets = [0] * len(nbytes)
        for t, offset in zip(order, place(self.lifetimes, order, sizes)):
            offsets[t] = offset
        peak = max((offsets[t] + size for t, size in zip(order, sizes)), default=0)
        return offsets, peak


# Each placement looks at every temp placed before it: from this many temps on (a long chain cut into
# kernels has thousands) as arrays; below, plain loops cost less than numpy's calls.
ARRAYS_FROM = 200


def _place_by_loops(lifetimes: list[tuple[int, int]], order: list[int], sizes: list[int]) -> list[int]:
    """The offset of each temp of `order`, of its size, at the lowest place no earlier one alive
    at the same time overlaps."""
    placed: list[tuple[int, int, int]] = []  # (offset, end, temp)
    for t, size in zip(order, sizes):
        start, end = lifetimes[t]
        busy = sorted((o, e) for o, e, u in placed if lifetimes[u][0] <= end and start <= lifetimes[u][1])
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, e)
        placed.append((offset, offset + size, t))
    return [offset for offset, _, _ in placed]


def _place_by_arrays(lifetimes: list[tuple[int, int]], order: list[int], sizes: list[int]) -> list[int]:
    """_place_by_loops, comparing with the placed temps as arrays."""
    spans = np.array(lifetimes, dtype=np.int64).reshape(-1, 2)
    begins, ends, placed = (np.empty(len(order), np.int64) for _ in range(3))  # in placing order
    for count, (t, size) in enumerate(zip(order, sizes)):
        start, end = lifetimes[t]
        earlier = placed[:count]
        alive = (spans[earlier, 0] <= end) & (start <= spans[earlier, 1])
        begins[count] = _first_fit(begins[:count][alive], ends[:count][alive], size)
        ends[count], placed[count] = begins[count] + size, t
    return [int(offset) for offset in begins]


def plan_memory(function: Function, donations: dict[int, int] | None = None) -> MemoryPlan:
    """The storage of every top-level value; `donations` maps result index -> argument index offered."""
    plan = MemoryPlan()
    ops = function.entry.ops
    steps = {op: step for step, op in enumerate(ops)}
    for i, arg in enumerate(function.args):
        plan.storage[arg] = Storage("arg", i)
    returned = ops[-1].operands
    for j, value in enumerate(returned):
        plan.storage.setdefault(value, Storage("result", j))
    for op in ops[:-1]:
        for result in op.results:
            if result in plan.storage:
                continue
            if op.name == "constant":
                plan.storage[result] = Storage("const")
            elif op.is_view:
                plan.storage[result] = Storage("view", of=op.operands[0])
            else:
                plan.storage[result] = Storage("temp", len(plan.temps))
                plan.temps.append(result)
    last_use = _last_uses(function, steps)
    plan.lifetimes = [(steps[v.op], last_use.get(v, steps[v.op])) for v in plan.temps]
    for j, i in (donations or {}).items():
        if _can_donate(function, plan, last_use, steps, returned[j], function.args[i]):
            plan.donated[j] = i
    return plan


def _last_uses(function: Function, steps: dict[Operation, int]) -> dict[Value, int]:
    """The last step using each value; a view's uses count as uses of what it views."""
    last: dict[Value, int] = {}
    for op in function.entry.ops:
        for value in op.operands:
            root = _root(value)
            last[root] = max(last.get(root, -1), steps[op])
            last[value] = max(last.get(value, -1), steps[op])
    return last


def _root(value: Value) -> Value:
    while hasattr(value, "op") and value.op.is_view:
        value = value.op.operands[0]
    return value


def _can_donate(function: Function, plan: MemoryPlan, last_use: dict[Value, int], steps: dict[Operation, int],
                result: Value, arg: Value) -> bool:
    """Note [donated arguments]."""
    storage = plan.storage[result]
    if storage.kind != "result" or not hasattr(result, "op") or result.op.name != "fusion":
        return False
    if result.type != arg.type or sum(1 for v in function.entry.ops[-1].operands if v is result) != 1:
        return False
    if any(r is not result and plan.storage.get(r) == storage for r in plan.storage):
        return False
    producer = result.op
    if last_use.get(arg, -1) < steps[producer]:
        return True  # the argument is dead before the kernel starts
    if last_use.get(arg, -1) > steps[producer]:
        return False
    reads = [i for i, v in enumerate(producer.operands) if _root(v) is arg]
    if not all(producer.operands[i] is arg and arg.type.shape == result.type.shape for i in reads):
        return False
    block = producer.regions[0].entry
    if producer.kind == "loop":
        return True
    if producer.kind == "matmul":
        product = next(op for op in block.ops if op.name == "matmul")
        inside = {block.args[i] for i in reads}
        # The product must have a buffer of its own (a backend may write it whole before the epilogue
        # reads it back, as the CPU's BLAS path does): a kernel that does not yield it is not donated to.
        yields = block.terminator.operands
        return not inside & set(product.operands) and product.result in yields and \
            yields[producer.results.index(result)] is not product.result
    if producer.kind == "reduction":  # per output element: read at the kept (outer) level, then written
        full = next(op for op in block.ops if op.is_reduction).operands[0].type.shape
        # Every user outer too: an outer-shaped operand broadcast into a full-level op would be read
        # at other output elements' indices during the walk (x[3,3] + b[3], summed over axis 1).
        users = [user for i in reads for user, _ in block.args[i].uses]
        return result.type.shape != full and all(
            u.is_terminator or (not u.is_reduction and u.results[0].type.shape != full) for u in users)
    return False


def _first_fit(begins: np.ndarray, ends: np.ndarray, size: int) -> int:
    """The lowest offset at which `size` bytes overlap none of the busy ranges [begins, ends): the
    ranges in order of (begin, end), the offset moving past each that it would overlap, as a loop
    would; here the offset before range i is the furthest end of those before it."""
    if not len(begins):
        return 0
    order = np.lexsort((ends, begins))
    begins, ends = begins[order], ends[order]
    before = np.maximum.accumulate(np.concatenate(([0], ends[:-1])))
    fits = before + size <= begins
    return int(before[fits.argmax()]) if fits.any() else max(0, int(ends.max()))


def _round_up(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def materialize_results(function: Function) -> bool:
    """Give every returned value a kernel of its own that writes it.

    The caller allocates each result's buffer, so a result must be computed
    by a kernel, once: an argument, a constant, a view or a value returned
    twice is copied by an identity loop kernel (cheap: fetching a variable or
    a feed back).
    """
    from flowc.ir import Block, Builder, Region

    terminator = function.entry.ops[-1]
    seen: set[Value] = set()
    changed = False
    for index, value in enumerate(list(terminator.operands)):
        owner = getattr(value, "op", None)
        if owner is not None and owner.name == "fusion" and value not in seen:
            seen.add(value)
            continue
        block = Block([value.type], ["x"])
        Builder.at_end(block).create("yield", [Builder.at_end(block).identity(block.args[0])])
        b = Builder.before(terminator)
        copy = b.create("fusion", [value], {"kind": "loop"}, regions=[Region([block])],
                        result_names=[value.name]).result
        terminator.set_operand(index, copy)
        seen.add(copy)
        changed = True
    return changed


class MaterializeResults(Pass):
    """materialize_results on every function."""

    name = "materialize-results"

    def run(self, module: Module) -> bool:
        return any([materialize_results(function) for function in module])


# Note [the memory plan of a function]: a MemoryPlan is not IR (it names values and arena slots),
# so PlanMemory keeps it in the function's `analyses`, for the backend to read with `memory_plan`,
# and FLOWC_DUMP_IR writes it as text next to the IR. Which arguments a result may be written into
# is the caller's offer, recorded on the function as its `donate` attribute: [[result, argument], ...]
# (as JAX records donated buffers on the function it lowers).


class PlanMemory(Pass):
    """plan_memory on every function, accepting the donations its `donate` attribute offers.

    Last of a target's passes: it needs the final op order and the fused kernels.
    """

    name = "plan-memory"

    def run(self, module: Module) -> bool:
        for function in module:
            function.analyses[PlanMemory.name] = plan_memory(function, dict(function.attributes.get("donate", ())))
        return False

    def describe(self, module: Module) -> str:
        return "".join(memory_plan(function).describe(function) for function in module)


def memory_plan(function: Function) -> MemoryPlan:
    """The plan PlanMemory made for `function` (Note [the memory plan of a function])."""
    plan = function.analyses.get(PlanMemory.name)
    if plan is None:
        raise KeyError(f"no memory plan for @{function.name}: the plan-memory pass has not run on it")
    return plan
