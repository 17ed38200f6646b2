"""Note [small products on one thread] (runtime/native/flowc_rt.c): a BLAS product of fewer than
2^21 multiply-adds runs OpenBLAS on one thread, with no gang on the pool, even with two threads (in
a loop run by a gang, OpenBLAS runs on one thread throughout); a larger one still runs as gangs. Values against numpy, in a child with its own thread count."""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import ctypes, numpy as np, flowc as fc
from flowc.codegen.llvm.blas import blas_library
from flowc.runtime import support
gangs = support().flowc_gangs_run
gangs.restype = ctypes.c_int64
rng = np.random.default_rng(0)
steps, batch, hidden = 20, 32, 128
xs = rng.standard_normal((steps, batch, hidden)).astype(np.float32)
w = (rng.standard_normal((hidden, hidden)) * 0.1).astype(np.float32)
big = rng.standard_normal((384, 384)).astype(np.float32)
g = fc.Graph()
with g.as_default():
    x = fc.placeholder(fc.float32, [steps, batch, hidden], name="xs")
    h0 = fc.placeholder(fc.float32, [batch, hidden], name="h0")
    wh = fc.placeholder(fc.float32, [hidden, hidden], name="wh")
    step = lambda t, h: (t + 1, fc.tanh(fc.gather(x, t) + fc.matmul(h, wh)))
    _, h = fc.while_loop(lambda t, h: t < steps, step, [fc.constant(0), h0])
    dwh, = fc.gradients(fc.reduce_sum(h), [wh])
    a = fc.placeholder(fc.float32, [None, 384], name="a")
    wide = fc.matmul(a, fc.constant(big))
with fc.Session(graph=g) as sess:
    feeds = {x: xs, h0: np.zeros((batch, hidden), np.float32), wh: w}
    sess.run([h, dwh], feeds)  # compiled, OpenBLAS loaded and adopted
    before = gangs()
    got, got_dwh = sess.run([h, dwh], feeds)
    print(gangs() - before, end=" ")
    blas = ctypes.CDLL(blas_library())
    print(blas.scipy_openblas_get_num_threads(), end=" ")  # put back after each small product
    states = [np.zeros((batch, hidden), np.float32)]
    for t in range(steps):
        states.append(np.tanh(xs[t] + states[-1] @ w))
    want_dwh, dh = np.zeros_like(w), np.ones_like(states[0])
    for t in reversed(range(steps)):
        dpre = dh * (1 - states[t + 1] ** 2)
        want_dwh += states[t].T @ dpre
        dh = dpre @ w.T
    np.testing.assert_allclose(got, states[-1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_dwh, want_dwh, rtol=1e-3, atol=1e-3)
    before = gangs()
    np.testing.assert_allclose(sess.run(wide, {a: big}), big @ big, rtol=1e-4, atol=1e-3)
    print(gangs() > before)
"""


def test_small_products_in_a_loop_run_no_gang_large_ones_do(tmp_path) -> None:
    env = {**os.environ, "FLOWC_CACHE_DIR": str(tmp_path), "FLOWC_NUM_THREADS": "2"}
    output = subprocess.check_output([sys.executable, "-c", CHILD], env=env, text=True).split()
    # At most three gangs: the forward loop and the gradient's, each run whole by one (Note [loops run by a
    # gang] in passes/gang_loops.py; fewer where a loaded machine made them run alone), and dWh's product of
    # all 640 rows after the gradient's loop (Note [accumulated products after the loop]), a large one; not
    # one per product.
    assert int(output[0]) <= 3 and output[1:] == ["2", "True"]


THREADS_CHILD = """
import threading, numpy as np, flowc as fc
rng = np.random.default_rng(1)
small_w, big_w = rng.standard_normal((128, 128)).astype(np.float32), rng.standard_normal((384, 384)).astype(np.float32)
g = fc.Graph()
with g.as_default():
    a = fc.placeholder(fc.float32, [None, 128], name="a")
    small = fc.tanh(fc.matmul(a, fc.constant(small_w)))
    c = fc.placeholder(fc.float32, [None, 384], name="c")
    big = fc.matmul(c, fc.constant(big_w)) + 1.0
inputs = {small: rng.standard_normal((32, 128)).astype(np.float32), big: rng.standard_normal((384, 384)).astype(np.float32)}
wants = {small: np.tanh(inputs[small] @ small_w), big: inputs[big] @ big_w + 1}
feed = {small: a, big: c}
failures = []
def work(fetch):
    sess = fc.Session(graph=g)  # a session each: runs of one session may wait for each other
    for _ in range(60):
        got = sess.run(fetch, {feed[fetch]: inputs[fetch]})
        if not np.allclose(got, wants[fetch], rtol=1e-4, atol=1e-3):
            failures.append(fetch)
threads = [threading.Thread(target=work, args=(f,)) for f in (small, big, small, big)]
for t in threads: t.start()
for t in threads: t.join()
print(len(failures))
"""


def test_small_and_large_products_from_several_threads_at_once(tmp_path) -> None:
    # Four threads, four sessions. The bracket lowers OpenBLAS's global thread count while other threads' products may be
    # running or starting as gangs: every result must still be right.
    env = {**os.environ, "FLOWC_CACHE_DIR": str(tmp_path), "FLOWC_NUM_THREADS": "2"}
    assert subprocess.check_output([sys.executable, "-c", THREADS_CHILD], env=env, text=True).split() == ["0"]
