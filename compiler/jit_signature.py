"""The signature of a jitted call: what its compiled code depends on, and how two signatures differ.

Note [jit signatures]
A jitted function is traced and compiled once per signature, as jax.jit does.
The signature of a call is
  - its static arguments' values (static_argnums / static_argnames: compared
    with == and hashed, so they must be hashable);
  - the nesting of its other arguments: tuples, lists, dicts (by sorted keys),
    namedtuples, and None where a leaf could be;
  - per leaf, a dtype and an exact shape. Dims are specialized, as jax.jit
    does: a new size is a new signature, and the code is compiled for static
    shapes, which fusion and scheduling use. (fc.export and `flowc compile`
    trace with None dims instead, for code that takes any size.)
A leaf is a numpy array, a numpy scalar (a 0-d array of its dtype), or a
Python number: bool, int and float are traced as 0-d bool, int32 and float32
arrays (flowc's dtypes for Python numbers, as fc.constant gives them), so
their values are not part of the signature and a new value reuses the code.
Arguments are bound to the function's parameters first, so `f(x, y=1.0)` and
`f(x, 1.0)` have one signature; a parameter left to its default is not an
argument: the default is read as a constant when the function is traced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import DTYPES

from .graph import Tensor
from .nest import is_namedtuple

SUPPORTED = frozenset(d.np for d in DTYPES)
PYTHON_DTYPES = {bool: np.dtype(np.bool_), int: np.dtype(np.int32), float: np.dtype(np.float32)}
LEAF = "leaf"  # the structure key of a leaf


class TracerFound(Exception):
    """An argument is a Tensor: the jitted function is called while a graph is built (it is inlined)."""


@dataclass(frozen=True)
class Parameter:
    """One argument of a call as the signature sees it: a static value, or a structure of leaves."""

    name: str
    static: bool
    value: Any  # the static value, or the structure key (`LEAF`, or (kind, children...))
    paths: tuple[str, ...] = ()  # per leaf: where it is inside the argument ("", "['W']", "[1]")
    leaves: tuple[tuple[np.dtype, tuple[int, ...]], ...] = ()  # per leaf: (dtype, shape)


@dataclass(frozen=True)
class CallSignature:
    """What a compiled trace of a jitted function depends on (Note [jit signatures])."""

    parameters: tuple[Parameter, ...]

    def describe(self) -> str:
        return ", ".join(f"{p.name}={describe_parameter(p)}" for p in self.parameters)

    def differences(self, other: CallSignature) -> list[str]:
        """One line per argument that differs from `other`'s: which, from what, to what."""
        before = {p.name: p for p in other.parameters}
        after = {p.name: p for p in self.parameters}
        lines = []
        for name in list(before) + [n for n in after if n not in before]:
            old, new = before.get(name), after.get(name)
            if old is None or new is None:
                state = "was not given" if old is None else "is not given"
                shown = describe_parameter(new if old is None else old)
                lines.append(f"argument '{name}' {state} now" + (f" (it is {shown})" if old is None else
                                                                    f" (it was {shown})"))
            elif old != new:
                lines.append(_difference(old, new))
        return lines


def _difference(old: Parameter, new: Parameter) -> str:
    if old.static or new.static:
        return f"static argument '{old.name}' changed from {old.value!r} to {new.value!r}"
    if old.value != new.value or old.paths != new.paths:
        return (f"argument '{old.name}' changed structure from {describe_parameter(old)} "
                f"to {describe_parameter(new)}")
    changed = [(path, a, b) for path, a, b in zip(old.paths, old.leaves, new.leaves) if a != b]
    return "; ".join(f"argument '{old.name}{path}' changed from {format_leaf(a)} to {format_leaf(b)}"
                     for path, a, b in changed)


def closest(signature: CallSignature, known: list[CallSignature]) -> CallSignature:
    """The known signature that differs from `signature` in the fewest arguments (the latest of a tie)."""
    return min(reversed(known), key=lambda other: len(signature.differences(other)))


def format_leaf(leaf: tuple[np.dtype, tuple[int, ...]]) -> str:
    """A leaf's type as the IR prints one: f32[4,3]."""
    dtype, shape = leaf
    from flowc.ir.types import as_dtype

    return f"{as_dtype(dtype).short}[{','.join(str(d) for d in shape)}]"


def describe_parameter(parameter: Parameter) -> str:
    if parameter.static:
        return f"static {parameter.value!r}"
    leaves = iter(parameter.leaves)
    return _describe(parameter.value, leaves)


def _describe(key: Any, leaves: Any) -> str:
    if key == LEAF:
        return format_leaf(next(leaves))
    if key is None:
        return "None"
    kind, *rest = key
    if kind is dict or (isinstance(kind, type) and issubclass(kind, dict)):
        keys, children = rest
        return "{" + ", ".join(f"{k!r}: {_describe(c, leaves)}" for k, c in zip(keys, children)) + "}"
    (children,) = rest
    inner = ", ".join(_describe(c, leaves) for c in children)
    if kind is list:
        return f"[{inner}]"
    if kind is tuple:
        return f"({inner}{',' if len(children) == 1 else ''})"
    return f"{kind.__name__}({inner})"


# -- flattening arguments ---------------------------------------------------------------


def flatten_argument(value: Any, path: str, leaves: list[Any], paths: list[str]) -> Hashable:
    """The structure key of `value`, appending its leaves (and where they are) in nest.flatten's order."""
    kind = type(value)
    if kind is tuple or kind is list or (isinstance(value, tuple) and is_namedtuple(value)):
        return (kind, tuple([flatten_argument(v, f"{path}[{i}]" if not is_namedtuple(value) else
                                              f"{path}.{kind._fields[i]}", leaves, paths)
                             for i, v in enumerate(value)]))
    if isinstance(value, tuple):  # a tuple subclass that is not a namedtuple: nest rebuilds a tuple
        return flatten_argument(tuple(value), path, leaves, paths)
    if isinstance(value, dict):
        try:
            keys = sorted(value)
        except TypeError:
            raise FlowcTypeError(f"the dict at {path or 'the argument'} needs keys that sort, got {list(value)!r}")
        return (kind, tuple(keys), tuple([flatten_argument(value[k], f"{path}[{k!r}]", leaves, paths) for k in keys]))
    if value is None:
        return None
    leaves.append(value)
    paths.append(path)
    return LEAF


def as_leaf_array(value: Any, where: str, loc: str | None) -> np.ndarray:
    """A leaf as the compiled code takes it: a C-contiguous, aligned, native-order array of a flowc dtype.

    Raises TracerFound for a Tensor, and a FlowcTypeError naming the argument for anything else that is
    not an array or a number.
    """
    kind = type(value)
    if kind is np.ndarray:
        array = value
    elif kind in PYTHON_DTYPES:
        try:
            return np.asarray(value, PYTHON_DTYPES[kind])
        except OverflowError:
            raise FlowcTypeError(f"argument '{where}' is the Python int {value}, which int32 cannot hold; "
                                 "pass an int64 array (np.int64(...))", where=loc) from None
    elif isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
    elif isinstance(value, Tensor):
        raise TracerFound()
    else:
        raise FlowcTypeError(f"argument '{where}' is a {kind.__name__}; a jitted function takes numpy arrays, "
                             "Python numbers, and tuples, lists, dicts and namedtuples of them: mark it static "
                             "(static_argnums / static_argnames) if it is a setting", where=loc)
    dtype = array.dtype
    if dtype not in SUPPORTED:
        native = dtype.newbyteorder("=")
        if native not in SUPPORTED:
            raise FlowcTypeError(f"argument '{where}' has dtype {dtype}; flowc computes in "
                                 f"{', '.join(d.name for d in DTYPES)}: cast it first (x.astype(np.float32))",
                                 where=loc)
        array = array.astype(native)
    flags = array.flags
    if not (flags.c_contiguous and flags.aligned):
        array = np.require(array, requirements=["C", "A"])
    return array
