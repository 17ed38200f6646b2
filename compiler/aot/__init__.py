"""Ahead-of-time export: a graph's run, or a traced function, as DIR/libNAME.so + DIR/NAME.h.

`fc.export` lowers what is asked as a Session would (compiler/lowering.py), compiles it for the CPU
target, and writes a library with a plain C API that no Python is needed to call (build.py,
c_source.py); `fc.load` (runtime/exported.py) calls such a library from Python.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from flowc.ir.errors import FetchError, FlowcError, FlowcTypeError

from ..graph import VARIABLE, Graph, Operation, Tensor, get_default_graph
from ..jit_trace import TensorSpec, definition_line, trace
from ..lowering import lower
from ..options import CompileOptions
from ..state_ops import GLOBAL_VARIABLES
from .build import Exported, export_lowered

__all__ = ["export", "Exported", "TensorSpec"]


def export(path: str, fetches: Any, *feeds: Any, session: Any = None, variables: str = "state") -> Exported:
    """Write DIR/libNAME.so and DIR/NAME.h (path = "DIR/NAME"), a C API running `fetches` given `feeds`.

    From a graph: `fc.export(path, fetches, feeds, session=sess, variables="state")`; fetches and feeds
    are tensors, ops or names (lists, in the order of the C API's outputs and inputs, as tfcompile's
    config lists them); fetched ops (a training step) run without giving an output. The variables the
    run reads take their values from `session`: `variables="state"` keeps them in each context,
    initialized to those values and updated in place by each run (NAME_variable reads and writes
    them); `variables="constants"` bakes the values in, and updates are dropped.

    From a function: `fc.export(path, fn, *specs)` with an `fc.TensorSpec(shape, dtype)` per argument
    (None for a dim known only at run time) traces `fn` and exports what it returns.

    >>> import flowc as fc, numpy as np, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> exported = fc.export(os.path.join(folder, "double"), lambda x: x * 2, fc.TensorSpec([None], fc.float32))
    >>> double = fc.load(os.path.join(folder, "double"))
    >>> double(np.array([1, 2], np.float32))
    array([2., 4.], dtype=float32)
    >>> import shutil; double.close(); shutil.rmtree(folder)
    """
    if variables not in ("state", "constants"):
        raise FlowcError(f"fc.export: variables must be 'state' or 'constants', got {variables!r}")
    graph_like = isinstance(fetches, (Tensor, Operation, str)) or hasattr(fetches, "_graph_element")
    if callable(fetches) and not graph_like:
        return export_function(path, fetches, feeds, variables)
    if len(feeds) > 1:
        raise FlowcError(f"fc.export(path, fetches, feeds, session=...): feeds is one list, got {len(feeds)} arguments")
    return export_graph(path, fetches, list(_as_list(feeds[0])) if feeds else [], session, variables)


def export_graph(path: str, fetches: Any, feeds: Sequence[Any], session: Any, variables: str,
                 graph: Graph | None = None, source: str = "", stages: list | None = None) -> Exported:
    """fc.export of a graph's run (its docstring); `graph` when there is no session; `stages` collects
    (stage, seconds)."""
    started = time.perf_counter()
    graph = session.graph if session is not None else graph or _graph_of(fetches)
    elements = [_fetch(graph, f) for f in _as_list(fetches)]
    tensors = list(dict.fromkeys(e for e in elements if isinstance(e, Tensor)))
    targets = list(dict.fromkeys(e for e in elements if isinstance(e, Operation)))
    feed_tensors = [_feed(graph, f) for f in feeds]
    if len(set(feed_tensors)) != len(feed_tensors):
        raise FetchError("fc.export: a tensor is fed twice in feeds")
    lowered = lower(graph, tensors, targets, feed_tensors)
    stages = stages if stages is not None else []
    stages.append(("lower", time.perf_counter() - started))
    sig = lowered.signature
    state = variables == "state"
    used = list(dict.fromkeys([*sig.variables, *sig.updates])) if state else list(sig.variables)
    values = [_value(session, var, var in sig.variables) for var in used]
    options = session.options if session is not None else CompileOptions.from_environment()
    step = int(session._step) if session is not None else 0
    where = source or f"a run of {', '.join(e.name for e in elements)}"
    return export_lowered(lowered, path, used, values, state, options, step, where, stages)


def export_function(path: str, fn: Callable[..., Any], specs: Sequence[Any], variables: str = "state",
                    stages: list | None = None) -> Exported:
    """fc.export of a function traced with `specs` (its docstring); `stages` collects (stage, seconds)."""
    started = time.perf_counter()
    for index, spec in enumerate(specs):
        if not (hasattr(spec, "shape") and hasattr(spec, "dtype")):
            raise FlowcTypeError(f"fc.export(path, fn, *specs): spec {index} is a {type(spec).__name__}; each argument "
                                 "of fn needs an fc.TensorSpec(shape, dtype)", where=definition_line(fn))
    try:
        traced = trace(fn, specs)
    except TypeError as error:  # Python's own: fn takes another number of arguments
        if isinstance(error, FlowcError):
            raise
        raise FlowcTypeError(f"fc.export: {len(specs)} spec(s) do not fit the function: {error}",
                             where=definition_line(fn)) from None
    session = None
    if traced.graph.get_collection(GLOBAL_VARIABLES):  # the function makes Variables: their initial values
        from ..session import Session
        from ..state_ops import global_variables_initializer

        session = Session(graph=traced.graph)
        with traced.graph.as_default():
            session.run(global_variables_initializer())
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", "a function"))
    stages = stages if stages is not None else []
    stages.append(("trace", time.perf_counter() - started))
    try:
        return export_graph(path, traced.fetches, traced.feeds, session, variables, traced.graph,
                            f"function {name}", stages)
    finally:
        if session is not None:
            session.close()


def _graph_of(fetches: Any) -> Graph:
    """The graph of the first fetched tensor or op (names: the default graph)."""
    for leaf in _as_list(fetches):
        element = getattr(leaf, "_graph_element", None)
        graph = getattr(element() if element else leaf, "graph", None)
        if graph is not None:
            return graph
    return get_default_graph()


def _as_list(value: Any) -> Sequence[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _fetch(graph: Graph, leaf: Any) -> Tensor | Operation:
    element = graph.as_graph_element(leaf)
    if isinstance(element, Operation) and element.type == VARIABLE:
        return element.variable._graph_element()
    if isinstance(leaf, str) and isinstance(element, Operation) and element.outputs:
        return element.outputs[0]  # a bare name fetches the op's first output, as Session.run does
    return element


def _feed(graph: Graph, key: Any) -> Tensor:
    element = graph.as_graph_element(key)
    if isinstance(element, Operation):
        if len(element.outputs) != 1:
            raise FetchError(f"cannot feed op {element.name!r}: it has {len(element.outputs)} outputs; "
                             "name a tensor like 'x:0'")
        element = element.outputs[0]
    return element


def _value(session: Any, var: Operation, read: bool) -> np.ndarray:
    if session is None:
        raise FlowcError("fc.export: this run uses Variables; pass session= (the Session holding their values)",
                         op=f"Variable '{var.name}'", where=var.loc)
    if not read and var not in session._values:  # only assigned: its first value comes from the run
        return np.zeros(var.variable.shape, var.variable.dtype.np)
    return np.ascontiguousarray(session._value_of(var))
