"""Note [a gang that owns rows] (ir/ops/gang_rows.py): which loops' members may own rows, on IR text.

row_plan reads fused loops (the gang-loops pass's input: tests/filecheck/gang_loops.ir has the pass's
marks); rows_kept_apart reads plain ones, as LICM asks before it moves sums out of a loop.
"""

from __future__ import annotations

import pytest

from flowc import ir
from flowc.ir.ops.gang_rows import row_plan, rows_kept_apart
from flowc.ir.printer import value_names

# A step of an RNN's gradient, fused: the counter's stack (i32[6], private), the states' stack (rows
# along axis 1), x rows read from an input of another batch (48) into a stack of their own: two groups.
FUSED = """\
func @f(%h0: f32[32,128], %u: f32[128,128], %xs: f32[5,48,32]) -> f32[32,128] {
  %zero = constant {value = dense<0>} : i64[]
  %c0 = constant {value = dense<0>} : i32[6]
  %s0 = constant {value = dense<0.0>} : f32[6,32,128]
  %x0 = constant {value = dense<0.0>} : f32[6,48,32]
  %i, %h, %w, %c, %s, %xt, %x = while %zero, %h0, %u, %c0, %s0, %xs, %x0 : i64[], f32[32,128], f32[128,128], i32[6], f32[6,32,128], f32[5,48,32], f32[6,48,32] {
  ^bb0(%i1: i64[], %h1: f32[32,128], %w1: f32[128,128], %c1: i32[6], %s1: f32[6,32,128], %xt1: f32[5,48,32], %x1: f32[6,48,32]):
    %go = fusion %i1 {kind = "loop", schedule = "loop"} : bool[] {
    ^bb0(%i2: i64[]):
      %five = constant {value = dense<5>} : i64[]
      %g = less %i2, %five : bool[]
      yield %g : bool[]
    }
    yield %go : bool[]
  } {
  ^bb0(%i1: i64[], %h1: f32[32,128], %w1: f32[128,128], %c1: i32[6], %s1: f32[6,32,128], %xt1: f32[5,48,32], %x1: f32[6,48,32]):
    %j = fusion %i1 {kind = "loop", schedule = "loop"} : i64[] {
    ^bb0(%i2: i64[]):
      %one = constant {value = dense<1>} : i64[]
      %j1 = add %i2, %one : i64[]
      yield %j1 : i64[]
    }
    %n = fusion %i1 {kind = "loop", schedule = "loop"} : i32[] {
    ^bb0(%i2: i64[]):
      %n1 = cast %i2 {dtype = i32} : i32[]
      yield %n1 : i32[]
    }
    %c2 = fusion %c1, %j, %n {kind = "single", schedule = "single"} : i32[6] {
    ^bb0(%c3: i32[6], %j2: i64[], %n2: i32[]):
      %c4 = write_row %c3, %j2, %n2 : i32[6]
      yield %c4 : i32[6]
    }
    %y, %q = fusion %h1, %w1 {kind = "matmul", schedule = "blas"} : f32[32,128], f32[32,128] {
    ^bb0(%h2: f32[32,128], %w2: f32[128,128]):
      %q1 = matmul %h2, %w2 {transpose_a = false, transpose_b = false} : f32[32,128]
      %y1 = tanh %q1 : f32[32,128]
      yield %y1, %q1 : f32[32,128], f32[32,128]
    }
    %s2 = fusion %s1, %j, %y {kind = "single", schedule = "single"} : f32[6,32,128] {
    ^bb0(%s3: f32[6,32,128], %j2: i64[], %y2: f32[32,128]):
      %s4 = write_row %s3, %j2, %y2 : f32[6,32,128]
      yield %s4 : f32[6,32,128]
    }
    %r = fusion %xt1, %i1 {kind = "single", schedule = "single"} : f32[48,32] {
    ^bb0(%xt2: f32[5,48,32], %i2: i64[]):
      %r1 = gather %xt2, %i2 {axis = 0} : f32[48,32]
      yield %r1 : f32[48,32]
    }
    %x2 = fusion %x1, %j, %r {kind = "single", schedule = "single"} : f32[6,48,32] {
    ^bb0(%x3: f32[6,48,32], %j2: i64[], %r2: f32[48,32]):
      %x4 = write_row %x3, %j2, %r2 : f32[6,48,32]
      yield %x4 : f32[6,48,32]
    }
    yield %j, %y, %w1, %c2, %s2, %xt1, %x2 : i64[], f32[32,128], f32[128,128], i32[6], f32[6,32,128], f32[5,48,32], f32[6,48,32]
  }
  return %h : f32[32,128]
}
"""


def loop_of(text: str) -> tuple[ir.Operation, dict]:
    module = ir.parse_module(text)
    function = next(iter(module))
    names = {value: name.lstrip("%") for value, name in value_names(function).items()}
    return next(op for op in function.entry.ops if op.name == "while"), names


def test_the_rows_of_a_gradient_step() -> None:
    loop, names = loop_of(FUSED)
    plan = row_plan(loop)
    assert plan is not None
    axes = {names[v]: a for v, a in plan.axis.items() if v in names}
    assert {name: axes[name] for name in ("h1", "y", "q", "s1", "s2", "r", "x1", "x2")} == \
        {"h1": 0, "y": 0, "q": 0, "s1": 1, "s2": 1, "r": 0, "x1": 1, "x2": 1}
    assert {"i1", "j", "n", "c1", "c2", "go"} <= {names[v] for v in plan.private if v in names}
    assert {"w1", "xt1"} <= {names[v] for v in plan.invariant if v in names}
    by_name = {names[v]: v for v in plan.axis if v in names}
    groups = {name: plan.rows[by_name[name]] for name in ("h1", "y", "s2", "r", "x2")}
    assert groups["h1"] == groups["y"] == groups["s2"] != groups["r"] == groups["x2"]
    assert {size_of[0].type.shape[size_of[1]] for size_of in groups.values()} == {32, 48}


PLAIN = """\
func @f(%h0: f32[32,128], %u: f32[128,128]) -> f32[32,128] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %h, %w = while %zero, %h0, %u : i64[], f32[32,128], f32[128,128] {
  ^bb0(%i1: i64[], %h1: f32[32,128], %w1: f32[128,128]):
    %five = constant {value = dense<5>} : i64[]
    %go = less %i1, %five : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i1: i64[], %h1: f32[32,128], %w1: f32[128,128]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i1, %one : i64[]
    STEP
    yield %j, %y, %w1 : i64[], f32[32,128], f32[128,128]
  }
  return %h : f32[32,128]
}
"""

STEPS = {
    "rows apart": ("%q = matmul %h1, %w1 {transpose_a = false, transpose_b = false} : f32[32,128]\n"
                   "    %y = tanh %q : f32[32,128]", True),
    "a bias": ("%q = matmul %h1, %w1 {transpose_a = false, transpose_b = false} : f32[32,128]\n"
               "    %c = reduce_sum %w1 {axes = [0], keepdims = false} : f32[128]\n"
               "    %y = add %q, %c : f32[32,128]", True),
    "the batch's sum": ("%q = matmul %h1, %w1 {transpose_a = false, transpose_b = false} : f32[32,128]\n"
                        "    %m = reduce_sum %q {axes = [0], keepdims = true} : f32[1,128]\n"
                        "    %y = sub %q, %m : f32[32,128]", False),
    "rows contracted": ("%g = matmul %h1, %h1 {transpose_a = true, transpose_b = false} : f32[128,128]\n"
                        "    %y = matmul %h1, %g {transpose_a = false, transpose_b = false} : f32[32,128]", False),
    "a transpose": ("%t = transpose %h1 {perm = [1, 0]} : f32[128,32]\n"
                    "    %y = matmul %t, %w1 {transpose_a = true, transpose_b = false} : f32[32,128]", False),
    "no product": ("%y = tanh %h1 : f32[32,128]", False),
    "all private": ("%q = matmul %h1, %w1 {transpose_a = false, transpose_b = false} : f32[32,128]\n"
                    "    %y = tanh %q : f32[32,128]", False),
}


@pytest.mark.parametrize("case", sorted(STEPS))
def test_rows_kept_apart_before_fusion(case: str) -> None:
    step, apart = STEPS[case]
    text = PLAIN.replace("STEP", step)
    if case == "all private":  # 2 x 4 rows: every member would compute them all (no rows to share out)
        text = text.replace("f32[32,128]", "f32[2,4]").replace("f32[128,128]", "f32[4,4]")
    loop, _ = loop_of(text)
    assert rows_kept_apart(loop, set()) is apart


# A state c of one row, too big for every member to compute whole (8 KB), added to every row of h: the
# member that owns c's row writes it while the others read it.
BROADCAST_ROW = """\
func @f(%h0: f32[32,2048], %c0: f32[1,2048], %u: f32[2048,2048]) -> f32[32,2048] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %h, %c, %w = while %zero, %h0, %c0, %u : i64[], f32[32,2048], f32[1,2048], f32[2048,2048] {
  ^bb0(%i1: i64[], %h1: f32[32,2048], %c1: f32[1,2048], %w1: f32[2048,2048]):
    %five = constant {value = dense<5>} : i64[]
    %go = less %i1, %five : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i1: i64[], %h1: f32[32,2048], %c1: f32[1,2048], %w1: f32[2048,2048]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i1, %one : i64[]
    %p = matmul %c1, %w1 {transpose_a = false, transpose_b = false} : f32[1,2048]
    %c2 = tanh %p : f32[1,2048]
    %q = matmul %h1, %w1 {transpose_a = false, transpose_b = false} : f32[32,2048]
    %y = add %q, %c2 : f32[32,2048]
    yield %j, %y, %c2, %w1 : i64[], f32[32,2048], f32[1,2048], f32[2048,2048]
  }
  return %h : f32[32,2048]
}
"""


def test_an_owned_row_broadcast_to_every_row_is_not_kept_apart() -> None:
    """Not kept apart; the same loop with h not reading c is (c then a group of rows of its own)."""
    broadcast, _ = loop_of(BROADCAST_ROW)
    assert not rows_kept_apart(broadcast, set())
    apart, _ = loop_of(BROADCAST_ROW.replace("%y = add %q, %c2", "%y = tanh %q"))
    assert rows_kept_apart(apart, set())
