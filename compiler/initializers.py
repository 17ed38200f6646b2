"""TensorFlow 1's initializers: objects called as `init(shape, dtype=None, partition_info=None)`.

Each returns a tensor of the initial value (random ones are graph ops, drawn again whenever
the variable's initializer runs), so `fc.get_variable(name, shape, initializer=init)` and
`fc.Variable(init(shape))` both work, as in TensorFlow.

Note [orthogonal at build time]: an orthogonal matrix needs a QR decomposition, which is no
graph op. `orthogonal_initializer` draws its normal matrix with numpy, seeded by the same
rule as the random ops (graph seed and op seed, random_ops.op_seed), decomposes it with
numpy and puts the result in the graph as a constant. So, unlike TensorFlow's, running the
variable's initializer again gives the same matrix rather than a new draw.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from flowc.ir.errors import GraphError
from flowc.ir.types import DType, as_dtype, float32

from .graph import Tensor, get_default_graph
from .math_ops import constant
from .random_ops import op_seed, random_normal, random_uniform, truncated_normal
from .sources import user_location

# stddev of a standard normal truncated to [-2, 2]: truncated_normal draws are divided by it
# so the variance is the one asked for
TRUNCATED_STDDEV = 0.87962566103423978


class Initializer(ABC):
    """The base: `__call__(shape, dtype=None, partition_info=None)` gives the initial value."""

    def __init__(self, dtype: DType | str = float32):
        self.dtype = as_dtype(dtype)

    def __call__(self, shape: Sequence[int], dtype: DType | str | None = None, partition_info: Any = None) -> Tensor:
        return self._value(tuple(int(d) for d in shape), as_dtype(dtype) if dtype is not None else self.dtype)

    @abstractmethod
    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        """The initial value of `shape` and `dtype`."""


class Zeros(Initializer):
    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        return constant(np.zeros(shape, dtype=dtype.name))


class Ones(Initializer):
    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        return constant(np.ones(shape, dtype=dtype.name))


class Constant(Initializer):
    """`value` (a scalar fills the shape; a list of fewer elements repeats its last, as tf.constant)."""

    def __init__(self, value: Any = 0, dtype: DType | str = float32, verify_shape: bool = False):
        super().__init__(dtype)
        self.value = np.asarray(value)
        self.verify_shape = verify_shape

    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        value = self.value.astype(dtype.name)
        count = int(np.prod(shape))
        if self.verify_shape and value.shape != shape:
            raise GraphError(f"expected a value of shape {list(shape)}, got {list(value.shape)}",
                             op="constant_initializer", where=user_location())
        flat = value.reshape(-1)
        if flat.size > count:
            raise GraphError(f"too many elements provided: needed at most {count}, got {flat.size}",
                             op="constant_initializer", where=user_location())
        if flat.size == 0:
            raise GraphError("the value has no elements", op="constant_initializer", where=user_location())
        filled = np.concatenate([flat, np.repeat(flat[-1:], count - flat.size)])
        return constant(filled.reshape(shape))


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None, dtype: DType | str = float32):
        super().__init__(dtype)
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        return random_normal(shape, self.mean, self.stddev, dtype=dtype, seed=self.seed)


class TruncatedNormal(RandomNormal):
    """Normal values redrawn (here: mapped, Note [counter-based truncated normal]) within 2 stddev."""

    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        return truncated_normal(shape, self.mean, self.stddev, dtype=dtype, seed=self.seed)


class RandomUniform(Initializer):
    """Uniform in [minval, maxval); maxval None is 1 (floats)."""

    def __init__(self, minval: float = 0, maxval: float | None = None, seed: int | None = None,
                 dtype: DType | str = float32):
        super().__init__(dtype)
        self.minval, self.maxval, self.seed = minval, 1.0 if maxval is None else maxval, seed

    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        return random_uniform(shape, self.minval, self.maxval, dtype=dtype, seed=self.seed)


def fans(shape: Sequence[int]) -> tuple[float, float]:
    """(fan_in, fan_out) as TensorFlow counts them: a conv kernel [kh, kw, in, out] has kh*kw*in inputs."""
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = float(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(Initializer):
    """Values of variance scale / n, n the fan_in, fan_out or their mean ("fan_avg").

    distribution "truncated_normal" (or its old name "normal"), "untruncated_normal" or "uniform"
    (within +-sqrt(3 scale / n)).
    """

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("normal", "truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None, dtype: DType | str = float32):
        super().__init__(dtype)
        op = "variance_scaling_initializer"
        if scale <= 0.0:
            raise GraphError(f"scale must be a positive float, got {scale}", op=op, where=user_location())
        if mode not in self.MODES:
            raise GraphError(f"invalid mode {mode!r}: expected one of {', '.join(self.MODES)}", op=op,
                             where=user_location())
        if distribution.lower() not in self.DISTRIBUTIONS:
            raise GraphError(f"invalid distribution {distribution!r}: expected one of "
                             f"{', '.join(self.DISTRIBUTIONS)}", op=op, where=user_location())
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution.lower(), seed

    def stddev_or_limit(self, shape: Sequence[int]) -> float:
        fan_in, fan_out = fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution in ("normal", "truncated_normal"):
            return math.sqrt(variance) / TRUNCATED_STDDEV
        if self.distribution == "untruncated_normal":
            return math.sqrt(variance)
        return math.sqrt(3.0 * variance)

    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        spread = self.stddev_or_limit(shape)
        if self.distribution in ("normal", "truncated_normal"):
            return truncated_normal(shape, 0.0, spread, dtype=dtype, seed=self.seed)
        if self.distribution == "untruncated_normal":
            return random_normal(shape, 0.0, spread, dtype=dtype, seed=self.seed)
        return random_uniform(shape, -spread, spread, dtype=dtype, seed=self.seed)


def glorot_uniform_initializer(seed: int | None = None, dtype: DType | str = float32) -> VarianceScaling:
    """Uniform within +-sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio)."""
    return VarianceScaling(1.0, "fan_avg", "uniform", seed, dtype)


def glorot_normal_initializer(seed: int | None = None, dtype: DType | str = float32) -> VarianceScaling:
    """Truncated normal of stddev sqrt(2 / (fan_in + fan_out))."""
    return VarianceScaling(1.0, "fan_avg", "truncated_normal", seed, dtype)


class Orthogonal(Initializer):
    """gain times an orthogonal matrix (reshaped to `shape`; rows = product of all dims but the last).

    Drawn with numpy when the variable is made (Note [orthogonal at build time]).
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None, dtype: DType | str = float32):
        super().__init__(dtype)
        self.gain, self.seed = gain, seed

    def _value(self, shape: tuple[int, ...], dtype: DType) -> Tensor:
        if len(shape) < 2:
            raise GraphError(f"the tensor to initialize must be at least two-dimensional, got shape {list(shape)}",
                             op="orthogonal_initializer", where=user_location())
        rows, columns = int(np.prod(shape[:-1])), shape[-1]
        generator = np.random.default_rng(op_seed(get_default_graph(), self.seed))
        matrix = generator.standard_normal((max(rows, columns), min(rows, columns)))
        q, r = np.linalg.qr(matrix)
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # the sign fix makes q uniformly distributed
        if rows < columns:
            q = q.T
        return constant((self.gain * q).reshape(shape).astype(dtype.name))


# TensorFlow 1's names
zeros_initializer = Zeros
ones_initializer = Ones
constant_initializer = Constant
random_normal_initializer = RandomNormal
truncated_normal_initializer = TruncatedNormal
random_uniform_initializer = RandomUniform
variance_scaling_initializer = VarianceScaling
orthogonal_initializer = Orthogonal

__all__ = ["constant_initializer", "glorot_normal_initializer", "glorot_uniform_initializer", "ones_initializer",
           "orthogonal_initializer", "random_normal_initializer", "random_uniform_initializer",
           "truncated_normal_initializer", "variance_scaling_initializer", "zeros_initializer"]
