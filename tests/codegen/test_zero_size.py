"""Zero-size dims compile and give numpy's empty (or zero) results on the CPU.

Each case runs twice: with its zero dims in the placeholders' static shapes, and with those dims
None and fed 0 at run time. Products cover m, n and k zero (k = 0 gives zeros, or C0 for an
accumulated update), on every path: generated narrow code, its split by k, OpenBLAS (whose leading
dimensions must be at least 1 even where a dim is 0) and integer loops. Reductions over a
zero-size axis are tested for reduce_sum only (the others' answers are decided elsewhere);
reductions over non-empty axes of an array with a zero-size dim, for all.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

import flowc as fc

F32, F64, I32 = fc.float32, fc.float64, fc.int32

Inputs = list[tuple[tuple[int, ...], fc.DType]]
CASES: dict[str, tuple[Inputs, Callable]] = {
    # products
    "matmul n=0": ([((3, 4), F32), ((4, 0), F32)], lambda a, b: fc.matmul(a, b)),
    "matmul n=0 of a constant": ([((3, 4), F32)], lambda a: fc.matmul(a, fc.zeros([4, 0]))),
    "matmul n=0 with bias": ([((3, 4), F32), ((4, 0), F32), ((0,), F32)],
                             lambda a, b, c: fc.tanh(fc.matmul(a, b) + c)),
    "matmul n=0 batched": ([((2, 3, 4), F32), ((2, 4, 0), F32)], lambda a, b: fc.matmul(a, b) * 2.0),
    "matmul n=0 transpose_b": ([((3, 4), F32), ((0, 4), F32)], lambda a, b: fc.matmul(a, b, transpose_b=True)),
    "matmul n=0 int32": ([((3, 4), I32), ((4, 0), I32)], lambda a, b: fc.matmul(a, b)),
    "matmul m=0 narrow": ([((0, 4), F32), ((4, 5), F32)], lambda a, b: fc.matmul(a, b)),
    "matmul m=0 blas": ([((0, 4), F32), ((4, 40), F32)], lambda a, b: fc.matmul(a, b)),
    "matmul m=0 narrow, long k": ([((0, 4096), F32), ((4096, 10), F32)], lambda a, b: fc.matmul(a, b) + 1.0),
    # k long enough that, with no rows, launch_matmul splits it in two on two threads
    "matmul m=0 split-k": ([((0, 1 << 19), F32), ((10, 1 << 19), F32)],
                           lambda a, b: fc.matmul(a, b, transpose_b=True) + 1.0),
    "matmul m=0 transpose_a": ([((64, 0), F32), ((64, 10), F32)], lambda a, b: fc.matmul(a, b, transpose_a=True)),
    "matmul m=0 int32": ([((0, 3), I32), ((3, 4), I32)], lambda a, b: fc.matmul(a, b)),
    "matmul k=0 narrow": ([((3, 0), F32), ((0, 5), F32)], lambda a, b: fc.matmul(a, b)),
    "matmul k=0 narrow tall": ([((300, 0), F32), ((0, 5), F32)], lambda a, b: fc.matmul(a, b)),
    "matmul k=0 blas": ([((3, 0), F32), ((0, 40), F32)], lambda a, b: fc.matmul(a, b)),
    "matmul k=0 blas float64": ([((3, 0), F64), ((0, 40), F64)], lambda a, b: fc.matmul(a, b)),
    "matmul k=0 blas with bias": ([((3, 0), F32), ((0, 40), F32), ((40,), F32)],
                                  lambda a, b, c: fc.tanh(fc.matmul(a, b) + c)),
    "matmul k=0 transpose_a": ([((0, 3), F32), ((0, 5), F32)], lambda a, b: fc.matmul(a, b, transpose_a=True)),
    "matmul k=0 transpose_a tall": ([((0, 64), F32), ((0, 10), F32)], lambda a, b: fc.matmul(a, b, transpose_a=True)),
    "matmul k=0 blas transpose_b": ([((3, 0), F32), ((40, 0), F32)], lambda a, b: fc.matmul(a, b, transpose_b=True)),
    "matmul k=0 int32": ([((3, 0), I32), ((0, 4), I32)], lambda a, b: fc.matmul(a, b)),
    "matmul m=n=k=0": ([((0, 0), F32), ((0, 0), F32)], lambda a, b: fc.matmul(a, b)),
    "matmul batch=0": ([((0, 3, 4), F32), ((0, 4, 5), F32)], lambda a, b: fc.matmul(a, b)),
    "update k=0 blas": ([((40, 30), F32), ((40, 0), F32), ((0, 30), F32)], lambda w, a, b: w - 0.5 * fc.matmul(a, b)),
    "update k=0 narrow": ([((40, 10), F32), ((40, 0), F32), ((0, 10), F32)], lambda w, a, b: w - 0.5 * fc.matmul(a, b)),
    "update k=0 transpose_a": ([((40, 10), F32), ((0, 40), F32), ((0, 10), F32)],
                               lambda w, a, b: w - 0.5 * fc.matmul(a, b, transpose_a=True)),
    # reductions over a zero-size axis: sums only
    "reduce_sum over an empty last axis": ([((3, 0), F32)], lambda a: fc.reduce_sum(fc.exp(a), axis=1)),
    "reduce_sum over an empty first axis": ([((0, 3), F32)], lambda a: fc.reduce_sum(fc.exp(a), axis=0)),
    "reduce_sum over an empty first axis, wide": ([((0, 40), F32)], lambda a: fc.reduce_sum(a, axis=0)),
    "reduce_sum over an empty axis, threaded": ([((100000, 0), F32)], lambda a: fc.reduce_sum(a, axis=1)),
    "reduce_sum of everything, empty": ([((2, 0, 3), F32)], lambda a: fc.reduce_sum(a)),
    "reduce_sum over an empty axis, keepdims": ([((0, 3), F32)],
                                                 lambda a: fc.reduce_sum(a * 2.0, axis=0, keepdims=True)),
    "reduce_sum int32 over an empty axis": ([((4, 0), I32)], lambda a: fc.reduce_sum(a, axis=1)),
    # reductions over non-empty axes of an array with a zero-size dim
    "reduce_sum, empty rows": ([((0, 3), F32)], lambda a: fc.reduce_sum(fc.exp(a), axis=1)),
    "reduce_mean, empty rows": ([((0, 3), F32)], lambda a: fc.reduce_mean(a, axis=1)),
    "reduce_max, empty rows": ([((0, 3), F32)], lambda a: fc.reduce_max(a, axis=1)),
    "reduce_max, empty columns": ([((3, 0), F32)], lambda a: fc.reduce_max(a, axis=0)),
    "reduce_min, empty middle": ([((3, 0, 2), F32)], lambda a: fc.reduce_min(a, axis=2)),
    "argmax, empty rows": ([((0, 3), F32)], lambda a: fc.argmax(a, axis=1)),
    "argmax, empty columns": ([((3, 0), F32)], lambda a: fc.argmax(a, axis=0)),
    "softmax, empty rows": ([((0, 5), F32)], lambda a: fc.nn.softmax(a)),
    "log_softmax, empty rows, wide": ([((0, 40), F32)], lambda a: fc.nn.log_softmax(a)),
    "softmax over axis 0, empty columns": ([((5, 0), F32)], lambda a: fc.nn.softmax(a, axis=0)),
    "cross entropy, empty batch": ([((0, 5), F32), ((0, 5), F32)],
                                   lambda a, b: fc.nn.softmax_cross_entropy_with_logits(labels=b, logits=a)),
    # data movement
    "concat, an empty piece": ([((2, 3), F32), ((0, 3), F32)], lambda a, b: fc.concat([a, b], axis=0)),
    "concat, an empty first piece": ([((2, 0), F32), ((2, 3), F32)], lambda a, b: fc.concat([a, b], axis=1)),
    "concat, all empty": ([((0, 3), F32), ((0, 3), F32)], lambda a, b: fc.concat([a, b], axis=0)),
    "concat, empty along another axis": ([((0, 3), F32), ((0, 2), F32)], lambda a, b: fc.concat([a, b], axis=1)),
    "gather, no indices": ([((4, 3), F32), ((0,), I32)], lambda a, i: fc.gather(a, i)),
    "gather, empty table, no indices": ([((0, 3), F32), ((0,), I32)], lambda a, i: fc.gather(a, i)),
    "gather, empty rows": ([((4, 0), F32), ((2,), I32)], lambda a, i: fc.gather(a, i)),
    "one_hot, no indices": ([((0,), I32)], lambda i: fc.one_hot(i, 4)),
    "transpose": ([((0, 3), F32)], lambda a: fc.transpose(a)),
    "transpose, rank 3": ([((2, 0, 3), F32)], lambda a: fc.transpose(a, [2, 0, 1]) * 2.0),
    "slice to empty": ([((4, 3), F32)], lambda a: a[2:2]),
    "slice to empty, backwards": ([((4, 3), F32)], lambda a: a[:, 3:1]),
    "slice of an empty array": ([((0, 3), F32)], lambda a: a[:, 1:]),
    "broadcast_to an empty shape": ([((1, 3), F32)], lambda a: fc.broadcast_to(a, [0, 3])),
    "broadcast_to of an empty array": ([((0, 1), F32)], lambda a: fc.broadcast_to(a, [0, 4])),
    "reshape": ([((0, 6), F32)], lambda a: fc.reshape(a, [0, 2, 3]) + 1.0),
    # elementwise
    "elementwise with a broadcast": ([((0, 3), F32), ((3,), F32)], lambda a, b: fc.tanh(a) * b + 1.0),
    "elementwise chain": ([((2, 0), F32), ((2, 0), F32)], lambda a, b: fc.maximum(fc.exp(a), b) - fc.sqrt(fc.abs(b))),
    "elementwise int32": ([((0, 5), I32)], lambda a: a * 3 + 1),
    "where": ([((0, 3), F32), ((0, 3), F32)], lambda a, b: fc.where(a > b, a, b)),
}


def run(name: str, symbolic: bool, target: str) -> np.ndarray:
    """Case `name` on `target`; with `symbolic`, its placeholders have None where the data has 0."""
    inputs, function = CASES[name]
    g = fc.Graph()
    with g.as_default():
        xs = [fc.placeholder(dtype, shape=[None if symbolic and d == 0 else d for d in shape], name=f"in{i}")
              for i, (shape, dtype) in enumerate(inputs)]
        y = function(*xs)
    rng = np.random.default_rng(0)
    feeds = {x: rng.integers(0, 2, shape).astype(np.int32) if dtype == I32 else rng.standard_normal(shape)
             for x, (shape, dtype) in zip(xs, inputs)}
    with fc.Session(graph=g, target=target) as sess:
        return sess.run(y, feeds)


@pytest.mark.parametrize("symbolic", [False, True], ids=["static", "fed"])
@pytest.mark.parametrize("name", list(CASES))
def test_zero_size_dims_match_the_reference(name, symbolic) -> None:
    got, want = run(name, symbolic, "cpu"), run(name, symbolic, "reference")
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_k_zero_gives_zeros_in_a_reused_buffer() -> None:
    """An empty sum is 0 even where the output buffer held something: the caching allocator hands
    back a dropped result's bytes (here one of 3s) for the next one of its size."""
    g = fc.Graph()
    with g.as_default():
        a = fc.placeholder(fc.float32, shape=[500, None])
        b = fc.placeholder(fc.float32, shape=[None, 40])
        ones = fc.placeholder(fc.float32, shape=[500, 40])
        product, threes = fc.matmul(a, b), ones * 3.0
    with fc.Session(graph=g) as sess:
        for _ in range(3):
            sess.run(threes, {ones: np.ones((500, 40), np.float32)})  # dropped at once
            result = sess.run(product, {a: np.ones((500, 0), np.float32), b: np.ones((0, 40), np.float32)})
            np.testing.assert_array_equal(result, np.zeros((500, 40), np.float32))


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("params_shape, indices, bad", [((0, 0), [0], 0), ((3, 0), [0, 2, -1], -1), ((3, 0), [2, 3], 3),
                                                       ((3, 0), [0, 2, 1], None), ((3, 0), [], None)], ids=str)
def test_gather_checks_indices_of_empty_slices(target, params_shape, indices, bad) -> None:
    """Note [indices of empty slices]: an index out of range is an error even where the result is empty."""
    g = fc.Graph()
    with g.as_default():
        params = fc.placeholder(fc.float32, [None, None], name="params")
        index = fc.placeholder(fc.int64, [None], name="index")
        out = fc.gather(params, index, axis=0)
    feed = {params: np.zeros(params_shape, np.float32), index: np.array(indices, np.int64)}
    with fc.Session(graph=g, target=target) as sess:
        if bad is None:
            assert sess.run(out, feed).shape == (len(indices), 0)
        else:
            with pytest.raises(fc.errors.IndexOutOfRange, match=f"index {bad} is out of range"):
                sess.run(out, feed)
