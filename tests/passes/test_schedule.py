"""The schedule pass (passes/schedule.py): the fusion op's schedule attributes, their text and
checks, and native code that follows them for any vector width."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from flowc.driver import compile_lowered
from flowc.errors import FlowcError
from flowc.ir import Module, parse_module, verify
from flowc.ir.printer import print_module
from flowc.lowering import Lowered, Signature
from flowc.options import CompileOptions
from flowc.passes import PassManager
from flowc.passes.fusion import Fuse
from flowc.passes.schedule import Schedule, TargetInfo

FILECHECK = pathlib.Path(__file__).parent.parent / "filecheck"

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


def scheduled(text: str, vector_bytes: int) -> Module:
    module = parse_module(text)
    PassManager([Fuse(), Schedule(TargetInfo(vector_bytes))], verify_each=True).run(module)
    return module


def kernel_attributes(module: Module) -> list[dict[str, object]]:
    return [dict(op.attributes) for function in module for op in function.entry.ops if op.name == "fusion"]


@pytest.mark.parametrize("vector_bytes, want", [
    (64, {"kind": "reduction", "schedule": "row_blocks", "lanes": 16}),
    (32, {"kind": "reduction", "schedule": "vector_rows"}),  # 8 lanes: a row of 10 is no lane block
])
def test_the_schedule_depends_on_the_target(vector_bytes: int, want: dict[str, object]) -> None:
    assert kernel_attributes(scheduled(SOFTMAX.replace("ROW", "10"), vector_bytes)) == [want]


def test_scheduled_text_round_trips() -> None:
    for path in sorted(FILECHECK.glob("schedule_*.ir")):
        text = print_module(scheduled(path.read_text(), 64))
        assert "schedule = " in text
        assert print_module(parse_module(text)) == text, path.name


def test_the_pass_is_idempotent() -> None:
    module = scheduled(SOFTMAX.replace("ROW", "10"), 64)
    assert not Schedule(TargetInfo(64)).run(module)
    assert Schedule(TargetInfo(32)).run(module)  # another target: another schedule, lanes dropped
    assert kernel_attributes(module) == [{"kind": "reduction", "schedule": "vector_rows"}]


KERNEL = """
func @f(%x: f32[4,6]) -> f32[4] {
  %y = fusion %x {ATTRIBUTES} : f32[4] {
  ^bb0(%a: f32[4,6]):
    %t = reduce_sum %a {axes = [1], keepdims = false} : f32[4]
    yield %t : f32[4]
  }
  return %y : f32[4]
}
"""


@pytest.mark.parametrize("attributes, message", [
    ('kind = "reduction", schedule = "blas"', "a reduction kernel's schedule is one of row_blocks, vector_rows, "
                                              "column, rows, row_tiles, column_tiles, got 'blas'"),
    ('kind = "loop", block = 100, schedule = "blocks"', "block must be a power of two, got 100"),
    ('kind = "reduction", schedule = "row_blocks"', "schedule 'row_blocks' takes parameters ['lanes'], got none"),
    ('kind = "reduction", lanes = 8, schedule = "vector_rows"', "schedule 'vector_rows' takes parameters none, "
                                                               "got ['lanes']"),
    ('kind = "reduction", lanes = 8', "lanes is a parameter of a schedule, and the kernel has none"),
    ('kind = "reduction", lanes = 0, schedule = "row_blocks"', "lanes must be at least 1, got 0"),
    # the GPU's tuning candidates (Note [tuning candidates] in passes/schedule_gpu.py)
    ('block = [4, 8], kind = "reduction", schedule = "row_tiles", warps = 3', "warps must be a power of two, got 3"),
    ('block = [4, 8], kind = "reduction", schedule = "row_tiles", stages = 3',
     "schedule 'row_tiles' takes parameters ['block'] (and may have ['candidates', 'warps']), got ['block', 'stages']"),
    ('block = [4, 8], candidates = [[[8, 8], 4], [[2, 3], 4]], kind = "reduction", schedule = "row_tiles"',
     "a candidate is [sizes, warps] with 2 sizes, warps powers of two, got [[2, 3], 4]"),
    ('block = [4, 8], candidates = [[[8, 8], 4, 3]], kind = "reduction", schedule = "row_tiles"',
     "a candidate is [sizes, warps] with 2 sizes, warps powers of two, got [[8, 8], 4, 3]"),
    ('block = [4, 8], candidates = [[8, 8]], kind = "reduction", schedule = "row_tiles"',
     "a candidate is [sizes, warps] with 2 sizes, warps powers of two, got [8, 8]"),
])
def test_the_verifier_checks_the_schedule(attributes: str, message: str) -> None:
    module = parse_module(KERNEL.replace("ATTRIBUTES", attributes))
    with pytest.raises(FlowcError, match=re.escape(message)):
        verify(module)


def test_an_unscheduled_kernel_prints_as_before() -> None:
    text = KERNEL.replace("ATTRIBUTES", 'kind = "reduction"')
    module = parse_module(text)
    verify(module)
    assert '{kind = "reduction"} : f32[4]' in print_module(module)


def native(text: str, vector_bytes: int, x: np.ndarray) -> np.ndarray:
    module = parse_module(text)
    signature = Signature(feeds=(), variables=(), uses_step=False, fetches=(), updates=())
    options = CompileOptions(optimize=False, verify=True, vector_bytes=vector_bytes)
    (got,) = compile_lowered(Lowered(module, signature), "cpu", options)([x])
    return got


@pytest.mark.parametrize("row", [4, 8, 10, 16])
@pytest.mark.parametrize("vector_bytes", [16, 32, 64])
def test_codegen_follows_the_recorded_lanes(row: int, vector_bytes: int, rng: np.random.Generator) -> None:
    """Row blocks of 4, 8 or 16 rows (whatever the host): the code follows the attribute, and the
    rows past the last whole block are masked off (37 rows)."""
    x = rng.standard_normal((37, row)).astype(np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(native(SOFTMAX.replace("ROW", str(row)), vector_bytes, x),
                               e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_every_schedule_has_an_llvm_emitter() -> None:
    from flowc.codegen.llvm import module  # noqa: F401  (registers the emitters)
    from flowc.codegen.llvm.launch import EMITTERS, WORK
    from flowc.ir.ops.fusion import CPU_SCHEDULES as SCHEDULES

    assert set(EMITTERS) == {(kind, schedule) for kind, schedules in SCHEDULES.items() for schedule in schedules}
    assert set(WORK) == set(SCHEDULES)
