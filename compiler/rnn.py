"""fc.nn.static_rnn: a cell run over a sequence, as TensorFlow 1's tf.nn.static_rnn.

With `sequence_length`, a batch row whose sequence has ended gives zero
outputs and keeps its last state (TensorFlow 1's rule):
    (output, state)(b, t) = t >= sequence_length[b] ? (0, state(b, t - 1)) : cell(input(b, t), state(b, t - 1))
"""

from __future__ import annotations

from typing import Any, Sequence

from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import DType

from . import nest
from .array_ops import expand_dims
from .graph import Tensor, get_default_graph
from .math_ops import constant, convert_to_tensor, less, where
from .rnn_cell import RNNCell
from .sources import user_location


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
    batch = first_inputs.shape[0] if first_inputs.shape else None
    if lengths.dtype.kind != "int" or lengths.type.rank != 1 or None not in (batch, lengths.shape[0]) and \
            lengths.shape[0] != batch:
        raise FlowcTypeError(f"sequence_length must be an int32 or int64 vector [batch_size] (batch size "
                             f"{batch}), got {lengths.type}", op=caller, where=user_location())
    return lengths


def _freeze_finished(lengths: Tensor, time: Any, output: Tensor, new_state: Any, state: Any) -> tuple[Tensor, Any]:
    """Rows whose sequence ended before `time` (a Python int or a scalar tensor): output 0, state kept."""
    time = constant(time, dtype=lengths.dtype) if not isinstance(time, Tensor) else time
    running = expand_dims(less(time, lengths), 1)  # [batch, 1], against [batch, units]
    output = where(running, output, 0)
    return output, nest.map_structure(lambda new, old: where(running, new, old), new_state, state, check_types=False)
