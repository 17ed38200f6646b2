"""fc.debugging: TF1's run-time checks (assert_equal, assert_less, ..., check_numerics, Assert).

Each builds its condition from ordinary ops and hands it to one IR op, `check` (ir/ops/checks.py),
which stops the run with CheckFailed (a FlowcError naming the op and the user's line) where an
element is false: in numpy on the reference target, in the kernel on the CPU. As in TF1, an assert
returns an Operation that a run must reach, by a fetch or through `fc.control_dependencies`:

    with fc.control_dependencies([fc.debugging.assert_positive(x)]):
        y = fc.log(x)
"""

from __future__ import annotations

import builtins
import itertools
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import numpy as np

from flowc.ir.ops.checks import PRINT_HANDLERS

from .graph import Operation, Tensor, control_dependencies, get_default_graph, name_scope
from .lowering import needed_ops
from .state_ops import no_op
from .math_ops import abs, apply, convert_to_tensor, equal, greater, greater_equal, identity, less, less_equal

__all__ = ["Assert", "Print", "print", "assert_equal", "assert_greater", "assert_greater_equal", "assert_less", "assert_less_equal",
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


# -- Print ----------------------------------------------------------------------------------------
# Note [printing from a run]
# Native code has no way back into Python during a run, so printing is not an op of the compiled
# function: fc.Print is an identity (fc.print a no-op) that this table remembers with the tensors to
# print. A Session that plans a run reaching such an op (through inputs or control inputs, as lowering
# walks) fetches those tensors too, as extra results after the user's, and prints them after the run,
# in the order the ops were created, to stderr as TF1 does. first_n and summarize are honoured; the
# values are those of the run, so a step that fails (an assert) prints nothing. Inside a while body, a
# cond branch or an fc.function the values of each turn are no results: there a Print prints as the run
# goes, through the IR's print op (Note [printing inside control flow] in ir/ops/checks.py).


@dataclass
class PrintSpec:
    """What one Print op prints: literal parts and tensors, in order, and how often."""

    parts: list[Any]  # str or Tensor
    first_n: int | None = None
    summarize: int | None = None
    separator: str = ""  # between parts (fc.print: " "); fc.Print brackets each tensor instead
    end: str = "\n"
    stream: TextIO | None = None  # None: sys.stderr at print time (pytest's capsys replaces it)
    brackets: bool = False
    printed: int = 0
    key: int = -1  # set by `register`: what the IR's print ops name it by (Note [printing inside control flow])
    pending: dict[int, np.ndarray] = field(default_factory=dict)  # the parts of this turn come so far

    @property
    def tensors(self) -> list[Tensor]:
        return [p for p in self.parts if isinstance(p, Tensor)]

    def deliver(self, part: int, parts: int, value: np.ndarray) -> None:
        """One value from a print op of a sub-graph (Note [printing inside control flow] in ir/ops/checks.py):
        print when the last of the turn's `parts` has come."""
        self.pending[part] = value
        if part < parts - 1:
            return
        values, self.pending = self.pending, {}
        self.emit({}, [values[i] for i in range(parts)])

    def emit(self, values: dict[Tensor, np.ndarray], in_order: list[np.ndarray] | None = None) -> None:
        """Print the tensors' values, from `values` by tensor or, from a sub-graph, `in_order`."""
        if self.first_n is not None and 0 <= self.first_n <= self.printed:
            return
        self.printed += 1
        shown = []
        ordered = iter(in_order or ())
        for part in self.parts:
            if isinstance(part, Tensor):
                text = format_values(next(ordered) if in_order is not None else values[part], self.summarize)
                shown.append(f"[{text}]" if self.brackets else text)
            else:
                shown.append(str(part))
        builtins.print(self.separator.join(shown), end=self.end, file=self.stream or sys.stderr, flush=True)


PRINTS: "weakref.WeakKeyDictionary[Operation, PrintSpec]" = weakref.WeakKeyDictionary()
# Note [printing inside control flow] (ir/ops/checks.py): the specs by the key their print ops carry.
_BY_KEY: "weakref.WeakValueDictionary[int, PrintSpec]" = weakref.WeakValueDictionary()
_keys = itertools.count()


def register(op: Operation, spec: PrintSpec) -> None:
    spec.key = next(_keys)
    PRINTS[op] = _BY_KEY[spec.key] = spec
    if not PRINT_HANDLERS:
        PRINT_HANDLERS.append(_deliver)


def _deliver(key: int, part: int, parts: int, value: np.ndarray) -> None:
    spec = _BY_KEY.get(key)
    if spec is not None:  # else its graph is gone
        spec.deliver(part, parts, value)


def emit_print_ops(b: Any, op: Operation, env: dict[Tensor, Any]) -> None:
    """After `op`, a Print or print of a sub-graph: the IR print ops of its spec (Note [printing inside control
    flow]), one per tensor it prints, in order; one on a constant where it prints none."""
    spec = PRINTS[op]
    tensors = spec.tensors
    values = [env[t] for t in tensors] or [b.constant(np.asarray(0, np.int32))]
    for part, value in enumerate(values):
        attributes = {"key": spec.key, "part": part, "parts": len(tensors)}
        b.create("print", [value], attributes, result_names=[f"{op.name}_print"])


def format_values(array: np.ndarray, summarize: int | None) -> str:
    """Up to `summarize` elements (default 3, as TF1; negative: all) in row-major order, space separated,
    '...' where some were left out."""
    flat = np.asarray(array).reshape(-1)
    limit = 3 if summarize is None else summarize
    kept = flat if limit < 0 else flat[:limit]
    text = " ".join(str(v) for v in kept)  # numpy's scalars: a float32 1.1 shows as 1.1, as TF1 prints it
    return text + ("..." if kept.size < flat.size else "")


def Print(input_: Any, data: Any, message: str | None = None, first_n: int | None = None,
          summarize: int | None = None, name: str | None = None) -> Tensor:
    """`input_`, unchanged; each run that computes it prints `message` then each tensor of `data` in
    brackets (TF1's tf.Print; Note [printing from a run]). first_n: print only the first n runs."""
    result = identity(input_, name=name or "Print")
    parts: list[Any] = [message or ""] + [_here(convert_to_tensor(d)) for d in data]
    register(result.op, PrintSpec(parts, first_n, summarize, brackets=True))
    return result


def print(*inputs: Any, output_stream: Any = None, sep: str = " ", end: str = "\n", summarize: int | None = 3,
          name: str | None = None) -> Operation:  # noqa: A001  (TF's name)
    """An op that prints `inputs` (tensors and Python values, joined by `sep`) each run that reaches it,
    by a fetch or a control dependency (tf.print in graph mode; Note [printing from a run]).
    output_stream: a file object (default sys.stderr; sys.stdout works too)."""
    parts = [_here(convert_to_tensor(i)) if isinstance(i, Tensor) or hasattr(i, "_as_tensor") else i for i in inputs]
    op = no_op(name=name or "print")
    register(op, PrintSpec(parts, None, summarize, sep, end, output_stream))
    return op


def _here(tensor: Tensor) -> Tensor:
    """`tensor` as the graph being built sees it: inside a while body, a cond branch or an fc.function, an
    outer tensor is captured, as an op's input would be (Note [printing inside control flow])."""
    graph = get_default_graph()
    capture = getattr(graph, "capture", None)  # a FuncGraph (func_graph.py)
    return capture(tensor) if capture is not None and tensor.graph is not graph else tensor


def prints_reached(roots: list[Operation], fed: set[Tensor]) -> list[PrintSpec]:
    """The Print specs of the ops a run of `roots` reaches, in creation order (an empty list, fast, when
    the program has none)."""
    if not PRINTS:
        return []
    found: list[Operation] = []
    while True:  # the tensors a Print prints may reach Prints of their own
        reached = [op for op in needed_ops(roots, fed) if op in PRINTS]
        if reached == found:
            return [PRINTS[op] for op in found]
        found = reached
        roots = roots + [t.op for op in found for t in PRINTS[op].tensors if t not in fed]


def emit_prints(specs: list[PrintSpec], values: dict[Tensor, np.ndarray]) -> None:
    for spec in specs:
        spec.emit(values)
