"""Seeded random tensors: random_uniform, random_normal.

Each is a pure function of its `seed` attribute, its operand `step` (the run
counter the Session passes in, so every run draws new numbers) and the element
index: Note [random streams] in philox.py defines the bits exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import FlowcTypeError
from ..op import Op
from ..types import DTYPES, DType, TensorType, as_dtype, float32, float64, int64
from . import philox

STEP = TensorType(int64, ())
# float16 is left out: philox draws float32 or float64 precision, and the native targets implement those two.
RANDOM_FLOATS = (float32, float64)


class RandomOp(Op):
    """A tensor of static `shape` and float `dtype` drawn from the stream of (seed, step)."""

    num_operands = 1
    dtypes: ClassVar[tuple[DType, ...]] = (int64,)
    differentiable = False  # no operand carries a gradient: step is a counter
    foldable = False  # a fold would freeze one run's numbers into the module
    is_random = True
    float_attributes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def normalize_attributes(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        attributes = super().normalize_attributes(attributes)
        floats = {key: float(attributes[key]) for key in cls.float_attributes}
        return {**attributes, **floats, "dtype": as_dtype(attributes["dtype"]), "seed": int(attributes["seed"])}

    def infer_type(self, step: TensorType) -> TensorType:
        if step != STEP:
            raise FlowcTypeError(f"step must be {STEP}, got {step}", op=self.name)
        if self.dtype not in RANDOM_FLOATS:
            raise FlowcTypeError(f"dtype must be float32 or float64, got {self.dtype.name}", op=self.name)
        if any(d < 0 for d in self.shape):
            raise FlowcTypeError(f"shape {list(self.shape)} has a negative dim", op=self.name)
        return TensorType(self.dtype, self.shape)

    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


class RandomUniform(RandomOp):
    """Uniform numbers in [minval, maxval): minval + (maxval - minval) * u, computed in
    float64 and rounded to `dtype` (a float32 result may round up to maxval)."""

    name = "random_uniform"
    attrs = {"shape": tuple[int, ...], "dtype": DType, "seed": int, "minval": float, "maxval": float}
    defaults = {"dtype": float32, "minval": 0.0, "maxval": 1.0}
    float_attributes = ("minval", "maxval")

    def reference(self, step: np.ndarray) -> np.ndarray:
        u = philox.uniform(self.seed, int(step), self.size(), self.dtype)
        values = self.minval + (self.maxval - self.minval) * u
        return values.astype(self.dtype.np).reshape(self.shape)


class RandomNormal(RandomOp):
    """Normal numbers: mean + stddev * z for standard normal z, computed in float64
    and rounded to `dtype`."""

    name = "random_normal"
    attrs = {"shape": tuple[int, ...], "dtype": DType, "seed": int, "mean": float, "stddev": float}
    defaults = {"dtype": float32, "mean": 0.0, "stddev": 1.0}
    float_attributes = ("mean", "stddev")

    def reference(self, step: np.ndarray) -> np.ndarray:
        z = philox.normal(self.seed, int(step), self.size(), self.dtype)
        return (self.mean + self.stddev * z).astype(self.dtype.np).reshape(self.shape)


class RandomUniformLike(RandomUniform):
    """random_uniform in the shape of its operand `like` (whose values it never reads), so the
    shape may be known only at run time (dropout on a [None, n] batch). Element i is element i
    of random_uniform's stream of the same (seed, step): the same numbers for the same size."""

    name = "random_uniform_like"
    attrs = {"dtype": DType, "seed": int, "minval": float, "maxval": float}
    num_operands = 2
    dtypes: ClassVar[tuple[DType, ...]] = DTYPES  # `like` may be of any dtype

    def infer_type(self, step: TensorType, like: TensorType) -> TensorType:  # type: ignore[override]
        if step != STEP:
            raise FlowcTypeError(f"step must be {STEP}, got {step}", op=self.name)
        if self.dtype not in RANDOM_FLOATS:
            raise FlowcTypeError(f"dtype must be float32 or float64, got {self.dtype.name}", op=self.name)
        return TensorType(self.dtype, like.shape)

    def reference(self, step: np.ndarray, like: np.ndarray) -> np.ndarray:  # type: ignore[override]
        u = philox.uniform(self.seed, int(step), int(like.size), self.dtype)
        return (self.minval + (self.maxval - self.minval) * u).astype(self.dtype.np).reshape(like.shape)
