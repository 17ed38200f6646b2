"""Draws of ops that index and rearrange: tile, reverse, pad, split, unstack, gather_nd,
scatter_nd, einsum, and slices with newaxis and ellipsis.

Like draw_shape.py, several make new unknown dims (a tile or a pad of an
unknown dim, a split of one whose coefficient divides); index columns are
inputs of their own, each bounded by the dim it indexes, so an index out of
range (data.py feeds a few) must make both targets raise.
"""

from __future__ import annotations

from . import dims
from .dims import Dim, Sym
from .draws import Draws
from .kinds import INTS, NUMERIC
from .spec import EXACT, Value, rounding_of

ARRAY_TEMPLATES = {
    "tile": "fc.tile({0}, {multiples})",
    "reverse": "fc.reverse({0}, {axes})",
    "pad": "fc.pad({0}, {paddings}, mode={mode!r}, constant_values={constant})",
    "split": "fc.split({0}, {splits}, axis={axis})[{part}]",
    "unstack": "fc.unstack({0}, axis={axis})[{part}]",
    "gather_nd": "fc.gather_nd({0}, fc.stack([{rest}], axis=-1))",
    "scatter_nd": "fc.scatter_nd(fc.stack([{rest}], axis=-1), {0}, {shape})",
    "einsum": "fc.einsum({equation!r}, {args})",
    # sizes as run-time tensors (fc.shape), which the cpu target takes from the fed shapes
    "reshape_rows": "fc.reshape({0}, [fc.shape({0})[0], -1])",
    "range": "fc.range(fc.shape({0})[{axis}])",
    "sequence_mask": "fc.sequence_mask({0}, {maxlen})",
}

# A contraction, a batch product, transposes, reductions, an outer product, an elementwise product, a dot.
# Letters bind to the operands' dims.
EQUATIONS = ["ij,jk->ik", "bij,bjk->bik", "ij->ji", "ijk->ik", "i,j->ij", "ij,ij->ij", "i,i->", "ij,kj->ik",
             "bij,jk->bik", "ij->", "ijk->kji"]


class ArrayDraws(Draws):
    def op_tile(self) -> bool:
        x = self.pick(lambda v: 1 <= len(v.shape) <= 3)
        if x is None:
            return False
        multiples = [self.random.choices([0, 1, 2, 3], [1, 4, 4, 2])[0] for _ in x.shape]
        shape = tuple(dims.product([d, m]) if m != 1 else d for d, m in zip(x.shape, multiples))
        self.add("tile", [x], x.dtype, shape, x.error, multiples=multiples)
        return True

    def op_reverse(self) -> bool:
        x = self.pick(lambda v: len(v.shape) >= 1)
        if x is None:
            return False
        rank = len(x.shape)
        axes = sorted(self.random.sample(range(rank), self.random.randint(1, rank)))
        axes = [a - rank if self.chance(0.3) else a for a in axes]
        self.add("reverse", [x], x.dtype, x.shape, x.error, axes=axes)
        return True

    def op_pad(self) -> bool:
        x = self.pick(lambda v: 1 <= len(v.shape) <= 3 and v.dtype != "bool")
        if x is None:
            return False
        mode = self.random.choices(["CONSTANT", "REFLECT", "SYMMETRIC"], [4, 1, 1])[0]
        paddings, shape = [], []
        for d in x.shape:
            # A mirror pads at most dim - 1 (REFLECT) or dim (SYMMETRIC), and needs the dim when the graph is built
            limit = 2 if mode == "CONSTANT" else 0 if not isinstance(d, int) else max(0, d - (mode == "REFLECT"))
            before, after = self.random.randint(0, min(2, limit)), self.random.randint(0, min(2, limit))
            paddings.append([before, after])
            shape.append(dims.total([d, before + after]) if before + after else d)
        if all(p == [0, 0] for p in paddings) and mode != "CONSTANT":
            return False
        constant = self.scalar(x.dtype) if mode == "CONSTANT" else 0
        self.add("pad", [x], x.dtype, tuple(shape), x.error, paddings=paddings, mode=mode, constant=constant)
        return True

    def op_split(self) -> bool:
        x = self.pick(lambda v: len(v.shape) >= 1)
        if x is None:
            return False
        axis = self.random.randrange(len(x.shape))
        d = x.shape[axis]
        if isinstance(d, int) and d >= 1 and self.chance(0.5):
            sizes = []
            left = d
            while left > 0:
                sizes.append(self.random.randint(0, left))
                left -= sizes[-1]
                if len(sizes) == 3:
                    sizes.append(left)
                    break
            if len(sizes) == 1:
                sizes.append(0)
            part = self.random.randrange(len(sizes))
            self.add("split", [x], x.dtype, x.shape[:axis] + (sizes[part],) + x.shape[axis + 1:], x.error,
                     splits=sizes, axis=axis, part=part)
            return True
        count = self.random.choice([2, 3])
        piece = dims.divide(d, count) if isinstance(d, int) else None  # the front end needs the dim to split it
        if piece is None:
            return False
        part = self.random.randrange(count)
        self.add("split", [x], x.dtype, x.shape[:axis] + (piece,) + x.shape[axis + 1:], x.error, splits=count,
                 axis=axis if self.chance(0.7) else axis - len(x.shape), part=part)
        return True

    def op_unstack(self) -> bool:
        x = self.pick(lambda v: any(isinstance(d, int) and 1 <= d <= 5 for d in v.shape))
        if x is None:
            return False
        axis = self.random.choice([i for i, d in enumerate(x.shape) if isinstance(d, int) and 1 <= d <= 5])
        part = self.random.randrange(x.shape[axis])
        self.add("unstack", [x], x.dtype, x.shape[:axis] + x.shape[axis + 1:], x.error, axis=axis, part=part)
        return True

    def index_columns(self, bounds: list[Dim], batch: tuple) -> list[Value]:
        """One int input of shape `batch` per bound, each below its bound."""
        dtype = self.random.choice(INTS)
        return [self.add_input(dtype, batch, indexes=bound) for bound in bounds]

    def index_batch(self, avoid: set) -> tuple:
        """The batch shape of index inputs: small, often over a symbol the indexed value does not use."""
        others = [s for s in self.symbols if dims.symbol(s) not in avoid] or self.symbols
        rank = self.random.choices([0, 1, 2], [1, 4, 2])[0]
        return tuple(dims.symbol(self.random.choice(others)) if self.chance(0.6) else self.random.randint(1, 3)
                     for _ in range(rank))

    def op_gather_nd(self) -> bool:
        params = self.pick(lambda v: len(v.shape) >= 1)
        if params is None:
            return False
        depth = self.random.randint(1, len(params.shape))
        columns = self.index_columns(list(params.shape[:depth]), self.index_batch(set(params.shape)))
        shape = columns[0].shape + params.shape[depth:]
        self.add("gather_nd", [params, *columns], params.dtype, shape, params.error)
        return True

    def op_scatter_nd(self) -> bool:
        updates = self.pick(lambda v: v.dtype in NUMERIC and len(v.shape) >= 1)
        if updates is None:
            return False
        static_tail = 0  # the trailing dims of updates, static, become the result's trailing dims
        while static_tail < len(updates.shape) - 1 and isinstance(updates.shape[-1 - static_tail], int):
            static_tail += 1
        tail_length = self.random.randint(0, static_tail)
        batch = updates.shape[: len(updates.shape) - tail_length]
        tail = updates.shape[len(updates.shape) - tail_length:]
        depth = self.random.randint(1, 2)
        head = [self.random.randint(1, 5) for _ in range(depth)]
        columns = self.index_columns(head, batch)  # type: ignore[arg-type]
        # Several updates may land on one element and are summed, in an order of each target's choosing.
        error = max(updates.error, rounding_of(updates.dtype)) if updates.is_float else EXACT
        self.add("scatter_nd", [updates, *columns], updates.dtype, tuple(head) + tuple(tail), error,
                 shape=head + list(tail))
        return True

    def op_einsum(self) -> bool:
        equation = self.random.choice(EQUATIONS)
        specs, result = equation.split("->")
        specs = specs.split(",")
        x = self.pick(lambda v: v.dtype in NUMERIC and len(v.shape) == len(specs[0]))
        if x is None:
            return False
        bound = dict(zip(specs[0], x.shape))
        operands = [x]
        for spec in specs[1:]:
            def fits(v: Value, spec: str = spec) -> bool:
                return v.dtype == x.dtype and len(v.shape) == len(spec) and all(
                    bound.get(letter, d) == d for letter, d in zip(spec, v.shape))
            y = self.pick(fits)
            if y is None:
                return False
            bound.update(zip(spec, y.shape))
            operands.append(y)
        shape = tuple(bound[letter] for letter in result)
        sums = x.is_float and (len(operands) > 1 or len(result) < len(specs[0]))
        error = max([v.error for v in operands] + [rounding_of(x.dtype) if sums else EXACT])
        self.add("einsum", operands, x.dtype, shape, error, equation=equation)
        return True

    def op_reshape_rows(self) -> bool:
        x = self.pick(lambda v: 2 <= len(v.shape) <= 3)
        if x is None:
            return False
        rest = dims.product(list(x.shape[1:]))  # the front end knows neither dim: a shape read at run time
        self.add("reshape_rows", [x], x.dtype, (unknown(x.shape[0]), unknown(rest)), x.error)
        return True

    def op_range(self) -> bool:
        """fc.range up to a dim of a value, known at run time only: int32 [len(range(start, dim, delta))]."""
        x = self.pick(lambda v: any(fed(d) for d in v.shape))
        if x is None:
            return False
        axis = self.random.choice([i for i, d in enumerate(x.shape) if fed(d)])
        self.add("range", [x], "int32", (x.shape[axis],), EXACT, axis=axis)  # start 0, delta 1 (the front end's rule)
        return True

    def op_sequence_mask(self) -> bool:
        lengths = self.pick(lambda v: v.dtype in INTS and len(v.shape) <= 2)
        if lengths is None:
            return False
        maxlen = self.random.randint(0, 6)
        self.add("sequence_mask", [lengths], "bool", lengths.shape + (maxlen,), EXACT, maxlen=maxlen)
        return True

    def op_slice_newaxis(self) -> bool:
        """x[..., None, 1:] and the like: an ellipsis, new axes, and the items of op_slice."""
        x = self.pick(lambda v: len(v.shape) >= 1)
        if x is None:
            return False
        rank = len(x.shape)
        named = self.random.randint(1, rank)
        trailing = self.chance(0.6)  # the items name the last dims, after an ellipsis
        covered = x.shape[rank - named:] if trailing else x.shape[:named]
        items = [self.slice_item(d) for d in covered]  # type: ignore[attr-defined]
        at = self.random.randint(0, len(items))
        items.insert(at, ("None", 1))
        texts = [t for t, _ in items]
        kept = tuple(d for _, d in items if d is not None)
        if trailing:
            index, shape = ", ".join(["..."] + texts), x.shape[: rank - named] + kept
        else:
            index, shape = ", ".join(texts + (["..."] if self.chance(0.5) else [])), kept + x.shape[named:]
        self.add("slice", [x], x.dtype, shape, x.error, index=index)
        return True


def unknown(dim: Dim) -> Dim:
    """`dim` as a dim the front end does not know statically: a static size becomes an atom of its own."""
    return dim if isinstance(dim, Sym) else Sym(1, (str(dim),))


def fed(dim: Dim) -> bool:
    """An unknown dim that the front end traces to the fed shapes: not a static size it lost (unknown())."""
    return isinstance(dim, Sym) and not any(atom.isdigit() for atom in dim.atoms)
