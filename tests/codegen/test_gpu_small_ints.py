"""int8, int16, uint8 and uint16 on the gpu target: graphs run in Triton's interpreter against the
reference, exactly, and every kernel built to PTX for sm_90. Triton types these as tl.int8 .. tl.uint16,
so compares, division and widening read the sign from the type; flowc chooses unsigned floor division
(fc_uint_divmod), the limits that max and min start from, and float-to-small-int casts through int32
(Note [float to small integers] in codegen/llvm/elementwise.py)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402

SMALL = ["int8", "int16", "uint8", "uint16"]


def full_range(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    values = rng.integers(int(info.min), int(info.max) + 1, shape, dtype=np.int64)
    values.reshape(-1)[:3] = [info.min, info.max, 0]
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", SMALL)
def test_elementwise_wraps_and_reads_the_sign(rng, dtype) -> None:
    kind = getattr(fc, dtype)

    def build():
        x = fc.placeholder(kind, [None, None], name="x")
        y = fc.placeholder(kind, [None], name="y")
        return [x + y, x - y, x * y, -x, fc.abs(x), fc.sign(x), fc.maximum(x, y), fc.minimum(x, y), x < y, x >= y,
                fc.equal(x, y), x // y, x % y, fc.cast(x, fc.float32), fc.cast(x, fc.int32), fc.cast(x, fc.uint8)]

    y = full_range(rng, (17,), dtype)
    y[3] = 0  # x // 0 and x % 0 are 0
    assert_gpu_matches(build, {"x": full_range(rng, (5, 17), dtype), "y": y}, rtol=0.0)


@pytest.mark.parametrize("dtype", SMALL)
def test_reductions_keep_the_dtype(rng, dtype) -> None:
    kind = getattr(fc, dtype)

    def build():
        x = fc.placeholder(kind, [None, None], name="x")
        return [fc.reduce_sum(x, axis=1), fc.reduce_sum(x, axis=0), fc.reduce_max(x, axis=1), fc.reduce_min(x, axis=0),
                fc.argmax(x, axis=1), fc.argmin(x, axis=0), fc.reduce_prod(x, axis=1)]

    assert_gpu_matches(build, {"x": full_range(rng, (6, 45), dtype)}, rtol=0.0)


def test_casts_of_floats_to_small_ints(rng) -> None:
    """In int32's range the gpu equals numpy on x86 (300.0 -> uint8 44, -1.0 -> 255); NaN and values past
    int32 are left out: a GPU's conversion saturates there, where numpy's gives INT_MIN's low bits."""
    values = np.array([0.0, 0.5, -0.5, 1.9, -1.9, 127.9, 128.0, 200.0, 255.9, 256.0, 300.0, -1.0, -129.0, 65535.0,
                       70000.0, -32769.0, 1e9], np.float32)

    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        return [fc.cast(x, fc.uint8), fc.cast(x, fc.int8), fc.cast(x, fc.int16), fc.cast(x, fc.uint16)]

    uint8 = assert_gpu_matches(build, {"x": values}, rtol=0.0)[0]
    np.testing.assert_array_equal(uint8[[9, 10, 11]], [0, 44, 255])


def test_uint8_images_and_indices(rng) -> None:
    def build():
        images = fc.placeholder(fc.uint8, [None, 4, 6, 3], name="images")
        indices = fc.placeholder(fc.uint8, [None], name="indices")
        x = fc.cast(images, fc.float32) / 255.0
        table = fc.constant(rng.standard_normal((256, 3)).astype(np.float32))
        return [x, fc.reduce_max(images, axis=[1, 2]), fc.gather(table, indices), fc.one_hot(indices, 256)]

    feeds = {"images": rng.integers(0, 256, (3, 4, 6, 3)).astype(np.uint8),
             "indices": np.array([255, 0, 128, 200, 7], np.uint8)}
    assert_gpu_matches(build, feeds, rtol=0.0)
