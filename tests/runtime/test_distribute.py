"""fc.distribute over MPI: data-parallel training on 2 ranks equals one process on the global batch,
broadcast makes the ranks equal, the CPU's all_reduce agrees with the reference's, and a rank that
dies is reported rather than hung.

Each multi-rank test writes a script to tmp_path and runs it under the mpich wheel's mpiexec with 2
ranks, as a subprocess with a timeout; the ranks write their results to .npz files that the test
reads. One-rank behaviour (rank 0 of 1, collectives as the identity) runs in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import flowc as fc  # noqa: E402
from flowc.cli import main as flowc_main  # noqa: E402
from flowc.math_ops import apply  # noqa: E402
from flowc.distribute.launch import mpiexec_path  # noqa: E402

TIMEOUT = 60  # seconds a 2-rank run may take before the test calls it hung


def run_ranks(tmp_path, body: str, ranks: int = 2, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """`body` (Python, with `fc`, `np`, `rank`, `size` and `out` (a folder) defined) run on `ranks` ranks."""
    script = tmp_path / "script.py"
    script.write_text("import numpy as np, flowc as fc\n"
                      "rank, size = fc.distribute.rank(), fc.distribute.size()\n"
                      f"out = {str(tmp_path)!r}\n" + textwrap.dedent(body))
    environment = dict(os.environ, FLOWC_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run([mpiexec_path(), "-n", str(ranks), sys.executable, str(script)], capture_output=True,
                          text=True, timeout=timeout, env=environment)


def finished(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


# -- one process ----------------------------------------------------------------------------------


def test_one_process_is_rank_0_of_1() -> None:
    assert (fc.distribute.rank(), fc.distribute.size(), fc.distribute.local_rank()) == (0, 1, 0)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_collectives_of_one_rank_are_the_identity(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        total = fc.distribute.allreduce(x, average=False)
        mean = fc.distribute.allreduce(x)
        root = fc.distribute.broadcast(x, root_rank=0)
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    with fc.Session(graph=g, target=target) as sess:
        for got in sess.run([total, mean, root], {x: value}):
            np.testing.assert_array_equal(got, value)


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_a_root_that_is_no_rank_is_an_error_naming_the_op(target: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [3], name="x")
        y = fc.distribute.broadcast(x, root_rank=3, name="from_three")
    with fc.Session(graph=g, target=target) as sess, pytest.raises(fc.FlowcError, match="from_three.*root"):
        sess.run(y, {x: np.zeros(3, np.float32)})


def test_an_exported_library_with_collectives_links_mpi(tmp_path) -> None:
    """fc.export puts the MPI shim into the library and links the mpich wheel's libmpi (the caller
    initializes MPI: here mpi4py, imported by fc.distribute)."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        y = fc.distribute.allreduce(x, average=False) * 2
    with fc.Session(graph=g) as sess:
        fc.export(str(tmp_path / "total"), [y], [x], session=sess)
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(fc.load(str(tmp_path / "total"))(value), 2 * value)


def test_max_all_reduce_has_no_gradient() -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [3], name="x")
        y = apply("all_reduce", (x,), name="biggest", reduction="max")
        (dx,) = fc.gradients(fc.reduce_sum(y), [x])
    with fc.Session(graph=g, target="reference") as sess, pytest.raises(fc.FlowcError, match="biggest.*max"):
        sess.run(dx, {x: np.zeros(3)})


def test_gradients_are_packed_into_few_buckets() -> None:
    """100 small variables: one all_reduce per dtype and bucket, not one per variable."""
    from flowc.distribute.ops import buckets

    g = fc.Graph()
    with g.as_default():
        small = [fc.zeros([10, 10], fc.float32) for _ in range(100)]
        other = [fc.zeros([4], fc.float64)]
    tensors = small + other
    assert buckets(tensors, 64 << 20) == [list(range(100)), [100]]
    assert buckets(tensors, 4000) == [list(range(10 * i, 10 * i + 10)) for i in range(10)] + [[100]]
    assert buckets(small[:3], 100) == [[0], [1], [2]]  # each bigger than a bucket: one of its own


def mlp_with_distributed_optimizer(bucket_bytes: int, overlap: bool = True):  # type: ignore[no-untyped-def]
    """A 3-layer MLP trained by DistributedOptimizer(SGD): its graph, the train op, the feeds and the loss."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 8], name="x")
        y = fc.placeholder(fc.int32, [None], name="y")
        h = x
        for i, (n, m) in enumerate([(8, 16), (16, 16), (16, 4)]):
            w = fc.Variable(np.full([n, m], 0.1, np.float32), name=f"W{i}")
            b = fc.Variable(np.zeros(m, np.float32), name=f"b{i}")
            h = fc.matmul(h, w) + b
            h = fc.tanh(h) if i < 2 else h
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h))
        optimizer = fc.distribute.DistributedOptimizer(fc.train.GradientDescentOptimizer(0.1),
                                                       bucket_bytes=bucket_bytes, overlap=overlap)
        train = optimizer.minimize(loss)
    return g, train, [x, y], loss


def test_buckets_follow_the_backward_pass() -> None:
    """The last layer's gradients first: Note [overlapped buckets]."""
    from flowc.distribute.optimizer import backward_order

    g, _, _, loss = mlp_with_distributed_optimizer(1 << 20)
    with g.as_default():
        variables = fc.trainable_variables()
    names = [v.op.name for v in variables]
    assert names == ["W0", "b0", "W1", "b1", "W2", "b2"]
    assert [names[i] for i in backward_order(loss, list(range(6)), variables)] == ["b2", "W2", "b1", "W1", "b0", "W0"]


def test_each_bucket_is_reduced_while_the_backward_pass_runs() -> None:
    """In the CPU target's final order (Note [placing split collectives]): one start per bucket, the
    first before the product that computes the first layer's gradient, and each wait just before the
    kernel that reads its result."""
    from flowc.driver import run_pipeline
    from flowc.options import CompileOptions
    from flowc.targets import target_named
    from flowc.lowering import lower

    g, train, feeds, _ = mlp_with_distributed_optimizer(300)  # buckets [b2, W2], [b1], [W1], [b0], [W0]
    lowered = lower(g, [], [train], feeds)
    run_pipeline(lowered, target_named("cpu"), CompileOptions())
    ops = lowered.function.entry.ops

    def holds(op, name):  # type: ignore[no-untyped-def]
        return any(o.name == name for o in op.walk())

    starts = [i for i, op in enumerate(ops) if holds(op, "all_reduce_start")]
    dones = [i for i, op in enumerate(ops) if holds(op, "all_reduce_done")]
    products = [i for i, op in enumerate(ops) if holds(op, "matmul")]
    assert len(starts) == len(dones) == 5
    assert starts[0] < products[-1] and starts[1] < products[-1]  # backward work left after them
    for index in dones:
        reader = ops[index + 1]
        assert any(value is ops[index].results[0] for o in reader.walk() for value in o.operands), ops[index + 1]


def test_overlapped_training_runs_on_one_rank_as_plain_sgd() -> None:
    """One rank: MPI_Iallreduce and MPI_Wait on the CPU, one Allreduce in the reference, each the identity."""
    data = np.random.default_rng(0)
    x_value, y_value = data.standard_normal((6, 8)).astype(np.float32), data.integers(0, 4, 6).astype(np.int32)
    found = {}
    for target, overlap in (("cpu", True), ("cpu", False), ("reference", True)):
        g, train, (x, y), _ = mlp_with_distributed_optimizer(300, overlap)
        with g.as_default():
            init = fc.global_variables_initializer()
            variables = fc.trainable_variables()
        with fc.Session(graph=g, target=target) as sess:
            sess.run(init)
            for _ in range(3):
                sess.run(train, {x: x_value, y: y_value})
            found[target, overlap] = sess.run(variables)
    for key in (("cpu", False), ("reference", True)):
        for got, want in zip(found[key], found["cpu", True]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=str(key))


# -- two ranks ------------------------------------------------------------------------------------

TRAINING = """
import sys
distributed = sys.argv[1:] == [] and size > 1
steps, batch, features, hidden, classes = 50, 32, 8, 16, 4
data = np.random.default_rng(0)
X = data.standard_normal((steps, batch, features))
Y = data.integers(0, classes, (steps, batch))
start = [data.standard_normal((features, hidden)) * 0.3, np.zeros(hidden),
         data.standard_normal((hidden, classes)) * 0.3, np.zeros(classes)]
g = fc.Graph()
with g.as_default():
    x = fc.placeholder(fc.float64, [None, features], name="x")
    y = fc.placeholder(fc.int32, [None], name="y")
    # Rank 1 starts elsewhere: broadcast_global_variables must bring it to rank 0's values.
    W1, b1, W2, b2 = (fc.Variable(value + rank, name=f"v{i}") for i, value in enumerate(start))
    logits = fc.matmul(fc.tanh(fc.matmul(x, W1) + b1), W2) + b2
    loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    optimizer = fc.train.GradientDescentOptimizer(0.5)
    if distributed:
        optimizer = fc.distribute.DistributedOptimizer(optimizer, **OPTIONS)
    train = optimizer.minimize(loss)
    init = fc.global_variables_initializer()
    sync = fc.distribute.broadcast_global_variables(0)
share = slice(rank * batch // size, (rank + 1) * batch // size) if distributed else slice(None)
with fc.Session(graph=g, target=TARGET) as sess:
    sess.run(init)
    sess.run(sync)
    for step in range(steps):
        sess.run(train, {x: X[step, share], y: Y[step, share].astype(np.int32)})
    np.savez(f"{out}/weights{rank}.npz", *sess.run([W1, b1, W2, b2]))
np.save(f"{out}/calls{rank}.npy", fc.distribute.communication_stats().calls)
"""


# (target, DistributedOptimizer's options, all_reduce calls per step): the 4 gradients (1024, 128, 512
# and 32 bytes) in one bucket, or in 600-byte buckets in backward order: [b2, W2], [b1], [W1].
TRAININGS = [("cpu", {}, 1), ("reference", {}, 1), ("cpu", {"bucket_bytes": 600}, 3),
             ("reference", {"bucket_bytes": 600}, 3), ("cpu", {"bucket_bytes": 600, "overlap": False}, 3)]


@pytest.mark.parametrize("target, options, calls", TRAININGS)
def test_data_parallel_training_on_2_ranks_equals_one_process_on_the_global_batch(tmp_path, target: str,
                                                                                  options: dict, calls: int) -> None:
    body = f"TARGET = {target!r}\nOPTIONS = {options!r}\n" + TRAINING
    finished(run_ranks(tmp_path, body))
    ranks = [np.load(tmp_path / f"weights{r}.npz") for r in range(2)]
    (tmp_path / "one").mkdir()
    alone = run_ranks(tmp_path / "one", body.replace("sys.argv[1:] == [] and size > 1", "False"), ranks=1)
    finished(alone)
    single = np.load(tmp_path / "one" / "weights0.npz")
    for name in single.files:
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=f"{name}: the ranks differ")
        np.testing.assert_allclose(ranks[0][name], single[name], rtol=1e-6, atol=1e-9, err_msg=name)
    assert not np.allclose(single["arr_0"], ranks[0]["arr_0"] * 0)  # trained to something
    if target == "cpu":  # one broadcast of the 4 packed variables, then one all_reduce per bucket and step
        assert [int(np.load(tmp_path / f"calls{r}.npy")) for r in range(2)] == [1 + 50 * calls] * 2


def test_broadcast_makes_the_ranks_equal_and_all_reduce_matches_the_reference(tmp_path) -> None:
    body = """
    from flowc.math_ops import apply
    g = fc.Graph()
    with g.as_default():
        v = fc.Variable(np.full([5], 10.0 * rank, np.float32), name="v")
        sync = fc.distribute.broadcast_global_variables(root_rank=1)
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        n = fc.placeholder(fc.int64, [2], name="n")
        results = [fc.distribute.allreduce(x, average=False), fc.distribute.allreduce(x),
                   fc.distribute.allreduce(n, average=False), fc.distribute.broadcast(x, root_rank=1),
                   fc.distribute.ops.allreduce_done(fc.distribute.ops.allreduce_start(x))]  # split: as the first
        biggest = apply("all_reduce", (x,), reduction="max")
        # One all_reduce per turn of a loop, on every rank: 0 -> 1 -> 3 -> 7 with 2 ranks.
        _, turns = fc.while_loop(lambda i, t: i < 3, lambda i, t: (i + 1, fc.distribute.allreduce(t, average=False) + 1.0),
                                 [fc.constant(0), fc.zeros([2], fc.float32)])
    values = {x: np.arange(12, dtype=np.float32).reshape(4, 3) * (rank + 1), n: np.array([rank, 2 ** 40], np.int64)}
    found = {}
    for target in ("cpu", "reference"):
        with fc.Session(graph=g, target=target) as sess:
            sess.run(v.initializer)
            sess.run(sync)
            found[target] = [sess.run(v), *sess.run(results + [biggest, turns], values)]
    np.savez(f"{out}/found{rank}.npz", *found["cpu"], *found["reference"])
    np.save(f"{out}/where{rank}.npy", [rank, size, fc.distribute.local_rank(), fc.distribute.local_size()])
    """
    finished(run_ranks(tmp_path, body))
    for rank in range(2):
        assert list(np.load(tmp_path / f"where{rank}.npy")) == [rank, 2, rank, 2]  # one machine: local = global
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    want = [np.full([5], 10.0, np.float32), 3 * x, 1.5 * x, np.array([1, 2 ** 41]), 2 * x, 3 * x, 2 * x,
            np.full([2], 7.0)]
    for rank in range(2):
        found = np.load(tmp_path / f"found{rank}.npz")
        got = [found[f"arr_{i}"] for i in range(2 * len(want))]
        for index, expected in enumerate(want):
            np.testing.assert_array_equal(got[index], expected, err_msg=f"rank {rank}, cpu, result {index}")
            np.testing.assert_array_equal(got[len(want) + index], expected,
                                          err_msg=f"rank {rank}, reference, result {index}")


def test_the_distributed_mlp_example_runs_on_2_ranks(capfd) -> None:
    pytest.importorskip("sklearn")
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "distributed_mlp.py")
    assert flowc_main(["run", "-n", "2", "--timeout", str(TIMEOUT), example, "--epochs", "2"]) == 0
    out = capfd.readouterr().out
    assert "epoch   2" in out and "2 rank(s): train accuracy" in out
    assert float(out.split("train accuracy ")[1].split(",")[0]) > 0.8


def test_a_rank_that_dies_before_a_collective_is_reported_not_hung(tmp_path, capfd) -> None:
    """mpich's launcher ends the job when a rank exits early; `flowc run` passes the status on with a
    line that says what happened, well within the timeout (not a hang in the survivor's allreduce)."""
    script = tmp_path / "dies.py"
    script.write_text(textwrap.dedent("""
        import os, numpy as np, flowc as fc
        g = fc.Graph()
        with g.as_default():
            x = fc.placeholder(fc.float32, [3], name="x")
            total = fc.distribute.allreduce(x)
        if fc.distribute.rank() == 1:
            os._exit(3)
        with fc.Session(graph=g) as sess:
            sess.run(total, {x: np.ones(3, np.float32)})
        print("rank 0 finished")
    """))
    os.environ["FLOWC_CACHE_DIR"] = str(tmp_path / "cache")  # restored by conftest's fixture
    status = flowc_main(["run", "-n", "2", "--timeout", str(TIMEOUT), str(script)])
    err = capfd.readouterr().err
    assert status != 0
    assert status == 3 and "flowc run: the job of 2 ranks failed: a rank exited with status 3" in err, err
    assert "timed out" not in err


# -- asynchronous: a parameter server (Downpour SGD) ------------------------------------------------

DOWNPOUR = """
steps = 40
data = np.random.default_rng(0)
X = data.standard_normal((steps, 16, 3))
true_w = np.array([[1.0], [-2.0], [0.5]])
Y = X @ true_w
g = fc.Graph()
with g.as_default():
    x = fc.placeholder(fc.float64, [None, 3], name="x")
    y = fc.placeholder(fc.float64, [None, 1], name="y")
    w = fc.Variable(np.zeros((3, 1)), name="w")
    b = fc.Variable(np.zeros(1), name="b")
    loss = fc.reduce_mean(fc.square(fc.matmul(x, w) + b - y))
    trainer = fc.distribute.DownpourTrainer(fc.train.GradientDescentOptimizer(0.1), loss)
    init = fc.global_variables_initializer()
workers = max(size - 1, 1)
mine = range(max(rank - 1, 0), steps, workers)  # worker k takes every workers-th batch
with fc.Session(graph=g) as sess:
    sess.run(init)
    report = trainer.run(sess, ({x: X[i], y: Y[i]} for i in mine))
    np.savez(f"{out}/downpour{rank}.npz", w=sess.run(w), b=sess.run(b), steps=report.steps,
             staleness=report.max_staleness, role=report.role)
"""


def test_downpour_with_one_worker_is_sequential_sgd(tmp_path) -> None:
    finished(run_ranks(tmp_path, DOWNPOUR, ranks=2))
    (tmp_path / "one").mkdir()
    finished(run_ranks(tmp_path / "one", DOWNPOUR, ranks=1))
    server, worker, alone = (np.load(p) for p in (tmp_path / "downpour0.npz", tmp_path / "downpour1.npz",
                                                  tmp_path / "one" / "downpour0.npz"))
    assert (str(server["role"]), int(server["steps"]), int(server["staleness"])) == ("server", 40, 0)
    assert (str(worker["role"]), str(alone["role"]), int(alone["steps"])) == ("worker", "alone", 40)
    for name in ("w", "b"):
        np.testing.assert_array_equal(server[name], alone[name])
        np.testing.assert_array_equal(worker[name], alone[name])  # it pulled the last parameters


def test_downpour_with_two_workers_applies_every_gradient_and_converges(tmp_path) -> None:
    finished(run_ranks(tmp_path, DOWNPOUR, ranks=3))
    server = np.load(tmp_path / "downpour0.npz")
    workers = [np.load(tmp_path / f"downpour{r}.npz") for r in (1, 2)]
    assert int(server["steps"]) == sum(int(w["steps"]) for w in workers) == 40
    # Between a worker's pull and its push only the other worker's updates land: at most its 20 (a worker
    # still compiling its first step while the other trains sees many).
    assert 0 <= int(server["staleness"]) <= 20
    np.testing.assert_allclose(server["w"], [[1.0], [-2.0], [0.5]], atol=0.05)
