"""The choices the schedule pass makes for the emitters (passes/schedule.py): a narrow product's tiling
and tile sizes, the split-k rule, a column reduction's tile, a row's partial sums and the row it keeps.
Each is data on the fusion op, chosen from the region and the TargetInfo; the native code follows
whatever the attributes say, and the attributes key the disk cache."""

from __future__ import annotations

import re

import numpy as np
import pytest

from flowc.driver import compile_lowered
from flowc.errors import FlowcError
from flowc.ir import Module, Operation, parse_module, verify
from flowc.ir.ops.fusion import PARAMETERS, DimTies
from flowc.lowering import Lowered, Signature
from flowc.options import CompileOptions
from flowc.passes import Pass, PassManager
from flowc.passes.fusion import Fuse
from flowc.passes.schedule import Schedule, TargetInfo, choose_schedule
from flowc.targets import CpuTarget

PRODUCT = """
func @main(%x: f32[M,K], %w: f32[K,N]) -> f32[M,N] {
  %p = matmul %x, %w {transpose_a = false, transpose_b = false} : f32[M,N]
  return %p : f32[M,N]
}
"""

GRADIENT = """
func @main(%x: f32[M,K], %dz: f32[M,N]) -> f32[K,N] {
  %g = matmul %x, %dz {transpose_a = true, transpose_b = false} : f32[K,N]
  return %g : f32[K,N]
}
"""

SOFTMAX = """
func @main(%x: f32[?,ROW]) -> f32[?,ROW] {
  %mx = reduce_max %x {axes = [-1], keepdims = true} : f32[?,1]
  %d = sub %x, %mx : f32[?,ROW]
  %e = exp %d : f32[?,ROW]
  %s = reduce_sum %e {axes = [-1], keepdims = true} : f32[?,1]
  %y = div %e, %s : f32[?,ROW]
  return %y : f32[?,ROW]
}
"""

COLUMN_SUM = """
func @main(%x: f32[?,COLUMNS]) -> f32[COLUMNS] {
  %s = reduce_sum %x {axes = [0], keepdims = false} : f32[COLUMNS]
  return %s : f32[COLUMNS]
}
"""


def filled(text: str, **sizes: object) -> str:
    for name, size in sizes.items():
        text = text.replace(name, "?" if size is None else str(size))
    return text


def scheduled(text: str, vector_bytes: int = 64) -> Module:
    module = parse_module(text)
    PassManager([Fuse(), Schedule(TargetInfo(vector_bytes))], verify_each=True).run(module)
    return module


def kernels(module: Module) -> list[Operation]:
    return [op for function in module for op in function.entry.ops if op.name == "fusion"]


def schedule(text: str, vector_bytes: int = 64) -> dict[str, object]:
    (op,) = kernels(scheduled(text, vector_bytes))
    return {key: value for key, value in op.attributes.items() if key != "kind"}


# -- the choices, as data ---------------------------------------------------------------------

@pytest.mark.parametrize("vector_bytes, dtype, n, want", [
    (64, "f32", 10, {"tiling": "dot", "tile": (2, 10, 16)}),  # 24 accumulators: 2 rows of 10
    (64, "f32", 16, {"tiling": "dot", "tile": (1, 16, 16)}),
    (64, "f32", 1, {"tiling": "dot", "tile": (24, 1, 16)}),
    (64, "f64", 10, {"tiling": "dot", "tile": (2, 10, 8)}),  # 8 float64 lanes
    (32, "f32", 10, {"tiling": "dot", "tile": (1, 10, 8)}),  # 12 accumulators of 16 registers
    (32, "f32", 16, {"tiling": "dot", "tile": (1, 12, 8)}),  # columns in groups of 12
    (16, "f32", 4, {"tiling": "dot", "tile": (3, 4, 4)}),
])
def test_dot_tiles_follow_the_target(vector_bytes: int, dtype: str, n: int, want: dict[str, object]) -> None:
    text = filled(PRODUCT, M=100, K=40, N=n).replace("f32", dtype)
    assert schedule(text, vector_bytes) == {"schedule": "narrow", **want}


@pytest.mark.parametrize("vector_bytes, n, want", [
    (64, 10, (16, 10, 1)),
    (64, 16, (16, 16, 1)),
    (32, 10, (8, 10, 1)),
    (32, 16, (8, 12, 1)),  # 12 accumulators: two passes over the columns
    (16, 3, (4, 3, 1)),
])
def test_column_tiles_follow_the_target(vector_bytes: int, n: int, want: tuple[int, ...]) -> None:
    assert schedule(filled(GRADIENT, M=None, K=50, N=n), vector_bytes) == {
        "schedule": "narrow", "tiling": "columns", "tile": want}


@pytest.mark.parametrize("vector_bytes, n, want", [
    (64, 10, (8, 10, 1)),  # 10 columns pad to 16: one register, 8 chains of one
    (32, 10, (4, 10, 1)),  # two registers a row
    (16, 16, (2, 16, 1)),  # four registers a row
])
def test_row_tiles_where_w_cannot_be_copied(vector_bytes: int, n: int, want: tuple[int, ...]) -> None:
    """k unknown: op(B) is not copied transposed for dot tiles."""
    assert schedule(filled(PRODUCT, M=None, K=None, N=n), vector_bytes) == {
        "schedule": "narrow", "tiling": "rows", "tile": want}


@pytest.mark.parametrize("m, k, n, want", [
    (None, 784, 10, "split_k"),  # the batch known at run time only: the rule is recorded
    (100, 784, 10, "split_k"),  # two slices fit: 2 x 100 x 10 floats, 200 <= 784
    (1000, 784, 10, "narrow"),  # 2 x 1000 x 10 floats overflow 64 KiB
    (500, 784, 10, "narrow"),  # fits 64 KiB, but more partial rows (1000) than k
    (None, 16, 10, "narrow"),  # k one vector: one slice at most
    (None, 17, 10, "split_k"),
])
def test_the_split_rule(m: int | None, k: int, n: int, want: str) -> None:
    chosen = schedule(filled(PRODUCT, M=m, K=k, N=n))
    assert chosen["schedule"] == want
    assert ("partial_bytes" in chosen) == (want == "split_k")
    if want == "split_k":
        assert chosen["partial_bytes"] == 1 << 16


def test_transposed_and_batched_products_never_split() -> None:
    transposed = filled(GRADIENT, M=None, K=100, N=10)
    batched = """
func @main(%x: f32[4,?,784], %w: f32[784,10]) -> f32[4,?,10] {
  %p = matmul %x, %w {transpose_a = false, transpose_b = false} : f32[4,?,10]
  return %p : f32[4,?,10]
}
"""
    assert schedule(transposed)["schedule"] == schedule(batched)["schedule"] == "narrow"


@pytest.mark.parametrize("row, want", [
    (1000, {"partial_sums": 16, "kept_row": 1}),  # exp(x - max), walked by the sum, kept for the division
    (20000, {"partial_sums": 16}),  # 80 KB: more than a kept row may take
    (None, {"partial_sums": 16}),  # a buffer of unknown size: nothing kept
])
def test_softmax_rows(row: int | None, want: dict[str, object]) -> None:
    assert schedule(filled(SOFTMAX, ROW=row)) == {"schedule": "rows", **want}


def test_a_row_of_cheap_values_is_not_kept_and_a_short_row_has_one_partial_sum() -> None:
    sums = """
func @main(%x: f32[?,8,3]) -> f32[?,3] {
  %s = reduce_sum %x {axes = [1], keepdims = false} : f32[?,3]
  return %s : f32[?,3]
}
"""
    assert schedule(sums) == {"schedule": "rows", "partial_sums": 1}


def test_column_reductions_have_a_tile() -> None:
    assert schedule(filled(COLUMN_SUM, COLUMNS=256)) == {"schedule": "column", "tile": (512,)}


UPDATE = """
func @main(%x: f32[?,K], %dz: f32[?,N], %w: f32[K,N], %lr: f32[]) -> f32[K,N] {
  %g = matmul %x, %dz {transpose_a = true, transpose_b = false} : f32[K,N]
  %s = mul %g, %lr : f32[K,N]
  %n = sub %w, %s : f32[K,N]
  return %n : f32[K,N]
}
"""


@pytest.mark.parametrize("n, dtype, want", [
    (10, "f32", {"schedule": "narrow", "tiling": "columns", "tile": (16, 10, 1), "accumulate": True}),
    (256, "f64", {"schedule": "blas", "accumulate": True}),
    (256, "i32", {"schedule": "generic"}),  # no gemm to accumulate into
])
def test_updates_accumulate(n: int, dtype: str, want: dict[str, object]) -> None:
    assert schedule(filled(UPDATE, K=50, N=n).replace("f32", dtype)) == want


def test_a_product_used_twice_does_not_accumulate() -> None:
    text = filled(UPDATE, K=50, N=256).replace("return %n : f32[50,256]", "return %n, %g : f32[50,256], f32[50,256]")
    text = text.replace("-> f32[50,256] {", "-> (f32[50,256], f32[50,256]) {")
    assert schedule(text) == {"schedule": "blas"}


def test_choose_schedule_makes_its_own_ties() -> None:
    """Without the function's ties (a module built without the pass) the choice is the same."""
    module = parse_module(filled(SOFTMAX, ROW=1000))
    PassManager([Fuse()]).run(module)
    (op,) = kernels(module)
    target = TargetInfo(64)
    assert choose_schedule(op, target) == choose_schedule(op, target, DimTies(op.parent.ops)) == {
        "schedule": "rows", "partial_sums": 16, "kept_row": 1}


CONTROL_FLOW = """
func @main(%p: bool[], %x: f32[?,1000]) -> f32[?,1000] {
  %r = cond %p, %x : f32[?,1000] {
  ^bb0(%a: f32[?,1000]):
    %y = fusion %a {kind = "reduction"} : f32[?,1000] {
    ^bb0(%b: f32[?,1000]):
      %mx = reduce_max %b {axes = [-1], keepdims = true} : f32[?,1]
      %d = sub %b, %mx : f32[?,1000]
      %e = exp %d : f32[?,1000]
      %s = reduce_sum %e {axes = [-1], keepdims = true} : f32[?,1]
      %q = div %e, %s : f32[?,1000]
      yield %q : f32[?,1000]
    }
    yield %y : f32[?,1000]
  } {
  ^bb0(%c: f32[?,1000]):
    yield %c : f32[?,1000]
  }
  return %r : f32[?,1000]
}
"""


def test_kernels_inside_control_flow_are_scheduled() -> None:
    """A kernel in a branch of a cond (native control flow) gets its schedule as a top-level one."""
    module = parse_module(CONTROL_FLOW)
    PassManager([Schedule(TargetInfo(64))], verify_each=True).run(module)
    (op,) = [op for op in module["main"].walk() if op.name == "fusion"]
    assert op.attributes == {"kind": "reduction", "schedule": "rows", "partial_sums": 16, "kept_row": 1}


def test_the_target_vector_registers() -> None:
    assert [TargetInfo(width).vector_registers for width in (16, 32, 64)] == [16, 16, 32]
    assert [TargetInfo(width).accumulators for width in (16, 32, 64)] == [12, 12, 24]


# -- the verifier -----------------------------------------------------------------------------

KERNEL = """
func @f(%x: f32[4,6], %w: f32[6,2]) -> f32[4,2] {
  %y = fusion %x, %w {ATTRIBUTES} : f32[4,2] {
  ^bb0(%a: f32[4,6], %b: f32[6,2]):
    %p = matmul %a, %b {transpose_a = false, transpose_b = false} : f32[4,2]
    yield %p : f32[4,2]
  }
  return %y : f32[4,2]
}
"""

ROWS = """
func @f(%x: f32[4,ROW]) -> f32[4] {
  %y = fusion %x {ATTRIBUTES} : f32[4] {
  ^bb0(%a: f32[4,ROW]):
    %i = argmax %a {axis = 1, dtype = i64} : i64[4]
    %e = exp %a : f32[4,ROW]
    %s = reduce_sum %e {axes = [1], keepdims = false} : f32[4]
    yield %s : f32[4]
  }
  return %y : f32[4]
}
"""


@pytest.mark.parametrize("text, attributes, message", [
    (KERNEL, 'kind = "matmul", schedule = "narrow", tiling = "dot"',
     "schedule 'narrow' takes parameters ['tile', 'tiling'] (and may have ['accumulate']), got ['tiling']"),
    (KERNEL, 'kind = "matmul", schedule = "narrow", tile = [2, 2], tiling = "dot"',
     "tile must be 3 positive sizes, got (2, 2)"),
    (KERNEL, 'kind = "matmul", schedule = "narrow", tile = [2, 0, 8], tiling = "dot"',
     "tile must be 3 positive sizes, got (2, 0, 8)"),
    (KERNEL, 'kind = "matmul", schedule = "narrow", tile = [2, 2, 8], tiling = "diagonal"',
     "a narrow product's tiling is dot, rows, columns, got 'diagonal'"),
    (KERNEL, 'kind = "matmul", partial_bytes = 4096, schedule = "split_k", tile = [8, 2, 1], tiling = "rows"',
     "a split_k product's tiling is dot, got 'rows'"),
    (KERNEL, 'kind = "matmul", partial_bytes = 0, schedule = "split_k", tile = [8, 2, 8], tiling = "dot"',
     "partial_bytes must be at least 1, got 0"),
    (KERNEL, 'kind = "matmul", schedule = "blas", tile = [8, 2, 8]',
     "schedule 'blas' takes parameters none (and may have ['accumulate', 'quick']), got ['tile']"),
    (KERNEL, 'kind = "matmul", tile = [8, 2, 8]', "tile is a parameter of a schedule, and the kernel has none"),
    (ROWS.replace("ROW", "6"), 'kind = "reduction", schedule = "rows"',
     "schedule 'rows' takes parameters ['partial_sums'] (and may have ['kept_row']), got none"),
    (ROWS.replace("ROW", "6"), 'kept_row = 2, kind = "reduction", partial_sums = 16, schedule = "rows"',
     "kept_row names one of the kernel's 2 reductions, got 2"),
    (ROWS.replace("ROW", "6"), 'kept_row = 0, kind = "reduction", partial_sums = 16, schedule = "rows"',
     "kept_row names reduction 0, argmax, whose walk keeps no row"),
    (ROWS.replace("ROW", "?"), 'kept_row = 1, kind = "reduction", partial_sums = 16, schedule = "rows"',
     "kept_row names reduction 1, whose row f32[4,?] has a size known only at run time"),
    (ROWS.replace("ROW", "6"), 'kind = "reduction", schedule = "column", tile = [512, 2]',
     "tile must be 1 positive sizes, got (512, 2)"),
    (KERNEL, 'accumulate = true, kind = "matmul", schedule = "blas"',
     "accumulate needs an epilogue C0 + s * P or C0 - s * P of the product P, used nowhere else"),
    (KERNEL, 'accumulate = false, kind = "matmul", schedule = "blas"', "accumulate is true where present, got False"),
    (KERNEL, 'accumulate = true, kind = "matmul", schedule = "generic"',
     "schedule 'generic' takes parameters none, got ['accumulate']"),
])
def test_the_verifier_checks_the_parameters(text: str, attributes: str, message: str) -> None:
    module = parse_module(text.replace("ATTRIBUTES", attributes))
    with pytest.raises(FlowcError, match=re.escape(message)):
        verify(module)


def test_a_kept_row_of_the_last_reduction_verifies() -> None:
    verify(parse_module(ROWS.replace("ROW", "6").replace(
        "ATTRIBUTES", 'kept_row = 1, kind = "reduction", partial_sums = 16, schedule = "rows"')))


# -- the code follows the attributes ------------------------------------------------------------

class Overrides(Pass):
    """Set schedule parameters after the schedule pass, as a hand-written module could."""

    name = "override-schedule"

    def __init__(self, attributes: dict[str, object]):
        self.attributes = attributes

    def run(self, module: Module) -> bool:
        for op in kernels(module):
            if op.kind in ("matmul", "reduction"):
                op.attributes = {key: value for key, value in op.attributes.items()
                                 if key not in PARAMETERS} | self.attributes
        return True


class OverridingCpu(CpuTarget):
    def __init__(self, attributes: dict[str, object]):
        self.attributes = attributes

    def passes(self, options: CompileOptions) -> list[Pass]:
        passes = super().passes(options)
        at = next(index for index, p in enumerate(passes) if p.name == "schedule") + 1
        return [*passes[:at], Overrides(self.attributes), *passes[at:]]


def native(text: str, attributes: dict[str, object], *args: np.ndarray,
           cache: str | None = None):  # type: ignore[no-untyped-def]
    signature = Signature(feeds=(), variables=(), uses_step=False, fetches=(), updates=())
    options = CompileOptions(optimize=False, verify=True, cache_dir=cache)
    executable = compile_lowered(Lowered(parse_module(text), signature), OverridingCpu(attributes), options)
    (got,) = executable(list(args))
    return got, executable


@pytest.mark.parametrize("attributes", [
    {"schedule": "narrow", "tiling": "dot", "tile": (3, 4, 8)},  # rows left over, column groups, k % 8 terms
    {"schedule": "narrow", "tiling": "dot", "tile": (1, 10, 4)},
    {"schedule": "narrow", "tiling": "rows", "tile": (5, 10, 1)},
    {"schedule": "split_k", "tiling": "dot", "tile": (2, 3, 16), "partial_bytes": 1 << 16},
])
def test_products_follow_the_recorded_tiles(attributes: dict[str, object], rng: np.random.Generator) -> None:
    x = rng.standard_normal((37, 100)).astype(np.float32)
    w = rng.standard_normal((100, 10)).astype(np.float32)
    got, _ = native(filled(PRODUCT, M=37, K=100, N=10), attributes, x, w)
    np.testing.assert_allclose(got, x @ w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tile", [(8, 10, 1), (5, 3, 1), (16, 7, 1)])
def test_gradients_follow_the_recorded_column_tiles(tile: tuple[int, ...], rng: np.random.Generator) -> None:
    x = rng.standard_normal((30, 50)).astype(np.float32)
    dz = rng.standard_normal((30, 10)).astype(np.float32)
    got, _ = native(filled(GRADIENT, M=30, K=50, N=10), {"schedule": "narrow", "tiling": "columns", "tile": tile},
                    x, dz)
    np.testing.assert_allclose(got, x.T @ dz, rtol=1e-4, atol=1e-4)


def test_the_launch_applies_the_recorded_split_rule(rng: np.random.Generator) -> None:
    """On two threads a 100 x 784 @ 784 x 10 product splits by k under a 64 KiB bound and not under
    a 4 KiB one (its two slices' partials take 8 KB): the sums come out in another order."""
    from flowc.runtime import set_num_threads

    x = rng.standard_normal((100, 784)).astype(np.float32)
    w = rng.standard_normal((784, 10)).astype(np.float32)
    text = filled(PRODUCT, M=None, K=784, N=10)
    tiles = {"schedule": "split_k", "tiling": "dot", "tile": (2, 10, 16)}
    set_num_threads(2)
    try:
        split, _ = native(text, tiles | {"partial_bytes": 1 << 16}, x, w)
        whole, _ = native(text, tiles | {"partial_bytes": 1 << 12}, x, w)
        narrow, _ = native(text, {"schedule": "narrow", "tiling": "dot", "tile": (2, 10, 16)}, x, w)
    finally:
        set_num_threads(0)
    want = x.astype(np.float64) @ w.astype(np.float64)
    for got in (split, whole, narrow):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(whole, narrow)  # the rule failed: the rows path, as a narrow product's
    assert not np.array_equal(split, whole)


@pytest.mark.parametrize("attributes", [
    {"partial_sums": 16, "kept_row": 1},
    {"partial_sums": 16},  # exp(x - max) computed again in the write walk
    {"partial_sums": 4},
    {"partial_sums": 1, "kept_row": 1},  # serial sums, from the kept row
    {"partial_sums": 16, "kept_row": 0},  # the row of x kept by the max's walk
])
def test_rows_follow_the_recorded_sums_and_kept_row(attributes: dict[str, object], rng: np.random.Generator) -> None:
    x = rng.standard_normal((9, 1000)).astype(np.float32)
    got, _ = native(filled(SOFTMAX, ROW=1000), {"schedule": "rows", **attributes}, x)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("attributes", [
    {"schedule": "narrow", "tiling": "columns", "tile": (16, 10, 1), "accumulate": True},
    {"schedule": "narrow", "tiling": "columns", "tile": (16, 10, 1)},  # the product, then the epilogue
    {"schedule": "blas", "accumulate": True},
    {"schedule": "blas"},
])
def test_updates_follow_the_recorded_accumulate(attributes: dict[str, object], rng: np.random.Generator) -> None:
    x, dz = rng.standard_normal((30, 50)).astype(np.float32), rng.standard_normal((30, 10)).astype(np.float32)
    w, lr = rng.standard_normal((50, 10)).astype(np.float32), np.float32(0.25)
    got, _ = native(filled(UPDATE, K=50, N=10), attributes, x, dz, w, np.array(lr))
    np.testing.assert_allclose(got, w - (x.T @ dz) * lr, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tile", [1, 7, 512])
def test_column_reductions_follow_the_recorded_tile(tile: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((300, 45)).astype(np.float32)
    got, _ = native(filled(COLUMN_SUM, COLUMNS=45), {"schedule": "column", "tile": (tile,)}, x)
    np.testing.assert_allclose(got, x.sum(axis=0), rtol=1e-5, atol=1e-4)


def test_the_attributes_key_the_disk_cache(tmp_path, rng: np.random.Generator) -> None:
    """Code compiled for one tile is found again for it, never taken for another."""
    x = rng.standard_normal((20, 64)).astype(np.float32)
    w = rng.standard_normal((64, 10)).astype(np.float32)
    text = filled(PRODUCT, M=20, K=64, N=10)
    cache = str(tmp_path)
    runs = [native(text, {"schedule": "narrow", "tiling": "dot", "tile": tile}, x, w, cache=cache)
            for tile in ((2, 10, 16), (2, 10, 16), (3, 10, 16), (2, 10, 8))]
    assert [executable.was_cached for _, executable in runs] == [False, True, False, False]
    assert len({executable.library_path for _, executable in runs}) == 3
    for got, _ in runs:
        np.testing.assert_allclose(got, x @ w, rtol=1e-4, atol=1e-4)
