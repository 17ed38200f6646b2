"""fc.train: optimizers that turn gradients into variable updates (TensorFlow 1's tf.train).

An optimizer only builds graph ops: `minimize(loss)` is `compute_gradients`
(fc.gradients, expanded later by the autodiff pass) followed by
`apply_gradients` (assigns). So an update step is one compiled function, and
the variables and slots it assigns are written in place in their own
buffers (Note [donated arguments] in compiler/session.py).

Slot variables (Momentum's accumulator, Adam's m and v) are non-trainable
Variables named `<var>/<Optimizer>` (and `<var>/<Optimizer>_1`), created when
`apply_gradients` runs, so `global_variables_initializer()` built after
`minimize` initializes them, as in TensorFlow.

    >>> import numpy as np, flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     w = fc.Variable(np.float32([1.0, -2.0]), name="w")
    ...     loss = fc.reduce_sum(w * w)
    ...     step = fc.train.GradientDescentOptimizer(0.25).minimize(loss)
    ...     init = fc.global_variables_initializer()
    >>> with fc.Session(graph=g) as sess:
    ...     _ = sess.run(init); _ = sess.run(step)
    ...     sess.run(w)   # w - 0.25 * 2w
    array([ 0.5, -1. ], dtype=float32)
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any, Sequence

from flowc.ir.errors import GraphError

from .array_ops import zeros
from .gradients import gradients
from .graph import Operation, Tensor, control_dependencies, get_default_graph
from .math_ops import cast, convert_to_tensor, sqrt
from .sources import user_location
from .state_ops import Variable, assign, assign_add, assign_sub, group, trainable_variables

GradsAndVars = list[tuple[Tensor | None, Variable]]


class Optimizer(ABC):
    """The base: subclasses say how one variable moves given its gradient (`_apply_dense`).

    `use_locking=True` makes every assign of the update (variables, slots, Adam's powers and the
    global step) lock its variable, so threads running the step on one Session lose no update
    (Note [use_locking] in session.py); by default, as in TensorFlow 1, they may.
    """

    def __init__(self, learning_rate: Any, name: str, use_locking: bool = False):
        self._learning_rate = learning_rate
        self._name = name
        self._use_locking = use_locking
        self._slots: dict[str, dict[Variable, Variable]] = {}

    # -- the TensorFlow 1 interface --------------------------------------------

    # gate_gradients values; flowc's updates read every gradient before any variable changes (GATE_GRAPH's order)
    GATE_NONE, GATE_OP, GATE_GRAPH = 0, 1, 2

    def minimize(self, loss: Tensor, global_step: Variable | None = None, var_list: Sequence[Variable] | None = None,
                 gate_gradients: int = GATE_OP, aggregation_method: Any = None,
                 colocate_gradients_with_ops: bool = False, name: str | None = None,
                 grad_loss: Any = None) -> Operation:
        """One op that moves every variable in `var_list` (default: the trainable ones) down the gradient, and
        adds one to `global_step` after. (gate_gradients, aggregation_method and colocation are accepted as
        TF1 takes them; they change nothing here.)"""
        return self.apply_gradients(self.compute_gradients(loss, var_list, grad_loss=grad_loss), global_step, name)

    def compute_gradients(self, loss: Tensor, var_list: Sequence[Variable] | None = None, gate_gradients: int = GATE_OP,
                          aggregation_method: Any = None, colocate_gradients_with_ops: bool = False,
                          grad_loss: Any = None) -> GradsAndVars:
        """(gradient, variable) pairs; the gradient is None where the loss does not depend on the variable.
        `grad_loss` weighs the loss (ones by default)."""
        variables = list(trainable_variables() if var_list is None else var_list)
        if not variables:
            raise GraphError("no variables to optimize: the graph has no trainable Variables",
                             op=f"{self._name}.compute_gradients", where=user_location())
        return list(zip(gradients(loss, variables, grad_ys=grad_loss), variables))

    def apply_gradients(self, grads_and_vars: GradsAndVars, global_step: Variable | None = None,
                        name: str | None = None) -> Operation:
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            shown = ", ".join(v.name for _, v in grads_and_vars)
            raise GraphError(f"no gradients for any variable ({shown}): the loss depends on none of them",
                             op=f"{self._name}.apply_gradients", where=user_location())
        graph = get_default_graph()
        with graph.name_scope(name or self._name):
            self._prepare([v for _, v in pairs])
            updates = [self._apply_dense(convert_to_tensor(g), v) for g, v in pairs]
            finish = self._finish(updates)
            if global_step is not None:
                with control_dependencies(finish):
                    finish = [assign_add(global_step, 1, use_locking=self._use_locking)]
            return group(*finish, name=name or self._name)

    def get_slot(self, var: Variable, name: str) -> Variable | None:
        return self._slots.get(name, {}).get(var)

    def get_slot_names(self) -> list[str]:
        return sorted(self._slots)

    # -- what subclasses fill in ----------------------------------------------

    def _prepare(self, variables: list[Variable]) -> None:
        """Create slots and other state before the updates are built."""

    @abstractmethod
    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        """Build the update of `var` from `grad`; its value is the variable's new value."""

    def _finish(self, updates: list[Tensor]) -> list[Any]:
        """Ops to run after every update (Adam's beta powers)."""
        return updates

    # -- helpers -----------------------------------------------------------------

    def _lr(self, var: Variable) -> Tensor:
        """The learning rate in the variable's dtype (a tensor is cast; a cast to its own dtype folds away)."""
        lr = self._learning_rate
        return cast(lr, var.dtype) if isinstance(lr, Tensor) else convert_to_tensor(lr, dtype=var.dtype)

    def _zeros_slot(self, var: Variable, slot: str, suffix: str = "") -> Variable:
        """A non-trainable zero Variable shaped like `var`, named '<var>/<Optimizer><suffix>'."""
        by_var = self._slots.setdefault(slot, {})
        if var not in by_var:
            with var.graph.name_scope(var.op.name + "/"), colocated_with(var):  # under the variable
                # A callable: Variable builds it outside any control_dependencies of the caller.
                by_var[var] = Variable(lambda: zeros(var.shape, var.dtype), trainable=False, name=self._name + suffix)
        return by_var[var]


def colocated_with(var: Variable) -> Any:
    """A device scope placing a slot where its variable is (TF1 colocates slots with their variable);
    nothing for a variable that nobody placed."""
    return var.graph.device(var.device) if var.device else contextlib.nullcontext()


class GradientDescentOptimizer(Optimizer):
    """var -= learning_rate * grad."""

    def __init__(self, learning_rate: Any, use_locking: bool = False, name: str = "GradientDescent"):
        super().__init__(learning_rate, name, use_locking)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        return assign_sub(var, self._lr(var) * grad, use_locking=self._use_locking)


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + grad; var -= lr * accum (Nesterov: var -= lr * (grad + momentum * accum))."""

    def __init__(self, learning_rate: Any, momentum: float, use_locking: bool = False, name: str = "Momentum",
                 use_nesterov: bool = False):
        super().__init__(learning_rate, name, use_locking)
        self._momentum = momentum
        self._use_nesterov = use_nesterov

    def _prepare(self, variables: list[Variable]) -> None:
        for var in variables:
            self._zeros_slot(var, "momentum")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        accum = self.get_slot(var, "momentum")
        momentum = convert_to_tensor(self._momentum, dtype=var.dtype)
        new_accum = assign(accum, accum * momentum + grad, use_locking=self._use_locking)
        step = grad + momentum * new_accum if self._use_nesterov else new_accum
        return assign_sub(var, self._lr(var) * step, use_locking=self._use_locking)


class AdamOptimizer(Optimizer):
    """Adam as TensorFlow 1 writes it (Kingma and Ba, section 2, the 'epsilon hat' form):

        lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
        var -= lr_t * m / (sqrt(v) + epsilon)

    beta1^t and beta2^t are two Variables (starting at beta1 and beta2) that
    each step multiplies after all its updates.
    """

    def __init__(self, learning_rate: Any = 0.001, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 use_locking: bool = False, name: str = "Adam"):
        super().__init__(learning_rate, name, use_locking)
        self._beta1, self._beta2, self._epsilon = beta1, beta2, epsilon
        self._powers: tuple[Variable, Variable] | None = None

    def _prepare(self, variables: list[Variable]) -> None:
        for var in variables:
            self._zeros_slot(var, "m")
            self._zeros_slot(var, "v", "_1")
        if self._powers is None:
            dtype = variables[0].dtype
            self._powers = (Variable(lambda: convert_to_tensor(self._beta1, dtype=dtype), trainable=False,
                                     name="beta1_power"),
                            Variable(lambda: convert_to_tensor(self._beta2, dtype=dtype), trainable=False,
                                     name="beta2_power"))

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        assert self._powers is not None  # _prepare made them
        beta1_power, beta2_power = (cast(p.value(), var.dtype) if p.dtype != var.dtype else p.value()
                                    for p in self._powers)
        dtype = var.dtype
        beta1, beta2, epsilon = (convert_to_tensor(c, dtype=dtype) for c in (self._beta1, self._beta2, self._epsilon))
        one = convert_to_tensor(1.0, dtype=dtype)
        lr_t = self._lr(var) * sqrt(one - beta2_power) / (one - beta1_power)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        locking = self._use_locking
        new_m = assign(m, beta1 * m + (one - beta1) * grad, use_locking=locking)
        new_v = assign(v, beta2 * v + (one - beta2) * grad * grad, use_locking=locking)
        return assign_sub(var, lr_t * new_m / (sqrt(new_v) + epsilon), use_locking=locking)

    def _finish(self, updates: list[Tensor]) -> list[Any]:
        assert self._powers is not None
        beta1_power, beta2_power = self._powers
        with control_dependencies(updates):  # after every update read this step's powers
            return [assign(beta1_power, beta1_power * self._beta1, use_locking=self._use_locking),
                    assign(beta2_power, beta2_power * self._beta2, use_locking=self._use_locking)]


# The global step lives with the variable scopes (variable_scope.py); tf.train names it here.
from .variable_scope import create_global_step, get_global_step, get_or_create_global_step  # noqa: E402,F401
# The rest of TF1's tf.train, one topic per module: checkpoints, more optimizers, schedules, moving averages.
from .saver import (  # noqa: E402,F401
    CheckpointState, Saver, checkpoint_exists, get_checkpoint_state, import_meta_graph, latest_checkpoint,
    list_variables, load_variable, update_checkpoint_state,
)
from .optimizers import AdadeltaOptimizer, AdagradOptimizer, FtrlOptimizer, RMSPropOptimizer  # noqa: E402,F401
from .learning_rate import (  # noqa: E402,F401
    cosine_decay, exponential_decay, inverse_time_decay, natural_exp_decay, piecewise_constant, polynomial_decay,
)
from .moving_averages import ExponentialMovingAverage  # noqa: E402,F401
