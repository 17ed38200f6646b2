"""The seeded generator: a random graph, as a GraphSpec, from one seed.

Shapes are tracked symbolically (dims.py), and an op only combines operands
whose shapes agree by the documented semantics: an unknown dim meets the
same dim or a static 1, never another unknown one. Ops that make new unknown
dims (strided slices, concats, reshapes, gathers with indices of another
symbol) are drawn often, and later ops pick recent values, so kernels that mix
several unknown dims are common: that is where loop extents go wrong.

Elementwise ops come from the IR registry, with the dtypes it declares.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import flowc as fc
from flowc.ir import registry

from . import dims
from .dims import Dim, Shape, Sym
from .spec import EXACT, F32, Case, GraphSpec, Input, OpRecord, Value, rounding_of

FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
NUMERIC = FLOATS + INTS
DTYPES = NUMERIC + ("bool",)

FRONT_END = {"neg": "negative", "sub": "subtract", "mul": "multiply", "div": "divide"}  # IR name -> fc function
# README: these are vectorized approximations on cpu (a few ulp), not correctly rounded.
APPROXIMATE = {"exp", "log", "tanh", "sigmoid", "rsqrt", "pow"}
NEAR_ZERO_AMPLIFIES = {"log", "rsqrt"}  # an inexact operand near 0 would blow its few ulp up

# Sizes fed to the symbols: 0 and 1 often, odd sizes, and a few big enough for the thread pool.
SIZES = [0, 1, 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33, 64, 100, 257, 1000, 2049]
SIZE_WEIGHTS = [8, 14, 4, 8, 8, 5, 8, 6, 4, 4, 5, 4, 4, 3, 3, 3, 3, 2, 2, 1]
MAX_ELEMENTS = 60_000  # per value, so the reference stays quick


@dataclass(frozen=True)
class Config:
    max_ops: int = 10
    runs: int = 2  # size assignments per graph (one compile serves them all)
    gradient_rate: float = 0.5


def elementwise_ops() -> tuple[list, list, list]:
    """(unary, binary, comparison) registry ops that the front end spells as fc.<function>(...)."""
    unary, binary, comparison = [], [], []
    for op in registry.elementwise():
        if op.attrs or op.num_operands not in (1, 2) or not hasattr(fc, FRONT_END.get(op.name, op.name)):
            continue  # cast and where have their own records
        if op.num_operands == 1:
            unary.append(op)
        elif op.result_dtype is not None and op.result_dtype.name == "bool":
            comparison.append(op)
        else:
            binary.append(op)
    return unary, binary, comparison


UNARY, BINARY, COMPARISON = elementwise_ops()


def function(op: type) -> str:
    return FRONT_END.get(op.name, op.name)


def dtypes_of(op: type) -> tuple[str, ...]:
    return tuple(d.name for d in op.dtypes)


def broadcast_shape(*shapes: Shape) -> Shape | None:
    """The broadcast of `shapes` (numpy's rule, right-aligned), or None where they must not meet."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out: list[Dim] = []
    for column in zip(*padded):
        dim: Dim | None = column[0]
        for other in column[1:]:
            dim = dims.broadcast(dim, other) if dim is not None else None
        if dim is None:
            return None
        out.append(dim)
    return tuple(out)


class Generator:
    def __init__(self, seed: int, config: Config):
        self.random = random.Random(seed)
        self.config = config
        self.symbols = ["a", "b", "c"][: self.random.choice([2, 2, 3])]
        self.inputs: list[Input] = []
        self.ops: list[OpRecord] = []
        self.pool: list[Value] = []
        self.count = 0

    # -- names, picks --------------------------------------------------------

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def chance(self, p: float) -> bool:
        return self.random.random() < p

    def pick(self, accept: Callable[[Value], bool]) -> Value | None:
        """A value of the pool that `accept`s, recent ones likelier (so new dims meet old values)."""
        candidates = [(i, v) for i, v in enumerate(self.pool) if accept(v)]
        if not candidates:
            return None
        weights = [(1 + i) ** 1.5 for i, _ in candidates]
        return self.random.choices([v for _, v in candidates], weights)[0]

    def add(self, record: str, operands: list[Value], result_dtype: str, result_shape: Shape, error: int,
            guard: bool = False, **attrs: object) -> Value:
        value = Value(self.name("v"), result_dtype, tuple(result_shape), error)
        self.ops.append(OpRecord(value, record, [a.name for a in operands], dict(attrs), guard))
        self.pool.append(value)
        return value

    # -- inputs ----------------------------------------------------------------

    def random_dim(self) -> Dim:
        roll = self.random.random()
        if roll < 0.5:
            return dims.symbol(self.random.choice(self.symbols))
        if roll < 0.7:
            return 1
        return self.random.randint(2, 5)

    def fresh_shape(self) -> Shape:
        rank = self.random.choices([0, 1, 2, 3], [1, 4, 4, 2])[0]
        return tuple(self.random_dim() for _ in range(rank))

    def variant(self, shape: Shape) -> Shape:
        """A shape that broadcasts with `shape`: dims kept, made 1, or dropped from the left."""
        out = [d if self.chance(0.7) else 1 for d in shape]
        while out and self.chance(0.2):
            out.pop(0)
        return tuple(out)

    def add_input(self, dtype: str, shape: Shape, indexes: Dim | None = None) -> Value:
        value = Value(self.name("x" if indexes is None else "i"), dtype, tuple(shape), EXACT)
        self.inputs.append(Input(value, indexes))
        self.pool.append(value)
        return value

    def make_inputs(self) -> None:
        for _ in range(self.random.randint(2, 4)):
            data = [i.value for i in self.inputs]
            shape = self.variant(self.random.choice(data).shape) if data and self.chance(0.6) else self.fresh_shape()
            dtype = self.random.choices(DTYPES, [10, 3, 3, 2, 2])[0]
            self.add_input(dtype, shape)
        used = {atom for i in self.inputs for d in i.value.shape if isinstance(d, Sym) for atom in d.atoms}
        for missing in [s for s in self.symbols if s not in used][: max(0, 2 - len(used))]:
            self.add_input("float32", (dims.symbol(missing),) + tuple(self.random_dim() for _ in range(
                self.random.randint(0, 1))))
        if not any(i.value.is_float for i in self.inputs):
            self.add_input("float32", self.variant(self.inputs[0].value.shape))

    # -- ops -----------------------------------------------------------------------

    def positive(self, value: Value) -> Value:
        """|x| + 1 for an inexact x headed for a division, log or rsqrt."""
        if value.error == EXACT:
            return value
        return self.add("positive", [value], value.dtype, value.shape, value.error, guard=True)

    def scalar(self, dtype: str) -> str:
        if dtype in FLOATS:
            return self.random.choice(["0.5", "2.0", "-1.5", "0.0", "3.0", "-0.0", "1e-3"])
        return self.random.choice(["0", "1", "-2", "3"])

    def op_unary(self) -> bool:
        op = self.random.choice(UNARY)
        x = self.pick(lambda v: v.dtype in dtypes_of(op))
        if x is None:
            return False
        if op.name in NEAR_ZERO_AMPLIFIES:
            x = self.positive(x)
        error = max(x.error, rounding_of(x.dtype)) if op.name in APPROXIMATE else x.error
        self.add("unary", [x], x.dtype, x.shape, error, function=function(op))
        return True

    def partner(self, x: Value, exact: bool) -> Value | None:
        """Another value that may meet x elementwise: its dtype, a shape that broadcasts with x's."""
        return self.pick(lambda v: v.dtype == x.dtype and (v.error == EXACT or not exact)
                         and broadcast_shape(x.shape, v.shape) is not None)

    def op_binary(self, ops: list, comparison: bool = False) -> bool:
        op = self.random.choice(ops)
        x = self.pick(lambda v: v.dtype in dtypes_of(op) and (v.error == EXACT or not comparison))
        if x is None:
            return False
        result_dtype = "bool" if comparison else x.dtype
        y = None if self.chance(0.2) else self.partner(x, comparison)
        approximate = op.name in APPROXIMATE
        if y is None and x.dtype != "bool":  # a Python number takes x's dtype
            swapped = self.chance(0.3)
            if op.name == "div" and swapped or op.name == "pow" and not swapped:
                x = self.positive(x)
            if op.name == "pow" and swapped and x.error != EXACT:
                x = self.add("bounded", [x], x.dtype, x.shape, x.error, guard=True)
            error = max(x.error, rounding_of(x.dtype)) if approximate else x.error
            self.add("scalar_binary" if swapped else "binary_scalar", [x], result_dtype, x.shape,
                     EXACT if comparison else error, function=function(op), scalar=self.scalar(x.dtype))
            return True
        y = y or x
        if op.name == "div":
            y = self.positive(y)
        if op.name == "pow":
            x = self.positive(x)
            if y.error != EXACT:
                y = self.add("bounded", [y], y.dtype, y.shape, y.error, guard=True)
        shape = broadcast_shape(x.shape, y.shape)
        error = max(x.error, y.error, rounding_of(x.dtype) if approximate else EXACT)
        self.add("binary", [x, y], result_dtype, shape, EXACT if comparison else error, function=function(op))
        return True

    def op_compare(self) -> bool:
        return self.op_binary(COMPARISON, comparison=True)

    def op_where(self) -> bool:
        condition = self.pick(lambda v: v.dtype == "bool")
        if condition is None:
            if not self.op_compare():
                return False
            condition = self.pool[-1]
        x = self.pick(lambda v: broadcast_shape(condition.shape, v.shape) is not None)
        if x is None:
            return False
        both = broadcast_shape(condition.shape, x.shape)
        y = None if self.chance(0.25) or x.dtype == "bool" and self.chance(0.5) else self.pick(
            lambda v: v.dtype == x.dtype and broadcast_shape(both, v.shape) is not None)
        if y is None:
            if x.dtype == "bool":
                y = x
            else:
                self.add("where_scalar", [condition, x], x.dtype, both, x.error, scalar=self.scalar(x.dtype))
                return True
        self.add("where", [condition, x, y], x.dtype, broadcast_shape(both, y.shape), max(x.error, y.error))
        return True

    def op_cast(self) -> bool:
        x = self.pick(lambda v: True)
        assert x is not None
        target = self.random.choice([d for d in DTYPES if d != x.dtype])
        if x.is_float and target not in FLOATS:
            if x.error != EXACT:
                return False  # a last-bit difference could flip the truncation or the != 0
            record = "cast_in_range" if target in INTS else "cast"
            self.add(record, [x], target, x.shape, EXACT, dtype=target)
            return True
        error = x.error
        if target == "float32" and error != EXACT:
            error = F32
        self.add("cast", [x], target, x.shape, error, dtype=target)
        return True

    def axes(self, rank: int) -> tuple[object, list[int]]:
        """An `axis` argument (None, an int, possibly negative, or a list) and the axes it names."""
        if rank == 0 or self.chance(0.15):
            return None, list(range(rank))
        chosen = sorted(self.random.sample(range(rank), self.random.randint(1, rank)))
        if len(chosen) == 1:
            axis = chosen[0] - rank if self.chance(0.3) else chosen[0]
            return axis, chosen
        return chosen, chosen

    def op_reduce(self) -> bool:
        function = self.random.choice(["reduce_sum", "reduce_mean", "reduce_max", "reduce_min"])
        allowed = FLOATS if function == "reduce_mean" else NUMERIC
        x = self.pick(lambda v: v.dtype in allowed and v.shape != ())
        if x is None:
            return False
        axis, chosen = self.axes(len(x.shape))
        keepdims = self.chance(0.5)
        shape = tuple(1 if i in chosen else d for i, d in enumerate(x.shape) if keepdims or i not in chosen)
        sums = function in ("reduce_sum", "reduce_mean") and x.is_float
        error = max(x.error, rounding_of(x.dtype)) if sums else x.error
        self.add("reduce", [x], x.dtype, shape, error, function=function, axis=axis, keepdims=keepdims)
        return True

    def op_arg_reduce(self) -> bool:
        x = self.pick(lambda v: v.dtype in NUMERIC and v.error == EXACT and v.shape != ())
        if x is None:
            return False
        rank = len(x.shape)
        axis = self.random.randrange(-rank, rank)
        shape = tuple(d for i, d in enumerate(x.shape) if i != axis % rank)
        dtype = self.random.choice(INTS)
        self.add("arg_reduce", [x], dtype, shape, EXACT, function=self.random.choice(["argmax", "argmin"]),
                 axis=axis, dtype=dtype)
        return True

    def op_matmul(self) -> bool:
        x = self.pick(lambda v: v.dtype in NUMERIC and len(v.shape) >= 2)
        if x is None:
            return False
        transpose_a, transpose_b = self.chance(0.3), self.chance(0.3)
        rows, inner = (x.shape[-1], x.shape[-2]) if transpose_a else (x.shape[-2], x.shape[-1])

        def fits(v: Value) -> bool:
            if v.dtype != x.dtype or len(v.shape) < 2:
                return False
            v_inner = v.shape[-1] if transpose_b else v.shape[-2]
            return v_inner == inner and broadcast_shape(x.shape[:-2], v.shape[:-2]) is not None

        y = self.pick(fits)
        if y is None:  # x @ x^T always fits
            y, transpose_b = x, not transpose_a
        columns = y.shape[-2] if transpose_b else y.shape[-1]
        batch = broadcast_shape(x.shape[:-2], y.shape[:-2])
        error = max(x.error, y.error, rounding_of(x.dtype)) if x.is_float else EXACT
        self.add("matmul", [x, y], x.dtype, batch + (rows, columns), error, transpose_a=transpose_a,
                 transpose_b=transpose_b)
        return True

    def op_reshape(self) -> bool:
        x = self.pick(lambda v: len(v.shape) <= 3)
        assert x is not None
        size = dims.product(list(x.shape))
        coef = size if isinstance(size, int) else size.coef
        statics: list[int] = []
        for _ in range(self.random.randint(0, 2)):
            known = 1
            for s in statics:
                known *= s
            divisors = [d for d in range(1, coef + 1) if coef % (known * d) == 0] if coef else [1]
            statics.append(self.random.choice(divisors))
        known = 1
        for s in statics:
            known *= s
        rest = dims.divide(size, known) if known else None
        if rest is None:
            return False
        at = self.random.randint(0, len(statics))
        if isinstance(size, int) and self.chance(0.3):
            target, shape = statics[:at] + [rest] + statics[at:], statics[:at] + [rest] + statics[at:]
        else:
            target, shape = statics[:at] + [-1] + statics[at:], statics[:at] + [rest] + statics[at:]
        self.add("reshape", [x], x.dtype, tuple(shape), x.error, shape=target)
        return True

    def op_transpose(self) -> bool:
        x = self.pick(lambda v: len(v.shape) >= 2)
        if x is None:
            return False
        perm = list(range(len(x.shape)))
        while perm == sorted(perm):
            self.random.shuffle(perm)
        self.add("transpose", [x], x.dtype, tuple(x.shape[p] for p in perm), x.error, perm=perm)
        return True

    def op_concat(self) -> bool:
        x = self.pick(lambda v: len(v.shape) >= 1)
        if x is None:
            return False
        rank = len(x.shape)
        axis = self.random.randrange(rank)

        def fits(v: Value) -> bool:
            return (v.dtype == x.dtype and len(v.shape) == rank
                    and all(v.shape[i] == x.shape[i] for i in range(rank) if i != axis))

        parts = [x] + [self.pick(fits) or x for _ in range(self.random.choice([1, 1, 2]))]
        self.random.shuffle(parts)
        shape = list(x.shape)
        shape[axis] = dims.total([p.shape[axis] for p in parts])
        written = axis - rank if self.chance(0.3) else axis
        self.add("concat", parts, x.dtype, tuple(shape), max(p.error for p in parts), axis=written)
        return True

    def op_stack(self) -> bool:
        x = self.pick(lambda v: len(v.shape) <= 3)
        assert x is not None
        parts = [x, self.pick(lambda v: v.dtype == x.dtype and v.shape == x.shape) or x]
        axis = self.random.randint(0, len(x.shape))
        shape = x.shape[:axis] + (2,) + x.shape[axis:]
        self.add("stack", parts, x.dtype, shape, max(p.error for p in parts), axis=axis)
        return True

    def op_expand_dims(self) -> bool:
        x = self.pick(lambda v: len(v.shape) <= 3)
        assert x is not None
        rank = len(x.shape)
        axis = self.random.randint(-rank - 1, rank)
        shape = list(x.shape)
        shape.insert(axis % (rank + 1), 1)
        self.add("expand_dims", [x], x.dtype, tuple(shape), x.error, axis=axis)
        return True

    def op_squeeze(self) -> bool:
        x = self.pick(lambda v: 1 in v.shape)
        if x is None:
            return False
        ones = [i for i, d in enumerate(x.shape) if d == 1]
        axes = sorted(self.random.sample(ones, self.random.randint(1, len(ones))))
        self.add("squeeze", [x], x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes), x.error,
                 axes=axes)
        return True

    def op_broadcast_to(self) -> bool:
        x = self.pick(lambda v: all(dims.is_static(d) for d in v.shape) and len(v.shape) <= 3)
        if x is None:
            return False
        target = [self.random.randint(1, 4) if d == 1 else d for d in x.shape]
        target = [self.random.randint(1, 3) for _ in range(self.random.randint(0, 1))] + target
        if tuple(target) == x.shape:
            return False
        self.add("broadcast_to", [x], x.dtype, tuple(target), x.error, shape=target)
        return True

    def slice_item(self, dim: Dim) -> tuple[str, Dim | None]:
        """One index item for `dim` and the dim it leaves (None: the dim is indexed away)."""
        roll = self.random.random()
        if roll < 0.35:
            return ":", dim
        if roll < 0.5 and (not isinstance(dim, int) or dim > 0):
            index = self.random.choice([0, -1]) if not isinstance(dim, int) else self.random.randrange(-dim, dim)
            return str(index), None
        step = self.random.choice([1, 2, 2, 3, -1, -2])
        start = self.random.choice([None, None, 0, 1, 2, -1, -2])
        stop = self.random.choice([None, None, None, 1, 3, -1])
        text = ("" if start is None else str(start)) + ":" + ("" if stop is None else str(stop))
        text += "" if step == 1 else f":{step}"
        return text, dims.sliced(dim, start, stop, step)

    def op_slice(self) -> bool:
        x = self.pick(lambda v: len(v.shape) >= 1)
        if x is None:
            return False
        items = [self.slice_item(d) for d in x.shape]
        while items and items[-1][0] == ":" and self.chance(0.7):
            items.pop()  # x[1:] rather than x[1:, :]
        if all(text == ":" for text, _ in items):
            return False
        shape = tuple(d for _, d in items if d is not None) + x.shape[len(items):]
        index = ", ".join(text for text, _ in items)
        self.add("slice", [x], x.dtype, shape, x.error, index=index)
        return True

    def op_gather(self) -> bool:
        params = self.pick(lambda v: len(v.shape) >= 1)
        if params is None:
            return False
        axis = self.random.randrange(len(params.shape))
        bound = params.shape[axis]
        indices = self.pick(lambda v: any(i.value is v and i.indexes == bound for i in self.inputs))
        if indices is None or self.chance(0.5):
            others = [s for s in self.symbols if dims.symbol(s) != bound]
            rank = self.random.choices([0, 1, 2], [1, 4, 2])[0]
            shape = tuple(dims.symbol(self.random.choice(others)) if self.chance(0.6) else self.random.randint(1, 4)
                          for _ in range(rank))
            indices = self.add_input(self.random.choice(INTS), shape, indexes=bound)
        shape = params.shape[:axis] + indices.shape + params.shape[axis + 1:]
        written = axis - len(params.shape) if self.chance(0.3) else axis
        self.add("gather", [params, indices], params.dtype, shape, params.error, axis=written)
        return True

    def op_one_hot(self) -> bool:
        x = self.pick(lambda v: v.dtype in INTS and len(v.shape) <= 3)
        if x is None:
            return False
        dtype = self.random.choice(["float32", "float64", "int32"])
        depth = self.random.randint(1, 4)
        self.add("one_hot", [x], dtype, x.shape + (depth,), EXACT, depth=depth, dtype=dtype)
        return True

    def op_softmax(self) -> bool:
        x = self.pick(lambda v: v.is_float and len(v.shape) >= 1)
        if x is None:
            return False
        axis = self.random.randrange(-len(x.shape), len(x.shape))
        self.add("softmax", [x], x.dtype, x.shape, max(x.error, rounding_of(x.dtype)),
                 function=self.random.choice(["softmax", "log_softmax"]), axis=axis)
        return True

    # -- the graph -------------------------------------------------------------------

    def step(self) -> None:
        makers = [
            (self.op_unary, 10), (lambda: self.op_binary(BINARY), 18), (self.op_compare, 4), (self.op_where, 5),
            (self.op_cast, 4), (self.op_reduce, 16), (self.op_arg_reduce, 3), (self.op_matmul, 5),
            (self.op_reshape, 5), (self.op_transpose, 4), (self.op_concat, 7), (self.op_stack, 2),
            (self.op_expand_dims, 4), (self.op_squeeze, 2), (self.op_broadcast_to, 2), (self.op_slice, 12),
            (self.op_gather, 6), (self.op_one_hot, 2), (self.op_softmax, 4),
        ]
        for _ in range(20):
            maker = self.random.choices([m for m, _ in makers], [w for _, w in makers])[0]
            if maker():
                return

    def outputs(self) -> list[str]:
        if not self.ops:
            return []
        used = {name for r in self.ops for name in r.args}
        leaves = [r.result.name for r in self.ops if r.result.name not in used]
        chosen = [self.ops[-1].result.name]
        for _ in range(self.random.randint(0, 2)):
            source = leaves if leaves and self.chance(0.7) else [r.result.name for r in self.ops]
            chosen.append(self.random.choice(source))
        return list(dict.fromkeys(chosen))

    def graph(self) -> GraphSpec:
        self.make_inputs()
        for _ in range(self.random.randint(2, self.config.max_ops)):
            self.step()
        outputs = self.outputs()
        if not outputs:
            self.op_unary() or self.op_cast()
            outputs = self.outputs()
        spec = GraphSpec(self.symbols, self.inputs, self.ops, outputs)
        spec.gradients = self.chance(self.config.gradient_rate) and any(
            spec.value(name).is_float for name in outputs)
        return spec

    def sizes(self, spec: GraphSpec) -> dict[str, int]:
        """Sizes for the symbols that keep every value under MAX_ELEMENTS."""
        for attempt in range(12):
            pool = SIZES if attempt < 8 else [0, 1, 2, 3]
            sizes = {s: self.random.choices(pool, SIZE_WEIGHTS[: len(pool)])[0] for s in spec.symbols}
            if all(count(v.shape, sizes) <= MAX_ELEMENTS for v in all_values(spec)):
                return sizes
        return {s: 1 for s in spec.symbols}


def count(shape: Shape, sizes: dict[str, int]) -> int:
    total = 1
    for d in shape:
        total *= dims.evaluate(d, sizes)
    return total


def all_values(spec: GraphSpec) -> list[Value]:
    return [i.value for i in spec.inputs] + [r.result for r in spec.ops]


def make_case(seed: int, config: Config = Config()) -> Case:
    """The case of `seed`: the same graph, sizes and data every time."""
    generator = Generator(seed, config)
    spec = generator.graph()
    sizes = [generator.sizes(spec) for _ in range(config.runs)]
    return Case(seed, spec, sizes, specials=generator.chance(0.6))
