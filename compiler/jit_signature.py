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
A leaf is a numpy array or a numpy scalar (a 0-d array of its dtype). A
Python number (bool, int, float) is static: its value is part of the
signature and the function sees the number itself, so `x * scale` follows
flowc's rule that a Python number takes the dtype of the tensor it meets (a
traced 0-d float32 would not mix with float64 arrays; jax's weak types solve
that, flowc has none). A number that changes every call (a learning-rate
schedule) is passed as np.float32(...) or a 0-d array, and is then traced.
Dicts are flattened, and rebuilt for the function, in sorted key order (as
jax and nest.flatten do). Arguments are bound to the function's parameters first, so `f(x, y=1.0)` and
`f(x, 1.0)` have one signature; a parameter left to its default is not an
argument: the default is read as a constant when the function is traced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

from flowc.ir.errors import FlowcTypeError
from flowc.ir.types import DTYPES

from .graph import Tensor
from .nest import is_namedtuple
from .sources import user_location

SUPPORTED = frozenset(d.np for d in DTYPES)
NUMBERS = (bool, int, float)
LEAF = "leaf"  # the structure key of a leaf
NUMBER = "number"  # (NUMBER, type, repr): a Python number in an argument (static: repr tells 0.0 from -0.0, NaN == NaN)


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
        path, before, after = _first_difference(old.value, new.value, "")
        if _is_number(before) and _is_number(after):
            return (f"argument '{old.name}{path}' changed from {before[2]} to {after[2]} (a Python number is static; "
                    "pass np.float32(...) or an array to trace it)")
        return (f"argument '{old.name}' changed structure from {describe_parameter(old)} "
                f"to {describe_parameter(new)}")
    changed = [(path, a, b) for path, a, b in zip(old.paths, old.leaves, new.leaves) if a != b]
    return "; ".join(f"argument '{old.name}{path}' changed from {format_leaf(a)} to {format_leaf(b)}"
                     for path, a, b in changed)


def _is_number(key: Any) -> bool:
    return isinstance(key, tuple) and len(key) == 3 and key[0] == NUMBER


def _first_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any]:
    """Where two structure keys first differ (a path as Python indexes it), and the two keys there."""
    if old == new or not (isinstance(old, tuple) and isinstance(new, tuple)) or _is_number(old) or _is_number(new) \
            or old[0] != new[0]:
        return path, old, new
    kind = old[0]
    if isinstance(kind, type) and issubclass(kind, dict):
        if old[1] != new[1]:
            return path, old, new
        labels = [f"[{key!r}]" for key in old[1]]
        pairs = zip(old[2], new[2])
    else:
        if len(old[1]) != len(new[1]):
            return path, old, new
        labels = [f".{name}" for name in kind._fields] if hasattr(kind, "_fields") else \
            [f"[{i}]" for i in range(len(old[1]))]
        pairs = zip(old[1], new[1])
    for label, (a, b) in zip(labels, pairs):
        if a != b:
            return _first_difference(a, b, path + label)
    return path, old, new


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
    if kind == NUMBER:
        return rest[1]
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


def flatten_argument(value: Any, leaves: list[Any]) -> Hashable:
    """The structure key of `value`, appending its leaves in nest.flatten's order (leaf_paths says where)."""
    kind = type(value)
    if kind is tuple or kind is list:
        return (kind, tuple([flatten_argument(v, leaves) for v in value]))
    if kind is dict or isinstance(value, dict):
        try:
            keys = sorted(value)
        except TypeError:
            raise FlowcTypeError(f"a dict argument needs keys that sort, got {list(value)!r}",
                                 where=user_location()) from None
        return (kind, tuple(keys), tuple([flatten_argument(value[k], leaves) for k in keys]))
    if isinstance(value, tuple):  # a namedtuple; another tuple subclass nest rebuilds as a tuple
        return (kind if is_namedtuple(value) else tuple, tuple([flatten_argument(v, leaves) for v in value]))
    if value is None:
        return None
    if kind in NUMBERS:
        return (NUMBER, kind, repr(value))
    leaves.append(value)
    return LEAF


def leaf_paths(key: Any, path: str = "") -> list[str]:
    """Where each leaf of a structure key is, as Python indexes it: "", "['W']", "[1]", ".first"."""
    if key == LEAF:
        return [path]
    if key is None or key[0] == NUMBER:
        return []
    kind = key[0]
    if isinstance(kind, type) and issubclass(kind, dict):
        labels, children = [f"[{k!r}]" for k in key[1]], key[2]
    else:
        children = key[1]
        labels = [f".{name}" for name in kind._fields] if hasattr(kind, "_fields") else \
            [f"[{i}]" for i in range(len(children))]
    return [p for label, child in zip(labels, children) for p in leaf_paths(child, path + label)]


def fits(array: np.ndarray) -> bool:
    """An exact ndarray the compiled code takes as it is (as_leaf_array would return it untouched)."""
    if type(array) is not np.ndarray or array.dtype not in SUPPORTED:
        return False
    flags = array.flags
    return flags.c_contiguous and flags.aligned


def number(key: tuple) -> bool | int | float:
    """The Python number a structure key (NUMBER, type, repr) stands for."""
    _, kind, text = key
    return text == "True" if kind is bool else kind(text)


def as_leaf_array(value: Any, where: Callable[[], str]) -> np.ndarray:
    """A leaf as the compiled code takes it: a C-contiguous, aligned, native-order array of a flowc dtype.

    Raises TracerFound for a Tensor, and a FlowcTypeError naming the argument (`where()`: its path) for
    anything else that is not an array.
    """
    kind = type(value)
    if kind is np.ndarray:
        array = value
    elif isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
    elif isinstance(value, Tensor):
        raise TracerFound()
    else:
        raise FlowcTypeError(f"argument '{where()}' is a {kind.__name__}; a jitted function takes numpy arrays, "
                             "Python numbers, and tuples, lists, dicts and namedtuples of them: mark it static "
                             "(static_argnums / static_argnames) if it is a setting", where=user_location())
    dtype = array.dtype
    if dtype not in SUPPORTED:
        native = dtype.newbyteorder("=")
        if native not in SUPPORTED:
            raise FlowcTypeError(f"argument '{where()}' has dtype {dtype}; flowc computes in "
                                 f"{', '.join(d.name for d in DTYPES)}: cast it first (x.astype(np.float32))",
                                 where=user_location())
        array = array.astype(native)
    flags = array.flags
    if not (flags.c_contiguous and flags.aligned):
        array = np.require(array, requirements=["C", "A"])
    return array


def signature_of(key: tuple) -> CallSignature:
    """The signature a cache key (JitFunction._key) stands for."""
    parameters = []
    for name, structure, value in key:
        if structure is True:
            parameters.append(Parameter(name, True, value[1]))
        else:
            parameters.append(Parameter(name, False, structure, tuple(leaf_paths(structure)), value))
    return CallSignature(tuple(parameters))


# -- the hot path's guard ----------------------------------------------------------------------
#
# Note [the hot path's guard]
# A jitted call whose arguments are nested (a dict of parameters, say) or static cannot hand its
# positional arguments to the FastRun as they are. For the latest signature the jitted function
# keeps a guard made from it: one small generated function that checks each container's exact type
# and length (a dict's keys by indexing them), each static value (type and ==) and each Python
# number, and returns the array leaves in flatten order, or None where anything differs. The
# FastRun then checks the leaves themselves. Generated source, not a tree of closures: one call
# with its checks inline costs a fraction of a closure per node, as jax does this walk in C++.


def guard(signature: CallSignature) -> Callable[[tuple], tuple | None] | None:
    """The guard of a signature (Note [the hot path's guard]), or None where the positional arguments
    are the leaves themselves (every argument an array)."""
    if all(not p.static and p.value == LEAF for p in signature.parameters):
        return None
    lines: list[str] = []
    constants: dict[str, Any] = {}
    leaves: list[str] = []
    for index, parameter in enumerate(signature.parameters):
        lines.append(f"a{index} = args[{index}]")
        if parameter.static:
            constants[f"s{index}"], constants[f"t{index}"] = parameter.value, type(parameter.value)
            lines.append(f"if type(a{index}) is not t{index} or a{index} != s{index}: return None")
        else:
            _guard_node(parameter.value, f"a{index}", lines, constants, leaves)
    body = "\n".join(f"        {line}" for line in lines)
    source = (f"def guard(args):\n    if len(args) != {len(signature.parameters)}:\n        return None\n"
              f"    try:\n{body}\n    except Exception:\n        return None\n"
              f"    return ({''.join(leaf + ', ' for leaf in leaves)})\n")
    namespace = dict(constants)
    exec(compile(source, "<fc.jit guard>", "exec"), namespace)  # noqa: S102 (our own text, from a signature)
    return namespace["guard"]


def _guard_node(key: Any, name: str, lines: list[str], constants: dict[str, Any], leaves: list[str]) -> None:
    if key == LEAF:
        leaves.append(name)
        return
    if key is None:
        lines.append(f"if {name} is not None: return None")
        return
    number = f"c{len(constants)}"
    if key[0] == NUMBER:
        constants[number], constants[number + "_text"] = key[1], key[2]
        lines.append(f"if type({name}) is not {number} or repr({name}) != {number}_text: return None")
        return
    kind = key[0]
    constants[number] = kind
    children = key[2] if isinstance(kind, type) and issubclass(kind, dict) else key[1]
    lines.append(f"if type({name}) is not {number} or len({name}) != {len(children)}: return None")
    for position, child in enumerate(children):
        child_name = f"{name}_{position}"
        if isinstance(kind, type) and issubclass(kind, dict):
            constants[f"{child_name}_key"] = key[1][position]
            lines.append(f"{child_name} = {name}[{child_name}_key]")
        else:
            lines.append(f"{child_name} = {name}[{position}]")
        _guard_node(child, child_name, lines, constants, leaves)
