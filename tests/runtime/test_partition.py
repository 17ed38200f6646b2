"""Placement and partitioning (compiler/placement.py, partition.py, partitioned_run.py).

The placement rules are plain unit tests. Partitioned runs are checked two ways: in one process,
every task in it (LocalWorld: the same partitions and segments, values passed through a dict), and
under `mpiexec -n 2` as subprocesses, skipped where mpi4py or the MPICH wheel's mpiexec is missing.
Either way a partitioned run must give the unpartitioned run's results bit for bit.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import flowc as fc
from flowc import partitioned_run
from flowc.device_spec import DeviceSpec
from flowc.ir.errors import GraphError
from flowc.lowering import lower
from flowc.partition import partition
from flowc.passes import expand_gradients
from flowc.placement import EVERYWHERE, cluster_of, place

ROOT = Path(__file__).resolve().parents[2]
MPIEXEC = Path(sys.executable).parent / "mpiexec"

# A 2-layer network with a layer per task; `build()` gives its graph and tensors. Written out as a
# module for the MPI scripts, and run here for the one-process results.
MODEL = '''
import numpy as np
import flowc as fc


def build(optimizer="sgd"):
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(3)
        x = fc.placeholder(fc.float32, [None, 6], name="x")
        y = fc.placeholder(fc.int32, [None], name="y")
        with fc.device("/job:worker/task:0"):
            w1 = fc.Variable(fc.random_normal([6, 16], seed=1), name="w1")
            b1 = fc.Variable(fc.zeros([16]), name="b1")
            hidden = fc.tanh(fc.matmul(x, w1) + b1, name="hidden")
        with fc.device("/job:worker/task:1"):
            w2 = fc.Variable(fc.random_normal([16, 3], seed=2), name="w2")
            logits = fc.matmul(hidden, w2, name="logits")
            loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        if optimizer == "adam":
            train = fc.train.AdamOptimizer(0.05).minimize(loss)
        else:
            train = fc.train.GradientDescentOptimizer(0.5).minimize(loss)
        init = fc.global_variables_initializer()
    return dict(graph=g, x=x, y=y, hidden=hidden, logits=logits, loss=loss, train=train, init=init,
                variables=[w1, b1, w2])


def batches(steps):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8).astype(np.int32))
            for _ in range(steps)]


def results(target="cpu", steps=3, optimizer="sgd"):
    """The forward fetches, then per training step the loss, then the variables' final values."""
    model = build(optimizer)
    out = []
    with fc.Session(graph=model["graph"], target=target) as sess:
        sess.run(model["init"])
        x, y = batches(1)[0]
        out += sess.run([model["hidden"], model["logits"], model["loss"]], {model["x"]: x, model["y"]: y})
        for x, y in batches(steps):
            out.append(sess.run([model["loss"], model["train"]], {model["x"]: x, "y:0": y})[0])
        out += sess.run(model["variables"])
    return out
'''


# Edges into a function call, a cond and a check, a Variable read on another task than its own, a
# constant and a fed value fetched, and an update of that Variable from the other task.
MIXED = '''
import numpy as np
import flowc as fc


def results():
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3], name="x")

        @fc.function
        def double(t):
            return t * 2.0

        with fc.device("/job:worker/task:0"):
            a = fc.exp(x, name="a")
            v = fc.Variable(fc.ones([3]), name="v")
        with fc.device("/job:worker/task:1"):
            d = double(a)
            check = fc.debugging.assert_positive(d)
            with fc.control_dependencies([check]):
                e = fc.identity(d) + v
            c = fc.cond(fc.reduce_sum(a) > 0, lambda: e * 3.0, lambda: e - 1.0)
        k = fc.constant(7.0, name="k")
        update = fc.assign_add(v, fc.reduce_sum(c, axis=0))
        with fc.device("/job:worker/task:1"):
            mean = fc.reduce_mean(c, axis=0)
        reset = fc.assign(v, mean)  # the new value comes from task 1: an edge into the partition's results
        init = fc.global_variables_initializer()
    fed = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    with fc.Session(graph=g) as sess:
        sess.run(init)
        out = sess.run([x, a, d, e, c, k, v], {x: fed})
        sess.run(update, {x: fed})
        out.append(sess.run(v))
        sess.run(reset, {x: fed})
        return out + [sess.run(v)]
'''


def model() -> dict:
    return runpy.run_path(str(_write(Path(os.environ.get("TMPDIR", "/tmp")) / f"flowc_model_{os.getpid()}.py",
                                     MODEL)))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def local_world(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions made from now on run partitioned in this one process, every task in it."""
    monkeypatch.setenv("FLOWC_PARTITION", "1")


def assert_bitwise_equal(got: list, want: list) -> None:
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (i, a.dtype, b.dtype, a.shape, b.shape)
        assert a.tobytes() == b.tobytes(), (i, a, b)


# -- device specs -----------------------------------------------------------------------------------


def test_nested_device_scopes_merge_as_tf1_device_specs() -> None:
    g = fc.Graph()
    with g.as_default():
        with fc.device("/job:worker/task:1"):
            with fc.device("/gpu:0"):
                a = fc.constant(1.0)
            with fc.device("/task:2"):  # an inner part wins; the outer job stays
                b = fc.constant(2.0)
            with fc.device("/job:ps"):
                c = fc.constant(3.0)
            with fc.device(None):  # clears the outer scopes
                d = fc.constant(4.0)
        with fc.device(DeviceSpec(job="ps", task=0, device_type="cpu", device_index=0)):
            e = fc.constant(5.0)
    assert a.device == "/job:worker/task:1/gpu:0"
    assert b.device == "/job:worker/task:2"
    assert c.device == "/job:ps/task:1"
    assert d.device == ""
    assert e.device == "/job:ps/task:0/cpu:0"


def test_device_specs_parse_every_tf1_spelling() -> None:
    assert DeviceSpec.parse("/device:GPU:1") == DeviceSpec(device_type="gpu", device_index=1)
    assert DeviceSpec.parse("/job:ps/replica:0/task:3/CPU:0") == DeviceSpec("ps", 0, 3, "cpu", 0)
    assert DeviceSpec.parse("/job:worker/task:2").task_key == ("worker", 2)
    assert DeviceSpec.parse("/task:2").task_key == ("worker", 2)  # no job: a worker
    assert DeviceSpec.parse("/job:ps").task_key == ("ps", 0)
    assert DeviceSpec.parse("/gpu:0").task_key is None


@pytest.mark.parametrize("spec, why", [("/job:worker/task:x", "'task:x' needs a non-negative integer"),
                                       ("/tpu:0", "'tpu:0' is not job:NAME"),
                                       ("/task:1/task:2", "names the task twice"),
                                       ("/job:/task:0", "the job name")])
def test_a_malformed_device_is_an_error_naming_it_and_the_line(spec: str, why: str) -> None:
    g = fc.Graph()
    with g.as_default(), pytest.raises(GraphError) as caught, fc.device(spec):
        pass
    message = str(caught.value)
    assert repr(spec) in message and why in message, message
    assert caught.value.where is not None and caught.value.where.startswith("test_partition.py:"), message


# -- placement --------------------------------------------------------------------------------------


def test_tasks_take_ranks_workers_first_then_parameter_servers() -> None:
    g = fc.Graph()
    with g.as_default():
        for device in ["/job:ps/task:0", "/job:worker/task:1", "/job:worker/task:0/gpu:0", "/job:ps/task:1"]:
            with fc.device(device):
                fc.constant(0.0)
    cluster = cluster_of(g)
    assert cluster.tasks == (("worker", 0), ("worker", 1), ("ps", 0), ("ps", 1))
    assert cluster.rank_of("/job:ps/task:0/cpu:0") == 2 and cluster.rank_of("/cpu:0") is None


def placement_of(m: dict, fetches: list, targets: list) -> list[tuple[str, str | None, str, int]]:
    """(IR op, value name, device, rank) of each top-level op of the run, gradients expanded."""
    lowered = lower(m["graph"], fetches, targets, [m["x"], m["y"]])
    expand_gradients(lowered.module)
    placement = place(lowered.function, lowered.signature, cluster_of(m["graph"]))
    return [(op.name, op.results[0].name if op.results else None, op.device or "", rank)
            for op, rank in placement.of_op.items()]


def test_ops_without_a_task_follow_their_first_input_or_else_their_first_user() -> None:
    m = model()["build"]()
    with m["graph"].as_default():
        outside = fc.square(m["hidden"], name="outside")  # no device: its first placed input's task
        fed_only = fc.multiply(m["x"], 2.0, name="fed_only")  # reads only a feed: its first user's task
        with fc.device("/job:worker/task:1"):
            used = fc.reduce_sum(fed_only, name="used")
    ranks = {name: rank for _, name, _, rank in placement_of(m, [outside, used], [])}
    assert ranks["outside"] == 0 and ranks["hidden"] == 0
    assert ranks["fed_only"] == 1 and ranks["used"] == 1


def test_updates_follow_their_variable_and_gradients_the_op_they_differentiate() -> None:
    m = model()["build"]()
    ops = placement_of(m, [], [m["train"]])  # the optimizer was built outside every device scope
    ranks = {name: rank for _, name, _, rank in ops if name}
    assert ranks["GradientDescent/AssignSub"] == 0 and ranks["GradientDescent/AssignSub_1"] == 0  # w1, b1
    assert ranks["GradientDescent/AssignSub_2"] == 1  # w2
    assert ranks["gradients"] == 0 and ranks["gradients_2"] == 1  # d loss / d w1 on task 0, / d w2 on task 1
    for kind, _, device, rank in ops:
        if kind == "constant":
            assert rank == EVERYWHERE  # each partition has its own copy
        elif device:
            assert rank == (0 if device == "/job:worker/task:0" else 1), (kind, device, rank)


# -- partitions in one process ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["reference", "cpu"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_partitioned_run_gives_the_unpartitioned_results_bit_for_bit(target: str, optimizer: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    results = model()["results"]
    want = results(target, optimizer=optimizer)
    monkeypatch.setenv("FLOWC_PARTITION", "1")
    got = results(target, optimizer=optimizer)
    assert_bitwise_equal(got, want)


def test_calls_conds_checks_and_remote_variables_partition_too(monkeypatch: pytest.MonkeyPatch) -> None:
    results = runpy.run_path(str(_write(Path(os.environ.get("TMPDIR", "/tmp")) / f"flowc_mixed_{os.getpid()}.py",
                                        MIXED)))["results"]
    want = results()
    monkeypatch.setenv("FLOWC_PARTITION", "1")
    assert_bitwise_equal(results(), want)


def check_in_order(text: str, checks: list[str]) -> None:
    """FileCheck's CHECK lines: each pattern (a regex) found after the previous one's match."""
    position = 0
    for check in checks:
        found = re.compile(check).search(text, position)
        assert found, f"{check!r} not found after position {position} in:\n{text}"
        position = found.end()


PARTITION_CHECKS = [
    r"// /job:worker/task:0 \(rank 0\)",
    r"func @worker_0\(%x: f32\[\?,6\], %w1: f32\[6,16\], %b1: f32\[16\]\)",
    r"%hidden = tanh",
    r"send %hidden \{edge = 0, label = \"tanh 'hidden' -> matmul 'logits' "
    r"\(/job:worker/task:0 -> /job:worker/task:1\)\", peer = 1\}",
    r"= recv \{edge = 1, label = \"matmul \(for .*\) -> mul \(for .*\) "
    r"\(/job:worker/task:1 -> /job:worker/task:0\)\", peer = 1\} : f32\[\?,16\]",
    r"%gradients = matmul %x",
    r"return",
    r"// /job:worker/task:1 \(rank 1\)",
    r"func @worker_1\(",
    r"%hidden = recv \{edge = 0, .*peer = 0\} : f32\[\?,16\]",
    r"%logits = matmul %hidden, %w2",
    r"send %\w+ \{edge = 1, .*peer = 0\} : f32\[\?,16\]",
    r"return",
]


def test_each_partition_shows_its_sends_and_recvs() -> None:
    m = model()["build"]()
    lowered = lower(m["graph"], [m["loss"]], [m["train"]], [m["x"], m["y"]])
    expand_gradients(lowered.module)
    partitioned = partition(lowered, cluster_of(m["graph"]))
    check_in_order(partitioned.text(), PARTITION_CHECKS)
    assert [e.index for e in partitioned.edges] == [0, 1]


def test_the_ir_dump_holds_each_partition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_world: None) -> None:
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))
    m = model()["build"]()
    x, y = model()["batches"](1)[0]
    with fc.Session(graph=m["graph"]) as sess:
        sess.run(m["init"])
        sess.run(m["train"], {m["x"]: x, m["y"]: y})
    training = sorted(tmp_path.glob("partitions-*"))[-1]  # the last partitioned run: the training step
    text = "\n".join(f.read_text() for f in sorted(training.glob("*.ir")))
    assert [f.name for f in sorted(training.glob("*.ir"))] == ["rank0-worker_0.ir", "rank1-worker_1.ir"]
    check_in_order(text, PARTITION_CHECKS)


def test_a_receive_that_never_comes_names_its_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    """The MPI world's wait, given a clock that jumps past the timeout (the real wait is tested below)."""

    class Silent:
        rank, size = 0, 2

        def receive(self, source: int, tag: int, deadline: float) -> None:
            return None

    run = partitioned_run._Run.__new__(partitioned_run._Run)
    run.world, run.base = Silent(), 0
    run.executable = type("E", (), {"timeout": 0.5})()
    run.clock = time.monotonic
    with pytest.raises(fc.errors.DeadlineExceededError, match=r"waited 0.5 s for edge a -> b"):
        run.receive(1, 0, "a -> b")


def test_two_runs_never_share_a_tag() -> None:
    """A message's tag is its edge's index plus the run's number times the run's edge count, so a late
    message of one run never matches a recv of the next (Note [partitioned runs])."""
    executable = type("E", (), {"partitioned": type("P", (), {"edges": [None] * 3})(),
                                "signature": type("S", (), {"fetches": (None, None)})(),
                                "world": partitioned_run.LocalWorld(), "timeout": 1.0})()
    first, second = (partitioned_run._Run(executable, number, time.monotonic) for number in (7, 8))
    first_tags = {first.tag(i) for i in range(5)}  # 3 edges, then 2 fetches
    assert len(first_tags) == 5 and first_tags.isdisjoint(second.tag(i) for i in range(5))


# -- under mpiexec ----------------------------------------------------------------------------------


def mpi_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return MPIEXEC.exists()


needs_mpi = pytest.mark.skipif(not mpi_available(), reason="needs mpi4py and the MPICH wheel's mpiexec (flowc[dist])")


def mpiexec(script: Path, *args: str, ranks: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}
    command = [str(MPIEXEC), "-n", str(ranks), sys.executable, str(script), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=script.parent,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@needs_mpi
def test_two_ranks_give_the_one_process_results_bit_for_bit(tmp_path: Path) -> None:
    _write(tmp_path / "model.py", MODEL)
    script = _write(tmp_path / "run.py", textwrap.dedent("""
        import os, sys
        import numpy as np
        from model import results
        rank = os.environ["PMI_RANK"]
        values = results("cpu", steps=3)
        np.savez(f"rank{rank}.npz", *values)
    """))
    mpiexec(script)
    want = runpy.run_path(str(tmp_path / "model.py"))["results"]("cpu", steps=3)
    for rank in (0, 1):  # every rank gets every fetch
        with np.load(tmp_path / f"rank{rank}.npz") as saved:
            assert_bitwise_equal([saved[f"arr_{i}"] for i in range(len(saved.files))], want)


@needs_mpi
def test_three_ranks_for_two_tasks_every_rank_gets_every_fetch(tmp_path: Path) -> None:
    _write(tmp_path / "mixed.py", MIXED)
    script = _write(tmp_path / "run.py", textwrap.dedent("""
        import os
        import numpy as np
        from mixed import results
        np.savez(f"rank{os.environ['PMI_RANK']}.npz", *results())
    """))
    mpiexec(script, ranks=3)  # rank 2 runs no task: it only receives the fetches
    want = runpy.run_path(str(tmp_path / "mixed.py"))["results"]()
    for rank in (0, 1, 2):
        with np.load(tmp_path / f"rank{rank}.npz") as saved:
            assert_bitwise_equal([saved[f"arr_{i}"] for i in range(len(saved.files))], want)


@needs_mpi
def test_each_variable_lives_on_the_rank_of_its_task(tmp_path: Path) -> None:
    _write(tmp_path / "model.py", MODEL)
    script = _write(tmp_path / "run.py", textwrap.dedent("""
        import os
        import flowc as fc
        from model import build, batches
        m = build()
        with fc.Session(graph=m["graph"]) as sess:
            sess.run(m["init"])
            x, y = batches(1)[0]
            sess.run(m["train"], {m["x"]: x, m["y"]: y})
            with open(f"rank{os.environ['PMI_RANK']}.txt", "w") as f:
                f.write(" ".join(sorted(v.name for v in sess._values)))
    """))
    mpiexec(script)
    assert (tmp_path / "rank0.txt").read_text() == "b1 w1" and (tmp_path / "rank1.txt").read_text() == "w2"


@needs_mpi
def test_a_receive_that_never_comes_is_an_error_naming_the_edge_within_the_timeout(tmp_path: Path) -> None:
    script = _write(tmp_path / "silent.py", textwrap.dedent("""
        import os, sys, time
        import numpy as np
        import flowc as fc
        from mpi4py import MPI  # both ranks start MPI; rank 1 then never runs the graph
        g = fc.Graph()
        with g.as_default():
            x = fc.placeholder(fc.float32, [3], name="x")
            with fc.device("/job:worker/task:0"):
                a = fc.exp(x, name="a")
            with fc.device("/job:worker/task:1"):
                b = fc.tanh(a, name="b")
            with fc.device("/job:worker/task:0"):
                c = fc.add(b, a, name="c")
        if MPI.COMM_WORLD.Get_rank() == 0:
            with fc.Session(graph=g, config=fc.ConfigProto(operation_timeout_in_ms=1000)) as sess:
                start = time.monotonic()
                try:
                    sess.run(c, {x: np.ones(3, np.float32)})
                except fc.errors.FlowcError as error:
                    print(f"{type(error).__name__} after {time.monotonic() - start:.1f} s: {error}", flush=True)
    """))
    start = time.monotonic()
    output = mpiexec(script, timeout=60).stdout
    assert time.monotonic() - start < 60
    assert "DeadlineExceededError after 1." in output, output
    assert "tanh 'b' -> add 'c' (/job:worker/task:1 -> /job:worker/task:0)" in output, output


@needs_mpi
def test_the_model_parallel_lstm_example_gives_the_same_losses_on_two_ranks() -> None:
    example = ROOT / "examples" / "model_parallel_lstm.py"
    one = subprocess.run([sys.executable, str(example), "--steps", "4"], capture_output=True, text=True,
                         timeout=240, check=True).stdout
    two = mpiexec(example, "--steps", "4").stdout
    assert one.count("cross entropy") == 4 and two == one, (one, two)
