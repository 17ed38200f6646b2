"""The CPU target against the oracle: native results vs the reference target's.

Integers and bools must match exactly. Floats within FLOAT_TOL: the native
exp/log/tanh/sigmoid/rsqrt/pow are vectorized approximations (a few ulp,
tests/codegen/test_mathlib.py), sums are accumulated in 16 lanes (Note [summation
order]) and matmuls are OpenBLAS's, so the last bits may differ.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pass_properties import random_module

import flowc as fc
from flowc.driver import compile_lowered
from flowc.errors import FeedError, ResourceExhaustedError
from flowc.ir import Builder, Function, Module, TensorType, evaluate, registry
from flowc.ir.printer import print_module
from flowc.ir.types import as_dtype
from flowc.lowering import Lowered, Signature
from flowc.options import CompileOptions

FLOAT_TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13),
             np.float16: dict(rtol=2**-9, atol=2**-24)}  # 2 ulps of half (tests/codegen/half_check.py)
SHAPES = [(), (1,), (17,), (0, 3), (3, 1), (5, 33), (2, 3, 9)]  # scalars, size-1, zero-size, odd widths


def assert_matches(got: np.ndarray, want: np.ndarray, context: str = "") -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape, context)
    if want.dtype.kind == "f":
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=context)
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], err_msg=context, **FLOAT_TOL[want.dtype.type])
    else:
        np.testing.assert_array_equal(got, want, err_msg=context)


def both_targets(build, feeds: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    """Build a graph of placeholders named like `feeds`, run it on both targets, compare."""
    g = fc.Graph()
    with g.as_default():
        ph = {k: fc.placeholder(as_dtype(v.dtype), shape=v.shape, name=k) for k, v in feeds.items()}
        out = build(**ph)
    results = {}
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=g) as sess:
            results[target] = sess.run(out, {ph[k]: v for k, v in feeds.items()})
    outs = results["cpu"] if isinstance(out, (list, tuple)) else [results["cpu"]]
    refs = results["reference"] if isinstance(out, (list, tuple)) else [results["reference"]]
    for got, want in zip(outs, refs, strict=True):
        assert_matches(got, want, f"{feeds and {k: v.shape for k, v in feeds.items()}}")


def sample(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if as_dtype(dtype).is_int:
        info = np.iinfo(dtype)  # the small integers over their whole range, which wraps; the wide ones near 0
        low, high = (info.min, info.max + 1) if info.bits < 32 else (-50, 50)
        return rng.integers(low, high, shape).astype(dtype)
    return (rng.standard_normal(shape) * 3).astype(dtype)


# -- every elementwise op of the registry, each dtype it takes, odd shapes ----------------------

# Ops whose operands are not all of one dtype: each has its own test below.
OWN_TESTS = {"cast": "test_casts", "where": "test_bool_ops_and_where"}
BROADCASTS = [((5, 33), (5, 33)), ((5, 33), (33,)), ((3, 1), (1, 17)), ((0, 3), (3,)), ((), (2, 3, 9))]


def elementwise(arity: int) -> list[tuple[str, str]]:
    """(op name, dtype) of every registered elementwise op of `arity` operands, each dtype it takes:
    an op added to the registry is tested here the day it lands."""
    return [(op.name, dtype.name) for op in registry.elementwise()
            if op.num_operands == arity and op.name not in OWN_TESTS for dtype in op.dtypes]


def unary_cases() -> list:
    """Floats in every shape of SHAPES; integers and bools, whose code is the same loop, in one."""
    return [pytest.param(name, dtype, shape, id=f"{name}-{dtype}-{shape}") for name, dtype in elementwise(1)
            for shape in (SHAPES if as_dtype(dtype).is_float else [(5, 33)])]


def one_op_module(name: str, args: list[np.ndarray]) -> Module:
    """func @main(args...) returning op `name` of them, as the IR builder makes it."""
    function = Function("main", [TensorType(as_dtype(a.dtype), a.shape) for a in args], [])
    builder = Builder.at_end(function.entry)
    result = builder.create(name, function.args, {}).result
    builder.create("return", [result])
    function.result_types = [result.type]
    return Module([function])


def op_on_both_targets(name: str, args: list[np.ndarray]) -> None:
    """Op `name` on `args`, native against the reference; values out of an op's domain included
    (log of a negative, 0 to a negative power): the native NaNs and infinities must be the same."""
    args = [np.asarray(a) for a in args]  # a sample of shape () is a numpy scalar
    module = one_op_module(name, args)
    (want,) = evaluate(module["main"], args)
    (got,) = native_run(module, args)
    assert_matches(got, want, f"{name} of {[a.shape for a in args]}")


def test_every_elementwise_op_is_tested_here() -> None:
    tested = {name for name, _ in elementwise(1) + elementwise(2)} | set(OWN_TESTS)
    assert tested == {op.name for op in registry.elementwise()}


@pytest.mark.parametrize("name, dtype, shape", unary_cases())
def test_unary_ops(rng, name, dtype, shape) -> None:
    op_on_both_targets(name, [sample(rng, shape, dtype)])


@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
@pytest.mark.parametrize("name, dtype", elementwise(2))
def test_binary_ops_broadcast(rng, name, dtype, shapes) -> None:
    op_on_both_targets(name, [sample(rng, shapes[0], dtype), sample(rng, shapes[1], dtype)])


def test_bool_ops_and_where(rng) -> None:
    p, q = sample(rng, (4, 17), "bool"), sample(rng, (17,), "bool")
    x = sample(rng, (4, 17), "float32")
    both_targets(lambda p, q, x: [fc.logical_and(p, q), fc.logical_or(p, q), fc.logical_not(p),
                                  fc.where(p, x, -x), fc.cast(p, fc.float32) + x], {"p": p, "q": q, "x": x})


@pytest.mark.parametrize("source, target", [("float32", fc.int32), ("float64", fc.float32), ("int32", fc.float64),
                                            ("int64", fc.int32), ("float32", fc.bool_), ("bool", fc.int64)])
def test_casts(rng, source, target) -> None:
    both_targets(lambda x: fc.cast(x, target), {"x": sample(rng, (3, 17), source)})


# -- reductions over each axis, with keepdims ----------------------------------------------------

AXES = [None, 0, 1, -1, (0, 2)]  # of a [4, 37, 5] operand: None is every axis


def reduction_cases() -> list:
    """Every registered reduction (the is_reduction fact) in float32, int64 and uint8 where it takes them,
    over each of AXES, with keepdims; an arg reduction over one axis at a time."""
    cases = []
    for name in sorted(registry.names_where(is_reduction=True)):
        op = registry.get(name)
        dtypes = [d.name for d in op.dtypes if d.name in ("float32", "int64", "uint8")]
        if "axes" in op.attrs:
            cases += [pytest.param(name, dtype, axis, keepdims, id=f"{name}-{dtype}-{axis}-{keepdims}")
                      for dtype in dtypes for axis in AXES for keepdims in (False, True)]
        else:
            cases += [pytest.param(name, dtype, axis, None, id=f"{name}-{dtype}-{axis}")
                      for dtype in dtypes for axis in (0, 1, -1)]
    return cases


@pytest.mark.parametrize("name, dtype, axis, keepdims", reduction_cases())
def test_reductions(rng, name, axis, keepdims, dtype) -> None:
    x = np.asarray(sample(rng, (4, 37, 5), dtype))
    function = Function("main", [TensorType(as_dtype(x.dtype), x.shape)], [])
    builder = Builder.at_end(function.entry)
    (value,) = function.args
    if keepdims is None:  # an arg reduction
        attributes = {"axis": axis % 3, "dtype": as_dtype("int64")}
    else:
        axes = range(3) if axis is None else [axis] if isinstance(axis, int) else axis
        attributes = {"axes": tuple(sorted(a % 3 for a in axes)), "keepdims": keepdims}
        if x.dtype.kind == "f":  # a square fused into the reduction kernel
            value = builder.create("mul", [value, value], {}).result
    result = builder.create(name, [value], attributes).result
    builder.create("return", [result])
    function.result_types = [result.type]
    module = Module([function])
    (want,) = evaluate(module["main"], [x])
    (got,) = native_run(module, [x])
    assert_matches(got, want, f"{name} over {axis} of {x.shape}")


@pytest.mark.parametrize("n", [1, 3, 10, 16, 17, 32])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_short_rows_as_vectors(rng, n, dtype) -> None:
    """Note [vector rows]: rows of up to 32 points, padded to a power of two: softmax, log-softmax, the
    cross entropy of a classifier, layer norm with a per-column scale and a per-row shift, NaN rows."""
    x = sample(rng, (7, n), dtype)
    x[2, n // 2] = np.nan

    def build(x, gamma, shift, labels):  # type: ignore[no-untyped-def]
        mean = fc.reduce_mean(x, axis=-1, keepdims=True)
        centered = x - mean
        norm = centered * fc.rsqrt(fc.reduce_mean(centered * centered, axis=-1, keepdims=True) + 1e-5)
        loss = fc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)
        return [fc.nn.softmax(x), fc.nn.log_softmax(x), norm * gamma + shift, loss,
                fc.reduce_max(x, axis=1), fc.reduce_min(x * 2, axis=-1, keepdims=True)]

    both_targets(build, {"x": x, "gamma": sample(rng, (n,), dtype), "shift": sample(rng, (7, 1), dtype),
                         "labels": rng.integers(0, n, 7).astype(np.int32)})


def _rows_in_blocks(x, scale, shift, labels):  # type: ignore[no-untyped-def]
    """Kernels for Note [rows across lanes]: softmax, log-softmax, a classifier's cross entropy (int
    labels, a one-hot against a constant row), a per-row scale ([rows, 1]) and shift ([rows]), a
    mean, a bool result, a NaN row."""
    e = fc.exp(x - fc.reduce_max(x, axis=-1, keepdims=True))
    loss = fc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x * scale)
    return [fc.nn.softmax(x), fc.nn.log_softmax(x), loss, fc.reduce_mean(e, axis=-1) + shift,
            fc.greater(e / fc.reduce_sum(e, axis=-1, keepdims=True), 0.25), fc.reduce_max(fc.log(fc.abs(x) + 1), axis=1)]


def _blocks_feeds(rng, rows, n, dtype):  # type: ignore[no-untyped-def]
    x = sample(rng, (rows, n), dtype)
    x[min(2, rows - 1), n // 2] = np.nan
    return {"x": x, "scale": sample(rng, (rows, 1), dtype), "shift": sample(rng, (rows,), dtype),
            "labels": rng.integers(0, n, rows).astype(np.int32)}


@pytest.mark.parametrize("rows", [16, 37, 100])
@pytest.mark.parametrize("n", [1, 3, 10, 16])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_short_rows_in_blocks(rng, rows, n, dtype) -> None:
    """Note [rows across lanes]: whole blocks of rows, then the rows left over (37 = 2 blocks + 5 with
    AVX-512), against the reference."""
    both_targets(_rows_in_blocks, _blocks_feeds(rng, rows, n, dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_short_rows_in_blocks_with_every_transcendental(rng, dtype) -> None:
    """tanh, sigmoid and pow in a row-block kernel, at full level and once per row."""
    def build(x):  # type: ignore[no-untyped-def]
        peak = fc.reduce_max(x, axis=-1, keepdims=True)
        return [fc.reduce_sum(fc.tanh(x - peak), axis=-1) * fc.sigmoid(fc.reduce_mean(x, axis=-1)),
                fc.pow(fc.abs(x) + 1.0, fc.sigmoid(peak)) / fc.reduce_sum(fc.abs(x) + 1.0, axis=-1, keepdims=True)]

    both_targets(build, {"x": sample(rng, (37, 7), dtype)})


def test_short_rows_in_blocks_across_the_pool(rng) -> None:
    """Enough rows for several pieces of the thread pool, each ending in a masked block."""
    from flowc.runtime import set_num_threads

    set_num_threads(2)
    try:
        both_targets(_rows_in_blocks, _blocks_feeds(rng, 70001, 10, "float32"))
    finally:
        set_num_threads(0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_short_rows_in_blocks_give_the_bits_of_vector_rows(tmp_path, monkeypatch, rng, dtype) -> None:
    """The block schedule reduces columns in the order vector rows reduce lanes, and computes the same
    ops: the same bits (the vector-row build made in a cache of its own)."""
    from flowc.passes import schedule

    feeds = _blocks_feeds(rng, 37, 10, dtype)
    g = fc.Graph()
    with g.as_default():
        ph = {k: fc.placeholder(as_dtype(v.dtype), shape=v.shape, name=k) for k, v in feeds.items()}
        out = _rows_in_blocks(**ph)
    fed = {ph[k]: v for k, v in feeds.items()}
    with fc.Session(graph=g) as sess:
        blocks = sess.run(out, fed)
        (compiled,) = sess._cache.values()
        assert any(op.attributes.get("schedule") == "row_blocks" for op in compiled.executable.program.kernel_ops)
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(schedule, "row_blocks_apply", lambda op, target: False)
    with fc.Session(graph=g) as sess:
        rows = sess.run(out, fed)
    for got, want in zip(blocks, rows, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool", "uint8", "int16"])
def test_short_rows_of_integers_and_bools(rng, dtype) -> None:
    """Integer sums wrap as numpy's do, bools are read as bytes; two trailing axes make one row of 12."""
    x = sample(rng, (5, 3, 4), dtype)

    def build(x):  # type: ignore[no-untyped-def]
        if dtype == "bool":  # bool rows read and written inside the kernel
            ints = fc.cast(x, fc.int32)
            below_max = fc.less(ints, fc.reduce_max(ints, axis=-1, keepdims=True))
            return [fc.reduce_sum(ints, axis=(1, 2)), fc.logical_and(fc.logical_not(x), below_max)]
        return [fc.reduce_sum(x * x, axis=(1, 2)), fc.reduce_max(x, axis=-1, keepdims=True) - x,
                fc.reduce_min(x, axis=(-2, -1))]

    both_targets(build, {"x": x})


@pytest.mark.parametrize("shape", [(1, 16), (7, 40), (128, 256), (3, 1100), (2, 3, 40), (4, 40000)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_column_reductions(rng, shape, dtype) -> None:
    """Note [column reductions]: leading axes reduced in tiles of the kept ones (one tile, several, a
    last partial one, pieces for the thread pool), with a bias, a per-row weight, a scalar, batch
    statistics (a second reduction reading the first) and full-level results."""
    leading = tuple(range(len(shape) - 1))

    def build(x, bias, weight, scale):  # type: ignore[no-untyped-def]
        mean = fc.reduce_mean(x, axis=leading, keepdims=True)
        centered = x - mean
        var = fc.reduce_mean(centered * centered, axis=leading)
        return [fc.reduce_sum(x * weight + bias, axis=leading) * scale, var, centered * scale,
                fc.reduce_max(x, axis=0), fc.reduce_min(x, axis=leading, keepdims=True) - bias]

    both_targets(build, {"x": sample(rng, shape, dtype), "bias": sample(rng, shape[-1:], dtype),
                         "weight": sample(rng, shape[:-1] + (1,), dtype), "scale": sample(rng, (), dtype)})


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "int16"])
def test_column_reductions_of_integers(rng, dtype) -> None:
    both_targets(lambda x: [fc.reduce_sum(x * x, axis=0), fc.reduce_max(x, axis=0, keepdims=True) - x],
                 {"x": sample(rng, (9, 33), dtype)})


@pytest.mark.parametrize("axis", [0, 1])
def test_arg_reductions(rng, axis) -> None:
    both_targets(lambda x: [fc.argmax(x, axis=axis), fc.argmin(x, axis=axis)], {"x": sample(rng, (6, 35), "float32")})


def test_a_long_sum_is_accurate(rng) -> None:
    x = rng.random(1_000_003).astype(np.float32)
    both_targets(lambda x: fc.reduce_sum(x), {"x": x})


# -- fused combinations ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (64, 1000)], ids=str)
def test_softmax_and_layer_norm(rng, shape) -> None:
    def build(x, gamma):  # type: ignore[no-untyped-def]
        mean = fc.reduce_mean(x, axis=-1, keepdims=True)
        centered = x - mean
        var = fc.reduce_mean(centered * centered, axis=-1, keepdims=True)
        return [fc.nn.softmax(x), fc.nn.log_softmax(x), centered * fc.rsqrt(var + 1e-5) * gamma]

    both_targets(build, {"x": sample(rng, shape, "float32"), "gamma": sample(rng, shape[-1:], "float32")})


@pytest.mark.parametrize("shapes", [((1, 1), (1, 1)), ((7, 33), (33, 5)), ((300, 200), (200, 130))], ids=str)
def test_matmul_bias_relu(rng, shapes) -> None:
    (m, k), (_, n) = shapes
    scale = np.float32(1 / 3 / np.sqrt(k))  # unit-sized products, so float32 rounding stays inside FLOAT_TOL
    both_targets(lambda x, w, b: fc.relu(fc.matmul(x, w) + b),
                 {"x": sample(rng, (m, k), "float32") / 3, "w": sample(rng, (k, n), "float32") * scale,
                  "b": sample(rng, (n,), "float32")})


@pytest.mark.parametrize("batch", [300, None], ids=["static", "dynamic"])
def test_blas_epilogue_across_the_pool(rng, batch) -> None:
    """A BLAS product's epilogue (bias, relu, a second result) over 90k elements spreads over the pool
    from inside its one-piece kernel; with two threads, as in CI."""
    from flowc.runtime import set_num_threads

    from flowc.codegen.llvm.module import emit_module

    x, w = sample(rng, (300, 64), "float32") / 3, sample(rng, (64, 300), "float32") / 8
    b = sample(rng, (300,), "float32")
    g = fc.Graph()
    with g.as_default():
        px = fc.placeholder(fc.float32, shape=[batch, 64], name="x")
        pw, pb = fc.constant(w), fc.constant(b)
        h = fc.matmul(px, pw) + pb
        out = [fc.relu(h), h * 2.0]
    set_num_threads(2)
    try:
        with fc.Session(graph=g) as sess:
            got = sess.run(out, {px: x})
            (compiled,) = sess._cache.values()
    finally:
        set_num_threads(0)
    assert "@\"flowc_epilogue_" in str(emit_module(compiled.executable.program))  # Note [epilogues compiled once]
    want = fc.Session(target="reference", graph=g).run(out, {px: x})
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, rtol=1e-5, atol=1e-5)


def test_same_epilogues_compiled_once(rng) -> None:
    """Note [epilogues compiled once]: the bias and relu after two products of different k are one
    function, which both kernels call; a different epilogue (tanh) is one of its own. Values as numpy's."""
    import re

    from flowc.codegen.llvm.module import emit_module

    x = sample(rng, (40, 30), "float32") / 3
    w1, w2, w3 = (sample(rng, shape, "float32") / 8 for shape in [(30, 50), (50, 50), (50, 50)])
    b = sample(rng, (50,), "float32")
    g = fc.Graph()
    with g.as_default():
        px = fc.placeholder(fc.float32, shape=[None, 30], name="x")
        h = fc.relu(fc.matmul(px, fc.constant(w1)) + fc.constant(b))
        h = fc.relu(fc.matmul(h, fc.constant(w2)) + fc.constant(b))
        y = fc.tanh(fc.matmul(h, fc.constant(w3)) + fc.constant(b))
    with fc.Session(graph=g) as sess:
        got = sess.run(y, {px: x})
        (compiled,) = sess._cache.values()
    text = str(emit_module(compiled.executable.program))
    defined = re.findall(r'define internal void @"(flowc_epilogue_\w+)"', text)
    called = re.findall(r'call void @"(flowc_epilogue_\w+)"', text)
    assert len(defined) == 2 and len(called) == 3 and called[0] == called[1] != called[2], (defined, called)
    h = np.maximum(x @ w1 + b, 0)
    h = np.maximum(h @ w2 + b, 0)
    np.testing.assert_allclose(got, np.tanh(h @ w3 + b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [64, 10, 3], ids=["blas", "narrow", "narrower"])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_batched_transposed_matmuls(rng, transpose_a, transpose_b, dtype, n) -> None:
    """3 batches of m x 96 @ 96 x n: BLAS calls (n = 64) and generated narrow products, whose 3 * 801 rows
    are cut into pieces for the thread pool (FLOP_GRAIN), some across batches, and into blocks of 4 with
    1 left over."""
    m = 201 if n == 64 else 801
    a_shape = (3, 96, m) if transpose_a else (3, m, 96)
    b_shape = (n, 96) if transpose_b else (96, n)  # broadcast over the batch
    scale = 1 if dtype == "int32" else 0.1
    both_targets(lambda a, b: fc.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b) * 2,
                 {"a": (sample(rng, a_shape, dtype) * scale).astype(dtype),
                  "b": (sample(rng, b_shape, dtype) * scale).astype(dtype)})


@pytest.mark.parametrize("form", ["c - s*p", "c + p*s", "p + c", "c - lr*p", "c - p"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [50, 10], ids=["blas", "narrow"])
def test_accumulated_updates(rng, form, dtype, width) -> None:
    """Note [accumulated update]: C0 -+ s * (A^T @ B) computed by gemm with beta = 1 (C0 copied into the
    result first, since the fed C0 is not donated) or stored so by a narrow product, for a constant
    or a fed scalar s."""
    def build(a, b, c, lr):  # type: ignore[no-untyped-def]
        p = fc.matmul(a, b, transpose_a=True)
        return {"c - s*p": c - 0.25 * p, "c + p*s": c + p * 3.0, "p + c": p + c, "c - lr*p": c - lr * p,
                "c - p": c - p}[form]

    both_targets(build, {"a": sample(rng, (30, 40), dtype) * 0.1, "b": sample(rng, (30, width), dtype) * 0.1,
                         "c": sample(rng, (40, width), dtype), "lr": np.asarray(0.5, dtype)})


def test_accumulated_update_of_a_variable_in_place(rng) -> None:
    """The SGD step of a wide layer: gemm accumulates into W's own buffer; the product is never needed."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 30], name="x")
        dz = fc.placeholder(fc.float32, shape=[None, 40], name="dz")
        w0 = sample(rng, (30, 40), "float32")
        W = fc.Variable(w0, name="W")
        step = fc.assign_sub(W, 0.1 * fc.matmul(x, dz, transpose_a=True))
        init = fc.global_variables_initializer()
    feeds = {x: sample(rng, (8, 30), "float32"), dz: sample(rng, (8, 40), "float32")}
    with fc.Session(target="cpu", graph=g) as sess:
        sess.run(init)
        buffer = sess._values[W.op]
        sess.run(step, feeds)
        sess.run(step, feeds)
        assert sess._values[W.op] is buffer
        got = sess.run(W)
    expected = w0 - 2 * 0.1 * (feeds[x].T @ feeds[dz])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m", [1, 7, 8, 15, 16, 17, 33])
@pytest.mark.parametrize("n", [1, 10, 16])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_narrow_product_tiles(rng, m, n, transpose_a, dtype) -> None:
    """Generated narrow products (kernels/narrow.py) on both sides of every tile size: row tiles of 4 or
    8 rows, column tiles of 4 to 16 rows by the host's vector width, and the rows left over."""
    k = 19
    a_shape = (k, m) if transpose_a else (m, k)
    both_targets(lambda a, b: fc.matmul(a, b, transpose_a=transpose_a) + 1,
                 {"a": sample(rng, a_shape, dtype) * 0.1, "b": sample(rng, (k, n), dtype) * 0.1})


@pytest.mark.parametrize("k, transpose_b", [(784, False), (1007, False), (784, True)],
                         ids=["784", "uneven", "transposed"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_k_products(rng, k, transpose_b, dtype) -> None:
    """Note [split-k products]: on two threads a short batch times a tall narrow W splits by k (the
    pool cuts its units into two chunks, so the split path runs), the partials are summed, then the
    epilogue; 1000 rows do not fit the scratch and split by rows; an update form accumulates."""
    import ctypes

    from flowc.codegen.llvm.kernels.matmul import FLOP_GRAIN
    from flowc.codegen.llvm.program import host_vector_bytes
    from flowc.runtime import set_num_threads, support

    chunks = support().flowc_parallel_chunks
    chunks.argtypes, chunks.restype = (ctypes.c_int64, ctypes.c_int64), ctypes.c_int64
    lanes = host_vector_bytes() // np.dtype(dtype).itemsize
    w_shape = (10, k) if transpose_b else (k, 10)
    set_num_threads(2)
    try:
        # The split's condition (launch_matmul) holds for 100 rows: the split path is the one taken.
        assert chunks(-(-k // lanes), max(1, FLOP_GRAIN // ((100 * 10 + 1) * lanes))) == 2
        for m in (100, 3, 1000):
            _matches_reference_over_k(lambda x, w, b: fc.relu(fc.matmul(x, w, transpose_b=transpose_b) + b),
                                      {"x": sample(rng, (m, k), dtype) * 0.1, "w": sample(rng, w_shape, dtype) * 0.1,
                                       "b": sample(rng, (10,), dtype)})
        _matches_reference_over_k(lambda x, w, c: c - 0.5 * fc.matmul(x, w, transpose_b=transpose_b),
                                  {"x": sample(rng, (100, k), dtype) * 0.1, "w": sample(rng, w_shape, dtype) * 0.1,
                                   "c": sample(rng, (100, 10), dtype)})
    finally:
        set_num_threads(0)


def _matches_reference_over_k(build, feeds: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    """both_targets for sums of about a thousand terms of size 1: a summation order of its own differs
    from numpy's by a few ulps of the terms' size, not of the (partly cancelled) result's. Once with
    static shapes, once with the batch (x's first dim) given as None."""
    for batch in ("static", None):
        g = fc.Graph()
        with g.as_default():
            ph = {k: fc.placeholder(as_dtype(v.dtype), shape=[None, *v.shape[1:]] if k == "x" and batch is None
                                    else v.shape, name=k) for k, v in feeds.items()}
            out = build(**ph)
        got, want = (fc.Session(target=t, graph=g).run(out, {ph[k]: v for k, v in feeds.items()})
                     for t in ("cpu", "reference"))
        eps = np.finfo(want.dtype).eps
        np.testing.assert_allclose(got, want, rtol=100 * eps, atol=1000 * eps * np.abs(want).max())


def test_split_k_products_have_slices_and_a_combine() -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 784], name="x")
        y = fc.matmul(x, fc.constant(np.ones((784, 10), np.float32))) + 1.0
    with fc.Session(graph=g) as sess:
        np.testing.assert_allclose(sess.run(y, {x: np.ones((4, 784), np.float32)}), np.full((4, 10), 785.0))
        (compiled,) = sess._cache.values()
        from flowc.codegen.llvm.module import emit_module

        text = str(emit_module(compiled.executable.program))
    text = text.replace('"', "")  # llvmlite quotes names
    for name in ("kernel0_matmul_slices", "flowc_parallel_chunks"):
        assert f"@{name}(" in text, name
    assert "call void @kernel0_matmul(" in text  # the combine: the row kernel itself, given the partials


@pytest.mark.parametrize("width", [16, 32, 64], ids=["sse", "avx", "avx512"])
def test_narrow_product_tiles_for_every_vector_width(tmp_path, monkeypatch, rng, width) -> None:
    """The tile sizes follow the host's vector width; each width's schedule is right (built here in a
    cache of its own, since the real host decides the cache key)."""
    from flowc.passes.schedule import TargetInfo
    from flowc.targets import cpu

    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cpu, "host_target_info", lambda: TargetInfo(width))  # the schedule pass's tiles
    for transpose_a in (False, True):
        a_shape = (23, 37) if transpose_a else (37, 23)
        both_targets(lambda a, b: fc.matmul(a, b, transpose_a=transpose_a),
                     {"a": sample(rng, a_shape, "float32") * 0.1, "b": sample(rng, (23, 16), "float32") * 0.1})


@pytest.mark.parametrize("width", [16, 32], ids=["sse", "avx"])
def test_split_k_and_row_blocks_for_narrower_vectors(tmp_path, monkeypatch, rng, width) -> None:
    """Split-k slices are whole vectors and row blocks as many rows as 32-bit lanes, both by the
    host's vector width, as an SSE or AVX host would build them: a softmax-regression step of 10
    classes (split forward, column-tiled update) and a cross entropy of 3 classes (blocks of 4 or 8
    rows)."""
    from flowc.passes.schedule import TargetInfo
    from flowc.runtime import set_num_threads
    from flowc.targets import cpu

    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cpu, "host_target_info", lambda: TargetInfo(width))  # the schedule pass's tiles, row blocks
    feeds = {"x": sample(rng, (100, 784), "float32") * 0.05, "w": sample(rng, (784, 10), "float32") * 0.05,
             "labels": rng.integers(0, 3, 100).astype(np.int32), "z": sample(rng, (100, 3), "float32")}

    def step(x, w, labels, z):  # type: ignore[no-untyped-def]
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=fc.matmul(x, w)))
        (grad,) = fc.gradients(loss, [w])
        return [loss, w - 0.5 * grad, fc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=z)]

    set_num_threads(2)
    try:
        both_targets(step, feeds)
    finally:
        set_num_threads(0)


def test_shape_and_indexing_ops(rng) -> None:
    x = sample(rng, (4, 6, 5), "float32")
    i = np.array([3, 0, 2, 2], np.int32)
    both_targets(lambda x, i: [fc.transpose(x, [2, 0, 1]) * 2, fc.reshape(x, [-1, 10]) + 1,
                               fc.concat([x, x * 2], axis=1), x[1:, ::2, -1], fc.gather(x, i, axis=0),
                               fc.one_hot(i, 7), fc.expand_dims(fc.reduce_sum(x, axis=1), 0),
                               fc.broadcast_to(x[:1], [3, 6, 5])], {"x": x, "i": i})


# -- random graphs ---------------------------------------------------------------------------------


def native_run(module: Module, args: list[np.ndarray]) -> list[np.ndarray]:
    (function,) = module
    function.name = "main"  # what a Lowered's function is called
    module = Module([function])
    signature = Signature(feeds=(), variables=(), uses_step=False, fetches=(), updates=())
    return compile_lowered(Lowered(module, signature), "cpu", CompileOptions(optimize=False, verify=True))(args)


@settings(max_examples=90, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_graphs_native_vs_reference(data: st.DataObject) -> None:
    module, args = random_module(data)
    if any(op.name in ("cond", "while") for op in module.walk()):
        return  # control flow is not compiled natively yet (its own issue)
    want = evaluate(module["f"], args)
    source = print_module(module)
    got = native_run(module, args)
    for g_, w_ in zip(got, want, strict=True):
        assert_matches(g_, w_, source)


# -- one artifact for every batch size, and the disk cache ---------------------------------


def test_batch_sizes_1_7_1000_compile_once(rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 8], name="x")
        y = fc.nn.softmax(fc.matmul(x, fc.constant(sample(rng, (8, 4), "float32"))))
    with fc.Session(graph=g) as sess:
        for batch in (1, 7, 1000):
            data = sample(rng, (batch, 8), "float32")
            with fc.Session(graph=g, target="reference") as ref:
                assert_matches(sess.run(y, {x: data}), ref.run(y, {x: data}))
        (compiled,) = sess._cache.values()  # one compiled function; its artifact has a layout per size
        assert sorted(shape[0][0] for shape in compiled.executable._layouts) == [1, 7, 1000]


CHILD = """
import sys, numpy as np, flowc as fc
g = fc.Graph()
with g.as_default():
    x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
    y = fc.tanh(x * 2.0) + 1.0
with fc.Session(graph=g) as sess:
    out = sess.run(y, {x: np.ones((2, 3), np.float32)})
    (compiled,) = sess._cache.values()
    print(compiled.executable.was_cached, compiled.executable.library_path, float(out[0, 0]))
"""


def run_child(cache: str) -> tuple[bool, str, float]:
    env = {**os.environ, "FLOWC_CACHE_DIR": cache}
    output = subprocess.check_output([sys.executable, "-c", CHILD], env=env, text=True).split()
    return output[0] == "True", output[1], float(output[2])


def test_a_second_process_reuses_the_object_and_a_corrupted_one_is_rebuilt(tmp_path) -> None:
    cache = str(tmp_path)
    cached, path, value = run_child(cache)
    assert not cached and value == pytest.approx(np.tanh(2.0) + 1.0, rel=1e-6)
    cached, again, value = run_child(cache)
    assert cached and again == path  # loaded, not compiled
    with open(path, "r+b") as f:  # corrupt: same size, bytes flipped in the middle
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xff" * 64)
    cached, _, value = run_child(cache)
    assert not cached and value == pytest.approx(np.tanh(2.0) + 1.0, rel=1e-6)  # rebuilt, never loaded
    os.truncate(path, 100)
    cached, _, value = run_child(cache)
    assert not cached and value == pytest.approx(np.tanh(2.0) + 1.0, rel=1e-6)


# -- feeds are checked before native code sees them ---------------------------------------------


@pytest.fixture
def scaled():  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
        y = x * 3.0
    with fc.Session(graph=g) as sess:
        yield sess, x, y


def test_wrong_shape_and_dtype_feeds_are_refused(scaled) -> None:
    sess, x, y = scaled
    with pytest.raises(FeedError, match="shape"):
        sess.run(y, {x: np.ones((2, 5), np.float32)})
    with pytest.raises(FeedError, match="shape"):
        sess.run(y, {x: np.ones(4, np.float32)})
    with pytest.raises(FeedError):
        sess.run(y, {x: np.array([["a", "b", "c", "d"]])})
    with pytest.raises(FeedError):
        sess.run(y, {x: np.ones((2, 4), np.complex64)})


@pytest.mark.parametrize("kind", ["non-contiguous", "transposed", "read-only", "big-endian", "unaligned", "list"])
def test_unusual_arrays_are_made_native_first(scaled, kind) -> None:
    sess, x, y = scaled
    base = np.arange(40, dtype=np.float32).reshape(5, 8)
    if kind == "non-contiguous":
        data = base[:, ::2]
    elif kind == "transposed":
        data = np.asfortranarray(base[:4, :4])
    elif kind == "read-only":
        data = base[:, :4].copy()
        data.setflags(write=False)
    elif kind == "big-endian":
        data = base[:, :4].astype(">f4")
    elif kind == "unaligned":
        raw = np.zeros(5 * 4 * 4 + 1, np.uint8)[1:]
        data = raw.view(np.float32).reshape(5, 4)
        data[...] = base[:, :4]
    else:
        data = base[:, :4].tolist()
    out = sess.run(y, {x: data})
    np.testing.assert_array_equal(out, np.asarray(data, np.float32) * 3)
    assert out.flags.c_contiguous and out.dtype == np.float32 and out.flags.writeable


def test_dump_shows_the_fused_kernels_and_the_memory_plan(tmp_path, monkeypatch, rng) -> None:
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 64], name="x")
        h = fc.exp(x) * 2.0
        y = fc.reduce_sum(fc.matmul(h, fc.constant(sample(rng, (64, 32), "float32"))), axis=1)
    with fc.Session(graph=g) as sess:
        for batch in (2, 50):
            sess.run(y, {x: sample(rng, (batch, 64), "float32")})
    (plan,) = tmp_path.glob("*/13-plan-memory.txt")
    files = sorted(p.name for p in plan.parent.iterdir())
    assert files == ["00-input.ir", "01-check-supported.ir", "02-inline.ir", "03-licm.ir", "04-expand-convolutions.ir",
                     "05-widen-half-products.ir", "06-fuse.ir", "07-materialize-results.ir", "08-separate-products.ir",
                     "09-schedule.ir", "10-gang-loops.ir", "11-lift-constants.ir", "12-place-collectives.ir",
                     "13-plan-memory.ir",
                     "13-plan-memory.txt",
                     "layouts.txt"]
    fused = (plan.parent / "06-fuse.ir").read_text()
    assert 'kind = "loop"' in fused and 'kind = "matmul"' in fused and 'kind = "reduction"' in fused
    scheduled = (plan.parent / "09-schedule.ir").read_text()  # rows of 32: each one vector
    assert 'schedule = "loop"' in scheduled and 'schedule = "blas"' in scheduled
    assert 'schedule = "vector_rows"' in scheduled
    text = plan.read_text()
    assert "in temp 0, live in steps" in text and "in result 0" in text and "in arg 0" in text
    # exp(x) * 2 (batch x 64 floats) and the product (batch x 32) are temps: the peak follows the batch
    text = (plan.parent / "layouts.txt").read_text()
    assert "arguments [(2, 64)]: scratch arena peak" in text and "arguments [(50, 64)]: scratch arena peak" in text
    peaks = [int(line.split("peak ")[1].split()[0]) for line in text.splitlines() if "peak" in line]
    assert peaks[1] > peaks[0] > 0


@pytest.mark.parametrize("width", [16384, 16385], ids=["row kept", "row recomputed"])
def test_softmax_rows_at_the_kept_row_limit(rng, width) -> None:
    """Note [kept row]: exp(x - max) is stored during the sum and read back, for rows up to 64 KiB."""
    both_targets(lambda x: fc.nn.softmax(x), {"x": sample(rng, (3, width), "float32")})


def test_profile_times_each_kernel(monkeypatch, rng) -> None:
    monkeypatch.setenv("FLOWC_PROFILE", "1")
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 32], name="x")
        y = fc.nn.softmax(fc.matmul(fc.tanh(x), fc.constant(sample(rng, (32, 8), "float32"))))
    with fc.Session(graph=g) as sess:
        for _ in range(5):
            sess.run(y, {x: sample(rng, (64, 32), "float32")})
        (compiled,) = sess._cache.values()
        rows = compiled.executable.profile()
    assert [row["kind"] for row in rows] == ["loop", "matmul", "reduction"]
    assert all(row["calls"] == 5 and row["ms"] > 0 for row in rows)
    assert rows[0]["ops"] == ["tanh"] and "reduce_max" in rows[2]["ops"]


def test_no_profile_without_the_switch(rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        y = x * 2.0
    with fc.Session(graph=g) as sess:
        sess.run(y, {x: np.ones(3, np.float32)})
        (compiled,) = sess._cache.values()
        with pytest.raises(fc.FlowcError, match="FLOWC_PROFILE=1"):
            compiled.executable.profile()


NO_BLAS_CHILD = """
import numpy as np, flowc as fc
g = fc.Graph()
with g.as_default():
    x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
    narrow = fc.matmul(fc.tanh(x), fc.constant(np.ones((4, 3), np.float32)))  # generated code, no BLAS call
    wide = fc.matmul(x, fc.constant(np.ones((4, 40), np.float32)))
with fc.Session(graph=g) as sess:
    sess.run(narrow, {x: np.ones((2, 4), np.float32)})
    maps = open("/proc/self/maps").read()
    print("scipy_openblas32" in maps, end=" ")
    sess.run(wide, {x: np.ones((2, 4), np.float32)})
    print("scipy_openblas32" in open("/proc/self/maps").read())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the process's mappings (Linux)")
def test_only_artifacts_that_call_blas_load_it(tmp_path) -> None:
    env = {**os.environ, "FLOWC_CACHE_DIR": str(tmp_path)}
    output = subprocess.check_output([sys.executable, "-c", NO_BLAS_CHILD], env=env, text=True).split()
    assert output == ["False", "True"]


ONE_POOL_CHILD = """
import ctypes, os, numpy as np, flowc as fc
from flowc.codegen.llvm.blas import blas_library
from flowc.runtime import set_num_threads, support
gangs = support().flowc_gangs_run
gangs.restype = ctypes.c_int64
rng = np.random.default_rng(0)
a, b = (rng.standard_normal((384, 384)).astype(np.float32) for _ in range(2))
g = fc.Graph()
with g.as_default():
    x = fc.placeholder(fc.float32, shape=[None, 384], name="x")
    y = fc.matmul(x, fc.constant(b)) + 1.0
with fc.Session(graph=g) as sess:
    before = gangs()
    out = sess.run(y, {x: a})
    blas = ctypes.CDLL(blas_library())
    print(blas.scipy_openblas_get_num_threads(), gangs() > before, end=" ")
    print("OPENBLAS_THREAD_TIMEOUT" in os.environ, end=" ")  # load_blas() sets it only while loading
    np.testing.assert_allclose(out, a @ b + 1, rtol=1e-4, atol=1e-3)
    set_num_threads(1)
    print(blas.scipy_openblas_get_num_threads(), end=" ")
    before = gangs()
    np.testing.assert_allclose(sess.run(y, {x: a}), a @ b + 1, rtol=1e-4, atol=1e-3)
    print(gangs() == before, end=" ")
    set_num_threads(2)
    pid = os.fork()  # the child's pool starts afresh; OpenBLAS still runs its threads there
    if pid == 0:
        ok = np.allclose(sess.run(y, {x: a}), a @ b + 1, rtol=1e-4, atol=1e-3)
        os._exit(0 if ok else 1)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_openblas_runs_its_threads_on_flowcs_pool(tmp_path) -> None:
    # Note [one pool]: loading an artifact that calls BLAS gives OpenBLAS flowc's thread count, and
    # its threaded calls run as gangs on flowc's pool; one thread means no gang at all.
    env = {**os.environ, "FLOWC_CACHE_DIR": str(tmp_path), "FLOWC_NUM_THREADS": "3"}
    env.pop("OPENBLAS_THREAD_TIMEOUT", None)
    env.pop("GOTO_THREAD_TIMEOUT", None)
    output = subprocess.check_output([sys.executable, "-c", ONE_POOL_CHILD], env=env, text=True).split()
    assert output == ["3", "True", "False", "1", "True", "0"]


# -- runs that cannot fit in memory: refused before allocating, naming the op -------------------------


def outer_product_graph():
    g = fc.Graph()
    with g.as_default():
        a = fc.placeholder(fc.float32, shape=[None, 1], name="a")
        b = fc.placeholder(fc.float32, shape=[1, None], name="b")
        product = fc.matmul(a, b, name="outer")
    return g, a, b, product


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_a_product_too_big_for_memory_names_the_op(target) -> None:
    """1e6 x 1 times 1 x 1e6 is 4 TB of float32: a ResourceExhaustedError (a MemoryError too) naming
    the matmul, its shape and bytes, and the user's line, not numpy's bare MemoryError."""
    g, a, b, product = outer_product_graph()
    column, row = np.ones((10**6, 1), np.float32), np.ones((1, 10**6), np.float32)
    with fc.Session(graph=g, target=target) as sess:
        with pytest.raises(ResourceExhaustedError) as info:
            sess.run(product, {a: column, b: row})
        assert isinstance(info.value, MemoryError)
        assert info.value.op == "matmul 'outer'" and info.value.where.startswith("test_native.py:")
        assert "f32[1000000,1000000] needs 3.64 TiB (4000000000000 bytes)" in str(info.value)
        small = sess.run(product, {a: column[:3], b: row[:, :5] * 2})  # the session still runs what fits
        np.testing.assert_array_equal(small, np.full((3, 5), 2, np.float32))


def test_a_run_whose_values_together_exceed_memory_names_the_biggest(monkeypatch) -> None:
    """No value is over the limit alone; the results and scratch together are. The layout is
    checked once per set of shapes: a run that fits pays nothing more."""
    from flowc import memory_limit

    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None], name="x")
        wide = fc.concat([x, x], axis=0, name="wide")
        fetches = [fc.exp(wide, name="grown") * 2.0, fc.tanh(x, name="small")]
    with fc.Session(graph=g) as sess:
        monkeypatch.setattr(memory_limit, "machine_memory_bytes", lambda: 1 << 20)
        fits = np.linspace(-1, 1, 1000, dtype=np.float32)
        got = sess.run(fetches, {x: fits})
        np.testing.assert_allclose(got[0], np.exp(np.concatenate([fits, fits])) * 2, rtol=2e-6)
        with pytest.raises(ResourceExhaustedError) as info:
            sess.run(fetches, {x: np.zeros(100_000, np.float32)})  # results 800 + 400 kB, `wide` 800 kB
        message = str(info.value)
        assert info.value.op == "concat 'wide'"  # as big as the product's result, and computed first
        assert "this run needs 1.91 MiB (2000000 bytes) for its results and scratch" in message, message
        assert "more than this machine's 1.00 MiB (1048576 bytes) of memory" in message
        assert "the largest value is this op's result f32[200000], 781.25 KiB (800000 bytes)" in message
        assert info.value.where.startswith("test_native.py:")


def test_the_disk_cache_keys_on_the_dim_slots(tmp_path, monkeypatch) -> None:
    """Compiled code bakes in which dims slot each unknown dim reads (DimTable), a choice made by
    rules outside codegen (DimTies): code compiled for other slots is never taken from the cache."""
    from flowc.codegen.llvm.program import DimTable

    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        y = fc.reduce_sum(x * 2.0, axis=1)

    def compiled_was_cached() -> bool:
        with fc.Session(graph=g) as sess:
            np.testing.assert_array_equal(sess.run(y, {x: np.ones((2, 3), np.float32)}), [6, 6])
            (entry,) = sess._cache.values()
            return entry.executable.was_cached

    assert not compiled_was_cached()
    assert compiled_was_cached()
    describe = DimTable.describe
    monkeypatch.setattr(DimTable, "describe", lambda self, function: describe(self, function) + "\nother rules")
    assert not compiled_was_cached()
