"""The pass pipeline: the pass manager, side effects through Session, optimize on/off, and `flowc opt`.

What each pass does to IR is in tests/filecheck/*.ir; this file covers what
IR text cannot: verification, dumps and timing of the manager, graph-level
state and randomness, and the switch that runs the IR as lowered.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

import flowc as fc
from flowc.ir import Module, TensorType, VerifyError, evaluate, float64, parse_module, print_module
from flowc.ir.errors import FlowcError
from flowc.lowering import lower
from flowc.options import CompileOptions
from flowc.passes import (
    CSE,
    PASSES,
    DCE,
    FixedPoint,
    Pass,
    PassManager,
    Simplify,
    default_pipeline,
    last_report,
    optimize,
    passes_by_name,
)

FLOWC = pathlib.Path(sys.executable).parent / "flowc"

SOURCE = """\
func @f(%x: f32[4]) -> f32[4] {
  %one = constant {value = dense<1.0>} : f32[]
  %a = mul %x, %one : f32[4]
  %b = exp %a : f32[4]
  %c = exp %a : f32[4]
  %d = add %b, %c : f32[4]
  return %d : f32[4]
}
"""

OPTIMIZED = """\
func @f(%x: f32[4]) -> f32[4] {
  %b = exp %x : f32[4]
  %d = add %b, %b : f32[4]
  return %d : f32[4]
}
"""


def module() -> Module:
    return parse_module(SOURCE)


def op_names(m: Module) -> list[str]:
    return [op.name for op in m.walk()]


# -- passes that misbehave on purpose, and one that counts ---------------------------------


class RetypeExp(Pass):
    """Breaks the IR: gives an exp a result type its type rule does not give."""

    name = "retype-exp"

    def run(self, module: Module) -> bool:
        op = next(op for op in module.walk() if op.name == "exp")
        op.results[0].type = TensorType(float64, op.results[0].type.shape)
        return True


class UnlinkAdd(Pass):
    """Breaks the IR: takes the add out of its block while the return still uses it."""

    name = "unlink-add"

    def run(self, module: Module) -> bool:
        op = next(op for op in module.walk() if op.name == "add")
        op.parent.ops.remove(op)
        op.parent = None
        return True


class Countdown(Pass):
    """Reports a change on its first `changes` runs, then none."""

    name = "countdown"

    def __init__(self, changes: int):
        self.left = changes
        self.runs = 0

    def run(self, module: Module) -> bool:
        self.runs += 1
        if self.left:
            self.left -= 1
            return True
        return False


# -- verification after each pass -----------------------------------------------------------


def test_verify_each_catches_a_pass_that_breaks_types() -> None:
    with pytest.raises(VerifyError, match=r"result types are \[f64\[4\]\], the type rule gives \[f32\[4\]\]") as info:
        PassManager([RetypeExp()], verify_each=True).run(module())
    assert info.value.__notes__ == ["the verifier failed after pass 'retype-exp'"]


def test_verify_each_catches_a_pass_that_breaks_dominance() -> None:
    with pytest.raises(VerifyError, match=r"'return'.*operand 0 \(%d: f32\[4\]\) is not defined in this function"):
        PassManager([UnlinkAdd()], verify_each=True).run(module())


def test_verify_each_runs_inside_a_fixed_point() -> None:
    pipeline = [FixedPoint([Simplify(), CSE(), RetypeExp(), DCE()])]
    with pytest.raises(VerifyError) as info:
        PassManager(pipeline, verify_each=True).run(module())
    assert info.value.__notes__ == ["the verifier failed after pass 'retype-exp'"]


def test_without_verification_a_broken_pass_goes_unnoticed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWC_VERIFY", "1")  # no pass reads the environment: only verify_each counts
    m = module()
    report = PassManager([RetypeExp()]).run(m)
    assert [t.name for t in report.timings] == ["retype-exp"]
    assert "%b = exp %a : f64[4]" in print_module(m)


def test_flowc_verify_1_turns_verification_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWC_VERIFY", "1")
    options = CompileOptions.from_environment()
    with pytest.raises(VerifyError, match="the type rule gives"):
        PassManager([RetypeExp()], verify_each=options.verify).run(module())


def test_optimize_verifies_a_good_module_and_gives_the_expected_ir() -> None:
    m = module()
    optimize(m, verify_each=True)
    assert print_module(m) == OPTIMIZED


# -- FLOWC_DUMP_IR ---------------------------------------------------------------------------


def test_dump_ir_writes_numbered_files_after_each_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))
    optimize(module(), dump_dir=CompileOptions.from_environment().dump_dir)
    (run,) = tmp_path.iterdir()
    files = sorted(p.name for p in run.iterdir())
    assert files == [
        "00-input.ir", "01-autodiff.ir", "02-canonicalize.ir", "03-cse.ir", "04-dce.ir", "05-canonicalize.ir",
        "06-cse.ir", "07-dce.ir",
    ]
    text = {name: (run / name).read_text() for name in files}
    assert text["00-input.ir"] == text["01-autodiff.ir"] == SOURCE  # no gradient request to expand
    # canonicalize dropped x * 1; cse merged the exps; nothing changed after that.
    assert "mul" not in text["02-canonicalize.ir"] and text["02-canonicalize.ir"].count("= exp") == 2
    assert text["03-cse.ir"] == OPTIMIZED
    for later in files[4:]:
        assert text[later] == OPTIMIZED, later


def test_dump_ir_makes_one_folder_per_pipeline_run(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    PassManager([CSE()], dump_dir=str(tmp_path)).run(module())
    PassManager([DCE(), Simplify()], dump_dir=str(tmp_path)).run(module())
    first, second = sorted(tmp_path.iterdir())
    assert int(second.name) == int(first.name) + 1
    assert sorted(p.name for p in first.iterdir()) == ["00-input.ir", "01-cse.ir"]
    assert sorted(p.name for p in second.iterdir()) == ["00-input.ir", "01-dce.ir", "02-simplify.ir"]


def test_no_dump_without_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))  # read by CompileOptions alone: no pass reads it
    monkeypatch.chdir(tmp_path)
    optimize(module())
    assert list(tmp_path.iterdir()) == []


# -- timing report ---------------------------------------------------------------------------


def test_last_report_lists_each_pass_with_its_time() -> None:
    report = PassManager([Simplify(), CSE(), DCE()]).run(module())
    assert last_report() is report
    assert [(t.name, t.changed, t.depth) for t in report.timings] == [
        ("simplify", True, 0), ("cse", True, 0), ("dce", False, 0),
    ]
    assert all(t.seconds >= 0 for t in report.timings)
    assert report.total_seconds == pytest.approx(sum(t.seconds for t in report.timings))
    lines = str(report).splitlines()
    assert lines[0].split() == ["pass", "ms", "changed"]
    assert [line.split()[0] for line in lines[1:]] == ["simplify", "cse", "dce", "total"]
    assert [line.split()[2] for line in lines[1:4]] == ["yes", "yes", "no"]


def test_report_of_the_default_pipeline_lists_the_passes_inside_the_fixed_point() -> None:
    report = optimize(module())
    names = [("  " * t.depth) + t.name for t in report.timings]
    assert names == ["autodiff", "fixed-point"] + ["  canonicalize", "  cse", "  dce"] * 2
    assert [t.changed for t in report.timings] == [False, True, True, True, False, False, False, False]
    assert report.changed
    # The fixed point's line is the sum of its passes; the total counts each pass once.
    inner = sum(t.seconds for t in report.timings[2:])
    assert report.timings[1].seconds == pytest.approx(inner)
    assert report.total_seconds == pytest.approx(inner + report.timings[0].seconds)


# -- FixedPoint ------------------------------------------------------------------------------


def test_fixed_point_stops_at_the_first_round_without_change() -> None:
    countdown = Countdown(3)
    assert FixedPoint([countdown]).run(module()) is True
    assert countdown.runs == 4  # three changes, then one round that changes nothing


def test_fixed_point_of_passes_that_change_nothing_runs_once() -> None:
    a, b = Countdown(0), Countdown(0)
    assert FixedPoint([a, b]).run(module()) is False
    assert (a.runs, b.runs) == (1, 1)


def test_fixed_point_runs_every_pass_of_a_round() -> None:
    first, second = Countdown(0), Countdown(2)
    FixedPoint([first, second]).run(module())
    assert (first.runs, second.runs) == (3, 3)


def test_fixed_point_gives_up_after_max_rounds() -> None:
    forever = Countdown(1000)
    assert FixedPoint([forever], max_rounds=5).run(module()) is True
    assert forever.runs == 5


def test_fixed_point_in_a_pass_manager_reports_each_round() -> None:
    report = PassManager([FixedPoint([Countdown(1)]), DCE()]).run(module())
    assert [(t.name, t.depth, t.changed) for t in report.timings] == [
        ("fixed-point", 0, True), ("countdown", 1, True), ("countdown", 1, False), ("dce", 0, False),
    ]


def test_default_pipeline_reaches_a_fixed_point() -> None:
    m = module()
    optimize(m)
    assert PassManager(default_pipeline(), verify_each=True).run(m).changed is False
    assert print_module(m) == OPTIMIZED


def test_passes_by_name() -> None:
    assert [p.name for p in passes_by_name(["fold", "simplify", "cse", "dce", "canonicalize"])] == [
        "fold", "simplify", "cse", "dce", "canonicalize",
    ]
    known = ", ".join(sorted(PASSES))
    assert {"canonicalize", "cse", "dce", "fold", "simplify"} <= set(PASSES)
    with pytest.raises(FlowcError) as info:
        passes_by_name(["cse", "bogus", "cse2"])
    assert str(info.value) == f"unknown pass bogus, cse2; passes are {known}"


# -- side effects through a Session ----------------------------------------------------------


def run_both(graph: fc.Graph, steps: list, feed_dict: dict | None = None) -> list[list]:
    """Run `steps` (a list of fetches) in order in a reference Session with and one without the pipeline."""
    results = []
    for optimized in (True, False):
        with fc.Session(graph=graph, target="reference", optimize=optimized) as sess:
            results.append([sess.run(fetches, feed_dict) for fetches in steps])
    return results


def test_reads_separated_by_an_assign_are_not_merged() -> None:
    g = fc.Graph()
    with g.as_default():
        v = fc.Variable(np.array([1.0, 2.0, 3.0], np.float32), name="v")
        before = fc.exp(v)
        update = fc.assign_add(v, np.ones(3, np.float32))
        with fc.control_dependencies([update]):
            after = fc.exp(v)
        init = fc.global_variables_initializer()
    optimized, plain = run_both(g, [init, [before, after], v])
    for _, (b, a), value in (optimized, plain):
        np.testing.assert_array_equal(b, np.exp(np.float32([1, 2, 3])))
        np.testing.assert_array_equal(a, np.exp(np.float32([2, 3, 4])))
        np.testing.assert_array_equal(value, np.float32([2, 3, 4]))
    lowered = lower(g, [before, after], [], [])
    optimize(lowered.module, verify_each=True)
    assert op_names(lowered.module).count("exp") == 2


def test_random_ops_with_different_seeds_stay_different() -> None:
    g = fc.Graph()
    with g.as_default():
        a = fc.random_uniform([5], seed=1)
        b = fc.random_uniform([5], seed=2)
        again = fc.random_uniform([5], seed=1)
        total = a + b
    optimized, plain = run_both(g, [[a, b, again, total], [a, b, again, total]])
    for run in (optimized, plain):
        for first, second, same_seed, summed in run:
            assert not np.array_equal(first, second)
            np.testing.assert_array_equal(first, same_seed)  # one seed, one stream (as TensorFlow)
            np.testing.assert_array_equal(summed, first + second)
        assert not np.array_equal(run[0][0], run[1][0])  # each run draws new numbers
    for step_opt, step_plain in zip(optimized, plain):
        for x, y in zip(step_opt, step_plain):
            np.testing.assert_array_equal(x, y)
    lowered = lower(g, [a, b, again], [], [])
    optimize(lowered.module, verify_each=True)
    assert op_names(lowered.module).count("random_uniform") == 2  # only the same-seed twin merged


@pytest.mark.parametrize("optimized", [True, False])
def test_an_assign_whose_result_is_unused_still_updates_the_variable(optimized: bool) -> None:
    g = fc.Graph()
    with g.as_default():
        v = fc.Variable(np.array([1, 2, 3], np.int32), name="v")
        x = fc.placeholder(fc.int32, shape=[3], name="x")
        assign = fc.assign(v, x * 2)
        with fc.control_dependencies([assign]):
            y = fc.identity(x)
        bump = fc.group(fc.assign_add(v, np.array([1, 1, 1], np.int32)))
        init = fc.global_variables_initializer()
    with fc.Session(graph=g, optimize=optimized) as sess:
        sess.run(init)
        np.testing.assert_array_equal(sess.run(y, {x: np.int32([5, 6, 7])}), [5, 6, 7])
        np.testing.assert_array_equal(sess.run(v), [10, 12, 14])
        assert sess.run(bump) is None
        np.testing.assert_array_equal(sess.run(v), [11, 13, 15])


# -- Session(optimize=...) and FLOWC_OPT=0 ---------------------------------------------------


def mlp() -> tuple[fc.Graph, list, dict]:
    rng = np.random.default_rng(1)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 6], name="x")
        w = fc.constant(rng.standard_normal((6, 4)).astype(np.float32))
        b = fc.constant(np.float32([0.5, -0.5, 0.25, 0.0]))
        scale = fc.constant(2.0) * fc.constant(0.5)  # folds to 1.0, then h * 1 -> h
        h = fc.relu(fc.matmul(x, w) + b) * scale
        h = fc.transpose(fc.transpose(h))  # cancels
        logits = fc.identity(h) + fc.matmul(x, w)  # a second matmul: CSE
        probs = fc.nn.softmax(logits)
        loss = fc.reduce_mean(-fc.reduce_sum(fc.nn.log_softmax(logits) * probs, axis=1))
        label = fc.argmax(probs, axis=1)
    feed = {x: rng.standard_normal((5, 6)).astype(np.float32)}
    return g, [[probs, loss], label], feed


def int_model() -> tuple[fc.Graph, list, dict]:
    g = fc.Graph()
    with g.as_default():
        i = fc.placeholder(fc.int32, shape=[4], name="i")
        table = fc.constant(np.arange(40, dtype=np.int32).reshape(10, 4))
        zero = fc.constant(0, dtype=fc.int32)
        j = (i * 3 + zero) - (i - i)  # + 0 and x - x -> 0 are exact for ints
        rows = fc.gather(table, j)
        total = fc.reduce_sum(rows, axis=1)
        hot = fc.one_hot(i, 4, dtype=fc.int32)
        picked = fc.argmax(fc.cast(rows * hot, fc.float32), axis=1)
        flat = fc.reshape(fc.reshape(rows, [-1]), [-1, 4])  # two reshapes, one back to rows' type
        big = fc.reduce_max(fc.cast(fc.cast(flat, fc.int32), fc.int64), axis=0)
        same = fc.equal(rows, flat)
    feed = {i: np.int32([0, 1, 2, 3])}
    return g, [[total, picked, big, hot, same]], feed


def train_loop() -> tuple[fc.Graph, list, dict]:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=[8, 3], name="x")
        y = fc.placeholder(fc.float64, shape=[8], name="y")
        w = fc.Variable(np.zeros(3), name="w")
        err = fc.reduce_sum(x * w, axis=1) - y
        loss = fc.reduce_mean(err * err)
        again = fc.reduce_sum(x * w, axis=1) - y  # the same error, written twice: CSE
        grad = fc.reduce_sum(fc.expand_dims(again, 1) * x, axis=0) * (2.0 / 8)
        train = fc.assign_sub(w, grad * 0.1)
        init = fc.global_variables_initializer()
    rng = np.random.default_rng(2)
    feed = {x: rng.standard_normal((8, 3)), y: rng.standard_normal(8)}
    return g, [init] + [[loss, train]] * 5 + [w], feed


MODELS = {"mlp": mlp, "int_model": int_model, "train_loop": train_loop}


def run_steps(graph: fc.Graph, steps: list, feed: dict, **session_args: bool) -> tuple[list, list[bool]]:
    """The values of each step, and for each pipeline run the Session made (each makes a new
    report), whether it changed the IR."""
    values, reports = [], {id(last_report()): last_report()}
    first = id(last_report())
    with fc.Session(graph=graph, **session_args) as sess:
        for step in steps:
            values.append(sess.run(step, feed))
            reports.setdefault(id(last_report()), last_report())
    return values, [r.changed for key, r in reports.items() if key != first]


def assert_same(got: object, want: object) -> None:
    """Equal values, NaN equal to NaN. Exact for floats too: without fast-math the pipeline is exact."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif want is None:
        assert got is None
    else:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_optimize_on_and_off_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWC_OPT", raising=False)
    graph, steps, feed = MODELS[name]()
    optimized, changed = run_steps(graph, steps, feed)
    assert any(changed)  # the pipeline ran, and found something to do
    plain, changed = run_steps(graph, steps, feed, optimize=False)
    assert changed == []
    monkeypatch.setenv("FLOWC_OPT", "0")
    from_env, changed = run_steps(graph, steps, feed)
    assert changed == []
    assert_same(optimized, plain)
    assert_same(from_env, plain)


@pytest.mark.parametrize(("env", "argument", "expected"), [
    ("0", None, False), ("1", None, True), ("0", True, True), ("1", False, False),
])
def test_session_optimize_switch(env: str, argument: bool | None, expected: bool,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWC_OPT", env)
    assert fc.Session(graph=fc.Graph(), optimize=argument).optimize is expected


def test_the_mlp_ir_shrinks() -> None:
    graph, steps, feed = mlp()
    probs, loss = steps[0]
    lowered = lower(graph, [probs, loss], [], [graph.get_tensor_by_name("x:0")])
    before = op_names(lowered.module)
    optimize(lowered.module, verify_each=True)
    after = op_names(lowered.module)
    assert before.count("matmul") == 2 and after.count("matmul") == 1
    assert before.count("transpose") == 2 and after.count("transpose") == 0
    assert "identity" in before and "identity" not in after
    assert len(after) < len(before)


# -- the CLI ---------------------------------------------------------------------------------


def flowc(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([str(FLOWC), *args], input=stdin, capture_output=True, text=True, timeout=120)


def test_cli_opt_reads_standard_input() -> None:
    done = flowc("opt", "-", "--passes", "canonicalize,cse,dce", stdin=SOURCE)
    assert (done.returncode, done.stdout, done.stderr) == (0, OPTIMIZED, "")


def test_cli_opt_without_passes_runs_the_default_pipeline(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.ir"
    path.write_text(SOURCE)
    done = flowc("opt", str(path))
    assert (done.returncode, done.stdout) == (0, OPTIMIZED)


def test_cli_opt_runs_only_the_passes_given() -> None:
    assert flowc("opt", "-", "--passes", "dce", stdin=SOURCE).stdout == SOURCE  # nothing is dead
    done = flowc("opt", "-", "--passes", "cse", stdin=SOURCE)  # the exps merge, x * 1 stays
    assert done.stdout == SOURCE.replace("  %c = exp %a : f32[4]\n", "").replace("add %b, %c", "add %b, %b")
    done = flowc("opt", "-", "--passes", "simplify", stdin=SOURCE)  # x * 1 goes, both exps stay
    dropped = "  %one = constant {value = dense<1.0>} : f32[]\n  %a = mul %x, %one : f32[4]\n"
    assert done.stdout == SOURCE.replace(dropped, "").replace("exp %a", "exp %x")


def test_cli_opt_empty_pass_list_only_round_trips() -> None:
    assert flowc("opt", "-", "--passes", "", stdin=SOURCE).stdout == SOURCE


def test_cli_unknown_pass_fails_with_a_message() -> None:
    done = flowc("opt", "-", "--passes", "cse,bogus", stdin=SOURCE)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"flowc: error: unknown pass bogus; passes are {', '.join(sorted(PASSES))}\n"


def test_cli_parse_error_fails_with_a_message() -> None:
    done = flowc("opt", "-", stdin="func @f(%x: f32[4]) -> f32[4] {\n  return %y : f32[4]\n}\n")
    assert done.returncode == 1
    assert done.stderr == "flowc: error: at -: line 2, col 10: use of undefined value %y\n"


def test_cli_timing_goes_to_standard_error() -> None:
    done = flowc("opt", "-", "--timing", stdin=SOURCE)
    assert done.returncode == 0 and done.stdout == OPTIMIZED
    names = [line.split()[0] for line in done.stderr.splitlines()]
    assert names == ["pass", "autodiff", "fixed-point"] + ["canonicalize", "cse", "dce"] * 2 + ["total"]


def test_cli_fast_math() -> None:
    source = "func @f(%x: f32[3]) -> f32[3] {\n  %a = sub %x, %x : f32[3]\n  return %a : f32[3]\n}\n"
    assert flowc("opt", "-", stdin=source).stdout == source
    done = flowc("opt", "-", "--fast-math", stdin=source)
    assert done.stdout == ("func @f(%x: f32[3]) -> f32[3] {\n  %a = constant {value = dense<0.0>} : f32[3]\n"
                           "  return %a : f32[3]\n}\n")


def test_cli_ir_prints_the_session_ir_with_and_without_the_pipeline(tmp_path: pathlib.Path) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[3], name="x")
        y = fc.identity(fc.exp(x) * 1.0 + fc.exp(x), name="y")
    path = fc.write_graph(g, str(tmp_path), "g.json")
    plain = flowc("ir", str(path), "--fetch", "y:0", "--feed", "x:0", "--no-opt")
    optimized = flowc("ir", str(path), "--fetch", "y:0", "--feed", "x:0")
    assert plain.returncode == 0 and optimized.returncode == 0
    assert plain.stdout.count("= exp") == 2 and "= mul" in plain.stdout and "= identity" in plain.stdout
    assert optimized.stdout.count("= exp") == 1 and "= mul" not in optimized.stdout
    assert "= identity" not in optimized.stdout


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", ["f32", "i32"])
def test_one_hot_as_a_comparison_gives_one_hots_values(axis: int, dtype: str) -> None:
    """Simplify's one_hot -> where(i == iota, on, off) against one_hot itself, with indices below,
    inside and above [0, depth) and an off_value of -0.0."""
    from flowc.ir import evaluate

    depth = 4
    shape = {-1: "3,2,4", 0: "4,3,2", 1: "3,4,2"}[axis]
    source = f"""\
func @f(%i: i64[3,2]) -> {dtype}[{shape}] {{
  %a = one_hot %i {{depth = {depth}, axis = {axis}, dtype = {dtype}, on_value = 2.5, off_value = -0.0}} : {dtype}[{shape}]
  return %a : {dtype}[{shape}]
}}
"""
    module = parse_module(source)
    indices = np.array([[-1, 0], [3, 4], [2, 7]], dtype=np.int64)
    want = evaluate(module["f"], [indices])
    PassManager([Simplify()], verify_each=True).run(module)
    assert "one_hot" not in print_module(module)
    got = evaluate(module["f"], [indices])
    np.testing.assert_array_equal(got[0], want[0])
    assert got[0].dtype == want[0].dtype
    assert np.array_equal(np.signbit(got[0]), np.signbit(want[0]))
