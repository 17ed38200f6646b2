"""flowc.ir: types, values, operations, regions, builder, verifier, text form.

Imports nothing else of flowc: every other layer depends on this one.
"""

from . import op as registry
from . import ops as _ops  # noqa: F401  (registers every op)
from .builder import Builder
from .core import Block, BlockArgument, Function, Module, Operation, OpResult, Region, SymbolRef, Value
from .errors import FlowcError, ParseError, VerifyError
from .interpreter import Interpreter, evaluate
from .op import Op
from .parser import parse_function, parse_module
from .printer import print_function, print_module
from .types import (
    DTYPES,
    FLOATS,
    INTS,
    NUMERIC,
    DType,
    TensorType,
    as_dtype,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
)
from .verifier import verify

__all__ = [
    "Block", "BlockArgument", "Builder", "DTYPES", "DType", "FLOATS", "FlowcError", "Function", "INTS",
    "Interpreter", "Module", "NUMERIC", "Op", "OpResult", "Operation", "ParseError", "Region", "TensorType",
    "SymbolRef", "Value", "VerifyError", "as_dtype", "bool_", "evaluate", "float16", "float32", "float64", "int32", "int64",
    "parse_function", "parse_module", "print_function", "print_module", "registry", "verify",
    "int8", "int16", "uint8", "uint16",
]
