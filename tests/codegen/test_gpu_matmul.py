"""The GPU's matmul kernels (codegen/triton/kernels/matmul.py, schedule "dot_tiles"): graphs lowered
and fused as the GPU target does, each kernel run in Triton's interpreter on CPU torch tensors against
the reference target, and built to PTX for sm_90."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402
from flowc.codegen.triton.kernel import TritonModule, emitter_of, slot_dtypes  # noqa: E402
from flowc.codegen.triton.kernels.matmul import DOT_DTYPES, emit_matmul  # noqa: E402
from flowc.driver import compile_lowered, run_pipeline  # noqa: E402
from flowc.ir import Module, Operation  # noqa: E402
from flowc.ir.shapes import propagate_shapes  # noqa: E402
from flowc.ir.types import DType  # noqa: E402
from flowc.lowering import lower  # noqa: E402
from flowc.options import CompileOptions  # noqa: E402
from flowc.passes.schedule_gpu import DOT_TILES, dot_warps  # noqa: E402
from flowc.targets.gpu import GpuTarget  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402

Build = Callable[[], tuple[list, list]]  # makes placeholders and fetches in the default graph


def lowered(build: Build):
    graph = fc.Graph()
    with graph.as_default():
        feeds, fetches = build()
    return lower(graph, fetches, [], feeds)


def gpu_module(build: Build) -> Module:
    result = lowered(build)
    run_pipeline(result, GpuTarget(), CompileOptions(verify=True))  # its passes: the module it would build
    return result.module


def kernels_of(module: Module) -> list[Operation]:
    return [op for op in module["main"].walk() if op.name == "fusion"]


TORCH = {"float32": torch.float32, "float64": torch.float64, "int32": torch.int32, "int64": torch.int64}
BUILT: set[tuple[str, tuple[str, ...]]] = set()  # kernels already built to PTX in this process


def run_gpu(module: Module, feeds: Sequence[np.ndarray], folder: str) -> list[np.ndarray]:
    """Run `main`, whose ops must all be matmul kernels, launching each in the interpreter; every
    kernel is also built to PTX for sm_90 (once per source and slot dtypes)."""
    function = module["main"]
    shapes = propagate_shapes(function, [f.shape for f in feeds])
    values = {arg: torch.from_numpy(np.ascontiguousarray(f)) for arg, f in zip(function.entry.args, feeds)}
    for number, op in enumerate(function.entry.ops):
        if op.is_terminator:
            return [values[v].numpy() for v in op.operands]
        assert op.name == "fusion" and op.kind == "matmul", op
        kernel = emitter_of(op)(op, f"k{number}")
        triton_module = TritonModule([kernel], interpret=True, folder=folder)
        # Unwritten elements show: NaN, or the least integer.
        outs = [torch.full(shapes[r], np.nan if r.type.dtype.is_float else np.iinfo(r.type.dtype.np).min,
                           dtype=TORCH[str(r.type.dtype)]) for r in op.results]
        triton_module.launch(kernel.name, [values[v] for v in op.operands] + outs)
        values.update(zip(op.results, outs))
        dtypes = tuple(str(d) for d in slot_dtypes(op))
        if (kernel.source, dtypes) not in BUILT:
            assert ".target sm_90" in triton_module.ptx(kernel.name, slot_dtypes(op))
            BUILT.add((kernel.source, dtypes))
    raise AssertionError("main has no return")


def reference(build: Build, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
    return compile_lowered(lowered(build), "reference", CompileOptions())(list(feeds))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("triton"))


def check(build: Build, feeds: Sequence[np.ndarray], folder: str, tolerance: float = 1e-5) -> list[np.ndarray]:
    """The GPU kernels' results against the reference's; returns the kernels' results."""
    got = run_gpu(gpu_module(build), feeds, folder)
    want = reference(build, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance)
        else:
            np.testing.assert_array_equal(g, w)
    return got


def data(rng: np.random.Generator, shape: Sequence[int], dtype: str = "float32") -> np.ndarray:
    if dtype.startswith("int"):
        return rng.integers(-50, 50, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# -- products --------------------------------------------------------------------------------------


@pytest.mark.parametrize("m, k, n", [(5, 7, 3), (70, 40, 20), (1, 1, 1), (1, 9, 17), (17, 3, 1)])
def test_product_of_unknown_sizes(m: int, k: int, n: int, folder: str, rng: np.random.Generator) -> None:
    """Three None dims fed three different sizes; 70 rows and 40 of k take two tiles of each (64 x 64 x 32)."""
    def build():
        x, w = fc.placeholder(fc.float32, [None, None]), fc.placeholder(fc.float32, [None, None])
        return [x, w], [fc.matmul(x, w)]

    check(build, [data(rng, (m, k)), data(rng, (k, n))], folder)


@pytest.mark.parametrize("transpose_a, transpose_b", [(True, False), (False, True), (True, True)])
def test_transposes(transpose_a: bool, transpose_b: bool, folder: str, rng: np.random.Generator) -> None:
    m, k, n = 5, 19, 6
    def build():
        x = fc.placeholder(fc.float32, [None, None])
        w = fc.placeholder(fc.float32, [None, None])
        return [x, w], [fc.matmul(x, w, transpose_a=transpose_a, transpose_b=transpose_b)]

    a = data(rng, (k, m) if transpose_a else (m, k))
    b = data(rng, (n, k) if transpose_b else (k, n))
    check(build, [a, b], folder)


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("int32", 0), ("int64", 0)])
def test_float64_and_integer_products(dtype: str, tolerance: float, folder: str, rng: np.random.Generator) -> None:
    """float64: tl.dot in 64 x 64 x 16 tiles; the integers: rank-1 updates, 64 x 64 x 8 (a k of 19: two
    or three steps, the last masked)."""
    def build():
        x = fc.placeholder(getattr(fc, dtype), [None, None])
        w = fc.placeholder(getattr(fc, dtype), [None, None])
        return [x, w], [fc.matmul(x, w) * 3]

    check(build, [data(rng, (33, 19), dtype), data(rng, (19, 5), dtype)], folder, tolerance)


def test_integer_products_wrap(folder: str) -> None:
    """int32 products and sums wrap, as numpy's do."""
    def build():
        x, w = fc.placeholder(fc.int32, [None, None]), fc.placeholder(fc.int32, [None, None])
        return [x, w], [fc.matmul(x, w)]

    big = np.full((2, 3), 2**30 + 7, np.int32)
    (got,) = check(build, [big, big.T.copy()], folder)
    assert int(got[0, 0]) != 3 * (2**30 + 7) ** 2  # the reference's wrapped sum, checked above


# -- epilogues -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bias_and_relu(dtype: str, folder: str, rng: np.random.Generator) -> None:
    def build():
        x = fc.placeholder(getattr(fc, dtype), [None, 13])
        w = fc.placeholder(getattr(fc, dtype), [13, None])
        b = fc.placeholder(getattr(fc, dtype), [None])
        return [x, w, b], [fc.nn.relu(fc.matmul(x, w) + b)]

    module = gpu_module(build)
    assert [op.kind for op in kernels_of(module)] == ["matmul"]
    check(build, [data(rng, (9, 13), dtype), data(rng, (13, 21), dtype), data(rng, (21,), dtype)], folder,
          1e-5 if dtype == "float32" else 1e-12)


def test_sgd_update_accumulates(folder: str, rng: np.random.Generator) -> None:
    """W - lr * x^T @ dz, an SGD step's weight update: one kernel, scheduled `accumulate` (recorded as on
    the CPU), whose epilogue reads W's tile and stores the update."""
    def build():
        x = fc.placeholder(fc.float32, [None, 6])
        dz = fc.placeholder(fc.float32, [None, 10])
        w = fc.placeholder(fc.float32, [6, 10])
        return [x, dz, w], [w - 0.1 * fc.matmul(x, dz, transpose_a=True)]

    (kernel,) = kernels_of(gpu_module(build))
    assert kernel.attributes["accumulate"] is True and kernel.attributes["tile"] == (16, 16, 32)
    check(build, [data(rng, (37, 6)), data(rng, (37, 10)), data(rng, (6, 10))], folder)


def test_product_yielded_beside_its_epilogue(folder: str, rng: np.random.Generator) -> None:
    """Two results of one kernel: the product and relu of it; and a column-shaped operand [m, 1]."""
    def build():
        x, w = fc.placeholder(fc.float32, [None, 4]), fc.placeholder(fc.float32, [4, 3])
        scale = fc.placeholder(fc.float32, [None, 1])
        y = fc.matmul(x, w)
        return [x, w, scale], [y, fc.nn.relu(y) * scale]

    (kernel,) = kernels_of(gpu_module(build))
    assert len(kernel.results) == 2
    check(build, [data(rng, (11, 4)), data(rng, (4, 3)), data(rng, (11, 1))], folder)


def test_operand_read_twice(folder: str, rng: np.random.Generator) -> None:
    """x @ x^T + x (x square): one block argument is both of the product's operands and the epilogue's."""
    def build():
        x = fc.placeholder(fc.float64, [None, None])
        return [x], [fc.matmul(x, x, transpose_b=True) + x]

    (kernel,) = kernels_of(gpu_module(build))
    assert len(kernel.operands) == 1
    check(build, [data(rng, (21, 21), "float64")], folder, 1e-12)


# -- batches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("a_shape, b_shape", [
    ((3, 5, 7), (3, 7, 4)),      # batched on both sides
    ((3, 5, 7), (7, 4)),         # a 2-D B shared by every product
    ((5, 7), (2, 7, 4)),         # a 2-D A
    ((2, 1, 5, 7), (3, 7, 4)),   # batch dims broadcast to [2, 3]
])
@pytest.mark.parametrize("per_product", [False, True], ids=["bias", "bias_per_product"])
def test_batched_products(a_shape, b_shape, per_product: bool, folder: str, rng: np.random.Generator) -> None:
    """A bias row shared by every product, or one per product of the batch (shape [..batch, 1, 4])."""
    batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    bias_shape = (*batch, 1, 4) if per_product else (4,)

    def build():
        x, w = fc.placeholder(fc.float32, a_shape), fc.placeholder(fc.float32, b_shape)
        bias = fc.placeholder(fc.float32, bias_shape)
        return [x, w, bias], [fc.matmul(x, w) + bias]

    check(build, [data(rng, a_shape), data(rng, b_shape), data(rng, bias_shape)], folder)


def test_batched_unknown_dims_and_transposes(folder: str, rng: np.random.Generator) -> None:
    def build():
        x = fc.placeholder(fc.float64, [None, None, None])
        w = fc.placeholder(fc.float64, [None, None, None])
        return [x, w], [fc.matmul(x, w, transpose_a=True, transpose_b=True)]

    check(build, [data(rng, (2, 9, 3), "float64"), data(rng, (2, 5, 9), "float64")], folder, 1e-12)


# -- sizes 0 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("m, k, n", [(0, 4, 3), (4, 0, 3), (4, 3, 0), (0, 0, 0)])
def test_empty_sizes(m: int, k: int, n: int, folder: str, rng: np.random.Generator) -> None:
    """k = 0: the product is zeros, the epilogue runs on them (relu(0 + b)); m or n = 0: nothing to run."""
    def build():
        x, w = fc.placeholder(fc.float32, [None, None]), fc.placeholder(fc.float32, [None, None])
        b = fc.placeholder(fc.float32, [None])
        return [x, w, b], [fc.nn.relu(fc.matmul(x, w) + b)]

    check(build, [data(rng, (m, k)), data(rng, (k, n)), data(rng, (n,))], folder)


def test_batch_of_zero_products(folder: str, rng: np.random.Generator) -> None:
    def build():
        x, w = fc.placeholder(fc.float32, [None, 2, 3]), fc.placeholder(fc.float32, [3, 2])
        return [x, w], [fc.matmul(x, w)]

    check(build, [data(rng, (0, 2, 3)), data(rng, (3, 2))], folder)


# -- the schedule and the GPU build ----------------------------------------------------------------


@pytest.mark.parametrize("dtype, a_shape, b_shape, tile", [
    ("float32", [None, None], [None, None], (64, 64, 32)),
    ("float32", [None, 784], [784, 10], (64, 16, 32)),   # a known narrow n: the least tile over it
    ("float32", [3, 5], [5, 2], (16, 16, 16)),           # tl.dot's least tile
    ("float64", [None, None], [None, None], (64, 64, 16)),
    ("int64", [None, None], [None, None], (64, 64, 8)),
    ("int32", [None, 5], [5, 3], (64, 4, 8)),            # no tl.dot: tiles may be less than 16
])
def test_schedule_tiles(dtype: str, a_shape, b_shape, tile, rng: np.random.Generator) -> None:
    def build():
        x, w = fc.placeholder(getattr(fc, dtype), a_shape), fc.placeholder(getattr(fc, dtype), b_shape)
        return [x, w], [fc.matmul(x, w)]

    (kernel,) = kernels_of(gpu_module(build))
    assert kernel.attributes["schedule"] == "dot_tiles" and kernel.attributes["tile"] == tile
    assert "accumulate" not in kernel.attributes


def test_dot_dtypes_agree_with_the_schedule() -> None:
    """The schedule's tiles of at least 16 are for the dtypes the emitter gives tl.dot."""
    assert set(DOT_TILES) == set(DOT_DTYPES)


def test_grid_puts_what_grows_on_the_first_axis() -> None:
    """CUDA takes 2**31 - 1 programs on the grid's first axis, 65535 on the others: a product's row tiles
    go there (ten million rows of 64), or the batch of a batched product."""
    def build(a_shape, b_shape):
        def graph():
            x, w = fc.placeholder(fc.float32, a_shape), fc.placeholder(fc.float32, b_shape)
            return [x, w], [fc.matmul(x, w)]
        (op,) = kernels_of(gpu_module(graph))
        return emit_matmul(op, "grid")

    plain = build([None, 8], [8, 8])
    assert plain.grid_size([(10_000_000, 8), (8, 8), (10_000_000, 8)]) == (156_250, 1)
    batched = build([None, None, 8], [8, 8])
    assert batched.grid_size([(100_000, 70, 8), (8, 8), (100_000, 70, 8)]) == (100_000, 2, 1)


SIXTEEN_BITS = [DType("float16", "f16", "float"), DType("bfloat16", "bf16", "float")]


@pytest.mark.parametrize("half", SIXTEEN_BITS, ids=str)
def test_sixteen_bit_tiles_build_to_tensor_core_ptx(half: DType, folder: str) -> None:
    """A bias + relu kernel with float16 or bfloat16 slots in 128 x 128 x 32 tiles on 8 warps: tl.dot
    takes 16-bit operands to the tensor cores (wgmma on sm_90), accumulating in float32."""
    def build():
        x, w = fc.placeholder(fc.float32, [None, None]), fc.placeholder(fc.float32, [None, None])
        b = fc.placeholder(fc.float32, [None])
        return [x, w, b], [fc.nn.relu(fc.matmul(x, w) + b)]

    (op,) = kernels_of(gpu_module(build))
    op.attributes = {**op.attributes, "tile": DOT_TILES[half.name], "warps": dot_warps(DOT_TILES[half.name])}
    kernel = emit_matmul(op, "half_tiles")
    assert kernel.num_warps == 8 and kernel.constants == {"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}
    ptx = TritonModule([kernel], interpret=True, folder=folder).ptx(kernel.name, [half] * 4)
    assert ".target sm_90" in ptx and "wgmma" in ptx


def test_float64_products_use_the_fp64_tensor_cores(folder: str) -> None:
    def build():
        x, w = fc.placeholder(fc.float64, [None, None]), fc.placeholder(fc.float64, [None, None])
        return [x, w], [fc.matmul(x, w)]

    (op,) = kernels_of(gpu_module(build))
    kernel = emit_matmul(op, "fp64")
    ptx = TritonModule([kernel], interpret=True, folder=folder).ptx(kernel.name, slot_dtypes(op))
    assert "mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64" in ptx


def test_float32_products_are_ieee_not_tf32(folder: str) -> None:
    """input_precision="ieee": a float32 tile is multiplied with fma, not the tensor cores' tf32."""
    def build():
        x, w = fc.placeholder(fc.float32, [None, None]), fc.placeholder(fc.float32, [None, None])
        return [x, w], [fc.matmul(x, w)]

    (op,) = kernels_of(gpu_module(build))
    kernel = emit_matmul(op, "ieee")
    ptx = TritonModule([kernel], interpret=True, folder=folder).ptx(kernel.name, slot_dtypes(op))
    assert "fma.rn.f32" in ptx and "tf32" not in ptx and "mma" not in ptx


# -- whole graphs on the gpu target ----------------------------------------------------------------


def test_mlp_forward_on_the_gpu_target(rng: np.random.Generator) -> None:
    """Two layers x @ W + b with relu between: each layer one matmul kernel with its epilogue."""
    def build():
        x = fc.placeholder(fc.float32, [None, 12], name="x")
        w1, b1 = fc.placeholder(fc.float32, [12, 20], name="w1"), fc.placeholder(fc.float32, [20], name="b1")
        w2, b2 = fc.placeholder(fc.float32, [20, 3], name="w2"), fc.placeholder(fc.float32, [3], name="b2")
        return fc.matmul(fc.nn.relu(fc.matmul(x, w1) + b1), w2) + b2

    feeds = {"x": data(rng, (9, 12)), "w1": data(rng, (12, 20)), "b1": data(rng, (20,)),
             "w2": data(rng, (20, 3)), "b2": data(rng, (3,))}
    assert_gpu_matches(build, feeds, rtol=1e-5, atol=1e-5)


def test_mlp_backward_on_the_gpu_target(rng: np.random.Generator) -> None:
    """The weight gradients of relu(x @ W1) @ W2 for an upstream gradient dy: dW2 = h^T dy, and
    dW1 = x^T (dy W2^T * (h > 0)), transposed products with the relu's mask in an epilogue."""
    def build():
        x = fc.placeholder(fc.float32, [None, 12], name="x")
        dy = fc.placeholder(fc.float32, [None, 3], name="dy")
        w1, w2 = fc.placeholder(fc.float32, [12, 20], name="w1"), fc.placeholder(fc.float32, [20, 3], name="w2")
        y = fc.matmul(fc.nn.relu(fc.matmul(x, w1)), w2)
        return [y, *fc.gradients(y, [w1, w2], grad_ys=dy)]

    feeds = {"x": data(rng, (9, 12)), "dy": data(rng, (9, 3)), "w1": data(rng, (12, 20)), "w2": data(rng, (20, 3))}
    assert_gpu_matches(build, feeds, rtol=1e-5, atol=1e-5)


def test_sgd_steps_on_the_gpu_target(rng: np.random.Generator) -> None:
    """Three SGD steps of two weight matrices for a fed upstream gradient: each update W - lr * x^T dz
    is one accumulating matmul kernel, and the weights stay on the device between runs."""
    start1, start2 = data(rng, (12, 20)), data(rng, (20, 3))

    def step():
        x = fc.placeholder(fc.float32, [None, 12], name="x")
        dy = fc.placeholder(fc.float32, [None, 3], name="dy")
        w1, w2 = fc.Variable(start1, name="w1"), fc.Variable(start2, name="w2")
        y = fc.matmul(fc.nn.relu(fc.matmul(x, w1)), w2)
        grads = fc.gradients(y, [w1, w2], grad_ys=dy)
        update = fc.train.GradientDescentOptimizer(0.05).apply_gradients(list(zip(grads, [w1, w2])))
        with fc.control_dependencies([update]):
            return [x, dy], [fc.identity(w1), fc.identity(w2)]

    updates = [op for op in kernels_of(gpu_module(step)) if op.attributes.get("accumulate")]
    assert len(updates) == 2
    feeds = {"x": data(rng, (9, 12)), "dy": data(rng, (9, 3))}
    assert_gpu_matches(lambda: step()[1], feeds, rtol=1e-5, atol=1e-5, runs=3)


def test_mlp_training_steps_with_softmax_cross_entropy(rng: np.random.Generator) -> None:
    """A whole training step of a two-layer classifier on the gpu target: x @ W + b and relu, the
    softmax cross-entropy and its gradients (reductions), the SGD updates (accumulating products, and
    reductions for the biases); five steps, the loss and the weights against the reference's."""
    inits = [data(rng, (12, 16)) * 0.3, np.zeros(16, np.float32), data(rng, (16, 5)) * 0.3, np.zeros(5, np.float32)]

    def build():
        x = fc.placeholder(fc.float32, [None, 12], name="x")
        labels = fc.placeholder(fc.float32, [None, 5], name="labels")  # one-hot: no gather
        w1, b1, w2, b2 = (fc.Variable(value, name=name) for value, name in zip(inits, ["w1", "b1", "w2", "b2"]))
        logits = fc.matmul(fc.nn.relu(fc.matmul(x, w1) + b1), w2) + b2
        # A summed loss: reduce_mean's gradient makes a reduction kernel gpured's emitter does not run yet.
        loss = fc.reduce_sum(fc.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        step = fc.train.GradientDescentOptimizer(0.02).minimize(loss)
        with fc.control_dependencies([step]):
            return [fc.identity(loss), fc.identity(w1), fc.identity(b2)]

    feeds = {"x": data(rng, (23, 12)), "labels": np.eye(5, dtype=np.float32)[rng.integers(0, 5, 23)]}
    assert_gpu_matches(build, feeds, rtol=1e-5, atol=1e-5, runs=5)
