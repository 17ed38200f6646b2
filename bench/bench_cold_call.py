"""The first call from a cold cache, flowc against jax.jit in a Python of its own (issue 18).

    .venv/bin/python bench/bench_cold_call.py [--runs R] [--jax-python /tmp/jaxenv/bin/python]

bench_jit.py's first calls (the MLP forward, the softmax-regression step), each in a fresh process: flowc
with an empty FLOWC_CACHE_DIR (after bench_jit's once-per-machine builds), jax with its compilation cache
off, on the CPU. jax runs from its own environment (`python3 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip
install jax jaxlib numpy`): it is no dependency of flowc's. The peers take turns, run after run, so that
a shared machine's load falls on both alike. Per figure: the median over the runs of the call's wall
time and of its CPU time (the process's threads and children, bench_jit's imports excluded). On a busy
machine the wall time favours a compiler that runs several threads; the CPU time does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = ("mlp", "softmax_step")
# bench_jit.first_calls's warm-up: the builds made once per machine, the bytecode of the compile's modules.
WARM = ("from flowc.runtime import fast_run, support_library; support_library(); fast_run.module()\n"
        "import flowc.codegen.llvm.compile, flowc.codegen.llvm.module, flowc.codegen.llvm.kernels")


def measure(workload: str, peer: str) -> None:
    """In this fresh process: print the first call's wall and CPU seconds."""
    sys.path.insert(0, HERE)
    import bench_jit

    __import__("jax" if peer == "jax" else "flowc")
    before = _cpu_seconds()
    wall = bench_jit.first_call(workload, peer)
    print(wall, _cpu_seconds() - before)


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--jax-python", default="/tmp/jaxenv/bin/python")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    # Bytecode caching on, as where flowc is installed (bench_native.cold_and_cached says why).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(JAX_PLATFORMS="cpu", JAX_ENABLE_COMPILATION_CACHE="false")
    peers = {"flowc_jit": sys.executable, "jax": args.jax_python}
    if not os.path.exists(args.jax_python):
        del peers["jax"]
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.runs):
        for workload in WORKLOADS:
            for peer, python in peers.items():
                with tempfile.TemporaryDirectory() as cache:
                    env["FLOWC_CACHE_DIR"] = cache
                    if peer != "jax":
                        subprocess.run([python, "-c", WARM], env=env, check=True)
                    out = subprocess.check_output([python, __file__, "--measure", workload, peer], env=env)
                wall, cpu = map(float, out.decode().split()[-2:])
                figures.setdefault((peer, workload), []).append((wall, cpu))
    print(f"Command: `.venv/bin/python bench/bench_cold_call.py --runs {args.runs}`; load average at the end: "
          f"{os.getloadavg()[0]:.1f}" + ("" if "jax" in peers else f"; jax: no {args.jax_python}, not measured"))
    print("\n| first call, cold | peer | wall, median (min - max) | CPU, median |\n|---|---|---|---|")
    for (peer, workload), runs in figures.items():
        walls, cpus = [w * 1e3 for w, _ in runs], [c * 1e3 for _, c in runs]
        print(f"| {workload} | {peer} | {statistics.median(walls):.0f} ms ({min(walls):.0f} - {max(walls):.0f}) | "
              f"{statistics.median(cpus):.0f} ms |")


if __name__ == "__main__":
    main()
