"""Cold compile time against graph size (issue 16, part 5).

    .venv/bin/python bench/bench_compile.py [--max-n N] [--max-t T] [--repeats R] [--profile WORKLOAD:SIZE] [--write]

Workloads:
- chain N: N elementwise ops (tanh, sigmoid, a multiply and an add by constants, in turn) on a
  [None, 64] float32 placeholder, then reduce_mean, with its gradient w.r.t. the placeholder.
- rnn T: a tanh RNN (input 32, hidden 64, batch None) unrolled over T steps, its mean squared
  output minimized by AdamOptimizer.
Each figure is the first Session.run of a fresh process with an empty FLOWC_CACHE_DIR (the median
of --repeats such processes), split into phases: graph to IR (lowering), the shared pass pipeline
(autodiff first), fusion, the memory plan and schedule, LLVM (emit, optimize, object code, link),
and the rest (mostly the first run's arena layout). `--profile chain:1000`
runs one compile under cProfile instead and prints the top functions by cumulative time.
--write replaces the "Compile time" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_native import machine, write_section  # noqa: E402

CHAIN_SIZES = (250, 1000, 3000, 10000)
RNN_STEPS = (16, 32, 64, 128)
PHASES = ("graph", "passes", "fuse", "plan", "llvm", "rest")


def chain_graph(n: int):  # type: ignore[no-untyped-def]
    import numpy as np

    import flowc as fc

    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 64], name="x")
        y = x
        for i in range(n):
            step = i % 4
            if step == 0:
                y = fc.tanh(y)
            elif step == 1:
                y = y * (1.0 + 0.001 * i)
            elif step == 2:
                y = fc.sigmoid(y)
            else:
                y = y + x
        loss = fc.reduce_mean(y)
        (grad,) = fc.gradients(loss, [x])
    feeds = {x: np.ones((4, 64), np.float32)}
    return g, [loss, grad], feeds, None


def rnn_graph(steps: int):  # type: ignore[no-untyped-def]
    import numpy as np

    import flowc as fc

    rng = np.random.default_rng(0)
    g = fc.Graph()
    with g.as_default():
        xs = fc.placeholder(fc.float32, shape=[steps, None, 32], name="xs")
        w_in = fc.Variable((rng.standard_normal((32, 64)) * 0.1).astype(np.float32), name="w_in")
        w_h = fc.Variable((rng.standard_normal((64, 64)) * 0.1).astype(np.float32), name="w_h")
        bias = fc.Variable(np.zeros(64, np.float32), name="b")
        h = fc.tanh(fc.matmul(xs[0], w_in) + bias)  # the first step: no previous state
        outputs = [h]
        for t in range(1, steps):
            h = fc.tanh(fc.matmul(xs[t], w_in) + fc.matmul(h, w_h) + bias)
            outputs.append(h)
        loss = fc.reduce_mean(fc.square(fc.stack(outputs)))
        train = fc.train.AdamOptimizer(0.01).minimize(loss)
        init = fc.global_variables_initializer()
    feeds = {xs: rng.standard_normal((steps, 4, 32)).astype(np.float32)}
    return g, [loss, train], feeds, init


def measure(workload: str, size: int) -> dict[str, float]:
    """In this (fresh) process: build the graph, then time its first Session.run by phase."""
    import time

    import flowc as fc
    from flowc.codegen.llvm import compile as llvm_compile

    g, fetches, feeds, init = (chain_graph if workload == "chain" else rnn_graph)(size)
    sess = fc.Session(target="cpu", graph=g)
    if init is not None:
        sess.run(init)
    times = dict.fromkeys(PHASES, 0.0)
    _instrument(times)
    started = time.perf_counter()
    sess.run(fetches, feeds)
    times["total"] = time.perf_counter() - started
    times["passes"] -= times["fuse"] + times["plan"] + times["llvm"]  # the shared pipeline, autodiff first
    times["rest"] = times["total"] - sum(times[p] for p in PHASES if p != "rest")
    times["kernels"] = float(llvm_compile.last_build.modules)
    return times


def _instrument(times: dict[str, float]) -> None:
    """Wrap the compile's phases (module attributes, looked up at call time) with timers."""
    import time

    from flowc import session
    from flowc.passes import fusion, memory, schedule
    from flowc.targets import cpu, separate_products

    def timed(owner, name: str, phase: str) -> None:  # type: ignore[no-untyped-def]
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                times[phase] += time.perf_counter() - started

        setattr(owner, name, wrapper)

    timed(session, "lower", "graph")
    timed(session, "compile_lowered", "passes")  # less the phases below, after the run (measure)
    timed(fusion.Fuse, "run", "fuse")
    timed(memory.MaterializeResults, "run", "plan")
    timed(separate_products.SeparateProducts, "run", "plan")
    timed(schedule.Schedule, "run", "plan")
    timed(memory.PlanMemory, "run", "plan")
    timed(cpu, "plan_program", "plan")
    timed(cpu, "_compile", "llvm")


def one_process(workload: str, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="flowc-bench-compile-") as folder:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "FLOWC_VERIFY")}
        env["FLOWC_CACHE_DIR"] = folder
        # The builds made once per machine (support library, fast run extension) are not the graph's compile.
        warm = "from flowc.runtime import fast_run, support_library; support_library(); fast_run.module()"
        subprocess.run([sys.executable, "-c", warm], env=env, check=True)
        out = subprocess.check_output([sys.executable, __file__, "--child", f"{workload}:{size}"], env=env)
    return json.loads(out.decode().strip().splitlines()[-1])


def profile(workload: str, size: int) -> None:
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory(prefix="flowc-bench-compile-") as folder:
        os.environ["FLOWC_CACHE_DIR"] = folder
        profiler = cProfile.Profile()
        profiler.enable()
        result = measure(workload, size)
        profiler.disable()
    print(json.dumps(result))
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def run_all(max_n: int, max_t: int, repeats: int) -> list[tuple[str, int, dict[str, float]]]:
    rows = []
    for workload, sizes in (("chain", CHAIN_SIZES), ("rnn", RNN_STEPS)):
        for size in sizes:
            if size > (max_n if workload == "chain" else max_t):
                continue
            samples = [one_process(workload, size) for _ in range(repeats if size <= 3000 else 1)]
            median = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
            rows.append((workload, size, median))
            print(format_row(workload, size, median), flush=True)
    return rows


def format_row(workload: str, size: int, t: dict[str, float]) -> str:
    phases = " | ".join(f"{t[p]:.2f}" for p in PHASES)
    return f"| {workload} {size} | {t['total']:.2f} | {phases} | {int(t['kernels'])} |"


def format_report(rows: list[tuple[str, int, dict[str, float]]], repeats: int, command: str) -> str:
    lines = [f"Machine: {machine()}. Command: `{command}`.",
             f"First Session.run of a new process, empty disk cache; median of {repeats} processes "
             "(1 above N = 3000), seconds.",
             "",
             "| workload | total | " + " | ".join(PHASES) + " | LLVM modules |",
             "|---" * (len(PHASES) + 3) + "|"]
    lines += [format_row(*row) for row in rows]
    chain = {size: t["total"] for workload, size, t in rows if workload == "chain"}
    if 1000 in chain and max(chain) > 1000:
        top = max(chain)
        lines += ["", f"chain: N = {top} takes {chain[top] / chain[1000]:.1f}x the time of N = 1000 "
                      f"({top / 1000:.0f}x the ops)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-n", type=int, default=max(CHAIN_SIZES))
    parser.add_argument("--max-t", type=int, default=max(RNN_STEPS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", help="WORKLOAD:SIZE, one compile under cProfile")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workload, size = args.child.split(":")
        print(json.dumps(measure(workload, int(size))))
        return
    if args.profile:
        workload, size = args.profile.split(":")
        profile(workload, int(size))
        return
    rows = run_all(args.max_n, args.max_t, args.repeats)
    command = "python bench/bench_compile.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in (("max_n", args.max_n), ("max_t", args.max_t))
        if v != parser.get_default(k))
    report = format_report(rows, args.repeats, command)
    print()
    print(report)
    if args.write:
        write_section(report, "## Compile time")


if __name__ == "__main__":
    main()
