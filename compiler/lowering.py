"""Lowering: the sub-graph a run needs becomes one IR function.

Arguments, in order: fed tensors, the start-of-run values of the variables
the run reads, and (if it draws random numbers) the run counter. Results: the
fetched tensors, then the final values of the variables the run assigns
(Note [variables as arguments] in state_ops.py). `Signature` says which is
which, so the Session can pass and write back.

Note [variable ordering]: ops are visited in creation order, a topological
order of the graph. The assigns of one variable form a chain in that order;
an AssignAdd/AssignSub adds to the value left by the previous assign in the
chain (or the start-of-run value). A read sees the value left by the latest
assign of its chain that it depends on (through data or control edges), and
the start-of-run value when it depends on none. So `sess.run([loss, train])`
returns the loss from before the update, and a read inside
`control_dependencies([update])` sees the updated value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from flowc.ir import Builder, Function, Module, TensorType, Value, int64, registry
from flowc.ir.errors import FeedError, FlowcError, FlowcTypeError, GraphError

from .placement import graph_device
from .unknown_rank import fed_rank_hint, resolved_attrs
from .graph import ASSIGN_KINDS, CONST, NOOP, PLACEHOLDER, READ, VARIABLE, Graph, Operation, Tensor

RANDOM_KINDS = registry.names_where(is_random=True)  # graph ops that lowering gives the run counter
STEP_TYPE = TensorType(int64, ())
RUN_COUNTER = "run counter"  # the key of the run counter's value where lowering keeps tensors' values
REGION_KINDS = frozenset({"cond", "while", "call"})  # fc.cond, fc.while_loop, fc.function: control_flow_lowering.py


@dataclass(frozen=True)
class Signature:
    """What the compiled function's arguments and results stand for."""

    feeds: tuple[Tensor, ...]
    variables: tuple[Operation, ...]  # VariableV2 ops whose start-of-run value is an argument
    uses_step: bool  # last argument: the Session's run counter, for random ops
    fetches: tuple[Tensor, ...]
    updates: tuple[Operation, ...]  # VariableV2 ops whose final value is a result after the fetches
    # VariableV2 ops some assign of the run updates with use_locking, in creation order: the order in
    # which a run takes their locks (Note [use_locking] in session.py)
    locked: tuple[Operation, ...] = ()

    def donations(self) -> dict[int, int]:
        """Result index -> argument index: each assigned variable's new value may be written into its
        old buffer (Note [donated arguments] in passes/memory.py)."""
        arg_of = {var: len(self.feeds) + i for i, var in enumerate(self.variables)}
        return {len(self.fetches) + j: arg_of[var] for j, var in enumerate(self.updates) if var in arg_of}


@dataclass(frozen=True)
class Lowered:
    module: Module
    signature: Signature

    @property
    def function(self) -> Function:
        return self.module["main"]


def lower(graph: Graph, fetches: Sequence[Tensor], targets: Sequence[Operation], feeds: Sequence[Tensor],
          fed_types: dict[Tensor, TensorType] | None = None) -> Lowered:
    """One IR function computing `fetches` and running `targets`, given `feeds`. `fed_types`: the type of
    each fed placeholder of unknown rank, for the rank this run feeds it (Note [placeholders of unknown
    rank] in unknown_rank.py); every other feed has its tensor's type."""
    fed = set(feeds)
    ops = needed_ops([t.op for t in fetches if t not in fed] + list(targets), fed)
    sources = variable_sources(ops, fed)
    variables = _variables_read(ops, sources)
    updates = _final_assigns(ops)
    uses_step = any(op.type in RANDOM_KINDS or op.attrs.get("uses_step") for op in ops)
    locked = sorted({op.attrs["var"] for op in ops if op.type in ASSIGN_KINDS and op.attrs.get("use_locking")},
                    key=lambda var: var.id)
    signature = Signature(tuple(feeds), tuple(variables), uses_step, tuple(fetches), tuple(updates), tuple(locked))
    from .control_flow_lowering import called_functions, module_functions  # it lowers sub-graphs with emit_op

    with called_functions() as called:  # the functions of fc.function that the run calls
        main = _emit(ops, sources, signature, fed_types or {})
    return Lowered(Module([main, *module_functions(called)]), signature)


def needed_ops(roots: Sequence[Operation], fed: set[Tensor]) -> list[Operation]:
    """Every op the roots depend on through inputs and control inputs, in creation order.

    A fed tensor cuts the dependency on its producer.
    """
    seen: dict[int, Operation] = {}
    stack = list(roots)
    while stack:
        op = stack.pop()
        if op.id in seen:
            continue
        seen[op.id] = op
        stack.extend(t.op for t in op.inputs if t not in fed)
        stack.extend(op.control_inputs)
    return [seen[i] for i in sorted(seen)]


def variable_sources(ops: Sequence[Operation], fed: set[Tensor]) -> dict[Operation, Operation | None]:
    """For each read and assign: the assign whose value it starts from (None: the run's start)."""
    ancestors: dict[Operation, frozenset[Operation]] = {}
    last_in_chain: dict[Operation, Operation] = {}
    sources: dict[Operation, Operation | None] = {}
    for op in ops:
        preds = [t.op for t in op.inputs if t not in fed] + op.control_inputs
        found: set[Operation] = set()
        for pred in preds:
            found |= ancestors[pred]
            if pred.type in ASSIGN_KINDS:
                found.add(pred)
        ancestors[op] = frozenset(found)
        if op.type == READ:
            chain = [a for a in found if a.attrs["var"] is op.attrs["var"]]
            sources[op] = max(chain, key=lambda a: a.id) if chain else None
        elif op.type in ASSIGN_KINDS:
            sources[op] = last_in_chain.get(op.attrs["var"])
            last_in_chain[op.attrs["var"]] = op
    return sources


def _variables_read(ops: Sequence[Operation], sources: dict[Operation, Operation | None]) -> list[Operation]:
    """Variables whose start-of-run value some op uses, in order of first use."""
    read: dict[Operation, None] = {}
    for op in ops:
        starts_fresh = op in sources and sources[op] is None
        if starts_fresh and (op.type == READ or op.type in ("AssignAdd", "AssignSub")):
            read.setdefault(op.attrs["var"], None)
    return list(read)


def _final_assigns(ops: Sequence[Operation]) -> list[Operation]:
    assigned: dict[Operation, None] = {}
    for op in ops:
        if op.type in ASSIGN_KINDS:
            assigned.setdefault(op.attrs["var"], None)
    return list(assigned)


def _emit(ops: Sequence[Operation], sources: dict[Operation, Operation | None], sig: Signature,
          fed_types: dict[Tensor, TensorType]) -> Function:
    arg_types = [fed_types.get(t, t.type) for t in sig.feeds] + [v.variable.type for v in sig.variables]
    arg_names = [t.op.name for t in sig.feeds] + [v.name for v in sig.variables]
    if sig.uses_step:
        arg_types.append(STEP_TYPE), arg_names.append("step")
    result_types = [t.type for t in sig.fetches] + [v.variable.type for v in sig.updates]
    function = Function("main", arg_types, result_types, arg_names)
    args = iter(function.args)
    env: dict[Tensor, Value] = {t: next(args) for t in sig.feeds}
    start: dict[Operation, Value] = {v: next(args) for v in sig.variables}
    step = next(args, None)
    if step is not None:
        env[RUN_COUNTER] = step  # type: ignore[index]
    assigned: dict[Operation, Value] = {}  # assign op -> the variable's value after it

    def value_from(source: Operation | None, var: Operation) -> Value:
        return start[var] if source is None else assigned[source]

    b = Builder.at_end(function.entry)
    for op in ops:
        b.loc, b.device = op.loc, graph_device(op)  # Note [placement] in placement.py
        if op.type == PLACEHOLDER:
            if op.outputs[0] not in env:
                raise FeedError(f"this run needs a value fed for it ({op.outputs[0].type})", op=op.display_name,
                                where=op.loc)
        elif op.type == CONST:
            env[op.outputs[0]] = b.create("constant", (), {"value": op.attrs["value"]}, result_names=[op.name]).result
        elif op.type == READ:
            env[op.outputs[0]] = value_from(sources[op], op.attrs["var"])
        elif op.type in ASSIGN_KINDS:
            new = env[op.inputs[0]]
            if new.type != op.inputs[0].type:  # typed for a fed rank (Note [placeholders of unknown rank])
                new = _fit_assigned(b, op, new)
            if op.type != "Assign":  # a plain Assign needs no current value: initializers run on nothing
                kind = "add" if op.type == "AssignAdd" else "sub"
                current = value_from(sources[op], op.attrs["var"])
                new = b.create(kind, (current, new), result_names=[op.name]).result
            assigned[op] = new
            env.setdefault(op.outputs[0], new)
        elif op.type in (VARIABLE, NOOP):
            continue
        else:
            emit_op(b, op, env)
    missing = [t for t in sig.fetches if t not in env]
    if missing:
        raise GraphError(f"cannot compute {', '.join(t.name for t in missing)}: no op in this run produces it")
    finals = [assigned[_last_assign(ops, var)] for var in sig.updates]
    b.create("return", [env[t] for t in sig.fetches] + finals)
    if fed_types:  # the fetches' types follow the fed ranks (Note [placeholders of unknown rank])
        function.result_types = [env[t].type for t in sig.fetches] + result_types[len(sig.fetches):]
    return function


def _fit_assigned(b: Builder, op: Operation, value: Value) -> Value:
    """A value typed for a fed rank (Note [placeholders of unknown rank] in unknown_rank.py), as the
    variable's type: an error naming the assign where its rank is another."""
    want = op.attrs["var"].variable.type
    if value.type.rank != want.rank or value.type.dtype != want.dtype:
        raise FlowcTypeError(f"assigns a value of type {value.type} (with the ranks this run feeds) to a variable "
                             f"of type {want}", op=op.display_name, where=op.loc)
    from .control_flow_lowering import fit

    return fit(b, value, want)


def _last_assign(ops: Sequence[Operation], var: Operation) -> Operation:
    return [op for op in ops if op.type in ASSIGN_KINDS and op.attrs["var"] is var][-1]


def emit_op(b: Builder, op: Operation, env: dict[Tensor, Value]) -> None:
    """The IR for graph op `op`, whose inputs are in `env`: one IR op, or a region op with its sub-graphs."""
    counter = [env[RUN_COUNTER]] if op.type in RANDOM_KINDS else []  # type: ignore[index]
    operands = counter + [env[t] for t in op.inputs]  # a random op's inputs come after the run counter
    if op.type in REGION_KINDS:
        from .control_flow_lowering import emit_region_op  # it lowers sub-graphs with emit_op in turn

        emit_region_op(b, op, operands, env)
    else:
        _emit_ir_op(b, op, operands, env)


def _emit_ir_op(b: Builder, op: Operation, operands: list[Value], env: dict[Tensor, Value]) -> None:
    names = [op.name] + [f"{op.name}_{i}" for i in range(1, len(op.outputs))]
    # The graph op's types came from the same type rule at build time: reuse them rather than
    # infer them again (the verifier, on under FLOWC_VERIFY=1, checks they still agree).
    inputs = operands[len(operands) - len(op.inputs):]  # a random op's run counter comes first
    # An input of unknown rank may have its provisional type and still need the op typed again: the
    # provisional output types may come from another probe (Note [placeholders of unknown rank]).
    retyped = any(v.type != t.type or t.has_unknown_rank for v, t in zip(inputs, op.inputs))
    attrs = op.attrs
    if retyped and op.rank_rules:  # typed for a fed rank (Note [placeholders of unknown rank] in unknown_rank.py)
        attrs = resolved_attrs(attrs, op.rank_rules, [v.type for v in inputs])
    try:
        types = None if retyped else [t.type for t in op.outputs]
        ir_op = b.create(op.type, operands, attrs, result_types=types, result_names=names)
    except FlowcError as error:
        if retyped:  # name the graph op, as at build time (graph.infer_output_types)
            error.op = None
            error.detail += fed_rank_hint(op, env)
        raise error.located(op=op.display_name, where=op.loc) from None
    for tensor, result in zip(op.outputs, ir_op.results):
        env.setdefault(tensor, result)  # a fed output keeps the fed value
