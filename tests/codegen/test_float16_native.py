"""float16 on the cpu target against the reference (Note [float16 on the CPU] in codegen/llvm/types.py):
every elementwise op float16 takes, fused chains, reductions on every axis, scans, softmax, layer
norm, products with epilogues, casts, data movement; on shapes with 0 and 1 dims, odd sizes, and
unknown dims fed different sizes. Bounds: Note [how far float16 results may be apart] (half_check.py)."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import UnsupportedOpError
from half_check import assert_half_close, check_both, half_ulps, run_both

SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504, -65504, 6e-8, 1e-4, 0.5, 1, 2, 3.5, -1, -2.5, 100,
                    1000, 11, 12], np.float16)

# name -> (build, ulps apart at most). Exact (0): one rounding of an exactly computed float.
UNARY = {
    "neg": (lambda x: -x, 0), "abs": (fc.abs, 0), "square": (fc.square, 0), "sqrt": (fc.sqrt, 0),
    "relu": (fc.nn.relu, 0), "floor": (fc.floor, 0), "ceil": (fc.ceil, 0), "round": (fc.round, 0),
    "sign": (fc.sign, 0), "identity": (fc.identity, 0),
    "exp": (fc.exp, 1), "log": (fc.log, 1), "tanh": (fc.tanh, 1), "sin": (fc.sin, 1), "cos": (fc.cos, 1),
    "atan": (fc.atan, 1), "erf": (fc.erf, 1), "log1p": (fc.log1p, 1), "expm1": (fc.expm1, 1),
    "rsqrt": (fc.rsqrt, 1), "sigmoid": (fc.sigmoid, 2),
}
BINARY = {
    "add": (lambda x, y: x + y, 0), "sub": (lambda x, y: x - y, 0), "mul": (lambda x, y: x * y, 0),
    "div": (lambda x, y: x / y, 0), "maximum": (fc.maximum, 0), "minimum": (fc.minimum, 0),
    "floordiv": (fc.floordiv, 0), "floormod": (fc.floormod, 0), "pow": (fc.pow, 1),
}
COMPARE = {"equal": fc.equal, "not_equal": fc.not_equal, "less": fc.less, "less_equal": fc.less_equal,
           "greater": fc.greater, "greater_equal": fc.greater_equal}


def _values(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Specials, small values and large ones (float16's whole range, overflowing products)."""
    x = np.concatenate([SPECIAL, rng.standard_normal(n) * 4, rng.standard_normal(n) * 300]).astype(np.float16)
    y = np.concatenate([SPECIAL[::-1], rng.standard_normal(n) * 4, rng.uniform(-5, 5, n)]).astype(np.float16)
    return x, y


def test_every_elementwise_op_as_the_reference(rng: np.random.Generator) -> None:
    x, y = _values(rng, 2000)
    names = [*UNARY, *BINARY, *COMPARE, "where"]

    def build(x, y):  # type: ignore[no-untyped-def]
        return ([build(x) for build, _ in UNARY.values()] + [build(x, y) for build, _ in BINARY.values()]
                + [compare(x, y) for compare in COMPARE.values()] + [fc.where(fc.less(x, y), x, y)])

    with np.errstate(all="ignore"):
        got, want = run_both(build, {"x": x, "y": y})
    bounds = [ulps for _, ulps in UNARY.values()] + [ulps for _, ulps in BINARY.values()] + [0] * (len(COMPARE) + 1)
    for name, g, w, bound in zip(names, got, want, bounds, strict=True):
        assert_half_close(g, w, bound, name)


@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (7, 5), (3, 1, 33)], ids=str)
def test_a_fused_chain_is_exact(shape, rng: np.random.Generator) -> None:
    """Per-op rounding: (x * y + 1) / 3 - sqrt(|x|) * x, rounded to half after each op, bit for bit."""
    x = (rng.standard_normal(shape) * 10).astype(np.float16)
    y = rng.standard_normal(shape[-1:]).astype(np.float16)  # broadcast along the rows
    check_both(lambda x, y: [(x * y + 1.0) / 3.0 - fc.sqrt(fc.abs(x)) * x, fc.maximum(x, y) * 0.1], {"x": x, "y": y})


def test_a_chain_with_transcendentals(rng: np.random.Generator) -> None:
    x = rng.standard_normal((9, 17)).astype(np.float16)
    check_both(lambda x: [fc.tanh(x * 2.0) + 1.0, fc.exp(-x * x) * 3.0], {"x": x}, ulps=[1, 3])


def test_two_unknown_dims_fed_different_sizes(rng: np.random.Generator) -> None:
    """x[?, 5] and y[?, 5] of 3 and 8 rows: concatenated, and each reduced on its own rows."""
    x = rng.standard_normal((3, 5)).astype(np.float16)
    y = rng.standard_normal((8, 5)).astype(np.float16)
    check_both(lambda x, y: [fc.concat([x * 2.0, y], axis=0), fc.reduce_max(x, axis=0) + fc.reduce_min(y, axis=0),
                             fc.reduce_sum(fc.concat([x, y * y], axis=0), axis=0)],
               {"x": x, "y": y}, ulps=[0, 0, 1])


def test_casts_to_and_from_half(rng: np.random.Generator) -> None:
    wide = np.concatenate([rng.standard_normal(500) * 3000, [70000, -1e6, 65519, 65520, 1e-8, 3e-8, -6e-8, 1 / 3,
                                                             np.inf, np.nan, 2.5, -3.5]])
    with np.errstate(over="ignore"):
        halves = wide.astype(np.float16)
    feeds = {"d": wide, "f": wide.astype(np.float32), "i": np.arange(-70000, 70000, 997, dtype=np.int32),
             "j": np.arange(-5, 6, dtype=np.int64) * 6000, "h": halves}

    def build(d, f, i, j, h):  # type: ignore[no-untyped-def]
        return [fc.cast(d, fc.float16), fc.cast(f, fc.float16), fc.cast(i, fc.float16), fc.cast(j, fc.float16),
                fc.cast(fc.greater(f, 0.0), fc.float16),
                fc.cast(h, fc.float32), fc.cast(h, fc.float64), fc.cast(h, fc.int32), fc.cast(h, fc.int64),
                fc.cast(h, fc.bool)]

    with np.errstate(all="ignore"):
        check_both(build, feeds)


def test_float64_to_half_rounds_once_not_through_float() -> None:
    """1 + 2**-11 + 2**-30 is above the tie between 1 and 1 + 2**-10: numpy rounds it up; through a
    float it would first become the tie 1 + 2**-11, then round to even, 1."""
    x = np.array([1 + 2**-11 + 2**-30, -(1 + 2**-11 + 2**-30), 1 + 2**-11, 2**-25 + 2**-50, 65519.99], np.float64)
    (got,), _ = run_both(lambda x: [fc.cast(x, fc.float16)], {"x": x})
    np.testing.assert_array_equal(got, x.astype(np.float16))
    assert got[0] == np.float16(1 + 2**-10) and got[3] == np.float16(2**-24)


REDUCTIONS = {"sum": (fc.reduce_sum, 1), "mean": (fc.reduce_mean, 1), "max": (fc.reduce_max, 0),
              "min": (fc.reduce_min, 0), "prod": (fc.reduce_prod, 1)}


@pytest.mark.parametrize("shape", [(2, 3, 4), (1, 7, 1), (0, 3, 5), (5, 1, 300), (40, 33, 3)], ids=str)
@pytest.mark.parametrize("axis", [0, 1, 2, (0, 1), (1, 2), None], ids=str)
def test_reductions_on_every_axis(shape, axis, rng: np.random.Generator) -> None:
    """Sums, means and products in float, rounded once (1 ulp: their order differs from numpy's);
    max, min, argmax, argmin exact."""
    x = rng.uniform(0.5, 1.5, shape).astype(np.float16)  # products of hundreds stay in range

    def build(x):  # type: ignore[no-untyped-def]
        results = [reduce(x * 1.5, axis=axis) for reduce, _ in REDUCTIONS.values()]
        if isinstance(axis, int) and shape[axis] > 0:
            results += [fc.argmax(x, axis=axis), fc.argmin(x, axis=axis)]
        return results

    with np.errstate(all="ignore"):
        got, want = run_both(build, {"x": x})
    bounds = [ulps for _, ulps in REDUCTIONS.values()] + [0, 0]
    for g, w, bound in zip(got, want, bounds):
        assert_half_close(g, w, bound, f"{shape} axis {axis}")


def test_a_sum_of_halves_accumulates_in_float() -> None:
    """4096 ones: a sum rounded to half per step would stop at 2048; kept dims, and one unknown."""
    x = np.ones((3, 4096), np.float16)
    got = check_both(lambda x: [fc.reduce_sum(x, axis=1), fc.reduce_sum(x, axis=0), fc.reduce_mean(x)],
                     {"x": x}, ulps=0)
    np.testing.assert_array_equal(got[0], [4096] * 3)


@pytest.mark.parametrize("shape", [(1, 1), (4, 10), (37, 7), (3, 300), (0, 7)], ids=str)
def test_softmax_and_log_softmax(shape, rng: np.random.Generator) -> None:
    """(37, 7): blocks of rows, one per lane, gathered and scattered as half (the row_blocks schedule);
    (3, 300): a row kept on the stack (Note [kept row])."""
    x = (rng.standard_normal(shape) * 3).astype(np.float16)
    check_both(lambda x: [fc.nn.softmax(x), fc.nn.log_softmax(x)], {"x": x}, ulps=3)


@pytest.mark.parametrize("shape", [(1, 8), (5, 33), (4, 512), (64, 100)], ids=str)
def test_layer_norm(shape, rng: np.random.Generator) -> None:
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float16)
    gain = rng.uniform(0.5, 1.5, shape[-1:]).astype(np.float16)
    bias = rng.standard_normal(shape[-1:]).astype(np.float16)

    def build(x, gain, bias):  # type: ignore[no-untyped-def]
        mean = fc.reduce_mean(x, axis=-1, keepdims=True)
        centered = x - mean
        variance = fc.reduce_mean(centered * centered, axis=-1, keepdims=True)
        return [centered * fc.rsqrt(variance + 1e-3) * gain + bias, mean, variance]

    got, want = run_both(build, {"x": x, "gain": gain, "bias": bias})
    assert_half_close(got[1], want[1], 1, "mean")
    assert_half_close(got[2], want[2], 1, "variance")
    # rsqrt is an ulp apart (half_check.py), at most 2**-10 of it; the two products after it each round
    # (2**-11 of their value): the value before the bias is 2**-9 of itself apart at most. The bias may
    # cancel most of it, and the sum rounds once more: half an ulp of the result, and a last ulp. A mean
    # an ulp apart moves each centered value by that ulp, scaled by rsqrt and the gain.
    before_bias = np.abs(want[0].astype(np.float64) - bias)
    mean_moves = np.spacing(np.abs(want[1])).astype(np.float64) / np.sqrt(want[2].astype(np.float64) + 1e-3) * gain
    allowed = 2**-9 * before_bias + np.spacing(np.abs(want[0])).astype(np.float64)
    allowed += 2 * mean_moves * (got[1] != want[1])
    assert np.all(np.abs(got[0].astype(np.float64) - want[0].astype(np.float64)) <= allowed)


@pytest.mark.parametrize("m, k, n", [(0, 4, 3), (1, 1, 1), (7, 33, 10), (5, 64, 40), (3, 0, 5)], ids=str)
def test_matmul_with_an_epilogue(m, k, n, rng: np.random.Generator) -> None:
    """relu(x @ W + b): products summed in float, rounded once, then the epilogue per op; narrow products
    (n <= 16: generated code reading half) and wider ones (sgemm on float32 copies:
    passes/widen_half_products.py), with A or B transposed."""
    x = rng.standard_normal((m, k)).astype(np.float16)
    w = rng.standard_normal((k, n)).astype(np.float16)
    b = rng.standard_normal(n).astype(np.float16)

    def build(x, w, b):  # type: ignore[no-untyped-def]
        return [fc.matmul(x, w), fc.nn.relu(fc.matmul(x, w) + b), fc.matmul(fc.transpose(x), x),
                fc.matmul(x, fc.transpose(w), transpose_b=True)]

    got, want = run_both(build, {"x": x, "w": w, "b": b}, shapes={"w": [k, n], "b": [n]})
    for index in (0, 2, 3):  # products: summed in float in another order, rounded once
        assert_half_close(got[index], want[index], 1, f"product {index}")
    # The epilogue reads a product an ulp apart at most; its sum with b rounds once more (an ulp of the
    # result at most), and relu keeps or zeroes both alike.
    allowed = (np.spacing(np.abs(want[0])) + np.spacing(np.abs(want[1]))).astype(np.float64)
    assert np.all(np.abs(got[1].astype(np.float64) - want[1].astype(np.float64)) <= allowed)


def test_batched_matmul(rng: np.random.Generator) -> None:
    a = rng.standard_normal((3, 5, 9)).astype(np.float16)
    b = rng.standard_normal((3, 9, 4)).astype(np.float16)
    check_both(lambda a, b: [fc.matmul(a, b)], {"a": a, "b": b}, ulps=1)


def test_scans_round_each_step(rng: np.random.Generator) -> None:
    """cumsum/cumprod in float16 round every partial result, as numpy's accumulate in float16: exact."""
    x = rng.uniform(0.9, 1.1, (4, 700)).astype(np.float16)
    check_both(lambda x: [fc.cumsum(x, axis=1), fc.cumprod(x, axis=1), fc.cumsum(x, axis=0, reverse=True),
                          fc.cumsum(x, axis=1, exclusive=True)], {"x": x})


def test_data_movement(rng: np.random.Generator) -> None:
    x = rng.standard_normal((5, 6)).astype(np.float16)
    index = np.array([4, 0, 2, 2], np.int32)

    def build(x, index):  # type: ignore[no-untyped-def]
        values, positions = fc.nn.top_k(x, k=3)
        return [fc.transpose(x) * 1.0, fc.gather(x, index), fc.pad(x, [[1, 0], [0, 2]]), x[1:4, ::2] + 0.0,
                fc.reshape(x, [3, 10]) + 0.0, fc.expand_dims(x, 1) * 2.0, values, positions,
                fc.tile(x, [2, 1]) if hasattr(fc, "tile") else x + 0.0]

    check_both(build, {"x": x, "index": index})


def test_collectives_of_half_are_refused_naming_the_op() -> None:
    from flowc.codegen.llvm.support import check_float16
    from flowc.ir import parse_module

    module = parse_module("""\
func @main(%x: f16[4]) -> f16[4] {
  %y = all_reduce %x {reduction = "sum"} : f16[4]
  return %y : f16[4]
}
""")
    with pytest.raises(UnsupportedOpError, match="all_reduce of float16"):
        check_float16(module)


def test_half_ulps_measures() -> None:
    """The checker itself: one step of float16 is 1, NaN against NaN 0, NaN against a number inf."""
    one = np.array([1.0], np.float16)
    assert half_ulps(np.nextafter(one, np.float16(2)), one) == 1
    assert half_ulps(np.array([np.nan], np.float16), np.array([np.nan], np.float16)) == 0
    assert half_ulps(np.array([np.nan], np.float16), one) == np.inf
    assert half_ulps(np.array([np.inf], np.float16), np.array([65504], np.float16)) == np.inf


def test_convolution_its_gradient_pools_and_a_constant(rng: np.random.Generator) -> None:
    """conv2d (patches and a product), its gradient (fold_patches sums the taps rounding each, as the
    reference's float16 view +=), max and average pools, and a non-splat constant (a global of half)."""
    x = rng.standard_normal((2, 6, 5, 2)).astype(np.float16)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float16)
    table = rng.standard_normal((6, 5, 2)).astype(np.float16)

    def build(x):  # type: ignore[no-untyped-def]
        conv = fc.nn.conv2d(x, fc.constant(kernel), strides=[1, 1, 1, 1], padding="SAME")
        (grad,) = fc.gradients(fc.reduce_sum(conv * conv), [x])
        return [conv, grad, fc.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "VALID"),
                fc.nn.avg_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "VALID"), x + fc.constant(table)]

    got, want = run_both(build, {"x": x}, shapes={"x": [None, 6, 5, 2]})
    for index, (g, w) in enumerate(zip(got, want)):
        # conv and its gradient: products summed in float (1 ulp at the result's scale); the rest exact
        scale = np.spacing(np.abs(w).max()).astype(np.float64) if index < 2 else 0.0
        assert np.all(np.abs(g.astype(np.float64) - w.astype(np.float64)) <= 2 * scale), index


def test_control_flow_and_dropout(rng: np.random.Generator) -> None:
    """A while loop and a cond carrying float16, and dropout of float16 (its mask drawn in float32: the
    same draws on both targets)."""
    x = rng.standard_normal((3, 7)).astype(np.float16)

    def build(x):  # type: ignore[no-untyped-def]
        _, looped = fc.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 1.5 + 0.25), [fc.constant(0), x])
        chosen = fc.cond(fc.reduce_sum(x) > 0, lambda: x * 2.0, lambda: x - 1.0)
        return [looped, chosen, fc.nn.dropout(x, rate=0.5, seed=3)]

    got = check_both(build, {"x": x})
    assert got[2].dtype == np.float16 and 0 < np.count_nonzero(got[2]) < x.size


def test_an_exported_half_library(tmp_path, rng: np.random.Generator) -> None:
    """fc.export of a float16 graph: its header says uint16_t (IEEE half bits), fc.load runs it as the
    session does, and a float64 input past half's range is refused as a feed is."""
    from flowc.ir.errors import FeedError

    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float16, [None, 3], name="x")
        w = fc.Variable(np.array([[1.5], [2], [-1]], np.float16), name="w")
        y = fc.tanh(fc.matmul(x, w)) * 2.0
    data = rng.standard_normal((5, 3)).astype(np.float16)
    with fc.Session(graph=graph) as session:
        session.run(w.initializer)
        want = session.run(y, {x: data})
        fc.export(str(tmp_path / "half"), [y], [x], session=session)
    assert "0: x  float16 (uint16_t), rank 2" in (tmp_path / "half.h").read_text()
    library = fc.load(str(tmp_path / "half"))
    np.testing.assert_array_equal(library(data), want)
    with pytest.raises(FeedError, match="past float16's range"):
        library(np.array([[1.0, 7e4, 0.0]]))


@pytest.mark.parametrize("shape, axis", [((2, 10000), 1), ((300, 40), 0), ((5000,), None)], ids=str)
def test_long_sums_of_half_in_compensated_blocks(shape, axis, rng: np.random.Generator) -> None:
    """Rows longer than a block per lane (Note [blocked sums] in kernels/reduction.py: compensated float
    totals), a column reduction of more rows than a block, and a whole array: in float, rounded once."""
    x = rng.uniform(-1, 3, shape).astype(np.float16)
    check_both(lambda x: [fc.reduce_sum(x, axis=axis), fc.reduce_mean(x * x, axis=axis)], {"x": x}, ulps=1)


def test_the_schedule_counts_floats_as_codegen_computes_them() -> None:
    """passes/schedule.py's compute_bytes (vector lanes, stack rows) agrees with codegen's COMPUTE table."""
    from llvmlite import ir as ll

    from flowc.codegen.llvm.types import COMPUTE
    from flowc.ir.types import DTYPES
    from flowc.passes.schedule import compute_bytes

    sizes = {str(ll.FloatType()): 4, str(ll.DoubleType()): 8}
    for dtype in DTYPES:
        if dtype.is_float and dtype.name in COMPUTE:
            assert compute_bytes(dtype) == sizes[str(COMPUTE[dtype.name])], dtype.name
