"""Algebraic simplification: small rewrite patterns, exact in floating point.

Each docstring states the identity and whether it needs the fast-math flag
(`Rewriter.fast_math`), which allows rewrites that change results for NaN,
inf or -0.0: `x + 0 -> x` is one (-0.0 + 0.0 is +0.0), so are `x * 0 -> 0`,
`x - x -> 0` and a float sum or mean over no axes -> x. For integers they are
exact and need no flag.
A rewrite never changes a value's type: an operand that broadcasts the
result to a bigger shape keeps the op.
"""

from __future__ import annotations

import numpy as np

from flowc.ir import Module, Operation, OpResult, Value, registry

from .fold import FOLD_MAX_ELEMENTS, constant_value
from .manager import Pass
from .rewrite import Rewriter, apply_patterns, pattern, pattern_table


def splat(value: Value) -> np.ndarray | None:
    """The single element of a constant whose elements are all equal (sign of zero too), else None."""
    array = constant_value(value)
    if array is None or array.size == 0:
        return None
    first = array.reshape(-1)[0]
    if array.dtype.kind == "f":
        same = np.all(((array == first) | (np.isnan(array) & np.isnan(first))) & (np.signbit(array) == np.signbit(first)))
    else:
        same = np.all(array == first)
    return np.asarray(first) if same else None


def is_splat(value: Value, number: float, negative_zero: bool | None = None) -> bool:
    """Whether `value` is a constant with every element equal to `number`.

    `negative_zero` asks for the sign of a zero: True for -0.0, False for +0.0.
    """
    element = splat(value)
    if element is None or element != number:
        return False
    return negative_zero is None or bool(np.signbit(element)) == negative_zero


def defined_by(value: Value, name: str) -> Operation | None:
    return value.op if isinstance(value, OpResult) and value.op.name == name else None


def _forward(op: Operation, rw: Rewriter, x: Value) -> None:
    """Replace op's result with x when that keeps the type (no broadcast lost)."""
    if x.type == op.result.type:
        rw.replace_all_uses(op.result, x)


def _zero_of(op: Operation, rw: Rewriter) -> None:
    """Replace op's result with zeros of its static type; above the fold cap, a broadcast scalar
    (Note [fold size cap]: `x * 0` of an i32[784,256] must not store 200k zeros)."""
    t = op.result.type
    if not t.is_static:
        return
    b = rw.builder_before(op)
    if t.size <= FOLD_MAX_ELEMENTS:
        zero = b.constant(np.zeros(t.shape, t.dtype.np))
    else:
        zero = b.broadcast_to(b.constant(np.zeros((), t.dtype.np)), shape=t.shape)
    rw.replace_op(op, [zero])


# -- additive -----------------------------------------------------------------


@pattern("add")
def drop_add_zero(op: Operation, rw: Rewriter) -> None:
    """x + (-0.0) -> x, exact. x + 0 -> x needs fast-math for floats (-0.0 + 0.0 is +0.0); exact for ints."""
    for x, zero in (op.operands, op.operands[::-1]):
        if op.result.type.dtype.is_float:
            exact = is_splat(zero, 0, negative_zero=True)
            if exact or (rw.fast_math and is_splat(zero, 0)):
                return _forward(op, rw, x)
        elif is_splat(zero, 0):
            return _forward(op, rw, x)


@pattern("sub")
def drop_sub_zero(op: Operation, rw: Rewriter) -> None:
    """x - 0 -> x. Exact for NaN, inf and -0.0 (-0.0 - 0.0 is -0.0): no flag needed."""
    x, zero = op.operands
    if is_splat(zero, 0, negative_zero=False if op.result.type.dtype.is_float else None):
        _forward(op, rw, x)


@pattern("sub")
def sub_self(op: Operation, rw: Rewriter) -> None:
    """x - x -> 0. Exact for ints; floats need fast-math (inf - inf and NaN - NaN are NaN)."""
    x, y = op.operands
    if x is y and (rw.fast_math or not op.result.type.dtype.is_float):
        _zero_of(op, rw)


@pattern("neg")
def neg_neg(op: Operation, rw: Rewriter) -> None:
    """-(-x) -> x. Exact: negation only flips the sign bit."""
    inner = defined_by(op.operands[0], "neg")
    if inner is not None:
        _forward(op, rw, inner.operands[0])


# -- multiplicative -------------------------------------------------------------


@pattern("mul")
def drop_mul_by_one(op: Operation, rw: Rewriter) -> None:
    """x * 1 -> x. Exact for NaN, inf and -0.0: no fast-math flag needed."""
    for x, one in (op.operands, op.operands[::-1]):
        if is_splat(one, 1):
            return _forward(op, rw, x)


@pattern("mul")
def mul_by_zero(op: Operation, rw: Rewriter) -> None:
    """x * 0 -> 0. Exact for ints; floats need fast-math (NaN * 0 is NaN, -1 * 0 is -0.0)."""
    if op.result.type.dtype.is_float and not rw.fast_math:
        return
    if any(is_splat(v, 0) for v in op.operands):
        _zero_of(op, rw)


@pattern("div")
def drop_div_by_one(op: Operation, rw: Rewriter) -> None:
    """x / 1 -> x. Exact: no flag needed."""
    x, one = op.operands
    if is_splat(one, 1):
        _forward(op, rw, x)


@pattern("pow")
def drop_pow_one(op: Operation, rw: Rewriter) -> None:
    """x ** 1 -> x. Exact (pow(x, 1) is x for every x, NaN and -0.0 included)."""
    x, one = op.operands
    if is_splat(one, 1):
        _forward(op, rw, x)


@pattern("maximum", "minimum")
def min_max_self(op: Operation, rw: Rewriter) -> None:
    """max(x, x) -> x and min(x, x) -> x. Exact."""
    x, y = op.operands
    if x is y:
        _forward(op, rw, x)


# -- no-op conversions ---------------------------------------------------------------


@pattern("identity")
def drop_identity(op: Operation, rw: Rewriter) -> None:
    """identity(x) -> x. Exact."""
    _forward(op, rw, op.operands[0])


@pattern("cast")
def drop_cast_to_same(op: Operation, rw: Rewriter) -> None:
    """cast(x) to x's own dtype -> x. Exact."""
    _forward(op, rw, op.operands[0])


@pattern("logical_not")
def not_not(op: Operation, rw: Rewriter) -> None:
    """not(not x) -> x. Exact."""
    inner = defined_by(op.operands[0], "logical_not")
    if inner is not None:
        _forward(op, rw, inner.operands[0])


@pattern("where")
def where_constant_condition(op: Operation, rw: Rewriter) -> None:
    """where(true, x, y) -> x and where(false, x, y) -> y. Exact."""
    cond, x, y = op.operands
    element = splat(cond)
    if element is not None:
        _forward(op, rw, x if bool(element) else y)


@pattern("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")
def reduce_over_no_axes(op: Operation, rw: Rewriter) -> None:
    """reduce(x, axes=()) -> x. Exact for max, min and integer sums; a float sum or mean
    over no axes needs fast-math: its reference (np.sum) adds x to 0.0, so -0.0 comes out +0.0."""
    if op.axes != ():
        return
    if op.name in ("reduce_sum", "reduce_mean") and op.result.type.dtype.is_float and not rw.fast_math:
        return
    _forward(op, rw, op.operands[0])


# -- shapes --------------------------------------------------------------------------


@pattern("transpose")
def fold_transposes(op: Operation, rw: Rewriter) -> None:
    """transpose(transpose(x, p), q) -> transpose(x, p[q]); the identity permutation -> x. Exact."""
    x = op.operands[0]
    if op.perm == tuple(range(len(op.perm))):
        return _forward(op, rw, x)
    inner = defined_by(x, "transpose")
    if inner is not None:
        perm = tuple(inner.perm[i] for i in op.perm)
        b = rw.builder_before(op)
        rw.replace_op(op, [b.transpose(inner.operands[0], perm=perm)])


@pattern("reshape")
def fold_reshapes(op: Operation, rw: Rewriter) -> None:
    """reshape(reshape(x)) -> reshape(x); reshape of x to x's own static type -> x. Exact."""
    x = op.operands[0]
    if x.type == op.result.type and x.type.is_static:
        return _forward(op, rw, x)
    inner = defined_by(x, "reshape")
    if inner is not None:
        # A static result keeps its dims: reshape(f32[?] -> [4, 2]) -> [-1] is f32[8], reshape(f32[?], [-1]) is not.
        shape = op.result.type.shape if op.result.type.is_static else op.shape
        b = rw.builder_before(op)
        rw.replace_op(op, [b.reshape(inner.operands[0], shape=shape)])


# Note [reshape past elementwise]: a convolution is a matmul on [N*OH*OW, O] and a reshape back to
# [N, OH, OW, O] (compiler/conv_ops.py); its bias_add and relu act on the reshaped view, and a view is
# a fusion boundary, so they ran as a loop kernel of their own over the output. Moving the reshape
# below them, relu(reshape(P) + b) -> reshape(relu(P + b)), lets them meet the product, and fusion
# puts them in its epilogue (passes/fusion.py). It is exact: an elementwise op computes each element
# alone, and the reshape keeps the last dim, along which alone the other operand varies (a bias [C]
# or a scalar), so every element meets the same operand element in either order. It fires only on a
# value computed by a matmul through elementwise ops: elsewhere a view between ops is no boundary
# worth moving, and the other graphs keep the IR they had. Nor where the elementwise chain ends in the
# function's results: a returned view gets a copy kernel of its own (passes/memory.py,
# materialize_results), which costs what the loop kernel over the output did. Where it fires it saves a
# kernel, not a pass over memory: a BLAS product is stored whole before its epilogue reads it back
# (codegen/llvm/kernels/matmul.py), so a conv's forward time is unchanged within noise.
_ELEMENTWISE = tuple(op.name for op in registry.elementwise() if op.num_operands in (1, 2) and op.pure)
_PRODUCT_DEPTH = 8  # elementwise ops between a matmul and the reshape that the search looks through


def _from_product(value: Value, depth: int = _PRODUCT_DEPTH) -> bool:
    """Whether `value` is a matmul's result, or an elementwise op's of one, as many as `depth` ops down."""
    if not isinstance(value, OpResult) or depth < 0:
        return False
    op = value.op
    if op.name == "matmul":
        return True
    return op.name in _ELEMENTWISE and any(
        x.type.shape == value.type.shape and _from_product(x, depth - 1) for x in op.operands)


def _returned(value: Value, depth: int = _PRODUCT_DEPTH) -> bool:
    """Whether `value`, or an elementwise op's result of its shape computed from it, is returned."""
    for user, _ in value.uses:
        if user.is_terminator:
            return True
        if depth > 0 and user.name in _ELEMENTWISE and user.results[0].type.shape == value.type.shape:
            if _returned(user.results[0], depth - 1):
                return True
    return False


def _along_last_dim(value: Value, channels: int) -> bool:
    """Whether `value` varies only along the last dim of `channels` elements: a scalar, [C] or [1, .., C]."""
    shape = value.type.shape
    return all(d == 1 for d in shape[:-1]) and (not shape or shape[-1] in (1, channels))


@pattern(*_ELEMENTWISE)
def elementwise_before_reshape(op: Operation, rw: Rewriter) -> None:
    """f(reshape(P), y) -> reshape(f(P, y)) where the reshape keeps P's last dim C (known) and y varies
    only along it (a scalar, [C] or [1, .., C]); f(reshape(P)) -> reshape(f(P)) likewise.
    Exact (Note [reshape past elementwise])."""
    views = [i for i, x in enumerate(op.operands) if defined_by(x, "reshape") is not None]
    if len(views) != 1:
        return
    view = op.operands[views[0]]
    reshape = view.op
    source = reshape.operands[0]
    channels = view.type.shape[-1] if view.type.rank else None
    if channels is None or source.type.rank == 0 or source.type.shape[-1] != channels:
        return
    others = [x for i, x in enumerate(op.operands) if i != views[0]]
    if not all(_along_last_dim(y, channels) and y.type.rank <= view.type.rank for y in others):
        return
    if op.result.type.shape != view.type.shape or not _from_product(source) or _returned(op.result):
        return
    b = rw.builder_before(op)
    operands = [b.reshape(y, shape=[y.type.shape[-1]]) if y.type.rank > 1 else y for y in others]
    operands.insert(views[0], source)
    inner = b.create(op.name, operands, dict(op.attributes)).results[0]
    rw.replace_op(op, [b.reshape(inner, shape=reshape.shape)])


@pattern("broadcast_to")
def drop_broadcast_to_same(op: Operation, rw: Rewriter) -> None:
    """broadcast_to(x, x's own shape) -> x. Exact."""
    _forward(op, rw, op.operands[0])


@pattern("ensure_shape")
def drop_ensure_shape_known(op: Operation, rw: Rewriter) -> None:
    """ensure_shape(x, s) -> x where x's type already knows every dim s gives. Exact."""
    _forward(op, rw, op.operands[0])


@pattern("squeeze")
def squeeze_expand_dims(op: Operation, rw: Rewriter) -> None:
    """squeeze(expand_dims(x, a), [a]) -> x. Exact."""
    inner = defined_by(op.operands[0], "expand_dims")
    if inner is not None and len(op.axes) == 1:
        rank = op.operands[0].type.rank
        if op.axes[0] % rank == inner.axis % rank:
            _forward(op, rw, inner.operands[0])


@pattern("concat")
def concat_of_one(op: Operation, rw: Rewriter) -> None:
    """concat([x]) -> x. Exact."""
    if len(op.operands) == 1:
        _forward(op, rw, op.operands[0])


@pattern("slice")
def drop_full_slice(op: Operation, rw: Rewriter) -> None:
    """x[:, :, ...] (every dim whole, step 1, nothing squeezed) -> x. Exact."""
    whole = all(b == 0 and e is None and s == 1 for b, e, s in zip(op.begin, op.end, op.strides))
    if whole and not op.squeeze_dims:
        _forward(op, rw, op.operands[0])


@pattern("one_hot")
def one_hot_as_comparison(op: Operation, rw: Rewriter) -> None:
    """one_hot(i) -> where(expand_dims(i) == iota, on, off): elementwise, so fusion computes it inside
    its consumers (a classifier's cross entropy and its gradient) instead of in a kernel and buffer of
    its own. Exact: an index outside [0, depth) equals no element of the iota, as in one_hot. Kept
    when the iota (in the indices' dtype, i32 or i64) would be a constant above the fold cap."""
    indices = op.operands[0]
    if op.depth > FOLD_MAX_ELEMENTS:
        return
    dtype = indices.type.dtype.np
    rank = op.result.type.rank
    axis = op.axis % rank
    b = rw.builder_before(op)
    iota = b.constant(np.arange(op.depth, dtype=dtype).reshape((op.depth,) + (1,) * (rank - 1 - axis)))
    hot = b.equal(b.expand_dims(indices, axis=axis), iota)
    on, off = (b.constant(np.asarray(v).astype(op.dtype.np)) for v in (op.on_value, op.off_value))
    rw.replace_op(op, [b.where(hot, on, off)])


SIMPLIFY_PATTERNS = [
    drop_add_zero, drop_sub_zero, sub_self, neg_neg, drop_mul_by_one, mul_by_zero, drop_div_by_one, drop_pow_one,
    min_max_self, drop_identity, drop_cast_to_same, not_not, where_constant_condition, reduce_over_no_axes,
    fold_transposes, fold_reshapes, elementwise_before_reshape, drop_broadcast_to_same, squeeze_expand_dims,
    concat_of_one, drop_full_slice, one_hot_as_comparison,
]


class Simplify(Pass):
    """Apply the algebraic patterns of this file to a fixed point."""

    name = "simplify"

    def __init__(self, fast_math: bool = False):
        self.fast_math = fast_math

    def run(self, module: Module) -> bool:
        return apply_patterns(module, pattern_table(SIMPLIFY_PATTERNS), fast_math=self.fast_math)
