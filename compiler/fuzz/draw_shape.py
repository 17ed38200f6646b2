"""Draws of ops that move elements: reshape, transpose, concat, stack, expand_dims, squeeze,
broadcast_to, strided slices, gather, one_hot.

Several make new unknown dims (a strided slice of an unknown dim, a concat
along one, a gather with indices sized by another symbol), which later draws
combine with the values they came from.
"""

from __future__ import annotations

import math

from . import dims
from .dims import Dim
from .draws import Draws
from .kinds import INTS
from .spec import EXACT, Value


class ShapeDraws(Draws):
    def op_reshape(self) -> bool:
        x = self.pick(lambda v: len(v.shape) <= 3)
        assert x is not None
        size = dims.product(list(x.shape))
        coef = size if isinstance(size, int) else size.coef
        statics: list[int] = []  # static dims of the target, whose product divides the static part of x's size
        for _ in range(self.random.randint(0, 2)):
            known = math.prod(statics)
            statics.append(self.random.choice([d for d in range(1, coef + 1) if coef % (known * d) == 0] or [1]))
        known = math.prod(statics)
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
