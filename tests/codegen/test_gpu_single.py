"""The GPU's single kernels that move data (codegen/triton/kernels/movement.py and single.py): each op
run in Triton's interpreter on CPU torch tensors against the reference interpreter, bit for bit, on
odd sizes, size 0 and 1, unknown dims fed different sizes, every dtype the op takes; and built to PTX
for an H100 (sm_90)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from triton_single_harness import assert_same, build, op_text, run_gpu  # noqa: E402

from flowc.ir import as_dtype  # noqa: E402
from flowc.ir.errors import RuntimeShapeError  # noqa: E402

DTYPES = ["float32", "float64", "int32", "int64", "bool"]


def values(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(-50, 50, shape).astype(dtype)


@pytest.fixture
def folder(tmp_path):
    return str(tmp_path)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_of_unknown_dims(dtype, rng, folder):
    text = op_text("transpose", [(dtype, (None, 3, None))], perm=(2, 0, 1))
    for shape in [(5, 3, 7), (1, 3, 1), (0, 3, 4), (4, 3, 0)]:
        assert_same(text, [values(shape, dtype, rng)], folder)


def test_transpose_of_more_than_one_block(rng, folder):
    text = op_text("transpose", [("float32", (None, 37))], perm=(1, 0))
    assert_same(text, [values((41, 37), "float32", rng)], folder)


@pytest.mark.parametrize("begin, end, strides", [
    ((1, 0), (None, None), (2, 1)),
    ((-1, 4), (None, 0), (-1, -2)),
    ((-100, -2), (100, None), (3, -1)),
    ((2, 7), (1, 9), (1, 1)),  # empty: the end before the begin
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_slices(begin, end, strides, dtype, rng, folder):
    text = op_text("slice", [(dtype, (None, None))], begin=begin, end=end, strides=strides)
    for shape in [(7, 5), (1, 9), (0, 3), (11, 1)]:
        assert_same(text, [values(shape, dtype, rng)], folder)


def test_slice_of_known_dims_folds_its_starts(rng, folder):
    text = op_text("slice", [("float32", (6, 5, 3))], begin=(-1, 1, 0), end=(None, 4, 3), strides=(-2, 2, 1))
    assert_same(text, [values((6, 5, 3), "float32", rng)], folder)


def test_squeezed_index_of_an_unknown_dim(rng, folder):
    text = op_text("slice", [("int64", (None, 4))], begin=(-2, 1), end=(-1, 3), strides=(1, 1), squeeze_dims=(0,))
    assert_same(text, [values((3, 4), "int64", rng)], folder)
    # Sizing the run refuses index -2 of a dim of 1 before any kernel runs; the kernel checks it too,
    # as the CPU's does, and flags it rather than read out of bounds:
    with pytest.raises(RuntimeShapeError, match="index -2 is out of range"):
        run_gpu(text, [values((1, 4), "int64", rng)], folder)
    built = build(text, folder)
    errors = torch.zeros(2, dtype=torch.int64)
    built.module.launch("k0", [torch.arange(4).reshape(1, 4), torch.empty(2, dtype=torch.int64)], {"errors": errors})
    assert errors.tolist() == [1, -2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_of_three(dtype, axis, rng, folder):
    text = op_text("concat", [(dtype, (None, 3)), (dtype, (2, 3)), (dtype, (None, 3))], axis=axis)
    rows = (5, 2, 1) if axis == 0 else (2, 2, 2)
    for first in (rows[0], 0) if axis == 0 else (2,):
        assert_same(text, [values((first, 3), dtype, rng), values((2, 3), dtype, rng),
                           values((rows[2], 3), dtype, rng)], folder)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_with_a_value_converted_as_numpy_does(dtype, rng, folder):
    text = op_text("pad", [(dtype, (None, None))], before=(1, 0), after=(2, 3), value=-2.75)
    for shape in [(3, 5), (0, 2), (1, 0)]:
        assert_same(text, [values(shape, dtype, rng)], folder)


def test_pad_of_a_scalar(folder):
    text = op_text("pad", [("float32", ())], before=(), after=(), value=1.0)
    assert_same(text, [np.array(4.5, np.float32)], folder)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_one_hot_off_values_outside_the_depth(dtype, axis, folder):
    text = op_text("one_hot", [(dtype, (None, 2))], depth=5, axis=axis, on_value=2.5, off_value=-1.0,
                   dtype=as_dtype("float64"))
    indices = np.array([[0, 4], [5, -1], [2, 2]], dtype)
    assert_same(text, [indices], folder)
    assert_same(text, [indices[:0]], folder)


@pytest.mark.parametrize("result", ["int32", "float32", "int64"])
def test_one_hot_into_each_dtype(result, folder):
    text = op_text("one_hot", [("int64", ())], depth=7, axis=0, on_value=3.0, off_value=0.0, dtype=as_dtype(result))
    assert_same(text, [np.array(6)], folder)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_iota_sized_by_an_operand(dtype, folder):
    text = op_text("iota", [("float32", (None, 3))], shape=(0,), source=(1,), source_axis=(0,), dtype=as_dtype(dtype))
    for rows in (0, 1, 1500):  # 1500: two programs
        assert_same(text, [np.zeros((rows, 3), np.float32)], folder)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_shape_of_reads_sizes_only(dtype, folder):
    text = op_text("shape_of", [("bool", (None, 4, None))], dtype=as_dtype(dtype))
    assert_same(text, [np.zeros((3, 4, 0), bool)], folder)
    assert_same(text, [np.zeros((9, 4, 2), bool)], folder)


@pytest.mark.parametrize("dtype", DTYPES)
def test_broadcast_dims_from_an_operand(dtype, rng, folder):
    text = op_text("broadcast_dims", [(dtype, (1, 3)), ("float32", (None, 2))], shape=(0, 4, 3), source=(1, 0, 0),
                   source_axis=(0, 0, 0))
    for rows in (0, 1, 5):
        assert_same(text, [values((1, 3), dtype, rng), np.zeros((rows, 2), np.float32)], folder)


def test_identity_copy_of_a_simplified_kernel(folder):
    """A single kernel whose op was simplified away yields its operand: the kernel copies it."""
    from flowc.codegen.triton.kernel import SINGLE_OPS, single_op
    from flowc.ir import Builder, Function, TensorType, float32
    from flowc.ir.ops.fusion import build_fusion

    function = Function("f", [TensorType(float32, (None, 3))], [TensorType(float32, (None, 3))])
    b = Builder.at_end(function.entry)
    copy = build_fusion(b, "single", function.args, lambda b, x: [x])
    b.create("return", copy)
    op = function.entry.ops[0]
    assert single_op(op) is None
    kernel = SINGLE_OPS["identity"](op, "copy")
    from flowc.codegen.triton.kernel import TritonModule
    module = TritonModule([kernel], interpret=True, folder=folder)
    x = torch.arange(15, dtype=torch.float32).reshape(5, 3)
    out = torch.empty(5, 3)
    module.launch("copy", [x, out])
    assert torch.equal(out, x)


@pytest.mark.parametrize("text", [
    op_text("transpose", [("float32", (None, 3, None))], perm=(2, 0, 1)),
    op_text("slice", [("int64", (None, 4))], begin=(-2, 1), end=(-1, 3), strides=(1, 1), squeeze_dims=(0,)),
    op_text("concat", [("bool", (None, 3)), ("bool", (2, 3))], axis=0),
    op_text("pad", [("float64", (None, 2))], before=(1, 0), after=(2, 3), value=-2.75),
    op_text("one_hot", [("int32", (None, 2))], depth=5, axis=1, on_value=2.5, off_value=0.0, dtype=as_dtype("float32")),
    op_text("iota", [("float32", (None, 3))], shape=(0,), source=(1,), source_axis=(0,), dtype=as_dtype("int32")),
    op_text("shape_of", [("bool", (None, 4, None))], dtype=as_dtype("int64")),
    op_text("broadcast_dims", [("float32", (1, 3)), ("float32", (None, 2))], shape=(0, 4, 3), source=(1, 0, 0),
            source_axis=(0, 0, 0)),
], ids=["transpose", "slice", "concat", "pad", "one_hot", "iota", "shape_of", "broadcast_dims"])
def test_builds_to_ptx_for_an_h100(text, folder):
    built = build(text, folder)
    for ptx in built.ptx() + built.ptx_of_unit_sizes():
        assert ".target sm_90" in ptx


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_slice_mixing_squeezed_and_strided_dims_of_rank_four(dtype, rng, folder):
    text = op_text("slice", [(dtype, (None, 3, None, 2))], begin=(1, -1, -2, 0), end=(None, 0, None, 2),
                   strides=(2, -1, -3, 1), squeeze_dims=(3,))
    for shape in [(6, 3, 8, 2), (1, 3, 1, 2), (2, 3, 0, 2)]:
        assert_same(text, [values(shape, dtype, rng)], folder)


def test_concat_of_many_operands_of_unknown_lengths(rng, folder):
    count = 9
    text = op_text("concat", [("int32", (None,))] * count, axis=0)
    parts = [values((n,), "int32", rng) for n in (3, 0, 1, 5, 2, 0, 7, 1, 4)]
    assert_same(text, parts, folder)


def test_pad_of_rank_three(rng, folder):
    text = op_text("pad", [("float64", (2, None, 3))], before=(0, 2, 1), after=(1, 0, 3), value=0.5)
    assert_same(text, [values((2, 4, 3), "float64", rng)], folder)
    assert_same(text, [values((2, 0, 3), "float64", rng)], folder)


@pytest.mark.parametrize("rows", [1, 4])
def test_broadcast_to_as_a_single_kernel_of_an_unknown_dim(rows, folder):
    """broadcast_to fuses into loops; built as a single kernel, an unknown dim of x is 1 or the result's."""
    from flowc.codegen.triton.kernel import SINGLE_OPS, TritonModule
    from flowc.ir import Builder, Function, TensorType, float64
    from flowc.ir.ops.fusion import build_fusion

    function = Function("f", [TensorType(float64, (None, 3))], [TensorType(float64, (2, 4, 3))])
    b = Builder.at_end(function.entry)
    spread = build_fusion(b, "single", function.args, lambda b, x: [b.broadcast_to(x, shape=(2, 4, 3))])
    b.create("return", spread)
    module = TritonModule([SINGLE_OPS["broadcast_to"](function.entry.ops[0], "spread")], interpret=True,
                          folder=folder)
    x = torch.arange(rows * 3, dtype=torch.float64).reshape(rows, 3)
    out = torch.empty(2, 4, 3, dtype=torch.float64)
    module.launch("spread", [x, out])
    np.testing.assert_array_equal(out.numpy(), np.broadcast_to(x.numpy(), (2, 4, 3)))


@pytest.mark.parametrize("shape, begin", [((None, 4), (1, 2)), ((None,), (-1,))])
def test_slice_of_one_element_loads_a_block(shape, begin, rng, folder):
    """x[1, 2], x[-1]: every dim squeezed, so the offset depends on no lane; it still loads as a block."""
    rank = len(shape)
    text = op_text("slice", [("float32", shape)], begin=begin, end=tuple(b + 1 for b in begin),
                   strides=(1,) * rank, squeeze_dims=tuple(range(rank)))
    assert_same(text, [values((3, 4)[:rank], "float32", rng)], folder)
    built = build(text, folder)
    for ptx in built.ptx() + built.ptx_of_unit_sizes():
        assert ".target sm_90" in ptx
