"""Random recurrent loops on a gang whose members own rows (Note [a gang that owns rows] in
ir/ops/gang_rows.py), against the reference target.

Each loop: a state h of a fed batch, a step that reads x_t of a sequence, multiplies by weights the
loop never changes and chains random pointwise ops, puts each turn's state into a row of a stack
(written, added, or added as a gather's gradient adds), and sometimes subtracts the batch's sum (a
turn that mixes rows: a plain gang then). Batches 0, 1,
odd ones, and sizes past the gang's threshold, on one thread and two; the pass's mark is checked.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from test_gang_loops import gang_marks
from test_native_control import compile_cpu, floats, reference

from flowc.runtime import options

SEEDS = int(os.environ.get("FLOWC_ROWS_SEEDS", "8"))  # a campaign of more: FLOWC_ROWS_SEEDS=N
POINTWISE = [
    "%{out} = tanh %{cur} : f32[?,128]",
    "%{out} = sigmoid %{cur} : f32[?,128]",
    "%{out} = add %{cur}, %c : f32[?,128]",
    "%{out} = mul %{cur}, %{cur} : f32[?,128]",
    "%{out} = sub %{cur}, %h : f32[?,128]",
    "%{out} = maximum %{cur}, %h : f32[?,128]",
]


# Each turn's state into row i of a stack: written, added (scatter_add in place), or added as a gather's
# gradient is, a scatter_add into zeros (a copy of them, then the row) added to the whole stack.
STACK_WRITES = [
    ["%s2 = write_row %s, %i, %y : f32[?,?,128]"],
    ["%s2 = scatter_add %s, %i, %y {axis = 0} : f32[?,?,128]"],
    ["%z = scatter_add %zeros, %i, %y {axis = 0} : f32[?,?,128]", "%s2 = add %s, %z : f32[?,?,128]"],
]


def random_loop(rng: np.random.Generator) -> tuple[str, bool]:
    """A loop's IR text, and whether its turns keep rows apart."""
    lines = ["%x = gather %seq, %i {axis = 0} : f32[?,64]",
             "%p = matmul %x, %a {transpose_a = false, transpose_b = false} : f32[?,128]",
             "%q = matmul %h, %u {transpose_a = false, transpose_b = false} : f32[?,128]",
             "%v0 = add %p, %q : f32[?,128]"]
    cur, mixes = "v0", bool(rng.random() < 0.3)
    for k in range(1, 1 + int(rng.integers(1, 5))):
        lines.append(POINTWISE[int(rng.integers(len(POINTWISE)))].format(out=f"v{k}", cur=cur))
        cur = f"v{k}"
    if mixes:
        lines += [f"%m1 = reduce_sum %{cur} {{axes = [0], keepdims = true}} : f32[1,128]",
                  "%k1 = constant {value = dense<0.01>} : f32[]",
                  "%m2 = mul %m1, %k1 : f32[1,128]",
                  f"%mixed = sub %{cur}, %m2 : f32[?,128]"]
        cur = "mixed"
    lines.append(f"%y = tanh %{cur} : f32[?,128]")
    lines += STACK_WRITES[int(rng.integers(len(STACK_WRITES)))]
    body = "\n    ".join(lines)
    state = "i64[], i64[], f32[?,128], f32[?,?,64], f32[64,128], f32[128,128], f32[128], f32[?,?,128], " \
            "f32[?,?,128]"
    args = "%i: i64[], %n1: i64[], %h: f32[?,128], %seq: f32[?,?,64], %a: f32[64,128], %u: f32[128,128], " \
           "%c: f32[128], %s: f32[?,?,128], %zeros: f32[?,?,128]"
    text = f"""\
func @main(%n: i64[], %xs: f32[?,?,64], %h0: f32[?,128], %wx: f32[64,128], %wh: f32[128,128], %b: f32[128], %s0: f32[?,?,128], %z0: f32[?,?,128]) -> (f32[?,128], f32[?,?,128]) {{
  %zero = constant {{value = dense<0>}} : i64[]
  %i, %m, %h, %seq, %a, %u, %c, %s, %zs = while %zero, %n, %h0, %xs, %wx, %wh, %b, %s0, %z0 : {state} {{
  ^bb0({args}):
    %go = less %i, %n1 : bool[]
    yield %go : bool[]
  }} {{
  ^bb0({args}):
    %one = constant {{value = dense<1>}} : i64[]
    %j = add %i, %one : i64[]
    {body}
    yield %j, %n1, %y, %seq, %a, %u, %c, %s2, %zeros : {state}
  }}
  return %h, %s : f32[?,128], f32[?,?,128]
}}
"""
    return text, not mixes


@pytest.fixture
def run_options():  # type: ignore[no-untyped-def]
    """The run options as they were before the test, put back after it."""
    before = options.current()
    yield before
    options.configure(before)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_random_loops_on_rows_match_the_reference(seed: int, run_options) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7000 + seed)
    text, apart = random_loop(rng)
    executable = compile_cpu(text)
    assert gang_marks(executable) == ["rows" if apart else "gang"]
    for threads in (1, 2):
        options.configure(dataclasses.replace(run_options, num_threads=threads))
        for batch in (int(rng.choice([0, 1, 5])), int(rng.choice([23, 32, 33, 47]))):
            steps = int(rng.integers(0, 5))
            args = [np.array(steps, np.int64), floats(rng, steps, batch, 64), floats(rng, batch, 128),
                    floats(rng, 64, 128) * 0.1, floats(rng, 128, 128) * 0.1, floats(rng, 128) * 0.1,
                    floats(rng, steps, batch, 128), np.zeros((steps, batch, 128), np.float32)]
            for got, want in zip(executable(args), reference(text, args)):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"{threads} threads, {batch}")
