"""Declaring ops: the registry, the `Op` base and the families that share a rule.

An op is declared once: its name, attributes, type rule and numpy reference
sit together in one class (or one decorated function for the elementwise
families). Every other layer finds the op by name: autodiff rules, LLVM and
Triton emitters, the parser.

    @unary("tanh", dtypes=FLOATS)      # type rule: same shape and dtype as x
    def tanh(x: np.ndarray) -> np.ndarray:
        return np.tanh(x)
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from .core import Operation
from .errors import FlowcError, FlowcTypeError, RuntimeShapeError
from .types import DTYPES, NUMERIC, DType, Shape, TensorType, bool_

OPS: dict[str, type[Operation]] = {}


class Op(Operation):
    """Base of every registered op: a subclass that sets `name` is registered."""

    dtypes: ClassVar[tuple[DType, ...]] = DTYPES  # operand dtypes the type rule accepts

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in OPS:
                raise ValueError(f"op {cls.name!r} is declared twice")
            OPS[cls.name] = cls

    def check_dtype(self, t: TensorType, what: str = "operand") -> None:
        if t.dtype not in self.dtypes:
            allowed = ", ".join(d.name for d in self.dtypes)
            raise FlowcTypeError(f"{what} must be one of {allowed}, got {t.dtype.name} ({t})", op=self.name)


def get(name: str) -> type[Operation]:
    """The op class registered under `name`."""
    try:
        return OPS[name]
    except KeyError:
        raise FlowcError(f"unknown op {name!r}") from None


def all_ops() -> list[type[Operation]]:
    return [OPS[name] for name in sorted(OPS)]


def elementwise() -> list[type[Operation]]:
    return [op for op in all_ops() if op.elementwise]


def ops_where(**facts: bool) -> list[type[Operation]]:
    """The registered ops whose class has every given fact (an Operation class attribute such as
    `is_reduction` or `costly`) at the given value: `ops_where(is_random=True)`."""
    for fact in facts:
        if not hasattr(Operation, fact):
            raise FlowcError(f"{fact!r} is not a fact of an op (an attribute of Operation)")
    return [op for op in all_ops() if all(getattr(op, fact) == value for fact, value in facts.items())]


def names_where(**facts: bool) -> frozenset[str]:
    """The names of `ops_where(**facts)`, for a test of an op's name."""
    return frozenset(op.name for op in ops_where(**facts))


# -- shape helpers shared by type rules -------------------------------------


def broadcast_shapes(op: str, *shapes: Shape) -> Shape:
    """numpy broadcasting over shapes whose dims may be None (unknown).

    An unknown dim against a known one takes the known one unless that is 1:
    at run time the unknown dim must be 1 or equal, which the runtime checks.
    """
    rank = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out: list[int | None] = []
    for axis, dims in enumerate(zip(*padded)):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            shown = " and ".join("[" + ",".join("?" if d is None else str(d) for d in s) + "]" for s in shapes)
            raise FlowcTypeError(f"shapes {shown} do not broadcast (axis {axis}: {sorted(known)})", op=op)
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def check_broadcast(op: str, operands: Sequence[np.ndarray]) -> None:
    """At run time: operands broadcast (only unknown dims can disagree; the type rule checked the rest)."""
    shapes = [x.shape for x in operands]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        shown = " and ".join(str(list(s)) for s in shapes)
        raise RuntimeShapeError(f"operands of shapes {shown} do not broadcast at run time", op=op) from None


def normalize_axis(op: str, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise FlowcTypeError(f"axis {axis} is out of range for rank {rank}", op=op)
    return axis % rank


def normalize_axes(op: str, axes: Iterable[int] | None, rank: int) -> tuple[int, ...]:
    """Axes made non-negative and sorted; None means all axes."""
    if axes is None:
        return tuple(range(rank))
    normalized = [normalize_axis(op, a, rank) for a in axes]
    if len(set(normalized)) != len(normalized):
        raise FlowcTypeError(f"repeated axis in {tuple(axes)}", op=op)
    return tuple(sorted(normalized))


def reduced_type(op: str, x: TensorType, axes: Iterable[int] | None, keepdims: bool) -> TensorType:
    axes = normalize_axes(op, axes, x.rank)
    if keepdims:
        return x.with_shape(1 if i in axes else d for i, d in enumerate(x.shape))
    return x.with_shape(d for i, d in enumerate(x.shape) if i not in axes)


# -- families ---------------------------------------------------------------


class ElementwiseOp(Op):
    """Operands broadcast together; the result has the broadcast shape."""

    elementwise = True
    result_dtype: ClassVar[DType | None] = None  # None: the operands' dtype
    fn: ClassVar[Callable[..., np.ndarray]]

    def infer_type(self, *types: TensorType) -> TensorType:
        for t in types:
            self.check_dtype(t)
        if len({t.dtype for t in types}) > 1:
            shown = ", ".join(str(t) for t in types)
            raise FlowcTypeError(f"operands must have one dtype, got {shown}", op=self.name)
        shape = broadcast_shapes(self.name, *(t.shape for t in types))
        return TensorType(self.result_dtype or types[0].dtype, shape)

    def reference(self, *operands: np.ndarray) -> np.ndarray:
        check_broadcast(self.name, operands)
        with np.errstate(all="ignore"):  # IEEE results (inf, nan) are the meaning
            return type(self).fn(*operands)


class UnaryOp(ElementwiseOp):
    num_operands = 1


class BinaryOp(ElementwiseOp):
    num_operands = 2


class TernaryOp(ElementwiseOp):
    num_operands = 3


def _declare(base: type[ElementwiseOp], name: str, dtypes: Sequence[DType], result_dtype: DType | None,
             differentiable: bool, costly: bool = False,
             transcendental: bool = False) -> Callable[[Callable[..., np.ndarray]], type[Operation]]:
    def wrap(fn: Callable[..., np.ndarray]) -> type[Operation]:
        class_name = "".join(part.capitalize() for part in name.split("_")) + "Op"
        body = {
            "name": name,
            "dtypes": tuple(dtypes),
            "result_dtype": result_dtype,
            "differentiable": differentiable,
            "costly": costly or transcendental,
            "transcendental": transcendental,
            "fn": staticmethod(fn),
            "__doc__": fn.__doc__,
            "__module__": fn.__module__,
        }
        return type(class_name, (base,), body)

    return wrap


def unary(name: str, dtypes: Sequence[DType] = NUMERIC, result_dtype: DType | None = None,
          differentiable: bool = True, costly: bool = False,
          transcendental: bool = False) -> Callable[[Callable[..., np.ndarray]], type[Operation]]:
    """Declare an elementwise op of one operand; the function is its numpy meaning. `costly` and
    `transcendental` are the kind facts of Operation (a transcendental op is costly too)."""
    return _declare(UnaryOp, name, dtypes, result_dtype, differentiable, costly, transcendental)


def binary(name: str, dtypes: Sequence[DType] = NUMERIC, result_dtype: DType | None = None,
           differentiable: bool = True, costly: bool = False,
           transcendental: bool = False) -> Callable[[Callable[..., np.ndarray]], type[Operation]]:
    """Declare a broadcasting elementwise op of two operands of one dtype (facts as `unary`)."""
    return _declare(BinaryOp, name, dtypes, result_dtype, differentiable, costly, transcendental)


def comparison(name: str, dtypes: Sequence[DType] = NUMERIC) -> Callable[[Callable[..., np.ndarray]], type[Operation]]:
    """A binary op whose result is bool; never differentiable."""
    return binary(name, dtypes, result_dtype=bool_, differentiable=False)
