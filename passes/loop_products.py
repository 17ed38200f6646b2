"""Products that a while loop sums into its state, one per turn, made one product after the loop (part of LICM).

Note [accumulated products after the loop]
`acc + transpose(a) @ d` yielded as state %acc on every turn, a: [B, K] and d: [B, N] (dWh +=
h^T @ dpre in an RNN's gradient) is a sum over turns of products of B rows: one product of all the
turns' rows, [K, T*B] @ [T*B, N], after the loop. The body writes a and d into stacks, row k of
each on the turn that reads row k of an invariant buffer of R rows, k distinct on every turn (an
induction variable, plus or minus a constant): so the stacks have R rows, and the loop runs at most
R turns before that read stops it. The stacks start as zeros, so rows no turn wrote add exact zeros:

    %q = matmul %a, %d {transpose_a = true}            %sa = write_row %sa_arg, %k, %a   (body)
    %acc2 = add %acc, %q                       ->      %sd = write_row %sd_arg, %k, %d
    yield ..., %acc2, ...                              %total = matmul reshape(%sa), reshape(%sd)
                                                       %acc_out = add %acc_init, %total  (after)

A bias's gradient, `acc + reduce_sum(d, axes = [0])`, is the same sum of rows: d's stack, and one
column sum of all its rows after the loop. A value written by several accumulations (d of dWx, dWh
and db) has one stack. The sum is reassociated:
results differ from the per-turn sums by rounding only (tests/codegen/test_loop_products.py bounds
it). Rows that no turn wrote (a loop that stops before R turns) cost their share of the product,
about what the zero fill of a stack costs, and a gradient's own stacks already fill those rows.

Only static shapes (the stacks are allocated before the loop), and only where it pays: a product of
few rows per turn (B <= MAX_ROWS_PER_TURN) is a rank-B update of the whole K x N sum, which BLAS runs
far below its peak, so one product of T*B rows is several times quicker. With more rows the per-turn
product already runs near the peak, and on one thread the zero fill and a row written per turn to
stacks too big for the cache cost more than the one product saves; but those sums are what makes the
loop's turns mix rows (each dW sums over the batch), so with them gone a gang's members own the rows
and run the turns with no barrier (Note [a gang that owns rows] in ir/ops/gang_rows.py), and the one
product after runs on every thread too. So sums of more rows leave where the rest of the loop then
keeps rows apart (rows_kept_apart). On two threads that was quicker at every batch measured, on one
slower from a batch of about 24 (the gradient of a tanh RNN by batch: bench/RESULTS.md, "Control flow").
LICM runs this after hoisting the body's invariants, so the loop it judges is the one that will run.

Measured and not built: the forward's `gather(xs, i) @ W`, i an induction variable, as one product
`reshape(xs, [T*B, K]) @ W` before the loop, read by row inside. It was slower at every batch: the
per-turn product runs near BLAS's peak already, and the [T, B, N] result, written once and read back
row by row, leaves the cache (numpy's own loop is slower so too).
"""

from __future__ import annotations

import numpy as np

from flowc.ir import Block, Builder, Operation, OpResult, Value

from flowc.ir.ops.gang_rows import rows_kept_apart
from flowc.ir.ops.kernel_space import ROW_READS

from .simplify import splat

MAX_ROWS_PER_TURN = 12  # B of each turn's product: 12 measured quicker after the loop, 16 even, 24 slower
MAX_STACK_BYTES = 64 << 20  # the stacks of one loop; a longer loop keeps its per-turn sums


def invariant_state(body: Block) -> set[Value]:
    """The arguments of a while body that it yields back unchanged: the same value on every turn."""
    yielded = body.terminator.operands
    return {arg for index, arg in enumerate(body.args) if yielded[index] is arg}


def induction_step(body: Block, value: Value) -> int | None:
    """+1 or -1 when `value` is state the body yields as itself plus or minus one, else None."""
    if value not in body.args:
        return None
    step = _offset(body.terminator.operands[body.args.index(value)], value)
    return step if step in (1, -1) else None


def distinct_every_turn(body: Block, index: Value) -> bool:
    """Whether `index` takes a new value on every turn: an induction variable plus or minus a constant."""
    if induction_step(body, index) is not None:
        return True
    op = index.op if isinstance(index, OpResult) else None
    if op is None or op.name not in ("add", "sub"):
        return False
    return any(_offset(index, base) is not None and induction_step(body, base) is not None for base in op.operands)


def _offset(value: Value, base: Value) -> int | None:
    """c when value is `base + c` or `base - (-c)` with c a scalar integer constant, else None."""
    op = value.op if isinstance(value, OpResult) else None
    if op is None or op.name not in ("add", "sub") or value.type.rank != 0 or not value.type.dtype.is_int:
        return None
    x, y = op.operands
    if op.name == "add" and y is base:
        x, y = y, x
    number = splat(y) if x is base else None
    if number is None:
        return None
    return int(number) if op.name == "add" else -int(number)


def sink_accumulated_products(loop: Operation) -> tuple[Operation, bool]:
    """Note [accumulated products after the loop]: (the loop, rebuilt when it gained state; whether any moved)."""
    body = loop.regions[1].entry
    sums = [p for p in range(len(body.args)) if _accumulated_product(loop, p)]
    leaving = {op for p in sums for op in (body.terminator.operands[p].op, _product_of(body, p))}
    if any(_rows_per_turn(body, p) > MAX_ROWS_PER_TURN for p in sums) and not rows_kept_apart(loop, leaving):
        sums = [p for p in sums if _rows_per_turn(body, p) <= MAX_ROWS_PER_TURN]
    index_and_rows = _row_index(body) if sums else None
    if index_and_rows is None:
        return loop, False
    index, rows = index_and_rows
    stacked: list[Value] = []  # a and d of each product, once each
    for p in sums:
        stacked += [v for v in _product_of(body, p).operands if v not in stacked]  # type: ignore[union-attr]
    if rows * sum(v.type.size * v.type.dtype.np.itemsize for v in stacked) > MAX_STACK_BYTES:
        return loop, False
    b = Builder.before(loop)
    zero = {dtype: b.constant(np.zeros((), dtype.np)) for dtype in {v.type.dtype for v in stacked}}
    zeros = [b.broadcast_to(zero[v.type.dtype], shape=(rows, *v.type.shape)) for v in stacked]
    state = len(loop.operands)
    loop = with_extra_state(loop, zeros)
    body = loop.regions[1].entry
    terminator = body.terminator
    rows_of: dict[Value, int] = {}
    for position, value in enumerate(stacked, start=state):
        written = Builder.before(terminator).write_row(body.args[position], index, value)
        terminator.set_operand(position, written)
        rows_of[value] = position
    after = Builder(loop.parent, loop.parent.ops.index(loop) + 1, loop.loc)
    flat: dict[Value, Value] = {}  # a stack read as [rows * B, columns], once for every sum reading it
    for p in sums:
        _sink(loop, p, after, rows_of, flat)
    return loop, True


def _accumulated_product(loop: Operation, p: int) -> bool:
    """Whether state p is yielded as `acc + matmul(a, d, transpose_a)` or `acc + reduce_sum(d, axes=[0])`,
    acc read by nothing else."""
    body, condition = loop.regions[1].entry, loop.regions[0].entry
    acc, new = body.args[p], body.terminator.operands[p]
    add = new.op if isinstance(new, OpResult) else None
    if add is None or add.name != "add" or acc.uses != [(add, 0)] and acc.uses != [(add, 1)]:
        return False
    if new.type != acc.type or new.uses != [(body.terminator, p)] or condition.args[p].uses:
        return False
    product = _product_of(body, p)
    if product is None or product.name not in ("matmul", "reduce_sum") or product.result.type != acc.type \
            or len(product.result.uses) != 1 or not acc.type.dtype.is_float:
        return False
    if product.name == "reduce_sum":  # the column sum of d: a bias's gradient
        (d,) = product.operands
        return product.reduced_axes() == (0,) and not product.keepdims and d.type.rank == 2 and d.type.is_static
    if not product.transpose_a or product.transpose_b:
        return False
    a, d = product.operands
    return a.type.rank == 2 and d.type.rank == 2 and a.type.is_static and d.type.is_static


def _rows_per_turn(body: Block, p: int) -> int:
    """B: the rows a turn adds into accumulated state p."""
    return _product_of(body, p).operands[-1].type.shape[0]  # type: ignore[union-attr]


def _product_of(body: Block, p: int) -> Operation | None:
    """The op of the operand of state p's `add` that is not the state itself."""
    add = body.terminator.operands[p].op  # type: ignore[union-attr]
    other = add.operands[1] if add.operands[0] is body.args[p] else add.operands[0]
    return other.op if isinstance(other, OpResult) else None


def _row_index(body: Block) -> tuple[Value, int] | None:
    """(k, R): an index the body reads row k of an invariant buffer of R (static) rows at, on every turn,
    k distinct on every turn; else None. The loop then runs at most R turns."""
    invariant = invariant_state(body)
    for op in body.ops:
        if op.name not in ROW_READS or (op.name == "gather" and op.axis != 0):
            continue
        buffer, index = op.operands
        if buffer in invariant and index.type.rank == 0 and buffer.type.shape[0] is not None \
                and distinct_every_turn(body, index):
            return index, buffer.type.shape[0]
    return None


def _sink(loop: Operation, p: int, b: Builder, rows_of: dict[Value, int], flat: dict[Value, Value]) -> None:
    """State p yields itself; after the loop (where `b` inserts), its result is the initial value plus
    one product of the stacks of a and d."""
    body = loop.regions[1].entry
    add = body.terminator.operands[p].op  # type: ignore[union-attr]
    product = _product_of(body, p)
    operands = list(product.operands)  # type: ignore[union-attr]
    name = product.name  # type: ignore[union-attr]
    body.terminator.set_operand(p, body.args[p])
    add.erase()
    product.erase()  # type: ignore[union-attr]
    result = loop.results[p]
    uses = list(result.uses)
    for value in operands:
        if value not in flat:
            stack = loop.results[rows_of[value]]
            flat[value] = b.reshape(stack, shape=(stack.type.shape[0] * value.type.shape[0], value.type.shape[1]))
    if name == "reduce_sum":
        total = b.add(result, b.reduce_sum(flat[operands[0]], axes=(0,), keepdims=False))
    else:
        total = b.add(result, b.matmul(*(flat[v] for v in operands), transpose_a=True, transpose_b=False))
    for user, index in uses:
        user.set_operand(index, total)


def with_extra_state(loop: Operation, extra: list[Value]) -> Operation:
    """`loop` rebuilt with `extra` as more state: an argument of both regions, yielded back unchanged."""
    for region in loop.regions:
        for value in extra:
            region.entry.add_arg(value.type, value.name)
    body = loop.regions[1].entry
    terminator = body.terminator
    yielded = list(terminator.operands)
    terminator.drop_operand_uses()
    body.ops.remove(terminator)
    Builder.at_end(body, loc=terminator.loc).create("yield", [*yielded, *body.args[len(yielded):]])
    regions = [loop.regions.pop(0) for _ in range(2)]  # moved, not copied
    names = [r.name for r in loop.results] + [None] * len(extra)
    new_loop = Builder.before(loop, loc=loop.loc).create("while", [*loop.operands, *extra], regions=regions,
                                                          result_names=names)
    for old, new in zip(loop.results, new_loop.results):
        old.replace_all_uses_with(new)
    loop.erase()
    return new_loop
