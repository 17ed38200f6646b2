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

from typing import Any, Sequence

import numpy as np

from ..builder import Builder
from ..core import Operation, Region, Value
from ..errors import FlowcTypeError, VerifyError
from ..op import Op
from ..types import Shape, TensorType
from .control import RegionBody, build_region, yield_types

KINDS = ("loop", "reduction", "matmul", "single")
REDUCTIONS = frozenset({"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "argmax", "argmin"})
# Ops that stay at the top level after fusion: on a contiguous buffer they only rename its dims.
VIEWS = frozenset({"reshape", "expand_dims", "squeeze"})

# Note [kernel contract]
# What a fusion region may hold, per kind. Constants inside a region are free
# (the pass clones splats there so that codegen can inline them); "pointwise"
# means an elementwise op or broadcast_to, computed once per element of its
# result, reading its operands with broadcast strides.
#
#   loop       pointwise ops only, every result of the shape S of the yielded
#              values: one loop nest over S. Operands broadcast to S.
#   reduction  reductions (reduce_*, argmax, argmin) that all reduce the same
#              axes A of operands of the same shape F, and pointwise ops whose
#              result is either of shape F ("full space", one element per
#              element of F) or of a reduced shape R: F with A dropped, or with
#              A kept as size 1 ("reduced space", one element per row).
#              A full-space op may read a reduced-space value of the kernel
#              only when A is the trailing axes of F and the value has the
#              keepdims shape: it is then one value per row, broadcast along
#              the row (softmax: x - max(x), and exp(...) / sum(...)).
#   matmul     at most one matmul, its operands block arguments (no producer
#              is fused into it), and pointwise ops of its result shape: the
#              epilogue (bias, activation).
#   single     at most one op, of any kind: transpose, concat, gather, cond...
#
# "At most one" rather than "exactly one": a pass that runs after fusion
# (fold, simplify, DCE inside regions) may simplify the op away; the result is
# still a kernel, only an emptier one. Shapes compare statically: an unknown
# dim `?` of two values of one kernel is taken to be the same run-time size
# (the runtime checks that feeds agree).


def is_pointwise(op: Operation) -> bool:
    """Computable one element of the result at a time: elementwise ops and broadcast_to."""
    return op.elementwise or op.name == "broadcast_to"


def reduced_axes(op: Operation) -> tuple[int, ...]:
    """The axes a reduction reduces, non-negative and sorted."""
    rank = op.operands[0].type.rank
    if op.name in ("argmax", "argmin"):
        return (op.axis % rank,)
    return tuple(sorted(a % rank for a in op.axes))


def reduced_shapes(full: Shape, axes: tuple[int, ...]) -> tuple[Shape, Shape]:
    """(keepdims shape, dropped shape) of reducing `full` over `axes`."""
    kept = tuple(1 if i in axes else d for i, d in enumerate(full))
    dropped = tuple(d for i, d in enumerate(full) if i not in axes)
    return kept, dropped


def is_trailing(axes: tuple[int, ...], rank: int) -> bool:
    return axes == tuple(range(rank - len(axes), rank))


def kernel_problem(kind: str, ops: Sequence[Operation], yielded: Sequence[Value] = ()) -> str | None:
    """Why `ops` (one kernel's ops, in order, terminator excluded) break the contract of `kind`; None if they don't.

    Constants are free; values that no op of `ops` defines are the kernel's operands.
    """
    body = [op for op in ops if op.name != "constant"]
    nested = [op.name for op in body if op.name == "fusion" or op.is_terminator]
    if nested:
        return f"{nested[0]} cannot be inside a kernel"
    if kind == "loop":
        return _loop_problem(body, yielded)
    if kind == "reduction":
        return _reduction_problem(body)
    if kind == "matmul":
        return _matmul_problem(body)
    if kind == "single":
        return f"holds {len(body)} ops, a single kernel holds one" if len(body) > 1 else None
    return f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}"


def _loop_problem(body: list[Operation], yielded: Sequence[Value]) -> str | None:
    for op in body:
        if not is_pointwise(op):
            return f"{op.display_name} is not elementwise"
    shapes = {r.type.shape for op in body for r in op.results} | {v.type.shape for v in yielded}
    if len(shapes) > 1:
        shown = ", ".join(_shape_text(s) for s in sorted(shapes, key=str))
        return f"values of different shapes {shown}; a loop kernel has one iteration shape"
    return None


def _reduction_problem(body: list[Operation]) -> str | None:
    reductions = [op for op in body if op.name in REDUCTIONS]
    keys = {(op.operands[0].type.shape, reduced_axes(op)) for op in reductions}
    if len(keys) > 1:
        shown = "; ".join(f"{_shape_text(f)} over {list(a)}" for f, a in sorted(keys, key=str))
        return f"reductions differ in shape or axes ({shown}); they must reduce the same axes of one shape"
    if not keys:  # simplified away after fusion: what is left must still be pointwise
        odd = [op for op in body if not is_pointwise(op)]
        return f"{odd[0].display_name} is neither a reduction nor elementwise" if odd else None
    ((full, axes),) = keys
    kept, dropped = reduced_shapes(full, axes)
    trailing = is_trailing(axes, len(full))
    inside = {r for op in body for r in op.results}
    for op in body:
        if op.name in REDUCTIONS:
            continue
        if not is_pointwise(op):
            return f"{op.display_name} is neither a reduction nor elementwise"
        shape = op.result.type.shape
        if shape not in (full, kept, dropped):
            return (f"{op.display_name} has shape {_shape_text(shape)}; ops of a reduction of {_shape_text(full)} "
                    f"over {list(axes)} have shape {_shape_text(full)}, {_shape_text(kept)} or {_shape_text(dropped)}")
        if shape != full:
            continue
        for value in op.operands:
            reduced = value in inside and value.type.shape != full
            if reduced and not (trailing and value.type.shape == kept):
                return (f"{op.display_name} of shape {_shape_text(full)} reads a reduced value of shape "
                        f"{_shape_text(value.type.shape)}; only a keepdims result of a reduction over trailing "
                        f"axes may be read at the full shape")
    return None


def _matmul_problem(body: list[Operation]) -> str | None:
    matmuls = [op for op in body if op.name == "matmul"]
    if len(matmuls) > 1:
        return f"holds {len(matmuls)} matmuls, a matmul kernel holds one"
    if not matmuls:
        return _loop_problem(body, ())
    (matmul,) = matmuls
    inside = {r for op in body for r in op.results}
    if any(v in inside for v in matmul.operands):
        return "the operands of the matmul must be operands of the kernel (nothing is fused into a matmul)"
    shape = matmul.result.type.shape
    for op in body:
        if op is matmul:
            continue
        if not is_pointwise(op) or op.result.type.shape != shape:
            return (f"{op.display_name} is not an elementwise op of the matmul's shape {_shape_text(shape)}; "
                    f"a matmul kernel holds the matmul and its epilogue")
    return None


def _shape_text(shape: Shape) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


class Fusion(Op):
    """`fusion %args... {kind = K}`: one kernel; its region computes the results from args.

    The region takes exactly the operand types and yields the result types;
    it is isolated from above and holds what Note [kernel contract] allows
    for its kind.
    """

    name = "fusion"
    attrs = {"kind": str}
    num_regions = 1
    differentiable = False  # autodiff runs before fusion

    def infer_type(self, *types: TensorType) -> tuple[TensorType, ...]:
        if len(self.regions) != 1 or not self.regions[0].blocks or self.regions[0].entry.terminator is None:
            raise FlowcTypeError("needs one region ending with yield", op=self.name)
        return tuple(yield_types(self.regions[0]))

    def verify_extra(self) -> None:
        if self.kind not in KINDS:
            raise VerifyError(self, f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        block = self.regions[0].entry
        want = [v.type for v in self.operands]
        if block.arg_types != want:
            raise VerifyError(self, f"region takes {block.arg_types}, operands are {want}")
        results = [r.type for r in self.results]
        if yield_types(self.regions[0]) != results:
            raise VerifyError(self, f"region yields {yield_types(self.regions[0])}, results are {results}")
        problem = kernel_problem(self.kind, block.ops[:-1], block.ops[-1].operands)
        if problem is not None:
            raise VerifyError(self, f"{self.kind} kernel: {problem}")

    def evaluate(self, operands: list[np.ndarray], interpreter: Any) -> list[np.ndarray]:
        return interpreter.run_region(self.regions[0], operands)

    def product_result(self) -> int:
        """A matmul kernel: the result whose buffer receives the product (BLAS writes it whole, then the
        epilogue reads it back at each index): the product's own result if yielded, else result 0."""
        block = self.regions[0].entry
        product = next(op for op in block.ops if op.name == "matmul").result
        yields = list(block.terminator.operands)
        return yields.index(product) if product in yields else 0


def build_fusion(b: Builder, kind: str, args: Sequence[Value], body: RegionBody) -> list[Value]:
    """`fusion args {kind}` with its region built by `body` (see build_region)."""
    region: Region = build_region(b, args, body)
    return list(b.create("fusion", list(args), {"kind": kind}, regions=[region]).results)
