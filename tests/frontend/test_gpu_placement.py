"""Choosing the gpu target: `@fc.jit(target="gpu")`, and `with fc.device("/gpu:0")` under a Session given
no target (Note [placement chooses the target] in compiler/placement.py)."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402
from flowc import placement  # noqa: E402


def _targets_used(session):
    return sorted({key[-1] for key in session._cache})


def _model(graph, device):
    with graph.as_default():
        x = fc.placeholder(fc.float32, [None, 2], name="x")  # made outside the block: follows the placed ops
        with fc.device(device):
            w = fc.Variable(np.ones((3, 2), np.float32), name="w")
            y = fc.nn.relu(x * w - 0.5)
            step = fc.assign_add(w, fc.ones([3, 2]) * 0.25)
        init = fc.global_variables_initializer()
    return x, y, step, init


def test_a_run_placed_on_a_gpu_runs_on_the_gpu_target():
    graph = fc.Graph()
    x, y, step, init = _model(graph, "/gpu:0")
    feed = {x: np.arange(6, dtype=np.float32).reshape(3, 2)}
    with fc.Session(graph=graph) as session:
        session.run(init)
        session.run(step)
        got = session.run(y, feed)
        assert _targets_used(session) == ["gpu"]
    with fc.Session(graph=graph, target="reference") as session:
        session.run(init)
        session.run(step)
        np.testing.assert_allclose(got, session.run(y, feed))


def test_an_unplaced_graph_runs_on_cpu():
    graph = fc.Graph()
    x, y, step, init = _model(graph, "")
    with fc.Session(graph=graph) as session:
        session.run(init)
        session.run(y, {x: np.ones((3, 2), np.float32)})
        assert _targets_used(session) == ["cpu"]


def test_a_given_target_wins_over_placement():
    graph = fc.Graph()
    x, y, step, init = _model(graph, "/gpu:0")
    with fc.Session(graph=graph, target="cpu") as session:
        session.run(init)
        session.run(y, {x: np.ones((3, 2), np.float32)})
        assert _targets_used(session) == ["cpu"]


@pytest.mark.parametrize("other", ["/cpu:0", ""])
def test_a_run_placed_partly_on_a_gpu_runs_on_cpu_and_says_so(other):
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float32, [2], name="x")
        with fc.device(other):
            a = x + 1.0
        with fc.device("/gpu:0"):
            b = a * 2.0
    with fc.Session(graph=graph) as session:
        with pytest.warns(placement.PlacementWarning, match="placed on /gpu:0.*runs on cpu"):
            np.testing.assert_array_equal(session.run(b, {x: np.ones(2, np.float32)}), [4.0, 4.0])
        assert _targets_used(session) == ["cpu"]
        np.testing.assert_array_equal(session.run(b, {a: np.ones(2, np.float32)}), [2.0, 2.0])  # a fed: all gpu
        assert _targets_used(session) == ["cpu", "gpu"]


def test_soft_placement_without_a_gpu_runs_on_cpu(monkeypatch):
    monkeypatch.setattr(placement, "gpu_present", lambda: False)
    graph = fc.Graph()
    x, y, step, init = _model(graph, "/device:GPU:0")
    config = fc.ConfigProto(allow_soft_placement=True)
    with fc.Session(graph=graph, config=config) as session:
        session.run(init)
        session.run(y, {x: np.ones((3, 2), np.float32)})
        assert _targets_used(session) == ["cpu"]


def test_jit_on_the_gpu_target():
    @fc.jit(target="gpu")
    def step(x, y):
        return {"sum": x * y + 1.0, "loop": fc.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2.0 + 1.0),
                                                                [fc.constant(0), x])[1]}

    x, y = np.array([0.5, 3.0], np.float32), np.arange(2, dtype=np.float32)
    got = step(x, y)
    reference = fc.jit(step.fn, target="reference")(x, y)
    np.testing.assert_array_equal(got["sum"], reference["sum"])
    np.testing.assert_array_equal(got["loop"], reference["loop"])
    assert "target gpu" in repr(step)
