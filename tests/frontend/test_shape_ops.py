"""TF1's shape and indexing ops (compiler/shape_ops.py, index_ops.py, einsum.py): values against numpy
on both targets, None dims fed several sizes, gradients against central differences, and errors
that name the op and the user's line."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcTypeError, IndexOutOfRange

TARGETS = ("reference", "cpu")
DTYPES = (np.float32, np.float64, np.int32, np.int64, np.bool_)


def sample(rng: np.random.Generator, shape: tuple, dtype=np.float32) -> np.ndarray:  # type: ignore[no-untyped-def]
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "i":
        return rng.integers(-9, 10, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def run_both(build, feeds: dict, declared: dict | None = None) -> list:  # type: ignore[no-untyped-def]
    """Build on placeholders (shapes from `declared`, None dims allowed), run on both targets; the
    targets' results must be equal (integers, bools) or close (floats). Returns the reference's."""
    declared = declared or {}
    g = fc.Graph()
    with g.as_default():
        ph = {k: fc.placeholder(_dtype(v.dtype), shape=declared.get(k, v.shape), name=k) for k, v in feeds.items()}
        out = build(**ph)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
    results = {}
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            results[target] = sess.run(outs, {ph[k]: v for k, v in feeds.items()})
    for got, want in zip(results["cpu"], results["reference"], strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)
    return results["reference"]


def _dtype(dtype: np.dtype):  # type: ignore[no-untyped-def]
    return {"float32": fc.float32, "float64": fc.float64, "int32": fc.int32, "int64": fc.int64,
            "bool": fc.bool_}[np.dtype(dtype).name]


def same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# -- run-time shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize("rows, depth", [(2, 0), (1, 1), (5, 7), (33, 2)])
def test_shape_size_rank_and_reshape_on_none_dims(rows: int, depth: int, rng) -> None:
    x = sample(rng, (rows, 3, depth))
    shape, size, rank, flat, batch = run_both(
        lambda x: [fc.shape(x), fc.size(x, out_type=fc.int64), fc.rank(x), fc.reshape(x, [fc.shape(x)[0], -1]),
                   fc.reshape(x, fc.shape(x)[::-1])],
        {"x": x}, {"x": (None, 3, None)})
    np.testing.assert_array_equal(shape, [rows, 3, depth])
    assert shape.dtype == np.int32 and size.dtype == np.int64 and size == x.size and rank == 3
    same(flat, x.reshape(rows, -1))
    same(batch, x.reshape(depth, 3, rows))


def test_several_none_dims_fed_different_sizes(rng) -> None:
    """Two placeholders with None dims of unrelated sizes: each dim comes from its own tensor."""
    a, b = sample(rng, (4, 6)), sample(rng, (7, 2))
    out = run_both(lambda a, b: [fc.zeros_like(a) + 1.0, fc.fill([fc.shape(b)[0], fc.shape(a)[1]], 2.5),
                                 fc.broadcast_to(fc.constant([1.0, 2.0]), [fc.shape(a)[0], fc.shape(b)[0], 2]),
                                 fc.reshape(a, fc.stack([fc.shape(a)[1], fc.shape(a)[0]]))],
                   {"a": a, "b": b}, {"a": (None, None), "b": (None, 2)})
    same(out[0], np.ones((4, 6), np.float32))
    same(out[1], np.full((7, 6), 2.5, np.float32))
    same(out[2], np.broadcast_to(np.array([1.0, 2.0], np.float32), (4, 7, 2)))
    same(out[3], a.reshape(6, 4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zeros_like_and_ones_like_on_none_dims_in_every_dtype(dtype, rng) -> None:
    x = sample(rng, (3, 0, 2), dtype) if dtype == np.int64 else sample(rng, (3, 5, 2), dtype)
    zeros, ones, as_int = run_both(lambda x: [fc.zeros_like(x), fc.ones_like(x), fc.ones_like(x, dtype=fc.int32)],
                                   {"x": x}, {"x": (None, None, 2)})
    np.testing.assert_array_equal(zeros, np.zeros_like(x))
    np.testing.assert_array_equal(ones, np.ones_like(x))
    assert zeros.dtype == x.dtype and as_int.dtype == np.int32 and as_int.shape == x.shape


def test_shape_as_a_value_in_arithmetic(rng) -> None:
    """fc.shape's value is a tensor like any other: a mean written with the batch size."""
    x = sample(rng, (6, 3))
    (mean,) = run_both(lambda x: [fc.reduce_sum(x, axis=0) / fc.cast(fc.shape(x)[0], fc.float32)],
                       {"x": x}, {"x": (None, 3)})
    same(mean, x.mean(axis=0))


def test_a_shape_computed_from_data_is_refused_naming_the_line() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [None, 4])
        n = fc.placeholder(fc.int32, [])
        with pytest.raises(FlowcTypeError, match=r"reshape.*test_shape_ops.py:\d+.*computed from data"):
            fc.reshape(x, [n, -1])
        with pytest.raises(FlowcTypeError, match=r"fill.*computed from data"):
            fc.fill(fc.shape(x) * 2, 1.0)


def test_reshape_with_dims_from_shape_checks_the_count_at_run_time(rng) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 4])
        y = fc.placeholder(fc.float32, [None])
        out = fc.reshape(x, [fc.shape(y)[0], 4])
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            same(sess.run(out, {x: np.ones((3, 4)), y: np.ones(3)}), np.ones((3, 4), np.float32))
            with pytest.raises(fc.errors.FlowcError, match="reshape"):
                sess.run(out, {x: np.ones((3, 4)), y: np.ones(2)})


def test_gradients_through_dims_from_shape(rng) -> None:
    x = sample(rng, (5, 6), np.float64)
    check_gradient(lambda x: fc.reshape(x, [fc.shape(x)[0], 2, 3]), x, (None, 6))
    check_gradient(lambda x: fc.reshape(x * x, [-1, fc.shape(x)[0]]), x, (None, None))
    check_gradient(lambda x: x * fc.ones_like(x) + fc.broadcast_to(fc.reduce_sum(x), [fc.shape(x)[0], 1]), x,
                   (None, 6))
    check_gradient(lambda x: fc.reshape(x, [-1]) * 2.0, x, (None, None))  # reshape's gradient: x lends both sizes
    check_gradient(lambda x: fc.pad(x, [[1, 2], [0, 1]], constant_values=1.0), x, (None, 6))
    check_gradient(lambda x: fc.einsum("ij,ik->jk", x, x), x, (None, None))


# -- gradients ------------------------------------------------------------------------------


def check_gradient(build, x: np.ndarray, declared: tuple | None = None) -> None:  # type: ignore[no-untyped-def]
    """d sum(build(x)^2 * w) / dx on both targets against central differences, in float64."""
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.float64, shape=declared or x.shape, name="x")
        out = build(p)
        outs = out if isinstance(out, (list, tuple)) else [out]
        loss = sum(fc.reduce_sum(o * o * (1.0 + 0.25 * i)) for i, o in enumerate(outs))
        (grad,) = fc.gradients(loss, [p])
    with fc.Session(target="reference", graph=g) as sess:
        want = np.zeros_like(x)
        for index in np.ndindex(*x.shape):
            up, down = x.copy(), x.copy()
            up[index] += 1e-6
            down[index] -= 1e-6
            want[index] = (sess.run(loss, {p: up}) - sess.run(loss, {p: down})) / 2e-6
        np.testing.assert_allclose(sess.run(grad, {p: x}), want, rtol=1e-6, atol=1e-6)
    with fc.Session(target="cpu", graph=g) as sess:
        np.testing.assert_allclose(sess.run(grad, {p: x}), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", ["tile", "pad_constant", "pad_reflect", "pad_symmetric", "slice", "split_count",
                                  "split_sizes", "unstack", "reverse", "gather_axis", "gather_nd", "scatter_nd",
                                  "einsum", "einsum_none", "einsum_ellipsis"])
def test_gradients_against_central_differences(case: str, rng) -> None:
    x = sample(rng, (3, 4), np.float64)
    builds = {
        "tile": lambda x: fc.tile(x, [2, 3]),
        "pad_constant": lambda x: fc.pad(x, [[1, 2], [0, 3]], constant_values=1.5),
        "pad_reflect": lambda x: fc.pad(x, [[2, 1], [3, 1]], mode="REFLECT"),
        "pad_symmetric": lambda x: fc.pad(x, [[3, 1], [4, 2]], mode="symmetric"),
        "slice": lambda x: fc.slice(x, [1, 1], [2, -1]),
        "split_count": lambda x: fc.split(x, 2, axis=1),
        "split_sizes": lambda x: fc.split(x, [1, -1, 1], axis=0),
        "unstack": lambda x: fc.unstack(x, axis=1),
        "reverse": lambda x: fc.reverse(x, [0, -1]),
        "gather_axis": lambda x: fc.gather(x, [3, 0, 3], axis=1),
        "gather_nd": lambda x: fc.gather_nd(x, [[2, 1], [0, 3], [2, 1]]),
        "scatter_nd": lambda x: fc.scatter_nd([[1], [3], [1]], x, [5, 4]),
        "einsum": lambda x: fc.einsum("ij,kj->ik", x, fc.constant(np.arange(8.0).reshape(2, 4))),
        "einsum_none": lambda x: fc.einsum("ij,ij->i", x, x),
        "einsum_ellipsis": lambda x: fc.einsum("...j,...jk->...k", x, fc.constant(np.arange(8.0).reshape(1, 4, 2)))
        * x[:, :2],
    }
    check_gradient(builds[case], x, (None, 4) if case in ("einsum_none",) else None)


# -- values against numpy ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_tile_pad_reverse_slice_in_every_dtype(dtype, rng) -> None:
    x = sample(rng, (3, 5), dtype)
    out = run_both(lambda x: [fc.tile(x, [2, 1]), fc.pad(x, [[1, 0], [2, 2]]), fc.pad(x, [[2, 2], [4, 3]], "REFLECT"),
                              fc.pad(x, [[3, 0], [5, 1]], "SYMMETRIC"), fc.reverse(x, [1]), fc.slice(x, [1, 2], [-1, 2]),
                              fc.pad(x, [[1, 1], [1, 1]], constant_values=1)], {"x": x})
    np.testing.assert_array_equal(out[0], np.tile(x, [2, 1]))
    np.testing.assert_array_equal(out[1], np.pad(x, [[1, 0], [2, 2]]))
    np.testing.assert_array_equal(out[2], np.pad(x, [[2, 2], [4, 3]], "reflect"))
    np.testing.assert_array_equal(out[3], np.pad(x, [[3, 0], [5, 1]], "symmetric"))
    np.testing.assert_array_equal(out[4], x[:, ::-1])
    np.testing.assert_array_equal(out[5], x[1:, 2:4])
    np.testing.assert_array_equal(out[6], np.pad(x, 1, constant_values=1))


@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (4, 1), (2, 7)])
def test_tile_pad_on_size_zero_and_one_dims(shape, rng) -> None:
    x = sample(rng, shape)
    out = run_both(lambda x: [fc.tile(x, [3, 0]), fc.tile(x, [1, 2]), fc.pad(x, [[0, 1], [1, 0]], constant_values=-2.0),
                              fc.pad(x, [[0, 0], [1, 1]], "SYMMETRIC")], {"x": x})
    same(out[0], np.tile(x, [3, 0]))
    same(out[1], np.tile(x, [1, 2]))
    same(out[2], np.pad(x, [[0, 1], [1, 0]], constant_values=-2))
    same(out[3], np.pad(x, [[0, 0], [1, 1]], "symmetric"))


@pytest.mark.parametrize("rows", [0, 1, 5])
def test_tile_on_none_dims(rows: int, rng) -> None:
    x = sample(rng, (rows, 2, 3), np.int64)
    out = run_both(lambda x: [fc.tile(x, [1, 3, 2]), fc.tile(x, [2, 1, 1]), fc.tile(fc.expand_dims(x, 1), [1, 4, 1, 1])],
                   {"x": x}, {"x": (None, 2, None)})
    np.testing.assert_array_equal(out[0], np.tile(x, [1, 3, 2]))
    np.testing.assert_array_equal(out[1], np.tile(x, [2, 1, 1]))
    np.testing.assert_array_equal(out[2], np.tile(x[:, None], [1, 4, 1, 1]))
    check_gradient(lambda x: fc.tile(x, [1, 3]), sample(rng, (max(rows, 1), 2), np.float64), (None, 2))  # a static axis


@pytest.mark.parametrize("rows", [1, 2, 9])
def test_pad_constant_and_reverse_on_a_none_dim(rows: int, rng) -> None:
    x = sample(rng, (rows, 3))
    out = run_both(lambda x: [fc.pad(x, [[0, 0], [2, 1]], constant_values=fc.constant(3.0)), fc.pad(x, [[1, 2], [0, 0]]),
                              fc.reverse(x, [0]), fc.pad(x, [[0, 0], [2, 1]], "REFLECT")], {"x": x}, {"x": (None, 3)})
    same(out[0], np.pad(x, [[0, 0], [2, 1]], constant_values=3))
    same(out[1], np.pad(x, [[1, 2], [0, 0]]))
    same(out[2], x[::-1])
    same(out[3], np.pad(x, [[0, 0], [2, 1]], "reflect"))


def test_split_and_unstack(rng) -> None:
    x = sample(rng, (4, 6, 2), np.int32)
    out = run_both(lambda x: [*fc.split(x, 3, axis=1), *fc.split(x, [1, 0, -1], axis=0), *fc.unstack(x, axis=-1),
                              *fc.split(x, [2, 4], 1)], {"x": x})
    want = [*np.split(x, 3, axis=1), x[:1], x[1:1], x[1:], x[..., 0], x[..., 1], x[:, :2], x[:, 2:]]
    for got, expected in zip(out, want, strict=True):
        np.testing.assert_array_equal(got, expected)
    (row,) = run_both(lambda x: fc.unstack(x, axis=1), {"x": sample(rng, (5, 1), np.float64)}, {"x": (None, 1)})
    assert row.shape == (5,)


def test_range_eye_linspace_sequence_mask() -> None:
    with fc.Graph().as_default():
        values = [fc.range(5), fc.range(2, 9, 3), fc.range(1.5, 0.0, -0.5), fc.range(3, dtype=fc.int64),
                  fc.eye(3), fc.eye(2, 4, batch_shape=[2], dtype=fc.int32), fc.linspace(-1.0, 1.0, 5),
                  fc.linspace(2.0, 3.0, 1), fc.sequence_mask([1, 3, 0], 4), fc.sequence_mask([[2], [1]], dtype=fc.float32)]
        with fc.Session(target="cpu") as sess:
            got = sess.run(values)
    want = [np.arange(5, dtype=np.int32), np.arange(2, 9, 3, dtype=np.int32), np.arange(1.5, 0.0, -0.5, dtype=np.float32),
            np.arange(3, dtype=np.int64), np.eye(3, dtype=np.float32), np.broadcast_to(np.eye(2, 4, dtype=np.int32), (2, 2, 4)),
            np.linspace(-1, 1, 5, dtype=np.float32), np.array([2.0], np.float32),
            np.arange(4) < np.array([1, 3, 0])[:, None], (np.arange(2) < np.array([[2], [1]])[..., None]).astype(np.float32)]
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_linspace_and_sequence_mask_of_tensors(rng) -> None:
    lengths = np.array([0, 3, 5, 1], np.int32)
    bounds = np.array([-2.0, 4.0], np.float64)
    mask, line = run_both(lambda n, b: [fc.sequence_mask(n, 5), fc.linspace(b[0], b[1], 7)],
                          {"n": lengths, "b": bounds}, {"n": (None,)})
    np.testing.assert_array_equal(mask, np.arange(5) < lengths[:, None])
    np.testing.assert_allclose(line, np.linspace(-2.0, 4.0, 7), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_with_axis_and_gather_nd_in_every_dtype(dtype, rng) -> None:
    params = sample(rng, (4, 3, 5), dtype)
    indices = np.array([[2, 0], [3, 2], [0, 0]], np.int64)
    out = run_both(lambda p, i: [fc.gather(p, [4, 0, 1], axis=2), fc.gather_nd(p, i), fc.gather_nd(p, i[:, :1]),
                                 fc.gather_nd(p, [[[1, 2, 3]]])], {"p": params, "i": indices}, {"i": (None, 2)})
    np.testing.assert_array_equal(out[0], params[:, :, [4, 0, 1]])
    np.testing.assert_array_equal(out[1], params[indices[:, 0], indices[:, 1]])
    np.testing.assert_array_equal(out[2], params[indices[:, 0]])
    np.testing.assert_array_equal(out[3], params[1, 2, 3].reshape(1, 1))


@pytest.mark.parametrize("rows", [0, 1, 6])
def test_gather_nd_on_none_dims_and_scatter_nd(rows: int, rng) -> None:
    params = sample(rng, (rows, 3))
    indices = np.stack([np.arange(rows)[::-1], np.arange(rows) % 3], axis=1).astype(np.int32)
    updates = sample(rng, (rows, 2))
    picked, scattered = run_both(lambda p, i, u: [fc.gather_nd(p, i), fc.scatter_nd(i[:, 1:], u, [3, 2])],
                                 {"p": params, "i": indices, "u": updates}, {"p": (None, 3), "i": (None, 2), "u": (None, 2)})
    same(picked, params[indices[:, 0], indices[:, 1]])
    want = np.zeros((3, 2), np.float32)
    np.add.at(want, indices[:, 1], updates)
    same(scattered, want)


def test_gather_nd_and_scatter_nd_indices_out_of_range_at_run_time() -> None:
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.float32, [None, 3])
        i = fc.placeholder(fc.int32, [None, 2])
        picked = fc.gather_nd(p, i, name="pick")
        scattered = fc.scatter_nd(i, fc.ones_like(fc.cast(i[:, 0], fc.float32)), [4, 3])
    for target in TARGETS:
        with fc.Session(target=target, graph=g) as sess:
            with pytest.raises(IndexOutOfRange, match=r"gather_nd 'pick'.*test_shape_ops.py:\d+.*index 3"):
                sess.run(picked, {p: np.ones((4, 3)), i: [[0, 0], [1, 3]]})
            with pytest.raises(IndexOutOfRange, match=r"index -1"):
                sess.run(picked, {p: np.ones((4, 3)), i: [[-1, 0]]})
            with pytest.raises(IndexOutOfRange, match="gather_nd"):
                sess.run(scattered, {i: [[4, 0]]})


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]),
    ("i,j->ij", [(3,), (4,)]), ("ijk,kj->i", [(2, 3, 4), (4, 3)]), ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]), ("ij,jk", [(3, 4), (4, 5)]), ("bqhd,bkhd->bhqk", [(2, 3, 2, 4), (2, 5, 2, 4)]),
    ("abc,cd->abd", [(2, 0, 3), (3, 4)]), ("i,i->", [(1,), (1,)])])
def test_einsum_against_numpy(equation: str, shapes: list, rng) -> None:
    arrays = {f"x{i}": sample(rng, s, np.float64) for i, s in enumerate(shapes)}
    for declared in ({}, {k: (None, *v.shape[1:]) for k, v in arrays.items()}):
        (got,) = run_both(lambda **xs: [fc.einsum(equation, *xs.values())], arrays, declared)
        np.testing.assert_allclose(got, np.einsum(equation, *arrays.values()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("equation, shapes", [
    ("...ij,...jk->...ik", [(5, 2, 3), (5, 3, 4)]), ("...ij,...jk", [(2, 1, 2, 3), (5, 3, 4)]),
    ("...ij,jk->...ik", [(3, 1, 2), (2, 4)]), ("ij...->...", [(2, 3, 4, 5)]), ("i...", [(2, 3)]),
    ("ba...", [(2, 3, 4)]), ("...,...", [(2, 3), (3,)]), ("...i,...i->...", [(4, 1, 3), (1, 5, 3)]),
    ("...ij,...jk->...ik", [(0, 2, 3), (1, 3, 4)]), ("...ij,...jk->ki...", [(1, 1, 1), (1, 1, 1)]),
    ("i...j,j...k->i...k", [(2, 3, 4), (4, 3, 5)]), ("...ij->...ji", [(2, 3)]), ("a...,b...->ab...", [(2,), (3,)])])
def test_einsum_ellipsis_broadcasts_as_numpy(equation: str, shapes: list, rng) -> None:
    """'...' as numpy's broadcast batch dims (issue 19), static 1 dims broadcasting against others."""
    arrays = {f"x{i}": sample(rng, s, np.float64) for i, s in enumerate(shapes)}
    (got,) = run_both(lambda **xs: [fc.einsum(equation, *xs.values())], arrays)
    np.testing.assert_allclose(got, np.einsum(equation, *arrays.values()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch", [(0,), (1,), (7,), (2, 3)])
def test_einsum_ellipsis_over_unknown_dims(batch: tuple, rng) -> None:
    """The batch dims under '...' declared None, fed several sizes (t4.py's reproducer among them)."""
    a, b = sample(rng, (*batch, 2, 3), np.float32), sample(rng, (*batch, 3, 4), np.float32)
    none = (None,) * len(batch)
    got = run_both(lambda a, b: [fc.einsum("...ij,...jk->...ik", a, b), fc.einsum("...ij,...jk", a, b),
                                 fc.einsum("...ij->...", a)], {"a": a, "b": b},
                   {"a": (*none, 2, 3), "b": (*none, 3, 4)})
    np.testing.assert_allclose(got[0], a @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], a @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[2], a.sum((-1, -2)), rtol=1e-5, atol=1e-5)


# -- errors ---------------------------------------------------------------------------------


def test_bad_arguments_are_flowc_errors_naming_the_op_and_the_line() -> None:
    line = r"test_shape_ops.py:\d+"
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [3, 4])
        u = fc.placeholder(fc.float32, [None, 4])
        cases = [
            ("tile", lambda: fc.tile(x, [2])), ("tile", lambda: fc.tile(u, [2, -1])),
            ("pad", lambda: fc.pad(x, [[1, 1]])), ("pad", lambda: fc.pad(x, [[3, 0], [0, 0]], "REFLECT")),
            ("pad", lambda: fc.pad(x, [[0, 0], [0, 0]], "WRAP")), ("slice", lambda: fc.slice(x, [2, 0], [2, 4])),
            ("split", lambda: fc.split(x, 3, axis=1)), ("split", lambda: fc.split(x, [1, -1, -1])),
            ("split", lambda: fc.split(x, [1, 1])), ("unstack", lambda: fc.unstack(u)),
            ("reverse", lambda: fc.reverse(x, [0, -2])), ("reverse", lambda: fc.reverse(x, [2])),
            ("range", lambda: fc.range(u[0])), ("range", lambda: fc.range(0, 4, 0)),
            ("sequence_mask", lambda: fc.sequence_mask(fc.placeholder(fc.int32, [3]))),
            ("gather", lambda: fc.gather(x, [0], batch_dims=1)), ("linspace", lambda: fc.linspace(0.0, 1.0, 0)),
            ("scatter_nd", lambda: fc.scatter_nd([[0]], fc.ones([2, 4]), [3, 4])),
            ("einsum", lambda: fc.einsum("ii->i", x)), ("einsum", lambda: fc.einsum("ij,jk->ik", x, x)),
            ("einsum", lambda: fc.einsum("...j->j", x)), ("einsum", lambda: fc.einsum("ijk->i", x)),
            ("einsum", lambda: fc.einsum("..i.j->ij", x)), ("einsum", lambda: fc.einsum("...ijk->i", x)),
            ("einsum", lambda: fc.einsum("...ij,...jk->...ik", fc.placeholder(fc.float32, [2, 3, 4]),
                                                fc.placeholder(fc.float32, [5, 4, 4]))),
            ("eye", lambda: fc.eye(-1)),
        ]
        for op, make in cases:
            with pytest.raises(FlowcTypeError, match=rf"{op}.*{line}|{line}.*{op}") as info:
                make()
            assert op in str(info.value), str(info.value)
        with pytest.raises(FlowcTypeError, match=rf"gather_nd.*{line}.*static"):
            fc.gather_nd(x, fc.placeholder(fc.int32, [2, None]))
        with pytest.raises(FlowcTypeError, match=rf"gather_nd.*{line}.*3 entries"):
            fc.gather_nd(x, [[0, 1, 2]])


# -- sizes read at run time, sizes from data ----------------------------------------------------


@pytest.mark.parametrize("rows", [0, 1, 7])
@pytest.mark.parametrize("dtype", [fc.int32, fc.int64, fc.float32, fc.float64])
def test_range_over_a_dim_of_shape(rows: int, dtype, rng) -> None:
    x = sample(rng, (rows, 3))
    counted, picked = run_both(
        lambda x: [fc.range(fc.shape(x)[0], dtype=dtype),
                   fc.gather_nd(x, fc.stack([fc.range(fc.shape(x)[0]), fc.cast(fc.argmax(x, 1), fc.int32)], axis=1))],
        {"x": x}, {"x": (None, 3)})
    np.testing.assert_array_equal(counted, np.arange(rows).astype(dtype.np))
    same(picked, x.max(axis=1) if rows else np.zeros(0, np.float32))


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_where_with_one_argument_and_boolean_mask(target: str, rng) -> None:
    x = sample(rng, (5, 3), np.float64)
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.float64, [5, 3])
        coordinates = fc.where(p > 0.0)
        rows = fc.boolean_mask(p, p[:, 0] > 0.0)
        values = fc.boolean_mask(p, p > 0.0, name="positives")
        (grad,) = fc.gradients(fc.reduce_sum(values * values), [p])
    with fc.Session(target=target, graph=g) as sess:
        got = sess.run([coordinates, rows, values, grad], {p: x})
    np.testing.assert_array_equal(got[0], np.argwhere(x > 0))
    assert got[0].dtype == np.int64
    np.testing.assert_array_equal(got[1], x[x[:, 0] > 0])
    np.testing.assert_array_equal(got[2], x[x > 0])
    np.testing.assert_allclose(got[3], np.where(x > 0, 2 * x, 0.0))


def test_where_and_boolean_mask_errors() -> None:
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [3, 4])
        with pytest.raises(FlowcTypeError, match=r"where.*test_shape_ops.py:\d+.*both x and y"):
            fc.where(x > 0, x)
        with pytest.raises(FlowcTypeError, match=r"boolean_mask.*test_shape_ops.py:\d+.*leading dims"):
            fc.boolean_mask(x, fc.placeholder(fc.bool_, [4]))
        with pytest.raises(FlowcTypeError, match=r"boolean_mask.*test_shape_ops.py:\d+.*axis=2: needs 0 <= axis <= 1"):
            fc.boolean_mask(x, fc.placeholder(fc.bool_, [4]), axis=2)
        assert fc.where(x > 0, x, -x).shape == (3, 4)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_split_sizes_along_an_unknown_dim_are_checked_when_it_runs(target):
    """fc.split(x, [1, 2]) of an f32[?, 2]: pieces of 1 and 2 rows when 3 come, an error naming the split
    and the line for any other count (it returned the first 3 rows of 6 silently, found by the fuzzer's
    helper); the gradient still flows to every row."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 2])
        a, b = fc.split(x, [1, 2])
        (dx,) = fc.gradients(fc.reduce_sum(a) + 2.0 * fc.reduce_sum(b), [x])
    data = np.arange(6, dtype=np.float32).reshape(3, 2)
    with fc.Session(target, graph=g) as sess:
        got_a, got_b, got_dx = sess.run([a, b, dx], {x: data})
        np.testing.assert_array_equal(got_a, data[:1])
        np.testing.assert_array_equal(got_b, data[1:])
        np.testing.assert_array_equal(got_dx, [[1, 1], [2, 2], [2, 2]])
        with pytest.raises(fc.errors.FlowcError, match=r"split_sizes.*test_shape_ops.py.*6 along axis 0, not 3"):
            sess.run([a, b], {x: np.zeros((6, 2), np.float32)})
