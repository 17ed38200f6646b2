"""Narrow products whose m is a known multiple of the tile's rows are emitted without the single-row
leftover tiles (kernels/narrow.py, _whole_tiles), and a BLAS product's epilogue is not inlined
(kernels/matmul.py): both for a quicker cold compile, with the same results."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.codegen.llvm.kernels.narrow import tiles_of
from flowc.codegen.llvm.module import emit_module
from flowc.runtime import set_num_threads


def run_on_two_threads(build, feeds: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    """The outputs on the cpu and reference targets, and the cpu program's LLVM module text."""
    g = fc.Graph()
    with g.as_default():
        placeholders = {k: fc.placeholder(fc.float32, shape=v.shape, name=k) for k, v in feeds.items()}
        out = build(**placeholders)
    fed = {placeholders[k]: v for k, v in feeds.items()}
    set_num_threads(2)  # pieces of the work cut in whole tiles, some across a batch's matrices
    try:
        with fc.Session(graph=g) as sess:
            got = sess.run(out, fed)
            (compiled,) = sess._cache.values()
    finally:
        set_num_threads(0)
    want = fc.Session(target="reference", graph=g).run(out, fed)
    program = compiled.executable.program
    return got, want, program, str(emit_module(program))


@pytest.mark.parametrize("m", [64, 256, 63, 255])
@pytest.mark.parametrize("transpose_a", [False, True], ids=["dot", "columns"])
def test_leftover_tiles_only_where_rows_can_be_left_over(rng, m, transpose_a) -> None:
    """3 batches of m x 40 @ 40 x 10: dot tiles (x @ W) or column tiles (x^T @ W) on two threads."""
    a = rng.standard_normal((3, 40, m) if transpose_a else (3, m, 40)).astype(np.float32) * 0.1
    b = rng.standard_normal((40, 10)).astype(np.float32) * 0.1
    got, want, program, text = run_on_two_threads(
        lambda a, b: fc.matmul(a, b, transpose_a=transpose_a) + 1.0, {"a": a, "b": b})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    (product,) = [op for op in program.kernel_ops if op.kind == "matmul"]
    rows = tiles_of(product).rows
    leftover = "nr.header" in text or "nd.header" in text
    assert leftover == (rows > 1 and m % rows != 0), (rows, m)


def test_blas_epilogue_is_not_inlined(rng) -> None:
    """The epilogue's function is called for a piece's own rows, not inlined into the product kernel."""
    x = rng.standard_normal((300, 64)).astype(np.float32)
    w = rng.standard_normal((64, 300)).astype(np.float32) * 0.1
    got, want, _, text = run_on_two_threads(lambda x, w: fc.relu(fc.matmul(x, w) + 1.0), {"x": x, "w": w})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    definition = next(line for line in text.splitlines() if line.startswith("define") and "_epilogue" in line)
    assert "noinline" in definition
