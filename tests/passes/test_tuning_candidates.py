"""The GPU schedule's tuning candidates (Note [tuning candidates] in passes/schedule_gpu.py) over many
shapes: each is valid for its kernel (the verifier passes), differs from the heuristic's configuration
and from the others, keeps tl.dot's least tile of 16, fits its stages in shared memory, and the list
stays short."""

from __future__ import annotations

import itertools

import pytest

from flowc.ir import parse_module
from flowc.passes import PassManager
from flowc.passes.fusion import Fuse
from flowc.passes.schedule_gpu import MOST_WARPS, GpuInfo, GpuSchedule

PRODUCT = """
func @main(%a: T[M,K], %b: T[K,N]) -> T[M,N] {
  %p = matmul %a, %b {transpose_a = false, transpose_b = false} : T[M,N]
  return %p : T[M,N]
}
"""

ROWS = """
func @main(%x: f32[R,C]) -> f32[R,C] {
  %mx = reduce_max %x {axes = [-1], keepdims = true} : f32[R,1]
  %d = sub %x, %mx : f32[R,C]
  %e = exp %d : f32[R,C]
  %s = reduce_sum %e {axes = [-1], keepdims = true} : f32[R,1]
  %y = div %e, %s : f32[R,C]
  return %y : f32[R,C]
}
"""

COLUMNS = """
func @main(%x: f32[R,C]) -> f32[C] {
  %s = reduce_sum %x {axes = [0], keepdims = false} : f32[C]
  return %s : f32[C]
}
"""

SIZES = ["?", "1", "3", "10", "100", "5000"]


def scheduled(text: str) -> dict[str, object]:
    module = parse_module(text)
    PassManager([Fuse(), GpuSchedule()], verify_each=True).run(module)  # the verifier checks every candidate
    (op,) = [op for op in module["main"].entry.ops if op.name == "fusion"]
    return op.attributes


def configurations(attributes: dict[str, object], sizes: str) -> tuple[tuple, list[tuple]]:
    heuristic = (attributes[sizes], attributes["warps"]) + ((attributes["stages"],) if "stages" in attributes else ())
    return heuristic, list(attributes["candidates"])  # type: ignore[call-overload]


@pytest.mark.parametrize("dtype", ["f16", "f32", "f64", "i32"])
def test_matmul_candidates(dtype: str) -> None:
    itemsize = {"f16": 2, "f32": 4, "f64": 8, "i32": 4}[dtype]
    for m, n, k in itertools.product(SIZES, repeat=3):
        text = PRODUCT.replace("T", dtype).replace("M", m).replace("N", n).replace("K", k)
        heuristic, candidates = configurations(scheduled(text), "tile")
        assert heuristic not in candidates and len(set(candidates)) == len(candidates) <= 6, (m, n, k, candidates)
        for tile, warps, *stages in candidates:
            assert warps <= MOST_WARPS
            if dtype != "i32":
                assert min(tile) >= 16 and stages, (m, n, k, tile)
                assert stages[0] * (tile[0] + tile[1]) * tile[2] * itemsize <= GpuInfo().shared_memory_bytes
            for size, known in zip(tile, (m, n, k)):  # never past the known dim's power of two (or 16)
                assert known == "?" or size <= max(16 if dtype != "i32" else 2, 1 << (int(known) - 1).bit_length())


@pytest.mark.parametrize("text", [ROWS, COLUMNS], ids=["rows", "columns"])
def test_reduction_candidates(text: str) -> None:
    for rows, columns in itertools.product(SIZES, repeat=2):
        heuristic, candidates = configurations(scheduled(text.replace("R", rows).replace("C", columns)), "block")
        assert heuristic not in candidates and len(set(candidates)) == len(candidates) <= 5, (rows, columns)
        assert candidates, (rows, columns)  # twice the warps at least
        for (height, width), warps in candidates:
            assert height * width <= 2 * 8192 and warps <= MOST_WARPS
