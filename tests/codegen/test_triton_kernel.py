"""The Triton kernel interface (codegen/triton/kernel.py): a kernel stated as data runs in Triton's
interpreter on CPU torch tensors and builds to PTX for an H100, on a machine without a GPU."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from flowc.codegen.triton.kernel import Buffer, Extent, GridAxis, Scalar, TritonKernel, TritonModule  # noqa: E402
from flowc.ir.types import as_dtype  # noqa: E402

SCALED_ADD = TritonKernel(
    name="scaled_add",
    source='''
@triton.jit
def scaled_add(x, y, out, n, scale, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    a = tl.load(x + offsets, mask=inside)
    b = tl.load(y + offsets, mask=inside)
    tl.store(out + offsets, a * scale + b, mask=inside)
''',
    parameters=(("x", Buffer(0)), ("y", Buffer(1)), ("out", Buffer(2)), ("n", Extent(2, 0)),
                ("scale", Scalar("scale", "i32"))),
    grid=(GridAxis((Extent(2, 0),), 32),),
    constants={"BLOCK": 32},
)


@pytest.fixture
def module(tmp_path):
    return TritonModule([SCALED_ADD], interpret=True, folder=str(tmp_path))


@pytest.mark.parametrize("n", [0, 1, 31, 32, 77])
def test_interpreted_launch_fills_sizes_and_grid(module, n):
    x, y = torch.arange(n, dtype=torch.float32), torch.ones(n)
    out = torch.full((n,), -1.0)
    module.launch("scaled_add", [x, y, out], {"scale": 3})
    np.testing.assert_array_equal(out.numpy(), 3 * np.arange(n, dtype=np.float32) + 1)


def test_grid_is_the_ceiling_of_work_over_block():
    assert SCALED_ADD.grid_size([(5,), (5,), (65,)]) == (3,)
    assert SCALED_ADD.grid_size([(0,), (0,), (0,)]) == (0,)


def test_module_file_is_found_by_a_second_module(tmp_path):
    first = TritonModule([SCALED_ADD], interpret=True, folder=str(tmp_path))
    second = TritonModule([SCALED_ADD], interpret=True, folder=str(tmp_path))
    assert not first.was_cached and second.was_cached and first.path == second.path


def test_builds_to_ptx_for_an_h100(module):
    ptx = module.ptx("scaled_add", [as_dtype("float32")] * 3)
    assert ".target sm_90" in ptx and ".entry scaled_add" in ptx
