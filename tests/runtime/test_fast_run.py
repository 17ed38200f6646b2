"""Session.run's fast run (Note [the fast run] in runtime/native/fast_run.c): the same answers as the
Python path, and the Python path wherever the fast run does not recognise a run."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowc as fc
from flowc.ir.errors import FeedError, FlowcError, IndexOutOfRange
from flowc.runtime import fast_run


@pytest.fixture
def g():
    graph = fc.Graph()
    with graph.as_default():
        yield graph


def fast_only(sess: fc.Session) -> None:
    """Make the Python path fail, so a run that still answers was a fast run."""
    def refuse(*_):
        raise AssertionError("took the Python path")
    sess._call = refuse


def softmax_step(g, rng, optimizer):
    x = fc.placeholder(fc.float32, shape=[None, 20], name="x")
    y = fc.placeholder(fc.int32, shape=[None], name="y")
    W = fc.Variable(rng.standard_normal((20, 5)).astype(np.float32) * 0.1, name="W")
    b = fc.Variable(np.zeros(5, np.float32), name="b")
    logits = fc.matmul(x, W) + b
    loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    return x, y, [W, b], loss, optimizer.minimize(loss)


def test_the_extension_builds_here() -> None:
    assert fast_run.module() is not None, fast_run.why_not


@pytest.mark.parametrize("optimizer", [lambda: fc.train.GradientDescentOptimizer(0.5),
                                       lambda: fc.train.AdamOptimizer(0.05)], ids=["sgd", "adam"])
def test_a_training_loop_gives_the_python_paths_bits(monkeypatch, rng, optimizer) -> None:
    batches = [(rng.random((16, 20), dtype=np.float32), rng.integers(0, 5, 16).astype(np.int32)) for _ in range(6)]
    runs = {}
    for switch in ("0", "1"):
        monkeypatch.setenv("FLOWC_FAST_RUN", switch)
        g = fc.Graph()
        with g.as_default():
            x, y, params, loss, train = softmax_step(g, np.random.default_rng(1), optimizer())
            init = fc.global_variables_initializer()
        with fc.Session(graph=g) as sess:
            sess.run(init)
            losses = [sess.run([loss, train], {x: bx, y: by})[0] for bx, by in batches]
            assert len(sess._fast) == (switch == "1")
            runs[switch] = losses, sess.run(params)
    np.testing.assert_array_equal(runs["0"][0], runs["1"][0])
    for python, fast in zip(runs["0"][1], runs["1"][1]):
        np.testing.assert_array_equal(python, fast)


def test_repeated_runs_are_fast_and_each_answer_is_new(g, rng) -> None:
    x, y, params, loss, train = softmax_step(g, rng, fc.train.GradientDescentOptimizer(0.5))
    with fc.Session(graph=g) as sess:
        sess.run(fc.global_variables_initializer())
        feed = {x: rng.random((8, 20), dtype=np.float32), y: np.arange(8, dtype=np.int32) % 5}
        first = sess.run([loss, train], feed)
        fast_only(sess)
        second = sess.run([loss, train], feed)
    assert isinstance(second, list) and second[1] is None
    assert second[0] is not first[0] and float(second[0]) < float(first[0])  # fresh, after one more step


@pytest.mark.parametrize("fetch", ["single", "list", "tuple", "twice", "name", "variable", "op"])
def test_answers_keep_their_structure(g, rng, fetch) -> None:
    x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
    v = fc.Variable(np.ones(3, np.float32), name="v")
    y = fc.reduce_sum(x * 2.0, axis=1, name="y")
    z = x + v
    fetches = {"single": y, "list": [y, z], "tuple": (z, y), "twice": [y, y], "name": "y:0", "variable": v,
               "op": fc.assign_add(v, fc.reduce_sum(x, axis=0)).op}[fetch]
    data = rng.random((4, 3), dtype=np.float32)
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        expected = sess.run(fetches, {x: data})
        fast_only(sess)
        got = sess.run(fetches, {x: data})
        if fetch == "twice":
            assert got[0] is got[1]
        if fetch == "op":  # the update ran twice, the second time fast
            np.testing.assert_allclose(sess._values[v.op], 1 + 2 * data.sum(axis=0), rtol=1e-6)
    assert type(got) is type(expected)
    for e, a in zip(expected if isinstance(expected, (list, tuple)) else [expected],
                    got if isinstance(got, (list, tuple)) else [got]):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("kind", ["float64", "list", "non-contiguous", "big-endian", "read-only", "new batch"])
def test_feeds_it_does_not_take_go_the_python_way(g, rng, kind) -> None:
    x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
    y = x * 3.0
    base = rng.random((6, 8), dtype=np.float32)
    data = {"float64": base[:, :4].astype(np.float64), "list": base[:, :4].tolist(), "non-contiguous": base[:, ::2],
            "big-endian": base[:, :4].astype(">f4"), "read-only": base[:, :4].copy(), "new batch": base[:3, :4].copy()}[kind]
    if kind == "read-only":
        data.setflags(write=False)
    with fc.Session(graph=g) as sess:
        sess.run(y, {x: np.ascontiguousarray(base[:, :4])})
        out = sess.run(y, {x: data})
        np.testing.assert_array_equal(out, np.asarray(data, np.float32) * 3)
        if kind == "new batch":  # the plan's FastRun learns the new shapes
            assert sess._fast[fast_run.module().key(y, {x: data})].layouts == 2
            fast_only(sess)
            np.testing.assert_array_equal(sess.run(y, {x: data}), np.asarray(data) * 3)
        if kind == "read-only":  # fed arrays are never written: a read-only one runs fast
            fast_only(sess)
            np.testing.assert_array_equal(sess.run(y, {x: data}), data * 3)


def test_an_int64_of_another_type_number_runs_fast(g) -> None:
    i = fc.placeholder(fc.int64, shape=[None], name="i")
    doubled = i * 2
    with fc.Session(graph=g) as sess:
        sess.run(doubled, {i: np.arange(3)})
        fast_only(sess)
        out = sess.run(doubled, {i: np.arange(3, dtype=np.longlong)})  # == int64, another type number
    np.testing.assert_array_equal(out, [0, 2, 4])


def test_bad_feeds_after_fast_runs_get_the_same_errors(g) -> None:
    x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
    y = x * 3.0
    with fc.Session(graph=g) as sess:
        for _ in range(3):
            sess.run(y, {x: np.ones((2, 4), np.float32)})
        with pytest.raises(FeedError, match="shape"):
            sess.run(y, {x: np.ones((2, 5), np.float32)})
        with pytest.raises(FeedError):
            sess.run(y, {x: np.ones((2, 4), np.complex64)})
        with pytest.raises(FlowcError, match="needs a value fed"):
            sess.run(y, {})
    with pytest.raises(FlowcError, match="closed"):
        sess.run(y, {x: np.ones((2, 4), np.float32)})


def test_run_time_errors_raise_and_leave_the_run_usable(g) -> None:
    params = fc.placeholder(fc.float32, shape=[None, 2], name="params")
    i = fc.placeholder(fc.int32, shape=[None], name="i")
    picked = fc.gather(params, i)
    data = np.arange(6, dtype=np.float32).reshape(3, 2)
    with fc.Session(graph=g) as sess:
        sess.run(picked, {params: data, i: np.array([2, 0], np.int32)})
        fast_only(sess)
        for _ in range(2):  # the layout's lock was released: the second error is raised the same way
            with pytest.raises(IndexOutOfRange, match=r"index 3 is out of range \[0, 3\)"):
                sess.run(picked, {params: data, i: np.array([0, 3], np.int32)})
        np.testing.assert_array_equal(sess.run(picked, {params: data, i: np.array([1, 1], np.int32)}), data[[1, 1]])


def test_big_results_come_from_the_caching_allocator(g, rng) -> None:
    x = fc.placeholder(fc.float32, shape=[None, 256], name="x")
    y = fc.exp(x) - 1.0  # 256 x 256 float32: 256 KB, above np.empty's share
    data = rng.random((256, 256), dtype=np.float32)
    with fc.Session(graph=g) as sess:
        sess.run(y, {x: data})
        fast_only(sess)
        outs = [sess.run(y, {x: data}) for _ in range(3)]
    assert outs[0].ctypes.data % 64 == 0 and len({o.ctypes.data for o in outs}) == 3
    np.testing.assert_allclose(outs[2], np.expm1(data), rtol=1e-6, atol=1e-6)


def test_runs_from_two_threads_at_once(g, rng) -> None:
    x = fc.placeholder(fc.float32, shape=[None, 64], name="x")
    y = fc.reduce_sum(fc.tanh(x) * 2.0, axis=1)
    feeds = [rng.random((512, 64), dtype=np.float32) for _ in range(2)]
    expected = [np.sum(np.tanh(f) * 2.0, axis=1) for f in feeds]
    failures = []
    with fc.Session(graph=g) as sess:
        sess.run(y, {x: feeds[0]})

        def loop(k: int) -> None:
            for _ in range(200):
                out = sess.run(y, {x: feeds[k]})
                if not np.allclose(out, expected[k], rtol=1e-5):
                    failures.append(k)
                    return

        threads = [threading.Thread(target=loop, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not failures


def test_plans_that_store_updates_keep_the_python_path(g) -> None:
    x = fc.placeholder(fc.float32, shape=[3], name="x")
    v = fc.Variable(np.zeros(3, np.float32), name="v")
    write = fc.assign(v, x * 2.0)  # v's old value is not read: no buffer to write into
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        for k in range(3):
            sess.run(write, {x: np.full(3, k, np.float32)})
            np.testing.assert_array_equal(sess.run(v), np.full(3, 2.0 * k, np.float32))
        stores = [plan for plan in sess._plans.values() if plan.compiled.signature.updates]
        assert stores and all(plan.fast_layouts == -1 for plan in stores)


def test_random_ops_count_runs_as_the_python_path_does(monkeypatch) -> None:
    draws = {}
    for switch in ("0", "1"):
        monkeypatch.setenv("FLOWC_FAST_RUN", switch)
        g = fc.Graph()
        with g.as_default():
            x = fc.placeholder(fc.float32, shape=[None], name="x")
            r = x * fc.random_uniform([4], seed=3)
            plain = x + 1.0  # runs between the random ones leave their count alone
        with fc.Session(graph=g) as sess:
            ones = np.ones(4, np.float32)
            draws[switch] = [sess.run(r, {x: ones}) for _ in range(2)] + [sess.run(plain, {x: ones})]
            if switch == "1":
                fast_only(sess)
            draws[switch] += [sess.run(r, {x: ones}) for _ in range(2)]
            assert int(sess._step) == 4
    for python, fast in zip(draws["0"], draws["1"]):
        np.testing.assert_array_equal(python, fast)
    assert len({d.tobytes() for d in draws["1"]}) == 5


def test_fast_run_refuses_bad_descriptions() -> None:
    FastRun = fast_run.module().FastRun
    ok = (1, (7,), (), {}, (np.dtype(np.float32).num,), (1,), (np.dtype(np.float32),), (0,), (-1,), 1, 0, (0,), 0,
          print, print, None, object(), ())
    FastRun(*ok)
    for position, bad in [(0, 0), (8, (5,)), (6, ("f4",)), (11, (3,)), (12, 7), (8, (-1, -1)), (5, (40,)),
                          (8, (0,)),  # a rank-0 result written into a rank-1 argument
                          (15, np.zeros(1, np.int64)), (15, np.zeros((), np.int32)),  # counters of another shape or type
                          (16, None),  # nothing to keep the code loaded
                          (17, [threading.Lock()]), (17, (object(),))]:  # locks: a tuple of things with acquire
        args = list(ok)
        args[position] = bad
        with pytest.raises((ValueError, TypeError)):
            FastRun(*args)
    fast = FastRun(*ok)
    with pytest.raises(ValueError):
        fast.add_layout(None, ((4,),), ((),), (True,), 0, 0, 0, threading.Lock())  # null buffers
    with pytest.raises(ValueError):
        fast.add_layout(None, ((4,),), ((2, 3),), (True,), 8, 8, 0, threading.Lock())  # a shape of another rank
    with pytest.raises(ValueError):
        fast.add_layout(None, ((-4,),), ((),), (True,), 8, 8, 0, threading.Lock())  # a negative dim


FEED_FORMS = ["fits", "float64", "list", "strided", "fortran", "read-only"]


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.sampled_from([1, 3, 8, 64]), st.sampled_from(FEED_FORMS)), min_size=4, max_size=12))
def test_any_sequence_of_runs_matches_numpy(runs) -> None:
    """Runs of one plan with batch sizes and feed forms in any order: the fast run, the Python path
    and the switches between them (new layouts, fall-backs) all give numpy's answer."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 5], name="x")
        v = fc.Variable(np.zeros(5, np.float32), name="v")
        total = fc.reduce_sum(fc.exp(x) * 0.5, axis=1)
        step = fc.assign_add(v, fc.reduce_mean(x, axis=0))
    rng = np.random.default_rng(0)
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        expected_v = np.zeros(5, np.float32)
        for batch, form in runs:
            data = rng.random((batch, 5), dtype=np.float32)
            fed = {"fits": data, "float64": data.astype(np.float64), "list": data.tolist(),
                   "strided": np.repeat(data, 2, axis=1)[:, ::2], "fortran": np.asfortranarray(data),
                   "read-only": data.copy()}[form]
            if form == "read-only":
                fed.setflags(write=False)
            got, _ = sess.run([total, step], {x: fed})
            expected_v += data.mean(axis=0)
            np.testing.assert_allclose(got, (np.exp(data) * 0.5).sum(axis=1), rtol=2e-6)
            np.testing.assert_allclose(sess.run(v), expected_v, rtol=1e-5)
