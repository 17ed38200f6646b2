"""fc.nn.static_rnn and fc.nn.dynamic_rnn: a cell run over a sequence, as in TensorFlow 1.

static_rnn unrolls the steps into the graph; dynamic_rnn is one fc.while_loop
whose body calls the cell once, reading the step's inputs from a TensorArray
and writing its outputs into another, so the graph (and the compile time)
does not grow with the number of steps, which may be known only at run time.

With `sequence_length`, a batch row whose sequence has ended gives zero
outputs and keeps its last state (TensorFlow 1's rule):
    (output, state)(b, t) = t >= sequence_length[b] ? (0, state(b, t - 1)) : cell(input(b, t), state(b, t - 1))
"""

from __future__ import annotations

from typing import Any, Sequence

from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import DType

from . import nest
from .array_ops import expand_dims, transpose
from .control_flow import while_loop
from .graph import Tensor, get_default_graph
from .math_ops import cast, constant, convert_to_tensor, less, reduce_sum, where
from .rnn_cell import RNNCell, zeros_for_batch
from .sources import user_location
from .tensor_array import TensorArray, count_rows, zero_rows


def static_rnn(cell: RNNCell, inputs: Sequence[Any], initial_state: Any = None, dtype: DType | str | None = None,
               sequence_length: Any = None, scope: str | None = None) -> tuple[list[Tensor], Any]:
    """(outputs, final state) of `cell` unrolled over `inputs`, a list of T tensors [batch, depth].

    The state starts at `initial_state`, else at zeros of `dtype`. The cell's
    Variables are made under `scope` (default "rnn"): "rnn/basic_lstm_cell/kernel".

    >>> import flowc as fc
    >>> with fc.Graph().as_default():
    ...     xs = [fc.placeholder(fc.float32, [None, 3]) for _ in range(5)]
    ...     outputs, state = fc.nn.static_rnn(fc.nn.rnn_cell.BasicLSTMCell(4), xs, dtype=fc.float32)
    ...     len(outputs), outputs[-1].shape, state.h is outputs[-1]
    (5, (None, 4), True)
    """
    _check_cell(cell, "static_rnn")
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise GraphError(f"inputs must be a non-empty list of [batch, depth] tensors, got {inputs!r}",
                         op="static_rnn", where=user_location())
    inputs = [convert_to_tensor(x) for x in inputs]
    with get_default_graph().name_scope(scope or "rnn"):
        state = initial_state_for(cell, inputs[0], initial_state, dtype, "static_rnn")
        lengths = _lengths(sequence_length, inputs[0], "static_rnn")
        outputs = []
        for time, step_inputs in enumerate(inputs):
            output, new_state = cell(step_inputs, state)
            if lengths is not None:
                output, new_state = _freeze_finished(lengths, time, output, new_state, state)
            outputs.append(output)
            state = new_state
    return outputs, state


def dynamic_rnn(cell: RNNCell, inputs: Any, sequence_length: Any = None, initial_state: Any = None,
                dtype: DType | str | None = None, parallel_iterations: int | None = None, swap_memory: bool = False,
                time_major: bool = False, scope: str | None = None) -> tuple[Tensor, Any]:
    """(outputs, final state) of `cell` run over `inputs` [batch, time, depth] ([time, batch, depth] when
    `time_major`) in one fc.while_loop; outputs are [batch, time, output_size] (time first when time_major).

    The state starts at `initial_state`, else at zeros of `dtype`. The cell's
    Variables are made before the loop, under `scope` (default "rnn").
    `parallel_iterations` and `swap_memory` go to fc.while_loop, where they
    change nothing.

    >>> import numpy as np, flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.float32, [None, None, 3])
    ...     cell = fc.nn.rnn_cell.GRUCell(4)
    ...     outputs, state = fc.nn.dynamic_rnn(cell, x, dtype=fc.float32)
    ...     init = fc.global_variables_initializer()
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     _ = sess.run(init)
    ...     [a.shape for a in sess.run([outputs, state], {x: np.ones((2, 7, 3), np.float32)})]
    [(2, 7, 4), (2, 4)]
    """
    _check_cell(cell, "dynamic_rnn")
    loc = user_location()
    inputs = convert_to_tensor(inputs)
    if inputs.type.rank != 3 or inputs.type.shape[2] is None:
        raise FlowcTypeError(f"inputs must be [batch, time, depth] ([time, batch, depth] with time_major) with a "
                             f"known depth, got {inputs.type}", op="dynamic_rnn", where=loc)
    with get_default_graph().name_scope(scope or "rnn"):
        steps = inputs if time_major else transpose(inputs, [1, 0, 2])  # [time, batch, depth]
        first = _one_step(steps)
        if not cell.built:  # before the loop: a loop body cannot make Variables
            cell.build_in_scope(first.type.shape, inputs.dtype)
        state = initial_state_for(cell, first, initial_state, dtype, "dynamic_rnn")
        state = nest.pack_sequence_as(cell.state_size, nest.flatten(state))  # (c, h) given as a plain tuple
        lengths = _lengths(sequence_length, first, "dynamic_rnn")
        length = steps.type.shape[0] if steps.type.shape[0] is not None else count_rows(steps)
        step_inputs = TensorArray.from_buffer(steps, "inputs")
        zero_output = zeros_for_batch(first, cell.output_size, state_dtype(state))
        outputs = TensorArray.from_buffer(zero_rows(steps, zero_output), "outputs")

        def body(time: Tensor, state: Any, outputs: TensorArray) -> tuple[Any, ...]:
            output, new_state = cell(step_inputs.read(time), state)
            if lengths is not None:
                output, new_state = _freeze_finished(lengths, time, output, new_state, state)
            return time + 1, new_state, outputs.write(time, output)

        _, state, outputs = while_loop(lambda time, state, outputs: time < length, body, [0, state, outputs],
                                       parallel_iterations=parallel_iterations or 32, swap_memory=swap_memory)
        stacked = outputs.stack()
        return (stacked if time_major else transpose(stacked, [1, 0, 2])), state


def state_dtype(state: Any) -> DType:
    return nest.flatten(state)[0].dtype


def _one_step(steps: Tensor) -> Tensor:
    """A tensor of one step's shape [batch, depth], whose batch the zero state and outputs take."""
    if steps.type.shape[0]:
        return steps[0]
    return reduce_sum(steps, 0)  # the number of steps may be 0 at run time: no step to index


def initial_state_for(cell: RNNCell, first_inputs: Tensor, initial_state: Any, dtype: DType | str | None,
                      caller: str) -> Any:
    """`initial_state` as tensors, or zeros of `dtype` for the batch of `first_inputs`."""
    if initial_state is not None:
        return nest.map_structure(convert_to_tensor, initial_state)
    if dtype is None:
        raise GraphError("give initial_state, or dtype for a zero initial state", op=caller, where=user_location())
    return cell.zero_state_like(first_inputs, dtype)


def _check_cell(cell: Any, caller: str) -> None:
    if not isinstance(cell, RNNCell):
        raise GraphError(f"cell must be an RNNCell (fc.nn.rnn_cell.*), got {cell!r}", op=caller,
                         where=user_location())


def _lengths(sequence_length: Any, first_inputs: Tensor, caller: str) -> Tensor | None:
    if sequence_length is None:
        return None
    lengths = convert_to_tensor(sequence_length)
    batch = first_inputs.type.shape[0] if first_inputs.type.shape else None
    if lengths.dtype.kind != "int" or lengths.type.rank != 1 or None not in (batch, lengths.type.shape[0]) and \
            lengths.type.shape[0] != batch:
        raise FlowcTypeError(f"sequence_length must be an int32 or int64 vector [batch_size] (batch size "
                             f"{batch}), got {lengths.type}", op=caller, where=user_location())
    return lengths


def _freeze_finished(lengths: Tensor, time: Any, output: Tensor, new_state: Any, state: Any) -> tuple[Tensor, Any]:
    """Rows whose sequence ended before `time` (a Python int or a scalar tensor): output 0, state kept."""
    time = constant(time, dtype=lengths.dtype) if not isinstance(time, Tensor) else time
    if time.dtype != lengths.dtype:
        time = cast(time, lengths.dtype)
    running = expand_dims(less(time, lengths), 1)  # [batch, 1], against [batch, units]
    output = where(running, output, 0)
    return output, nest.map_structure(lambda new, old: where(running, new, old), new_state, state, check_types=False)
