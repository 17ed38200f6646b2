"""fc.einsum, lowered to sums, transposes, reshapes and batched matmuls (no op of its own).

The operands are contracted pairwise from the left. In each pair a letter is a batch letter (in
both, still needed later), a contracted one (in both, needed no more) or free (in one only); a
letter in one operand only and needed nowhere else is summed out first. Each operand is then
transposed to [batch, free, contracted] (the second to [batch, contracted, free]), merged to
rank 3 and multiplied; the product is split back into its letters. Repeated letters in one
operand (diagonals) are refused.

`...` stands for the dims of an operand that its letters leave over, numpy's broadcast batch dims:
each operand's are named with letters the equation does not use, aligned from the right, and an
operand whose such dim is 1 (statically) where another's is not loses that letter (a reshape), so
the other's is free there and the product broadcasts. Two unknown (None) dims under one letter
must be equal when it runs (the batched matmul checks them). The output puts them where its `...`
is; the implicit output puts them first, as numpy and TensorFlow do.
"""

from __future__ import annotations

import math
import string
from typing import Any, Sequence

from flowc.ir.errors import FlowcTypeError

from . import array_ops
from .graph import Tensor
from .math_ops import convert_to_tensor, matmul, reduce_sum
from .shape_ops import Entry, reshape
from .sources import user_location


def einsum(equation: str, *inputs: Any, name: str | None = None) -> Tensor:
    """Sums of products over the letters of `equation` ("ij,jk->ik", "...ij,...jk->...ik"); implicit
    output: the dims of `...` (broadcast as numpy's), then the letters seen once, in alphabetical order."""
    tensors = [convert_to_tensor(x) for x in inputs]
    specs, output, tensors = _parse(equation, tensors)
    letters, value = specs[0], tensors[0]
    for index in range(1, len(tensors)):
        needed = set(output).union(*specs[index + 1:])
        letters, value = _contract(letters, value, specs[index], tensors[index], needed)
    value, letters = _sum_out(value, letters, set(output))
    if letters != output:
        value = array_ops.transpose(value, [letters.index(c) for c in output])
    return value


def _error(message: str) -> FlowcTypeError:
    return FlowcTypeError(message, op="einsum", where=user_location())


def _parse(equation: str, tensors: list[Tensor]) -> tuple[list[str], str, list[Tensor]]:
    """The operands' letters, the output's, and the operands (less the dims that '...' broadcasts)."""
    equation = equation.replace(" ", "")
    left, arrow, output = equation.partition("->")
    specs = left.split(",")
    if len(specs) != len(tensors) or not tensors:
        raise _error(f"{equation!r} names {len(specs)} operands, {len(tensors)} given")
    batch = ""
    if "." in equation:
        specs, batch, tensors = _expand_ellipsis(equation, specs, tensors)
        if arrow and "..." not in output and batch:
            raise _error(f"output {output!r} of {equation!r} has no '...' for the {len(batch)} dims that '...' "
                         "stands for in the operands")
        output = output.replace("...", batch, 1)
    for spec, tensor in zip(specs, tensors):
        if not spec.isalpha() and spec:
            raise _error(f"operand spec {spec!r} of {equation!r} holds something other than letters")
        if len(spec) != tensor.type.rank:
            raise _error(f"operand spec {spec!r} has {len(spec)} letters for {tensor.name!r} of rank {tensor.type.rank}")
        if len(set(spec)) != len(spec):
            raise _error(f"operand spec {spec!r} repeats a letter (a diagonal), which flowc's einsum does not take")
    seen = "".join(specs)
    if not arrow:  # the '...' dims first, then the letters seen once
        output = batch + "".join(sorted(c for c in set(seen) if seen.count(c) == 1 and c not in batch))
    if len(set(output)) != len(output) or any(c not in seen for c in output):
        raise _error(f"output {output!r} of {equation!r} repeats a letter or names one no operand has")
    _check_sizes(specs, tensors)
    return specs, output, tensors


def _expand_ellipsis(equation: str, specs: list[str], tensors: Sequence[Tensor]
                     ) -> tuple[list[str], str, list[Tensor]]:
    """The specs with each `...` written as letters unused in `equation` (aligned from the right, as numpy
    broadcasts), the letters of the widest, and the tensors, less the static 1 dims that broadcast."""
    free = [c for c in string.ascii_letters if c not in equation]
    counts = []
    for spec, tensor in zip(specs, tensors):
        rest = spec.replace("...", "", 1)
        if "." in rest:
            raise _error(f"operand spec {spec!r} of {equation!r} holds a '.' that is not one '...'")
        counts.append(tensor.type.rank - len(rest) if "..." in spec else 0)
        if counts[-1] < 0:
            raise _error(f"operand spec {spec!r} has {len(rest)} letters for {tensor.name!r} of rank "
                         f"{tensor.type.rank}")
    width = max(counts)
    if width > len(free):
        raise _error(f"'...' stands for {width} dims in {equation!r}, more than the letters it leaves unused")
    batch = "".join(free[:width])
    specs = [spec.replace("...", batch[width - count:], 1) for spec, count in zip(specs, counts)]
    for letter in batch:
        specs, tensors = _broadcast_letter(letter, specs, tensors)
    return specs, batch, list(tensors)


def _broadcast_letter(letter: str, specs: list[str], tensors: Sequence[Tensor]) -> tuple[list[str], list[Tensor]]:
    """Where `letter` is a static 1 in some operands and something else in another, it leaves the first."""
    dims = [tensor.type.shape[spec.index(letter)] for spec, tensor in zip(specs, tensors) if letter in spec]
    if all(d == 1 for d in dims) or 1 not in dims:
        return specs, list(tensors)
    out_specs, out_tensors = [], []
    for spec, tensor in zip(specs, tensors):
        if letter in spec and tensor.type.shape[spec.index(letter)] == 1:
            tensor = array_ops.squeeze(tensor, [spec.index(letter)])
            spec = spec.replace(letter, "")
        out_specs.append(spec)
        out_tensors.append(tensor)
    return out_specs, out_tensors


def _check_sizes(specs: Sequence[str], tensors: Sequence[Tensor]) -> None:
    sizes: dict[str, int] = {}
    for spec, tensor in zip(specs, tensors):
        for letter, dim in zip(spec, tensor.type.shape):
            if dim is None:
                continue
            if sizes.setdefault(letter, dim) != dim:
                raise _error(f"letter {letter!r} has size {sizes[letter]} in one operand and {dim} in {tensor.name!r}")


def _sum_out(value: Tensor, letters: str, needed: set[str]) -> tuple[Tensor, str]:
    axes = [i for i, c in enumerate(letters) if c not in needed]
    if not axes:
        return value, letters
    return reduce_sum(value, axis=axes), "".join(c for c in letters if c in needed)


def _contract(a_letters: str, a: Tensor, b_letters: str, b: Tensor, needed: set[str]) -> tuple[str, Tensor]:
    a, a_letters = _sum_out(a, a_letters, needed | set(b_letters))
    b, b_letters = _sum_out(b, b_letters, needed | set(a_letters))
    batch = [c for c in a_letters if c in b_letters and c in needed]
    contracted = [c for c in a_letters if c in b_letters and c not in needed]
    free_a = [c for c in a_letters if c not in b_letters]
    free_b = [c for c in b_letters if c not in a_letters]
    a = _grouped(a, a_letters, [batch, free_a, contracted])
    b = _grouped(b, b_letters, [batch, contracted, free_b])
    product = matmul(a[0], b[0])
    letters = batch + free_a + free_b
    dims = {**a[1], **b[1]}
    entries: list[Entry] = [dims[c] for c in letters]
    return "".join(letters), reshape(product, entries)


def _grouped(x: Tensor, letters: str, groups: list[list[str]]) -> tuple[Tensor, dict[str, Entry]]:
    """x transposed to the groups' letters and merged to one dim per group; and each letter's dim
    (an int, or the transposed tensor's dim read at run time)."""
    order = [c for group in groups for c in group]
    perm = [letters.index(c) for c in order]
    if perm != list(range(len(perm))):
        x = array_ops.transpose(x, perm)
    shape = x.type.shape
    dims: dict[str, Entry] = {c: (x, i) if shape[i] is None else int(shape[i]) for i, c in enumerate(order)}  # type: ignore[arg-type]
    merged: list[Entry] = []
    unknown_groups = 0
    for group in groups:
        if all(isinstance(dims[c], int) for c in group):
            merged.append(math.prod(dims[c] for c in group))  # type: ignore[misc]
        elif len(group) == 1:
            merged.append(dims[group[0]])
        else:
            unknown_groups += 1
            merged.append(-1)
    if unknown_groups > 1:
        raise _error(f"{x.name!r} ({x.type}) has unknown dims in more than one group of letters; give them sizes")
    return reshape(x, merged), dims
