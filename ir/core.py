"""SSA values, operations, blocks, regions, functions and modules.

Each value is defined once (an op result or a block argument) and knows its
uses, so rewrites can replace all uses of a value in one call. Operations
hold operands, results, attributes and nested regions; the bodies of `cond`,
`while` and fused kernels are regions of single blocks with arguments.

Concrete ops subclass `Operation` (see `ir/op.py`): the class carries the
op's name, attributes, type rule and numpy reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

from .errors import FlowcTypeError
from .types import TensorType


@dataclass(frozen=True)
class SymbolRef:
    """An attribute value naming a function of the module: `@name` in IR text."""

    name: str

    def __str__(self) -> str:
        return f"@{self.name}"


class Value:
    """An SSA value: the result of an op or an argument of a block."""

    __slots__ = ("type", "name", "uses")

    def __init__(self, type: TensorType, name: str | None = None):
        self.type = type
        self.name = name  # a hint for printing; the printer makes names unique
        self.uses: list[tuple[Operation, int]] = []

    @property
    def owner(self) -> Operation | Block:
        raise NotImplementedError  # every concrete value overrides it

    def replace_all_uses_with(self, new: Value) -> None:
        for user, index in list(self.uses):
            user.set_operand(index, new)

    @property
    def users(self) -> list[Operation]:
        return [user for user, _ in self.uses]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} %{self.name or '?'}: {self.type}>"


class OpResult(Value):
    __slots__ = ("op", "index")

    def __init__(self, type: TensorType, op: Operation, index: int, name: str | None = None):
        super().__init__(type, name)
        self.op = op
        self.index = index

    @property
    def owner(self) -> Operation:
        return self.op


class BlockArgument(Value):
    __slots__ = ("block", "index")

    def __init__(self, type: TensorType, block: Block, index: int, name: str | None = None):
        super().__init__(type, name)
        self.block = block
        self.index = index

    @property
    def owner(self) -> Block:
        return self.block


class Operation:
    """One operation. Subclasses (one per op name) declare its meaning.

    Class attributes a subclass sets (see `ir/op.py` for the decorators):
      name          the op's name in IR text and in every rule table
      attrs         attribute name -> expected Python type, for validation
      defaults      attribute defaults
      optional      attributes that may be absent (a later pass adds them): not
                    filled in, not printed, not required by the parser
      num_operands  an int, or None for variadic
      pure          no side effects: folding, CSE and DCE may touch it
      foldable      constant folding may evaluate it (random ops say no)
      differentiable, elementwise, is_terminator
      is_reduction, is_view, is_random, costly, transcendental: the kind facts
                    below, which passes and backends ask instead of naming ops
    """

    name: ClassVar[str] = "<op>"
    attrs: ClassVar[dict[str, Any]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    optional: ClassVar[frozenset[str]] = frozenset()
    num_operands: ClassVar[int | None] = None
    num_regions: ClassVar[int] = 0
    pure: ClassVar[bool] = True
    foldable: ClassVar[bool] = True  # False: constant folding leaves it alone (random ops)
    differentiable: ClassVar[bool] = True
    elementwise: ClassVar[bool] = False
    is_terminator: ClassVar[bool] = False
    decomposes: ClassVar[bool] = False

    # Kind facts: each is declared on the op's class and nowhere else; `registry.ops_where`
    # lists the ops that have one.
    is_reduction: ClassVar[bool] = False
    """Reduces axes of its one operand (reduce_*, argmax, argmin). Fusion builds reduction kernels
    around it (Note [kernel contract] in ops/fusion.py), the memory plan and the CPU reduction
    kernels tell the full-shape values of such a kernel from the reduced ones by it."""
    is_view: ClassVar[bool] = False
    """On a contiguous buffer it only renames the dims (reshape, expand_dims, squeeze,
    ensure_shape): fusion leaves it at the top level and the memory plan gives its result the
    operand's buffer, so no backend emits code for it."""
    is_random: ClassVar[bool] = False
    """Draws from the run's random stream: its operand is the Session's run counter (the front end
    passes it in, Signature.uses_step), and it is never folded (`foldable` is False too)."""
    costly: ClassVar[bool] = False
    """Costs far more per element than an add: a division, a square root or a transcendental. The
    CPU reduction kernel keeps a row of such values on the stack rather than compute it twice."""
    transcendental: ClassVar[bool] = False
    """A transcendental function (exp, log, tanh, sigmoid, pow; costly too), which the CPU computes
    with a polynomial of mathlib.py: a row of them is worth the CPU's row-block schedule."""

    # Where the op runs, as the front end placed it ("/job:worker/task:1"): an instance field set by
    # the Builder, read by compiler/placement.py; None where nobody placed it. Not printed.
    device: str | None = None

    def __init__(
        self,
        operands: Sequence[Value] = (),
        attributes: dict[str, Any] | None = None,
        result_types: Sequence[TensorType] | None = None,
        regions: Sequence[Region] = (),
        loc: str | None = None,
        result_names: Sequence[str | None] | None = None,
    ):
        self.operands: list[Value] = []
        self.attributes: dict[str, Any] = self.normalize_attributes(attributes or {})
        self.regions: list[Region] = []
        self.parent: Block | None = None
        self.loc = loc
        for value in operands:
            self._append_operand(value)
        for region in regions:
            self.add_region(region)
        if result_types is None:
            result_types = self.result_types_from_rule()
        names = list(result_names or [])
        names += [None] * (len(result_types) - len(names))
        self.results = [OpResult(t, self, i, n) for i, (t, n) in enumerate(zip(result_types, names))]

    # -- attributes -----------------------------------------------------

    @classmethod
    def normalize_attributes(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults, reject unknown names, turn lists into tuples."""
        unknown = set(attributes) - set(cls.attrs)
        if unknown:
            raise FlowcTypeError(
                f"unknown attribute {', '.join(sorted(unknown))}; {cls.name} takes {sorted(cls.attrs) or 'none'}",
                op=cls.name,
            )
        merged = {**cls.defaults, **attributes}
        missing = set(cls.attrs) - set(merged) - cls.optional
        if missing:
            raise FlowcTypeError(f"missing attribute {', '.join(sorted(missing))}", op=cls.name)
        return {key: _freeze(value) for key, value in merged.items()}

    def __getattr__(self, key: str) -> Any:
        # Attributes read as fields (`self.axes`), as the op declarations do.
        attributes = self.__dict__.get("attributes")
        if attributes is not None and key in attributes:
            return attributes[key]
        raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")

    # -- the op's meaning: subclasses override ------------------------------

    def infer_type(self, *operand_types: TensorType) -> TensorType | tuple[TensorType, ...]:
        """The type rule: result type(s) from operand types and attributes."""
        raise FlowcTypeError("this op has no type rule; give result types explicitly", op=self.name)

    def reference(self, *operands: Any) -> Any:
        """The numpy meaning of the op: the executable specification."""
        raise NotImplementedError(f"{self.name} is evaluated by the interpreter, not by reference()")

    def verify_extra(self) -> None:
        """Checks beyond the type rule (region signatures, attribute ranges)."""

    @classmethod
    def verify_block(cls, block: Block) -> None:
        """Checks of this kind of op that need the whole block that holds them; run once per block."""

    def evaluate(self, operands: list[Any], interpreter: Any) -> Any:
        """Reference evaluation; region ops override this to run their regions."""
        return self.reference(*operands)

    def result_types_from_rule(self) -> list[TensorType]:
        if self.num_operands is not None and len(self.operands) != self.num_operands:
            raise FlowcTypeError(f"takes {self.num_operands} operands, got {len(self.operands)}", op=self.name)
        types = self.infer_type(*(v.type for v in self.operands))
        return [types] if isinstance(types, TensorType) else list(types)

    # -- structure ---------------------------------------------------------

    @property
    def result(self) -> OpResult:
        if len(self.results) != 1:
            raise ValueError(f"{self.name} has {len(self.results)} results, not one")
        return self.results[0]

    def _append_operand(self, value: Value) -> None:
        if not isinstance(value, Value):
            raise FlowcTypeError(f"operand {len(self.operands)} is {type(value).__name__}, not an IR value", op=self.name)
        value.uses.append((self, len(self.operands)))
        self.operands.append(value)

    def set_operand(self, index: int, value: Value) -> None:
        old = self.operands[index]
        old.uses.remove((self, index))
        value.uses.append((self, index))
        self.operands[index] = value

    def drop_operand_uses(self) -> None:
        for index, value in enumerate(self.operands):
            value.uses.remove((self, index))
        self.operands = []

    def add_region(self, region: Region) -> Region:
        region.parent = self
        self.regions.append(region)
        return region

    def erase(self) -> None:
        """Remove this op (and everything in its regions) from its block."""
        for result in self.results:
            if result.uses:
                raise ValueError(f"cannot erase {self.name}: result {result.index} still has uses")
        for nested in list(self.walk())[::-1]:
            nested.drop_operand_uses()
        if self.parent is not None:
            self.parent.ops.remove(self)
            self.parent = None

    def walk(self) -> Iterator[Operation]:
        """This op and every op nested in its regions, in pre-order."""
        yield self
        for region in self.regions:
            yield from region.walk()

    @property
    def parent_op(self) -> Operation | None:
        region = self.parent.parent if self.parent else None
        owner = region.parent if region else None
        return owner if isinstance(owner, Operation) else None

    @property
    def display_name(self) -> str:
        """How errors name this op: the IR name and, when known, its value name."""
        hint = self.results[0].name if self.results and self.results[0].name else None
        return f"{self.name} '{hint}'" if hint else self.name

    def __repr__(self) -> str:
        return f"<{self.name} {', '.join(str(r.type) for r in self.results)}>"


class Block:
    """A list of ops with typed arguments; regions here have one block."""

    def __init__(self, arg_types: Sequence[TensorType] = (), arg_names: Sequence[str | None] | None = None):
        self.args: list[BlockArgument] = []
        self.ops: list[Operation] = []
        self.parent: Region | None = None
        names = list(arg_names or [None] * len(arg_types))
        for arg_type, name in zip(arg_types, names):
            self.add_arg(arg_type, name)

    def add_arg(self, type: TensorType, name: str | None = None) -> BlockArgument:
        arg = BlockArgument(type, self, len(self.args), name)
        self.args.append(arg)
        return arg

    @property
    def arg_types(self) -> list[TensorType]:
        return [a.type for a in self.args]

    def append(self, op: Operation) -> Operation:
        return self.insert(len(self.ops), op)

    def insert(self, index: int, op: Operation) -> Operation:
        op.parent = self
        self.ops.insert(index, op)
        return op

    @property
    def terminator(self) -> Operation | None:
        return self.ops[-1] if self.ops and self.ops[-1].is_terminator else None

    def walk(self) -> Iterator[Operation]:
        for op in list(self.ops):
            yield from op.walk()


class Region:
    """The body of a region op or function: a list of blocks (one, here)."""

    def __init__(self, blocks: Sequence[Block] = ()):
        self.blocks: list[Block] = []
        self.parent: Operation | Function | None = None
        for block in blocks:
            self.add_block(block)

    def add_block(self, block: Block) -> Block:
        block.parent = self
        self.blocks.append(block)
        return block

    @property
    def entry(self) -> Block:
        return self.blocks[0]

    def walk(self) -> Iterator[Operation]:
        for block in self.blocks:
            yield from block.walk()


class Function:
    """A named function: a body region whose entry block arguments are its parameters."""

    def __init__(
        self,
        name: str,
        arg_types: Sequence[TensorType],
        result_types: Sequence[TensorType],
        arg_names: Sequence[str | None] | None = None,
        attributes: dict[str, Any] | None = None,
    ):
        self.name = name
        self.result_types = list(result_types)
        self.attributes: dict[str, Any] = {k: _freeze(v) for k, v in (attributes or {}).items()}
        # What an analysis pass found that is not IR (the memory plan, by the pass's name): neither
        # printed nor compared; a backend reads it after the pass.
        self.analyses: dict[str, Any] = {}
        self.body = Region([Block(arg_types, arg_names)])
        self.body.parent = self
        self.parent: Module | None = None

    @property
    def args(self) -> list[BlockArgument]:
        return self.body.entry.args

    @property
    def arg_types(self) -> list[TensorType]:
        return self.body.entry.arg_types

    @property
    def entry(self) -> Block:
        return self.body.entry

    def walk(self) -> Iterator[Operation]:
        return self.body.walk()

    def __repr__(self) -> str:
        return f"<func @{self.name}>"


class Module:
    """An ordered collection of functions, looked up by name."""

    def __init__(self, functions: Sequence[Function] = ()):
        self.functions: dict[str, Function] = {}
        for function in functions:
            self.add(function)

    def add(self, function: Function) -> Function:
        if function.name in self.functions:
            raise ValueError(f"function @{function.name} is defined twice")
        function.parent = self
        self.functions[function.name] = function
        return function

    def __getitem__(self, name: str) -> Function:
        return self.functions[name]

    def __iter__(self) -> Iterator[Function]:
        return iter(self.functions.values())

    def walk(self) -> Iterator[Operation]:
        for function in self:
            yield from function.walk()

    def __str__(self) -> str:
        from .printer import print_module

        return print_module(self)

    def __eq__(self, other: object) -> bool:
        # Structural equality: the same text (names, attrs, types, order).
        return isinstance(other, Module) and str(self) == str(other)

    __hash__ = None  # type: ignore[assignment]


def _freeze(value: Any) -> Any:
    """Attribute values are immutable: lists become tuples, recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value
