"""Draws of computing ops: elementwise (from the registry), where, cast, reductions, matmul, softmax.

Each tracks the result's `error` (spec.py): only EXACT values reach ops that
jump (comparisons, casts to integers, argmax), and an inexact value headed for
a division, log, rsqrt or pow goes through a guard record first.
"""

from __future__ import annotations

from .dims import broadcast_shapes
from .draws import Draws
from .kinds import (
    APPROXIMATE,
    BINARY,
    COMPARISON,
    DTYPES,
    FLOATS,
    INTS,
    JUMPS,
    NEAR_ZERO_AMPLIFIES,
    NUMERIC,
    TRIGONOMETRIC,
    UNARY,
    dtypes_of,
    function,
)
from .spec import EXACT, F32, Value, rounding_of


class MathDraws(Draws):
    def op_unary(self) -> bool:
        op = self.random.choice(UNARY)
        x = self.pick(lambda v: v.dtype in dtypes_of(op) and (v.error == EXACT or op.name not in JUMPS))
        if x is None:
            return False
        if op.name in NEAR_ZERO_AMPLIFIES:
            x = self.positive(x)
        if op.name in TRIGONOMETRIC:
            x = self.add("trig_range", [x], x.dtype, x.shape, x.error, guard=True)
        error = max(x.error, rounding_of(x.dtype)) if op.name in APPROXIMATE else x.error
        self.add("unary", [x], x.dtype, x.shape, error, function=function(op))
        return True

    def partner(self, x: Value, exact: bool) -> Value | None:
        """Another value that may meet x elementwise: its dtype, a shape that broadcasts with x's."""
        return self.pick(lambda v: v.dtype == x.dtype and (v.error == EXACT or not exact)
                         and broadcast_shapes(x.shape, v.shape) is not None)

    def op_binary(self, ops: list, comparison: bool = False) -> bool:
        op = self.random.choice(ops)
        exact = comparison or op.name in JUMPS
        x = self.pick(lambda v: v.dtype in dtypes_of(op) and (v.error == EXACT or not exact))
        if x is None:
            return False
        result_dtype = "bool" if comparison else x.dtype
        y = None if self.chance(0.2) else self.partner(x, exact)
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
            # A negative base makes pow jump (a number, or NaN) where an inexact exponent's last bit
            # makes it an integer or not: tanh(9.6) is 1 on cpu, 0.99999994 in numpy (seeds 4388, 6941).
            x = self.positive(x, always=y.error != EXACT)
            if y.error != EXACT:
                y = self.add("bounded", [y], y.dtype, y.shape, y.error, guard=True)
        shape = broadcast_shapes(x.shape, y.shape)
        error = max(x.error, y.error, rounding_of(x.dtype) if approximate else EXACT)
        self.add("binary", [x, y], result_dtype, shape, EXACT if comparison else error, function=function(op))
        return True

    def op_arithmetic(self) -> bool:
        return self.op_binary(BINARY)

    def op_compare(self) -> bool:
        return self.op_binary(COMPARISON, comparison=True)

    def op_where(self) -> bool:
        condition = self.pick(lambda v: v.dtype == "bool")
        if condition is None:
            if not self.op_compare():
                return False
            condition = self.pool[-1]
        x = self.pick(lambda v: broadcast_shapes(condition.shape, v.shape) is not None)
        if x is None:
            return False
        both = broadcast_shapes(condition.shape, x.shape)
        y = None if self.chance(0.25) or x.dtype == "bool" and self.chance(0.5) else self.pick(
            lambda v: v.dtype == x.dtype and broadcast_shapes(both, v.shape) is not None)
        if y is None:
            if x.dtype == "bool":
                y = x
            else:
                self.add("where_scalar", [condition, x], x.dtype, both, x.error, scalar=self.scalar(x.dtype))
                return True
        self.add("where", [condition, x, y], x.dtype, broadcast_shapes(both, y.shape), max(x.error, y.error))
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
        return self.reduce(keepdims=self.chance(0.5)) is not None

    def reduce(self, keepdims: bool) -> Value | None:
        function = self.random.choice(["reduce_sum", "reduce_mean", "reduce_max", "reduce_min"])
        allowed = FLOATS if function == "reduce_mean" else NUMERIC
        x = self.pick(lambda v: v.dtype in allowed and v.shape != ())
        if x is None:
            return None
        axis, chosen = self.axes(len(x.shape))
        shape = tuple(1 if i in chosen else d for i, d in enumerate(x.shape) if keepdims or i not in chosen)
        sums = function in ("reduce_sum", "reduce_mean") and x.is_float
        error = max(x.error, rounding_of(x.dtype)) if sums else x.error
        return self.add("reduce", [x], x.dtype, shape, error, function=function, axis=axis, keepdims=keepdims)

    def op_reduce_and_broadcast(self) -> bool:
        """A reduction read by one or two elementwise ops over values of other extents.

        x - max(x[::2], keepdims=True), or z * min(x ++ x) beside (x ++ x) * min(x ++ x): the
        reduction and its readers may land in one kernel that runs over several unknown dims.
        """
        reduced = self.reduce(keepdims=self.chance(0.7))
        if reduced is None:
            return False
        source = self.ops[-1].args[0]
        for _ in range(self.random.randint(1, 2)):
            meets = [v for v in self.pool if v.dtype == reduced.dtype and v is not reduced
                     and broadcast_shapes(reduced.shape, v.shape) is not None]
            others = [v for v in meets if v.name != source] or meets or [reduced]
            other = self.random.choice(others)
            operands = [other, reduced] if self.chance(0.5) else [reduced, other]
            function = self.random.choice(["add", "subtract", "multiply", "maximum", "minimum"])
            self.add("binary", operands, reduced.dtype, broadcast_shapes(reduced.shape, other.shape),
                     max(reduced.error, other.error), function=function)
        return True

    def op_arg_reduce(self) -> bool:
        x = self.pick(lambda v: v.dtype in NUMERIC and v.error == EXACT and v.shape != ())
        if x is None:
            return False
        rank = len(x.shape)
        axis = self.random.randrange(-rank, rank)
        if x.shape[axis] == 0:
            return False  # the front end refuses an argmax over an axis known to be empty
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
            return v_inner == inner and broadcast_shapes(x.shape[:-2], v.shape[:-2]) is not None

        y = self.pick(fits)
        if y is None:  # x @ x^T always fits
            y, transpose_b = x, not transpose_a
        columns = y.shape[-2] if transpose_b else y.shape[-1]
        batch = broadcast_shapes(x.shape[:-2], y.shape[:-2])
        error = max(x.error, y.error, rounding_of(x.dtype)) if x.is_float else EXACT
        self.add("matmul", [x, y], x.dtype, batch + (rows, columns), error, transpose_a=transpose_a,
                 transpose_b=transpose_b)
        return True

    def op_softmax(self) -> bool:
        x = self.pick(lambda v: v.is_float and len(v.shape) >= 1)
        if x is None:
            return False
        axis = self.random.randrange(-len(x.shape), len(x.shape))
        self.add("softmax", [x], x.dtype, x.shape, max(x.error, rounding_of(x.dtype)),
                 function=self.random.choice(["softmax", "log_softmax"]), axis=axis)
        return True
