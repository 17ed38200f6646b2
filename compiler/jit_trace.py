"""Tracing a Python function of arrays into a graph: what @fc.jit compiles and fc.export writes.

`trace(fn, specs)` makes a Graph, a placeholder per array leaf of the
arguments (named after the parameter and the path inside it), calls `fn` on
them with that graph as the default (so Python control flow runs once,
unrolled, and fc.cond / fc.while_loop add loops), and returns the
placeholders, the result tensors and the result's structure. compiler/jit.py
re-exports it as the public `flowc.jit.trace`.
"""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import as_dtype

from . import nest
from .array_ops import placeholder
from .graph import Graph, Tensor
from .math_ops import constant
from .tensor_shape import plain_dim


class Trace(NamedTuple):
    """A function traced into a graph: `feeds` are its placeholders (one per array leaf of the
    arguments, in flatten order), `fetches` the tensors it returns (one per tensor leaf of the
    result, duplicates kept), `structure` its return value with those Tensors (and Nones) as leaves."""

    graph: Graph
    feeds: list[Tensor]
    fetches: list[Tensor]
    structure: Any


def trace(fn: Callable[..., Any], specs: Sequence[Any], kwargs: dict[str, Any] | None = None, *,
          static_argnames: Sequence[str] = ()) -> Trace:
    """`fn(*specs, **kwargs)` traced into a new Graph.

    Each leaf (nest.flatten) of the arguments that has a `shape` and a `dtype` (a numpy array or
    scalar, an fc.TensorSpec, a Tensor) becomes a placeholder of that dtype and shape, None dims
    staying unknown; every other leaf (a Python number, say) is passed as it is, and so is every
    argument named in `static_argnames`. The placeholders are named
    after the parameters ("params/W" for params["W"]).
    The result must be a Tensor, an array or a number, or tuples, lists, dicts and namedtuples of
    them (None leaves kept): anything else is a FlowcTypeError naming where it is.

    >>> import flowc as fc, numpy as np
    >>> t = trace(lambda x, y: (x * y, x), [fc.TensorSpec([None, 3], fc.float32), np.float32(2)])
    >>> [f.name for f in t.feeds], [f.name for f in t.fetches], t.structure[1] is t.feeds[0]
    (['x:0', 'y:0'], ['mul:0', 'x:0'], True)
    """
    kwargs = dict(kwargs or {})
    names = _parameter_names(fn, len(specs), kwargs)
    graph = Graph()
    feeds: list[Tensor] = []
    with graph.as_default():
        static = set(static_argnames)
        args = [spec if names[i] in static else _placeholders(spec, names[i], feeds) for i, spec in enumerate(specs)]
        kwargs = {key: value if key in static else _placeholders(value, key, feeds) for key, value in kwargs.items()}
        try:
            result = fn(*args, **kwargs)
        except GraphError as error:
            if "belongs to another graph" in error.detail:  # a tensor or Variable closed over
                error.detail += ("; a traced function computes from its arguments: pass the value in (a Variable's "
                                 "from sess.run(v)), or make the tensor inside the function")
                error.args = (error._format(),)
            raise
        fetches, structure = _results(result, graph, fn)
    return Trace(graph, feeds, fetches, structure)


@dataclass(frozen=True)
class TensorSpec:
    """The dtype and shape of an argument, for tracing without data (`trace`, fc.export): None dims
    are known only at run time. Not a tuple, so nest takes it for a leaf."""

    shape: tuple[int | None, ...]
    dtype: Any = "float32"

    def __post_init__(self) -> None:
        dims = map(plain_dim, self.shape)
        object.__setattr__(self, "shape", tuple(None if d is None or d == -1 else int(d) for d in dims))
        object.__setattr__(self, "dtype", as_dtype(self.dtype))


def _parameter_names(fn: Callable[..., Any], count: int, kwargs: dict[str, Any]) -> list[str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    star = next((p.name for p in parameters if p.kind == p.VAR_POSITIONAL), "arg")
    return [names[i] if i < len(names) else f"{star}{i}" for i in range(count)]


def _placeholders(value: Any, name: str, feeds: list[Tensor]) -> Any:
    """`value` with a placeholder for each leaf that has a dtype and shape (or is a Python number)."""
    leaves = nest.flatten_with_paths(value)
    replaced = []
    for path, leaf in leaves:
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            shape = [None if d is None or d == -1 else int(d) for d in map(plain_dim, leaf.shape)]
            leaf = placeholder(as_dtype(leaf.dtype), shape, name=_op_name(name + path))
            feeds.append(leaf)
        replaced.append(leaf)
    return nest.pack_sequence_as(value, replaced)


def _op_name(path: str) -> str:
    """An op name from an argument's path: params['W'][0] -> params/W/0."""
    parts = [p.strip("'\"") for p in path.replace("]", "").replace(".", "[").split("[") if p]
    name = "/".join("".join(c if c.isalnum() or c in "_.-" else "_" for c in part) for part in parts)
    return name if name and name[0].isalnum() else f"arg{name}"


def _results(result: Any, graph: Graph, fn: Callable[..., Any]) -> tuple[list[Tensor], Any]:
    """The tensors the traced function returns, and its result with each leaf a Tensor (or None)."""
    leaves = []
    fetches = []
    for path, leaf in nest.flatten_with_paths(result, "result"):
        if isinstance(leaf, Tensor):
            if leaf.graph is not graph:
                raise GraphError(f"the function returns {leaf.name!r} at {path}, a tensor of another graph: a jitted "
                                 "function returns what it computes from its arguments", where=definition_line(fn))
        elif leaf is None:
            leaves.append(None)
            continue
        elif isinstance(leaf, (np.ndarray, np.generic, bool, int, float)):
            leaf = constant(leaf)
        else:
            raise FlowcTypeError(f"the function returns a {type(leaf).__name__} at {path}; a jitted function returns "
                                 "Tensors, arrays and numbers, and tuples, lists, dicts and namedtuples of them",
                                 where=definition_line(fn))
        leaves.append(leaf)
        fetches.append(leaf)
    return fetches, nest.pack_sequence_as(result, leaves)


def definition_line(fn: Callable[..., Any]) -> str | None:
    """'file.py:LINE' where `fn` is defined (partials and wrappers seen through)."""
    while isinstance(fn, functools.partial) or hasattr(fn, "__wrapped__"):
        fn = fn.func if isinstance(fn, functools.partial) else fn.__wrapped__
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code is not None else None
