"""The reference evaluator: runs IR with each op's numpy meaning.

Slow and simple on purpose: it is the oracle every backend is compared with,
and constant folding calls the same `reference` of each op. Every result is
checked against its static type, so a `None` dim fed inconsistently (say a
batch of 7 against a weight of 8) is caught here with the op's name.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import numpy as np

from .core import Function, Module, Operation, Region, Value
from .errors import FlowcError, ResourceExhaustedError, RuntimeShapeError, describe_bytes
from .types import DTYPES


class Interpreter:
    """Evaluates functions of a module (the module is needed for `call`)."""

    def __init__(self, module: Module | None = None):
        self.module = module
        self.calls = 0  # functions being run: `call` nests them, and recursion can nest them deep

    def run_function(self, function: Function | str, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        if isinstance(function, str):
            if self.module is None or function not in self.module.functions:
                raise FlowcError(f"no function @{function} to call")
            function = self.module[function]
        if len(args) != len(function.args):
            count = f"{len(function.args)} argument" + ("" if len(function.args) == 1 else "s")
            raise FlowcError(f"@{function.name} takes {count}, got {len(args)}")
        self.calls += 1
        try:
            return self.run_region(function.body, args)
        except RecursionError:
            if self.calls > 1:
                raise  # to the outermost function, where the stack has room for a message
            raise FlowcError(f"calls nest deeper than the reference interpreter can follow (Python's recursion "
                             f"limit is {sys.getrecursionlimit()})", op=f"@{function.name}") from None
        finally:
            self.calls -= 1

    def run_region(self, region: Region, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Runs the region's entry block; returns its terminator's operands."""
        block = region.entry
        env: dict[Value, np.ndarray] = {}
        for arg, value in zip(block.args, args, strict=True):
            env[arg] = check_value(arg.type, value, f"argument {arg.index}", None)
        for op in block.ops:
            operands = [env[v] for v in op.operands]
            if op.is_terminator:
                return operands
            for result, value in zip(op.results, self.run_op(op, operands), strict=True):
                env[result] = value
        raise FlowcError("block has no terminator")

    def run_op(self, op: Operation, operands: list[np.ndarray]) -> list[np.ndarray]:
        try:
            outputs = op.evaluate(operands, self)
        except FlowcError as error:  # first: a ResourceExhaustedError from a nested op is a MemoryError too
            if error.where is None and op.loc is not None:  # name the user's op and line, not just the kind
                error.op = None
                error.located(op=op.display_name, where=op.loc)
            raise
        except MemoryError as error:
            raise _out_of_memory(op, error) from None
        if len(op.results) == 1 and not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return [check_value(r.type, out, f"result {r.index}", op) for r, out in zip(op.results, outputs, strict=True)]


def _out_of_memory(op: Operation, error: MemoryError) -> ResourceExhaustedError:
    """numpy could not allocate an array while evaluating `op`: say which op and how much."""
    shape, dtype = getattr(error, "shape", None), getattr(error, "dtype", None)  # numpy's _ArrayMemoryError
    if shape is None or dtype is None:
        message = f"ran out of memory evaluating it ({error or 'MemoryError'})"
    else:
        size = math.prod(shape) * dtype.itemsize
        known = {d.np: d.short for d in DTYPES}
        shown = f"{known.get(dtype, dtype.name)}[{','.join(str(d) for d in shape)}]"
        message = f"an array {shown} needs {describe_bytes(size)}, more than numpy could allocate"
    return ResourceExhaustedError(message, op=op.display_name, where=op.loc)


def check_value(expected: Any, value: Any, what: str, op: Operation | None) -> np.ndarray:
    """The value as an ndarray of the expected dtype, its shape checked."""
    array = np.asarray(value)
    if array.dtype != expected.dtype.np:
        # A reference returning the wrong dtype is a bug in flowc, not in the user's graph.
        raise FlowcError(f"{what} has dtype {array.dtype}, its type is {expected}",
                         op=op.display_name if op else None, where=op.loc if op else None)
    if not expected.accepts(array.shape):
        raise RuntimeShapeError(f"{what} has shape {list(array.shape)} at run time, its type is {expected}",
                                op=op.display_name if op else None, where=op.loc if op else None)
    return array


def evaluate(function: Function, args: Sequence[np.ndarray], module: Module | None = None) -> list[np.ndarray]:
    """Run `function` on numpy arrays with the reference meaning of each op."""
    return Interpreter(module or function.parent).run_function(function, args)
