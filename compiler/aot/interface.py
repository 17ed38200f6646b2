"""What an exported library's C interface is made of: its inputs, outputs, variables and the tables
its generated C code reads (c_source.py writes them out, build.py fills them in)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from flowc.ir.errors import FlowcError

from .dims import DimsPlan

# bool: one byte, 0 or 1
C_TYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t", "bool": "uint8_t",
           "float16": "uint16_t"}  # float16: IEEE binary16 bits (C has no portable half type; _Float16 is C23)
C_TYPES |= {"int8": "int8_t", "int16": "int16_t", "uint8": "uint8_t", "uint16": "uint16_t"}
ERROR_CODES = (  # (suffix, value, meaning): the header's NAME_ERROR_* defines
    ("DIMS", 1, "an input dim does not fit the function (a static dim, or two dims that must be equal)"),
    ("INDEX", 2, "an index out of range at run time (a gather index, an integer slice)"),
    ("MEMORY", 3, "the scratch memory for these dims could not be allocated"),
    ("ARGUMENT", 4, "a NULL context, pointer array or buffer where one is needed"),
)


@dataclass(frozen=True)
class Tensor:
    """One input, output or variable as the header documents it."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]  # None: known at run time (-1 in the header)

    @property
    def c_type(self) -> str:
        return C_TYPES[self.dtype.name]

    @property
    def nbytes(self) -> int:
        """The size of a tensor of static shape."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


DimCode = int  # a dim as the C tables encode it: a static size >= 0, or -(slot + 1) (DimsPlan.codes)


@dataclass
class Interface:
    """Everything the generated C needs. Arguments of the compiled function come from `arg_sources`:
    ("input", i), ("variable", k), ("data", byte offset into the embedded data), ("step",);
    its results go to `result_sinks`: ("output", i), ("variable", k) (written in place: donated), or
    ("scratch", k): a buffer of the context, copied into variable k after the run (k = -1: dropped)."""

    name: str
    inputs: list[Tensor]
    outputs: list[Tensor]
    variables: list[Tensor]
    arg_sources: list[tuple]
    result_sinks: list[tuple]
    dims: DimsPlan
    slot_count: int
    error_slot: int  # where the entry point writes a kernel's error (Program.error_slot), two slots
    temps: list[tuple[int, list[DimCode]]]  # per temp: its itemsize and dims
    lifetimes: list[tuple[int, int]]
    output_dims: list[list[DimCode]]
    kernel_errors: list[str]  # per kernel: what an index error there is about
    discard_bytes: list[int]  # per ("scratch", k) result, in order: its size (a static shape)
    variable_offsets: list[int] = field(default_factory=list)  # byte offset of each variable's initial value
    data: bytes = b""  # the embedded data: variables' initial values (state) or values (constants)
    step: int = 0  # the run counter's first value (random ops), if the function takes one
    source: str = ""  # what it was exported from, for the header's first comment


def check_name(name: str) -> str:
    """NAME becomes C identifiers and file names: a C identifier it must be."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise FlowcError(f"cannot export as {name!r}: the name in DIR/NAME must be a C identifier "
                         "(letters, digits, _; not starting with a digit), since it prefixes the C API's names")
    return name
