"""Checking what the user feeds, before anything runs on it.

Conversions that lose nothing a user means are made (float64 data into a
float32 placeholder, int64 labels that fit into int32, Python lists); the
rest is a FeedError naming the placeholder, what it expects, what came, and
where the placeholder was created. Arrays leave here C-contiguous, aligned
and in native byte order: what native code may assume.

Note [feeds past a float's range]
A float fed into a narrower float placeholder is rounded to it, as numpy's astype rounds; but a
finite value past the placeholder's range would become inf (70000 into float16, whose largest is
65504), and numpy's astype says so only with a warning that is easy to miss. TensorFlow 1 has no
such conversion at all (a feed must already be of the placeholder's dtype), so a user who relies
on it expects the values they fed: that one is a FeedError naming the placeholder and the first
such value. An inf or NaN fed stays as it is; an int64 too big for float16 is refused the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowc.ir import TensorType
from flowc.ir.errors import FeedError
from flowc.ir.types import DType, format_shape

from .graph import Tensor


def check_feed(tensor: Tensor, value: Any, want: TensorType | None = None) -> np.ndarray:
    """`value` as an array of the tensor's dtype and a shape its type accepts (or `want`: the type a run
    gives a placeholder of unknown rank, Note [placeholders of unknown rank] in unknown_rank.py)."""
    want = want or tensor.type
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise _error(tensor, f"cannot make an array of the value fed: {error}") from None
    if not _convertible(array, want.dtype):
        raise _error(tensor, f"expects {want.dtype.name}, got {_describe(value, array)}"
                             f"{_out_of_range(array, want.dtype)}")
    if not want.accepts(array.shape):
        if tensor.has_unknown_rank:  # Note [placeholders of unknown rank] in unknown_rank.py
            raise _error(tensor, f"was made without a shape, and this program was built for rank {want.rank}; got "
                                 f"{_describe(value, array)}")
        raise _error(tensor, f"expects shape {format_shape(want.shape)}, got {format_shape(array.shape)} "
                             f"({_describe(value, array)})")
    # Not np.ascontiguousarray: it makes a 0-d array 1-d, which a scalar placeholder rejects.
    with np.errstate(over="ignore"):  # checked just below: Note [feeds past a float's range]
        converted = np.require(array, dtype=want.dtype.np, requirements=["C", "A"])
    if want.dtype.is_float and array.dtype != converted.dtype:
        _check_range(tensor, value, array, converted)
    return converted


def _check_range(tensor: Tensor, value: Any, array: np.ndarray, converted: np.ndarray) -> None:
    """Note [feeds past a float's range]: a finite value fed that became inf is a FeedError."""
    if array.dtype.kind not in "fiu":
        return
    overflowed = np.isinf(converted) & np.isfinite(array)
    if not overflowed.any():
        return
    where = np.unravel_index(int(np.argmax(overflowed)), array.shape)
    largest = np.finfo(converted.dtype).max
    dtype = converted.dtype.name
    raise _error(tensor, f"expects {dtype}, got {_describe(value, array)} whose element {[int(i) for i in where]} = "
                         f"{array[where].item()!r} is past {dtype}'s range (largest {largest}) and would become inf; "
                         f"scale the data, or make the placeholder float32")


def is_device_array(value: Any) -> bool:
    """Whether `value` is an array some other library holds (a torch tensor, a CuPy or JAX array):
    not numpy, and exchangeable by DLPack."""
    return not isinstance(value, np.ndarray) and hasattr(value, "__dlpack__") and hasattr(value, "shape")


def check_device_feed(tensor: Tensor, value: Any, want: TensorType | None = None) -> Any:
    """`value`, an array on a device (is_device_array), if it has the tensor's dtype and a shape its type
    (or `want`, as check_feed) accepts: it is not converted (that would copy it to the host and back), so
    its dtype must match."""
    want = want or tensor.type
    dtype = str(value.dtype).removeprefix("torch.")
    shape = tuple(int(d) for d in value.shape)
    if dtype != want.dtype.name:
        raise _error(tensor, f"expects {want.dtype.name}, got a {dtype} {type(value).__name__} of shape "
                             f"{format_shape(shape)} (an array on a device is not converted: cast it there)")
    if not want.accepts(shape):
        raise _error(tensor, f"expects shape {format_shape(want.shape)}, got {format_shape(shape)} "
                             f"(a {dtype} {type(value).__name__})")
    return value


def _convertible(array: np.ndarray, dtype: DType) -> bool:
    kind = array.dtype.kind
    if array.dtype == dtype.np:
        return True
    if dtype.is_float:
        return kind in "fiub"
    if dtype.is_int:
        if kind not in "iub":
            return False
        info = np.iinfo(dtype.np)
        return array.size == 0 or bool(info.min <= array.min() and array.max() <= info.max)
    return False  # bool takes only bool


def _out_of_range(array: np.ndarray, dtype: DType) -> str:
    """What an integer feed holds that `dtype` cannot (300 for a uint8), or nothing: never wrapped quietly."""
    if not dtype.is_int or array.dtype.kind not in "iu" or array.size == 0:
        return ""
    info, low, high = np.iinfo(dtype.np), array.min(), array.max()
    held = f"{low}" if low == high else f"{low} to {high}"
    return f" holding {held}, where {dtype.name} holds {info.min} to {info.max}"


def _describe(value: Any, array: np.ndarray) -> str:
    what = "array" if isinstance(value, np.ndarray) else type(value).__name__
    return f"a {array.dtype.name} {what} of shape {format_shape(array.shape)}"


def _error(tensor: Tensor, message: str) -> FeedError:
    name = tensor.op.name if tensor.value_index == 0 else tensor.name
    return FeedError(message, op=f"{tensor.op.type} '{name}'", where=tensor.op.loc)
