"""Autodiff: reverse-mode differentiation as an IR pass.

expand.py     the pass: each gradient request becomes the ops computing its gradients
reverse.py    reverse mode over the ops of one block
rules*.py     one gradient rule per differentiable op, found by its name (VJP_RULES)
build.py      shape-polymorphic helpers the rules build with
clone.py      copying region bodies, for the rules of cond, while and call
"""

from . import rules_control, rules_conv, rules_reduction, rules_rows, rules_shape, rules_while  # noqa: F401  (register their rules)
from . import rules_dims  # noqa: F401
from . import rules_scan  # noqa: F401
from . import rules_math  # noqa: F401
from . import rules_collective  # noqa: F401
from .expand import Autodiff, expand_gradients
from .reverse import differentiate
from .rules import VJP_RULES, vjp

__all__ = ["Autodiff", "VJP_RULES", "differentiate", "expand_gradients", "vjp"]
