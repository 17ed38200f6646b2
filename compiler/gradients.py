"""fc.gradients and fc.stop_gradient: reverse-mode autodiff, requested in the graph.

fc.gradients adds one graph op, a gradient request (Note [gradient requests]
in ir/ops/autodiff.py): the ys, the xs and the grad_ys go in, one gradient
per x comes out. Lowering carries it into the IR, and the autodiff pass
expands it there, so a gradient is optimized and fused with the rest of the
run like any other value. Which xs get None is decided here, by the graph:
an x gets a gradient if it is float and some y depends on it through ops
that let gradients through (no argmax, comparison, cast from an integer,
stop_gradient or assign on the way), as in TensorFlow 1.
"""

from __future__ import annotations

from typing import Any, Sequence

from flowc.ir import op as registry
from flowc.ir.errors import FlowcTypeError, GraphError

from .array_ops import ones
from .control_flow_gradients import region_gradient_inputs
from .graph import READ, Tensor
from .lowering import REGION_KINDS
from .math_ops import apply, constant, convert_to_tensor, where
from .sources import user_location

REQUEST = "gradients"  # the IR op of a gradient request


def gradients(ys: Any, xs: Any, grad_ys: Any = None, name: str = "gradients") -> list[Tensor | None]:
    """The gradient of sum(ys) with respect to each of xs; None where no y depends on an x.

    Each y is weighted by its grad_y (ones by default). xs may be Variables
    (the gradient is with respect to their value) or any tensor, placeholders
    included; integer and bool xs get None.

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.float32, shape=[None], name="x")
    ...     dx, none = fc.gradients(fc.reduce_sum(x * x), [x, fc.constant(1.0)])
    >>> none is None
    True
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     sess.run(dx, {x: [1.0, 2.0, 3.0]})
    array([2., 4., 6.], dtype=float32)
    """
    loc = user_location()
    y_list = [_y(y, i, loc) for i, y in enumerate(_as_list(ys))]
    if not y_list:
        raise GraphError("fc.gradients needs at least one y", op=REQUEST, where=loc)
    graph = y_list[0].graph
    x_list = [_x(x, i, graph, loc) for i, x in enumerate(_as_list(xs))]
    for index, y in enumerate(y_list):
        if y.graph is not graph:
            raise GraphError(f"y {index} {y.name!r} belongs to another graph than y 0", op=REQUEST, where=loc)
    reached = _reached(y_list)
    wanted = [i for i, x in enumerate(x_list) if x.dtype.is_float and _is_reached(x, reached)]
    if not wanted:
        return [None] * len(x_list)
    with graph.as_default():
        seeds = _seeds(grad_ys, y_list, loc)
        inputs = [*y_list, *(x_list[i] for i in wanted), *seeds]
        request = graph.create_op(REQUEST, inputs, {"num_ys": len(y_list), "num_xs": len(wanted)}, name=name)
    out: list[Tensor | None] = [None] * len(x_list)
    for index, tensor in zip(wanted, request.outputs):
        out[index] = tensor
    return out


def stop_gradient(input: Any, name: str | None = None) -> Tensor:
    """`input` itself, but no gradient flows through it (tf.stop_gradient).

    >>> import flowc as fc
    >>> with fc.Graph().as_default():
    ...     x = fc.placeholder(fc.float32, shape=[2], name="x")
    ...     fc.gradients(fc.reduce_sum(fc.stop_gradient(x) * 3.0), x)
    [None]
    """
    return apply("stop_gradient", (convert_to_tensor(input),), name=name or "StopGradient")


def _as_list(values: Any) -> list[Any]:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _y(value: Any, index: int, loc: str | None) -> Tensor:
    if not (isinstance(value, Tensor) or hasattr(value, "_as_tensor")):
        raise GraphError(f"y {index} is {value!r}, not a tensor or Variable", op=REQUEST, where=loc)
    y = convert_to_tensor(value)
    if not y.dtype.is_float:
        raise FlowcTypeError(f"y {index} {y.name!r} is {y.type}: only float tensors have gradients "
                             f"(expected float16, float32 or float64, got {y.dtype.name})", op=REQUEST, where=loc)
    return y


def _x(value: Any, index: int, graph: Any, loc: str | None) -> Tensor:
    element = getattr(value, "_graph_element", None)  # a Variable: its value at the start of the run
    x = element() if element is not None else value
    if not isinstance(x, Tensor):
        raise GraphError(f"x {index} is {value!r}, not a tensor or Variable; gradients are taken with respect to "
                         "tensors of the graph", op=REQUEST, where=loc)
    if x.graph is not graph:
        raise GraphError(f"x {index} {x.name!r} belongs to another graph than the ys", op=REQUEST, where=loc)
    return x


def _seeds(grad_ys: Any, ys: list[Tensor], loc: str | None) -> list[Tensor]:
    """The grad_ys as tensors, ones where one is None; [] when none is given (the pass makes the ones)."""
    if grad_ys is None:
        return []
    given = _as_list(grad_ys)
    if len(given) != len(ys):
        raise GraphError(f"grad_ys has {len(given)} entries for {len(ys)} ys", op=REQUEST, where=loc)
    return [_ones_like(y) if g is None else convert_to_tensor(g, dtype=y.dtype) for g, y in zip(given, ys)]


def _ones_like(y: Tensor) -> Tensor:
    if y.type.is_static and not y.has_unknown_rank:  # Note [placeholders of unknown rank] in unknown_rank.py
        return ones(y.shape, y.dtype)
    return where(constant(True), 1, y)  # y's shape, known only at run time: 1 broadcast over it


def _reached(ys: Sequence[Tensor]) -> set[Tensor]:
    """Every tensor some y depends on through inputs that carry gradients."""
    seen: set[Tensor] = set()
    stack = list(ys)
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        stack.extend(_gradient_inputs(tensor))
    return seen


def _gradient_inputs(tensor: Tensor) -> list[Tensor]:
    op = tensor.op
    if op.type in REGION_KINDS:  # per result, through the sub-graphs
        return region_gradient_inputs(tensor, _reached)
    if op.type != REQUEST and (op.type not in registry.OPS or not registry.get(op.type).differentiable):
        return []  # graph-only kinds (placeholders, reads, assigns) and ops that block gradients
    # A request's gradients depend on all its inputs: a second derivative goes through it.
    return [t for t in op.inputs if t.dtype.is_float]


def _is_reached(x: Tensor, reached: set[Tensor]) -> bool:
    if x in reached:
        return True
    if x.op.type == READ:  # another read of the variable is the same IR value, unless an assign comes between
        var = x.op.attrs["var"]
        return any(t.op.type == READ and t.op.attrs["var"] is var for t in reached)
    return False
