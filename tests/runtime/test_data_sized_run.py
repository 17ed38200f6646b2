"""A run cut at its data_dims (Note [data-dependent sizes] in compiler/data_sized_run.py): the segments
as text, what crosses a cut, the host's count, and the layouts a segment keeps."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

import flowc as fc
from flowc.data_sized_run import LAYOUTS_KEPT, DataSizedExecutable, describe, split
from flowc.driver import compile_lowered
from flowc.ir import parse_module
from flowc.ir.errors import RuntimeShapeError
from flowc.lowering import Lowered
from flowc.native import NativeExecutable
from flowc.options import CompileOptions
from flowc.data_sized_run import _SEGMENT

MASKED_SUM = """\
func @main(%x: f32[?,3], %m: bool[?]) -> (f32[?,3], f32[], i64[]) {
  %Cast = cast %m {dtype = i64} : i64[?]
  %count = reduce_sum %Cast {axes = [0], keepdims = false} : i64[]
  %rows = data_dim %count : i64[?,0]
  %two = constant {value = dense<2.0>} : f32[]
  %double = mul %x, %two : f32[?,3]
  %where = where_indices %m, %rows : i64[?,1]
  %picked = gather_nd %double, %where : f32[?,3]
  %total = reduce_sum %picked {axes = [0, 1], keepdims = false} : f32[]
  %half = mul %total, %two : f32[]
  return %picked, %half, %count : f32[?,3], f32[], i64[]
}
"""


def test_a_function_is_cut_at_its_data_dim_the_count_a_result_of_the_segment_before():
    """Segment 0: every op that needs no data_dim (the doubling too); segment 1 takes the data_dim as an
    argument, and the values of segment 0 it reads; the constant is copied into both."""
    function = parse_module(MASKED_SUM)["main"]
    assert describe(function, split(function)) == """\
// segment 0
func @main(%m: bool[?], %x: f32[?,3]) -> (i64[], f32[?,3]) {
  %two = constant {value = dense<2.0>} : f32[]
  %Cast = cast %m {dtype = i64} : i64[?]
  %count = reduce_sum %Cast {axes = [0], keepdims = false} : i64[]
  %double = mul %x, %two : f32[?,3]
  return %count, %double : i64[], f32[?,3]
}

// segment 1, after the host makes %rows = data_dim %count
func @main(%m: bool[?], %rows: i64[?,0], %double: f32[?,3]) -> (f32[?,3], f32[]) {
  %two = constant {value = dense<2.0>} : f32[]
  %where = where_indices %m, %rows : i64[?,1]
  %picked = gather_nd %double, %where : f32[?,3]
  %total = reduce_sum %picked {axes = [0, 1], keepdims = false} : f32[]
  %half = mul %total, %two : f32[]
  return %picked, %half : f32[?,3], f32[]
}
"""


def compiled(text: str, **options: object) -> DataSizedExecutable:
    module = parse_module(text)
    executable = compile_lowered(Lowered(module, _SEGMENT), "cpu",
                                 dataclasses.replace(CompileOptions.from_environment(), **options))
    assert isinstance(executable, DataSizedExecutable)
    return executable


def test_the_cut_run_gives_mains_results(rng):
    executable = compiled(MASKED_SUM)
    for rows in (6, 0, 1):
        x = rng.standard_normal((rows, 3)).astype(np.float32)
        m = rng.random(rows) < 0.5
        picked, half, count = executable([x, m])
        np.testing.assert_array_equal(picked, 2 * x[m])
        np.testing.assert_allclose(half, 4 * x[m].sum(), rtol=1e-5)
        assert count == m.sum() and picked.shape == (m.sum(), 3)


def test_a_count_below_zero_is_an_error_naming_the_data_dim():
    executable = compiled("""\
func @main(%n: i64[]) -> i64[?,1] {
  %rows = data_dim %n : i64[?,0]
  %flags = constant {value = dense<[true, false]>} : bool[2]
  %where = where_indices %flags, %rows : i64[?,1]
  return %where : i64[?,1]
}
""")
    np.testing.assert_array_equal(executable([np.array(1, np.int64)])[0], [[0]])
    with pytest.raises(RuntimeShapeError, match=r"data_dim 'rows'.*-2 elements: the count must be >= 0"):
        executable([np.array(-2, np.int64)])
    with pytest.raises(RuntimeShapeError, match=r"where_indices 'where'.*cond has 1 true elements, its rows operand "
                                                r"says 2"):
        executable([np.array(2, np.int64)])


def test_a_segment_after_a_cut_keeps_its_latest_layouts_only(rng):
    """A new count is a new argument shape of the segment after the cut: a training loop whose count
    changes every step must not keep a layout (and its arena) per count."""
    executable = compiled(MASKED_SUM)
    x = rng.standard_normal((200, 3)).astype(np.float32)
    for count in range(3 * LAYOUTS_KEPT):
        m = np.zeros(200, bool)
        m[:count] = True
        np.testing.assert_array_equal(executable([x, m])[0], 2 * x[:count])
    after = executable.segments[1].executable
    assert after.layout_count == LAYOUTS_KEPT
    assert executable.segments[0].executable.max_layouts == NativeExecutable.max_layouts  # before any cut: the default


def test_the_segments_are_dumped_with_the_ir(tmp_path):
    compiled(MASKED_SUM, dump_dir=str(tmp_path))
    dumped = [name for name in os.listdir(tmp_path) if name.startswith("data-sized-")]
    assert len(dumped) == 1
    text = (tmp_path / dumped[0]).read_text()
    assert "// segment 1, after the host makes %rows = data_dim %count" in text


def test_a_session_runs_fetches_a_feed_and_updates_a_variable_through_the_cuts(rng):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None])
        total = fc.Variable(0.0)
        picked = fc.boolean_mask(x, x > 0)
        update = fc.assign_add(total, fc.reduce_sum(picked))
        init = fc.global_variables_initializer()
    with fc.Session(target="cpu", graph=g) as sess:
        sess.run(init)
        running = 0.0
        for rows in (5, 0, 9):
            value = rng.standard_normal(rows).astype(np.float32)
            fed, got, _ = sess.run([x, picked, update], {x: value})
            running += value[value > 0].sum()
            np.testing.assert_array_equal(fed, value)
            np.testing.assert_array_equal(got, value[value > 0])
        np.testing.assert_allclose(sess.run(total), running, rtol=1e-5)


def test_a_constant_count_is_read_by_the_host_too():
    """The constant is copied into the segments that read it, never a result: the host takes its value."""
    executable = compiled("""\
func @main(%n: bool[4]) -> i64[?,1] {
  %three = constant {value = dense<3>} : i64[]
  %rows = data_dim %three : i64[?,0]
  %where = where_indices %n, %rows : i64[?,1]
  return %where : i64[?,1]
}
""", optimize=False)
    np.testing.assert_array_equal(executable([np.array([True, False, True, True])])[0], [[0], [2], [3]])


def test_a_result_passed_through_or_given_twice_is_a_copy(rng):
    """Fresh results (DataSizedExecutable.fresh_outputs): an argument, a constant or a repeated value
    returned as it is would alias what the caller or the IR holds."""
    executable = compiled("""\
func @main(%m: bool[?]) -> (i64[?,1], i64[?,1], bool[?], f32[]) {
  %Cast = cast %m {dtype = i64} : i64[?]
  %count = reduce_sum %Cast {axes = [0], keepdims = false} : i64[]
  %rows = data_dim %count : i64[?,0]
  %where = where_indices %m, %rows : i64[?,1]
  %one = constant {value = dense<1.0>} : f32[]
  return %where, %where, %m, %one : i64[?,1], i64[?,1], bool[?], f32[]
}
""", optimize=False)
    m = rng.random(6) < 0.5
    first, second, same, one = executable([m])
    np.testing.assert_array_equal(first, np.argwhere(m))
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(same, m)
    assert one == 1.0
    assert first is not second and same is not m and not np.shares_memory(first, second)
    one[...] = 5.0  # the caller's to change: the IR's constant stays
    assert executable([m])[3] == 1.0


def test_an_executable_fed_ever_new_batch_sizes_keeps_its_latest_layouts(rng):
    """Each argument shape's layout holds an arena: a compiled function fed a new batch size every run keeps
    the latest NativeExecutable.max_layouts of them, and lays an old one out again when it comes back."""
    text = "func @main(%x: f32[?,3]) -> f32[?,3] {\n  %y = mul %x, %x : f32[?,3]\n  return %y : f32[?,3]\n}\n"
    executable = compile_lowered(Lowered(parse_module(text), _SEGMENT), "cpu", CompileOptions.from_environment())
    assert isinstance(executable, NativeExecutable)
    kept = NativeExecutable.max_layouts
    for rows in [*range(1, kept + 11), 1, 2]:  # the first sizes come back after they were let go
        x = rng.standard_normal((rows, 3)).astype(np.float32)
        np.testing.assert_array_equal(executable([x])[0], x * x)
        assert executable.layout_count <= kept
    assert executable.layout_count == kept
