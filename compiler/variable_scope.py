"""TensorFlow 1's variable scopes: `fc.variable_scope` and `fc.get_variable`.

A variable scope names the Variables that `get_variable` makes ("layer/w"), says whether
`get_variable` makes new ones or returns those already made under that name (`reuse`), and
gives defaults (initializer, regularizer, dtype) to the `get_variable` calls inside it.

The Variables made by `get_variable` are kept per graph by their full names, so reuse finds
them again in any later scope of the same name. A variable scope also opens a name scope for
the ops made inside: its own name, made unique as TensorFlow does ("layer", then "layer_1"
when the scope is entered again), while `get_variable` names its Variable by the variable
scope alone, whatever the name scope ("layer/w" in the name scope "layer_1/").

    >>> import flowc as fc
    >>> with fc.Graph().as_default():
    ...     with fc.variable_scope("layer"):
    ...         w = fc.get_variable("w", [2, 3])
    ...     with fc.variable_scope("layer", reuse=True):
    ...         again = fc.get_variable("w")
    ...     (w.name, again is w)
    ('layer/w:0', True)
"""

from __future__ import annotations

import contextlib
import enum
import weakref
from typing import Any, Callable, Iterator, Sequence


from flowc.ir.errors import GraphError
from flowc.ir.types import DType, as_dtype, float32, int64

from .graph import Graph, get_default_graph
from .initializers import Zeros, glorot_uniform_initializer
from .sources import user_location
from .state_ops import GLOBAL_VARIABLES, TRAINABLE_VARIABLES, Variable
from .tensor_shape import plain_dim

REGULARIZATION_LOSSES = "regularization_losses"
GLOBAL_STEP = "global_step"


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE  # get_variable makes the Variable if it does not exist, else returns it


class VariableScope:
    """A variable scope: its name, reuse mode and the defaults of get_variable inside it."""

    def __init__(self, reuse: bool | _ReuseMode | None, name: str = "", initializer: Any = None,
                 regularizer: Callable[[Any], Any] | None = None, dtype: DType | str = float32,
                 name_scope: str = ""):
        self.name = name
        self.reuse = reuse
        self.initializer = initializer
        self.regularizer = regularizer
        self.dtype = as_dtype(dtype)
        self.original_name_scope = name_scope  # "layer/": the name scope it first opened

    def reuse_variables(self) -> None:
        """From here on, get_variable in this scope returns existing Variables."""
        self.reuse = True

    def set_initializer(self, initializer: Any) -> None:
        self.initializer = initializer

    def set_regularizer(self, regularizer: Callable[[Any], Any] | None) -> None:
        self.regularizer = regularizer

    def get_variable(self, name: str, shape: Sequence[int] | None = None, dtype: DType | str | None = None,
                     **options: Any) -> Variable:
        return _get_variable(self, name, shape, dtype, **options)

    def __repr__(self) -> str:
        return f"<fc.VariableScope '{self.name}' reuse={self.reuse}>"


class _Store:
    """Per graph: the variable scope now open, the Variables by full name, the scope names used."""

    def __init__(self) -> None:
        self.scope = VariableScope(False)
        self.variables: dict[str, Variable] = {}
        self.scope_counts: dict[str, int] = {}


_stores: weakref.WeakKeyDictionary[Graph, _Store] = weakref.WeakKeyDictionary()


def _outermost(graph: Graph) -> Graph:
    """The graph that holds the Variables: a branch or loop body (FuncGraph) makes and finds its
    Variables in the graph around it, as TensorFlow 1's init_scope does for a body."""
    while getattr(graph, "outer", None) is not None:
        graph = graph.outer  # type: ignore[attr-defined]
    return graph


def _store(graph: Graph) -> _Store:
    graph = _outermost(graph)
    store = _stores.get(graph)
    if store is None:
        store = _stores[graph] = _Store()
    return store


def get_variable_scope() -> VariableScope:
    """The variable scope now open in the default graph (the unnamed root outside any)."""
    return _store(get_default_graph()).scope


@contextlib.contextmanager
def _absolute_name_scope(graph: Graph, scope: str) -> Iterator[None]:
    """Ops made inside are named under `scope` ("a/b", or "" for none), whatever the current name scope."""
    saved = graph._scope_stack
    graph._scope_stack = [scope] if scope else []
    try:
        yield
    finally:
        graph._scope_stack = saved


def _unique_scope_name(store: _Store, full: str) -> str:
    """`full`, or `full_1`, `full_2`... for a default_name entered more than once."""
    count = store.scope_counts.get(full)
    if count is None:
        store.scope_counts[full] = 0
        return full
    while True:
        count += 1
        candidate = f"{full}_{count}"
        if candidate not in store.scope_counts:
            store.scope_counts[full] = count
            store.scope_counts[candidate] = 0
            return candidate


@contextlib.contextmanager
def variable_scope(name_or_scope: str | VariableScope | None, default_name: str | None = None,
                   values: Sequence[Any] | None = None, initializer: Any = None,
                   regularizer: Callable[[Any], Any] | None = None, reuse: bool | _ReuseMode | None = None,
                   dtype: DType | str | None = None) -> Iterator[VariableScope]:
    """Open a variable scope (a name, or a VariableScope object to re-enter) and its name scope.

    `reuse=True` makes get_variable return existing Variables (and fail for new names),
    `fc.AUTO_REUSE` makes or returns; None inherits the enclosing scope's, and inside a
    reusing scope every scope reuses. `default_name` names the scope when `name_or_scope` is
    None, made unique ("dense", "dense_1"). `values` is accepted for TensorFlow's signature.
    """
    graph = get_default_graph()
    store = _store(graph)
    parent = store.scope
    if name_or_scope is None and default_name is None:
        raise GraphError("variable_scope needs name_or_scope or default_name", op="variable_scope",
                         where=user_location())
    if name_or_scope is None and reuse is True:
        raise GraphError("reuse=True cannot be used without a name_or_scope", op="variable_scope",
                         where=user_location())
    if isinstance(name_or_scope, VariableScope):
        base = name_or_scope
        full = base.name
        store.scope_counts.setdefault(full, 0)
        name_scope = base.original_name_scope
        inherited = base.reuse
    else:
        if name_or_scope is not None and not isinstance(name_or_scope, str):
            raise GraphError(f"name_or_scope must be a string or a VariableScope, got {name_or_scope!r}",
                             op="variable_scope", where=user_location())
        base = parent
        short = name_or_scope if name_or_scope is not None else default_name
        full = f"{parent.name}/{short}" if parent.name else short
        if name_or_scope is None:
            full = _unique_scope_name(store, full)
            short = full.rpartition("/")[2]
        else:
            store.scope_counts.setdefault(full, 0)
        name_scope = graph.unique_name(short, user_location()) + "/"
        inherited = parent.reuse
    own_reuse = reuse if reuse is not None else inherited
    if parent.reuse is True or own_reuse is True:
        effective = True
    else:
        effective = own_reuse or parent.reuse or False
    scope = VariableScope(effective, full, initializer if initializer is not None else base.initializer,
                          regularizer if regularizer is not None else base.regularizer,
                          dtype if dtype is not None else base.dtype, name_scope)
    store.scope = scope
    try:
        with _absolute_name_scope(graph, name_scope.rstrip("/")):
            yield scope
    finally:
        store.scope = parent


def _get_variable(scope: VariableScope, name: str, shape: Sequence[int] | None, dtype: DType | str | None,
                  initializer: Any = None, regularizer: Callable[[Any], Any] | None = None, trainable: bool = True,
                  collections: Sequence[str] | None = None, **ignored: Any) -> Variable:
    graph = get_default_graph()
    store = _store(graph)
    full = f"{scope.name}/{name}" if scope.name else name
    op = f"get_variable '{full}'"
    existing = store.variables.get(full)
    if existing is not None:
        if scope.reuse is False or scope.reuse is None:
            raise GraphError(f"Variable {full} already exists, disallowed. Did you mean to set reuse=True or "
                             "reuse=fc.AUTO_REUSE in the variable_scope?", op=op, where=user_location())
        if shape is not None and tuple(int(d) for d in shape) != existing.shape:
            raise GraphError(f"Trying to share variable {full}, but specified shape {list(shape)} and found shape "
                             f"{list(existing.shape)}", op=op, where=user_location())
        if dtype is not None and as_dtype(dtype) != existing.dtype:
            raise GraphError(f"Trying to share variable {full}, but specified dtype {as_dtype(dtype).name} and "
                             f"found dtype {existing.dtype.name}", op=op, where=user_location())
        return existing
    if scope.reuse is True:
        raise GraphError(f"Variable {full} does not exist, or was not created with fc.get_variable(). Did you mean "
                         "to set reuse=fc.AUTO_REUSE in the variable_scope?", op=op, where=user_location())
    outer = _outermost(graph)
    with outer.as_default():
        variable = _new_variable(outer, scope, full, shape, dtype, initializer, trainable, collections)
        store.variables[full] = variable
        regularizer = regularizer if regularizer is not None else scope.regularizer
        if regularizer is not None:
            with _absolute_name_scope(outer, f"{variable.op.name}/Regularizer"):
                loss = regularizer(variable)
            if loss is not None:
                outer.add_to_collection(REGULARIZATION_LOSSES, loss)
    return variable


def _new_variable(graph: Graph, scope: VariableScope, full: str, shape: Sequence[int] | None,
                  dtype: DType | str | None, initializer: Any, trainable: bool,
                  collections: Sequence[str] | None) -> Variable:
    op = f"get_variable '{full}'"
    initializer = initializer if initializer is not None else scope.initializer
    if initializer is not None and not callable(initializer):  # a value: its own shape and (unless given) dtype
        if shape is not None:
            raise GraphError("if initializer is a constant, do not specify shape", op=op, where=user_location())
        dtype = as_dtype(dtype) if dtype is not None else None
        make: Callable[[], Any] = lambda: initializer  # noqa: E731
    else:
        dtype = as_dtype(dtype) if dtype is not None else scope.dtype
        if shape is None or any(d is None for d in map(plain_dim, shape)):
            raise GraphError(f"the shape of a new variable ({full}) must be fully defined, got {shape}", op=op,
                             where=user_location())
        if initializer is None:
            initializer = glorot_uniform_initializer() if dtype.is_float else Zeros()
        static = tuple(int(d) for d in shape)
        make = lambda: initializer(static, dtype=dtype)  # noqa: E731
    directory, _, short = full.rpartition("/")

    def initial_value() -> Any:
        with _absolute_name_scope(graph, f"{full}/Initializer"):
            return make()

    with _absolute_name_scope(graph, directory):
        variable = Variable(initial_value, trainable=trainable, name=short, dtype=dtype)
    if variable.op.name != full:
        raise GraphError(f"the graph already has an op named {full!r} that is not a get_variable Variable", op=op,
                         where=user_location())
    if collections is not None:
        _move_to_collections(graph, variable, list(collections))
    return variable


def _move_to_collections(graph: Graph, variable: Variable, collections: list[str]) -> None:
    """Put the Variable in `collections` only (and the trainable ones, if it is trainable)."""
    wanted = set(collections) | ({TRAINABLE_VARIABLES} if variable.trainable else set())
    for key in (GLOBAL_VARIABLES, TRAINABLE_VARIABLES):
        if key not in wanted:
            members = graph.collections.get(key, [])
            if variable in members:
                members.remove(variable)
    for key in collections:
        if variable not in graph.collections.get(key, []):
            graph.add_to_collection(key, variable)


def get_variable(name: str, shape: Sequence[int] | None = None, dtype: DType | str | None = None,
                 initializer: Any = None, regularizer: Callable[[Any], Any] | None = None, trainable: bool = True,
                 collections: Sequence[str] | None = None, **options: Any) -> Variable:
    """The Variable `name` of the current variable scope: made anew, or the existing one when the
    scope reuses (TensorFlow 1's rules and messages). `initializer` is an initializer (called with
    shape and dtype) or a value (then no shape); by default the scope's, else glorot_uniform for
    floats and zeros otherwise. `regularizer(variable)` (or the scope's) goes to
    REGULARIZATION_LOSSES. Other keywords of tf.get_variable (caching_device, partitioner,
    validate_shape, use_resource, ...) are accepted and have no effect.
    """
    return _get_variable(get_variable_scope(), name, shape, dtype, initializer, regularizer, trainable,
                         collections, **options)


def get_global_step(graph: Graph | None = None) -> Variable | None:
    """The graph's global step Variable (the GLOBAL_STEP collection), or None."""
    steps = (graph or get_default_graph()).get_collection(GLOBAL_STEP)
    if len(steps) > 1:
        raise GraphError(f"the {GLOBAL_STEP!r} collection holds {len(steps)} Variables, expected one",
                         op="get_global_step", where=user_location())
    return steps[0] if steps else None


def get_or_create_global_step(graph: Graph | None = None) -> Variable:
    """The global step: an int64 scalar Variable "global_step", made (at 0, not trainable) if missing."""
    graph = graph or get_default_graph()
    step = get_global_step(graph)
    if step is not None:
        return step
    with graph.as_default(), graph.control_dependencies(None), _absolute_name_scope(graph, ""):
        root = _store(graph).scope
        _store(graph).scope = VariableScope(False, "", name_scope="")
        try:
            return get_variable("global_step", shape=[], dtype=int64, initializer=Zeros(), trainable=False,
                                collections=[GLOBAL_VARIABLES, GLOBAL_STEP])
        finally:
            _store(graph).scope = root


def create_global_step(graph: Graph | None = None) -> Variable:
    """A new global step; an error if the graph has one."""
    if get_global_step(graph) is not None:
        raise GraphError("the graph already has a global step", op="create_global_step", where=user_location())
    return get_or_create_global_step(graph)


__all__ = ["AUTO_REUSE", "VariableScope", "get_variable", "get_variable_scope", "variable_scope"]
