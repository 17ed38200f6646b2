"""boolean_mask on the cpu target against numpy's x[m] (Note [data-dependent sizes] in
compiler/data_sized_run.py): one pinned thread, CPU time, the two alternated run by run.

    taskset -c 0 env OPENBLAS_NUM_THREADS=1 FLOWC_NUM_THREADS=1 .venv/bin/python bench/bench_boolean_mask.py

Cases: x [100000, 16] float32 with the mask fed (half true); the same with the mask computed in the
graph (rows whose sum is positive); and the fed mask with a new count every run (each a new layout
of the segment after the cut), beside the same count every run.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import flowc as fc

ROWS, COLUMNS, REPEATS = 100_000, 16, 41


def timed(fn) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def compare(name: str, numpy_fn, flowc_fn) -> None:
    numpy_fn(), flowc_fn()  # warm: compile, first layout
    numpy_times, flowc_times = [], []
    for _ in range(REPEATS):
        numpy_times.append(timed(numpy_fn))
        flowc_times.append(timed(flowc_fn))
    n, f = statistics.median(numpy_times) * 1e3, statistics.median(flowc_times) * 1e3
    print(f"{name:44s} numpy {n:7.3f} ms   flowc cpu {f:7.3f} ms   flowc/numpy {f / n:5.2f}")


def main() -> None:
    rng = np.random.default_rng(0)
    x_value = rng.standard_normal((ROWS, COLUMNS), dtype=np.float32)
    mask_value = rng.random(ROWS) < 0.5
    masks = [rng.random(ROWS) < 0.5 for _ in range(REPEATS + 1)]  # a new count (almost surely) each run
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, COLUMNS])
        m = fc.placeholder(fc.bool, [None])
        fed = fc.boolean_mask(x, m)
        computed = fc.boolean_mask(x, fc.reduce_sum(x, 1) > 0)
    with fc.Session(target="cpu", graph=g) as sess:
        np.testing.assert_array_equal(sess.run(fed, {x: x_value, m: mask_value}), x_value[mask_value])
        compare("boolean_mask, mask fed, half true", lambda: x_value[mask_value],
                lambda: sess.run(fed, {x: x_value, m: mask_value}))
        compare("boolean_mask, mask = sum(x, 1) > 0", lambda: x_value[x_value.sum(1) > 0],
                lambda: sess.run(computed, {x: x_value}))
        turn = iter(range(10 ** 9))
        compare("boolean_mask, mask fed, a new count each run", lambda: x_value[masks[next(turn) % len(masks)]],
                lambda: sess.run(fed, {x: x_value, m: masks[next(turn) % len(masks)]}))


if __name__ == "__main__":
    main()
