"""Property: the pass pipeline never changes what a function computes.

Hypothesis builds random functions from the op registry (elementwise unary,
binary and comparison ops, where, cast, reductions, arg-reductions,
transpose, reshape, broadcast_to, expand_dims, squeeze, slice, concat,
matmul, gather, one_hot, random ops, cond and while with random bodies),
over random static shapes (size-1 and zero-size dims included) and every
dtype, with constants that make the patterns fire (splats of 0, -0.0 and 1,
special floats) and repeated subexpressions that make CSE fire. The
reference interpreter runs each function on the same inputs before and after
the pipeline, and the results must be the same bit for bit (NaN equal to
NaN): without fast-math every rewrite is exact, so no tolerance is needed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.ir import (
    Block,
    Builder,
    DType,
    Function,
    Module,
    Operation,
    TensorType,
    Value,
    bool_,
    evaluate,
    float32,
    float64,
    int8,
    int32,
    int64,
    print_module,
    registry,
    uint8,
    verify,
)
from flowc.ir.ops.control import build_cond, build_while
from flowc.passes import PassManager, optimize, passes_by_name

DTYPES = (float32, float64, int32, int64, bool_, int8, uint8)  # int8 and uint8 wrap; uint8 compares unsigned
FLOATS = (float32, float64)
NUMERIC = (float32, float64, int32, int64, int8, uint8)
DIMS = st.sampled_from([2, 1, 3, 0])
SPECIAL_FLOATS = (0.0, -0.0, 1.0, -1.0, 0.5, np.inf, -np.inf, np.nan, 1e30, -3.0)

UNARY = {
    "float": ["neg", "abs", "square", "relu", "exp", "log", "tanh", "sigmoid", "sqrt", "rsqrt", "identity",
              "sin", "cos", "atan", "erf", "log1p", "expm1", "floor", "ceil", "round", "sign"],
    "int": ["neg", "abs", "square", "relu", "identity", "sign"],
    "bool": ["logical_not", "identity"],
}
COMPARISONS = ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]
BINARY = {
    "float": ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "floordiv", "floormod", *COMPARISONS],
    "int": ["add", "sub", "mul", "maximum", "minimum", "floordiv", "floormod", *COMPARISONS],
    "bool": ["logical_and", "logical_or", "equal", "not_equal"],
}


def test_the_generator_covers_the_ops_it_claims() -> None:
    named = {n for names in [*UNARY.values(), *BINARY.values()] for n in names}
    named |= {"where", "cast", "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "argmax", "argmin",
              "transpose", "reshape", "broadcast_to", "expand_dims", "squeeze", "slice", "concat", "matmul",
              "gather", "one_hot", "random_uniform", "random_normal", "cond", "while", "yield", "constant", "return"}
    assert named <= set(registry.OPS), sorted(named - set(registry.OPS))
    # A new elementwise op in the registry should join the generator the day it lands.
    assert {op.name for op in registry.elementwise()} <= named, sorted({op.name for op in registry.elementwise()} - named)


class RandomFunction:
    """Makes ops one at a time, each on values made earlier (recent ones preferred).

    Hypothesis draws the arguments (dtypes and shapes) and a seed; every other
    choice comes from a numpy generator on that seed, because Hypothesis leans
    towards the first and last entries of a list and the op mix should be even.
    Branches of `cond` and bodies of `while` are made the same way, one level deep.
    """

    def __init__(self, block: Block, rng: np.random.Generator, depth: int = 0):
        self.rng = rng
        self.depth = depth
        self.b = Builder.at_end(block)
        self.pool: list[Value] = list(block.args)
        self.made: list[Operation] = []

    def choice(self, options: list | tuple):  # noqa: ANN201
        options = list(options)
        return options[self.rng.integers(len(options))]

    def integer(self, low: int, high: int) -> int:
        """An int in [low, high]."""
        return int(self.rng.integers(low, high + 1))

    def flag(self, p: float = 0.5) -> bool:
        return bool(self.rng.random() < p)

    def dim(self) -> int:
        return self.choice([1, 2, 3, 2, 3, 0])

    def pick(self, accept: Callable[[Value], bool] = lambda v: True) -> Value | None:
        """A value from the pool, most often one of the last few (so patterns stack up)."""
        fits = [v for v in self.pool if accept(v)]
        if not fits:
            return None
        if self.flag(0.6):
            return fits[-1 - self.integer(0, min(3, len(fits) - 1))]
        return self.choice(fits)

    def op(self, name: str, operands: list[Value], **attributes: object) -> Value:
        op = self.b.create(name, operands, attributes)
        self.made.append(op)
        self.pool.extend(op.results)
        return op.results[0]

    # -- constants ---------------------------------------------------------------------

    def constant(self, dtype: DType, shape: tuple[int, ...]) -> Value:
        kind = self.choice(["zero", "negative zero", "one", "random", "special"])
        if dtype.is_bool:
            array = np.full(shape, kind != "zero") if kind != "random" else self.random_array(dtype, shape)
        elif kind == "random":
            array = self.random_array(dtype, shape)
        else:
            number = {"zero": 0.0, "negative zero": -0.0, "one": 1.0}.get(kind)
            if number is None:
                number = self.choice(SPECIAL_FLOATS) if dtype.is_float else self.choice([2, -1, 7, 2**31 - 1])
            number = number if dtype.is_float else int(number) % 2 ** (8 * dtype.itemsize)  # wrapped, as numpy would
            array = np.full(shape, number, dtype=dtype.np if dtype.is_float else np.uint64).astype(dtype.np)
        value = self.b.constant(np.asarray(array, dtype=dtype.np))
        self.pool.append(value)
        return value

    def random_array(self, dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
        return sample(self.rng, dtype, shape)

    # -- operands ----------------------------------------------------------------------

    def partner(self, x: Value) -> Value:
        """A second operand of x's dtype whose shape broadcasts with x's."""
        shape = x.type.shape
        how = self.choice(["x itself", "pool", "constant like x", "scalar constant", "ones in dims", "wider"])
        if how == "x itself":
            return x
        if how == "pool":
            found = self.pick(lambda v: v.type.dtype == x.type.dtype and broadcasts(v.type.shape, shape))
            if found is not None:
                return found
        if how == "scalar constant":
            return self.constant(x.type.dtype, ())
        if how == "ones in dims":
            return self.constant(x.type.dtype, tuple(1 if self.flag() else d for d in shape))
        if how == "wider":
            return self.constant(x.type.dtype, (self.dim(), *shape))
        return self.constant(x.type.dtype, shape)

    # -- ops ---------------------------------------------------------------------------

    def unary(self, x: Value) -> Value:
        return self.op(self.choice(UNARY[x.type.dtype.kind]), [x])

    def binary(self, x: Value) -> Value:
        y = self.partner(x)
        operands = [x, y] if self.flag(0.7) else [y, x]
        return self.op(self.choice(BINARY[x.type.dtype.kind]), operands)

    def where(self, x: Value) -> Value:
        y = self.partner(x)
        cond = self.pick(lambda v: v.type.dtype.is_bool and broadcasts(v.type.shape, x.type.shape))
        if cond is None or self.flag(0.4):
            cond = self.constant(bool_, () if self.flag() else x.type.shape)
        return self.op("where", [cond, x, y])

    def cast(self, x: Value) -> Value:
        return self.op("cast", [x], dtype=self.choice(DTYPES))

    def reduce(self, x: Value) -> Value | None:
        if x.type.dtype.is_bool:
            return None
        names = ["reduce_sum", "reduce_max", "reduce_min"] + (["reduce_mean"] if x.type.dtype.is_float else [])
        name = self.choice(names)
        rank = x.type.rank
        axes = [a for a in range(rank) if self.flag(0.4)]
        axes = [a - rank if self.flag(0.3) else a for a in axes]
        return self.op(name, [x], axes=tuple(axes), keepdims=self.flag())

    def arg_reduce(self, x: Value) -> Value | None:
        axes = [a for a, d in enumerate(x.type.shape) if d > 0]
        if x.type.dtype.is_bool or not axes:
            return None
        name = self.choice(["argmax", "argmin"])
        return self.op(name, [x], axis=self.choice(axes), dtype=self.choice([int32, int64]))

    def transpose(self, x: Value) -> Value:
        return self.op("transpose", [x], perm=tuple(int(p) for p in self.rng.permutation(x.type.rank)))

    def reshape(self, x: Value) -> Value:
        shape = x.type.shape
        size = int(np.prod(shape, dtype=np.int64))
        options = [shape, (size,), tuple(reversed(shape)), (1, *shape), (*shape, 1)]
        if len(shape) >= 2:
            options.append((shape[0] * shape[1], *shape[2:]))
        target = list(self.choice(options))
        if size > 0 and target and self.flag(0.4):
            target[self.integer(0, len(target) - 1)] = -1
        return self.op("reshape", [x], shape=tuple(target))

    def broadcast_to(self, x: Value) -> Value:
        lead = (self.dim(),) if self.flag(0.4) else ()
        target = lead + tuple(self.choice([1, 2, 3]) if d == 1 else d for d in x.type.shape)
        return self.op("broadcast_to", [x], shape=target)

    def expand_dims(self, x: Value) -> Value:
        rank = x.type.rank
        return self.op("expand_dims", [x], axis=self.integer(-rank - 1, rank))

    def squeeze(self, x: Value) -> Value | None:
        ones = [a for a, d in enumerate(x.type.shape) if d == 1]
        if not ones:
            return None
        axes = [a for a in ones if self.flag()] or ones[:1]
        return self.op("squeeze", [x], axes=tuple(axes))

    def slice(self, x: Value) -> Value:
        begin, end, strides, squeeze = [], [], [], []
        for axis, d in enumerate(x.type.shape):
            how = self.choice(["whole", "range", "index"] if d > 0 else ["whole", "range"])
            if how == "whole":
                begin.append(0), end.append(None), strides.append(1)
            elif how == "range":
                begin.append(self.integer(-d - 1, d + 1))
                end.append(None if self.flag(0.3) else self.integer(-d - 1, d + 1))
                strides.append(self.choice([1, 2, -1, -2]))
            else:
                begin.append(self.integer(-d, d - 1)), end.append(None), strides.append(1)
                squeeze.append(axis)
        return self.op("slice", [x], begin=tuple(begin), end=tuple(end), strides=tuple(strides),
                       squeeze_dims=tuple(squeeze))

    def concat(self, x: Value) -> Value | None:
        if x.type.rank == 0:
            return None
        axis = self.integer(0, x.type.rank - 1)
        others = []
        for _ in range(self.integer(0, 2)):
            other = self.pick(lambda v: v.type.dtype == x.type.dtype and v.type.rank == x.type.rank and all(
                a == axis or d == e for a, (d, e) in enumerate(zip(v.type.shape, x.type.shape))))
            others.append(other if other is not None and self.flag(0.7) else x)
        return self.op("concat", [x, *others], axis=axis - x.type.rank if self.flag(0.3) else axis)

    def matmul(self, x: Value) -> Value | None:
        if x.type.rank < 2 or x.type.dtype.is_bool or x.type.dtype.itemsize == 1:  # TF1's MatMul takes no int8
            return None
        transpose_a, transpose_b = self.flag(0.3), self.flag(0.3)
        inner = x.type.shape[-2] if transpose_a else x.type.shape[-1]
        columns = self.dim()
        want = (columns, inner) if transpose_b else (inner, columns)
        y = self.pick(lambda v: v.type.dtype == x.type.dtype and v.type.shape == want)
        if y is None or self.flag(0.3):
            y = self.constant(x.type.dtype, want)
        return self.op("matmul", [x, y], transpose_a=transpose_a, transpose_b=transpose_b)

    def gather(self, x: Value) -> Value | None:
        if x.type.rank == 0:
            return None
        axis = self.integer(0, x.type.rank - 1)
        size = x.type.shape[axis]
        shape = tuple(self.dim() for _ in range(self.integer(0, 2))) if size else (0,)
        index_dtype = self.choice(["int32", "int64", "uint8"])  # every size drawn here fits uint8
        indices = self.b.constant(self.rng.integers(0, max(size, 1), shape).astype(index_dtype))
        return self.op("gather", [x, indices], axis=axis - x.type.rank if self.flag(0.3) else axis)

    def one_hot(self, x: Value) -> Value | None:
        if not x.type.dtype.is_int:
            return None
        return self.op("one_hot", [x], depth=self.integer(0, 4), axis=self.integer(-x.type.rank - 1, x.type.rank),
                       dtype=self.choice(NUMERIC), on_value=self.choice([1.0, -0.0, 2.5]), off_value=0.0)

    def random(self, x: Value) -> Value:
        """A random op on a constant run counter: never folded; two with one seed are merged."""
        step = self.b.constant(np.int64(self.choice([0, 1])))
        name = self.choice(["random_uniform", "random_normal"])
        return self.op(name, [step], shape=x.type.shape, seed=self.choice([1, 2]), dtype=self.choice(FLOATS))

    def region_body(self, args: list[Value], yielded_types: list) -> Callable[..., list[Value]]:
        """A branch or loop body: a few random ops on its arguments, yielding values of `yielded_types`."""

        def body(b: Builder, *block_args: Value) -> list[Value]:
            inner = RandomFunction(b.block, self.rng, self.depth + 1)
            for _ in range(self.integer(0, 6)):
                inner.step()
            return [inner.pick(lambda v, t=t: v.type == t) or block_args[0] for t in yielded_types]

        return body

    def cond(self, x: Value) -> Value | None:
        if self.depth:
            return None
        pred = self.pick(lambda v: v.type == TensorType(bool_, ()))
        if pred is None or self.flag(0.3):
            pred = self.constant(bool_, ())
        types = [x.type]
        results = build_cond(self.b, pred, [x], self.region_body([x], types), self.region_body([x], types))
        self.made.append(results[0].op)
        self.pool.extend(results)
        return results[0]

    def while_loop(self, x: Value) -> Value | None:
        """`while k > 0: k -= 1; x = body(x)`, from k = 0, 1 or 2."""
        if self.depth:
            return None
        count = self.b.constant(np.int32(self.integer(0, 2)))

        def condition(b: Builder, k: Value, v: Value) -> Value:
            return b.greater(k, b.constant(np.int32(0)))

        def body(b: Builder, k: Value, v: Value) -> list[Value]:
            (new_v,) = self.region_body([v], [v.type])(b, v)
            return [b.sub(k, b.constant(np.int32(1))), new_v]

        results = build_while(self.b, [count, x], condition, body)
        self.made.append(results[0].op)
        self.pool.append(results[1])
        return results[1]

    def duplicate(self) -> Value | None:
        """The same op again: same name, operands and attributes (what CSE merges)."""
        candidates = [op for op in self.made if not op.regions]
        if not candidates:
            return None
        op = self.choice(candidates)
        return self.op(op.name, list(op.operands), **op.attributes)

    def undo(self) -> Value | None:
        """An op on the last op's result that may undo it: neg of neg, squeeze of expand_dims, ..."""
        if not self.made:
            return None
        last = self.made[-1]
        x = last.results[0]
        if last.name in ("neg", "logical_not"):
            return self.op(last.name, [x])
        if last.name == "transpose":
            return self.transpose(x)
        if last.name == "reshape":
            return self.reshape(x)
        if last.name == "expand_dims":
            return self.op("squeeze", [x], axes=(self.choice([last.axis, last.axis % x.type.rank]),))
        return self.op("logical_not" if x.type.dtype.is_bool else "neg", [x])

    def step(self) -> None:
        kind = self.choice(["unary"] * 3 + ["binary"] * 6 + ["duplicate"] * 2 + ["undo"] * 2 + [
            "where", "cast", "reduce", "arg_reduce", "transpose", "reshape", "broadcast_to", "expand_dims",
            "squeeze", "slice", "concat", "matmul", "gather", "one_hot", "random", "cond", "while_loop"])
        if kind in ("duplicate", "undo"):
            getattr(self, kind)()
            return
        x = self.pick()
        if x is not None:
            getattr(self, kind)(x)


def broadcasts(small: tuple, big: tuple) -> bool:
    """Whether `small` broadcasts against `big` without growing it."""
    if len(small) > len(big):
        return False
    return all(d in (1, e) for d, e in zip(reversed(small), reversed(big)))


def sample(rng: np.random.Generator, dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    """Inputs with the values that tell rewrites apart: -0.0, inf, NaN, extremes."""
    if dtype.is_bool:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.is_int:
        array = np.asarray(rng.integers(-4, 5, shape), dtype=dtype.np)
        extreme = rng.random(shape) < 0.1
        info = np.iinfo(dtype.np)
        array[extreme] = rng.choice([info.min, info.max], size=int(extreme.sum()))
        return array
    array = np.asarray(rng.standard_normal(shape) * 3, dtype=dtype.np)
    special = rng.random(shape) < 0.3
    array[special] = rng.choice(SPECIAL_FLOATS, size=int(special.sum()))
    return array


def random_module(data: st.DataObject) -> tuple[Module, list[np.ndarray]]:
    arg_types = []
    for _ in range(data.draw(st.integers(1, 3))):
        dtype = data.draw(st.sampled_from(DTYPES))
        arg_types.append((dtype, tuple(data.draw(st.lists(DIMS, max_size=3)))))
    types = [TensorType(d, s) for d, s in arg_types]
    function = Function("f", types, [], [f"x{i}" for i in range(len(types))])
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    maker = RandomFunction(function.entry, rng)
    for _ in range(maker.integer(1, 30)):
        maker.step()
    results = [maker.pick() for _ in range(maker.integer(1, 3))]
    function.result_types = [v.type for v in results]
    maker.b.create("return", results)
    args = [sample(maker.rng, t.dtype, t.shape) for t in types]
    return Module([function]), args


def assert_same_bits(before: list[np.ndarray], after: list[np.ndarray], context: str) -> None:
    assert len(before) == len(after)
    for index, (want, got) in enumerate(zip(before, after)):
        where = f"result {index}\n{context}"
        assert got.dtype == want.dtype and got.shape == want.shape, where
        if want.dtype.kind == "f":
            nan = np.isnan(want)
            np.testing.assert_array_equal(np.isnan(got), nan, err_msg=where)
            bits = np.dtype(f"u{want.dtype.itemsize}")
            # Bits, so -0.0 and 0.0 differ: assert_array_equal alone would call them equal.
            np.testing.assert_array_equal(got[~nan].view(bits), want[~nan].view(bits), err_msg=where)
        else:
            np.testing.assert_array_equal(got, want, err_msg=where)


CLEANUPS = ["canonicalize", "fold", "simplify", "cse", "dce"]  # the passes of the default pipeline, alone
PROPERTY = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(st.data())
def test_pipeline_keeps_reference_results(data: st.DataObject) -> None:
    module, args = random_module(data)
    verify(module)
    source = print_module(module)
    before = evaluate(module["f"], args)
    optimize(module, verify_each=True)
    context = f"--- before:\n{source}--- after:\n{print_module(module)}"
    assert_same_bits(before, evaluate(module["f"], args), context)
    # The pipeline ends at a fixed point: a second run finds nothing to do.
    assert optimize(module, verify_each=True).changed is False, context


@PROPERTY
@given(st.data())
def test_any_pass_sequence_keeps_reference_results(data: st.DataObject) -> None:
    module, args = random_module(data)
    names = data.draw(st.lists(st.sampled_from(CLEANUPS), min_size=1, max_size=4))
    source = print_module(module)
    before = evaluate(module["f"], args)
    PassManager(passes_by_name(names), verify_each=True).run(module)
    context = f"--- passes {','.join(names)}; before:\n{source}--- after:\n{print_module(module)}"
    assert_same_bits(before, evaluate(module["f"], args), context)
