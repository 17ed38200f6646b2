"""fc.map_fn, fc.scan, fc.foldl, fc.foldr: TensorFlow 1's higher-order functions.

Each is one fc.while_loop over the first axis of `elems` (any nesting of
tensors, all with the same first dim). An element is read with read_row
from the captured `elems`; the per-step results of map_fn and scan are
written into TensorArrays carried as loop variables (Note [tensor array
storage]) and stacked at the end. The loop's trip count is the first dim of
`elems`, known when the graph is built or only when it runs.

`parallel_iterations` and `swap_memory` are passed to fc.while_loop, where
they change nothing (Note [loop knobs that change nothing] in
control_flow.py); `back_prop=False` lets no gradient through; `infer_shape`
changes nothing: every element of a result has the same shape.
"""

from __future__ import annotations

from typing import Any, Callable

from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import as_dtype, format_shape

from . import nest
from .array_ops import zeros
from .control_flow import while_loop
from .func_graph import trace
from .graph import Tensor, get_default_graph
from .math_ops import convert_to_tensor
from .sources import user_location
from .tensor_array import TensorArray, count_rows, zero_rows, zeros_like_any


def map_fn(fn: Callable[[Any], Any], elems: Any, dtype: Any = None, parallel_iterations: int | None = None,
           back_prop: bool = True, swap_memory: bool = False, infer_shape: bool = True, name: str | None = None) -> Any:
    """[fn(elems[0]), fn(elems[1]), ...] stacked, in the structure fn returns.

    `dtype` (TF1's name), when given, is the structure of fn's result dtypes,
    and is checked against what fn returns; fn's result shapes must be known
    when the graph is built.

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     squares = fc.map_fn(lambda x: x * x, fc.constant([1.0, 2.0, 3.0]))
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     sess.run(squares)
    array([1., 4., 9.], dtype=float32)
    """
    loc = user_location()
    with get_default_graph().name_scope(name or "map"):
        label = f"map_fn '{_scope()}'"
        sequence = _Sequence(elems, label, loc)
        result = _result_structure(fn, sequence, label, loc)
        if dtype is not None:
            _check_dtypes(result, dtype, label, loc)
        outputs = [TensorArray.from_buffer(zero_rows(sequence.first, leaf_zeros), "outputs")
                   for leaf_zeros in nest.flatten(result)]

        def body(index: Tensor, arrays: list[TensorArray]) -> tuple[Any, ...]:
            values = nest.flatten(fn(sequence.element(index)))
            return index + 1, [a.write(index, v) for a, v in zip(arrays, values)]

        _, outputs = while_loop(lambda index, arrays: index < sequence.length, body, [0, outputs],
                                parallel_iterations=parallel_iterations or 10, back_prop=back_prop,
                                swap_memory=swap_memory)
        return nest.pack_sequence_as(result, [a.stack() for a in outputs])


def scan(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any = None, parallel_iterations: int = 10,
         back_prop: bool = True, swap_memory: bool = False, infer_shape: bool = True, reverse: bool = False,
         name: str | None = None) -> Any:
    """Every accumulator of `a = fn(a, x)` over the elements, stacked: result[i] is the one after elems[i].

    `a` starts at `initializer`, or at elems[0] (which is then result[0]).
    With `reverse`, the elements are taken last to first (result[i] still
    belongs to elems[i]).

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     sums = fc.scan(lambda a, x: a + x, fc.constant([1, 2, 3, 4]))
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     sess.run(sums)
    array([ 1,  3,  6, 10], dtype=int32)
    """
    loc = user_location()
    with get_default_graph().name_scope(name or "scan"):
        label = f"scan '{_scope()}'"
        sequence = _Sequence(elems, label, loc)
        start, accumulator = _start(sequence, initializer, reverse)
        outputs = [TensorArray.from_buffer(zero_rows(sequence.first, zeros_like_any(leaf)), "outputs")
                   for leaf in nest.flatten(accumulator)]
        if initializer is None:
            first = sequence.position(0, reverse)
            outputs = [a.write(first, leaf) for a, leaf in zip(outputs, nest.flatten(accumulator))]

        def body(step: Tensor, state: Any, arrays: list[TensorArray]) -> tuple[Any, ...]:
            index = sequence.position(step, reverse)
            new_state = _step(fn, state, sequence.element(index), label)
            return step + 1, new_state, [a.write(index, v) for a, v in zip(arrays, nest.flatten(new_state))]

        _, _, outputs = while_loop(lambda step, state, arrays: step < sequence.length, body,
                                   [start, accumulator, outputs], parallel_iterations=parallel_iterations,
                                   back_prop=back_prop, swap_memory=swap_memory)
        return nest.pack_sequence_as(accumulator, [a.stack() for a in outputs])


def foldl(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any = None, parallel_iterations: int = 10,
          back_prop: bool = True, swap_memory: bool = False, name: str | None = None) -> Any:
    """The last accumulator of `a = fn(a, x)` over the elements, first to last; `a` starts at
    `initializer`, or at elems[0].

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     total = fc.foldl(lambda a, x: a * 10 + x, fc.constant([1, 2, 3]))
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     int(sess.run(total))
    123
    """
    return _fold(fn, elems, initializer, parallel_iterations, back_prop, swap_memory, name or "foldl", False)


def foldr(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any = None, parallel_iterations: int = 10,
          back_prop: bool = True, swap_memory: bool = False, name: str | None = None) -> Any:
    """As foldl, last element to first; `a` starts at `initializer`, or at elems[-1].

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     total = fc.foldr(lambda a, x: a * 10 + x, fc.constant([1, 2, 3]))
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     int(sess.run(total))
    321
    """
    return _fold(fn, elems, initializer, parallel_iterations, back_prop, swap_memory, name or "foldr", True)


def _fold(fn: Callable[[Any, Any], Any], elems: Any, initializer: Any, parallel_iterations: int, back_prop: bool,
          swap_memory: bool, name: str, reverse: bool) -> Any:
    loc = user_location()
    with get_default_graph().name_scope(name):
        label = f"{name} '{_scope()}'"
        sequence = _Sequence(elems, label, loc)
        start, accumulator = _start(sequence, initializer, reverse)

        def body(step: Tensor, state: Any) -> tuple[Any, ...]:
            index = sequence.position(step, reverse)
            return step + 1, _step(fn, state, sequence.element(index), label)

        _, result = while_loop(lambda step, state: step < sequence.length, body, [start, accumulator],
                               parallel_iterations=parallel_iterations, back_prop=back_prop, swap_memory=swap_memory)
        return result


class _Sequence:
    """`elems` read element by element: its leaves, their common first dim, element(i)."""

    def __init__(self, elems: Any, label: str, loc: str | None):
        if elems is None or not nest.flatten(elems):
            raise GraphError("elems must be a tensor or a structure of tensors, got nothing", op=label, where=loc)
        self.structure = elems
        self.leaves = [convert_to_tensor(e) for e in nest.flatten(elems)]
        for path, leaf in zip((p for p, _ in nest.flatten_with_paths(elems, "elems")), self.leaves):
            if leaf.type.rank == 0:
                raise FlowcTypeError(f"{path} is a scalar; elems are unpacked along their first axis",
                                     op=label, where=loc)
        lengths = {leaf.type.shape[0] for leaf in self.leaves} - {None}
        if len(lengths) > 1:
            shown = ", ".join(f"{leaf.type}" for leaf in self.leaves)
            raise FlowcTypeError(f"the elems have different first dims: {shown}", op=label, where=loc)
        self.first = self.leaves[0]
        self.length: int | Tensor = lengths.pop() if lengths else count_rows(self.first)
        self.arrays = [TensorArray.from_buffer(leaf, "elems") for leaf in self.leaves]

    def element(self, index: Any) -> Any:
        return nest.pack_sequence_as(self.structure, [a.read(index) for a in self.arrays])

    def row_types(self) -> list[Any]:
        return [leaf.type.with_shape(leaf.type.shape[1:]) for leaf in self.leaves]

    def position(self, step: Any, reverse: bool) -> Any:
        """The index of the element the loop takes at `step`."""
        return self.length - 1 - step if reverse else step


def _start(sequence: _Sequence, initializer: Any, reverse: bool) -> tuple[int, Any]:
    """(first step, first accumulator): the initializer from step 0, else the first element from step 1."""
    if initializer is not None:
        return 0, nest.map_structure(convert_to_tensor, initializer)
    return 1, sequence.element(sequence.position(0, reverse))


def _step(fn: Callable[[Any, Any], Any], state: Any, element: Any, label: str) -> Any:
    new_state = fn(state, element)
    if isinstance(state, list) and isinstance(new_state, tuple):
        new_state = list(new_state)  # a while loop carries lists; fn may well return a tuple
    if not nest.same_structure(state, new_state, check_types=False):
        raise nest.StructureError(f"fn must return the structure of its accumulator: the accumulator is "
                                  f"{nest.describe(state)}, fn returns {nest.describe(new_state)}", op=label,
                                  where=user_location())
    return nest.pack_sequence_as(state, nest.flatten(new_state))


def _result_structure(fn: Callable[[Any], Any], sequence: _Sequence, label: str, loc: str | None) -> Any:
    """fn's result for one element, as zeros of each leaf's shape and dtype (fn traced once to learn it)."""
    probe = trace(fn, [sequence.structure], sequence.row_types(), name="probe", purpose=f"fn of {label}",
                  owner=label)
    leaves = []
    for path, leaf in nest.flatten_with_paths(probe.structured_outputs, "fn's result"):
        if not leaf.type.is_static:
            raise FlowcTypeError(f"{path} is {leaf.type}: map_fn needs the shape of fn's result known when the "
                                 f"graph is built, {format_shape(leaf.type.shape)} is not", op=label, where=loc)
        leaves.append(zeros(leaf.type.shape, leaf.dtype))
    return nest.pack_sequence_as(probe.structured_outputs, leaves)


def _check_dtypes(result: Any, dtype: Any, label: str, loc: str | None) -> None:
    got = nest.map_structure(lambda t: t.dtype, result)
    if not nest.same_structure(got, dtype, check_types=False) or any(
            as_dtype(e) != g for e, g in zip(nest.flatten(dtype), nest.flatten(got))):
        raise FlowcTypeError(f"dtype says fn returns {_dtype_names(dtype)}, fn returns {_dtype_names(got)}",
                             op=label, where=loc)


def _dtype_names(structure: Any) -> str:
    names = nest.map_structure(lambda d: as_dtype(d).name, structure)
    return names if isinstance(names, str) else repr(names)


def _scope() -> str:
    return "/".join(get_default_graph()._scope_stack)
