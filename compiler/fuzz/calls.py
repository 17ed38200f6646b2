"""How each op record reads as Python: one template per record kind.

The builder evaluates these lines and the printer writes them out, so a
reproducer is the very code that ran. `{0}`, `{1}`, ... are the operands;
`{args}` lists them all (concat, stack), `{rest}` all but the first (the index
columns of gather_nd); other fields are the record's attrs. A string attr may
itself name operands (`{1}`): the body of a cond branch or a loop, filled in
first, so the minimizer's renaming of operands reaches inside lambdas too.
"""

from __future__ import annotations

from .draw_array import ARRAY_TEMPLATES
from .draw_control import CONTROL_TEMPLATES
from .draw_nn import NN_TEMPLATES
from .draw_reduce import REDUCE_TEMPLATES
from .spec import OpRecord

TEMPLATES = {
    "unary": "fc.{function}({0})",
    "binary": "fc.{function}({0}, {1})",
    "binary_scalar": "fc.{function}({0}, {scalar})",  # the Python number takes the tensor's dtype
    "scalar_binary": "fc.{function}({scalar}, {0})",
    "where": "fc.where({0}, {1}, {2})",
    "where_scalar": "fc.where({0}, {1}, {scalar})",
    "cast": "fc.cast({0}, fc.{dtype})",
    # float to int of inf, nan or a huge value is undefined in C (and differs by platform in numpy): keep |x| small
    "cast_in_range": "fc.cast(fc.where(fc.abs({0}) < 1e6, {0}, 0.0), fc.{dtype})",
    "positive": "fc.abs({0}) + 1.0",  # a divisor, log or rsqrt operand that is not near 0
    "bounded": "fc.tanh({0})",  # an exponent that cannot make pow overflow for one target only
    # cpu's sin and cos reduce |x| < 2**40 only (mathlib_special.py, README): huge finite x becomes 0, inf NaN
    "trig_range": "fc.where(fc.abs({0}) < 1e12, {0}, {0} - {0})",
    "reduce": "fc.{function}({0}, axis={axis}, keepdims={keepdims})",
    "arg_reduce": "fc.{function}({0}, axis={axis}, output_type=fc.{dtype})",
    "matmul": "fc.matmul({0}, {1}, transpose_a={transpose_a}, transpose_b={transpose_b})",
    "reshape": "fc.reshape({0}, {shape})",
    "transpose": "fc.transpose({0}, {perm})",
    "concat": "fc.concat([{args}], axis={axis})",
    "stack": "fc.stack([{args}], axis={axis})",
    "expand_dims": "fc.expand_dims({0}, {axis})",
    "squeeze": "fc.squeeze({0}, {axes})",
    "broadcast_to": "fc.broadcast_to({0}, {shape})",
    "slice": "{0}[{index}]",
    "gather": "fc.gather({0}, {1}, axis={axis})",
    "one_hot": "fc.one_hot({0}, {depth}, dtype=fc.{dtype})",
    "softmax": "fc.nn.{function}({0}, axis={axis})",
}


TEMPLATES.update(ARRAY_TEMPLATES)
TEMPLATES.update(REDUCE_TEMPLATES)
TEMPLATES.update(NN_TEMPLATES)
TEMPLATES.update(CONTROL_TEMPLATES)


def render(record: OpRecord) -> str:
    """The right-hand side of the record's line."""
    attrs = {key: value.format(*record.args) if isinstance(value, str) and "{" in value else value
             for key, value in record.attrs.items()}
    return TEMPLATES[record.op].format(*record.args, args=", ".join(record.args), rest=", ".join(record.args[1:]),
                                       **attrs)
