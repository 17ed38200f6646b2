"""fc.grad and fc.value_and_grad: gradient functions of Python functions, built on fc.gradients.

Called on Tensors (inside a jitted function, or while a graph is built) a
gradient function traces `f` there and asks fc.gradients for the gradient
of its output with respect to the leaves of the arguments `argnums` names;
called on arrays it runs through a jit of itself (compiled once per
signature, on the CPU). As in JAX: `f` returns a float scalar (with
`has_aux`, a pair (scalar, aux)), the gradients have the structure of the
differentiated arguments, a leaf the output does not depend on gets zeros,
and an integer leaf is an error.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from flowc.ir.errors import FlowcTypeError

from . import nest
from .array_ops import zeros_like
from .gradients import gradients
from .graph import Tensor
from .math_ops import convert_to_tensor
from .sources import user_location


class GradientFunction:
    """What fc.grad and fc.value_and_grad return (the module's docstring says how it runs)."""

    def __init__(self, fn: Callable[..., Any], argnums: int | Sequence[int], has_aux: bool, with_value: bool):
        self.fn = fn
        self.argnums = argnums
        self.has_aux = has_aux
        self.with_value = with_value
        functools.update_wrapper(self, fn, updated=())  # the signature: jit binds arguments by fn's parameters
        self._jitted: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not any(isinstance(leaf, Tensor) for leaf in nest.flatten([args, kwargs])):
            if self._jitted is None:
                from .jit import jit

                self._jitted = jit(self)
            return self._jitted(*args, **kwargs)
        return self._build(args, kwargs)

    def _build(self, args: tuple, kwargs: dict[str, Any]) -> Any:
        loc = user_location()
        numbers = (self.argnums,) if isinstance(self.argnums, int) else tuple(self.argnums)
        for number in numbers:
            if not -len(args) <= number < len(args):
                raise FlowcTypeError(f"argnums {number} of {self._kind()} is out of range: the call passes "
                                     f"{len(args)} positional arguments", where=loc)
        args = list(args)
        wrt = []
        for number in numbers:  # each differentiated leaf as a tensor, so the gradient has a place to start
            args[number] = nest.map_structure(convert_to_tensor, args[number])
            wrt.append(args[number])
        for number, argument in zip(numbers, wrt):
            for path, leaf in nest.flatten_with_paths(argument):
                if not leaf.dtype.is_float:
                    raise FlowcTypeError(f"{self._kind()} differentiates float arguments; argument {number}{path} is "
                                         f"{leaf.type}", where=loc)
        out = self.fn(*args, **kwargs)
        from .jit import definition_line

        defined = definition_line(self.fn)  # what the function returns is a matter of its definition
        aux = None
        if self.has_aux:
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise FlowcTypeError(f"{self._kind()} with has_aux=True needs a function returning (value, aux), got "
                                     f"{nest.describe(out)}", where=defined)
            out, aux = out
        value = convert_to_tensor(out)
        if value.shape != () or not value.dtype.is_float:
            raise FlowcTypeError(f"{self._kind()} needs a function returning a float scalar, got {value.type}",
                                 where=defined)
        leaves = nest.flatten(wrt)
        grads = [zeros_like(x) if g is None else g for x, g in zip(leaves, gradients(value, leaves))]
        structured = nest.pack_sequence_as(wrt, grads)
        result = structured[0] if isinstance(self.argnums, int) else tuple(structured)
        if not self.with_value:
            return (result, aux) if self.has_aux else result
        return ((value, aux) if self.has_aux else value), result

    def _kind(self) -> str:
        return "fc.value_and_grad" if self.with_value else "fc.grad"


def grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False) -> GradientFunction:
    """The gradient of `fn` (a float scalar function) with respect to its arguments `argnums`.

    With `has_aux`, `fn` returns (value, aux) and the gradient function returns (gradient, aux).
    Usable under fc.jit, and on arrays directly (it is then jitted itself).

    >>> import flowc as fc, numpy as np
    >>> fc.grad(lambda x: fc.reduce_sum(x * x))(np.array([1.0, 2.0], np.float32))
    array([2., 4.], dtype=float32)
    """
    return GradientFunction(fn, argnums, has_aux, with_value=False)


def value_and_grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> GradientFunction:
    """(value, gradient) of `fn`, as fc.grad; with `has_aux`, ((value, aux), gradient).

    >>> import flowc as fc, numpy as np
    >>> value, gradient = fc.value_and_grad(lambda x: fc.reduce_sum(x * x))(np.array([3.0], np.float32))
    >>> float(value), gradient
    (9.0, array([6.], dtype=float32))
    """
    return GradientFunction(fn, argnums, has_aux, with_value=True)
