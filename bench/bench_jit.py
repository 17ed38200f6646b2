"""@fc.jit: the cost of a call after the first, and of the first call from a cold cache (issue 18).

    .venv/bin/python bench/bench_jit.py [--rounds R] [--processes P]

- call 4: `x * 2 + 1` on 4 float32 elements, per call: fc.jit, the same graph's Session.run (the
  fast run), numpy itself, and jax.jit when installed. The median of 200 samples of 100 calls.
- first call: a fresh process with an empty FLOWC_CACHE_DIR traces and compiles (a) a jitted MLP
  forward (784-512-512-10, batch 256) and (b) the softmax-regression training step of
  examples/softmax_regression.py (64 features, 10 classes, batch 100; loss and updated parameters
  from fc.value_and_grad, the parameters donated); flowc's Session runs (b) as the example builds
  it (its first sess.run([loss, train]) after the initializer), and jax.jit runs both when
  installed. Also each from the disk cache (a second process). The median of --processes processes.
Each peer runs in its own processes, taking turns, the best of --rounds rounds kept (bench_native.py
says why). Nothing is written to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_native import machine, peer_available  # noqa: E402

FIRST = ("mlp", "softmax_step")


# -- one call on 4 elements -------------------------------------------------------------------


def call_fn(peer: str):  # type: ignore[no-untyped-def]
    x = np.arange(4, dtype=np.float32)
    if peer == "numpy":
        return lambda: x * np.float32(2) + np.float32(1)
    if peer == "jax":
        import jax

        jitted = jax.jit(lambda x: x * 2 + 1)
        return lambda: jitted(x).block_until_ready()
    import flowc as fc

    if peer == "flowc_session":
        g = fc.Graph()
        with g.as_default():
            p = fc.placeholder(fc.float32, shape=[None], name="x")
            y = p * 2.0 + 1.0
        sess = fc.Session(graph=g)
        feeds = {p: x}
        return lambda: sess.run(y, feeds)
    jitted = fc.jit(lambda x: x * 2.0 + 1.0)
    return lambda: jitted(x)


def time_call(fn, samples: int = 200, batch: int = 100) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while time.perf_counter() - start < 0.3:  # warm up (bench_native.time_it says why)
        fn()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


# -- the first call ---------------------------------------------------------------------------


def mlp_data() -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(0)
    params = {"w1": rng.standard_normal((784, 512), dtype=np.float32) * 0.05,
              "w2": rng.standard_normal((512, 512), dtype=np.float32) * 0.05,
              "w3": rng.standard_normal((512, 10), dtype=np.float32) * 0.05,
              "b": rng.standard_normal((512,), dtype=np.float32)}
    return params, rng.standard_normal((256, 784), dtype=np.float32)


def softmax_data() -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    params = {"W": (rng.standard_normal((64, 10)) * 0.01).astype(np.float32), "b": np.zeros(10, np.float32)}
    return params, rng.random((100, 64), dtype=np.float32), rng.integers(0, 10, 100).astype(np.int32)


def first_call(workload: str, peer: str) -> float:
    """Seconds of the first call of `workload` on `peer`, in this (fresh) process."""
    if peer == "jax":
        return first_call_jax(workload)
    import flowc as fc

    if workload == "mlp":
        params, x = mlp_data()

        @fc.jit
        def mlp(params, x):
            h = fc.relu(fc.matmul(x, params["w1"]) + params["b"])
            h = fc.relu(fc.matmul(h, params["w2"]) + params["b"])
            return fc.matmul(h, params["w3"])

        start = time.perf_counter()
        mlp(params, x)
        return time.perf_counter() - start
    params, x, y = softmax_data()
    if peer == "flowc_session":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
        from softmax_regression import build_model

        m = build_model(0.5)
        with fc.Session(graph=m["graph"]) as sess:
            sess.run(m["init"])
            start = time.perf_counter()
            sess.run([m["loss"], m["train"]], {m["x"]: x, m["y"]: y})
            return time.perf_counter() - start

    def loss_fn(params, x, y):
        logits = fc.matmul(x, params["W"]) + params["b"]
        return fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    @fc.jit(donate_argnums=0)
    def step(params, x, y):
        loss, grads = fc.value_and_grad(loss_fn)(params, x, y)
        return loss, {k: params[k] - 0.5 * grads[k] for k in params}

    start = time.perf_counter()
    step(params, x, y)
    return time.perf_counter() - start


def first_call_jax(workload: str) -> float:
    import jax
    import jax.numpy as jnp

    if workload == "mlp":
        params, x = mlp_data()

        @jax.jit
        def mlp(params, x):  # type: ignore[no-untyped-def]
            h = jax.nn.relu(x @ params["w1"] + params["b"])
            h = jax.nn.relu(h @ params["w2"] + params["b"])
            return h @ params["w3"]

        start = time.perf_counter()
        mlp(params, x).block_until_ready()
        return time.perf_counter() - start
    params, x, y = softmax_data()

    def loss_fn(params, x, y):  # type: ignore[no-untyped-def]
        logits = x @ params["W"] + params["b"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    @jax.jit
    def step(params, x, y):  # type: ignore[no-untyped-def]
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return loss, {k: params[k] - 0.5 * grads[k] for k in params}

    start = time.perf_counter()
    jax.block_until_ready(step(params, x, y))
    return time.perf_counter() - start


def first_calls(peer: str, processes: int) -> dict[str, float]:
    """Per workload: the first call cold (empty disk cache) and from the disk cache, medians over processes."""
    results: dict[str, list[float]] = {}
    # Bytecode caching on, as where flowc is installed (bench_native.cold_and_cached says why).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for _ in range(processes):
        with tempfile.TemporaryDirectory() as cache:
            env["FLOWC_CACHE_DIR"] = cache
            # The builds made once per machine (support library, fast run extension) and the bytecode
            # of the modules a compile imports: "cold" measures compiling the function, not those.
            warm = ("from flowc.runtime import fast_run, support_library; support_library(); fast_run.module()\n"
                    "import flowc.codegen.llvm.compile, flowc.codegen.llvm.module, flowc.codegen.llvm.kernels")
            if peer != "jax":
                subprocess.run([sys.executable, "-c", warm], env=env, check=True)
            for workload in FIRST:
                if peer == "flowc_session" and workload == "mlp":
                    continue
                for state in ("cold", "cached"):
                    command = [sys.executable, __file__, "--first", workload, "--peer", peer]
                    seconds = float(subprocess.check_output(command, env=env).decode().split()[-1])
                    results.setdefault(f"first_{workload}_{state}", []).append(seconds)
    return {name: statistics.median(values) for name, values in results.items()}


# -- driver ----------------------------------------------------------------------------------------


def run_peer(peer: str, processes: int) -> dict[str, float]:
    return {"call_4": time_call(call_fn(peer)), **(first_calls(peer, processes) if peer != "numpy" else {})}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per first-call figure")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--first", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first:
        print(first_call(args.first, args.peer))
        return
    if args.peer:
        print(json.dumps(run_peer(args.peer, args.processes)))
        return
    peers = ["numpy", "flowc_jit", "flowc_session"] + (["jax"] if peer_available("jax") else [])
    table: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for peer in peers:
            command = [sys.executable, __file__, "--peer", peer, "--processes", str(args.processes)]
            result = json.loads(subprocess.check_output(command).decode().strip().splitlines()[-1])
            best = table.setdefault(peer, result)
            for name, seconds in result.items():
                best[name] = min(best[name], seconds)
    print(report(table, args.rounds, args.processes, peer_available("jax")))


def report(table: dict[str, dict[str, float]], rounds: int, processes: int, has_jax: bool) -> str:
    peers = list(table)
    lines = [f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_jit.py --rounds {rounds} "
             f"--processes {processes}`.", "jax: " + ("installed" if has_jax else "not installed, not measured"), "",
             "| figure | " + " | ".join(peers) + " |", "|---" * (len(peers) + 1) + "|"]
    names = ["call_4"] + [f"first_{w}_{s}" for w in FIRST for s in ("cold", "cached")]
    for name in names:
        cells = []
        for peer in peers:
            value = table[peer].get(name)
            cells.append("-" if value is None else f"{value * 1e6:.2f} us" if name == "call_4" else
                         f"{value * 1e3:.0f} ms")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
