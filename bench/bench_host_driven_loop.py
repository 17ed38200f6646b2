"""A while loop whose value grows, run from the host on the cpu target (Note [loops driven from the
host] in compiler/host_driven.py), beside the same work at one shape compiled into the entry point:
one pinned thread, CPU time, the two alternated run by run, median of the runs.

    taskset -c 0 env OPENBLAS_NUM_THREADS=1 FLOWC_NUM_THREADS=1 .venv/bin/python bench/bench_host_driven_loop.py

Growing: acc = concat(acc, x[:1] * 2) for TURNS turns, acc starting empty. Fixed: a buffer of TURNS
zeros, the element of turn j set to x[0] * 2 (a one-hot product): the same values, one shape.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import flowc as fc

TURNS, REPEATS = 1000, 9


def build() -> tuple[fc.Graph, fc.Tensor, fc.Tensor, dict]:
    g = fc.Graph()
    with g.as_default():
        n = fc.placeholder(fc.int32, [], name="n")
        x = fc.placeholder(fc.float32, [None], name="x")
        z = fc.placeholder(fc.float32, [None], name="z")
        i0, acc0 = fc.constant(0), fc.zeros([0], fc.float32)
        _, grown = fc.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, fc.concat([a, x[:1] * 2.0], 0)),
                                 [i0, acc0], shape_invariants=[i0.shape, fc.TensorShape([None])])
        positions = fc.range(fc.shape(z)[0])

        def set_one(j: fc.Tensor, b: fc.Tensor) -> tuple[fc.Tensor, fc.Tensor]:
            return j + 1, b + fc.cast(fc.equal(positions, j), fc.float32) * x[0] * 2.0

        _, fixed = fc.while_loop(lambda j, b: j < n, set_one, [fc.constant(0), z])
    feeds = {n: TURNS, x: np.ones(3, np.float32), z: np.zeros(TURNS, np.float32)}
    return g, grown, fixed, feeds


def main() -> None:
    g, grown, fixed, feeds = build()
    with fc.Session(graph=g, target="cpu") as session:
        np.testing.assert_array_equal(session.run(grown, feeds), session.run(fixed, feeds))
        times: dict[str, list[float]] = {"growing, from the host": [], "fixed, native": []}
        for _ in range(REPEATS):
            for name, fetch in zip(times, (grown, fixed)):
                started = time.process_time()
                session.run(fetch, feeds)
                times[name].append(time.process_time() - started)
    for name, spent in times.items():
        median = statistics.median(spent)
        print(f"{name:24s} {TURNS} turns: {median * 1e3:8.2f} ms, {median * 1e6 / TURNS:8.2f} us a turn")


if __name__ == "__main__":
    main()
