"""A case printed as a standalone Python script that a user can paste and run.

The graph lines are the ones the builder evaluated (calls.py); the feeds are
written out as literals, one size assignment, so the script needs nothing of
the fuzzer.
"""

from __future__ import annotations

import numpy as np

from . import data, dims
from .build import placeholder_shape, weight_name
from .calls import render
from .spec import Case


def literal(array: np.ndarray) -> str:
    """The array as `np.array([...], dtype)` (reshaped when not 1-D), exact for every float."""
    items = ", ".join(number(x) for x in array.ravel().tolist())
    text = f"np.array([{items}], np.{array.dtype})"
    return text if array.ndim == 1 else f"{text}.reshape({list(array.shape)})"


def number(x: object) -> str:
    if isinstance(x, float):
        if x != x:
            return "nan"
        if x in (float("inf"), float("-inf")):
            return "inf" if x > 0 else "-inf"
    return repr(x)


def shape_comment(shape: tuple) -> str:
    return "[" + ", ".join(dims.expression(d) for d in shape) + "]"


def script(case: Case, run: int = 0, headline: str = "") -> str:
    spec = case.spec
    sizes = case.sizes[run]
    lines = [f'"""flowc fuzz seed {case.seed}' + (f": {headline}" if headline else "") + '"""',
             "import numpy as np", "", "import flowc as fc", "", "nan, inf = np.nan, np.inf",
             "g = fc.Graph()", "with g.as_default():"]
    for item in spec.inputs:
        value = item.value
        lines.append(f"    {value.name} = fc.placeholder(fc.{value.dtype}, {placeholder_shape(value)}, "
                     f"name={value.name!r})  # {shape_comment(value.shape)}")
    for record in spec.ops:
        value = record.result
        lines.append(f"    {value.name} = {render(record)}  # {value.dtype}{shape_comment(value.shape)}")
    lines.append(f"    fetches = [{', '.join(spec.outputs)}]")
    weighted = [name for name in spec.outputs if spec.value(name).is_float] if spec.gradients else []
    xs = [i.value.name for i in spec.inputs if i.value.is_float and i.indexes is None]
    if weighted and xs:
        for name in weighted:
            value = spec.value(name)
            lines.append(f"    {weight_name(name)} = fc.placeholder(fc.{value.dtype}, {placeholder_shape(value)}, "
                         f"name={weight_name(name)!r})")
        losses = ", ".join(f"fc.reduce_sum({name} * {weight_name(name)})" for name in weighted)
        lines.append(f"    fetches += [d for d in fc.gradients([{losses}], [{', '.join(xs)}]) if d is not None]")
    lines.append("")
    used = {atom for i in spec.inputs for d in i.value.shape if isinstance(d, dims.Sym) for atom in d.atoms}
    lines.append(f"# {', '.join(f'{s} = {n}' for s, n in sizes.items() if s in used)}")
    lines.append("feed = {")
    for item in spec.inputs:
        lines.append(f"    {item.value.name}: {literal(data.input_array(case, run, item))},")
    for name in weighted if xs else []:
        shape = data.concrete_shape(spec.value(name), sizes)
        array = data.weight_array(case, run, weight_name(name), shape, spec.value(name).dtype)
        lines.append(f"    {weight_name(name)}: {literal(array)},")
    lines += ["}", f"for target in ('reference', {case.target!r}):", "    with fc.Session(graph=g, target=target) as sess:",
              "        try:", "            print(target, sess.run(fetches, feed))",
              "        except fc.FlowcError as error:", "            print(target, 'raised', repr(error))", ""]
    return "\n".join(lines)
