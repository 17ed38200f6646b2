"""`fusion`: a kernel, the unit the backends compile into one loop nest.

The fusion pass (passes/fusion.py) moves every op that computes into the
region of a `fusion` op, so the IR text shows what runs together:

    %y = fusion %x, %b {kind = "loop"} : f32[8,16] {
    ^bb0(%x_1: f32[8,16], %b_1: f32[16]):
      %half = constant {value = dense<0.5>} : f32[]
      %s = sub %x_1, %half : f32[8,16]
      %y_1 = add %s, %b_1 : f32[8,16]
      yield %y_1 : f32[8,16]
    }

The region takes exactly the operand types and yields the result types, and
it is isolated from above (Note [isolated regions] in control.py). This file
states the kernel contract, which the verifier checks and the backends rely
on; see Note [kernel contract].
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..builder import Builder
from ..core import Block, Operation, Region, Value
from ..errors import FlowcTypeError, VerifyError
from ..op import Op
from ..types import Shape, TensorType
from .control import RegionBody, build_region, yield_types
from .kernel_space import PRODUCTS, accumulated_update
from .reduction import ArgReduction

KINDS = ("loop", "reduction", "matmul", "single")
# The schedules of each kind on each target: the CPU's (passes/schedule.py says what each one is and
# what its parameters mean) and the GPU's (passes/schedule_gpu.py); "single" is both's.
CPU_SCHEDULES: dict[str, tuple[str, ...]] = {
    "loop": ("loop",),
    "single": ("single",),
    "reduction": ("row_blocks", "vector_rows", "column", "rows"),
    "matmul": ("blas", "narrow", "split_k", "generic", "direct"),
}
GPU_SCHEDULES: dict[str, tuple[str, ...]] = {
    "loop": ("blocks",),
    "single": ("single",),
    "reduction": ("row_tiles", "column_tiles"),
    "matmul": ("dot_tiles",),
}
SCHEDULES: dict[str, tuple[str, ...]] = {
    kind: tuple(dict.fromkeys(CPU_SCHEDULES[kind] + GPU_SCHEDULES[kind])) for kind in KINDS}
# Each schedule's parameters: those it must have, those it may have.
SCHEDULE_PARAMETERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "row_blocks": (("lanes",), ()),
    "rows": (("partial_sums",), ("kept_row",)),
    "column": (("tile",), ()),
    "blas": ((), ("accumulate", "quick")),  # quick: Note [tiered compilation] in passes/schedule.py
    "direct": (("tile",), ("aligned_rows",)),  # aligned_rows: Note [aligned gradient rows] in direct_filter.py
    "narrow": (("tiling", "tile"), ("accumulate",)),
    "split_k": (("tiling", "tile", "partial_bytes"), ("accumulate",)),
    "blocks": (("block",), ()),
    # warps, stages, candidates: Note [tuning candidates] in passes/schedule_gpu.py
    "row_tiles": (("block",), ("warps", "candidates")),
    "column_tiles": (("block",), ("warps", "candidates")),
    "dot_tiles": (("tile",), ("accumulate", "warps", "stages", "candidates")),
}
PARAMETERS = frozenset(name for needed, allowed in SCHEDULE_PARAMETERS.values() for name in (*needed, *allowed))
TILINGS = ("dot", "rows", "columns")  # how a narrow product's tiles run (passes/schedule.py)

# Note [kernel contract]
# What a fusion region may hold, per kind. Constants inside a region are free
# (the pass clones splats there so that codegen can inline them); "pointwise"
# means an elementwise op or broadcast_to, computed once per element of its
# result, reading its operands with broadcast strides.
#
#   loop       pointwise ops only, every result of the shape S of the yielded
#              values: one loop nest over S. Operands broadcast to S.
#   reduction  reductions (ops that are `is_reduction`) that all reduce the same
#              axes A of operands of the same shape F, and pointwise ops whose
#              result is either of shape F ("full space", one element per
#              element of F) or of a reduced shape R: F with A dropped, or with
#              A kept as size 1 ("reduced space", one element per row).
#              A full-space op may read a reduced-space value of the kernel
#              only when A is the trailing axes of F and the value has the
#              keepdims shape: it is then one value per row, broadcast along
#              the row (softmax: x - max(x), and exp(...) / sum(...)).
#   matmul     at most one product (PRODUCTS: a matmul or a convolution), its operands
#              block arguments (no producer is fused into it), and pointwise ops
#              of its result shape: the epilogue (bias, activation).
#   single     at most one op, of any kind: transpose, concat, gather, cond...
#
# "At most one" rather than "exactly one": a pass that runs after fusion
# (fold, simplify, DCE inside regions) may simplify the op away; the result is
# still a kernel, only an emptier one. Shapes compare symbolically: two
# unknown dims `?` are the same size only where Note [unknown dims in a
# kernel] proves it, never because both print as `?`.


def is_pointwise(op: Operation) -> bool:
    """Computable one element of the result at a time: elementwise ops and broadcast_to."""
    return op.elementwise or op.name == "broadcast_to"


def reduced_shapes(full: Shape, axes: tuple[int, ...]) -> tuple[Shape, Shape]:
    """(keepdims shape, dropped shape) of reducing `full` over `axes`."""
    kept = tuple(1 if i in axes else d for i, d in enumerate(full))
    dropped = tuple(d for i, d in enumerate(full) if i not in axes)
    return kept, dropped


def is_trailing(axes: tuple[int, ...], rank: int) -> bool:
    return axes == tuple(range(rank - len(axes), rank))


# Note [unknown dims in a kernel]
# A kernel runs one loop nest, so its contract compares shapes; but `?` only
# says "known at run time": x[0::2] and x are both f32[?], of different sizes.
# Two unknown dims count as one size only where an op of the same block ties
# them, by a rule the run time upholds:
#   pointwise  an unknown operand dim equals the result's dim it moves along
#              (ir/shapes.py's check_no_hidden_broadcast refuses anything else);
#   reductions (is_reduction), views (is_view) but reshape   the kept axes
#              are the operand's;
#   matmul     rows, columns and the inner dim are the operands', batch dims
#              as pointwise (the type rule sizes the result from the operands);
#   fusion     its region's ties, each block argument its operand, each yielded
#              value its result.
#   cond       its regions' ties, each block argument its operand; each result
#              both branches' yielded values;
#   while      its regions' ties, each block argument, each value the body
#              yields and each result its initial value. These two hold
#              because a compiled run checks them for every set of fed shapes
#              first (Note [fixed shapes in control flow] in ir/shapes.py).
#              A while or cond driven from the host (driven = "host") ties
#              only inside its regions: its loop values change shape, its
#              branches yield different ones.
# Ties are closed under transitivity (a union-find over (value, axis)); an
# unknown dim tied to a static one takes its size. The fusion pass asks this of
# the block it fuses, the verifier of the block that holds the kernels: the
# same ops, before and after they move into regions, so both agree.


class UnknownDim:
    """One run-time size: the unknown dims tied together by Note [unknown dims in a kernel]."""

    def __init__(self, number: int):
        self.number = number

    def __repr__(self) -> str:
        return f"?{self.number}"


SymbolicShape = tuple["int | UnknownDim", ...]


class DimTies:
    """The symbolic shapes of the values of a block (or of a list of ops), from the ties of its ops."""

    def __init__(self, ops: Sequence[Operation]):
        self._parent: dict[tuple[Value, int], tuple[Value, int]] = {}
        self._size: dict[tuple[Value, int], int] = {}  # a root tied to a static dim
        self._symbols: dict[tuple[Value, int], UnknownDim] = {}
        for op in ops:
            self.add(op)

    def add(self, op: Operation) -> None:
        for (value, axis), (other, other_axis) in dim_ties(op):
            self._tie(value, axis, other, other_axis)
        if op.name == "fusion":
            block = op.regions[0].entry
            for inner in block.ops:
                self.add(inner)
            self._tie_all([*zip(block.args, op.operands), *zip(block.terminator.operands, op.results)])
        elif op.name in ("cond", "while") and op.attributes.get("driven") == "host":
            for region in op.regions:  # its values change shape (between turns or branches): no tie across it
                for inner in region.entry.ops:
                    self.add(inner)
        elif op.name in ("cond", "while"):
            outer = op.operands[1:] if op.name == "cond" else op.operands
            for region in op.regions:
                block = region.entry
                for inner in block.ops:
                    self.add(inner)
                pairs = list(zip(block.args, outer))
                if op.name == "cond" or region is op.regions[1]:  # a while's cond region yields its flag
                    pairs += zip(block.terminator.operands, op.results)
                self._tie_all(pairs)
            if op.name == "while":
                self._tie_all(list(zip(op.results, op.operands)))

    def _tie_all(self, pairs: list[tuple[Value, Value]]) -> None:
        for inside, outside in pairs:
            for axis in range(inside.type.rank):
                self._tie(inside, axis, outside, axis)

    def shape(self, value: Value) -> SymbolicShape:
        return tuple(self._dim(value, axis) for axis in range(value.type.rank))

    def _dim(self, value: Value, axis: int) -> "int | UnknownDim":
        static = value.type.shape[axis]
        if static is not None:
            return static
        root = self._find((value, axis))
        if root in self._size:
            return self._size[root]
        if root not in self._symbols:
            self._symbols[root] = UnknownDim(len(self._symbols))
        return self._symbols[root]

    def _find(self, node: tuple[Value, int]) -> tuple[Value, int]:
        parent = self._parent.setdefault(node, node)
        while parent != node:
            grand = self._parent.setdefault(parent, parent)
            self._parent[node] = grand  # path halving
            node, parent = parent, grand
        return node

    def _tie(self, value: Value, axis: int, other: Value, other_axis: int) -> None:
        a, b = value.type.shape[axis], other.type.shape[other_axis]
        if a is not None and b is not None:
            return
        if a is not None or b is not None:  # an unknown dim tied to a static one has its size
            unknown = self._find((value, axis) if a is None else (other, other_axis))
            self._size[unknown] = a if a is not None else b  # type: ignore[assignment]
            return
        root, other_root = self._find((value, axis)), self._find((other, other_axis))
        if root != other_root:
            self._parent[root] = other_root
            if root in self._size:
                self._size.setdefault(other_root, self._size[root])


Tie = tuple[tuple[Value, int], tuple[Value, int]]


def dim_ties(op: Operation) -> list[Tie]:
    """Pairs of (value, axis) that `op` makes the same run-time size (Note [unknown dims in a kernel])."""
    if not op.results:
        return []
    result = op.results[0]
    if is_pointwise(op):
        return [tie for operand in op.operands for tie in _aligned_ties(operand, result, 0)]
    if op.is_reduction:
        return _reduction_ties(op)
    if op.name == "matmul":
        return _matmul_ties(op)
    if op.name == "conv2d":  # the batch dim; the others are known (ir/ops/conv.py)
        return [((op.operands[0], 0), (op.results[0], 0))]
    if op.is_view:
        return _view_ties(op)
    if op.name in ("broadcast_dims", "iota"):
        return _source_ties(op)
    return []


def _aligned_ties(operand: Value, result: Value, skip_trailing: int) -> list[Tie]:
    """An operand right-aligned against the result: each dim it moves along is the result's
    (a static 1 under another dim is a broadcast, not a tie)."""
    offset = result.type.rank - operand.type.rank
    ties = []
    for axis in range(operand.type.rank - skip_trailing):
        dim, full = operand.type.shape[axis], result.type.shape[axis + offset]
        if dim is None or (dim != 1 and full is None):
            ties.append(((operand, axis), (result, axis + offset)))
    return ties


def _reduction_ties(op: Operation) -> list[Tie]:
    operand, result = op.operands[0], op.results[0]
    axes = op.reduced_axes()
    kept = [a for a in range(operand.type.rank) if a not in axes]
    keepdims = op.keepdims  # False for argmax and argmin
    return [((operand, a), (result, a if keepdims else i)) for i, a in enumerate(kept)]


def _view_ties(op: Operation) -> list[Tie]:
    """expand_dims inserts a 1, squeeze drops 1s: the other dims keep their order (ensure_shape's all).
    A reshape regroups the dims, so none of them keeps its size: it ties nothing."""
    operand, result = op.operands[0], op.results[0]
    if op.name == "reshape":
        return []
    if op.name == "reshape_dims":
        return _source_ties(op)
    if op.name == "ensure_shape":
        return [((operand, a), (result, a)) for a in range(operand.type.rank)]
    if op.name == "expand_dims":
        new = op.axis % result.type.rank
        return [((operand, a), (result, a + (a >= new))) for a in range(operand.type.rank)]
    dropped = {a % operand.type.rank for a in op.axes}
    kept = [a for a in range(operand.type.rank) if a not in dropped]
    return [((operand, a), (result, i)) for i, a in enumerate(kept)]


def _source_ties(op: Operation) -> list[Tie]:
    """reshape_dims, broadcast_dims and iota: a result dim named after an operand's dim is that dim
    (Note [dims from operands] in ir/ops/dims.py)."""
    result = op.results[0]
    ties = []
    for axis in range(result.type.rank):
        named = op.source_dim(axis)
        if named is not None:
            ties.append(((op.operands[named[0]], named[1]), (result, axis)))
    return ties


def _matmul_ties(op: Operation) -> list[Tie]:
    a, b = op.operands
    result = op.results[0]
    rank = result.type.rank
    rows_a, inner_a = (a.type.rank - 1, a.type.rank - 2) if op.transpose_a else (a.type.rank - 2, a.type.rank - 1)
    inner_b, columns_b = (b.type.rank - 1, b.type.rank - 2) if op.transpose_b else (b.type.rank - 2, b.type.rank - 1)
    return [((a, rows_a), (result, rank - 2)), ((b, columns_b), (result, rank - 1)), ((a, inner_a), (b, inner_b)),
            *_aligned_ties(a, result, 2), *_aligned_ties(b, result, 2)]


def kernel_problem(kind: str, ops: Sequence[Operation], yielded: Sequence[Value] = (),
                   ties: DimTies | None = None) -> str | None:
    """Why `ops` (one kernel's ops, in order, terminator excluded) break the contract of `kind`; None if they don't.

    Constants are free; values that no op of `ops` defines are the kernel's operands. `ties` says
    which unknown dims are one size (those of the enclosing block); without it, only the ops' own.
    """
    body = [op for op in ops if op.name != "constant"]
    nested = [op.name for op in body if op.name == "fusion" or op.is_terminator]
    if nested:
        return f"{nested[0]} cannot be inside a kernel"
    if kind == "single":
        return f"holds {len(body)} ops, a single kernel holds one" if len(body) > 1 else None
    if kind not in KINDS:
        return f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}"
    shape = (ties or DimTies(body)).shape
    if kind == "loop":
        return _loop_problem(body, yielded, shape)
    if kind == "reduction":
        return _reduction_problem(body, shape)
    return _matmul_problem(body, shape)


ShapeOf = Callable[[Value], SymbolicShape]


def _loop_problem(body: list[Operation], yielded: Sequence[Value], shape_of: ShapeOf) -> str | None:
    for op in body:
        if not is_pointwise(op):
            return f"{op.display_name} is not elementwise"
    shapes = {shape_of(r) for op in body for r in op.results} | {shape_of(v) for v in yielded}
    if len(shapes) > 1:
        shown = ", ".join(sorted(_shape_text(s) for s in shapes))
        return f"values of different shapes {shown}; a loop kernel has one iteration shape"
    return None


def _reduction_problem(body: list[Operation], shape_of: ShapeOf) -> str | None:
    reductions = [op for op in body if op.is_reduction]
    keys = {(shape_of(op.operands[0]), op.reduced_axes()) for op in reductions}
    if len(keys) > 1:
        shown = "; ".join(sorted(f"{_shape_text(f)} over {list(a)}" for f, a in keys))
        return f"reductions differ in shape or axes ({shown}); they must reduce the same axes of one shape"
    if not keys:  # simplified away after fusion: what is left must still be pointwise
        odd = [op for op in body if not is_pointwise(op)]
        return f"{odd[0].display_name} is neither a reduction nor elementwise" if odd else None
    ((full, axes),) = keys
    kept, dropped = reduced_shapes(full, axes)
    trailing = is_trailing(axes, len(full))
    inside = {r for op in body for r in op.results}
    for op in body:
        if op.is_reduction:
            continue
        if not is_pointwise(op):
            return f"{op.display_name} is neither a reduction nor elementwise"
        shape = shape_of(op.result)
        if shape not in (full, kept, dropped):
            return (f"{op.display_name} has shape {_shape_text(shape)}; ops of a reduction of {_shape_text(full)} "
                    f"over {list(axes)} have shape {_shape_text(full)}, {_shape_text(kept)} or {_shape_text(dropped)}")
        if shape != full:
            continue
        for value in op.operands:
            reduced = value in inside and shape_of(value) != full
            if reduced and not (trailing and shape_of(value) == kept):
                return (f"{op.display_name} of shape {_shape_text(full)} reads a reduced value of shape "
                        f"{_shape_text(shape_of(value))}; only a keepdims result of a reduction over trailing "
                        f"axes may be read at the full shape")
    return None


def product_of(block: Block) -> Operation | None:
    """The product (PRODUCTS) of matmul kernel region `block`, if a pass has not simplified it away."""
    return next((op for op in block.ops if op.name in PRODUCTS), None)


def _matmul_problem(body: list[Operation], shape_of: ShapeOf) -> str | None:
    matmuls = [op for op in body if op.name in PRODUCTS]
    if len(matmuls) > 1:
        return f"holds {len(matmuls)} products ({', '.join(PRODUCTS)}), a matmul kernel holds one"
    if not matmuls:
        return _loop_problem(body, (), shape_of)
    (matmul,) = matmuls
    inside = {r for op in body for r in op.results}
    if any(v in inside for v in matmul.operands):
        return "the operands of the matmul must be operands of the kernel (nothing is fused into a matmul)"
    shape = shape_of(matmul.result)
    for op in body:
        if op is matmul:
            continue
        if not is_pointwise(op) or shape_of(op.result) != shape:
            return (f"{op.display_name} is not an elementwise op of the matmul's shape {_shape_text(shape)}; "
                    f"a matmul kernel holds the matmul and its epilogue")
    return None


def _shape_text(shape: SymbolicShape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _parameter_problem(op: Operation, schedule: str) -> str | None:
    """What is wrong with the values of a fusion op's schedule parameters, if anything."""
    attributes = op.attributes
    for name in ("lanes", "partial_sums", "partial_bytes"):
        if name in attributes and not (isinstance(attributes[name], int) and attributes[name] >= 1):
            return f"{name} must be at least 1, got {attributes[name]}"
    if "tile" in attributes:
        tile, length = attributes["tile"], 3 if op.kind == "matmul" else 1
        if not (isinstance(tile, tuple) and len(tile) == length and all(isinstance(t, int) and t >= 1 for t in tile)):
            return f"tile must be {length} positive sizes, got {tile}"
    if "block" in attributes:  # the GPU's: powers of two, as tl.arange needs (passes/schedule_gpu.py)
        block, length = attributes["block"], 1 if op.kind == "loop" else 2
        sizes = (block,) if length == 1 else block
        if not (isinstance(sizes, tuple) and len(sizes) == length
                and all(isinstance(b, int) and b >= 1 and b & (b - 1) == 0 for b in sizes)):
            return f"block must be {'a power' if length == 1 else f'{length} powers'} of two, got {block}"
    if "candidates" in attributes or "stages" in attributes or "warps" in attributes:
        problem = _tuning_problem(op)
        if problem is not None:
            return problem
    if "tiling" in attributes:
        tiling = attributes["tiling"]
        if tiling not in TILINGS or (schedule == "split_k" and tiling != "dot"):
            wanted = "dot" if schedule == "split_k" else ", ".join(TILINGS)
            return f"a {schedule} product's tiling is {wanted}, got {tiling!r}"
    if "accumulate" in attributes:
        if attributes["accumulate"] is not True:
            return f"accumulate is true where present, got {attributes['accumulate']}"
        if accumulated_update(op) is None:
            return "accumulate needs an epilogue C0 + s * P or C0 - s * P of the product P, used nowhere else"
    if "aligned_rows" in attributes:
        if attributes["aligned_rows"] is not True:
            return f"aligned_rows is true where present, got {attributes['aligned_rows']}"
        if not any(inner.name == "conv2d_backprop_filter" for inner in op.regions[0].entry.ops):
            return "aligned_rows is a filter gradient's (conv2d_backprop_filter) parameter"
    if "kept_row" in attributes:
        reductions = [inner for inner in op.regions[0].entry.ops if inner.is_reduction]
        kept = attributes["kept_row"]
        if not (isinstance(kept, int) and 0 <= kept < len(reductions)):
            return f"kept_row names one of the kernel's {len(reductions)} reductions, got {kept}"
        if isinstance(reductions[kept], ArgReduction):
            return f"kept_row names reduction {kept}, {reductions[kept].name}, whose walk keeps no row"
        row = reductions[kept].operands[0]
        if any(row.type.shape[axis] is None for axis in reductions[kept].reduced_axes()):
            return f"kept_row names reduction {kept}, whose row {row.type} has a size known only at run time"
    return None


def _tuning_problem(op: Operation) -> str | None:
    """What is wrong with a GPU kernel's warps, stages and candidates (Note [tuning candidates] in
    passes/schedule_gpu.py): each candidate is [sizes, warps] or, where the kernel has stages, [sizes,
    warps, stages], its sizes as many powers of two as the kernel's tile or block has."""
    attributes = op.attributes
    sizes_name = "tile" if "tile" in attributes else "block"
    length = len(attributes[sizes_name]) if isinstance(attributes.get(sizes_name), tuple) else 0
    staged = "stages" in attributes
    for name in ("warps", "stages"):
        value = attributes.get(name, 1)
        if not (isinstance(value, int) and value >= 1 and (name == "stages" or value & (value - 1) == 0)):
            return f"{name} must be a {'power of two' if name == 'warps' else 'count of at least 1'}, got {value}"
    for candidate in attributes.get("candidates", ()):
        shape = "[sizes, warps, stages]" if staged else "[sizes, warps]"
        if not (isinstance(candidate, tuple) and len(candidate) == (3 if staged else 2)
                and isinstance(candidate[0], tuple) and len(candidate[0]) == length
                and all(isinstance(n, int) and n >= 1 and n & (n - 1) == 0 for n in (*candidate[0], candidate[1]))
                and all(isinstance(n, int) and n >= 1 for n in candidate[2:])):
            return f"a candidate is {shape} with {length} sizes, warps powers of two, got {format_candidate(candidate)}"
    return None


def format_candidate(candidate: Any) -> str:
    if isinstance(candidate, tuple):
        return "[" + ", ".join(format_candidate(part) for part in candidate) + "]"
    return str(candidate)


class Fusion(Op):
    """`fusion %args... {kind = K}`: one kernel; its region computes the results from args.

    The region takes exactly the operand types and yields the result types;
    it is isolated from above and holds what Note [kernel contract] allows
    for its kind. The schedule pass adds `schedule` (one of SCHEDULES[kind])
    and its parameters (SCHEDULE_PARAMETERS); before it they are absent.
    """

    name = "fusion"
    attrs = {"kind": str, "schedule": str, "lanes": int, "partial_sums": int, "kept_row": int,
             "tiling": str, "tile": tuple[int, ...], "partial_bytes": int, "accumulate": bool,
             "aligned_rows": bool,  # the CPU's filter gradient: Note [aligned gradient rows]
             "block": int | tuple[int, ...],  # the GPU's: an int for "blocks", [rows, columns] for reductions
             "warps": int, "stages": int, "candidates": tuple[tuple[Any, ...], ...]}  # the GPU's too
    optional = frozenset({"schedule"}) | PARAMETERS
    num_regions = 1
    differentiable = False  # autodiff runs before fusion

    def infer_type(self, *types: TensorType) -> tuple[TensorType, ...]:
        if len(self.regions) != 1 or not self.regions[0].blocks or self.regions[0].entry.terminator is None:
            raise FlowcTypeError("needs one region ending with yield", op=self.name)
        return tuple(yield_types(self.regions[0]))

    def verify_extra(self) -> None:
        if self.kind not in KINDS:
            raise VerifyError(self, f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        self._verify_schedule()
        block = self.regions[0].entry
        want = [v.type for v in self.operands]
        if block.arg_types != want:
            raise VerifyError(self, f"region takes {block.arg_types}, operands are {want}")
        results = [r.type for r in self.results]
        if yield_types(self.regions[0]) != results:
            raise VerifyError(self, f"region yields {yield_types(self.regions[0])}, results are {results}")

    def _verify_schedule(self) -> None:
        schedule = self.attributes.get("schedule")
        given = set(self.attributes) & PARAMETERS
        if schedule is None:
            if given:
                raise VerifyError(self, f"{min(given)} is a parameter of a schedule, and the kernel has none")
            return
        if schedule not in SCHEDULES[self.kind]:
            raise VerifyError(self, f"a {self.kind} kernel's schedule is one of "
                                    f"{', '.join(SCHEDULES[self.kind])}, got {schedule!r}")
        needed, allowed = SCHEDULE_PARAMETERS.get(schedule, ((), ()))
        if not set(needed) <= given <= set(needed) | set(allowed):
            optional = f" (and may have {sorted(allowed)})" if allowed else ""
            raise VerifyError(self, f"schedule {schedule!r} takes parameters {sorted(needed) or 'none'}{optional}, "
                                    f"got {sorted(given) or 'none'}")
        problem = _parameter_problem(self, schedule)
        if problem is not None:
            raise VerifyError(self, problem)

    @classmethod
    def verify_block(cls, block: Block) -> None:
        """Each kernel of `block` keeps its contract, with the block's ties between unknown dims."""
        ties = DimTies(block.ops)
        for op in block.ops:
            if op.name == "fusion":
                region = op.regions[0].entry
                problem = kernel_problem(op.kind, region.ops[:-1], region.ops[-1].operands, ties)
                if problem is not None:
                    raise VerifyError(op, f"{op.kind} kernel: {problem}")

    def evaluate(self, operands: list[np.ndarray], interpreter: Any) -> list[np.ndarray]:
        return interpreter.run_region(self.regions[0], operands)


def build_fusion(b: Builder, kind: str, args: Sequence[Value], body: RegionBody) -> list[Value]:
    """`fusion args {kind}` with its region built by `body` (see build_region)."""
    region: Region = build_region(b, args, body)
    return list(b.create("fusion", list(args), {"kind": kind}, regions=[region]).results)
