"""`flowc compile SOURCE -o DIR/NAME`: a function of a Python file, or a graph_def JSON file, exported
(fc.export) with the stages' times printed."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from typing import Sequence

from flowc.ir.errors import FlowcError
from flowc.ir.types import as_dtype

from ..jit_trace import TensorSpec
from . import export_function, export_graph

_SPEC = re.compile(r"^([A-Za-z_][\w/.-]*)=(\w+)\[([^\]]*)\]$")


def compile_source(source: str, output: str, inputs: Sequence[str], feeds: Sequence[str], fetches: Sequence[str],
                   variables: str) -> str:
    """Export `source` to `output` (DIR/NAME); the report: the files written and each stage's time."""
    stages: list[tuple[str, float]] = []
    started = time.perf_counter()
    if source.endswith(".json"):
        if inputs:
            raise FlowcError("flowc compile: --input is for file.py:function; a graph_def takes --feed and --fetch")
        if not fetches:
            raise FlowcError(f"flowc compile {source}: name what the library computes with --fetch (repeatable)")
        graph, session = _load_graph(source)
        stages.append(("load", time.perf_counter() - started))
        exported = export_graph(output, fetches, feeds, session, variables, graph, os.path.basename(source), stages)
    else:
        if feeds or fetches:
            raise FlowcError("flowc compile: --feed and --fetch are for a graph_def; a function takes --input specs")
        fn = _load_function(source)
        specs = _specs(fn, inputs, source)
        stages.append(("load", time.perf_counter() - started))
        exported = export_function(output, fn, specs, variables, stages)
    return exported.report() + "\n"


def _load_graph(path: str):  # noqa: ANN202  (a Graph and the Session holding its initial variable values)
    from ..cli import read_text
    from ..graph import Graph
    from ..graph_def import import_graph_def
    from ..session import Session
    from ..state_ops import GLOBAL_VARIABLES, global_variables_initializer

    graph = Graph()
    with graph.as_default():
        import_graph_def(read_text(path, "graph_def file"), name="")
        session = None
        if graph.get_collection(GLOBAL_VARIABLES):  # a graph_def holds initializers, not values: run them
            session = Session(graph=graph)
            session.run(global_variables_initializer())
    return graph, session


def _load_function(source: str):  # noqa: ANN202
    path, _, name = source.rpartition(":")
    if not path or not name:
        raise FlowcError(f"flowc compile: SOURCE is file.py:function or a graph_def .json file, got {source!r}")
    if not os.path.isfile(path):
        raise FlowcError(f"flowc compile: no file {path!r}")
    spec = importlib.util.spec_from_file_location(f"flowc_compile_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # its own imports of files beside it
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise FlowcError(f"flowc compile: {path} has no function {name!r}")
    return fn


def _specs(fn, inputs: Sequence[str], source: str) -> list[TensorSpec]:  # noqa: ANN001
    import inspect

    given: dict[str, TensorSpec] = {}
    for text in inputs:
        match = _SPEC.match(text.replace(" ", ""))
        if match is None:
            raise FlowcError(f"flowc compile: --input {text!r} is not NAME=DTYPE[DIMS] (like x=float32[None,784])")
        name, dtype, dims = match.groups()
        try:
            shape = tuple(None if d in ("None", "?", "-1") else int(d) for d in dims.split(",") if d)
        except ValueError:
            raise FlowcError(f"flowc compile: --input {text!r}: a dim is an integer or None") from None
        given[name] = TensorSpec(shape, as_dtype(dtype))
    parameters = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    missing = [p for p in parameters if p not in given]
    unknown = [n for n in given if n not in parameters]
    if missing or unknown:
        raise FlowcError(f"flowc compile {source}: the function takes ({', '.join(parameters)}); "
                         + (f"no --input for {', '.join(missing)}" if missing else "")
                         + ("; " if missing and unknown else "")
                         + (f"--input {', '.join(unknown)} names no parameter" if unknown else ""))
    return [given[p] for p in parameters]
