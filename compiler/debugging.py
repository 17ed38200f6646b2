"""fc.debugging: TF1's run-time checks (assert_equal, assert_less, ..., check_numerics, Assert).

Each builds its condition from ordinary ops and hands it to one IR op, `check` (ir/ops/checks.py),
which stops the run with CheckFailed (a FlowcError naming the op and the user's line) where an
element is false: in numpy on the reference target, in the kernel on the CPU. As in TF1, an assert
returns an Operation that a run must reach, by a fetch or through `fc.control_dependencies`:

    with fc.control_dependencies([fc.debugging.assert_positive(x)]):
        y = fc.log(x)
"""

from __future__ import annotations

from typing import Any, Callable

from .graph import Operation, Tensor, control_dependencies, name_scope
from .math_ops import abs, apply, convert_to_tensor, equal, greater, greater_equal, identity, less, less_equal

__all__ = ["Assert", "assert_equal", "assert_greater", "assert_greater_equal", "assert_less", "assert_less_equal",
           "assert_negative", "assert_non_negative", "assert_non_positive", "assert_positive", "check_numerics"]


def _check(condition: Tensor, message: str, name: str) -> Operation:
    return apply("check", (condition,), name=name, message=message).op


def _describe(user_message: str | None, what: str) -> str:
    return f"{user_message}: {what}" if user_message else what


def _compare(test: Callable[[Any, Any], Tensor], symbol: str, default_name: str) -> Callable[..., Operation]:
    def assertion(x: Any, y: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                  name: str | None = None) -> Operation:
        x, y = convert_to_tensor(x), convert_to_tensor(y)
        what = f"condition {x.name} {symbol} {y.name} did not hold element-wise"
        return _check(test(x, y), _describe(message, what), name or default_name)

    assertion.__name__ = default_name
    assertion.__doc__ = f"An op that stops the run where x {symbol} y (broadcast) is false (TF1's {default_name})."
    return assertion


def _sign(test: Callable[[Any, Any], Tensor], symbol: str, default_name: str) -> Callable[..., Operation]:
    def assertion(x: Any, data: Any = None, summarize: int | None = None, message: str | None = None,
                  name: str | None = None) -> Operation:
        x = convert_to_tensor(x)
        what = f"condition {x.name} {symbol} 0 did not hold element-wise"
        return _check(test(x, convert_to_tensor(0, dtype=x.dtype)), _describe(message, what), name or default_name)

    assertion.__name__ = default_name
    assertion.__doc__ = f"An op that stops the run where x {symbol} 0 is false (TF1's {default_name})."
    return assertion


assert_equal = _compare(equal, "==", "assert_equal")
assert_less = _compare(less, "<", "assert_less")
assert_less_equal = _compare(less_equal, "<=", "assert_less_equal")
assert_greater = _compare(greater, ">", "assert_greater")
assert_greater_equal = _compare(greater_equal, ">=", "assert_greater_equal")
assert_positive = _sign(greater, ">", "assert_positive")
assert_negative = _sign(less, "<", "assert_negative")
assert_non_negative = _sign(greater_equal, ">=", "assert_non_negative")
assert_non_positive = _sign(less_equal, "<=", "assert_non_positive")


def Assert(condition: Any, data: Any = None, summarize: int | None = None, name: str | None = None) -> Operation:
    """An op that stops the run where the bool tensor `condition` is false (TF1's tf.Assert; `data`
    is not printed: the error names the op and its line)."""
    condition = convert_to_tensor(condition)
    return _check(condition, f"assertion {condition.name} failed", name or "Assert")


def check_numerics(tensor: Any, message: str, name: str | None = None) -> Tensor:
    """`tensor`, checked: a run where it holds a NaN or an infinity stops with `message`.

    Finite means |x| < inf, which is false for NaN too (an ordered comparison); the check runs
    natively, and only where a run needs the result."""
    tensor = convert_to_tensor(tensor)
    with name_scope(name or "CheckNumerics"):
        finite = less(abs(tensor), convert_to_tensor(float("inf"), dtype=tensor.dtype))
        checked = _check(finite, f"{message}: Tensor had NaN or Inf values", "check")
        with control_dependencies([checked]):
            return identity(tensor)
