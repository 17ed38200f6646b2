"""fc.train.ExponentialMovingAverage: shadow Variables that follow other Variables (TF1's tf.train one).

`apply(var_list)` makes one non-trainable shadow Variable per variable, named
'<var>/ExponentialMovingAverage' and starting at the variable's initial value, and returns
the op that moves every shadow: shadow -= (1 - decay) * (shadow - var). With `num_updates`
the decay is min(decay, (1 + num_updates) / (10 + num_updates)). A Tensor (not a Variable)
may be averaged too; its shadow starts at zero, and `zero_debias=True` divides out the
bias of that start as TF1's assign_moving_average does.

    >>> import numpy as np, flowc as fc
    >>> with fc.Graph().as_default():
    ...     w = fc.Variable(np.float32([1.0]), name="w")
    ...     ema = fc.train.ExponentialMovingAverage(decay=0.75)
    ...     with fc.control_dependencies([fc.assign(w, [5.0])]):
    ...         update = ema.apply([w])
    ...     with fc.Session() as sess:
    ...         _ = sess.run(fc.global_variables_initializer())
    ...         _ = sess.run(update)
    ...         sess.run(ema.average(w))   # 1 - 0.25 * (1 - 5)
    array([2.], dtype=float32)
"""

from __future__ import annotations

from typing import Any, Sequence

from flowc.ir.errors import GraphError

from .graph import Operation, Tensor, get_default_graph
from .math_ops import cast, convert_to_tensor, minimum, pow
from .shape_ops import zeros
from .sources import user_location
from .state_ops import Variable, assign_add, assign_sub, global_variables, group, trainable_variables

MOVING_AVERAGE_VARIABLES = "moving_average_variables"


class ExponentialMovingAverage:
    """Moving averages of variables (and tensors), as TF1's tf.train.ExponentialMovingAverage."""

    def __init__(self, decay: Any, num_updates: Any = None, zero_debias: bool = False,
                 name: str = "ExponentialMovingAverage"):
        self._decay = decay
        self._num_updates = num_updates
        self._zero_debias = zero_debias
        self.name = name
        self._averages: dict[Any, Variable] = {}

    def apply(self, var_list: Sequence[Any] | None = None) -> Operation:
        """The op that updates the shadows of `var_list` (default: the trainable variables), making them first."""
        items = list(trainable_variables() if var_list is None else var_list)
        graph = get_default_graph()
        for item in items:
            if not isinstance(item, (Variable, Tensor)) or not item.dtype.is_float:
                raise GraphError(f"can only average float Variables and Tensors, got {item!r}",
                                 op=f"{self.name}.apply", where=user_location())
            if item in self._averages:
                raise GraphError(f"{_name_of(item)!r} already has a moving average", op=f"{self.name}.apply",
                                 where=user_location())
            self._averages[item] = self._shadow(item)
            if isinstance(item, Variable):
                graph.add_to_collection(MOVING_AVERAGE_VARIABLES, item)
        with graph.name_scope(self.name):
            updates = [self._update(item) for item in items]
        return group(*updates, name=self.name)

    def average(self, var: Any) -> Variable | None:
        """The shadow Variable of `var`, or None if `apply` never saw it."""
        return self._averages.get(var)

    def average_name(self, var: Any) -> str:
        """The checkpoint name of `var`'s shadow: '<var op name>/<this average's name>'."""
        return f"{_name_of(var)}/{self.name}"

    def variables_to_restore(self, moving_avg_variables: Sequence[Variable] | None = None) -> dict[str, Variable]:
        """A Saver var_list that loads each averaged variable from its shadow's checkpoint name, and every
        other global variable from its own."""
        if moving_avg_variables is None:
            graph = get_default_graph()
            moving_avg_variables = list(trainable_variables()) + list(graph.get_collection(MOVING_AVERAGE_VARIABLES))
        averaged = set(moving_avg_variables)
        names = {self.average_name(v): v for v in averaged}
        for var in global_variables():
            if var not in averaged and var.op.name not in names:
                names[var.op.name] = var
        return names

    # -- building --------------------------------------------------------------

    def _shadow(self, item: Any) -> Variable:
        graph = get_default_graph()
        with graph.name_scope(_name_of(item) + "/"):
            if isinstance(item, Variable):
                return Variable(lambda: item.initialized_value(), trainable=False, name=self.name)
            return Variable(lambda: zeros(_static_shape(item, self.name), item.dtype), trainable=False, name=self.name)

    def _decay_for(self, dtype: Any) -> Tensor:
        decay = convert_to_tensor(self._decay, dtype=dtype) if not isinstance(self._decay, Tensor) \
            else cast(self._decay, dtype)
        if self._num_updates is None:
            return decay
        n = cast(self._num_updates, dtype)
        return minimum(decay, (1.0 + n) / (10.0 + n))

    def _update(self, item: Any) -> Tensor:
        shadow = self._averages[item]
        one_minus_decay = convert_to_tensor(1.0, dtype=item.dtype) - self._decay_for(item.dtype)
        value = item.value() if isinstance(item, Variable) else item
        if self._zero_debias and not isinstance(item, Variable):
            return assign_sub(shadow, self._debiased_delta(item, shadow, value, one_minus_decay))
        return assign_sub(shadow, (shadow - value) * one_minus_decay)

    def _debiased_delta(self, item: Tensor, shadow: Variable, value: Tensor, one_minus_decay: Tensor) -> Tensor:
        """TF1's zero debiasing: a biased average from zero and a step count; the shadow moves to
        biased / (1 - decay^t)."""
        graph = get_default_graph()
        with graph.name_scope(_name_of(item) + "/"):
            biased = Variable(lambda: zeros(shadow.shape, item.dtype), trainable=False, name=self.name + "/biased")
            local_step = Variable(lambda: zeros((), item.dtype), trainable=False, name=self.name + "/local_step")
        new_biased = assign_sub(biased, (biased - value) * one_minus_decay)
        new_step = assign_add(local_step, convert_to_tensor(1.0, dtype=item.dtype))
        one = convert_to_tensor(1.0, dtype=item.dtype)
        return shadow - new_biased / (one - pow(one - one_minus_decay, new_step))


def _name_of(item: Any) -> str:
    return item.op.name


def _static_shape(tensor: Tensor, what: str) -> tuple[int, ...]:
    shape = tuple(tensor.type.shape)
    if not all(isinstance(d, int) for d in shape):
        raise GraphError(f"a moving average needs a static shape; {tensor.op.name!r} has {shape}", op=what,
                         where=user_location())
    return shape  # type: ignore[return-value]
