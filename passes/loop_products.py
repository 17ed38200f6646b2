"""Products that a while loop runs once per turn, made one big product outside it (part of LICM).

An RNN's loop multiplies a row of its input by a weight on each turn, and its gradient's loop adds
a product of two rows into a weight's gradient on each turn: small products (an RNN's are 32 x 64
by 64 x 128) that BLAS runs far from its peak, one after another. Both become one product of all the
rows, which BLAS runs near its peak and on every core.

Note [products of rows before the loop]
`matmul(gather(%xs, %i), %w)` in a body, %xs and %w invariant, %i an induction variable (the state
the body yields as %i + 1 or %i - 1): row %i of `xs @ w`, all of whose rows are computed before the
loop by one product, `reshape(xs, [T*B, K]) @ w`, reshaped to [T, B, N] and read by row inside:

    %x = gather %xs, %i {axis = 0} : f32[B,K]          %p = matmul %x2, %w : f32[T*B,N]  (before)
    %y = matmul %x, %w : f32[B,N]              ->      %y = gather %rows, %i {axis = 0} : f32[B,N]

The row read keeps gather's (or read_row's) check: %rows has the T rows of %xs, so an index out of
range stops the run as it did. All T rows are computed although the loop may read fewer: an
induction variable reads a new row on every turn, so the rows not read are those of turns the loop
does not run; a loop that reads the row at a fixed or data-chosen index keeps its product. Each
row is the same dot products; only BLAS's blocking of the sums may differ (float rounding).

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

A value written by several accumulations (d of dWx and dWh) has one stack. The sum is reassociated:
float32 results differ from the per-turn sums by rounding only, which a test bounds
(tests/codegen/test_loop_products.py). Only static shapes (the stacks are allocated before the loop).
"""

from __future__ import annotations

import numpy as np

from flowc.ir import Block, Builder, Operation, OpResult, Value

from .simplify import splat

ROW_READS = ("gather", "read_row")


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


def hoist_row_products(loop: Operation) -> tuple[Operation, bool]:
    """Note [products of rows before the loop]: (the loop, rebuilt when it gained state; whether any moved)."""
    body = loop.regions[1].entry
    invariant = invariant_state(body)
    products = [op for op in body.ops if _row_product(body, op, invariant)]
    if not products:
        return loop, False
    outside = dict(zip(body.args, loop.operands))
    b = Builder.before(loop)
    all_rows = [_all_rows(b, op, outside) for op in products]
    loop = with_extra_state(loop, all_rows)
    body = loop.regions[1].entry
    for op, rows in zip(products, body.args[len(body.args) - len(products):]):
        read = op.operands[0].op
        row = Builder.before(op).create(read.name, [rows, read.operands[1]], dict(read.attributes),
                                        result_names=[op.result.name])
        op.result.replace_all_uses_with(row.result)
        op.erase()
        if not read.result.uses:
            read.erase()
    return loop, True


def _row_product(body: Block, op: Operation, invariant: set[Value]) -> bool:
    """Whether op is `matmul(row %i of invariant %xs, invariant %w)`, %i an induction variable."""
    if op.name != "matmul" or op.transpose_a or op.result.type.rank != 2:
        return False
    x, w = op.operands
    read = x.op if isinstance(x, OpResult) else None
    if read is None or read.name not in ROW_READS or (read.name == "gather" and read.axis != 0):
        return False
    xs, index = read.operands
    inner = xs.type.shape[-1] if xs.type.rank == 3 else None
    return index.type.rank == 0 and xs in invariant and w in invariant and w.type.rank == 2 \
        and bool(inner) and xs.type.dtype.is_float and induction_step(body, index) is not None


def _all_rows(b: Builder, op: Operation, outside: dict[Value, Value]) -> Value:
    """`xs @ w` of every row of xs before the loop, as [T, B, N]: one product of [T*B, K] by w."""
    x, w = op.operands
    xs, weights = outside[x.op.operands[0]], outside[w]
    columns = op.result.type.shape[1]
    flat = b.reshape(xs, shape=(-1, xs.type.shape[2]))
    product = b.matmul(flat, weights, transpose_a=False, transpose_b=op.transpose_b)
    if xs.type.is_static and columns is not None:
        return b.reshape(product, shape=(*xs.type.shape[:2], columns))
    # Note [dims from operands] in ir/ops/dims.py: T and B are xs's, N is w's where not static.
    column_source = (0, 0) if columns is not None else (2, 0 if op.transpose_b else 1)
    return b.reshape_dims(product, xs, weights, shape=(0, 0, columns or 0), source=(1, 1, column_source[0]),
                          source_axis=(0, 1, column_source[1]))


def sink_accumulated_products(loop: Operation) -> tuple[Operation, bool]:
    """Note [accumulated products after the loop]: (the loop, rebuilt when it gained state; whether any moved)."""
    body = loop.regions[1].entry
    sums = [p for p in range(len(body.args)) if _accumulated_product(loop, p)]
    index_and_rows = _row_index(body) if sums else None
    if index_and_rows is None:
        return loop, False
    index, rows = index_and_rows
    stacked: list[Value] = []  # a and d of each product, once each
    for p in sums:
        stacked += [v for v in _product_of(body, p).operands if v not in stacked]
    b = Builder.before(loop)
    zeros = [b.broadcast_to(b.constant(np.zeros((), v.type.dtype.np)), shape=(rows, *v.type.shape)) for v in stacked]
    state = len(loop.operands)
    loop = with_extra_state(loop, zeros)
    body = loop.regions[1].entry
    terminator = body.terminator
    rows_of: dict[Value, int] = {}
    for position, value in enumerate(stacked, start=state):
        written = Builder.before(terminator).write_row(body.args[position], index, value)
        terminator.set_operand(position, written)
        rows_of[value] = position
    for p in sums:
        _sink(loop, p, rows_of, rows)
    return loop, True


def _accumulated_product(loop: Operation, p: int) -> bool:
    """Whether state p is yielded as `acc + matmul(a, d, transpose_a)`, acc read by nothing else."""
    body, condition = loop.regions[1].entry, loop.regions[0].entry
    acc, new = body.args[p], body.terminator.operands[p]
    add = new.op if isinstance(new, OpResult) else None
    if add is None or add.name != "add" or acc.uses != [(add, 0)] and acc.uses != [(add, 1)]:
        return False
    if new.type != acc.type or new.uses != [(body.terminator, p)] or condition.args[p].uses:
        return False
    product = _product_of(body, p)
    if product is None or product.name != "matmul" or not product.transpose_a or product.transpose_b:
        return False
    a, d = product.operands
    return len(product.result.uses) == 1 and a.type.rank == 2 and d.type.rank == 2 and \
        a.type.is_static and d.type.is_static and acc.type.dtype.is_float


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


def _sink(loop: Operation, p: int, rows_of: dict[Value, int], rows: int) -> None:
    """State p yields itself; after the loop, its result is the initial value plus one product of the
    stacks of a and d."""
    body = loop.regions[1].entry
    add = body.terminator.operands[p].op  # type: ignore[union-attr]
    product = _product_of(body, p)
    a, d = product.operands  # type: ignore[union-attr]
    body.terminator.set_operand(p, body.args[p])
    add.erase()
    product.erase()  # type: ignore[union-attr]
    result = loop.results[p]
    uses = list(result.uses)
    block = loop.parent
    b = Builder(block, block.ops.index(loop) + 1, loop.loc)
    flat_a = b.reshape(loop.results[rows_of[a]], shape=(rows * a.type.shape[0], a.type.shape[1]))
    flat_d = b.reshape(loop.results[rows_of[d]], shape=(rows * d.type.shape[0], d.type.shape[1]))
    total = b.add(result, b.matmul(flat_a, flat_d, transpose_a=True, transpose_b=False))
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
