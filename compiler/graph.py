"""The graph a user builds: Graph, Operation, Tensor, and the scopes around them.

Names follow TensorFlow 1. A graph op records its kind (`type`: an IR op name
such as "matmul", or a graph-only kind such as "Placeholder" or "Assign"),
inputs, attributes, control inputs, device, and the user's source line.
Types are inferred when an op is created, by the same type rule the IR uses
(one definition per op), so shape errors surface at the user's line.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, Iterator, Sequence

from flowc.ir import TensorType, Value
from flowc.ir import op as registry
from flowc.ir.errors import FetchError, FlowcError, GraphError
from flowc.ir.types import DType, format_shape

from .device_spec import DeviceSpec
from .operators import TensorOperators
from .sources import user_location
from .tensor_shape import TensorShape

# Graph-only kinds: lowering gives each its meaning (see lowering.py).
PLACEHOLDER, CONST, VARIABLE, READ, NOOP = "Placeholder", "Const", "VariableV2", "ReadVariable", "NoOp"
ASSIGN_KINDS = ("Assign", "AssignAdd", "AssignSub")
GRAPH_KINDS = (PLACEHOLDER, CONST, VARIABLE, READ, NOOP, *ASSIGN_KINDS)

_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")


class Tensor(TensorOperators):
    """One output of a graph op: a symbolic value with a static dtype and shape."""

    __slots__ = ("op", "value_index", "type")
    __array_priority__ = 100  # numpy defers `ndarray + tensor` to Tensor.__radd__

    def __init__(self, op: Operation, value_index: int, type: TensorType):
        self.op = op
        self.value_index = value_index
        self.type = type

    @property
    def name(self) -> str:
        return f"{self.op.name}:{self.value_index}"

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> TensorShape:
        """The static shape: a tuple of dims (None: known at run time) with TF1's TensorShape methods."""
        if self.has_unknown_rank:
            return TensorShape(None)  # Note [placeholders of unknown rank] in unknown_rank.py
        return TensorShape(self.type.shape)

    @property
    def has_unknown_rank(self) -> bool:
        """Whether the rank is known only when the graph runs: a placeholder made without a shape, or an op
        whose rank follows from one (Note [placeholders of unknown rank] in unknown_rank.py)."""
        return self.value_index in self.op.unknown_rank_outputs

    def get_shape(self) -> TensorShape:
        return self.shape

    def set_shape(self, shape: Any) -> None:
        """Refine the static shape (TF1's set_shape): see tf1_session.set_shape."""
        from .tf1_session import set_shape

        set_shape(self, shape)

    def eval(self, feed_dict: dict[Any, Any] | None = None, session: Any = None) -> Any:
        """This tensor's value, run in `session` or the default Session (TF1's Tensor.eval)."""
        from .tf1_session import run_in_session

        return run_in_session(self, feed_dict, session, "Tensor.eval")

    @property
    def graph(self) -> Graph:
        return self.op.graph

    @property
    def device(self) -> str:
        return self.op.device

    def __repr__(self) -> str:
        return f"<fc.Tensor '{self.name}' shape={format_shape(self.shape)} dtype={self.dtype.name}>"

    def __bool__(self) -> bool:
        raise GraphError(f"the truth value of tensor {self.name!r} is not known while building the graph; "
                         "use fc.cond or fc.where", where=self.op.loc)

    def __iter__(self) -> Iterator[Tensor]:
        if not self.shape or self.type.shape[0] is None:
            raise GraphError(f"cannot iterate over tensor {self.name!r} of shape {format_shape(self.shape)}")
        return (self[i] for i in range(self.type.shape[0]))

    def __len__(self) -> int:
        if not self.shape or self.type.shape[0] is None:
            raise GraphError(f"len() of tensor {self.name!r} of shape {format_shape(self.shape)} is not known")
        return self.type.shape[0]

    __hash__ = object.__hash__  # == builds no graph op, as in TensorFlow 1


class Operation:
    """A node of the graph. `outputs` are its Tensors; `type` names its kind."""

    def __init__(self, graph: Graph, type: str, name: str, inputs: Sequence[Tensor], attrs: dict[str, Any],
                 output_types: Sequence[TensorType], control_inputs: Sequence[Operation], device: str,
                 loc: str | None, rank_rules: dict[str, str] | None = None,
                 unknown_rank_outputs: frozenset[int] = frozenset()):
        self.graph = graph
        self.type = type
        self.name = name
        self.inputs = list(inputs)
        self.attrs = dict(attrs)
        self.control_inputs = list(control_inputs)
        self.device = device
        self.loc = loc
        self.id = len(graph._ops)  # creation order is a topological order of the graph
        # Note [placeholders of unknown rank] in unknown_rank.py: the outputs whose rank is known only
        # when the graph runs, and the attributes that follow from the inputs' ranks (by rule name).
        self.unknown_rank_outputs = frozenset({0}) if attrs.get("unknown_rank") else unknown_rank_outputs
        self.rank_rules = rank_rules or _NO_RULES
        self.outputs = [Tensor(self, i, t) for i, t in enumerate(output_types)]

    @property
    def display_name(self) -> str:
        return f"{self.type} '{self.name}'"

    def run(self, feed_dict: dict[Any, Any] | None = None, session: Any = None) -> None:
        """Run this op in `session` or the default Session (TF1's Operation.run)."""
        from .tf1_session import run_in_session

        run_in_session(self, feed_dict, session, "Operation.run")

    def __repr__(self) -> str:
        return f"<fc.Operation '{self.name}' type={self.type}>"


class Graph:
    """A dataflow graph. Ops are added by the fc.* functions inside `as_default()`."""

    def __init__(self) -> None:
        self._ops: list[Operation] = []
        self._by_name: dict[str, Operation] = {}
        self._name_counts: dict[str, int] = {}
        self._scope_stack: list[str] = []
        self._control_stack: list[list[Operation]] = []
        self._device_stack: list[str] = []  # the merged spec of each open `device` scope, as text
        self.collections: dict[str, list[Any]] = {}
        self.seed: int | None = None  # the graph-level random seed (fc.set_random_seed)
        self.version = 0  # bumped on every new op; part of nothing but handy in debugging
        self.finalized = False  # set by finalize(): no op may be added any more, as in TF1

    # -- building ------------------------------------------------------------

    def create_op(self, type: str, inputs: Sequence[Tensor] = (), attrs: dict[str, Any] | None = None,
                  name: str | None = None, output_types: Sequence[TensorType] | None = None,
                  rank_rules: dict[str, str] | None = None) -> Operation:
        """Add an op. IR ops get their output types from the IR type rule. `rank_rules` name the
        attributes that follow from the inputs' ranks (Note [placeholders of unknown rank] in
        unknown_rank.py): they are worked out again for each rank an input of unknown rank is fed."""
        attrs = dict(attrs or {})
        loc = user_location()
        if self.finalized:
            raise GraphError(f"the graph is finalized, so no {type} op can be added to it (ops are usually made "
                             "inside the training loop by mistake: build them before the loop)", where=loc)
        for tensor in inputs:
            if not isinstance(tensor, Tensor):
                raise GraphError(f"input of {type} is {tensor!r}, not a Tensor", where=loc)
            if tensor.graph is not self:
                inside = getattr(tensor.graph, "purpose", None)  # a FuncGraph: func_graph.py
                hint = f" (it was made inside {inside}; return it from there to use it here)" if inside else ""
                raise GraphError(f"input {tensor.name!r} of {type} belongs to another graph{hint}", where=loc)
        op_name = self.unique_name(name or _default_name(type), loc)
        unknown: frozenset[int] = _KNOWN
        if output_types is None and _any_unknown_rank(inputs):
            from .unknown_rank import infer_unknown_rank  # Note [placeholders of unknown rank]

            attrs, output_types, unknown = infer_unknown_rank(type, inputs, attrs, rank_rules or {}, op_name, loc)
        elif output_types is None:
            attrs, output_types = infer_output_types(type, inputs, attrs, op_name, loc)
        control = [op for frame in self._control_stack for op in frame]
        device = self._device_stack[-1] if self._device_stack else ""
        op = Operation(self, type, op_name, inputs, attrs, output_types, _unique(control), device, loc, rank_rules,
                       unknown)
        self._ops.append(op)
        self._by_name[op_name] = op
        self.version += 1
        return op

    @contextlib.contextmanager
    def all_or_nothing(self) -> Iterator[None]:
        """The ops, names, collections and seed added inside are taken back if the block raises,
        so an import_graph_def that fails half-way leaves the graph as it was."""
        count, by_name, counts, seed = len(self._ops), dict(self._by_name), dict(self._name_counts), self.seed
        collections = {key: list(values) for key, values in self.collections.items()}
        try:
            yield
        except BaseException:
            del self._ops[count:]
            self._by_name, self._name_counts, self.collections, self.seed = by_name, counts, collections, seed
            raise

    def unique_name(self, name: str, loc: str | None = None) -> str:
        """`name` under the current name scope, suffixed _1, _2... when taken."""
        if not _NAME.match(name):
            raise GraphError(f"{name!r} is not a valid op name (letters, digits, '_', '.', '-', '/')", where=loc)
        full = "/".join([*self._scope_stack, name])
        if full not in self._by_name and full not in self._name_counts:
            self._name_counts[full] = 0
            return full
        count = self._name_counts.get(full, 0)
        while True:
            count += 1
            candidate = f"{full}_{count}"
            if candidate not in self._by_name:
                self._name_counts[full] = count
                return candidate

    # -- scopes ----------------------------------------------------------------

    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        _default.stack.append(self)
        try:
            yield self
        finally:
            _default.stack.pop()

    @contextlib.contextmanager
    def name_scope(self, name: str) -> Iterator[str]:
        """Ops made inside are named under `name`; "a/b/" (ending in "/") re-enters that scope as is, as in TF."""
        scope = name.rstrip("/")
        if scope and not _NAME.match(scope):
            raise GraphError(f"{name!r} is not a valid name scope")
        saved = self._scope_stack
        self._scope_stack = [scope] if name.endswith("/") else [*saved, scope]
        try:
            yield "/".join(self._scope_stack) + "/"
        finally:
            self._scope_stack = saved

    @contextlib.contextmanager
    def control_dependencies(self, control_inputs: Sequence[Any] | None) -> Iterator[None]:
        """Ops created inside run after `control_inputs`; None clears the outer ones."""
        saved = self._control_stack
        if control_inputs is None:
            self._control_stack = []
        else:
            self._control_stack = [*saved, [as_operation(c) for c in control_inputs]]
        try:
            yield
        finally:
            self._control_stack = saved

    @contextlib.contextmanager
    def device(self, spec: Any) -> Iterator[None]:
        """Ops made inside are placed on `spec`, merged into the enclosing scopes' spec (device_spec.py);
        None or "" clears them."""
        inner = DeviceSpec.parse(spec, user_location())
        outer = DeviceSpec.parse(self._device_stack[-1]) if self._device_stack and spec else DeviceSpec()
        self._device_stack.append(str(inner.merged_into(outer)))
        try:
            yield
        finally:
            self._device_stack.pop()

    @property
    def control_scope(self) -> tuple[Operation, ...]:
        return tuple(_unique([op for frame in self._control_stack for op in frame]))

    # -- looking things up -----------------------------------------------------

    def get_operations(self) -> list[Operation]:
        return list(self._ops)

    def get_operation_by_name(self, name: str) -> Operation:
        try:
            return self._by_name[name]
        except KeyError:
            raise FetchError(f"the graph has no op named {name!r}{close_names(name, self._by_name)}") from None

    def get_tensor_by_name(self, name: str) -> Tensor:
        op_name, sep, index = name.rpartition(":")
        if not sep or not index.isdigit():
            raise FetchError(f"{name!r} is not a tensor name; tensor names look like 'op_name:0'")
        op = self.get_operation_by_name(op_name)
        variable = getattr(op, "variable", None)
        if op.type == VARIABLE and variable is not None and int(index) == 0:
            return variable._graph_element()  # "v:0" is the Variable's name (v.name): its value
        if int(index) >= len(op.outputs):
            raise FetchError(f"op {op_name!r} has {len(op.outputs)} outputs, so {name!r} does not exist")
        return op.outputs[int(index)]

    def as_graph_element(self, obj: Any) -> Tensor | Operation:
        """A Tensor or Operation from a Tensor, Operation, Variable or name."""
        if isinstance(obj, str):
            return self.get_tensor_by_name(obj) if ":" in obj else self.get_operation_by_name(obj)
        element = getattr(obj, "_graph_element", None)  # Variable
        if element is not None:
            obj = element()
        if isinstance(obj, (Tensor, Operation)):
            if obj.graph is not self:
                op = obj.op if isinstance(obj, Tensor) else obj
                raise FetchError(f"{obj!r} belongs to another graph", op=op.display_name, where=op.loc)
            return obj
        raise FetchError(f"cannot interpret {obj!r} (a {type(obj).__name__}) as a tensor or op of the graph")

    def finalize(self) -> None:
        """Make the graph read-only: adding an op raises from now on (TF1's Graph.finalize)."""
        self.finalized = True

    def add_to_collection(self, key: str, value: Any) -> None:
        self.collections.setdefault(key, []).append(value)

    def get_collection(self, key: str) -> list[Any]:
        return list(self.collections.get(key, []))

    def as_graph_def(self) -> dict[str, Any]:
        from .graph_def import graph_to_def

        return graph_to_def(self)


def infer_output_types(type: str, inputs: Sequence[Tensor], attrs: dict[str, Any], name: str,
                       loc: str | None) -> tuple[dict[str, Any], list[TensorType]]:
    """Run the IR op's type rule on the inputs' types; errors name the op and line."""
    if type not in registry.OPS:
        raise GraphError(f"no output types given for graph-only op kind {type!r}", op=f"{type} '{name}'", where=loc)
    cls = registry.get(type)
    try:
        probe = cls([Value(t.type) for t in inputs], attrs)
    except FlowcError as error:
        error.op = None  # the type rule names the op kind; the user knows it by kind and name
        if "one dtype" in error.detail:  # "operands must have one dtype": say which operand and what to do
            error.detail += _dtype_hint(inputs)
        raise error.located(op=f"{type} '{name}'", where=loc) from None
    return probe.attributes, [r.type for r in probe.results]


def _dtype_hint(inputs: Sequence[Tensor]) -> str:
    """Where operands of several dtypes came from and what to do. A placeholder is the usual cause
    (fc.placeholder(fc.float64) meeting float32 weights): it is named, with its line, first."""
    if len({t.dtype for t in inputs}) < 2:
        return ""
    fed = [t for t in inputs if t.op.type == PLACEHOLDER]
    built = [t for t in inputs if t.op.type != PLACEHOLDER]
    want = (built or inputs)[0].dtype
    odd = [t for t in (fed if built else inputs) if t.dtype != want] or [t for t in inputs if t.dtype != want]
    parts = []
    for tensor in odd:
        made = f" (made at {tensor.op.loc})" if tensor.op.loc else ""
        fix = f"make the placeholder {want.name}, or cast" if tensor.op.type == PLACEHOLDER else "cast"
        parts.append(f"{tensor.op.type} '{tensor.op.name}'{made} is {tensor.dtype.name} where {want.name} is "
                     f"expected: {fix} it with fc.cast(..., fc.{want.name})")
    return "; " + "; ".join(parts)


def as_operation(obj: Any) -> Operation:
    if isinstance(obj, Operation):
        return obj
    if isinstance(obj, Tensor):
        return obj.op
    op = getattr(obj, "op", None)
    if isinstance(op, Operation):
        return op
    raise GraphError(f"control inputs must be ops or tensors, got {obj!r}")


_KNOWN: frozenset[int] = frozenset()
_NO_RULES: dict[str, str] = {}  # shared by the ops without rank rules: never written


def _any_unknown_rank(inputs: Sequence[Tensor]) -> bool:
    for tensor in inputs:  # a loop, not any(): op creation is on every graph's build path
        if tensor.op.unknown_rank_outputs and tensor.value_index in tensor.op.unknown_rank_outputs:
            return True
    return False


def _default_name(type: str) -> str:
    return type if type in GRAPH_KINDS else "".join(part.capitalize() for part in type.split("_"))


def _unique(ops: Sequence[Operation]) -> list[Operation]:
    seen: dict[int, Operation] = {}
    for op in ops:
        seen.setdefault(id(op), op)
    return list(seen.values())


def close_names(name: str, names: Any) -> str:
    """"; did you mean 'a', 'b'?" for the names like `name` (case aside), or ""."""
    import difflib

    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3)
    return f"; did you mean {', '.join(repr(by_lower[c]) for c in close)}?" if close else ""


# -- the default graph ----------------------------------------------------------


class _DefaultStack(threading.local):
    def __init__(self) -> None:
        self.stack: list[Graph] = []
        self.global_graph: Graph | None = None


_default = _DefaultStack()


def get_default_graph() -> Graph:
    """The innermost `as_default()` graph, else a global graph made on first use."""
    if _default.stack:
        return _default.stack[-1]
    if _default.global_graph is None:
        _default.global_graph = Graph()
    return _default.global_graph


def reset_default_graph() -> None:
    if _default.stack:
        raise GraphError("reset_default_graph() inside a `with graph.as_default()` block")
    _default.global_graph = None


def name_scope(name: str) -> contextlib.AbstractContextManager[str]:
    return get_default_graph().name_scope(name)


def control_dependencies(control_inputs: Sequence[Any] | None) -> contextlib.AbstractContextManager[None]:
    return get_default_graph().control_dependencies(control_inputs)


def device(spec: str) -> contextlib.AbstractContextManager[None]:
    return get_default_graph().device(spec)


def set_random_seed(seed: int) -> None:
    get_default_graph().seed = int(seed)
