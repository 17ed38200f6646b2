"""Nested structures of tensors: flatten, pack_sequence_as, map_structure, assert_same_structure.

A structure is a leaf or a container of structures: tuples, lists, dicts
(flattened in sorted key order, as TensorFlow does, so two dicts with the
same keys flatten alike whatever order they were built in), namedtuples, and
composite objects. Everything else, None included, is a leaf.

Note [composite protocol]
An object that has a method `_flowc_components(self) -> list[Tensor]` and
`_flowc_rebuild(self, components) -> object of the same kind` is composite:
it flattens to its components, and pack_sequence_as rebuilds it from new
ones. fc.TensorArray is one: a while loop carries its components as loop
state and the body sees it rebuilt around the loop's block arguments. The
two method names are the whole protocol; keep them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from flowc.ir.errors import FlowcError


class StructureError(FlowcError, ValueError):
    """Two structures that should match do not (the message shows both)."""


def is_composite(value: Any) -> bool:
    return hasattr(value, "_flowc_components") and hasattr(value, "_flowc_rebuild")


def is_nested(value: Any) -> bool:
    """Whether `value` is a container that flatten looks into."""
    return isinstance(value, (tuple, list, dict)) or is_composite(value)


def is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value[key] for key in _sorted_keys(value)]
    if is_composite(value):
        return list(value._flowc_components())
    return list(value)


def _sorted_keys(value: dict) -> list[Any]:
    try:
        return sorted(value)
    except TypeError:
        raise StructureError(f"a dict in a structure needs keys that sort, got {list(value)!r}") from None


def flatten(structure: Any) -> list[Any]:
    """The leaves of `structure`, depth first; dict values in sorted key order.

    >>> from flowc.nest import flatten
    >>> flatten({"b": (1, [2, 3]), "a": None})
    [None, 1, 2, 3]
    """
    if not is_nested(structure):
        return [structure]
    return [leaf for child in children(structure) for leaf in flatten(child)]


def flatten_with_paths(structure: Any, root: str = "") -> list[tuple[str, Any]]:
    """(path, leaf) pairs, a path written as Python indexes it: "[1]['h']" (composites: "[1].<2>")."""
    if not is_nested(structure):
        return [(root, structure)]
    if isinstance(structure, dict):
        keys = [f"[{key!r}]" for key in _sorted_keys(structure)]
    elif is_composite(structure):
        keys = [f".<{i}>" for i in range(len(structure._flowc_components()))]
    elif is_namedtuple(structure):
        keys = [f".{name}" for name in type(structure)._fields]
    else:
        keys = [f"[{i}]" for i in range(len(structure))]
    return [pair for key, child in zip(keys, children(structure)) for pair in flatten_with_paths(child, root + key)]


def pack_sequence_as(structure: Any, flat_sequence: Sequence[Any]) -> Any:
    """`flat_sequence` laid out as `structure` (the inverse of flatten).

    >>> from flowc.nest import pack_sequence_as
    >>> pack_sequence_as({"b": (0, [0, 0]), "a": 0}, [1, 2, 3, 4])
    {'b': (2, [3, 4]), 'a': 1}
    """
    flat = list(flat_sequence)
    count = len(flatten(structure))
    if count != len(flat):
        raise StructureError(f"the structure {describe(structure)} has {count} leaves, "
                             f"the flat sequence has {len(flat)} items")
    return _pack(structure, iter(flat))


def _pack(structure: Any, leaves: Iterator[Any]) -> Any:
    if not is_nested(structure):
        return next(leaves)
    return rebuild(structure, [_pack(child, leaves) for child in children(structure)])


def rebuild(structure: Any, children: list[Any]) -> Any:
    """A container of `structure`'s kind holding `children` (in flatten's order)."""
    if isinstance(structure, dict):
        by_key = dict(zip(_sorted_keys(structure), children))
        return type(structure)((key, by_key[key]) for key in structure)  # the dict's own key order
    if is_composite(structure):
        return structure._flowc_rebuild(children)
    if is_namedtuple(structure):
        return type(structure)(*children)
    if isinstance(structure, tuple):
        return tuple(children)
    return list(children)


def map_structure(function: Callable[..., Any], *structures: Any, check_types: bool = True) -> Any:
    """`function` applied to the leaves of `structures` (which must match), in `structures[0]`'s layout.

    >>> from flowc.nest import map_structure
    >>> map_structure(lambda x, y: x + y, (1, {"k": 2}), (10, {"k": 20}))
    (11, {'k': 22})
    """
    if not structures:
        raise StructureError("map_structure needs at least one structure")
    for other in structures[1:]:
        assert_same_structure(structures[0], other, check_types=check_types)
    flats = [flatten(s) for s in structures]
    return pack_sequence_as(structures[0], [function(*leaves) for leaves in zip(*flats)])


def assert_same_structure(first: Any, second: Any, check_types: bool = True) -> None:
    """Raise StructureError, showing both, unless the two have the same nesting.

    With `check_types`, containers must also be of the same kind (a list does
    not match a tuple, nor one namedtuple another); without it only the shape
    of the nesting counts.
    """
    problem = _difference(first, second, check_types)
    if problem is not None:
        raise StructureError(f"the structures differ ({problem}): {describe(first)} and {describe(second)}")


def same_structure(first: Any, second: Any, check_types: bool = True) -> bool:
    return _difference(first, second, check_types) is None


def _difference(first: Any, second: Any, check_types: bool, path: str = "") -> str | None:
    at = f" at {path}" if path else ""
    if is_nested(first) != is_nested(second):
        return f"one has a leaf{at}, the other a {_kind(second if is_nested(second) else first)}"
    if not is_nested(first):
        return None
    if check_types and _kind(first) != _kind(second):
        return f"a {_kind(first)} and a {_kind(second)}{at}"
    if isinstance(first, dict) != isinstance(second, dict):
        return f"a {_kind(first)} and a {_kind(second)}{at}"
    if isinstance(first, dict) and _sorted_keys(first) != _sorted_keys(second):
        return f"keys {_sorted_keys(first)!r} and {_sorted_keys(second)!r}{at}"
    left, right = children(first), children(second)
    if len(left) != len(right):
        return f"{len(left)} and {len(right)} entries{at}"
    keys = [f"[{k!r}]" for k in _sorted_keys(first)] if isinstance(first, dict) else [f"[{i}]" for i in range(len(left))]
    for key, a, b in zip(keys, left, right):
        problem = _difference(a, b, check_types, path + key)
        if problem is not None:
            return problem
    return None


def _kind(value: Any) -> str:
    if is_namedtuple(value) or is_composite(value):
        return type(value).__name__
    return {tuple: "tuple", list: "list"}.get(type(value), "dict" if isinstance(value, dict) else type(value).__name__)


def describe(structure: Any) -> str:
    """The structure with each leaf shown by its type: `(f32[2], [i32[], f32[?,3]])`.

    >>> from flowc.nest import describe
    >>> describe({"h": (None, 2.0)})
    "{'h': (None, float)}"
    """
    if is_composite(structure):
        return f"{type(structure).__name__}<{', '.join(describe(c) for c in structure._flowc_components())}>"
    if isinstance(structure, dict):
        return "{" + ", ".join(f"{key!r}: {describe(structure[key])}" for key in structure) + "}"
    if is_namedtuple(structure):
        fields = ", ".join(f"{name}={describe(v)}" for name, v in zip(type(structure)._fields, structure))
        return f"{type(structure).__name__}({fields})"
    if isinstance(structure, tuple):
        return "(" + ", ".join(describe(v) for v in structure) + ("," if len(structure) == 1 else "") + ")"
    if isinstance(structure, list):
        return "[" + ", ".join(describe(v) for v in structure) + "]"
    leaf_type = getattr(structure, "type", None)  # a Tensor or Variable: its IR type, "f32[2]"
    if leaf_type is not None and not isinstance(structure, type):
        return str(leaf_type)
    return "None" if structure is None else type(structure).__name__
