"""The generator's state and the primitives its draws share: a pool of values, picks, records.

Each `op_*` method of the subclasses (draw_math.py, draw_shape.py) tries to
add one op record over values of the pool and says whether it could.
"""

from __future__ import annotations

import random
from typing import Callable

from .dims import Dim, Shape
from .kinds import FLOATS
from .spec import EXACT, Input, OpRecord, Value


class Draws:
    def __init__(self, seed: int):
        self.random = random.Random(seed)
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

    def add_input(self, dtype: str, shape: Shape, indexes: Dim | None = None) -> Value:
        value = Value(self.name("x" if indexes is None else "i"), dtype, tuple(shape), EXACT)
        self.inputs.append(Input(value, indexes))
        self.pool.append(value)
        return value

    def positive(self, value: Value, always: bool = False) -> Value:
        """|x| + 1 for an inexact x headed for a division, log or rsqrt; `always`: for an exact x too."""
        if value.error == EXACT and not always:
            return value
        return self.add("positive", [value], value.dtype, value.shape, value.error, guard=True)

    def scalar(self, dtype: str) -> str:
        """A Python number for a binary op or where: it takes the dtype of the tensor it meets."""
        if dtype in FLOATS:
            return self.random.choice(["0.5", "2.0", "-1.5", "0.0", "3.0", "-0.0", "1e-3"])
        return self.random.choice(["0", "1", "-2", "3"])
