"""What the generator draws from: dtypes, and the elementwise ops of the IR registry.

Elementwise ops come from the registry with the dtypes it declares, so an op
added there is fuzzed the day it lands (if the front end has a function of
its name); ops with a rule of their own (cast, where) have their own draws.
"""

from __future__ import annotations

import flowc as fc
from flowc.codegen.llvm.elementwise import MATH_EMITTERS  # mathlib.py and mathlib_special.py
from flowc.ir import registry

FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
NUMERIC = FLOATS + INTS
DTYPES = NUMERIC + ("bool",)

FRONT_END = {"neg": "negative", "sub": "subtract", "mul": "multiply", "div": "divide"}  # IR name -> fc function
# README: the ops of the cpu's mathlib are vectorized approximations (a few ulp), not correctly rounded.
APPROXIMATE = frozenset(MATH_EMITTERS)
NEAR_ZERO_AMPLIFIES = {"log", "rsqrt", "log1p"}  # an inexact operand near 0 (log1p: near -1) would blow its few ulp up
TRIGONOMETRIC = {"sin", "cos"}  # accurate on cpu for |x| < 2**40 only: operands go through trig_range
# Ops that jump (a step, an integer part): a last-bit difference in an operand may move the result by a
# whole unit, so they read EXACT operands only, and give EXACT results (floor of an exact value is exact).
JUMPS = {"floor", "ceil", "round", "sign", "floordiv", "floormod"}


def elementwise_ops() -> tuple[list, list, list]:
    """(unary, binary, comparison) registry ops that the front end spells as fc.<function>(...)."""
    unary, binary, comparison = [], [], []
    for op in registry.elementwise():
        if op.attrs or op.num_operands not in (1, 2) or not hasattr(fc, FRONT_END.get(op.name, op.name)):
            continue  # cast and where have their own records
        if op.num_operands == 1:
            unary.append(op)
        elif op.result_dtype is not None and op.result_dtype.name == "bool":
            comparison.append(op)
        else:
            binary.append(op)
    return unary, binary, comparison


UNARY, BINARY, COMPARISON = elementwise_ops()


def function(op: type) -> str:
    return FRONT_END.get(op.name, op.name)


def dtypes_of(op: type) -> tuple[str, ...]:
    return tuple(d.name for d in op.dtypes)
