"""Element types and tensor types.

A tensor type is a dtype and a shape whose dims are ints or `None` for a
dim only known at run time. Text form: `f32[?,64]`, scalars `f32[]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class DType:
    """An element type: `name` as in numpy, `short` as printed in IR text."""

    name: str
    short: str
    kind: str  # "float" | "int" | "bool": what codegen tables key on

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.name)

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_int(self) -> bool:
        return self.kind == "int"

    @property
    def is_unsigned(self) -> bool:
        """uint8 and uint16: compared, divided, widened and converted to float as unsigned numbers."""
        return self.np.kind == "u"

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    # TF1's names for the same facts (tf.uint8.max, dtype.is_floating, dtype.as_numpy_dtype).
    @property
    def is_integer(self) -> bool:
        return self.is_int

    @property
    def is_floating(self) -> bool:
        return self.is_float

    @property
    def as_numpy_dtype(self) -> type:
        return self.np.type

    @property
    def min(self) -> int | float | bool:
        """The least value of the dtype: 0 for uint8, -128 for int8, the most negative finite float."""
        if self.is_bool:
            return False
        return int(np.iinfo(self.np).min) if self.is_int else float(np.finfo(self.np).min)

    @property
    def max(self) -> int | float | bool:
        if self.is_bool:
            return True
        return int(np.iinfo(self.np).max) if self.is_int else float(np.finfo(self.np).max)

    def __repr__(self) -> str:
        return f"fc.{self.name}"

    def __str__(self) -> str:
        return self.name


# float16 (IEEE half): the reference target computes in numpy float16, which rounds each op's
# result to half (numpy widens to float32 for + - * / and rounds back, as TF's CPU kernels do
# for most ops); reductions and matmul accumulate wider in the native targets (codegen's notes).
float16 = DType("float16", "f16", "float")
float32 = DType("float32", "f32", "float")
float64 = DType("float64", "f64", "float")
int32 = DType("int32", "i32", "int")
int64 = DType("int64", "i64", "int")
bool_ = DType("bool", "bool", "bool")
# The small integers of TF1 (images come as uint8): arithmetic wraps modulo 2**bits as numpy's and
# TF's; the unsigned two compare, divide and convert as unsigned numbers (DType.is_unsigned).
int8 = DType("int8", "i8", "int")
int16 = DType("int16", "i16", "int")
uint8 = DType("uint8", "u8", "int")
uint16 = DType("uint16", "u16", "int")

DTYPES: tuple[DType, ...] = (float16, float32, float64, int8, int16, int32, int64, uint8, uint16, bool_)
FLOATS: tuple[DType, ...] = (float16, float32, float64)
INTS: tuple[DType, ...] = (int8, int16, int32, int64, uint8, uint16)
INT_NAMES = ", ".join(d.name for d in INTS)  # for messages: what an index may be
SMALL_INTS: tuple[DType, ...] = (int8, int16, uint8, uint16)
INDEX_DTYPES: tuple[DType, ...] = (int32, int64)  # what sizes and argmax's positions come in (TF1's out_type)
NUMERIC: tuple[DType, ...] = FLOATS + INTS
# TF1's names too: "float" is float32 and "double" float64 in TensorFlow (numpy reads "float" as float64).
_BY_NAME = {d.name: d for d in DTYPES} | {d.short: d for d in DTYPES} | {"float": float32, "double": float64,
                                                                      "half": float16}


def as_dtype(value: object) -> DType:
    """A DType from a DType, a numpy dtype or type, or a name ('float32', 'f32')."""
    if isinstance(value, DType):
        return value
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    try:
        name = np.dtype(value).name  # type: ignore[call-overload]
    except TypeError:
        name = None
    if name in _BY_NAME:
        return _BY_NAME[name]
    from .errors import FlowcTypeError

    raise FlowcTypeError(f"unsupported dtype {value!r}; flowc has {', '.join(d.name for d in DTYPES)}")


Dim = int | None
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class TensorType:
    """A dtype and a shape; `None` dims are symbolic (known at run time)."""

    dtype: DType
    shape: Shape

    def __post_init__(self) -> None:
        # A frontend's unknown dim (TF1's Dimension(None), `.value` None) is None here too.
        object.__setattr__(self, "shape", tuple(None if d is None or getattr(d, "value", 0) is None else int(d)
                                                for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(d is not None for d in self.shape)

    @property
    def size(self) -> int | None:
        """Number of elements, or None when a dim is unknown."""
        if not self.is_static:
            return None
        return int(np.prod(self.shape, dtype=np.int64))

    def with_shape(self, shape: Iterable[Dim]) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether a concrete shape fits this type (None dims match anything)."""
        return len(shape) == self.rank and all(d is None or d == s for d, s in zip(self.shape, shape))

    def __str__(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.short}[{dims}]"

    __repr__ = __str__


def format_shape(shape: Iterable[Dim]) -> str:
    """A shape as users write it: [None, 64]."""
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"
