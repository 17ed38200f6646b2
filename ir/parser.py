"""The IR text form, reading side: the grammar `ir/printer.py` writes.

    module     := function*
    function   := 'func' @name '(' [arg (',' arg)*] ')' '->' (type | '(' [types] ')')
                  ['attributes' attr-dict] '{' op* block* '}'
    op         := [%name (',' %name)* '='] op-name [%name (',' %name)*] [attr-dict] [':' types] region*
    region     := '{' block+ '}'
    block      := ^label ['(' [arg (',' arg)*] ')'] ':' op*
    arg        := %name ':' type
    type       := dtype '[' [dim (',' dim)*] ']'       dim := integer | '?'
    attr-dict  := '{' [key '=' value (',' key '=' value)*] '}'
    value      := integer | float | nan | inf | -inf | true | false | none | "string"
                | '[' [value (',' value)*] ']' | dtype | type | @symbol | dense '<' elements '>'

`//` starts a comment to the end of the line. The types after ':' are the
result types of an op that has results, else its operand types. A `dense`
constant takes its dtype and shape from the op's (first) result type. An op
gives every attribute it declares, those with defaults too (as the printer
writes them), so a text never means something else when a default changes;
only an op's `optional` ones may be absent (a fusion's schedule, which the
schedule pass adds).
Regions and lists nest at most MAX_NESTING deep.

The parser builds ops with the result types the text gives; checking them
against each op's type rule is the verifier's job (`ir/verifier.py`).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any, Iterator, NamedTuple

import numpy as np

from . import op as registry
from .core import Block, Function, Module, Operation, Region, SymbolRef, Value
from .errors import FlowcError, ParseError
from .types import DTYPES, DType, TensorType

_DTYPES = {d.short: d for d in DTYPES}
# Regions in regions and lists in lists: real IR nests a few deep. The limit keeps the parser (and
# the verifier, printer and passes, which recurse by region) well inside Python's recursion limit.
MAX_NESTING = 64
_STRING = r'"(?:[^"\\\n]|\\.)*"'
_TOKEN = re.compile(
    rf"""
    (?P<space>[ \t\r\f]+) | (?P<newline>\n) | (?P<comment>//[^\n]*)
  | (?P<value>%[A-Za-z0-9_.$]+)
  | (?P<symbol>@(?:[A-Za-z0-9_.$-]+|{_STRING}))
  | (?P<label>\^[A-Za-z0-9_.]+)
  | (?P<string>{_STRING})
  | (?P<number>-?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>->|[()\[\]{{}},:=<>?-])
    """,
    re.VERBOSE,
)


class Token(NamedTuple):
    kind: str  # value symbol label string number ident punct eof
    text: str
    line: int
    col: int

    def describe(self) -> str:
        return "end of input" if self.kind == "eof" else f"'{self.text}'"


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    line, line_start, pos = 1, 0, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            what = "unterminated string" if text[pos] == '"' else f"unexpected character {text[pos]!r}"
            raise ParseError(f"line {line}, col {pos - line_start + 1}: {what}")
        kind = match.lastgroup
        if kind == "newline":
            line, line_start = line + 1, match.end()
        elif kind not in ("space", "comment"):
            tokens.append(Token(kind, match.group(), line, pos - line_start + 1))
        pos = match.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


def parse_module(text: str, source: str | None = None) -> Module:
    """A module from its text; `source` (a file name) goes into each op's `loc`."""
    return _Parser(text, source).module()


def parse_function(text: str, source: str | None = None) -> Function:
    """The one function of `text` (it stays in a module of its own, so calls can resolve)."""
    module = parse_module(text, source)
    if len(module.functions) != 1:
        raise ParseError(f"expected one function, got {len(module.functions)}")
    return next(iter(module))


class _Dense:
    """A `dense<...>` literal, made an ndarray once the op's result type is known."""

    def __init__(self, data: Any, token: Token):
        self.data = data  # a scalar (splat) or nested lists of scalars
        self.token = token


class _Parser:
    def __init__(self, text: str, source: str | None):
        self.tokens = tokenize(text)
        self.pos = 0
        self.source = source
        self.scopes: list[dict[str, tuple[Value, Token]]] = []
        self.depth = 0  # regions and lists open around the current token

    # -- tokens -------------------------------------------------------------

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def fail(self, token: Token, message: str) -> ParseError:
        return ParseError(f"line {token.line}, col {token.col}: {message}", where=self.source)

    def expected(self, token: Token, what: str) -> ParseError:
        return self.fail(token, f"expected {what}, got {token.describe()}")

    def at(self, text: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind in ("punct", "ident") and token.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.next()
            return True
        return False

    def expect(self, text: str, what: str | None = None) -> Token:
        if not self.at(text):
            raise self.expected(self.peek(), what or f"'{text}'")
        return self.next()

    def expect_kind(self, kind: str, what: str) -> Token:
        if self.peek().kind != kind:
            raise self.expected(self.peek(), what)
        return self.next()

    def comma_list(self, item: Any, close: str) -> list[Any]:
        """Items separated by ',' up to `close`, which is consumed."""
        items: list[Any] = []
        if self.accept(close):
            return items
        while True:
            items.append(item())
            if self.accept(close):
                return items
            self.expect(",", f"',' or '{close}'")

    @contextlib.contextmanager
    def nested(self, token: Token, what: str) -> Iterator[None]:
        if self.depth >= MAX_NESTING:
            raise self.fail(token, f"{what} nested more than {MAX_NESTING} deep")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    # -- names --------------------------------------------------------------

    def define(self, token: Token, value: Value) -> None:
        name = token.text[1:]
        for scope in self.scopes:
            if name in scope:
                first = scope[name][1]
                raise self.fail(token, f"%{name} is already defined (line {first.line}, col {first.col})")
        self.scopes[-1][name] = (value, token)

    def lookup(self, token: Token) -> Value:
        name = token.text[1:]
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name][0]
        raise self.fail(token, f"use of undefined value %{name}")

    @staticmethod
    def hint(token: Token) -> str | None:
        name = token.text[1:]
        return None if name.isdigit() else name  # %0, %1: numbered by the printer, no hint

    # -- module and functions ----------------------------------------------------

    def module(self) -> Module:
        module = Module()
        while self.peek().kind != "eof":
            token = self.peek(1)
            function = self.function()
            if function.name in module.functions:
                raise self.fail(token, f"function @{function.name} is defined twice")
            module.add(function)
        return module

    def function(self) -> Function:
        self.expect("func", "'func'")
        name = self.symbol(self.expect_kind("symbol", "a function name such as @main"))
        self.expect("(")
        args = self.comma_list(self.argument, ")")
        self.expect("->")
        if self.accept("("):
            result_types = self.comma_list(self.type, ")")
        else:
            result_types = [self.type()]
        attributes: dict[str, Any] = {}
        if self.accept("attributes"):
            attributes = self.attribute_dict()
            for value in attributes.values():
                if isinstance(value, _Dense):
                    raise self.fail(value.token, "dense<...> needs an op's result type; a function attribute has none")
        self.expect("{")
        function = Function(name, [t for _, t in args], result_types, [self.hint(tok) for tok, _ in args], attributes)
        self.scopes.append({})
        for (token, _), arg in zip(args, function.args):
            self.define(token, arg)
        self.block_ops(function.entry)
        while self.peek().kind == "label":
            function.body.add_block(self.block())
        self.expect("}", "an op or '}'")
        self.scopes.pop()
        return function

    def argument(self) -> tuple[Token, TensorType]:
        token = self.expect_kind("value", "an argument such as %x")
        self.expect(":")
        return token, self.type()

    def type(self) -> TensorType:
        token = self.next()
        if token.kind != "ident" or token.text not in _DTYPES:
            raise self.expected(token, "a type such as f32[4]")
        self.expect("[", "'[' after the dtype")
        return TensorType(_DTYPES[token.text], self.comma_list(self.dim, "]"))

    def dim(self) -> int | None:
        token = self.next()
        if token.kind == "punct" and token.text == "?":
            return None
        if token.kind == "number" and token.text.isdigit():
            return int(token.text)
        raise self.expected(token, "a dim (an integer or ?)")

    def symbol(self, token: Token) -> str:
        name = token.text[1:]
        return json.loads(name) if name.startswith('"') else name

    # -- blocks, regions and ops -------------------------------------------------

    def block(self) -> Block:
        self.expect_kind("label", "a block label such as ^bb0")
        args = self.comma_list(self.argument, ")") if self.accept("(") else []
        self.expect(":", "':' after the block label")
        block = Block([t for _, t in args], [self.hint(tok) for tok, _ in args])
        for (token, _), arg in zip(args, block.args):
            self.define(token, arg)
        self.block_ops(block)
        return block

    def region(self) -> Region:
        with self.nested(self.expect("{"), "regions"):
            self.scopes.append({})
            region = Region([self.block()])
            while self.peek().kind == "label":
                region.add_block(self.block())
            self.expect("}", "an op or '}'")
            self.scopes.pop()
            return region

    def block_ops(self, block: Block) -> None:
        while True:
            token = self.peek()
            if token.kind in ("value", "ident"):
                block.append(self.operation())
            elif token.kind == "label" or self.at("}"):
                return
            else:
                raise self.expected(token, "an op or '}'")

    def starts_results(self) -> bool:
        """Whether the %names ahead are results (`%a, %b = ...`), not operands."""
        offset = 0
        while self.peek(offset).kind == "value":
            offset += 1
            if not self.at(",", offset):
                break
            offset += 1
        return self.at("=", offset)

    def operation(self) -> Operation:
        result_tokens: list[Token] = []
        if self.peek().kind == "value":
            result_tokens.append(self.next())
            while self.accept(","):
                result_tokens.append(self.expect_kind("value", "a result name such as %r"))
            self.expect("=", "'=' after the result names")
        name_token = self.next()
        if name_token.kind != "ident":
            raise self.expected(name_token, "an op name")
        if name_token.text not in registry.OPS:
            raise self.fail(name_token, f"unknown op '{name_token.text}'")
        operands: list[Value] = []
        operand_tokens: list[Token] = []
        if self.peek().kind == "value" and not self.starts_results():
            operand_tokens.append(self.next())
            while self.accept(","):
                operand_tokens.append(self.expect_kind("value", "an operand such as %x"))
            operands = [self.lookup(token) for token in operand_tokens]
        attributes: dict[str, Any] = {}
        if self.at("{") and (self.at("}", 1) or (self.peek(1).kind == "ident" and self.at("=", 2))):
            attributes = self.attribute_dict()
        types: list[TensorType] = []
        colon = self.peek()
        if self.accept(":"):
            types = [self.type()]
            while self.accept(","):
                types.append(self.type())
        regions = []
        while self.at("{"):
            regions.append(self.region())
        return self.build(name_token, result_tokens, operands, operand_tokens, attributes, types, colon, regions)

    def build(
        self,
        name_token: Token,
        result_tokens: list[Token],
        operands: list[Value],
        operand_tokens: list[Token],
        attributes: dict[str, Any],
        types: list[TensorType],
        colon: Token,
        regions: list[Region],
    ) -> Operation:
        name = name_token.text
        if result_tokens and not types:
            raise self.expected(colon, "':' and the result types")
        if result_tokens and len(types) != len(result_tokens):
            raise self.fail(
                colon, f"{name} names {_count(len(result_tokens), 'result')} but ':' gives {_count(len(types), 'type')}"
            )
        if not result_tokens and types:
            if len(types) != len(operands):
                raise self.fail(
                    colon, f"{name} has {_count(len(operands), 'operand')} but ':' gives {_count(len(types), 'type')}"
                )
            for token, value, given in zip(operand_tokens, operands, types):
                if value.type != given:
                    raise self.fail(token, f"{token.text} has type {value.type}, but ':' says {given}")
        result_types = types if result_tokens else []
        for key, value in attributes.items():
            if isinstance(value, _Dense):
                if not result_types:
                    raise self.fail(value.token, "dense<...> needs the op's result type after ':'")
                attributes[key] = self.dense_array(value, result_types[0])
        loc = f"{self.source}:{name_token.line}" if self.source else f"line {name_token.line}"
        op_class = registry.get(name)
        missing = sorted(set(op_class.attrs) - set(attributes) - op_class.optional)
        if missing:  # the op's defaults are for building IR in Python; text says everything
            raise self.fail(name_token, f"{name}: missing attribute {', '.join(missing)}")
        try:
            op = registry.get(name)(
                operands,
                attributes,
                result_types,
                regions,
                loc=loc,
                result_names=[self.hint(token) for token in result_tokens],
            )
        except FlowcError as error:
            raise self.fail(name_token, f"{name}: {error.detail}") from None
        for token, result in zip(result_tokens, op.results):
            self.define(token, result)
        return op

    # -- attributes ----------------------------------------------------------------

    def attribute_dict(self) -> dict[str, Any]:
        self.expect("{")
        attributes: dict[str, Any] = {}
        if self.accept("}"):
            return attributes
        while True:
            key = self.expect_kind("ident", "an attribute name")
            if key.text in attributes:
                raise self.fail(key, f"attribute '{key.text}' is given twice")
            self.expect("=", "'=' after the attribute name")
            attributes[key.text] = self.attribute_value(top=True)
            if self.accept("}"):
                return attributes
            self.expect(",", "',' or '}'")

    def attribute_value(self, top: bool = False) -> Any:
        token = self.peek()
        if token.kind == "string":
            self.next()
            return json.loads(token.text)
        if token.kind == "symbol":
            self.next()
            return SymbolRef(self.symbol(token))
        if self.at("["):
            with self.nested(self.next(), "lists"):
                return tuple(self.comma_list(self.attribute_value, "]"))
        if token.kind == "ident" and token.text in _DTYPES:
            if self.at("[", 1):
                return self.type()
            self.next()
            return _DTYPES[token.text]
        if token.kind == "ident" and token.text == "dense":
            if not top:
                raise self.fail(token, "dense<...> is only allowed as a whole attribute value")
            self.next()
            self.expect("<", "'<' after dense")
            data = self.dense_elements() if self.at("[") else self.scalar()
            self.expect(">", "',' or '>'")
            return _Dense(data, token)
        return self.scalar(allow_none=True)

    def scalar(self, allow_none: bool = False) -> Any:
        token = self.next()
        if token.kind == "number":
            is_float = any(c in token.text for c in ".eE")
            return float(token.text) if is_float else int(token.text)
        if token.kind == "ident" and token.text in _WORDS and (allow_none or token.text != "none"):
            return _WORDS[token.text]
        if token.kind == "punct" and token.text == "-" and self.at("inf"):
            self.next()
            return float("-inf")
        raise self.expected(token, "an attribute value" if allow_none else "a number, true or false")

    def dense_elements(self) -> Any:
        if self.at("["):
            with self.nested(self.next(), "lists"):
                return self.comma_list(self.dense_elements, "]")
        return self.scalar()

    def dense_array(self, dense: _Dense, type: TensorType) -> np.ndarray:
        if not type.is_static:
            raise self.fail(dense.token, f"dense<...> needs a static result type, got {type}")
        splat = not isinstance(dense.data, list)
        for element in [dense.data] if splat else _flatten(dense.data):
            if not _fits(element, type.dtype):
                raise self.fail(dense.token, f"dense element {element!r} does not fit {type.dtype.short}")
        try:
            if splat:
                return np.full(type.shape, dense.data, dtype=type.dtype.np)
            array = np.array(dense.data, dtype=type.dtype.np)
        except (ValueError, OverflowError) as error:
            raise self.fail(dense.token, f"dense<...> does not make an array of {type}: {error}") from None
        if array.shape != type.shape:
            if array.size == 0 and type.size == 0:
                return array.reshape(type.shape)
            raise self.fail(dense.token, f"dense<...> has shape {list(array.shape)}, the result type is {type}")
        return array


_WORDS: dict[str, Any] = {"true": True, "false": False, "none": None, "nan": float("nan"), "inf": float("inf")}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            out.append(item)
    return out


def _fits(element: Any, dtype: DType) -> bool:
    if isinstance(element, bool):
        return dtype.is_bool
    if element is None:
        return False
    return dtype.is_float or (dtype.is_int and isinstance(element, int))
