"""Threads sharing a Session: updates made with use_locking=True are never lost (Note [use_locking] in
compiler/session.py), on the Python path and the fast run alike; runs that only read are not blocked."""

import threading
import time

import numpy as np
import pytest

import flowc as fc
from flowc.lowering import lower


def in_threads(count: int, body) -> None:
    """Run body(k) in `count` threads at once; re-raise the first failure."""
    errors = []
    start = threading.Barrier(count)

    def run(k: int) -> None:
        try:
            start.wait()
            body(k)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("target", ["cpu", "reference"])
@pytest.mark.parametrize("fast", ["1", "0"])
def test_locked_increments_from_four_threads_all_count(target, fast, monkeypatch):
    monkeypatch.setenv("FLOWC_FAST_RUN", fast)
    g = fc.Graph()
    with g.as_default():
        v = fc.Variable(np.int64(0))
        bump = fc.assign_add(v, 1, use_locking=True)
    with fc.Session(target, graph=g) as sess:
        sess.run(v.initializer)
        in_threads(4, lambda _: [sess.run(bump) for _ in range(200)])
        assert sess.run(v) == 800


@pytest.mark.parametrize("make", [
    lambda: fc.train.GradientDescentOptimizer(0.01, use_locking=True),
    lambda: fc.train.MomentumOptimizer(0.01, 0.9, use_locking=True, use_nesterov=True),
    lambda: fc.train.AdamOptimizer(0.01, use_locking=True),
], ids=["sgd", "nesterov", "adam"])
def test_locked_training_in_threads_equals_as_many_sequential_steps(make):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
        w = fc.Variable(np.float32([[0.5], [-1.0], [2.0]]), name="w")
        loss = fc.reduce_mean(fc.square(fc.matmul(x, w) - 1.0))
        global_step = fc.Variable(np.int32(0), trainable=False, name="step")
        step = make().minimize(loss, global_step=global_step)
        init = fc.global_variables_initializer()
        variables = fc.global_variables()  # w, the step, and the optimizer's slots and powers
    data = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    finals = []
    for threads in (1, 4):  # each step's update is a function of the variables alone: order does not matter
        with fc.Session(graph=g) as sess:
            sess.run(init)
            in_threads(threads, lambda _: [sess.run(step, {x: data}) for _ in range(240 // threads)])
            finals.append(sess.run(variables))
            assert sess.run(global_step) == 240
    assert len(finals[0]) >= 2
    for sequential, threaded in zip(*finals):
        np.testing.assert_array_equal(threaded, sequential)


def test_the_lock_is_recorded_on_the_op_and_reaches_the_plan():
    g = fc.Graph()
    with g.as_default():
        a, b = fc.Variable(1.0, name="a"), fc.Variable(2.0, name="b")
        free = fc.assign_add(b, 1.0)
        both = fc.group(b.assign_sub(1.0, use_locking=True), fc.assign(a, b * 2.0, use_locking=True))
        restored = fc.import_graph_def(g.as_graph_def(), name="copy", return_elements=["AssignSub"])[0]
    assert free.op.attrs["use_locking"] is False and restored.attrs["use_locking"] is True
    assert lower(g, [], [both], []).signature.locked == (a.op, b.op)  # creation order: the order locks are taken
    assert lower(g, [], [free.op], []).signature.locked == ()
    with fc.Session(graph=g) as sess:
        sess.run([a.initializer, b.initializer])
        sess.run(both), sess.run(free), sess.run(b)
        locks = sorted(len(plan.locks) for plan in sess._plans.values())
    assert locks == [0, 0, 0, 2]  # the initializers, b += 1 and the read take none


@pytest.mark.parametrize("warm_runs", [0, 3], ids=["python path", "fast run"])
def test_a_locked_update_waits_for_the_lock_and_reads_do_not(warm_runs):
    g = fc.Graph()
    with g.as_default():
        v = fc.Variable(np.float32(0), name="v")
        bump = fc.assign_add(v, 1.0, use_locking=True)
        seen = v + 0.0
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        for _ in range(warm_runs):
            sess.run(bump), sess.run(seen)
        lock = sess._locks.setdefault(v.op, threading.Lock())  # the one its plan will take
        lock.acquire()  # as a run that holds it would
        updater = threading.Thread(target=sess.run, args=(bump,))
        updater.start()
        time.sleep(0.2)
        assert updater.is_alive()  # waiting for the lock
        assert sess.run(seen) == warm_runs  # a read is not blocked
        lock.release()
        updater.join(timeout=60)
        assert not updater.is_alive() and sess.run(v) == warm_runs + 1


def test_plans_locking_the_same_variables_in_other_orders_do_not_deadlock():
    g = fc.Graph()
    with g.as_default():
        a, b = fc.Variable(np.int32(0), name="a"), fc.Variable(np.int32(0), name="b")
        ab = fc.group(fc.assign_add(a, 1, use_locking=True), fc.assign_add(b, 1, use_locking=True))
        ba = fc.group(fc.assign_add(b, 10, use_locking=True), fc.assign_add(a, 10, use_locking=True))
    with fc.Session(graph=g) as sess:
        sess.run([a.initializer, b.initializer])
        in_threads(4, lambda k: [sess.run(ab if k % 2 else ba) for _ in range(150)])
        assert sess.run([a, b]) == [2 * 150 * 11, 2 * 150 * 11]
