"""Region ops: `cond`, `while` and `call`.

Note [isolated regions]
A region of `cond` or `while` is isolated from above: its ops see only the
region's block arguments and values defined earlier in the same block, never
a value of the enclosing function. Whatever a branch or a loop body needs is
passed in as an operand, so every region is a closed function of its
arguments: it can be lowered, differentiated and evaluated on its own. The
verifier checks it.

Functions are pure too (state is explicit, DESIGN.md), so all three ops are.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..builder import Builder
from ..core import Block, Function, Module, Operation, Region, SymbolRef, Value
from ..errors import FlowcTypeError, VerifyError
from ..op import Op
from ..types import TensorType, bool_

BOOL_SCALAR = TensorType(bool_, ())

RegionBody = Callable[..., Value | Sequence[Value]]


def yield_types(region: Region) -> list[TensorType]:
    """Types of the values the region's entry block yields; [] without a terminator."""
    terminator = region.entry.terminator if region.blocks else None
    return [v.type for v in terminator.operands] if terminator is not None else []


def enclosing_module(op: Operation) -> Module | None:
    """The module of the function that holds `op`, through any nesting of regions."""
    owner: Any = op
    while isinstance(owner, Operation):
        region = owner.parent.parent if owner.parent is not None else None
        owner = region.parent if region is not None else None
    return owner.parent if isinstance(owner, Function) else None


def verify_driven(op: Op) -> None:
    """A cond's or while's `driven`, where present, is "host" (Note [loops driven from the host])."""
    if op.attributes.get("driven", "host") != "host":
        raise VerifyError(op, f"driven must be \"host\" where present, got {op.attributes['driven']!r}")


class Cond(Op):
    """`cond %pred, %args...`: the first region on args when pred is true, else the second.

    Both regions take exactly the types of `args` and yield the result types.
    `driven = "host"` (set by the cpu and gpu targets' mark-host-driven pass,
    absent elsewhere): the branches may yield different shapes, so the
    predicate is read on the host, which calls the chosen branch as a function
    compiled on its own (Note [conds driven from the host] in
    compiler/host_driven.py).
    """

    name = "cond"
    num_regions = 2
    attrs = {"driven": str}
    optional = frozenset({"driven"})

    def infer_type(self, *types: TensorType) -> tuple[TensorType, ...]:
        if not types:
            raise FlowcTypeError("takes a bool[] predicate and the branch operands, got no operands", op=self.name)
        if len(self.regions) != 2 or not self.regions[0].blocks or self.regions[0].entry.terminator is None:
            raise FlowcTypeError("needs a then region and an else region, each ending with yield", op=self.name)
        return tuple(yield_types(self.regions[0]))

    def verify_extra(self) -> None:
        pred, *args = self.operands
        if pred.type != BOOL_SCALAR:
            raise VerifyError(self, f"predicate must be bool[], got {pred.type}")
        want = [a.type for a in args]
        results = [r.type for r in self.results]
        for branch, region in zip(("then", "else"), self.regions):
            if region.entry.arg_types != want:
                raise VerifyError(self, f"{branch} branch takes {region.entry.arg_types}, operands are {want}")
            if yield_types(region) != results:
                raise VerifyError(self, f"{branch} branch yields {yield_types(region)}, results are {results}")
        verify_driven(self)

    def evaluate(self, operands: list[np.ndarray], interpreter: Any) -> list[np.ndarray]:
        pred, *args = operands
        return interpreter.run_region(self.regions[0 if bool(pred) else 1], args)


class While(Op):
    """`while %init...`: state = init; while cond(state): state = body(state). Results: the last state.

    The first region (cond) takes the state and yields one bool[]; the second
    (body) takes the state and yields the next one, of the same types.
    `driven = "host"` (set by the cpu and gpu targets' mark-host-driven pass, absent
    elsewhere): a loop value may change its shape between turns, so the loop
    runs from the host, a native call per turn (Note [loops driven from the
    host] in compiler/host_driven.py).
    `threads = "gang"` (set by the cpu target's gang-loops pass): the compiled loop runs whole on
    every thread of a gang, each taking its share of each kernel (Note [loops run by a gang] in
    passes/gang_loops.py); `threads = "rows"`: the same, each member owning the same rows of every
    value, with no barrier in a turn (Note [a gang that owns rows] in ir/ops/gang_rows.py).
    """

    name = "while"
    num_regions = 2
    attrs = {"driven": str, "threads": str}
    optional = frozenset({"driven", "threads"})

    def infer_type(self, *types: TensorType) -> tuple[TensorType, ...]:
        return types

    def verify_extra(self) -> None:
        want = [v.type for v in self.operands]
        cond, body = self.regions
        if cond.entry.arg_types != want:
            raise VerifyError(self, f"cond region takes {cond.entry.arg_types}, loop values are {want}")
        if yield_types(cond) != [BOOL_SCALAR]:
            raise VerifyError(self, f"cond region must yield one bool[], yields {yield_types(cond)}")
        if body.entry.arg_types != want:
            raise VerifyError(self, f"body takes {body.entry.arg_types}, loop values are {want}")
        if yield_types(body) != want:
            raise VerifyError(self, f"body yields {yield_types(body)}, loop values are {want}")
        verify_driven(self)
        if self.attributes.get("threads", "gang") not in ("gang", "rows"):
            raise VerifyError(self, f"threads must be \"gang\" or \"rows\" where present, got "
                                    f"{self.attributes['threads']!r}")
        from .gang_rows import row_plan  # it reads kernels: fusion.py, which imports this file

        if self.attributes.get("threads") == "rows" and row_plan(self) is None:
            raise VerifyError(self, "threads = \"rows\" on a loop whose kernels read rows they do not own "
                                    "(Note [a gang that owns rows])")
        if "threads" in self.attributes and "driven" in self.attributes:
            raise VerifyError(self, "a loop driven from the host runs no gang: threads and driven exclude each other")

    def evaluate(self, operands: list[np.ndarray], interpreter: Any) -> list[np.ndarray]:
        state = list(operands)
        cond, body = self.regions
        while True:
            (flag,) = interpreter.run_region(cond, state)
            if not bool(flag):
                return state
            state = interpreter.run_region(body, state)


class Call(Op):
    """`call %args... {callee = @f}`: the results of function `f` of the enclosing module.

    No type rule: the result types are the callee's, which only the module
    knows; the verifier checks them against it.
    """

    name = "call"
    attrs = {"callee": SymbolRef}

    @classmethod
    def normalize_attributes(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        attributes = super().normalize_attributes(attributes)
        callee = attributes["callee"]
        if isinstance(callee, Function):
            callee = SymbolRef(callee.name)
        elif isinstance(callee, str):
            callee = SymbolRef(callee)
        return {**attributes, "callee": callee}

    def verify_extra(self) -> None:
        module = enclosing_module(self)
        if module is None:
            raise VerifyError(self, f"callee {self.callee} cannot be resolved: the call is not in a module")
        callee = module.functions.get(self.callee.name)
        if callee is None:
            raise VerifyError(self, f"callee {self.callee} is not a function of the module")
        args = [v.type for v in self.operands]
        if args != callee.arg_types:
            raise VerifyError(self, f"callee {self.callee} takes {callee.arg_types}, operands are {args}")
        results = [r.type for r in self.results]
        if results != callee.result_types:
            raise VerifyError(self, f"callee {self.callee} returns {callee.result_types}, results are {results}")

    def evaluate(self, operands: list[np.ndarray], interpreter: Any) -> list[np.ndarray]:
        return interpreter.run_function(self.callee.name, operands)


# -- building region ops ---------------------------------------------------------


def build_region(b: Builder, args: Sequence[Value], body: RegionBody) -> Region:
    """A region whose block takes the types of `args`; `body(builder, *block_args)` returns what it yields."""
    block = Block([a.type for a in args], [a.name for a in args])
    inner = Builder.at_end(block, loc=b.loc)
    yielded = body(inner, *block.args)
    inner.create("yield", [yielded] if isinstance(yielded, Value) else list(yielded))
    return Region([block])


def build_cond(
    b: Builder, pred: Value, args: Sequence[Value], then_body: RegionBody, else_body: RegionBody
) -> list[Value]:
    """`cond pred, args` with regions built by `then_body` and `else_body` (see build_region)."""
    regions = [build_region(b, args, then_body), build_region(b, args, else_body)]
    return list(b.create("cond", [pred, *args], regions=regions).results)


def build_while(b: Builder, init: Sequence[Value], cond_body: RegionBody, loop_body: RegionBody) -> list[Value]:
    """`while init` with regions built by `cond_body` (yields a bool[]) and `loop_body` (see build_region)."""
    regions = [build_region(b, init, cond_body), build_region(b, init, loop_body)]
    return list(b.create("while", list(init), regions=regions).results)


def build_call(b: Builder, callee: Function, args: Sequence[Value]) -> list[Value]:
    """`call args {callee = @callee}`, its result types taken from the callee."""
    op = b.create("call", list(args), {"callee": SymbolRef(callee.name)}, result_types=callee.result_types)
    return list(op.results)
