"""fc.nn.rnn_cell: TensorFlow 1's recurrent cells, one time step each.

A cell maps (inputs [batch, depth], state) to (output, new state). Its
Variables are made on its first call (or `build`) and every later call of the
same cell object uses them again, so one cell unrolled over T steps, or run
in a loop body, has one set of weights.

Note [cell variable names]: flowc has name scopes but no variable scopes yet
(issue 20), so a cell names its Variables by a name scope of its own, made
unique in the graph the first time the cell is built: under
`fc.nn.static_rnn` a BasicLSTMCell's are "rnn/basic_lstm_cell/kernel" and
"rnn/basic_lstm_cell/bias", as in TensorFlow 1, and a second cell in the same
scope gets "rnn/basic_lstm_cell_1/...". The ops of each step go under a
name scope of the cell's name in the caller's scope.

The kernels are laid out as TensorFlow 1 lays them out ([inputs, state] rows
against gate columns, LSTM gates in the order i, j, f, o; GRU gates r, u), so
weights read from a TensorFlow checkpoint give the same results.
"""

from __future__ import annotations

import collections
import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import DType, as_dtype, float32

from . import nest
from .array_ops import concat, zeros
from .func_graph import FuncGraph
from .graph import Tensor, get_default_graph
from .math_ops import cast, constant, convert_to_tensor, matmul, maximum, minimum, sigmoid, tanh, where
from .random_ops import random_uniform
from .sources import user_location
from .state_ops import Variable

__all__ = ["BasicLSTMCell", "BasicRNNCell", "GRUCell", "LSTMCell", "LSTMStateTuple", "MultiRNNCell", "RNNCell"]

Initializer = Callable[..., Any]  # initializer(shape, dtype=dtype) -> a tensor or array of that shape


class LSTMStateTuple(collections.namedtuple("LSTMStateTuple", ("c", "h"))):
    """An LSTM's state: the cell state `c` and the output `h`, each [batch, units]."""

    __slots__ = ()

    @property
    def dtype(self) -> DType:
        c, h = self
        if c.dtype != h.dtype:
            raise FlowcTypeError(f"the c and h of an LSTMStateTuple differ in dtype: {c.dtype.name} and "
                                 f"{h.dtype.name}", op="LSTMStateTuple", where=user_location())
        return c.dtype


# -- initializers --------------------------------------------------------------------------


def glorot_uniform(shape: Sequence[int], dtype: DType = float32) -> Tensor:
    """Uniform in +-sqrt(6 / (fan_in + fan_out)): TensorFlow 1's default for a variable without one."""
    fan_in, fan_out = (shape[0], shape[0]) if len(shape) == 1 else (shape[-2], shape[-1])
    limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
    return random_uniform(shape, -limit, limit, dtype=dtype)


def constant_initializer(value: float) -> Initializer:
    return lambda shape, dtype=float32: constant(value, dtype=dtype, shape=shape)


def zeros_initializer(shape: Sequence[int], dtype: DType = float32) -> Tensor:
    return constant(0, dtype=dtype, shape=shape)


def zeros_for_batch(inputs: Tensor, sizes: Any, dtype: DType) -> Any:
    """Zeros [batch, size] for each size of the structure `sizes`, batch being `inputs`' first dim,
    also when only the run knows it."""
    if inputs.type.shape[0] is not None:
        return nest.map_structure(lambda size: zeros([inputs.type.shape[0], size], dtype), sizes)
    column = inputs[:, :1] if inputs.dtype == dtype else cast(inputs[:, :1], dtype)
    never = constant(False)  # where(false, x, 0) takes x's run-time batch and none of its values
    return nest.map_structure(lambda size: where(never, column, zeros([size], dtype)), sizes)


# -- the base --------------------------------------------------------------------------------


class RNNCell(ABC):
    """The interface every cell has: state_size, output_size, zero_state, build and __call__."""

    default_name = "rnn_cell"

    def __init__(self, name: str | None = None, dtype: DType | str | None = None):
        self.name = name or self.default_name
        self._dtype = as_dtype(dtype) if dtype is not None else None
        self._variables: list[Variable] = []
        self.built = False

    @property
    @abstractmethod
    def state_size(self) -> Any:
        """An int, or a (nested) tuple of ints: the widths of the state's tensors."""

    @property
    @abstractmethod
    def output_size(self) -> int:
        """The width of the output."""

    @property
    def variables(self) -> list[Variable]:
        return list(self._variables)

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for v in self._variables if v.trainable]

    weights = variables
    trainable_weights = trainable_variables

    def zero_state(self, batch_size: int, dtype: DType | str) -> Any:
        """Zeros shaped like the state: [batch_size, s] for each s in state_size."""
        if isinstance(batch_size, Tensor) or not isinstance(batch_size, int):
            raise GraphError(f"zero_state needs a Python int batch size, got {batch_size!r}; for a batch size "
                             "known only at run time, give dtype= to fc.nn.static_rnn / dynamic_rnn instead",
                             op=f"{type(self).__name__}.zero_state", where=user_location())
        with get_default_graph().name_scope(f"{type(self).__name__}ZeroState"):
            return nest.map_structure(lambda size: zeros([batch_size, size], as_dtype(dtype)), self.state_size)

    def zero_state_like(self, inputs: Tensor, dtype: DType | str) -> Any:
        """Zeros shaped like the state with the batch of `inputs`, whose batch size may be unknown."""
        batch = inputs.type.shape[0] if inputs.type.shape else None
        if batch is not None:
            return self.zero_state(batch, dtype)
        with get_default_graph().name_scope(f"{type(self).__name__}ZeroState"):
            return zeros_for_batch(inputs, self.state_size, as_dtype(dtype))

    def __call__(self, inputs: Any, state: Any, scope: str | None = None) -> tuple[Any, Any]:
        """(output, new_state) for one step; makes the cell's Variables on the first call."""
        inputs = convert_to_tensor(inputs)
        if inputs.type.rank != 2 or inputs.type.shape[1] is None:
            raise FlowcTypeError(f"a cell's inputs are [batch, depth] with a known depth, got {inputs.type}",
                                 op=f"{type(self).__name__} '{self.name}'", where=user_location())
        if not self.built:
            self.build_in_scope(inputs.type.shape, inputs.dtype, scope)
        with get_default_graph().name_scope(scope or self.name):
            return self.call(inputs, state)

    def build_in_scope(self, inputs_shape: Sequence[int | None], dtype: DType, scope: str | None = None) -> None:
        """Make the Variables under this cell's own scope (Note [cell variable names]).

        A cell first called in a loop body or a branch (fc.scan's fn, say)
        makes them in the graph around it, as TensorFlow 1's init_scope
        does: a body cannot make Variables, it reads them.
        """
        graph, inner_scopes = get_default_graph(), []
        while isinstance(graph, FuncGraph):
            inner_scopes = [*graph._scope_stack, *inner_scopes]
            graph = graph.outer
        full_scope = graph.unique_name("/".join([*inner_scopes, scope or self.name]), user_location())
        self._dtype = self._dtype or dtype
        with graph.as_default(), graph.name_scope(full_scope + "/"):
            self.build(tuple(inputs_shape))
        self.built = True

    def build(self, inputs_shape: Sequence[int | None]) -> None:
        """Make the Variables for inputs of `inputs_shape` ([batch, depth]) in the current name scope."""
        self.built = True

    @abstractmethod
    def call(self, inputs: Tensor, state: Any) -> tuple[Any, Any]:
        """(output, new_state) from the step's inputs and the state, with the Variables built."""

    def add_variable(self, name: str, shape: Sequence[int], initializer: Initializer | None = None) -> Variable:
        dtype = self._dtype or float32
        make = initializer or glorot_uniform
        variable = Variable(lambda: make(tuple(shape), dtype=dtype), name=name, dtype=dtype)
        self._variables.append(variable)
        return variable


def _depth(inputs_shape: Sequence[int | None], cell: RNNCell) -> int:
    depth = inputs_shape[-1] if inputs_shape else None
    if depth is None:
        raise FlowcTypeError(f"{type(cell).__name__} needs the inputs' last dim to make its kernel, got shape "
                             f"{list(inputs_shape)}", op=f"{type(cell).__name__} '{cell.name}'",
                             where=user_location())
    return int(depth)


def _columns(x: Tensor, start: int, width: int) -> Tensor:
    return x[:, start:start + width]


def _clip(x: Tensor, bound: float) -> Tensor:
    return minimum(maximum(x, -bound), bound)


def _split_state(cell: RNNCell, state: Any, widths: Sequence[int]) -> list[Tensor]:
    """A tuple state as its parts; a concatenated one cut into columns of `widths`."""
    if isinstance(state, (tuple, list)):
        return [convert_to_tensor(s) for s in state]
    state = convert_to_tensor(state)
    if state.type.rank != 2 or state.type.shape[1] != sum(widths):
        raise FlowcTypeError(f"a concatenated state is [batch, {sum(widths)}], got {state.type}",
                             op=f"{type(cell).__name__} '{cell.name}'", where=user_location())
    offsets = [sum(widths[:i]) for i in range(len(widths))]
    return [_columns(state, offset, width) for offset, width in zip(offsets, widths)]


def _gates(x: Tensor, count: int, width: int) -> list[Tensor]:
    return [_columns(x, k * width, width) for k in range(count)]


# -- the cells ----------------------------------------------------------------------------------


class BasicRNNCell(RNNCell):
    """output = new_state = activation([inputs, state] @ kernel + bias).

    >>> import flowc as fc
    >>> with fc.Graph().as_default():
    ...     cell = fc.nn.rnn_cell.BasicRNNCell(4)
    ...     out, state = cell(fc.zeros([2, 3]), cell.zero_state(2, fc.float32))
    ...     [v.name for v in cell.variables], out.shape
    (['basic_rnn_cell/kernel:0', 'basic_rnn_cell/bias:0'], (2, 4))
    """

    default_name = "basic_rnn_cell"

    def __init__(self, num_units: int, activation: Callable[[Tensor], Tensor] | None = None, reuse: bool | None = None,
                 name: str | None = None, dtype: DType | str | None = None):
        super().__init__(name, dtype)
        self._num_units = int(num_units)
        self._activation = activation or tanh

    @property
    def state_size(self) -> int:
        return self._num_units

    @property
    def output_size(self) -> int:
        return self._num_units

    def build(self, inputs_shape: Sequence[int | None]) -> None:
        depth = _depth(inputs_shape, self)
        self._kernel = self.add_variable("kernel", [depth + self._num_units, self._num_units])
        self._bias = self.add_variable("bias", [self._num_units], zeros_initializer)
        self.built = True

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Tensor]:
        state = convert_to_tensor(state)
        output = self._activation(matmul(concat([inputs, state], 1), self._kernel) + self._bias)
        return output, output


class BasicLSTMCell(RNNCell):
    """The LSTM of Zaremba et al.: no peepholes, no clipping, no projection; forget_bias added to f.

    Gates i, j, f, o = split([inputs, h] @ kernel + bias, 4);
    c' = c * sigmoid(f + forget_bias) + sigmoid(i) * activation(j); h' = activation(c') * sigmoid(o).
    The state is LSTMStateTuple(c, h), or [c, h] concatenated when state_is_tuple is False.
    """

    default_name = "basic_lstm_cell"

    def __init__(self, num_units: int, forget_bias: float = 1.0, state_is_tuple: bool = True,
                 activation: Callable[[Tensor], Tensor] | None = None, reuse: bool | None = None,
                 name: str | None = None, dtype: DType | str | None = None):
        super().__init__(name, dtype)
        self._num_units = int(num_units)
        self._forget_bias = float(forget_bias)
        self._state_is_tuple = bool(state_is_tuple)
        self._activation = activation or tanh

    @property
    def state_size(self) -> Any:
        n = self._num_units
        return LSTMStateTuple(n, n) if self._state_is_tuple else 2 * n

    @property
    def output_size(self) -> int:
        return self._num_units

    def build(self, inputs_shape: Sequence[int | None]) -> None:
        depth = _depth(inputs_shape, self)
        self._kernel = self.add_variable("kernel", [depth + self._num_units, 4 * self._num_units])
        self._bias = self.add_variable("bias", [4 * self._num_units], zeros_initializer)
        self.built = True

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        c, h = _split_state(self, state, [self._num_units] * 2)
        gates = matmul(concat([inputs, h], 1), self._kernel) + self._bias
        i, j, f, o = _gates(gates, 4, self._num_units)
        new_c = c * sigmoid(f + self._forget_bias) + sigmoid(i) * self._activation(j)
        new_h = self._activation(new_c) * sigmoid(o)
        new_state = LSTMStateTuple(new_c, new_h) if self._state_is_tuple else concat([new_c, new_h], 1)
        return new_h, new_state


class LSTMCell(RNNCell):
    """The LSTM with optional peepholes (Sak et al.), cell clipping and an output projection.

    Variables: kernel [depth + h_depth, 4 * num_units], bias; with use_peepholes w_f_diag,
    w_i_diag, w_o_diag [num_units]; with num_proj projection/kernel [num_units, num_proj].
    The output is m (num_proj wide when projecting); the state LSTMStateTuple(c, m).
    """

    default_name = "lstm_cell"

    def __init__(self, num_units: int, use_peepholes: bool = False, cell_clip: float | None = None,
                 initializer: Initializer | None = None, num_proj: int | None = None, proj_clip: float | None = None,
                 num_unit_shards: int | None = None, num_proj_shards: int | None = None, forget_bias: float = 1.0,
                 state_is_tuple: bool = True, activation: Callable[[Tensor], Tensor] | None = None,
                 reuse: bool | None = None, name: str | None = None, dtype: DType | str | None = None):
        super().__init__(name, dtype)
        if num_unit_shards is not None or num_proj_shards is not None:
            raise GraphError("num_unit_shards and num_proj_shards (deprecated in TensorFlow 1) are not supported: "
                             "flowc does not partition variables", op="LSTMCell", where=user_location())
        self._num_units = int(num_units)
        self._use_peepholes = bool(use_peepholes)
        self._cell_clip = cell_clip
        self._initializer = initializer
        self._num_proj = None if num_proj is None else int(num_proj)
        self._proj_clip = proj_clip
        self._forget_bias = float(forget_bias)
        self._state_is_tuple = bool(state_is_tuple)
        self._activation = activation or tanh

    @property
    def _h_depth(self) -> int:
        return self._num_proj or self._num_units

    @property
    def state_size(self) -> Any:
        if self._state_is_tuple:
            return LSTMStateTuple(self._num_units, self._h_depth)
        return self._num_units + self._h_depth

    @property
    def output_size(self) -> int:
        return self._h_depth

    def build(self, inputs_shape: Sequence[int | None]) -> None:
        depth, n = _depth(inputs_shape, self), self._num_units
        self._kernel = self.add_variable("kernel", [depth + self._h_depth, 4 * n], self._initializer)
        self._bias = self.add_variable("bias", [4 * n], zeros_initializer)
        if self._use_peepholes:
            self._w_f_diag = self.add_variable("w_f_diag", [n], self._initializer)
            self._w_i_diag = self.add_variable("w_i_diag", [n], self._initializer)
            self._w_o_diag = self.add_variable("w_o_diag", [n], self._initializer)
        if self._num_proj is not None:
            with get_default_graph().name_scope("projection"):
                self._proj_kernel = self.add_variable("kernel", [n, self._num_proj], self._initializer)
        self.built = True

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        c_prev, m_prev = _split_state(self, state, [self._num_units, self._h_depth])
        gates = matmul(concat([inputs, m_prev], 1), self._kernel) + self._bias
        i, j, f, o = _gates(gates, 4, self._num_units)
        if self._use_peepholes:
            f, i = f + self._w_f_diag * c_prev, i + self._w_i_diag * c_prev
        c = sigmoid(f + self._forget_bias) * c_prev + sigmoid(i) * self._activation(j)
        if self._cell_clip is not None:
            c = _clip(c, self._cell_clip)
        if self._use_peepholes:
            o = o + self._w_o_diag * c  # the output gate peeks at the new cell state
        m = sigmoid(o) * self._activation(c)
        if self._num_proj is not None:
            m = matmul(m, self._proj_kernel)
            if self._proj_clip is not None:
                m = _clip(m, self._proj_clip)
        new_state = LSTMStateTuple(c, m) if self._state_is_tuple else concat([c, m], 1)
        return m, new_state


class GRUCell(RNNCell):
    """The gated recurrent unit of Cho et al.

    r, u = split(sigmoid([inputs, h] @ gates/kernel + gates/bias), 2);
    c = activation([inputs, r * h] @ candidate/kernel + candidate/bias); h' = u * h + (1 - u) * c.
    The gates' bias starts at 1 (TensorFlow 1's default), the candidate's at 0.
    """

    default_name = "gru_cell"

    def __init__(self, num_units: int, activation: Callable[[Tensor], Tensor] | None = None, reuse: bool | None = None,
                 kernel_initializer: Initializer | None = None, bias_initializer: Initializer | None = None,
                 name: str | None = None, dtype: DType | str | None = None):
        super().__init__(name, dtype)
        self._num_units = int(num_units)
        self._activation = activation or tanh
        self._kernel_initializer = kernel_initializer
        self._bias_initializer = bias_initializer

    @property
    def state_size(self) -> int:
        return self._num_units

    @property
    def output_size(self) -> int:
        return self._num_units

    def build(self, inputs_shape: Sequence[int | None]) -> None:
        depth, n = _depth(inputs_shape, self), self._num_units
        graph = get_default_graph()
        with graph.name_scope("gates"):
            self._gate_kernel = self.add_variable("kernel", [depth + n, 2 * n], self._kernel_initializer)
            self._gate_bias = self.add_variable("bias", [2 * n], self._bias_initializer or constant_initializer(1.0))
        with graph.name_scope("candidate"):
            self._candidate_kernel = self.add_variable("kernel", [depth + n, n], self._kernel_initializer)
            self._candidate_bias = self.add_variable("bias", [n], self._bias_initializer or zeros_initializer)
        self.built = True

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Tensor]:
        h = convert_to_tensor(state)
        gates = sigmoid(matmul(concat([inputs, h], 1), self._gate_kernel) + self._gate_bias)
        r, u = _gates(gates, 2, self._num_units)
        candidate = self._activation(matmul(concat([inputs, r * h], 1), self._candidate_kernel) + self._candidate_bias)
        new_h = u * h + (1 - u) * candidate
        return new_h, new_h


class MultiRNNCell(RNNCell):
    """Cells stacked: each one's output is the next one's input; the state is the tuple of theirs.

    Each cell's Variables live under "cell_<i>/" of this cell's scope, e.g.
    "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel".
    """

    default_name = "multi_rnn_cell"

    def __init__(self, cells: Sequence[RNNCell], state_is_tuple: bool = True):
        super().__init__()
        self._cells = list(cells)
        if not self._cells:
            raise GraphError("MultiRNNCell needs at least one cell", op="MultiRNNCell", where=user_location())
        self._state_is_tuple = bool(state_is_tuple)
        if not state_is_tuple and any(isinstance(c.state_size, tuple) for c in self._cells):
            raise GraphError("a MultiRNNCell with state_is_tuple=False needs cells whose state is one tensor "
                             "(state_is_tuple=False on them too)", op="MultiRNNCell", where=user_location())

    @property
    def state_size(self) -> Any:
        sizes = tuple(cell.state_size for cell in self._cells)
        return sizes if self._state_is_tuple else sum(sizes)

    @property
    def output_size(self) -> int:
        return self._cells[-1].output_size

    @property
    def variables(self) -> list[Variable]:
        return [v for cell in self._cells for v in cell.variables]

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for cell in self._cells for v in cell.trainable_variables]

    def build(self, inputs_shape: Sequence[int | None]) -> None:
        shape = tuple(inputs_shape)
        graph = get_default_graph()
        for index, cell in enumerate(self._cells):
            with graph.name_scope(f"cell_{index}"):
                if not cell.built:
                    cell.build_in_scope(shape, self._dtype or float32)
            shape = (*shape[:-1], cell.output_size)
        self.built = True

    def call(self, inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
        if self._state_is_tuple:
            if not isinstance(state, (tuple, list)) or len(state) != len(self._cells):
                raise FlowcTypeError(f"the state of a MultiRNNCell of {len(self._cells)} cells is a tuple of "
                                     f"{len(self._cells)} states, got {state!r}", op="MultiRNNCell",
                                     where=user_location())
            parts = list(state)
        else:
            parts = _split_state(self, state, [cell.state_size for cell in self._cells])
        graph = get_default_graph()
        output, new_states = inputs, []
        for index, (cell, part) in enumerate(zip(self._cells, parts)):
            with graph.name_scope(f"cell_{index}"):
                output, new_state = cell(output, part)
            new_states.append(new_state)
        return output, (tuple(new_states) if self._state_is_tuple else concat(new_states, 1))
