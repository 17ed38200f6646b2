"""@fc.function (TensorFlow 1's Defun), fc.custom_gradient and fc.recompute_grad.

A decorated Python function of tensors is traced into a sub-graph
(func_graph.py) once per graph and input signature, and each call adds one
graph op of kind "call" carrying it. Lowering makes the sub-graph one IR
function of the module, whatever the number of calls, and each call op an IR
`call` (control_flow_lowering.py). Arguments: the tensor leaves of the
call's arguments (any nesting, nest.py), then the tensors the function
captures; other leaves (Python numbers, strings, None) are static: part of
the signature, seen by the Python function as they are.

Note [function gradients]
Without a gradient of its own, a call is differentiated by the IR's rule
(call_vjp in passes/autodiff/rules_control.py), which makes the function's
vjp function `@f.vjp` once and calls it: it recomputes the function's
intermediate values from its inputs rather than keeping them, so every
fc.function is already what fc.recompute_grad asks for, and recompute_grad is
fc.function under the name TF users know. With `grad_func`, lowering makes
`@f.vjp` itself, from `grad_func(*inputs, *output_grads)` traced like the
function (one output gradient per float output, one input gradient returned
per tensor input, None for zero), and the IR rule finds and calls it; a
second derivative differentiates that function in turn. Its gradient only
speaks of the inputs: a function with its own gradient must take every float
tensor it uses as an argument, not capture it from the graph (an error says
which one).
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Callable
from typing import Any

from flowc.ir.errors import GraphError

from . import nest
from .func_graph import FuncGraph, step_salt
from .graph import Graph, Tensor, get_default_graph
from .math_ops import convert_to_tensor
from .sources import user_location

CALL = "call"


class Function:
    """A Python function of tensors that runs as one function of the module: see the module docstring."""

    def __init__(self, python_function: Callable[..., Any], grad_func: Callable[..., Any] | None = None,
                 name: str | None = None):
        self.python_function = python_function
        self.grad_func = grad_func
        self.name = _op_name(name or getattr(python_function, "__name__", "function"))
        self._traces: weakref.WeakKeyDictionary[Graph, dict[Any, tuple[FuncGraph, FuncGraph | None]]] = (
            weakref.WeakKeyDictionary())
        functools.update_wrapper(self, python_function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        loc, graph = user_location(), get_default_graph()
        label = f"{CALL} '{self.name}'"
        structure = (list(args), dict(kwargs))
        leaves = [_leaf(leaf) for leaf in nest.flatten(structure)]
        inputs = [leaf for leaf in leaves if isinstance(leaf, Tensor)]
        key = (tuple(_signature(leaf) for leaf in leaves), nest.describe(structure), graph.control_scope)
        traces = self._traces.setdefault(graph, {})
        if key not in traces:
            traces[key] = self._trace(structure, leaves, label, loc)
        body, gradient = traces[key]
        attrs = {"function": body, "gradient": gradient, "uses_step": body.uses_step,  # Note [random ops in
                 "step_salt": step_salt(graph)}                                         # sub-graphs]
        op = graph.create_op(CALL, [*inputs, *body.captures], attrs, name=self.name,
                             output_types=[t.type for t in body.outputs])
        op.control_inputs.extend(c for c in body.outer_control if c not in op.control_inputs)
        return nest.pack_sequence_as(body.structured_outputs, op.outputs)

    def _trace(self, structure: Any, leaves: list[Any], label: str, loc: str | None
               ) -> tuple[FuncGraph, FuncGraph | None]:
        body = _traced(self.python_function, structure, leaves, None, name=self.name,
                       purpose=f"function '{self.name}'", owner=label, allows_random=True)
        if self.grad_func is None:
            return body, None
        floats = [t.type for t in body.outputs if t.dtype.is_float]
        gradient = _traced(self.grad_func, structure, leaves, floats, name=f"{self.name}_grad",
                           purpose=f"the gradient of function '{self.name}'", owner=label)
        _check_gradient(body, gradient, sum(isinstance(leaf, Tensor) for leaf in leaves), label, loc)
        return body, gradient


def function(func: Callable[..., Any] | None = None, *, grad_func: Callable[..., Any] | None = None,
             name: str | None = None) -> Any:
    """`@fc.function` or `@fc.function(grad_func=g)`: the function runs as one function of the module.

    `grad_func(*inputs, *output_grads)` returns the gradient of each tensor
    input (Note [function gradients]).

    >>> import flowc as fc
    >>> @fc.function
    ... def norm2(v):
    ...     return fc.reduce_sum(v * v)
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.float32, shape=[2], name="x")
    ...     total = norm2(x) + norm2(2.0 * x)       # two calls, one function
    ...     (dx,) = fc.gradients(total, x)
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     sess.run([total, dx], {x: [1.0, 2.0]})
    [array(25., dtype=float32), array([10., 20.], dtype=float32)]
    """
    if func is None:
        return lambda python_function: Function(python_function, grad_func, name)
    return Function(func, grad_func, name)


def custom_gradient(f: Callable[..., Any]) -> Function:
    """`f(*x)` returns `(y, grad)`, with `grad(*dys)` giving the gradient of each x, as tf.custom_gradient.

    One dy per float tensor of y. The gradient is computed by a function of
    the module that runs `f` again for the values `grad` closes over (Note
    [function gradients]).

    >>> import flowc as fc
    >>> @fc.custom_gradient
    ... def clipped_identity(x):
    ...     return fc.identity(x), lambda dy: fc.minimum(fc.maximum(dy, -1.0), 1.0)
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.float32, shape=[2], name="x")
    ...     (dx,) = fc.gradients(clipped_identity(x) * 5.0, x)
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     sess.run(dx, {x: [1.0, 2.0]})
    array([1., 1.], dtype=float32)
    """
    def forward(*args: Any, **kwargs: Any) -> Any:
        return _pair(f(*args, **kwargs))[0]

    return Function(forward, _CustomGradient(f), getattr(f, "__name__", None))


def recompute_grad(f: Callable[..., Any]) -> Function:
    """`f` as one function of the module whose gradient recomputes f's intermediate values from
    its inputs in the backward pass instead of keeping them (Note [function gradients])."""
    return f if isinstance(f, Function) else Function(f, None, getattr(f, "__name__", None))


class _CustomGradient:
    """grad_func(*inputs, *output_grads) for custom_gradient: f runs again, its grad gets the output grads."""

    def __init__(self, f: Callable[..., Any]):
        self.f = f

    def __call__(self, *args_and_dys: Any, output_grads: int = 0, **kwargs: Any) -> Any:
        count = len(args_and_dys) - output_grads
        _, grad = _pair(self.f(*args_and_dys[:count], **kwargs))
        return grad(*args_and_dys[count:])


def _pair(result: Any) -> tuple[Any, Callable[..., Any]]:
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and callable(result[1])):
        raise GraphError("a custom_gradient function returns (outputs, grad_fn), with grad_fn callable; got "
                         f"{nest.describe(result)}", where=user_location())
    return result[0], result[1]


def _traced(python_function: Callable[..., Any], structure: Any, leaves: list[Any], extra: list[Any] | None, *,
            name: str, purpose: str, owner: str, allows_random: bool = False) -> FuncGraph:
    """A FuncGraph of python_function(*args, *extra inputs, **kwargs), the tensor leaves made its inputs.
    `extra` (the output gradients' types) is None for the function itself, a list for its gradient."""
    graph = FuncGraph(name, get_default_graph(), purpose, owner, allows_random)
    with graph.as_default():
        inner = [graph.add_input(leaf.type, name=f"arg{i}") if isinstance(leaf, Tensor) else leaf
                 for i, leaf in enumerate(leaves)]
        grads = [graph.add_input(t, name=f"grad{i}") for i, t in enumerate(extra or [])]
        args, kwargs = nest.pack_sequence_as(structure, inner)
        if isinstance(python_function, _CustomGradient):
            result = python_function(*args, *grads, output_grads=len(grads), **kwargs)
        else:
            result = python_function(*args, *grads, **kwargs)
        if extra is not None:  # a gradient: None stands for zeros, one per tensor input
            tensors = [leaf for leaf in inner if isinstance(leaf, Tensor)]
            given = [result] if len(tensors) == 1 and not isinstance(result, (list, tuple)) else list(result)
            zeroed = [_zeros_like(x) if grad is None else grad for grad, x in zip(given, tensors)]
            result = zeroed + given[len(tensors):]
        graph.set_outputs(result)
    return graph


def _zeros_like(x: Tensor) -> Tensor:
    from .math_ops import constant, where

    return where(constant(True), constant(0, dtype=x.dtype), x)  # x's shape, known or not


def _check_gradient(body: FuncGraph, gradient: FuncGraph, count: int, label: str, loc: str | None) -> None:
    """Note [function gradients]: what a gradient of its own may use and must return."""
    for outer in body.captures:
        if outer.dtype.is_float:
            raise GraphError(f"a function with its own gradient must take every float tensor it uses as an "
                             f"argument; it uses {outer.name!r} ({outer.type}) from the graph around it",
                             op=label, where=loc)
    for outer in gradient.captures:
        if outer not in body.captures:
            raise GraphError(f"the gradient uses {outer.name!r} from the graph around it, which the function does "
                             "not; pass it as an argument", op=label, where=loc)
    returned = nest.flatten(gradient.structured_outputs)
    if len(returned) != count:
        raise GraphError(f"the gradient returns {len(returned)} values for {count} tensor inputs",
                         op=label, where=loc)
    for index, (grad, arg) in enumerate(zip(gradient.outputs, body.inputs)):
        if arg.dtype.is_float and (grad.dtype != arg.dtype or grad.type.rank != arg.type.rank):
            raise GraphError(f"the gradient of input {index} is {grad.type}, the input is {arg.type}",
                             op=label, where=loc)


def _leaf(value: Any) -> Any:
    """A tensor for a tensor, Variable or numpy array; other values are static."""
    if isinstance(value, Tensor) or hasattr(value, "_as_tensor"):
        return convert_to_tensor(value)
    if hasattr(value, "__array__") and not isinstance(value, (int, float, bool, str)):
        return convert_to_tensor(value)
    return value


def _signature(leaf: Any) -> Any:
    if isinstance(leaf, Tensor):
        return ("tensor", leaf.type)
    try:
        hash(leaf)
    except TypeError:
        raise GraphError(f"a static argument of a function must be hashable, got {leaf!r}") from None
    return ("static", type(leaf).__name__, leaf)


def _op_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
    return cleaned if cleaned and cleaned[0].isalnum() else f"f{cleaned}"
