"""Variables and the ops that change them.

Note [variables as arguments]: a Variable's value lives in the Session, not
in the graph. Lowering turns each variable a run reads into an argument of
the compiled function and each variable it assigns into a result, which the
Session writes back. Reads are graph ops of their own (`ReadVariable`), made
per control-dependency scope, so `with fc.control_dependencies([step]): v + 0`
reads the value after `step`, while a plain `v` reads the value at the start
of the run (see lowering.py for the ordering rule).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from flowc.ir import TensorType
from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import DType, format_shape

from .tensor_shape import TensorShape
from .graph import ASSIGN_KINDS, NOOP, READ, VARIABLE, Operation, Tensor, as_operation, get_default_graph
from .math_ops import convert_to_tensor
from .operators import TensorOperators
from .sources import user_location

GLOBAL_VARIABLES = "variables"
TRAINABLE_VARIABLES = "trainable_variables"


class Variable(TensorOperators):
    """A tensor whose value persists across runs of a Session.

    >>> import flowc as fc
    >>> with fc.Graph().as_default():
    ...     W = fc.Variable(fc.zeros([64, 10]), name="W")
    ...     (W.name, W.shape)
    ('W:0', (64, 10))
    """

    def __init__(self, initial_value: Any, trainable: bool = True, name: str | None = None,
                 dtype: DType | str | None = None):
        graph = get_default_graph()
        with graph.control_dependencies(None):  # initializing never waits for the caller's scope
            if callable(initial_value):
                initial_value = initial_value()
            initial = convert_to_tensor(initial_value, dtype=dtype)
            if not initial.type.is_static or initial.has_unknown_rank:  # unknown_rank.py: known at run time only
                shown = "of unknown rank" if initial.has_unknown_rank else str(initial.type)
                raise FlowcTypeError(f"a Variable needs a static shape, its initial value is {shown}",
                                     op=f"Variable '{name or 'Variable'}'", where=user_location())
            self.type: TensorType = initial.type
            self.op = graph.create_op(VARIABLE, (), {"dtype": self.dtype, "shape": self.shape},
                                      name=name or "Variable", output_types=[])
            self.op.variable = self  # lowering and the Session find the Variable from its op
            self.initial_value = initial
            with graph.name_scope(self.op.name + "/"):  # "dense/W/Assign", not "dense/dense/W/Assign"
                self.initializer = graph.create_op("Assign", (initial,), {"var": self.op}, name="Assign",
                                                   output_types=[self.type])
            self._snapshot = self._read(graph)
        self.trainable = trainable
        graph.add_to_collection(GLOBAL_VARIABLES, self)
        if trainable:
            graph.add_to_collection(TRAINABLE_VARIABLES, self)

    @property
    def name(self) -> str:
        return f"{self.op.name}:0"

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def shape(self) -> TensorShape:
        return TensorShape(self.type.shape)  # a tuple of ints, with TF1's as_list() and dims' .value

    def get_shape(self) -> TensorShape:
        return self.shape

    @property
    def graph(self) -> Any:
        return self.op.graph

    @property
    def device(self) -> str:
        return self.op.device

    def _read(self, graph: Any) -> Tensor:
        with graph.name_scope(self.op.name + "/"):  # "dense/W/read" in any scope, as the initializer
            return graph.create_op(READ, (), {"var": self.op}, name="read", output_types=[self.type]).outputs[0]

    def _as_tensor(self) -> Tensor:
        """The value, as seen from the current control-dependency scope."""
        graph = self.graph
        return self._read(graph) if graph.control_scope else self._snapshot

    def _graph_element(self) -> Tensor:
        return self._snapshot

    def value(self) -> Tensor:
        return self._as_tensor()

    def eval(self, session: Any = None) -> Any:
        """This variable's value in `session` or the default Session (TF1's Variable.eval)."""
        return self._graph_element().eval(session=session)

    def read_value(self) -> Tensor:
        """A fresh read, ordered after the ops of the enclosing control_dependencies."""
        return self._read(self.graph)

    def initialized_value(self) -> Tensor:
        """The value after this variable's initializer ran (for initializing others from it)."""
        with self.graph.control_dependencies([self.initializer]):
            return self._read(self.graph)

    def load(self, value: Any, session: Any = None) -> None:
        """Set the value in `session` (default: the default session) without running an op."""
        if session is None:
            from .tf1_session import get_default_session  # late: the session modules import this one

            session = get_default_session()
        if session is None:
            raise GraphError("Variable.load needs a session: pass session= or call it inside `with sess.as_default()`",
                             op=f"Variable '{self.op.name}'", where=user_location())
        session._store(self.op, np.array(value, dtype=self.dtype.name))

    def assign(self, value: Any, use_locking: bool = False, name: str | None = None) -> Tensor:
        return assign(self, value, use_locking=use_locking, name=name)

    def assign_add(self, delta: Any, use_locking: bool = False, name: str | None = None) -> Tensor:
        return assign_add(self, delta, use_locking=use_locking, name=name)

    def assign_sub(self, delta: Any, use_locking: bool = False, name: str | None = None) -> Tensor:
        return assign_sub(self, delta, use_locking=use_locking, name=name)

    def __repr__(self) -> str:
        return f"<fc.Variable '{self.name}' shape={format_shape(self.shape)} dtype={self.dtype.name}>"

    __hash__ = object.__hash__


def _assign(kind: str, default_name: str) -> Callable[..., Tensor]:
    def build(ref: Variable, value: Any, use_locking: bool = False, name: str | None = None) -> Tensor:
        if not isinstance(ref, Variable):
            raise GraphError(f"{kind} needs a Variable to assign to, got {ref!r}", op=kind, where=user_location())
        refuse = getattr(get_default_graph(), "refuse_state_change", None)  # a branch or loop body: func_graph.py
        if refuse is not None:
            refuse(kind, ref)
        tensor = convert_to_tensor(value, dtype=ref.dtype)
        dims = zip(tensor.type.shape, ref.type.shape)
        if tensor.type.rank != ref.type.rank or any(d is not None and d != v for d, v in dims):
            raise FlowcTypeError(f"value of shape {format_shape(tensor.shape)} cannot be assigned to variable "
                                 f"{ref.name!r} of shape {format_shape(ref.shape)}", op=f"{kind} '{ref.op.name}'",
                                 where=user_location())
        op = ref.graph.create_op(kind, (tensor,), {"var": ref.op, "use_locking": bool(use_locking)},
                                 name=name or default_name, output_types=[ref.type])
        return op.outputs[0]

    build.__name__ = default_name
    build.__doc__ = (f"{kind}: sets the variable; the result is its new value. With `use_locking=True`, runs "
                     "that make this update hold the variable's lock throughout, so threads sharing a Session "
                     "lose none of them (Note [use_locking] in session.py).")
    return build


assign, assign_add, assign_sub = (_assign(kind, name) for kind, name in zip(ASSIGN_KINDS, ("Assign", "AssignAdd", "AssignSub")))


def group(*inputs: Any, name: str | None = None) -> Operation:
    """An op that runs all `inputs` and has no outputs (fetching it gives None)."""
    graph = get_default_graph()
    with graph.control_dependencies([as_operation(i) for i in _flatten(inputs)]):
        return graph.create_op(NOOP, (), {}, name=name or "group_deps", output_types=[])


def no_op(name: str | None = None) -> Operation:
    return get_default_graph().create_op(NOOP, (), {}, name=name or "NoOp", output_types=[])


def global_variables() -> list[Variable]:
    return get_default_graph().get_collection(GLOBAL_VARIABLES)


def trainable_variables() -> list[Variable]:
    return get_default_graph().get_collection(TRAINABLE_VARIABLES)


def variables_initializer(var_list: Sequence[Variable], name: str = "init") -> Operation:
    return group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer() -> Operation:
    """One op that runs the initializer of every variable of the default graph."""
    return variables_initializer(global_variables())


def _flatten(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.extend(_flatten(item))
        elif isinstance(item, Variable):
            out.append(item.op)
        else:
            out.append(item)
    return out
