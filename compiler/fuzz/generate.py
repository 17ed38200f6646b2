"""The seeded generator: a random graph, as a GraphSpec, from one seed.

Shapes are tracked symbolically (dims.py), and an op only combines operands
whose shapes agree by the documented semantics: an unknown dim meets the
same dim or a static 1, never another unknown one. Ops that make new unknown
dims (strided slices, concats, reshapes, gathers with indices of another
symbol) are drawn often, and later ops pick recent values, so kernels that mix
several unknown dims are common: that is where loop extents go wrong.
The draws live beside this file: draw_math.py, draw_shape.py, draw_array.py,
draw_reduce.py, draw_nn.py and draw_control.py (cond, loops, scans, TensorArrays).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import dims
from .dims import Dim, Shape, Sym
from .draw_array import ArrayDraws
from .draw_control import ControlDraws
from .draw_math import MathDraws
from .draw_nn import NNDraws
from .draw_reduce import ReduceDraws
from .draw_shape import ShapeDraws
from .kinds import DTYPES
from .calls import render
from .spec import EXACT, Case, GraphSpec, Value

# Sizes fed to the symbols: 0 and 1 often, odd sizes, and a few big enough for the thread pool.
SIZES = [0, 1, 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33, 64, 100, 257, 1000, 2049]
SIZE_WEIGHTS = [8, 14, 4, 8, 8, 5, 8, 6, 4, 4, 5, 4, 4, 3, 3, 3, 3, 2, 2, 1]
MAX_ELEMENTS = 60_000  # per value, so the reference stays quick


@dataclass(frozen=True)
class Config:
    max_ops: int = 12
    runs: int = 2  # size assignments per graph (one compile serves them all)
    gradient_rate: float = 0.5
    target: str = "cpu"  # the native target compared with `reference`: "cpu", or "gpu" (interpreted without one)


class Generator(MathDraws, ShapeDraws, ArrayDraws, ReduceDraws, NNDraws, ControlDraws):
    def __init__(self, seed: int, config: Config):
        super().__init__(seed)
        self.config = config

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

    # -- the graph -------------------------------------------------------------------

    def step(self) -> None:
        makers = [
            (self.op_unary, 10), (self.op_arithmetic, 18), (self.op_compare, 4), (self.op_where, 5),
            (self.op_cast, 4), (self.op_reduce, 16), (self.op_arg_reduce, 3), (self.op_matmul, 5),
            (self.op_reshape, 5), (self.op_transpose, 4), (self.op_concat, 7), (self.op_stack, 2),
            (self.op_expand_dims, 4), (self.op_squeeze, 2), (self.op_broadcast_to, 2), (self.op_slice, 12),
            (self.op_gather, 6), (self.op_one_hot, 2), (self.op_softmax, 4), (self.op_reduce_and_broadcast, 8),
            # draw_array.py, draw_reduce.py, draw_nn.py, draw_control.py
            (self.op_tile, 3), (self.op_reverse, 3), (self.op_pad, 4), (self.op_split, 3), (self.op_unstack, 2),
            (self.op_gather_nd, 3), (self.op_scatter_nd, 3), (self.op_einsum, 4), (self.op_slice_newaxis, 3),
            (self.op_reduce_more, 4), (self.op_cumulative, 4), (self.op_top_k, 3), (self.op_more_math, 3),
            (self.op_binary_math, 3), (self.op_clip, 2), (self.op_activation, 3), (self.op_normalize, 3),
            (self.op_cross_entropy, 2), (self.op_conv, 3), (self.op_pool, 3), (self.op_cond, 4), (self.op_case, 2),
            (self.op_while, 4), (self.op_scan, 3), (self.op_map, 2), (self.op_tensor_array, 2),
            (self.op_reshape_rows, 2), (self.op_range, 2), (self.op_sequence_mask, 1), (self.op_bias_add, 2),
            (self.op_add_n, 2), (self.op_clip_by_norm, 1), (self.op_in_top_k, 1), (self.op_embedding_lookup, 2),
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
        for _ in range(self.random.randint(3, self.config.max_ops)):
            self.step()
        outputs = self.outputs()
        if not outputs:
            self.op_unary() or self.op_cast()
            outputs = self.outputs()
        spec = GraphSpec(self.symbols, self.inputs, self.ops, outputs)
        spec.gradients = self.chance(self.config.gradient_rate) and any(
            spec.value(name).is_float for name in outputs) and not gradient_may_jump(spec)
        return spec

    def sizes(self, spec: GraphSpec, distinct: bool) -> dict[str, int]:
        """Sizes for the symbols that keep every value under MAX_ELEMENTS; `distinct`: no two alike."""
        for attempt in range(16):
            pool = SIZES if attempt < 12 else [0, 1, 2, 3, 4]
            sizes = {s: self.random.choices(pool, SIZE_WEIGHTS[: len(pool)])[0] for s in spec.symbols}
            if distinct and len(set(sizes.values())) < len(sizes) and attempt < 15:
                continue
            if all(count(v.shape, sizes) <= MAX_ELEMENTS for v in all_values(spec)):
                return sizes
        return {s: i for i, s in enumerate(spec.symbols)}


# Ops whose gradient picks one of several equal elements (a max, a min, a pool, top_k, a clip).
SELECTIONS = re.compile(r"reduce_max|reduce_min|maximum|minimum|max_pool|top_k|clip_by_value|relu6")


def gradient_may_jump(spec: GraphSpec) -> bool:
    """Whether a selection on the outputs' way reads an inexact value: its gradient may then go elsewhere
    on each target. Two elements that tie in one target's roundings may differ in the last bit in the
    other's (seed 200145: a minimum against a broadcast mean made equal rows, a conv's sums of them tied
    on reference only, and reduce_min's gradient went to two elements there, one on cpu). A selection
    against a Python number is kept: an inexact value hits a constant exactly only by chance."""
    live = set(spec.outputs)
    for record in reversed(spec.ops):
        if record.result.name not in live:
            continue
        live.update(record.args)
        if (record.op not in ("binary_scalar", "scalar_binary") and SELECTIONS.search(render(record))
                and any(spec.value(a).error != EXACT for a in record.args)):
            return True
    return False


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
    # The first run feeds each symbol its own size: where two unknown dims get mixed up, it shows.
    sizes = [generator.sizes(spec, distinct=run == 0) for run in range(config.runs)]
    return Case(seed, spec, sizes, specials=generator.chance(0.5), target=config.target)
