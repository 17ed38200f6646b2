"""int8, int16, uint8 and uint16 on the cpu target against the reference target (numpy, TF1's semantics):
arithmetic that wraps modulo 2**bits, unsigned compares and floor division, casts both ways (Note [float
to small integers] in codegen/llvm/elementwise.py), reductions that keep the operand's dtype as TF1's do,
indices of the small dtypes, and the uint8 image pipeline. Placeholders have unknown dims, fed with
size-0 and size-1 dims, odd widths and two different sizes."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FeedError, FlowcTypeError, IndexOutOfRange
from flowc.ir.types import as_dtype

SMALL = ["int8", "int16", "uint8", "uint16"]
SHAPES = [(0, 3), (1, 1), (3, 17), (5, 33)]  # fed to [None, None]: the two unknown dims differ


def full_range(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Values over the dtype's whole range, its two ends and 0 among them where there is room."""
    info = np.iinfo(dtype)
    values = rng.integers(int(info.min), int(info.max) + 1, shape, dtype=np.int64)
    flat = values.reshape(-1)
    flat[: min(3, flat.size)] = [info.min, info.max, 0][: min(3, flat.size)]
    return values.astype(dtype)


def run_both(build: Callable[..., Any], feeds: dict[str, np.ndarray], exact: bool = True) -> list[np.ndarray]:
    """`build(**placeholders)` on cpu and reference, placeholders of unknown dims named like `feeds`;
    the two results equal in dtype, shape and value (floats within an ulp or two unless `exact`).
    Returns the cpu results."""
    graph = fc.Graph()
    with graph.as_default():
        placeholders = {name: fc.placeholder(as_dtype(value.dtype), [None] * value.ndim, name=name)
                        for name, value in feeds.items()}
        fetches = build(**placeholders)
        init = fc.global_variables_initializer() if fc.global_variables() else None
    results = {}
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=graph) as session:
            if init is not None:
                session.run(init)
            results[target] = session.run(list(fetches), {placeholders[k]: v for k, v in feeds.items()})
    for index, (got, want) in enumerate(zip(results["cpu"], results["reference"], strict=True)):
        context = f"fetch {index} ({fetches[index].op.type}) of {({k: v.shape for k, v in feeds.items()})}"
        assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape,
                                                                     context)
        if want.dtype.kind == "f" and not exact:
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6, err_msg=context)  # sums in another order
        else:
            np.testing.assert_array_equal(got, want, err_msg=context)
    return results["cpu"]


# -- elementwise ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", SMALL)
def test_arithmetic_wraps_as_the_reference(rng, dtype, shape) -> None:
    x, y = full_range(rng, shape, dtype), full_range(rng, shape[-1:], dtype)
    near_top = int(np.iinfo(dtype).max) - 5  # a constant that overflows on most elements

    def build(x, y):
        return [x + y, x - y, x * y, -x, fc.square(x), fc.abs(x), fc.sign(x), fc.maximum(x, y), fc.minimum(x, y),
                fc.nn.relu(x), x + near_top, x * 3 - y]

    run_both(build, {"x": x, "y": y})


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", SMALL)
def test_comparisons_read_the_sign_of_the_dtype(rng, dtype, shape) -> None:
    x, y = full_range(rng, shape, dtype), full_range(rng, shape[-1:], dtype)

    def build(x, y):
        return [fc.equal(x, y), fc.not_equal(x, y), fc.less(x, y), fc.less_equal(x, y), fc.greater(x, y),
                fc.greater_equal(x, y), fc.where(x > y, x, y)]

    run_both(build, {"x": x, "y": y})


def test_known_values() -> None:
    """The figures a reader can check by hand: uint8 250 + 10 is 4; int8 -128 - 1 is 127 and its abs and
    negation are itself; uint8 200 > 100 (an unsigned compare: as int8 bits 200 is -56); uint16 0 - 1."""
    feeds = {"u8": np.array([250, 200, 0], np.uint8), "i8": np.array([-128, 127, -1], np.int8),
             "u16": np.array([0, 65535, 40000], np.uint16), "i16": np.array([-32768, 300, 181], np.int16)}

    def build(u8, i8, u16, i16):
        return [u8 + 10, u8 > 100, fc.maximum(u8, 100), i8 - 1, fc.abs(i8), -i8, u16 - 1, u16 > 32767, i16 * i16,
                fc.reduce_max(u8), fc.reduce_min(u16), fc.argmax(u8, 0), fc.argmin(i8, 0)]

    got = run_both(build, feeds)
    want = [[4, 210, 10], [True, True, False], [250, 200, 100], [127, 126, -2], [-128, 127, 1], [-128, -127, 1],
            [65535, 65534, 39999], [False, True, True], [0, 24464, 32761], 250, 0, 0, 0]
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(g, np.asarray(w, g.dtype), err_msg=f"fetch {index}")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", SMALL)
def test_floor_division_and_modulo(rng, dtype, shape) -> None:
    """Python's // and % (floor): udiv and urem for the unsigned, sdiv adjusted for the signed; x // 0 and
    x % 0 are 0 (numpy's), and the most negative value // -1 wraps to itself."""
    x, y = full_range(rng, shape, dtype), full_range(rng, shape[-1:], dtype)
    y[: min(2, y.size)] = [0, 1][: min(2, y.size)] if as_dtype(dtype).is_unsigned else [0, -1][: min(2, y.size)]
    run_both(lambda x, y: [x // y, x % y, fc.floordiv(y, x), fc.floormod(y, x)], {"x": x, "y": y})


def test_floor_division_known_values() -> None:
    feeds = {"i8": np.array([-7, 7, -7, -128, 5], np.int8), "j8": np.array([2, -2, -2, -1, 0], np.int8),
             "u8": np.array([200, 255, 7, 0, 9], np.uint8), "v8": np.array([7, 16, 200, 3, 0], np.uint8)}
    got = run_both(lambda i8, j8, u8, v8: [i8 // j8, i8 % j8, u8 // v8, u8 % v8], feeds)
    want = [[-4, -4, 3, -128, 0], [1, -1, -1, 0, 0], [28, 15, 0, 0, 0], [4, 15, 7, 0, 0]]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, np.asarray(w, g.dtype))


# -- casts ----------------------------------------------------------------------------------------

TARGETS = [fc.int8, fc.int16, fc.uint8, fc.uint16, fc.int32, fc.int64, fc.float32, fc.float64, fc.bool]
FLOATS = np.array([0.0, -0.0, 0.5, -0.5, 1.9, -1.9, 127.9, 128.0, 200.0, 255.9, 256.0, 300.0, -1.0, -128.0, -129.0,
                   65535.0, 65536.0, 70000.0, -32769.0, 2.0**31, -(2.0**31) - 1024.0, 1e10, -1e10, np.inf, -np.inf,
                   np.nan])


@pytest.mark.parametrize("source", SMALL + ["int32", "int64", "float32", "float64", "bool"])
def test_casts_both_ways(rng, source) -> None:
    """From each dtype to every dtype with a small integer on one side. Floats out of a small dtype's range
    (300.0 to uint8, NaN, 1e10) convert as numpy does on x86: through int32, keeping the low bits."""
    if source.startswith("float"):
        x = FLOATS.astype(source)
    elif source == "bool":
        x = np.array([True, False, True])
    else:
        x = full_range(rng, (41,), source)
    targets = TARGETS if source in SMALL else [t for t in TARGETS if t.name in SMALL]
    got = run_both(lambda x: [fc.cast(x, target) for target in targets], {"x": x})
    if source in ("float32", "float64"):  # the documented values, not only the reference's
        uint8 = got[[t.name for t in targets].index("uint8")]
        np.testing.assert_array_equal(uint8[:12], [0, 0, 0, 0, 1, 255, 127, 128, 200, 255, 0, 44])
        assert uint8[-1] == 0 and uint8[-4] == 0  # NaN and 1e10: INT_MIN's low bits


def test_casts_between_small_ints_keep_or_extend_the_sign() -> None:
    x = np.array([-128, -1, 0, 127], np.int8)
    u = np.array([255, 128, 0, 1], np.uint8)
    got = run_both(lambda x, u: [fc.cast(x, fc.uint8), fc.cast(x, fc.uint16), fc.cast(u, fc.int8), fc.cast(u, fc.int16),
                                 fc.cast(u, fc.float32), fc.cast(x, fc.float64)], {"x": x, "u": u})
    want = [[128, 255, 0, 127], [65408, 65535, 0, 127], [-1, -128, 0, 1], [255, 128, 0, 1], [255, 128, 0, 1],
            [-128, -1, 0, 127]]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, np.asarray(w, g.dtype))


# -- reductions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (5, 33), (64, 1000), (3, 1100), (1000, 7)], ids=str)
@pytest.mark.parametrize("dtype", SMALL)
def test_reductions_keep_the_dtype(rng, dtype, shape) -> None:
    """reduce_sum and reduce_prod of uint8 are uint8 and wrap, as TF1's (numpy's np.sum would widen to
    uint64): the reference sums in the operand's dtype and so does the cpu, in any order (addition
    modulo 2**bits is associative). Max, min and the arg reductions start from the dtype's limits."""
    x = full_range(rng, shape, dtype)

    def build(x):
        return [fc.reduce_sum(x), fc.reduce_sum(x, axis=0), fc.reduce_sum(x, axis=1, keepdims=True),
                fc.reduce_prod(x, axis=1), fc.reduce_max(x, axis=1), fc.reduce_min(x, axis=0), fc.reduce_max(x),
                fc.argmax(x, axis=1), fc.argmin(x, axis=0), fc.reduce_max(x, axis=0) - x]

    run_both(build, {"x": x})


def test_reduce_sum_of_uint8_wraps_as_tf1() -> None:
    (total, rows) = run_both(lambda x: [fc.reduce_sum(x), fc.reduce_sum(x, axis=1)],
                             {"x": np.array([[200, 100], [255, 1]], np.uint8)})
    assert total.dtype == np.uint8 and total == (200 + 100 + 255 + 1) % 256
    np.testing.assert_array_equal(rows, np.array([44, 0], np.uint8))


@pytest.mark.parametrize("dtype", SMALL)
def test_scans_and_top_k(rng, dtype) -> None:
    x = full_range(rng, (4, 37), dtype)
    run_both(lambda x: [fc.cumsum(x, axis=1), fc.cumprod(x, axis=0), *fc.nn.top_k(x, 5)], {"x": x})


# -- indices --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", SMALL)
def test_indices_of_small_dtypes(rng, dtype) -> None:
    """gather, gather_nd, one_hot and embedding_lookup with small-integer indices; uint8 indices above
    127 (negative if read as int8) pick rows 128 to 255."""
    top = 255 if dtype == "uint8" else 127
    indices = rng.integers(0, top + 1, (3, 5)).astype(dtype)
    indices[0, :2] = [top, 0]
    params = rng.standard_normal((300, 4)).astype(np.float32)

    def build(indices, params):
        pairs = fc.stack([indices, indices % 4], axis=-1)
        return [fc.gather(params, indices), fc.gather_nd(params, pairs), fc.one_hot(indices, 256),
                fc.nn.embedding_lookup(params, indices), fc.gather(fc.transpose(params), indices % 4, axis=0)]

    run_both(build, {"indices": indices, "params": params})


def test_uint8_index_out_of_range_names_its_value() -> None:
    """Index 200 of uint8 is 200, not -56: the error says 200 on both targets."""
    graph = fc.Graph()
    with graph.as_default():
        indices = fc.placeholder(fc.uint8, [None], name="indices")
        picked = fc.gather(fc.constant(np.arange(100.0, dtype=np.float32)), indices)
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=graph) as session:
            np.testing.assert_array_equal(session.run(picked, {indices: np.array([99, 0], np.uint8)}), [99.0, 0.0])
            with pytest.raises(IndexOutOfRange, match="200"):
                session.run(picked, {indices: np.array([3, 200], np.uint8)})


# -- the usual program ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [0, 1, 7])
def test_uint8_images_to_float(rng, batch) -> None:
    """Images fed as uint8, then fc.cast(x, fc.float32) / 255.0, normalized per channel, and a few integer
    statistics of the raw pixels; against the reference and against numpy."""
    images = rng.integers(0, 256, (batch, 5, 9, 3)).astype(np.uint8)

    def build(images):
        x = fc.cast(images, fc.float32) / 255.0
        mean = fc.reduce_mean(x, axis=[0, 1, 2])
        return [x, x - mean, fc.reduce_max(images, axis=[1, 2]), fc.argmax(fc.reshape(images, [-1, 135]), axis=1),
                fc.cast(fc.reduce_sum(fc.cast(images, fc.int32), axis=[1, 2, 3]), fc.float32) / 255.0,
                fc.cast(x * 255.0 + 0.5, fc.uint8)]

    got = run_both(build, {"images": images}, exact=False)
    np.testing.assert_array_equal(got[0], images.astype(np.float32) / np.float32(255.0))
    np.testing.assert_array_equal(got[-1], images)  # back to the same bytes


def test_uint8_variable_wraps_on_assign_add() -> None:
    def build(step):
        counter = fc.Variable(np.array([250, 5], np.uint8), name="counter")
        with fc.control_dependencies([fc.assign_add(counter, step)]):
            return [fc.identity(counter)]  # read after the assign: the control dependency orders it

    (got,) = run_both(build, {"step": np.array([10, 10], np.uint8)})
    np.testing.assert_array_equal(got, np.array([4, 15], np.uint8))


# -- the front end --------------------------------------------------------------------------------


def test_names_and_tf1_attributes() -> None:
    for name, short in (("int8", "i8"), ("int16", "i16"), ("uint8", "u8"), ("uint16", "u16")):
        dtype = getattr(fc, name)
        assert fc.as_dtype(name) is dtype and fc.as_dtype(short) is dtype and fc.as_dtype(np.dtype(name)) is dtype
        assert dtype.is_integer and not dtype.is_floating and dtype.as_numpy_dtype is np.dtype(name).type
        assert (dtype.min, dtype.max) == (int(np.iinfo(name).min), int(np.iinfo(name).max))
        assert dtype.is_unsigned == name.startswith("u")
    assert fc.placeholder("uint8", [2]).dtype is fc.uint8


def test_feeds_out_of_range_are_errors_not_wrapped() -> None:
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.uint8, [None], name="pixels")
        y = x + 1
    with fc.Session(target="cpu", graph=graph) as session:
        for bad in ([300], 300, np.array([-1, 5]), np.array([0.5])):
            with pytest.raises(FeedError, match="Placeholder 'pixels'.*expects uint8"):
                session.run(y, {x: bad if np.ndim(bad) else [bad]})
        with pytest.raises(FeedError, match="holding 300, where uint8 holds 0 to 255"):
            session.run(y, {x: [300]})
        np.testing.assert_array_equal(session.run(y, {x: np.array([255, 7], np.int64)}), [0, 8])  # converted
        np.testing.assert_array_equal(session.run(y, {x: [True, False]}), [2, 1])


def test_constants_out_of_range_are_errors() -> None:
    x = fc.placeholder(fc.uint8, [2])
    with pytest.raises(FlowcTypeError, match="cannot make a uint8 constant from 300: uint8 holds 0 to 255"):
        x + 300
    with pytest.raises(FlowcTypeError, match="int8 holds -128 to 127"):
        fc.constant([1, -129], fc.int8)
    assert (x + 255).dtype is fc.uint8 and fc.constant(np.uint16(7)).dtype is fc.uint16


def test_matmul_of_small_ints_is_refused_as_tf1() -> None:
    a = fc.placeholder(fc.int8, [2, 3])
    with pytest.raises(FlowcTypeError, match="matmul.*one of float16, float32, float64, int32, int64, got int8"):
        fc.matmul(a, fc.transpose(a))


def test_truediv_of_small_ints_is_float32() -> None:
    got = run_both(lambda x, y: [fc.truediv(x, y), fc.truediv(fc.cast(x, fc.int32), fc.cast(y, fc.int32))],
                   {"x": np.array([255, 3], np.uint8), "y": np.array([2, 255], np.uint8)}, exact=False)
    assert got[0].dtype == np.float32 and got[1].dtype == np.float64  # TF1's table
    np.testing.assert_allclose(got[0], [127.5, 3 / 255], rtol=1e-7)
