"""Tracing a Python function into a sub-graph: the branches of fc.cond, the cond and body of fc.while_loop.

A FuncGraph is a Graph of its own, made the default while the function runs,
so every fc.* call inside adds its op there. The function's arguments are
`Arg` inputs of the sub-graph. A tensor of an enclosing graph that an op
inside uses is captured: the sub-graph gets a `Capture` input standing for it,
recorded in `captures` (outer tensor -> inner input, in the order first used).
A sub-graph traced inside another captures through each level: the middle
graph captures the tensor first, and the inner one captures the middle one's
input, so each level's region op gets its captures as operands from the level
just outside it (Note [isolated regions] in ir/ops/control.py: a region sees
only its block arguments, which are the explicit inputs, then the captures).

Note [variables in sub-graphs]
State is explicit in the IR: a region computes values, it cannot change a
Variable. So an assign inside a branch or body is an error at the user's
line, and a read is a capture: using a Variable inside gives the value that
the enclosing graph's rules give at the point the sub-graph is traced
(Note [variable ordering] in lowering.py). That is the variable's read in the
enclosing graph (its start-of-run snapshot, or a fresh read ordered after the
control dependencies in force around the fc.cond or fc.while_loop call), made
an operand of the region op. Since nothing inside can assign, every read
inside one run of the region sees that one value, iteration after iteration,
which is what TensorFlow 1 gives for a variable the loop does not change.
Control dependencies inside on ops of an enclosing graph order the whole
region op after them (`outer_control`). Placeholders and Variables are made
outside.

Note [random ops in sub-graphs]
A random op's numbers are a function of its seed and the run counter (Note
[counter-based random numbers] in random_ops.py). A cond branch runs at most
once per run, so a random op in it is as good as one outside: its region op
takes the run counter as its last operand (`uses_step`), and its seed is
told apart from every other op's by the sub-graph's `seed_offset`. A loop
body runs many times in one run; it draws from a counter of its own, made
from the run counter and the turn (Note [random streams in loops] in
control_flow_lowering.py), so its `while` op takes the run counter too. A
loop nested in a repeating body, and a function (which runs once per call),
draw from a counter folded from the one they are given (Note [random
streams in calls and nested loops] there), so they take it as well. A
loop whose cond draws numbers is rotated so that its body computes the
predicate (Note [a random loop condition] in control_flow.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flowc.ir import TensorType
from flowc.ir.errors import GraphError

from . import nest
from .graph import PLACEHOLDER, VARIABLE, Graph, Operation, Tensor, get_default_graph
from .lowering import RANDOM_KINDS
from .math_ops import convert_to_tensor
from .sources import user_location

ARG, CAPTURE = "Arg", "Capture"  # graph-only kinds: the sub-graph's block arguments


class FuncGraph(Graph):
    """A sub-graph traced from a Python function; `outer` is the graph it was traced in.

    `inputs` are the function's arguments (Arg ops), `captures` maps each
    tensor of `outer` used inside to the Capture input that stands for it,
    `outputs` are the flat results and `structured_outputs` the function's
    return value as it returned it (tensors inside). `purpose` says what the
    sub-graph is, for errors: "the true branch of cond 'cond'"; `owner` names
    the op that will carry it ("cond 'cond'"), whose errors these are.
    """

    def __init__(self, name: str, outer: Graph, purpose: str, owner: str | None = None,
                 allows_random: bool = False, repeats: bool = False):
        super().__init__()
        self.name = name
        self.outer = outer
        self.purpose = purpose
        self.owner = owner
        # Note [random ops in sub-graphs]: only where the enclosing graphs allow them too
        self.repeats = repeats or getattr(outer, "repeats", False)  # runs many times per run, at any depth
        self.allows_random = allows_random and getattr(outer, "allows_random", True)
        self.uses_step = False  # a random op inside, at any depth of conds
        outer._sub_graphs = getattr(outer, "_sub_graphs", 0) + 1
        self.seed_offset = ((getattr(outer, "seed_offset", 0) * 31 + len(outer._ops) * 7919 + outer._sub_graphs)
                            << 24) & ((1 << 62) - 1)
        self.inputs: list[Tensor] = []
        self.captures: dict[Tensor, Tensor] = {}
        self.outputs: list[Tensor] = []
        self.structured_outputs: Any = None
        self.outer_control: list[Operation] = []  # ops of `outer` that the region op must run after
        self.seed = outer.seed
        self.collections = outer.collections  # fc.trainable_variables() inside sees the model's
        self._device_stack = list(outer._device_stack[-1:])

    @property
    def captured_inputs(self) -> list[Tensor]:
        """The Capture inputs, in the order of `captures`."""
        return list(self.captures.values())

    def encloses(self, graph: Graph) -> bool:
        """Whether `graph` is this graph's outer graph, or that one's, and so on."""
        outer: Graph | None = self.outer
        while outer is not None:
            if outer is graph:
                return True
            outer = getattr(outer, "outer", None)
        return False

    def add_input(self, type: TensorType, name: str = "arg") -> Tensor:
        op = super().create_op(ARG, (), {"index": len(self.inputs)}, name=name, output_types=[type])
        self.inputs.append(op.outputs[0])
        return op.outputs[0]

    def capture(self, tensor: Tensor) -> Tensor:
        """The input of this graph that stands for `tensor` of an enclosing graph (made on first use)."""
        if tensor.graph is self or not self.encloses(tensor.graph):
            return tensor  # ours, or foreign: create_op says "belongs to another graph"
        outer_tensor = self.outer.capture(tensor) if isinstance(self.outer, FuncGraph) else tensor
        inner = self.captures.get(outer_tensor)
        if inner is None:
            with self.control_dependencies(None):
                name = outer_tensor.op.name.replace("/", "_")
                inner = super().create_op(CAPTURE, (), {}, name=name, output_types=[outer_tensor.type]).outputs[0]
            self.captures[outer_tensor] = inner
        return inner

    def create_op(self, type: str, inputs: Sequence[Tensor] = (), attrs: dict[str, Any] | None = None,
                  name: str | None = None, output_types: Sequence[TensorType] | None = None,
                  rank_rules: dict[str, str] | None = None) -> Operation:
        if type in (PLACEHOLDER, VARIABLE) or (type in RANDOM_KINDS and not self.allows_random):
            what = {PLACEHOLDER: "a placeholder", VARIABLE: "a Variable"}.get(type, f"a random op ({type})")
            hint = "draw the numbers outside and use them inside" if type in RANDOM_KINDS else "make it outside"
            raise GraphError(f"cannot create {what} inside {self.purpose}; {hint}", op=f"{type} '{name or type}'",
                             where=user_location())
        inputs = [self.capture(t) if isinstance(t, Tensor) else t for t in inputs]
        op = super().create_op(type, inputs, attrs, name, output_types, rank_rules)
        self.uses_step = self.uses_step or type in RANDOM_KINDS or bool(op.attrs.get("uses_step"))
        outside = [c for c in op.control_inputs if c.graph is not self]
        if outside:
            op.control_inputs = [c for c in op.control_inputs if c.graph is self]
            for control in outside:
                self.order_after(control)
        return op

    def order_after(self, op: Operation) -> None:
        """Make the region op of this graph (or of the enclosing level that sees `op`) run after `op`."""
        if op.graph is self.outer:
            if op not in self.outer_control:
                self.outer_control.append(op)
        elif isinstance(self.outer, FuncGraph) and self.outer.encloses(op.graph):
            self.outer.order_after(op)

    def refuse_state_change(self, kind: str, variable: Any) -> None:
        """Called by fc.assign and its kin when this graph is the default: Note [variables in sub-graphs]."""
        raise GraphError(f"cannot change variable {variable.name!r} inside {self.purpose}: state is explicit in the "
                         "IR and a region only computes values; return the new value and assign it outside",
                         op=f"{kind} '{variable.op.name}'", where=user_location())

    def set_outputs(self, result: Any) -> None:
        """Record what the traced function returned: each leaf becomes a tensor of this graph."""
        flat = []
        for path, leaf in nest.flatten_with_paths(result, "result"):
            if leaf is None or isinstance(leaf, Operation):
                what = "None" if leaf is None else f"op {leaf.name!r}"
                raise GraphError(f"{self.purpose} returns {what} at {path}; it must return tensors",
                                 op=self.owner, where=user_location())
            flat.append(self.capture(convert_to_tensor(leaf)))
        self.outputs = flat
        self.structured_outputs = nest.pack_sequence_as(result, flat)


def step_salt(graph: Graph) -> int:
    """The salt of a call or loop op about to be made in `graph`: distinct per op of a graph and per
    sub-graph, the same in every program run (Note [random streams in calls and nested loops] in
    control_flow_lowering.py)."""
    position = len(graph.get_operations()) + getattr(graph, "seed_offset", 0)
    return ((graph.seed or 0) * 0x9E3779B97F4A7C15 + position * 0xD1B54A32D192ED03 + 1) & ((1 << 63) - 1)


def trace(function: Callable[..., Any], args: Sequence[Any], arg_types: Sequence[TensorType] | None = None, *,
          name: str, purpose: str, owner: str | None = None, allows_random: bool = False,
          repeats: bool = False) -> FuncGraph:
    """A FuncGraph of `function(*args)`, each tensor leaf of `args` standing for an Arg input.

    `args` is the list of positional arguments, any nesting (Note [composite
    protocol] in nest.py); `arg_types` gives the inputs' types in flatten
    order (a while loop's shape invariants), by default the leaves' own.
    """
    outer = get_default_graph()
    graph = FuncGraph(name, outer, purpose, owner, allows_random, repeats)
    leaves = nest.flatten(list(args))
    types = list(arg_types) if arg_types is not None else [leaf.type for leaf in leaves]
    with graph.as_default():
        inputs = [graph.add_input(t, name=f"arg{i}") for i, t in enumerate(types)]
        result = function(*nest.pack_sequence_as(list(args), inputs))
        graph.set_outputs(result)
    return graph
