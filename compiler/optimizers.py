"""TF1's other optimizers: RMSProp, Adagrad, Adadelta and FTRL, built as compiler/train.py builds its own.

Each is an `Optimizer` whose `_prepare` makes the slots and whose `_apply_dense` writes
the update rule of TF1's kernel (ApplyRMSProp, ApplyCenteredRMSProp, ApplyAdagrad,
ApplyAdadelta, ApplyFtrl / ApplyFtrlV2) as graph ops, in that kernel's order.
"""

from __future__ import annotations

from typing import Any

from flowc.ir.errors import GraphError

from .graph import Tensor
from .math_ops import abs, convert_to_tensor, greater, pow, sqrt, where
from .shape_ops import fill, zeros_like
from .sources import user_location
from .state_ops import Variable, assign, assign_sub
from .train import Optimizer, colocated_with


class _SlotsWithValues(Optimizer):
    """An Optimizer whose slots may start at a constant other than zero (RMSProp's rms, Adagrad's accumulator)."""

    def _filled_slot(self, var: Variable, slot: str, value: float, suffix: str = "") -> Variable:
        by_var = self._slots.setdefault(slot, {})
        if var not in by_var:
            with var.graph.name_scope(var.op.name + "/"), colocated_with(var):
                by_var[var] = Variable(lambda: fill(var.shape, value, var.dtype),
                                       trainable=False, name=self._name + suffix)
        return by_var[var]

    def _constant(self, value: Any, var: Variable) -> Tensor:
        return convert_to_tensor(value, dtype=var.dtype)


class RMSPropOptimizer(_SlotsWithValues):
    """ms = decay * ms + (1 - decay) * g^2;  mom = momentum * mom + lr * g / sqrt(ms + epsilon);  var -= mom.

    `centered=True` also keeps mg = decay * mg + (1 - decay) * g and divides by
    sqrt(ms - mg^2 + epsilon). The rms slot starts at one, as in TF1.
    """

    def __init__(self, learning_rate: Any, decay: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-10,
                 use_locking: bool = False, centered: bool = False, name: str = "RMSProp"):
        super().__init__(learning_rate, name, use_locking)
        self._decay, self._momentum, self._epsilon, self._centered = decay, momentum, epsilon, centered

    def _prepare(self, variables: list[Variable]) -> None:
        for var in variables:
            self._filled_slot(var, "rms", 1.0)
            if self._centered:
                self._zeros_slot(var, "mg", "_1")
            self._zeros_slot(var, "momentum", "_2" if self._centered else "_1")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        rho, momentum, epsilon = (self._constant(c, var) for c in (self._decay, self._momentum, self._epsilon))
        one, locking = self._constant(1.0, var), self._use_locking
        rms, mom = self.get_slot(var, "rms"), self.get_slot(var, "momentum")
        new_rms = assign(rms, rho * rms + (one - rho) * grad * grad, use_locking=locking)
        denominator = new_rms
        if self._centered:
            mg = self.get_slot(var, "mg")
            new_mg = assign(mg, rho * mg + (one - rho) * grad, use_locking=locking)
            denominator = new_rms - new_mg * new_mg
        new_mom = assign(mom, momentum * mom + self._lr(var) * grad / sqrt(denominator + epsilon), use_locking=locking)
        return assign_sub(var, new_mom, use_locking=locking)


class AdagradOptimizer(_SlotsWithValues):
    """accum += g^2;  var -= lr * g / sqrt(accum); the accumulator starts at `initial_accumulator_value`."""

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1, use_locking: bool = False,
                 name: str = "Adagrad"):
        if initial_accumulator_value <= 0.0:
            raise GraphError(f"initial_accumulator_value must be positive, got {initial_accumulator_value}",
                             op=name, where=user_location())
        super().__init__(learning_rate, name, use_locking)
        self._initial = initial_accumulator_value

    def _prepare(self, variables: list[Variable]) -> None:
        for var in variables:
            self._filled_slot(var, "accumulator", self._initial)

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        accum = self.get_slot(var, "accumulator")
        new_accum = assign(accum, accum + grad * grad, use_locking=self._use_locking)
        return assign_sub(var, self._lr(var) * grad / sqrt(new_accum), use_locking=self._use_locking)


class AdadeltaOptimizer(_SlotsWithValues):
    """accum = rho * accum + (1 - rho) * g^2;  update = sqrt(accum_update + eps) / sqrt(accum + eps) * g;
    accum_update = rho * accum_update + (1 - rho) * update^2;  var -= lr * update."""

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.95, epsilon: float = 1e-8, use_locking: bool = False,
                 name: str = "Adadelta"):
        super().__init__(learning_rate, name, use_locking)
        self._rho, self._epsilon = rho, epsilon
        self._side_updates: list[Tensor] = []  # accum_update's assigns: the variable's update does not read them

    def _prepare(self, variables: list[Variable]) -> None:
        for var in variables:
            self._zeros_slot(var, "accum")
            self._zeros_slot(var, "accum_update", "_1")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        rho, epsilon, one = (self._constant(c, var) for c in (self._rho, self._epsilon, 1.0))
        accum, accum_update = self.get_slot(var, "accum"), self.get_slot(var, "accum_update")
        locking = self._use_locking
        new_accum = assign(accum, rho * accum + (one - rho) * grad * grad, use_locking=locking)
        update = sqrt(accum_update + epsilon) / sqrt(new_accum + epsilon) * grad
        new_update = assign(accum_update, rho * accum_update + (one - rho) * update * update, use_locking=locking)
        self._side_updates.append(new_update)
        return assign_sub(var, self._lr(var) * update, use_locking=locking)

    def _finish(self, updates: list[Tensor]) -> list[Any]:
        side, self._side_updates = self._side_updates, []
        return updates + side


class FtrlOptimizer(_SlotsWithValues):
    """FTRL-Proximal (McMahan et al. 2013) as TF1's ApplyFtrl(V2) computes it, with p = -learning_rate_power:

        accum_new = accum + g^2
        linear += g' - (accum_new^p - accum^p) / lr * var     (g' = g + 2 * l2_shrinkage * var)
        quadratic = accum_new^p / lr + 2 * l2
        var = (sign(linear) * l1 - linear) / quadratic  where |linear| > l1, else 0
    """

    def __init__(self, learning_rate: Any, learning_rate_power: float = -0.5, initial_accumulator_value: float = 0.1,
                 l1_regularization_strength: float = 0.0, l2_regularization_strength: float = 0.0,
                 use_locking: bool = False, name: str = "Ftrl", accum_name: str | None = None,
                 linear_name: str | None = None, l2_shrinkage_regularization_strength: float = 0.0):
        checks = [("initial_accumulator_value", initial_accumulator_value, initial_accumulator_value < 0),
                  ("learning_rate_power", learning_rate_power, learning_rate_power > 0),
                  ("l1_regularization_strength", l1_regularization_strength, l1_regularization_strength < 0),
                  ("l2_regularization_strength", l2_regularization_strength, l2_regularization_strength < 0),
                  ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength,
                   l2_shrinkage_regularization_strength < 0)]
        for what, value, wrong in checks:
            if wrong:
                expected = "at most zero" if what == "learning_rate_power" else "at least zero"
                raise GraphError(f"{what} must be {expected}, got {value}", op=name, where=user_location())
        super().__init__(learning_rate, name, use_locking)
        self._power, self._initial = learning_rate_power, initial_accumulator_value
        self._l1, self._l2, self._shrinkage = (l1_regularization_strength, l2_regularization_strength,
                                               l2_shrinkage_regularization_strength)
        self._accum_name, self._linear_name = accum_name, linear_name

    def _prepare(self, variables: list[Variable]) -> None:
        for var in variables:
            self._filled_slot(var, "accum", self._initial)
            self._zeros_slot(var, "linear", "_1")

    def _scaled(self, accum: Tensor, var: Variable) -> Tensor:
        """accum^(-learning_rate_power); a square root for the default -0.5, as TF1's kernel does."""
        if self._power == -0.5:
            return sqrt(accum)
        return pow(accum, self._constant(-self._power, var))

    def _apply_dense(self, grad: Tensor, var: Variable) -> Tensor:
        lr = self._lr(var)
        l1, l2, shrinkage, two, zero = (self._constant(c, var) for c in (self._l1, self._l2, self._shrinkage, 2.0, 0.0))
        accum, linear = self.get_slot(var, "accum"), self.get_slot(var, "linear")
        locking = self._use_locking
        old_value = var.value()
        shrunk = grad + two * shrinkage * old_value if self._shrinkage else grad
        old_scaled = self._scaled(accum.value(), var)
        new_accum = assign(accum, accum + grad * grad, use_locking=locking)
        new_scaled = self._scaled(new_accum, var)
        sigma = (new_scaled - old_scaled) / lr
        new_linear = assign(linear, linear + shrunk - sigma * old_value, use_locking=locking)
        quadratic = new_scaled / lr + two * l2
        towards = where(greater(new_linear, zero), l1, zero - l1) - new_linear
        return assign(var, where(greater(abs(new_linear), l1), towards / quadratic, zeros_like(old_value)),
                      use_locking=locking)
