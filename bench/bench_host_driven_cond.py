"""Conds and a TensorArray run from the host on the cpu target (Note [conds driven from the host] in
compiler/host_driven.py), each beside the same work compiled into one entry point: one pinned thread,
CPU time, the pairs alternated run by run, median of the runs.

    taskset -c 0 env OPENBLAS_NUM_THREADS=1 FLOWC_NUM_THREADS=1 .venv/bin/python bench/bench_host_driven_cond.py

Cond: fc.cond(p, x * 2, concat(x, x)) (from the host) against fc.cond(p, x * 2, x + x) (native), x of
SIZE floats, p false. Array: WRITES writes at run-time indices in a loop, into a dynamic-size array
(each write grows it: from the host) and into one of size WRITES (native).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

import flowc as fc

SIZE, WRITES, RUNS, REPEATS = 1000, 100, 200, 9


def build() -> tuple[fc.Graph, dict[str, tuple[Any, Any]], dict]:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        p = fc.placeholder(fc.bool, [], name="p")
        n = fc.placeholder(fc.int32, [], name="n")
        different = fc.cond(p, lambda: x * 2.0, lambda: fc.concat([x, x], 0))
        equal = fc.cond(p, lambda: x * 2.0, lambda: x + x)

        def written(array: fc.TensorArray) -> fc.Tensor:
            def body(i: fc.Tensor, ta: fc.TensorArray) -> tuple[fc.Tensor, fc.TensorArray]:
                return i + 1, ta.write(i, fc.cast(i, fc.float32) * fc.ones([2]))

            return fc.while_loop(lambda i, ta: i < n, body, [0, array])[1].stack()

        growing = written(fc.TensorArray(fc.float32, size=0, dynamic_size=True, element_shape=[2]))
        fixed = written(fc.TensorArray(fc.float32, size=WRITES, element_shape=[2]))
    pairs = {"cond": (different, equal), "array": (growing, fixed)}
    feeds = {x: np.ones(SIZE, np.float32), p: False, n: WRITES}
    return g, pairs, feeds


def main() -> None:
    g, pairs, feeds = build()
    with fc.Session(graph=g, target="cpu") as session:
        for name, (host, native) in pairs.items():
            runs = RUNS if name == "cond" else 1
            times: list[list[float]] = [[], []]
            for _ in range(REPEATS):
                for spent, fetch in zip(times, (host, native)):
                    session.run(fetch, feeds)  # compiled, and laid out for these shapes
                    started = time.process_time()
                    for _ in range(runs):
                        session.run(fetch, feeds)
                    spent.append((time.process_time() - started) / runs)
            host_time, native_time = (statistics.median(spent) * 1e6 for spent in times)
            print(f"{name:6s} from the host {host_time:10.1f} us a run, native {native_time:8.1f} us a run")


if __name__ == "__main__":
    main()
