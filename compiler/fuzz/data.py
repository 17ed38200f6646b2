"""The numbers fed to a case: the same for both targets, and the same on every rerun.

Each array is drawn from its own generator, seeded by the case's seed, the run
and the input's name, so deleting another input (the minimizer does) leaves
it unchanged. Floats are mostly on a grid of quarters, so ties and exact
equalities happen; with `specials`, some are 0, -0.0, inf, -inf or nan.
"""

from __future__ import annotations

import zlib

import numpy as np

from . import dims
from .spec import Case, Input, Value

SPECIAL_FLOATS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])


def generator(case: Case, run: int, name: str) -> np.random.Generator:
    return np.random.default_rng([case.seed & 0xFFFFFFFF, run, zlib.crc32(name.encode())])


def concrete_shape(value: Value, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(dims.evaluate(d, sizes) for d in value.shape)


def input_array(case: Case, run: int, item: Input) -> np.ndarray:
    value = item.value
    sizes = case.sizes[run]
    shape = concrete_shape(value, sizes)
    rng = generator(case, run, value.name)
    if item.indexes is not None:
        bound = dims.evaluate(item.indexes, sizes)
        array = rng.integers(0, max(bound, 1), size=shape)
        if array.size and rng.random() < 0.03:  # out of range: both targets must raise
            array.flat[rng.integers(array.size)] = rng.choice([bound, -1])
        return array.astype(value.dtype)
    if value.dtype == "bool":
        return rng.random(shape) < 0.5
    if value.dtype in ("int32", "int64"):
        array = rng.integers(-5, 6, size=shape).astype(value.dtype)
        if case.specials and array.size:
            info = np.iinfo(value.dtype)
            extreme = rng.random(shape) < 0.03
            array[extreme] = rng.choice([info.min, info.max, info.min + 1], size=int(extreme.sum()))
        return array
    return float_array(rng, shape, value.dtype, case.specials)


def float_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, specials: bool,
                scale: float = 4.0) -> np.ndarray:
    grid = rng.integers(-4 * scale, 4 * scale + 1, size=shape) / 4  # quarters: exact in any float
    spread = rng.normal(0, scale / 2, size=shape)
    array = np.where(rng.random(shape) < 0.5, grid, spread).astype(dtype)
    if specials and array.size:
        special = rng.random(shape) < 0.04
        array[special] = rng.choice(SPECIAL_FLOATS, size=int(special.sum()))
    return array


def weight_array(case: Case, run: int, name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The weights of the gradient's loss: ordinary numbers, no specials."""
    return float_array(generator(case, run, name), shape, dtype, specials=False, scale=2.0)
