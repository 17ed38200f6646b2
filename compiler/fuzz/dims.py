"""Symbolic dims: what the generator knows about a size before the run.

A dim is either a static `int` or a `Sym`: `coef` times the product of
`atoms`, each atom a Python expression over the symbol names (`"a"`,
`"len(range(a)[::2])"`, `"(a+b)"`). A `None` dim of a placeholder is one
symbol; ops make new atoms (a strided slice of an unknown dim, a concat of
unknown dims) or new products (a reshape that merges dims). Two dims are known
to be equal only when they are the same `Sym`: that is the one case in which
the generator lets an elementwise op combine unknown dims, as the README asks
(on `cpu`, two None dims that meet must match at run time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, order=True)
class Sym:
    coef: int
    atoms: tuple[str, ...]  # sorted, so equal products compare equal

    def __str__(self) -> str:
        parts = ([str(self.coef)] if self.coef != 1 else []) + list(self.atoms)
        return "*".join(parts)


Dim = Union[int, Sym]
Shape = tuple[Dim, ...]


def symbol(name: str) -> Sym:
    return Sym(1, (name,))


def is_static(dim: Dim) -> bool:
    return isinstance(dim, int)


def evaluate(dim: Dim, sizes: dict[str, int]) -> int:
    """The size of `dim` when the symbols have `sizes`."""
    if isinstance(dim, int):
        return dim
    return dim.coef * math.prod(eval(atom, {"__builtins__": {"len": len, "range": range}}, dict(sizes))
                                for atom in dim.atoms)


def expression(dim: Dim) -> str:
    """`dim` as a Python expression over the symbols."""
    if isinstance(dim, int):
        return str(dim)
    return "*".join(([str(dim.coef)] if dim.coef != 1 else []) + list(dim.atoms)) or "1"


def product(dims: list[Dim]) -> Dim:
    """The product of `dims`: an int when all are static."""
    coef = 1
    atoms: list[str] = []
    for dim in dims:
        if isinstance(dim, int):
            coef *= dim
        else:
            coef *= dim.coef
            atoms.extend(dim.atoms)
    return Sym(coef, tuple(sorted(atoms))) if atoms else coef


def total(dims: list[Dim]) -> Dim:
    """The sum of `dims` (a concat axis): like terms merge, so x ++ x has 2*a, the dim of a merged [a, 2]."""
    if all(isinstance(d, int) for d in dims):
        return sum(dims)  # type: ignore[arg-type]
    terms: dict[tuple[str, ...], int] = {}
    for dim in dims:
        atoms, coef = ((), dim) if isinstance(dim, int) else (dim.atoms, dim.coef)
        terms[atoms] = terms.get(atoms, 0) + coef
    terms = {atoms: coef for atoms, coef in terms.items() if coef}
    if not any(terms):  # the unknown parts are 0 * a: a known sum, but not to the front end
        static = terms.get((), 0)
        return Sym(1, (str(static),)) if static else next(d for d in dims if not isinstance(d, int))
    if len(terms) == 1:
        ((atoms, coef),) = terms.items()
        return Sym(coef, atoms) if atoms else coef
    return Sym(1, ("(" + "+".join(expression(Sym(c, a)) if a else str(c) for a, c in sorted(terms.items())) + ")",))


def sliced(dim: Dim, start: int | None, stop: int | None, step: int) -> Dim:
    """The length of dim[start:stop:step]."""
    if isinstance(dim, int):
        return len(range(dim)[start:stop:step])
    if (start, stop, step) == (None, None, 1):
        return dim
    bounds = ":".join("" if b is None else str(b) for b in (start, stop)) + f":{step}"
    return Sym(1, (f"len(range({expression(dim)})[{bounds}])",))


def divide(dim: Dim, divisor: int) -> Dim | None:
    """dim / divisor when it divides exactly as written (a coefficient or a static size), else None."""
    if isinstance(dim, int):
        return dim // divisor if dim % divisor == 0 else None
    if dim.coef % divisor:
        return None
    return Sym(dim.coef // divisor, dim.atoms)


def broadcast(a: Dim, b: Dim) -> Dim | None:
    """The dim of an elementwise result, or None where the generator must not combine them."""
    if a == b:
        return a
    if a == 1:
        return b
    if b == 1:
        return a
    return None


def to_json(dim: Dim) -> int | list:
    return dim if isinstance(dim, int) else [dim.coef, list(dim.atoms)]


def from_json(data: int | list) -> Dim:
    return data if isinstance(data, int) else Sym(int(data[0]), tuple(data[1]))


def broadcast_shapes(*shapes: Shape) -> Shape | None:
    """The broadcast of `shapes` (numpy's rule, right-aligned), or None where they must not meet."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out: list[Dim] = []
    for column in zip(*padded):
        dim: Dim | None = column[0]
        for other in column[1:]:
            dim = broadcast(dim, other) if dim is not None else None
        if dim is None:
            return None
        out.append(dim)
    return tuple(out)
