"""The verifier: checks that IR is well formed; runs after every pass in tests.

For each op: operand and region counts, attribute names and value types,
result types against the type rule, dominance (an operand is defined earlier
in the same block, or is an argument of that block: regions are isolated
from above, Note [isolated regions] in ir/ops/control.py), terminators (one,
last: `return` ends a function, `yield` a region), and the op's own checks
(`verify_extra`: region signatures, callees). One walk, linear in the IR.
"""

from __future__ import annotations

import types as pytypes
from typing import Any, Union, get_args, get_origin

import numpy as np

from .core import Block, Function, Module, Operation, OpResult, Value
from .errors import FlowcError, VerifyError


def verify(target: Module | Function) -> None:
    """Raise VerifyError at the first malformed op of a module or function."""
    functions = list(target) if isinstance(target, Module) else [target]
    for function in functions:
        _verify_function(function)


def _verify_function(function: Function) -> None:
    if len(function.body.blocks) != 1:
        raise VerifyError(function, f"function body has {len(function.body.blocks)} blocks; one is supported")
    _verify_block(function.entry, "return")
    terminator = function.entry.ops[-1]
    returned = [v.type for v in terminator.operands]
    if returned != function.result_types:
        raise VerifyError(
            terminator, f"returns {returned}, function @{function.name} is declared to return {function.result_types}"
        )


def _verify_block(block: Block, terminator: str) -> None:
    """Ops in order; `defined` is what an op of this block may use (the block is isolated from above)."""
    defined: set[Value] = set(block.args)
    if not block.ops:
        owner = block.parent.parent if block.parent is not None else None
        what = "function body" if isinstance(owner, Function) else "region"
        raise VerifyError(owner or "block", f"{what} is empty; it must end with {terminator}")
    last = block.ops[-1]
    for op in block.ops:
        if op.parent is not block:
            raise VerifyError(op, "op's parent is not the block that holds it")
        for index, value in enumerate(op.operands):
            if value not in defined:
                raise VerifyError(op, _undefined(op, index, value, block))
        if op.is_terminator and op is not last:
            raise VerifyError(op, f"terminator {op.name} must be the last op of its block")
        _verify_op(op)
        for result in op.results:
            defined.add(result)
    if last.name != terminator:
        raise VerifyError(last, f"block must end with {terminator}, ends with {last.name}")
    for kind in dict.fromkeys(type(op) for op in block.ops):
        kind.verify_block(block)


def _verify_op(op: Operation) -> None:
    if op.num_operands is not None and len(op.operands) != op.num_operands:
        raise VerifyError(op, f"takes {_count(op.num_operands, 'operand')}, got {len(op.operands)}")
    _verify_attributes(op)
    if len(op.regions) != op.num_regions:
        raise VerifyError(op, f"takes {_count(op.num_regions, 'region')}, got {len(op.regions)}")
    for index, region in enumerate(op.regions):
        if len(region.blocks) != 1:
            raise VerifyError(op, f"region {index} has {len(region.blocks)} blocks; one is supported")
        _verify_block(region.entry, "yield")
    try:
        if type(op).infer_type is not Operation.infer_type:
            rule = op.result_types_from_rule()
            results = [r.type for r in op.results]
            if results != rule:
                raise VerifyError(op, f"result types are {results}, the type rule gives {rule}")
        op.verify_extra()
    except VerifyError:
        raise
    except FlowcError as error:
        raise VerifyError(op, error.detail) from None


def _verify_attributes(op: Operation) -> None:
    given, required = set(op.attributes), set(op.attrs) - op.optional
    if not required <= given <= set(op.attrs):
        raise VerifyError(op, f"has attributes {sorted(op.attributes)}, {op.name} takes {sorted(op.attrs)}")
    for key, expected in op.attrs.items():
        if key not in op.attributes:
            continue  # an optional attribute, absent
        value = op.attributes[key]
        if not attribute_matches(value, expected):
            raise VerifyError(
                op, f"attribute {key} must be {_type_name(expected)}, got {type(value).__name__} {value!r}"
            )


def attribute_matches(value: Any, expected: Any) -> bool:
    """Whether an attribute value has the declared type (int, tuple[int, ...], X | None, a class)."""
    origin = get_origin(expected)
    if expected is Any:
        return True
    if expected is None or expected is type(None):
        return value is None
    if origin in (Union, pytypes.UnionType):
        return any(attribute_matches(value, option) for option in get_args(expected))
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        args = get_args(expected)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(attribute_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(attribute_matches(v, a) for v, a in zip(value, args))
    if origin is not None:
        return isinstance(value, origin)
    if isinstance(value, (bool, np.bool_)):
        return expected is bool
    if expected is int:
        return isinstance(value, (int, np.integer))
    if expected is float:
        return isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True  # an annotation we cannot check (a string): the op's own normalization did


def _type_name(expected: Any) -> str:
    return expected.__name__ if isinstance(expected, type) else str(expected)


def _undefined(op: Operation, index: int, value: Value, block: Block) -> str:
    """Why an operand is not visible: later in this block, outside the region, or nowhere here."""
    what = f"operand {index} ({_describe(value)})"
    if value.owner is block or (isinstance(value.owner, Operation) and value.owner.parent is block):
        return f"{what} is used before it is defined"
    if _is_enclosing(value, block):
        return f"{what} is defined outside the region; regions are isolated from above, pass it as an operand"
    return f"{what} is not defined in this function"


def _is_enclosing(value: Value, block: Block) -> bool:
    owner = value.owner
    value_block = owner if isinstance(owner, Block) else owner.parent
    current: Any = block
    while isinstance(current, Block):
        region = current.parent
        holder = region.parent if region is not None else None
        if not isinstance(holder, Operation):
            return False
        current = holder.parent
        if current is value_block:
            return True
    return False


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _describe(value: Value) -> str:
    if value.name:
        return f"%{value.name}: {value.type}"
    if isinstance(value, OpResult):
        return f"result {value.index} of {value.op.name}: {value.type}"
    return f"block argument {value.index}: {value.type}"
