"""The IR text form, printing side. `ir/parser.py` reads the same grammar back.

    func @exp_if(%flag: bool[], %x: f32[8]) -> f32[8] {
      %r = cond %flag, %x : f32[8] {
      ^bb0(%a: f32[8]):
        %e = exp %a : f32[8]
        yield %e : f32[8]
      } {
      ^bb0(%a: f32[8]):
        yield %a : f32[8]
      }
      return %r : f32[8]
    }

An op prints as `%a, %b = name %x, %y {key = value, ...} : types` and then
its regions. The types after ':' are the result types, or the operand types
for an op without results (return, yield). Attributes are sorted by key.

Output is deterministic, and parse then print gives the same text back:
see Note [value names].
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from .core import Block, Function, Module, Operation, Region, SymbolRef, Value
from .errors import FlowcError
from .types import DType, TensorType

INDENT = "  "
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.]")


def print_module(module: Module) -> str:
    """The module's text: its functions in order, one blank line between them."""
    return "\n".join(print_function(function) for function in module)


def print_function(function: Function) -> str:
    return _Printer().function(function)


def value_names(function: Function) -> dict[Value, str]:
    """Each value of `function` (nested ones too) as print_function names it, with its '%'."""
    printer = _Printer()
    printer.function(function)
    return {value: f"%{name}" for value, name in printer.namer.names.items()}


def format_attribute(value: Any) -> str:
    """An attribute value as IR text (an ndarray prints its elements: its type is the op's)."""
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # shortest text that reads back to the same double: exact
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_attribute(v) for v in value) + "]"
    if isinstance(value, DType):
        return value.short
    if isinstance(value, TensorType):
        return str(value)
    if isinstance(value, SymbolRef):
        return format_symbol(value.name)
    if isinstance(value, np.ndarray):
        return format_dense(value)
    raise FlowcError(f"cannot print an attribute value of type {type(value).__name__}: {value!r}")


def format_dense(array: np.ndarray) -> str:
    """`dense<1.0>` when every element is the same (bit for bit), else nested brackets, row-major."""
    if array.size and _is_splat(array):
        return f"dense<{_format_element(array.reshape(-1)[0].item())}>"
    return f"dense<{_format_nested(array.tolist())}>"


def format_symbol(name: str) -> str:
    return f"@{name}" if re.fullmatch(r"[A-Za-z0-9_.$-]+", name) else "@" + json.dumps(name, ensure_ascii=False)


def format_types(types: list[TensorType]) -> str:
    return ", ".join(str(t) for t in types)


def sanitize(hint: str) -> str:
    """A value name hint made an identifier: 'dense/MatMul:0' -> 'dense_MatMul_0', '0x' -> '_0x'."""
    name = _NOT_NAME_CHAR.sub("_", hint)
    return name if IDENTIFIER.fullmatch(name) else "_" + name


def _is_splat(array: np.ndarray) -> bool:
    flat = np.ascontiguousarray(array).reshape(-1)
    bits = flat.view(np.dtype(f"u{flat.dtype.itemsize}"))
    return bool(np.all(bits == bits[0]))  # bits, not ==: -0.0 is no splat of 0.0, and a NaN is one of NaN


def _format_element(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _format_nested(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_format_nested(v) for v in value) + "]"
    return _format_element(value)


class _Namer:
    """Note [value names]
    A value prints as its name hint, sanitized (see `sanitize`) and made
    unique with a suffix `_1`, `_2`, ...; a value without a hint prints as
    `%0`, `%1`, ... in order of definition across the function. Names are
    unique among the values in scope: those of the function and of the
    enclosing regions. A region's names are released when it closes, so
    sibling regions may reuse them (both branches of a cond call their
    argument `%a`); regions are isolated from above (Note [isolated regions]),
    so this is never ambiguous. The parser keeps each printed name as the
    value's hint, and a hint that is an identifier not in use prints as
    itself, so printing what was parsed gives the same text.
    """

    def __init__(self) -> None:
        self.names: dict[Value, str] = {}
        self.used: set[str] = set()
        self.next_suffix: dict[str, int] = {}
        self.scopes: list[list[tuple[str, str, int]]] = [[]]  # (name, hint, suffix)
        self.next_number = 0

    def define(self, value: Value, release: bool = True) -> str:
        if value in self.names:  # already named by a use before its definition (malformed IR)
            return self.names[value]
        if not value.name:
            name = str(self.next_number)
            self.next_number += 1
        else:
            name = base = sanitize(value.name)
            suffix = 0
            if name in self.used:
                suffix = self.next_suffix.get(base, 1)
                while f"{base}_{suffix}" in self.used:
                    suffix += 1
                self.next_suffix[base] = suffix + 1
                name = f"{base}_{suffix}"
            self.used.add(name)
            if release:
                self.scopes[-1].append((name, base, suffix))
        self.names[value] = name
        return name

    def use(self, value: Value) -> str:
        name = self.names.get(value)
        if name is None:  # a use before the definition, or of a value from elsewhere: malformed IR
            name = self.define(value, release=False)
        return name

    def push(self) -> None:
        self.scopes.append([])

    def pop(self) -> None:
        for name, base, suffix in self.scopes.pop():
            self.used.discard(name)
            if suffix:  # the suffix is free again: a sibling region may take it
                self.next_suffix[base] = min(self.next_suffix[base], suffix)


class _Printer:
    def __init__(self) -> None:
        self.namer = _Namer()
        self.lines: list[str] = []

    def function(self, function: Function) -> str:
        args = ", ".join(self.argument(arg) for arg in function.args)
        results = function.result_types
        result_text = str(results[0]) if len(results) == 1 else f"({format_types(results)})"
        header = f"func {format_symbol(function.name)}({args}) -> {result_text}"
        if function.attributes:
            header += f" attributes {format_attributes(function.attributes)}"
        self.lines.append(header + " {")
        for index, block in enumerate(function.body.blocks):
            if index:  # only the entry block's arguments are in the signature
                self.block_label(block, index, "")
            self.block_ops(block, INDENT)
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"

    def argument(self, arg: Value) -> str:
        return f"%{self.namer.define(arg)}: {arg.type}"

    def block_label(self, block: Block, index: int, indent: str) -> None:
        args = ", ".join(self.argument(arg) for arg in block.args)
        self.lines.append(f"{indent}^bb{index}({args}):" if args else f"{indent}^bb{index}:")

    def block_ops(self, block: Block, indent: str) -> None:
        for op in block.ops:
            self.operation(op, indent)

    def operation(self, op: Operation, indent: str) -> None:
        text = op.name
        if op.results:
            text = ", ".join(f"%{self.namer.define(r)}" for r in op.results) + " = " + text
        if op.operands:
            text += " " + ", ".join(f"%{self.namer.use(v)}" for v in op.operands)
        if op.attributes:
            text += " " + format_attributes(op.attributes)
        shown = [r.type for r in op.results] if op.results else [v.type for v in op.operands]
        if shown:
            text += " : " + format_types(shown)
        self.lines.append(indent + text)
        for region in op.regions:
            self.lines[-1] += " {"
            self.region(region, indent)
            self.lines.append(indent + "}")

    def region(self, region: Region, indent: str) -> None:
        self.namer.push()
        for index, block in enumerate(region.blocks):
            self.block_label(block, index, indent)
            self.block_ops(block, indent + INDENT)
        self.namer.pop()


def format_attributes(attributes: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{key} = {format_attribute(attributes[key])}" for key in sorted(attributes)) + "}"
