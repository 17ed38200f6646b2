"""fc.cond, fc.case and fc.while_loop, with TensorFlow 1's names and signatures.

Each traces its Python functions into sub-graphs (func_graph.py) and adds one
graph op, of kind "cond" or "while" like the IR op it lowers to, that carries
them as attributes: `then_branch`/`else_branch`, or `cond_graph`/`body_graph`.
The op's inputs are the predicate or the loop variables (flattened, Note
[composite protocol] in nest.py), then the tensors the sub-graphs capture;
control_flow_lowering.py turns it into an IR `cond` or `while` with regions.

Note [loop knobs that change nothing]
`parallel_iterations` and `swap_memory` are accepted and checked as
TensorFlow 1 checks them, and change nothing: TF1 runs up to
`parallel_iterations` iterations at once in its dataflow executor and may
move forward values to host memory for the backward pass; here a loop is one
IR `while` whose iterations run in order, and its gradient recomputes what it
needs (Note [while gradients by recomputation] in rules_control.py), so there
is neither concurrency between iterations nor a stack of kept values to place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flowc.ir import TensorType
from flowc.ir.errors import FlowcError, FlowcTypeError, GraphError
from flowc.ir.types import INTS, bool_, format_shape, int32

from . import nest
from .array_ops import gather, stack
from .func_graph import FuncGraph, step_salt, trace
from .graph import Graph, Operation, Tensor, get_default_graph
from .math_ops import cast, constant, convert_to_tensor, logical_and, reduce_sum
from .sources import user_location
from .tensor_array import buffers_from_first_writes
from .tensor_shape import plain_dim

COND, WHILE = "cond", "while"  # graph op kinds, named after the IR ops they lower to


def cond(pred: Any, true_fn: Callable[[], Any] | None = None, false_fn: Callable[[], Any] | None = None,
         strict: bool = False, name: str | None = None) -> Any:
    """`true_fn()` if `pred` is true, else `false_fn()`, as tf.cond: only the chosen branch runs.

    Both functions take no arguments and return the same structure of
    tensors (nest.py), of the same dtypes; they may use any tensor or
    Variable of the enclosing graph. Unless `strict`, a singleton list or
    tuple that both return comes back as its one element, as in TF1.

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.float32, shape=[], name="x")
    ...     y = fc.cond(x > 0, lambda: x * 10.0, lambda: -x)
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     [float(sess.run(y, {x: v})) for v in (2.0, -3.0)]
    [20.0, 3.0]
    """
    loc, graph = user_location(), get_default_graph()
    label = f"{COND} '{_scoped(graph, name or COND)}'"
    pred = _predicate(pred, label, loc)
    _check_callable(true_fn, "true_fn", label, loc)
    _check_callable(false_fn, "false_fn", label, loc)
    branches = [trace(fn, [], name=which, purpose=f"the {which} branch of {label}", owner=label, allows_random=True)
                for fn, which in ((true_fn, "true"), (false_fn, "false"))]
    results = [_unpacked(b.structured_outputs, strict) for b in branches]
    _check_same_structure(results, ("true branch", "false branch"), label, loc)
    types = [_joined_type(t, f, path, label, loc) for (path, t), f in
             zip(nest.flatten_with_paths(results[0], "result"), branches[1].outputs)]
    captured = _union_captures(branches)
    attrs = {"then_branch": branches[0], "else_branch": branches[1],
             "uses_step": any(b.uses_step for b in branches)}  # Note [random ops in sub-graphs]
    op = graph.create_op(COND, [pred, *captured], attrs, name=name or COND, output_types=types)
    _order_after_outer_control(op, branches)
    return nest.pack_sequence_as(results[0], op.outputs)


def case(pred_fn_pairs: Any, default: Callable[[], Any] | None = None, exclusive: bool = False,
         strict: bool = False, name: str = "case") -> Any:
    """The result of the first function whose predicate is true, else of `default`, as tf.case.

    `pred_fn_pairs` is a list of (bool scalar, function) pairs, or a dict
    (taken in its order). Without a default, the last pair's function is the
    default, and a run in which no predicate is true is an error, as in TF1.
    With `exclusive`, a run in which more than one predicate is true is an
    error (Note [run-time checks of case]). Built as nested fc.cond.

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.int32, shape=[], name="x")
    ...     y = fc.case([(x < 0, lambda: fc.constant(-1)), (x > 0, lambda: fc.constant(1))],
    ...                 default=lambda: fc.constant(0))
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     [int(sess.run(y, {x: v})) for v in (-5, 0, 7)]
    [-1, 0, 1]
    """
    loc, graph = user_location(), get_default_graph()
    label = f"case '{_scoped(graph, name or 'case')}'"
    pairs = list(pred_fn_pairs.items() if isinstance(pred_fn_pairs, dict) else pred_fn_pairs)
    if not pairs:
        raise GraphError("needs at least one (predicate, function) pair", op=label, where=loc)
    preds, fns = [], []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise GraphError(f"pred_fn_pairs[{index}] is {pair!r}, not a (predicate, function) pair",
                             op=label, where=loc)
        preds.append(_predicate(pair[0], label, loc, what=f"predicate {index}"))
        _check_callable(pair[1], f"the function of pair {index}", label, loc)
        fns.append(pair[1])
    with graph.name_scope(name or "case"):
        failures = []
        if exclusive and len(preds) > 1:
            failures.append((_count_true(preds) > 1, "exclusive_but_more_than_one_predicate_is_true"))
        if default is None:  # TF1: the last pair's function is the default, and its predicate must hold
            failures.append((_count_true(preds) < 1, "no_default_and_no_predicate_is_true"))
            default, preds, fns = fns[-1], preds[:-1], fns[:-1]
        else:
            _check_callable(default, "default", label, loc)
        guard = _run_time_guard(failures)
    return _nested_cond(list(zip(preds, fns)), default, guard, strict, name or "case")


def _nested_cond(pairs: list[tuple[Tensor, Callable[[], Any]]], default: Callable[[], Any], guard: Tensor | None,
                 strict: bool, name: str) -> Any:
    """cond(p0, f0, lambda: cond(p1, f1, ... default)); `guard` (true unless a check fails) joins the first."""
    if not pairs:
        return default() if guard is None else cond(guard, default, default, strict=strict, name=name)
    (first, fn), rest = pairs[0], pairs[1:]
    pred = first if guard is None else logical_and(first, guard)
    return cond(pred, fn, lambda: _nested_cond(rest, default, None, strict, name), strict=strict, name=name)


# Note [run-time checks of case]
# The IR has no assert op, so a condition that must fail the run (more than one predicate true with
# `exclusive`; none true and no default) is a gather from the one-element constant [true] at index
# `failed ? 1 : 0`, named after the failure: when it fails the run stops with IndexOutOfRange, naming
# that gather ("case/exclusive_but_more_than_one_predicate_is_true") and the user's line, on every
# target; when it holds the gather yields true, which is and-ed into the first predicate so that the
# check is part of what the run computes, not dead code.


def _count_true(preds: Sequence[Tensor]) -> Tensor:
    return reduce_sum(cast(stack(list(preds)), int32))


def _run_time_guard(failures: Sequence[tuple[Tensor, str]]) -> Tensor | None:
    guard = None
    for failed, what in failures:
        holds = gather(constant([True]), cast(failed, int32), name=what)
        guard = holds if guard is None else logical_and(guard, holds)
    return guard


def while_loop(cond: Callable[..., Any], body: Callable[..., Any], loop_vars: Any, shape_invariants: Any = None,
               parallel_iterations: int = 10, back_prop: bool = True, swap_memory: bool = False,
               name: str | None = None, maximum_iterations: Any = None, return_same_structure: bool = False) -> Any:
    """Repeat `loop_vars = body(*loop_vars)` while `cond(*loop_vars)`, as tf.while_loop.

    `loop_vars` is a list or tuple (any nesting: nest.py); `body` returns the
    same structure with the same dtypes and shapes. A variable whose shape
    changes needs a `shape_invariants` entry (same structure, a shape per
    tensor) with None where it changes. `maximum_iterations` (a scalar
    int) stops the loop after that many iterations whatever `cond` says.
    `back_prop=False` lets no gradient through the loop.
    `parallel_iterations` and `swap_memory` change nothing (Note [loop knobs
    that change nothing]). With one loop variable the result is that one
    tensor unless `return_same_structure`, as in TF1.

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     n = fc.placeholder(fc.int32, shape=[], name="n")
    ...     i, total = fc.while_loop(lambda i, t: i < n, lambda i, t: (i + 1, t + i), [0, 0])
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     int(sess.run(total, {n: 5}))
    10
    """
    loc, graph = user_location(), get_default_graph()
    label = f"{WHILE} '{_scoped(graph, name or WHILE)}'"
    _check_callable(cond, "cond", label, loc)
    _check_callable(body, "body", label, loc)
    if isinstance(parallel_iterations, bool) or not isinstance(parallel_iterations, int) or parallel_iterations < 1:
        raise GraphError(f"parallel_iterations must be a positive integer, got {parallel_iterations!r}",
                         op=label, where=loc)
    single = not isinstance(loop_vars, (list, tuple)) or (len(loop_vars) == 1 and not return_same_structure)
    structure = list(loop_vars) if isinstance(loop_vars, (list, tuple)) else [loop_vars]
    # Note [tensor array storage]: an array without a buffer yet gets one of its first write's shape
    structure = buffers_from_first_writes(structure, body, label, lambda values: _as_tensors(values, label, loc))
    if not nest.flatten(structure):
        raise GraphError("needs at least one loop variable", op=label, where=loc)
    with graph.name_scope(name or WHILE):
        structure = _as_tensors(structure, label, loc)
        maximum = _maximum_iterations(maximum_iterations, label, loc)
    paths = [path for path, _ in nest.flatten_with_paths(structure, "loop_vars")]
    init = nest.flatten(structure)
    types = _state_types(structure, shape_invariants, paths, label, loc)
    cond_graph = trace(cond, structure, types, name="cond", purpose=f"the cond of {label}", owner=label,
                       allows_random=True)
    if cond_graph.uses_step:  # Note [a random loop condition]
        return _rotated_while(cond, body, loop_vars, structure, shape_invariants, single, parallel_iterations,
                              back_prop, swap_memory, name, maximum_iterations, label, loc)
    body_graph = trace(body, structure, types, name="body", purpose=f"the body of {label}", owner=label,
                       allows_random=True, repeats=True)
    _check_cond_result(cond_graph, label, loc)
    result = body_graph.structured_outputs
    if len(structure) == 1 and not isinstance(result, (list, tuple)):
        result = [result]  # a body of one variable may return it bare
    _check_same_structure([structure, list(result) if isinstance(result, tuple) else result],
                          ("loop_vars", "the body's result"), label, loc)
    for path, state, out in zip(paths, types, body_graph.outputs):
        _check_loop_type(path, state, out.type, label, loc)
    captured = _union_captures([cond_graph, body_graph])
    attrs = {"cond_graph": cond_graph, "body_graph": body_graph, "num_loop_vars": len(init),
             "maximum_iterations": maximum is not None, "back_prop": bool(back_prop),
             "parallel_iterations": parallel_iterations, "swap_memory": bool(swap_memory),
             "uses_step": body_graph.uses_step,  # Note [random ops in sub-graphs]
             "step_salt": step_salt(graph)}
    inputs = [*init, *([maximum] if maximum is not None else []), *captured]
    op = graph.create_op(WHILE, inputs, attrs, name=name or WHILE, output_types=types)
    _order_after_outer_control(op, [cond_graph, body_graph])
    packed = nest.pack_sequence_as(structure, op.outputs)
    if single:
        return packed[0]
    return nest.rebuild(loop_vars, packed) if isinstance(loop_vars, tuple) else packed


# Note [a random loop condition]
# A while region's condition yields one bool and nothing else, so it cannot carry the counter that a
# random op inside it would advance turn by turn (Note [random streams in loops] in
# control_flow_lowering.py). A loop whose cond draws numbers is rotated instead, as a compiler rotates
# a loop to test at its bottom: the predicate becomes a loop variable, computed by the user's cond once
# before the loop and again at the end of each turn of the body, where random ops draw from the body's
# stream; the loop's own condition only reads it. The cond runs as often and on the same values as in
# TF1 (before the first turn and after each), each time with fresh numbers. The predicate is a bool, so
# no gradient flows through it.


def _rotated_while(cond: Callable[..., Any], body: Callable[..., Any], loop_vars: Any, structure: list[Any],
                   shape_invariants: Any, single: bool, parallel_iterations: int, back_prop: bool,
                   swap_memory: bool, name: str | None, maximum_iterations: Any, label: str,
                   loc: str | None) -> Any:
    """while_loop of a cond with random ops: the predicate carried as a loop variable (Note [a random loop
    condition])."""
    from .tensor_shape import TensorShape

    graph = get_default_graph()
    with graph.name_scope(name or WHILE):
        first = _predicate(cond(*structure), label, loc, "the cond's result")

    def bottom_tested(predicate: Tensor, *state: Any) -> list[Any]:
        result = body(*state)
        after = [result] if len(structure) == 1 and not isinstance(result, (list, tuple)) else list(result)
        return [_predicate(cond(*after), label, loc, "the cond's result"), *after]

    if shape_invariants is None:
        invariants = None
    elif isinstance(loop_vars, (list, tuple)):
        invariants = [TensorShape([]), *shape_invariants]
    else:
        invariants = [TensorShape([]), shape_invariants]
    rotated = while_loop(lambda predicate, *state: predicate, bottom_tested, [first, *structure], invariants,
                         parallel_iterations, back_prop, swap_memory, name, maximum_iterations,
                         return_same_structure=True)
    packed = list(rotated[1:])
    if single:
        return packed[0]
    return nest.rebuild(loop_vars, packed) if isinstance(loop_vars, tuple) else packed


# -- checks shared by cond, case and while_loop ------------------------------------------------


def _scoped(graph: Graph, name: str) -> str:
    return "/".join([*graph._scope_stack, name])


def _check_callable(fn: Any, what: str, label: str, loc: str | None) -> None:
    if not callable(fn):
        raise GraphError(f"{what} must be a function (a callable), got {fn!r}", op=label, where=loc)


def _predicate(pred: Any, label: str, loc: str | None, what: str = "the predicate") -> Tensor:
    """`pred` as a bool[] tensor; a Python bool is refused, as TF1 does (use a Python `if`)."""
    if isinstance(pred, bool):
        raise FlowcTypeError(f"{what} is the Python bool {pred}, not a tensor; a Python `if` chooses at build "
                             "time, fc.constant(...) makes it a tensor", op=label, where=loc)
    try:
        tensor = convert_to_tensor(pred)
    except FlowcError as error:
        raise error.located(op=label, where=loc) from None
    if tensor.dtype != bool_ or tensor.type.rank != 0:
        raise FlowcTypeError(f"{what} must be a bool scalar (bool[]), got {tensor.name!r} of type {tensor.type}",
                             op=label, where=loc)
    return tensor


def _unpacked(result: Any, strict: bool) -> Any:
    """TF1's non-strict cond: a singleton list or tuple stands for its one element."""
    if not strict and isinstance(result, (list, tuple)) and len(result) == 1:
        return result[0]
    return result


def _check_same_structure(results: Sequence[Any], names: Sequence[str], label: str, loc: str | None) -> None:
    for other, other_name in zip(results[1:], names[1:]):
        if not nest.same_structure(results[0], other):
            raise nest.StructureError(f"{names[0]} and {other_name} must have the same structure: "
                                      f"{names[0]} is {nest.describe(results[0])}, {other_name} is "
                                      f"{nest.describe(other)}", op=label, where=loc)


def _joined_type(first: Tensor, second: Tensor, path: str, label: str, loc: str | None) -> TensorType:
    """The type of a cond result that two branches give as `first` and `second`: the same dtype and
    rank, and each dim known where both branches know it alike (TF1's most specific compatible shape)."""
    a, b = first.type, second.type
    if a.dtype != b.dtype or a.rank != b.rank:
        what = "dtypes" if a.dtype != b.dtype else "ranks"
        raise FlowcTypeError(f"the branches return different {what} for {path}: {a} (true branch) and {b} "
                             "(false branch)", op=label, where=loc)
    return a.with_shape(x if x == y else None for x, y in zip(a.shape, b.shape))


def _union_captures(graphs: Sequence[FuncGraph]) -> list[Tensor]:
    """Every outer tensor some sub-graph captures, once each, in order of first capture."""
    return list(dict.fromkeys(t for g in graphs for t in g.captures))


def _order_after_outer_control(op: Operation, graphs: Sequence[FuncGraph]) -> None:
    extra = [c for g in graphs for c in g.outer_control if c not in op.control_inputs]
    op.control_inputs.extend(dict.fromkeys(extra))


def _as_tensors(structure: Any, label: str, loc: str | None) -> Any:
    def convert(path_and_leaf: tuple[str, Any]) -> Tensor:
        path, leaf = path_and_leaf
        if leaf is None or isinstance(leaf, Operation):
            raise GraphError(f"{path} is {leaf!r}; loop variables are tensors", op=label, where=loc)
        return convert_to_tensor(leaf)

    return nest.pack_sequence_as(structure, [convert(p) for p in nest.flatten_with_paths(structure, "loop_vars")])


def _maximum_iterations(value: Any, label: str, loc: str | None) -> Tensor | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise FlowcTypeError(f"maximum_iterations must be a scalar int, got the Python bool {value}",
                             op=label, where=loc)
    tensor = convert_to_tensor(value, name="maximum_iterations")
    if tensor.dtype not in INTS or tensor.type.rank != 0:
        raise FlowcTypeError(f"maximum_iterations must be a scalar int (int32[] or int64[]), got {tensor.type}",
                             op=label, where=loc)
    return tensor


def _state_types(structure: Any, shape_invariants: Any, paths: list[str], label: str,
                 loc: str | None) -> list[TensorType]:
    """The loop state's types: each variable's own, or its shape invariant's."""
    init = nest.flatten(structure)
    if isinstance(shape_invariants, tuple):
        shape_invariants = list(shape_invariants)
    invariants = _flatten_up_to(structure, shape_invariants, label, loc)
    types = []
    for path, tensor, shape in zip(paths, init, invariants):
        if shape is None:
            types.append(tensor.type)
            continue
        dims = tuple(None if d is None else int(d) for d in map(plain_dim, shape))
        if len(dims) != tensor.type.rank or any(d is not None and s is not None and d != s
                                                for d, s in zip(dims, tensor.type.shape)):
            raise FlowcTypeError(f"the shape invariant {format_shape(dims)} of {path} does not fit its initial "
                                 f"value {tensor.type}", op=label, where=loc)
        types.append(tensor.type.with_shape(dims))
    return types


def _flatten_up_to(structure: Any, invariants: Any, label: str, loc: str | None) -> list[Any]:
    """One entry of `invariants` per tensor of `structure`: a shape (a sequence of dims) or None."""
    if not nest.is_nested(structure):
        if invariants is not None and not _is_shape(invariants):
            raise GraphError(f"a shape invariant must be a shape like [None, 3], got {invariants!r}",
                             op=label, where=loc)
        return [invariants]
    if invariants is None and hasattr(structure, "_flowc_shape_invariants"):
        invariants = list(structure._flowc_shape_invariants())  # a composite's own: Note [composite protocol]
    if invariants is None:
        return [leaf for child in nest.children(structure) for leaf in _flatten_up_to(child, None, label, loc)]
    if nest.is_composite(structure):
        invariants = list(invariants)
    children = nest.children(structure)
    given = (nest.children(invariants) if isinstance(invariants, (dict, list, tuple)) else None)
    if given is None or len(given) != len(children) or (isinstance(structure, dict) and (
            not isinstance(invariants, dict) or sorted(structure) != sorted(invariants))):
        raise nest.StructureError(f"shape_invariants must have the structure of loop_vars: loop_vars is "
                                  f"{nest.describe(structure)}, shape_invariants is {invariants!r}",
                                  op=label, where=loc)
    return [leaf for child, inv in zip(children, given) for leaf in _flatten_up_to(child, inv, label, loc)]


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(d is None or (isinstance(d, int) and not isinstance(d, bool))
                                                    for d in map(plain_dim, value))


def _check_cond_result(graph: FuncGraph, label: str, loc: str | None) -> None:
    outputs = graph.outputs
    if len(outputs) != 1 or outputs[0].dtype != bool_ or outputs[0].type.rank != 0:
        got = nest.describe(graph.structured_outputs)
        raise FlowcTypeError(f"cond must return one bool scalar (bool[]), returns {got}", op=label, where=loc)


def _check_loop_type(path: str, state: TensorType, out: TensorType, label: str, loc: str | None) -> None:
    """The body's result for a variable must fit the state: same dtype, and every dim the state knows."""
    if out.dtype != state.dtype:
        raise FlowcTypeError(f"the body changes the dtype of {path}: {state} before, {out} after one iteration",
                             op=label, where=loc)
    if out.rank != state.rank or any(s is not None and o != s for s, o in zip(state.shape, out.shape)):
        wanted = [None if s is not None and o != s else s for s, o in zip(state.shape, out.shape)]
        hint = (f"give {path} a shape_invariants entry with None where it changes, such as {format_shape(wanted)}"
                if out.rank == state.rank else "the rank of a loop variable cannot change")
        raise FlowcTypeError(f"the body changes the shape of {path}: {state} before, {out} after one "
                             f"iteration; {hint}", op=label, where=loc)
