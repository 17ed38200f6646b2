"""A Python function of arrays traced into a graph, for fc.export(path, fn, *specs): one placeholder
per argument (named after the parameter), the function called on them, what it returns fetched."""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple, Sequence

from flowc.ir.errors import FlowcError, FlowcTypeError
from flowc.ir.types import as_dtype

from ..array_ops import placeholder
from ..graph import Graph, Tensor


class TensorSpec(NamedTuple):
    """The shape and dtype of an argument, for tracing without data: None dims are known only at run time."""

    shape: tuple[int | None, ...]
    dtype: Any = "float32"


class Trace(NamedTuple):
    graph: Graph
    feeds: list[Tensor]
    fetches: list[Tensor]


def trace(fn: Callable[..., Any], specs: Sequence[Any]) -> Trace:
    """`fn(*placeholders)` in a new Graph, a placeholder per spec; the result a Tensor or a tuple/list of them."""
    where = _definition(fn)
    names = _parameter_names(fn, len(specs), where)
    graph = Graph()
    with graph.as_default():
        feeds = []
        for name, spec in zip(names, specs):
            if not (hasattr(spec, "shape") and hasattr(spec, "dtype")):
                raise FlowcTypeError(f"argument {name!r} of the exported function: expected an fc.TensorSpec(shape, "
                                     f"dtype), got a {type(spec).__name__}", where=where)
            shape = [None if d is None or d == -1 else int(d) for d in spec.shape]
            feeds.append(placeholder(as_dtype(spec.dtype), shape, name=name))
        try:
            result = fn(*feeds)
        except FlowcError as error:
            raise type(error)(f"the function does not accept the specs {list(specs)}: {error.detail}", op=error.op,
                              where=error.where or where) from None
    fetches = list(result) if isinstance(result, (tuple, list)) else [result]
    for index, fetch in enumerate(fetches):
        if not isinstance(fetch, Tensor) or fetch.graph is not graph:
            raise FlowcTypeError(f"the exported function returns a {type(fetch).__name__} at result {index}; it must "
                                 "return tensors computed from its arguments (one, or a tuple or list)", where=where)
    return Trace(graph, feeds, fetches)


def _parameter_names(fn: Callable[..., Any], count: int, where: str | None) -> list[str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return [f"arg{i}" for i in range(count)]
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    if count < len(required) or (count > len(positional) and not variadic):
        raise FlowcTypeError(f"the function takes {len(required)} argument(s) ({', '.join(p.name for p in positional)})"
                             f", {count} spec(s) were given", where=where)
    return [positional[i].name if i < len(positional) else f"arg{i}" for i in range(count)]


def _definition(fn: Callable[..., Any]) -> str | None:
    import os

    code = getattr(fn, "__code__", None)
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code is not None else None
