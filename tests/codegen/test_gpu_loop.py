"""Loop kernels on the gpu target (codegen/triton/kernels/loop.py): whole graphs run in Triton's
interpreter against the reference target, and every kernel builds to PTX for sm_90 (gpu_check.py)."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402
from flowc.ir.errors import RuntimeShapeError  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402


def _random(rng, shape, dtype="float32"):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-50, 50, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def test_elementwise_chain(rng):
    def build():
        x = fc.placeholder(fc.float32, [None, 7], name="x")
        y = fc.placeholder(fc.float32, [None, 7], name="y")
        return fc.maximum(x * y - 0.5, fc.exp(-x * x)) + fc.sqrt(fc.square(y)) * (1.0 + fc.nn.relu(x))
    assert_gpu_matches(build, {"x": _random(rng, (5, 7)), "y": _random(rng, (5, 7))}, rtol=1e-5, atol=1e-6)


def test_chain_longer_than_a_block(rng):
    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        return fc.nn.relu(x * 3.0 - 1.0) + x
    assert_gpu_matches(build, {"x": _random(rng, (2500,))})


@pytest.mark.parametrize("x_shape, b_shape, x_static, b_static", [
    ((4, 6), (), [None, 6], []),                # a scalar
    ((4, 6), (6,), [None, 6], [6]),             # a row
    ((4, 6), (4, 1), [None, 6], [None, 1]),     # a column
    ((3, 1, 5), (1, 4, 1), [3, 1, 5], [1, 4, 1]),  # both broadcast: [3, 4, 5]
    ((2, 3, 4), (3, 1), [None, None, None], [3, 1]),  # a middle axis
    ((1, 6), (6,), [1, None], [None]),          # size-1 dims of the result
    ((0, 6), (6,), [None, 6], [6]),             # an empty result: nothing to launch
    ((5, 0), (1, 0), [5, None], [1, None]),     # empty along the last axis
])
def test_broadcasting(rng, x_shape, b_shape, x_static, b_static):
    def build():
        x = fc.placeholder(fc.float32, x_static, name="x")
        b = fc.placeholder(fc.float32, b_static, name="b")
        return x * b + b
    assert_gpu_matches(build, {"x": _random(rng, x_shape), "b": _random(rng, b_shape)})


def test_two_unknown_dims_fed_different_sizes(rng):
    def build():
        x = fc.placeholder(fc.float32, [None, None], name="x")
        row = fc.placeholder(fc.float32, [None], name="row")
        column = fc.placeholder(fc.float32, [None, 1], name="column")
        return (x - row) * column
    for rows, columns in [(3, 5), (1, 9), (6, 1)]:
        assert_gpu_matches(build, {"x": _random(rng, (rows, columns)), "row": _random(rng, (columns,)),
                                   "column": _random(rng, (rows, 1))})


def test_a_hidden_broadcast_of_an_unknown_dim_is_refused(rng):
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float32, [None, 4], name="x")
        y = fc.placeholder(fc.float32, [None, 4], name="y")
        total = x + y
    with fc.Session(target="gpu", graph=graph) as session:
        with pytest.raises(RuntimeShapeError, match="would broadcast"):
            session.run(total, {x: _random(rng, (3, 4)), y: _random(rng, (1, 4))})


def test_multi_output_kernel(rng):
    def build():
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        s = x * 2.0
        return [s + 1.0, s * s, fc.cast(s > 0.0, fc.int32)]
    assert_gpu_matches(build, {"x": _random(rng, (4, 3))})


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_dtypes(rng, dtype):
    def build():
        x = fc.placeholder(getattr(fc, dtype), [None, 5], name="x")
        y = fc.placeholder(getattr(fc, dtype), [5], name="y")
        return [x * y + x, fc.maximum(x, y) - y, fc.where(x > y, x, y), x < y]
    assert_gpu_matches(build, {"x": _random(rng, (3, 5), dtype), "y": _random(rng, (5,), dtype)})


def test_bool(rng):
    def build():
        p = fc.placeholder(fc.bool, [None, 4], name="p")
        q = fc.placeholder(fc.bool, [4], name="q")
        return [fc.logical_and(p, q), fc.logical_or(p, fc.logical_not(q)), fc.cast(p, fc.float32)]
    assert_gpu_matches(build, {"p": _random(rng, (3, 4), "bool"), "q": _random(rng, (4,), "bool")})


def test_float64_constants_are_exact(rng):
    def build():
        x = fc.placeholder(fc.float64, [None], name="x")
        return [x * 0.1 + 1e-300, x + np.float64(1 / 3)]
    assert_gpu_matches(build, {"x": _random(rng, (6,), "float64")}, rtol=0)


def test_fetched_constant_and_argument(rng):
    def build():
        x = fc.placeholder(fc.float32, [3], name="x")
        return [fc.constant([1.0, 2.0, 3.0]), x, fc.constant(7, fc.int64)]
    assert_gpu_matches(build, {"x": _random(rng, (3,))})


def test_rank_zero(rng):
    def build():
        x = fc.placeholder(fc.float32, [], name="x")
        return fc.exp(x) * 2.0
    assert_gpu_matches(build, {"x": np.float32(0.25)}, rtol=1e-6)


def test_views_between_kernels(rng):
    def build():
        x = fc.placeholder(fc.float32, [None, 6], name="x")
        y = fc.reshape(x * 2.0, [-1, 3, 2])
        return fc.expand_dims(y, 0) + 1.0
    assert_gpu_matches(build, {"x": _random(rng, (2, 6))})


def _lowered_error(build, feeds):
    graph = fc.Graph()
    with graph.as_default():
        fetches = build()
    with fc.Session(target="gpu", graph=graph) as session:
        with pytest.raises(fc.errors.UnsupportedOpError) as caught:
            session.run(fetches, feeds)
    return str(caught.value)


def test_an_op_without_a_triton_form_is_refused_by_name(monkeypatch, rng):
    from flowc.codegen.triton.expressions import EXPRESSIONS
    monkeypatch.delitem(EXPRESSIONS, "exp")

    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        return fc.exp(x) + 1.0
    message = _lowered_error(build, {"x": _random(rng, (3,))})
    assert "exp" in message and "test_gpu_loop.py" in message and "target 'cpu' compiles it" in message


def test_a_kernel_kind_without_a_schedule_is_refused_naming_its_op(monkeypatch, rng):
    from flowc.passes.schedule_gpu import RULES
    monkeypatch.delitem(RULES, "reduction", raising=False)

    def build():
        x = fc.placeholder(fc.float32, [None, 4], name="x")
        return fc.reduce_sum(x * 2.0, axis=1)
    message = _lowered_error(build, {"x": _random(rng, (3, 4))})
    assert "reduce_sum" in message and "test_gpu_loop.py" in message and "target 'cpu' compiles it" in message


def test_a_missing_emitter_is_refused(monkeypatch, rng):
    from flowc.codegen.triton.kernel import EMITTERS
    monkeypatch.delitem(EMITTERS, ("loop", "blocks"))

    def build():
        x = fc.placeholder(fc.float32, [None], name="x")
        return x * 3.0
    message = _lowered_error(build, {"x": _random(rng, (3,))})
    assert "blocks" in message and "target 'cpu' compiles it" in message


def _kernel_text(placeholder_shape):
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float32, placeholder_shape, name="x")
        y = x * 2.0
    with fc.Session(target="gpu", graph=graph) as session:
        session.run(y, {x: np.ones([d or 2 for d in placeholder_shape], np.float32)})
        (compiled,) = session._cache.values()
        return compiled.executable.kernels.text


def test_offsets_are_int64_where_a_size_may_pass_2_31():
    assert "tl.program_id(0).to(tl.int64)" in _kernel_text([None, 4])
    assert "tl.program_id(0).to(tl.int64)" not in _kernel_text([3, 4])


def test_a_kernel_that_yields_a_broadcast_scalar(rng):
    def build():
        s = fc.placeholder(fc.float32, [], name="s")
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        return [fc.broadcast_to(s, [4, 3]), x * 0.0 + s]
    assert_gpu_matches(build, {"s": np.float32(2.5), "x": _random(rng, (2, 3))})


def test_every_view_is_a_torch_view(rng):
    def build():
        x = fc.placeholder(fc.float32, [None, 6], name="x")
        like = fc.placeholder(fc.float32, [None, 2], name="like")
        as_like = fc.reshape(x * 2.0, fc.shape(like))  # reshape_dims: target dims from another operand
        squeezed = fc.squeeze(fc.expand_dims(x + 1.0, 1), [1])
        checked = fc.ensure_shape(x - 1.0, [2, 6])
        return [as_like + 1.0, squeezed * 3.0, checked, fc.reshape(x, [-1])]
    assert_gpu_matches(build, {"x": _random(rng, (2, 6)), "like": _random(rng, (6, 2))})
