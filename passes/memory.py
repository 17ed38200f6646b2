"""Memory planning: where each top-level value of a fused function lives.

Runs after fusion, on a function whose top level holds only constants, view
ops (reshape, expand_dims, squeeze), fusion kernels and the return. Each
value gets a storage:
  arg i      a buffer the caller passes in (a feed or a variable's value)
  result j   a buffer the caller passes for result j (from its caching allocator)
  temp t     a slice of one scratch arena, reused once the value is dead
  const      global data in the compiled code
  view v     the same bytes as value v (views of contiguous buffers are free)

  local l    a small buffer of the entry point's own frame (see Note [control flow storage])

Lifetimes are in steps of the op order (Note [control flow storage] for the
steps inside regions). Temps' offsets depend on their sizes, which may depend
on fed sizes, so `layout` runs per set of shapes (cached by the caller);
everything else is decided here, once.

Note [control flow storage]
The top-level block may hold `cond` and `while` ops, whose regions hold
constants, views, kernels, nested region ops and a yield, like the function.
Steps number every op of every such block in execution order: a region op
takes a step when it starts, then its regions' ops in turn, then a step when
it ends; its operands are used at its end, so whatever a loop or a branch
reads stays alive (never reused) until the whole op is done. Then:
  - a cond's region arguments are views of its operands; a while's, of its
    results, which are the loop state: written with the initial values when
    the loop starts, so they live from its start step to their last use; a
    state the body yields unchanged and reads a row at a time (a sequence)
    is a view of its initial value instead (no copy);
  - a cond's result lives from its start too, and a branch's yielded value
    that a kernel of the branch computes is that result (the kernel writes it
    in place); other yielded values are copied into it at the yield;
  - a body's yielded value that a kernel of the body computes is written into
    the state in place when no op of the body at or after that kernel reads
    the old state (a read of the state by a later kernel would see the new
    value), but for the kernel itself when it is a loop kernel reading the
    state at the index it writes (i + 1, acc + x); else it is copied into the
    state at the yield. MaterializeResults
    first makes each yielded value the body's own kernel result (or the state
    itself, unchanged), so a copy never reads a state buffer that another copy
    at the same yield writes (a swap of two state values).
Temps of a loop body live within one turn: numbered within the body, their
lifetimes overlap as they do on each turn, and the state, live through the
whole loop, never shares their bytes. In a loop whose gang's members own rows
(`threads = "rows"`, Note [a gang that owns rows] in ir/ops/gang_rows.py) they
live through the whole loop: one member may be a turn ahead of another, and
bytes reused within a turn would then hold two values at once. A value
defined in a cond or while (or the state itself) of a static shape of at
most LOCAL_BYTES is `local`: a stack
slot of the entry point, which LLVM keeps in registers across the turns of a
loop (a scalar counter), where arena bytes at an offset read from memory
would be loaded and stored on each turn.

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

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from flowc.ir import Block, Function, Module, Operation, Value
from flowc.ir.ops.kernel_space import PRODUCTS, row_read
from flowc.ir.printer import value_names

from .manager import Pass


LOCAL_BYTES = 256  # Note [control flow storage]: at most this many bytes of a loop or branch: a stack slot
CONTROL_OPS = ("cond", "while")


@dataclass(frozen=True)
class Storage:
    kind: str  # "arg" | "result" | "temp" | "local" | "const" | "view"
    index: int = -1
    of: Value | None = None  # for a view: the value whose bytes it shares


@dataclass
class MemoryPlan:
    storage: dict[Value, Storage] = field(default_factory=dict)
    temps: list[Value] = field(default_factory=list)
    lifetimes: list[tuple[int, int]] = field(default_factory=list)  # per temp: (defined at step, last used at step)
    donated: dict[int, int] = field(default_factory=dict)  # result index -> argument index written in place
    locals: list[Value] = field(default_factory=list)  # local l: a stack slot of the value's (static) size

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
        if storage.kind == "const":
            return storage.kind, self.root(value)
        return storage.kind, storage.index

    def root(self, value: Value) -> Value:
        """The value whose storage a view (a region argument, a value written in place) shares."""
        storage = self.storage[value]
        while storage.kind == "view":
            value = storage.of  # type: ignore[assignment]
            storage = self.storage[value]
        return value

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
    """The storage of every value outside kernels; `donations` maps result index -> argument index offered."""
    plan = MemoryPlan()
    ops = function.entry.ops
    spans = _number_steps(function.entry, {}, [0])
    steps = {op: start for op, (start, _) in spans.items()}
    for i, arg in enumerate(function.args):
        plan.storage[arg] = Storage("arg", i)
    returned = ops[-1].operands
    for j, value in enumerate(returned):
        plan.storage.setdefault(value, Storage("result", j))
    _place_block(function.entry, plan, in_control=False)
    last_use = _last_uses(function.entry, plan, spans, {})
    for value in plan.temps:  # the state and results of region ops: at least while the op runs
        if value.op.name in CONTROL_OPS:
            last_use[value] = max(last_use.get(value, -1), spans[value.op][1])
    plan.lifetimes = [(steps[v.op], last_use.get(v, steps[v.op])) for v in plan.temps]
    for loop in ops:  # Note [a gang that owns rows]: a member may run a turn ahead of another
        if loop.name == "while" and loop.attributes.get("threads") == "rows":
            inside = {r for region in loop.regions for op in region.entry.ops for r in op.results}
            plan.lifetimes = [spans[loop] if v in inside else life for v, life in zip(plan.temps, plan.lifetimes)]
    for j, i in (donations or {}).items():
        if _can_donate(function, plan, last_use, steps, returned[j], function.args[i]):
            plan.donated[j] = i
    return plan


def _number_steps(block: Block, spans: dict[Operation, tuple[int, int]], counter: list[int]
                  ) -> dict[Operation, tuple[int, int]]:
    """Each op's (start, end) step, region ops around their regions' ops (Note [control flow storage])."""
    for op in block.ops:
        start = counter[0]
        counter[0] += 1
        if op.name in CONTROL_OPS:
            for region in op.regions:
                _number_steps(region.entry, spans, counter)
            counter[0] += 1
        spans[op] = (start, counter[0] - 1)
    return spans


def _place_block(block: Block, plan: MemoryPlan, in_control: bool) -> None:
    """The storage of the values `block` defines, then of its region ops' regions."""
    for op in block.ops:
        if op.is_terminator:
            continue
        for result in op.results:
            if result in plan.storage:
                continue
            if op.name == "constant":
                plan.storage[result] = Storage("const")
            elif op.is_view:
                plan.storage[result] = Storage("view", of=op.operands[0])
            elif (buffer := _row_written_in_place(plan, block, op)) is not None:
                plan.storage[result] = Storage("view", of=buffer)
            elif (initial := _unchanged_state(op, result)) is not None:
                plan.storage[result] = Storage("view", of=initial)
            else:
                _own_storage(plan, result, in_control or op.name in CONTROL_OPS)
        if op.name == "cond":
            for region in op.regions:
                _place_region_args(plan, region.entry, op.operands[1:])
                _write_yields_in_place(plan, region.entry, op.results, lambda value, index: True)
                _place_block(region.entry, plan, in_control=True)
        elif op.name == "while":
            condition, body = op.regions
            for region in op.regions:
                _place_region_args(plan, region.entry, op.results)
            _write_yields_in_place(plan, body.entry, op.results, _state_is_read_after(body.entry))
            for region in op.regions:
                _place_block(region.entry, plan, in_control=True)


def _unchanged_state(op: Operation, result: Value) -> Value | None:
    """The initial value of a compiled while's state that its body yields unchanged and reads only a
    row at a time (the input sequence, a gradient's stack of states), whose bytes the state then
    shares: nothing writes either while the loop runs, and no copy of it starts every run. Not a
    state read whole (a weight: a copy of its own is 64-byte aligned, and a BLAS operand read on
    every turn is much quicker so: bench/RESULTS.md, "Control flow", stop 20), nor one
    small enough to be `local` (in a stack slot LLVM keeps a loop's bound in a register). None for
    any other value."""
    if op.name != "while" or op.attributes.get("driven") == "host" or not _bigger_than_local(result):
        return None
    index = op.results.index(result)
    body = op.regions[1].entry
    if body.terminator.operands[index] is not body.args[index]:
        return None
    reads = [use for region in op.regions for use in region.entry.args[index].uses if use[0] is not body.terminator]
    return op.operands[index] if all(_reads_a_row(user, operand) for user, operand in reads) else None


def _bigger_than_local(value: Value) -> bool:
    value_type = value.type
    return not value_type.is_static or math.prod(value_type.shape) * value_type.dtype.itemsize > LOCAL_BYTES


def _reads_a_row(kernel: Operation, operand: int) -> bool:
    """Whether kernel `kernel` is a row read (Note [a row read] in codegen/llvm/control.py) of its
    operand `operand`."""
    read = row_read(kernel) if kernel.name == "fusion" else None
    return read is not None and read.operands[0] is kernel.regions[0].entry.args[operand]


def _own_storage(plan: MemoryPlan, value: Value, in_control: bool) -> None:
    """A temp, or a local for a small value of a static shape in control flow (Note [control flow storage])."""
    value_type = value.type
    if in_control and value_type.is_static and math.prod(value_type.shape) * value_type.dtype.itemsize <= LOCAL_BYTES:
        plan.storage[value] = Storage("local", len(plan.locals))
        plan.locals.append(value)
    else:
        plan.storage[value] = Storage("temp", len(plan.temps))
        plan.temps.append(value)


def _place_region_args(plan: MemoryPlan, block: Block, outer: Sequence[Value]) -> None:
    for arg, value in zip(block.args, outer, strict=True):
        plan.storage[arg] = Storage("view", of=value)


def _write_yields_in_place(plan: MemoryPlan, block: Block, results: Sequence[Value],
                           allowed: Callable[[Value, int], bool]) -> None:
    """Give each yielded value that a kernel (or region op) of `block` computes, yielded once, the storage
    of the op's result it becomes, where `allowed` (Note [control flow storage])."""
    yielded = block.terminator.operands
    for index, value in enumerate(yielded):
        owner = getattr(value, "op", None)
        if owner is None or owner.parent is not block or owner.name not in ("fusion", *CONTROL_OPS):
            continue
        if yielded.count(value) == 1 and value not in plan.storage and allowed(value, index):
            plan.storage[value] = Storage("view", of=results[index])


def _state_is_read_after(body: Block) -> Callable[[Value, int], bool]:
    """Whether a body's yielded value may be written into state `index` in place: no op from its producer
    on (the yield included) reads the old state, directly or through a view of it; except the producer
    itself if it is a loop kernel reading the state argument itself, which has the value's type: it
    reads each element at the index it writes, before it writes it (codegen/llvm/kernels/loop.py
    computes every output of an element before storing any); or a product kernel reading it as the
    rows of its product only, whose epilogue computes the value: a piece of the kernel multiplies its
    rows, then writes the epilogue's rows, the same ones (an RNN's h = tanh(h @ Wh + ...))."""
    position = {op: i for i, op in enumerate(body.ops)}

    def reads_of(arg: Value) -> list[tuple[Operation, Value]]:
        found, pending = [], [arg]
        while pending:
            value = pending.pop()
            for user, _ in value.uses:
                found.append((user, value))
                if user.is_view:
                    pending.extend(user.results)
        return found

    def allowed(value: Value, index: int) -> bool:
        producer = value.op
        for user, read in reads_of(body.args[index]):
            if position[user] < position[producer]:
                continue
            same_index = producer.name == "fusion" and producer.kind == "loop" and read is body.args[index]
            same_rows = read is body.args[index] and _rows_of_product_only(producer, read, value)
            if user is not producer or not (same_index or same_rows or _row_buffer(producer) is read):
                return False
        return True

    return allowed


def _rows_of_product_only(kernel: Operation, state: Value, value: Value) -> bool:
    """Whether product kernel `kernel` reads `state` only as its product's first operand (2-D, not
    transposed), and yields `value` from its epilogue, not the product itself."""
    schedule = kernel.attributes.get("schedule") if kernel.name == "fusion" else None
    if schedule not in ("blas", "narrow") or kernel.kind != "matmul":
        return False
    block = kernel.regions[0].entry
    (matmul,) = [op for op in block.ops if op.name in PRODUCTS] or [None]
    if matmul is None or matmul.name != "matmul" or matmul.transpose_a or matmul.result.type.rank != 2:
        return False
    inside = [arg for arg, operand in zip(block.args, kernel.operands) if operand is state]
    yielded = block.terminator.operands[kernel.results.index(value)]
    return yielded is not matmul.result and all(arg.uses == [(matmul, 0)] for arg in inside)


# Note [rows written in place]
# write_row's result is its buffer operand with one row replaced (ir/ops/rows.py). When nothing reads
# that buffer after the kernel, the result takes the buffer's bytes, as a view of it, and the kernel
# stores the one row (kernels/single.py): a loop filling a buffer row by row (the stack of a while's
# gradient, a TensorArray) then costs a row per step, not a copy of the buffer. So it is for a loop
# state that a body's write_row yields (_state_is_read_after: the kernel that writes the row reads no
# other), and for a temp computed by a kernel of the same block that no later op of the block reads
# (a region is isolated: an op of a nested region reads it through the region op's operands). An
# argument is the caller's, a constant read-only, a region argument some other value's bytes.
# scatter_add's result is likewise its base with rows added to: in base's bytes its kernel skips the
# copy of base and only adds (codegen/llvm/kernels/scatter.py), so gather's gradient, a scatter_add
# into zeros, costs the zeros and the adds.


def _row_buffer(op: Operation) -> Value | None:
    """The operand of a write_row kernel that it writes a row of (of a scatter_add kernel, the base it
    adds into), or None for any other op."""
    inner = [o for o in op.regions[0].entry.ops if o.name != "constant"] if op.name == "fusion" else []
    if len(inner) != 2 or inner[0].name not in ("write_row", "scatter_add") or inner[1].operands != [inner[0].result]:
        return None
    argument = inner[0].operands[0]
    if getattr(argument, "block", None) is not op.regions[0].entry or argument in inner[0].operands[1:]:
        return None
    return op.operands[argument.index]  # type: ignore[union-attr]


def _row_written_in_place(plan: MemoryPlan, block: Block, op: Operation) -> Value | None:
    """The buffer operand whose bytes a write_row kernel may write its result into, or None."""
    buffer = _row_buffer(op)
    if buffer is None or buffer not in plan.storage:
        return None
    root = plan.root(buffer)
    owner = getattr(root, "op", None)
    if plan.storage[root].kind != "temp" or owner is None or owner.parent is not block or owner.name != "fusion":
        return None
    later = block.ops[block.ops.index(op) + 1:]
    if any(v in plan.storage and plan.root(v) is root for user in later for v in user.operands):
        return None
    others = [v for v in op.operands if v is not buffer]
    return buffer if all(plan.root(v) is not root for v in others if v in plan.storage) else None


def _last_uses(block: Block, plan: MemoryPlan, spans: dict[Operation, tuple[int, int]],
               last: dict[Value, int]) -> dict[Value, int]:
    """The last step using each value (an op uses its operands at its end step); a view's uses count as
    uses of the value whose storage it shares."""
    for op in block.ops:
        end = spans[op][1]
        for value in op.operands:
            root = plan.root(value)
            last[root] = max(last.get(root, -1), end)
            last[value] = max(last.get(value, -1), end)
        if op.name in CONTROL_OPS:
            for region in op.regions:
                _last_uses(region.entry, plan, spans, last)
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
        product = next(op for op in block.ops if op.name in PRODUCTS)
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
    a feed back). The same for the values each while body yields
    (materialize_loop_state).
    """
    terminator = function.entry.ops[-1]
    seen: set[Value] = set()
    changed = False
    for index, value in enumerate(list(terminator.operands)):
        owner = getattr(value, "op", None)
        if owner is not None and owner.name == "fusion" and value not in seen:
            seen.add(value)
            continue
        seen.add(_copy_operand(terminator, index))
        changed = True
    for op in function.walk():
        if op.name == "while":
            changed |= materialize_loop_state(op.regions[1].entry)
    return changed


def materialize_loop_state(body: Block) -> bool:
    """Make each value a while body yields either its own state argument (unchanged) or a result of a
    kernel or region op of the body, yielded once: an identity kernel copies anything else (another
    state value, a view or a constant), so that no copy into the state at the yield reads a state
    buffer (Note [control flow storage])."""
    terminator = body.terminator
    seen: set[Value] = set()
    changed = False
    for index, value in enumerate(list(terminator.operands)):
        owner = getattr(value, "op", None)
        own = value is body.args[index] or (owner is not None and owner.parent is body and
                                             owner.name in ("fusion", *CONTROL_OPS))
        if own and value not in seen:
            seen.add(value)
            continue
        seen.add(_copy_operand(terminator, index))
        changed = True
    return changed


def _copy_operand(terminator: Operation, index: int) -> Value:
    """An identity loop kernel before `terminator` copying its operand `index`, which it then reads."""
    from flowc.ir import Builder, Region

    value = terminator.operands[index]
    block = Block([value.type], ["x"])
    Builder.at_end(block).create("yield", [Builder.at_end(block).identity(block.args[0])])
    b = Builder.before(terminator)
    copy = b.create("fusion", [value], {"kind": "loop"}, regions=[Region([block])],
                    result_names=[value.name]).result
    terminator.set_operand(index, copy)
    return copy


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
