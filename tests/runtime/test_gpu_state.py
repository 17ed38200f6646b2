"""Variables on the gpu target stay device tensors between runs (Note [state on the device] in
runtime/gpu.py): a training loop hands each step the tensor the last one wrote, and only fetches come
back to the host; results still match the reference target."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402


def _training_graph():
    x = fc.placeholder(fc.float32, [2, 3], name="x")
    w = fc.Variable(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), name="w")
    loss = fc.reduce_sum(fc.square(x * w - 1.0))
    train = fc.train.MomentumOptimizer(0.01, 0.9).minimize(loss)
    return x, w, train


FEEDS = {"x": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.0}


def test_momentum_steps_match_the_reference():
    def build():
        _, w, train = _training_graph()
        return [train, w.value()]
    assert_gpu_matches(build, FEEDS, rtol=1e-6, runs=4)


def test_a_variable_stays_the_tensor_the_last_run_wrote():
    graph = fc.Graph()
    with graph.as_default():
        x, w, train = _training_graph()
        init = fc.global_variables_initializer()
    with fc.Session(target="gpu", graph=graph) as session:
        session.run(init)
        session.run(train, {x: FEEDS["x"]})
        stored = session._values[w.op]
        assert isinstance(stored, torch.Tensor)
        (compiled,) = [c for key, c in session._cache.items() if train in key[1]]
        seen = []
        run = compiled.executable.run_on_device
        compiled.executable.run_on_device = lambda args: seen.extend(args) or run(args)
        session.run(train, {x: FEEDS["x"]})
        assert any(arg is stored for arg in seen)  # handed over as it was, not copied
        assert session._values[w.op] is not stored  # the step wrote a fresh tensor
        assert isinstance(session.run(w), np.ndarray)


def test_saver_and_load_see_host_values(tmp_path):
    graph = fc.Graph()
    with graph.as_default():
        x, w, train = _training_graph()
        init = fc.global_variables_initializer()
        saver = fc.train.Saver()
    with fc.Session(target="gpu", graph=graph) as session:
        session.run(init)
        session.run(train, {x: FEEDS["x"]})
        trained = session.run(w)
        path = saver.save(session, str(tmp_path / "model"))
        w.load(np.zeros((2, 3), np.float32), session)  # a host value: the next run copies it in
        np.testing.assert_array_equal(session.run(w), np.zeros((2, 3), np.float32))
        saver.restore(session, path)
        np.testing.assert_array_equal(session.run(w), trained)


def test_assigning_one_variable_to_another_does_not_alias_them():
    def build():
        v = fc.Variable(np.zeros(4, np.float32), name="v")
        w = fc.Variable(np.arange(4, dtype=np.float32), name="w")
        with fc.control_dependencies([fc.assign(v, w)]):
            bump = fc.assign_add(w, fc.ones([4]))
        return [bump, v.value(), w.value()]
    assert_gpu_matches(build, runs=3)


def test_a_tensor_already_on_the_device_is_fed_as_it_is():
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        y = x * 2.0 + 1.0
    fed = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    with fc.Session(target="gpu", graph=graph) as session:
        np.testing.assert_array_equal(session.run(y, {x: fed}), fed.numpy() * 2 + 1)
        np.testing.assert_array_equal(session.run(y, {x: fed.T.contiguous().T}), fed.numpy() * 2 + 1)  # strided
        with pytest.raises(fc.errors.FeedError, match="expects float32, got a float64 Tensor"):
            session.run(y, {x: fed.double()})
        with pytest.raises(fc.errors.FeedError, match=r"expects shape \[None, 3\], got \[3, 2\]"):
            session.run(y, {x: fed.reshape(3, 2)})
