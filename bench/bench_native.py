"""Native CPU workloads: flowc against numpy (and JAX, numba, torch when installed).

    .venv/bin/python bench/bench_native.py [--quick] [--write]

Each peer runs in its own process (their thread pools would fight over the
cores in one), on the same inputs, timed the same way: a warm-up, then the
median of repeated runs. numpy = 1.00; a ratio above 1 is faster than numpy.
--write replaces the "Native CPU" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

WORKLOADS = ["ew_chain", "softmax", "layer_norm", "mlp", "session_tiny"]
SIZES = {  # full and --quick
    "ew_chain": ((1 << 24,), (1 << 20,)),
    "softmax": ((4096, 4096), (512, 1024)),
    "layer_norm": ((8192, 1024), (1024, 256)),
    "mlp": ((256, 784), (256, 784)),
    "session_tiny": ((4,), (4,)),
}


def inputs(name: str, quick: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = SIZES[name][quick]
    if name == "mlp":
        return {"x": rng.standard_normal(shape, dtype=np.float32),
                "w1": rng.standard_normal((784, 512), dtype=np.float32) * 0.05,
                "w2": rng.standard_normal((512, 512), dtype=np.float32) * 0.05,
                "w3": rng.standard_normal((512, 10), dtype=np.float32) * 0.05,
                "b": rng.standard_normal((512,), dtype=np.float32)}
    if name == "layer_norm":
        return {"x": rng.standard_normal(shape, dtype=np.float32),
                "gamma": rng.standard_normal(shape[-1:], dtype=np.float32),
                "beta": rng.standard_normal(shape[-1:], dtype=np.float32)}
    return {"x": rng.standard_normal(shape, dtype=np.float32)}


# -- the workloads per peer ------------------------------------------------------


def numpy_fn(name: str):  # type: ignore[no-untyped-def]
    def sigmoid(x):  # type: ignore[no-untyped-def]
        return 1 / (1 + np.exp(-x))

    if name == "ew_chain":
        return lambda x: np.tanh(x * np.float32(1.5) + np.float32(0.25)) * sigmoid(x) + np.maximum(x - np.float32(0.5), 0)
    if name == "softmax":
        def softmax(x):  # type: ignore[no-untyped-def]
            e = np.exp(x - x.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return softmax
    if name == "layer_norm":
        def layer_norm(x, gamma, beta):  # type: ignore[no-untyped-def]
            mean = x.mean(axis=-1, keepdims=True)
            centered = x - mean
            var = (centered * centered).mean(axis=-1, keepdims=True)
            return centered / np.sqrt(var + np.float32(1e-5)) * gamma + beta
        return layer_norm
    if name == "mlp":
        def mlp(x, w1, w2, w3, b):  # type: ignore[no-untyped-def]
            h = np.maximum(x @ w1 + b, 0)
            h = np.maximum(h @ w2 + b, 0)
            return h @ w3
        return mlp
    return lambda x: x * np.float32(2) + np.float32(1)


def flowc_fn(name: str, data: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    import flowc as fc

    g = fc.Graph()
    with g.as_default():
        ph = {k: fc.placeholder(fc.float32, shape=[None, *v.shape[1:]] if k == "x" else list(v.shape), name=k)
              for k, v in data.items()}
        x = ph["x"]
        if name == "ew_chain":
            y = fc.tanh(x * 1.5 + 0.25) * fc.sigmoid(x) + fc.relu(x - 0.5)
        elif name == "softmax":
            y = fc.nn.softmax(x)
        elif name == "layer_norm":
            mean = fc.reduce_mean(x, axis=-1, keepdims=True)
            centered = x - mean
            var = fc.reduce_mean(centered * centered, axis=-1, keepdims=True)
            y = centered * fc.rsqrt(var + 1e-5) * ph["gamma"] + ph["beta"]
        elif name == "mlp":
            h = fc.relu(fc.matmul(x, ph["w1"]) + ph["b"])
            h = fc.relu(fc.matmul(h, ph["w2"]) + ph["b"])
            y = fc.matmul(h, ph["w3"])
        else:
            y = x * 2.0 + 1.0
    sess = fc.Session(target="cpu", graph=g)
    feeds = {ph[k]: v for k, v in data.items()}
    return lambda **_: sess.run(y, feeds)


def jax_fn(name: str):  # type: ignore[no-untyped-def]
    import jax
    import jax.numpy as jnp

    if name == "ew_chain":
        f = lambda x: jnp.tanh(x * 1.5 + 0.25) * jax.nn.sigmoid(x) + jax.nn.relu(x - 0.5)  # noqa: E731
    elif name == "softmax":
        f = lambda x: jax.nn.softmax(x, axis=1)  # noqa: E731
    elif name == "layer_norm":
        def f(x, gamma, beta):  # type: ignore[no-untyped-def]
            mean = x.mean(-1, keepdims=True)
            c = x - mean
            return c * jax.lax.rsqrt((c * c).mean(-1, keepdims=True) + 1e-5) * gamma + beta
    elif name == "mlp":
        def f(x, w1, w2, w3, b):  # type: ignore[no-untyped-def]
            h = jax.nn.relu(x @ w1 + b)
            return jax.nn.relu(h @ w2 + b) @ w3
    else:
        f = lambda x: x * 2 + 1  # noqa: E731
    jitted = jax.jit(f)
    return lambda **kw: jitted(**kw).block_until_ready()


def time_it(fn, data: dict[str, np.ndarray], repeats: int) -> float:  # type: ignore[no-untyped-def]
    # Warm up for a while, not a few calls: thread pools (OpenBLAS's, flowc's) and the CPU clock
    # take tens of milliseconds to settle, and the first runs of a fresh process are slow for every peer.
    start = time.perf_counter()
    while time.perf_counter() - start < 0.3:
        fn(**data)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(**data)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run_peer(peer: str, quick: bool) -> dict[str, float]:
    results = {}
    for name in WORKLOADS:
        data = inputs(name, quick)
        repeats = 2000 if name == "session_tiny" else (20 if not quick else 10)
        if peer == "numpy":
            fn = numpy_fn(name)
        elif peer == "flowc":
            fn = flowc_fn(name, data)
        elif peer == "jax":
            fn = jax_fn(name)
        else:
            continue
        results[name] = time_it(fn, data, repeats)
    if peer == "flowc":
        results.update(compile_times())
    return results


def compile_times() -> dict[str, float]:
    """A 50-op graph: cold (empty disk cache, fresh process state) and from the disk cache."""
    script = (
        "import time, numpy as np, flowc as fc\n"
        "g = fc.Graph()\n"
        "with g.as_default():\n"
        "    x = fc.placeholder(fc.float32, shape=[None, 64], name='x')\n"
        "    y = x\n"
        "    for i in range(25):\n"
        "        y = fc.tanh(y * float(i + 1)) + x\n"
        "s = fc.Session(target='cpu', graph=g)\n"
        "t = time.perf_counter(); s.run(y, {x: np.ones((2, 64), np.float32)}); print(time.perf_counter() - t)\n"
    )
    return cold_and_cached(script)


def cold_and_cached(script: str) -> dict[str, float]:
    """Run `script` (it prints the seconds of its first Session.run) twice in new processes sharing a
    fresh disk cache: the first compiles cold, the second loads from the cache. Python's bytecode
    cache is on for them, as for an installed flowc."""
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        # Bytecode caching on, as where flowc is installed: with PYTHONDONTWRITEBYTECODE set (this VM sets
        # it) every new process compiles flowc's own sources again: 25 - 70 ms of the 50-op cold figure.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["FLOWC_CACHE_DIR"] = cache
        # Warm the builds made once per machine (the support library, the fast run extension) and the
        # bytecode of the modules a compile imports, so "cold" measures compiling the graph, not building
        # the thread pool or the fast run, or compiling Python.
        warm = ("from flowc.runtime import fast_run, support_library; support_library(); fast_run.module()\n"
                "import flowc.codegen.llvm.compile, flowc.codegen.llvm.module, flowc.codegen.llvm.kernels")
        subprocess.run([sys.executable, "-c", warm], env=env, check=True)
        cold = float(subprocess.check_output([sys.executable, "-c", script], env=env))
        cached = float(subprocess.check_output([sys.executable, "-c", script], env=env))
    return {"compile_cold": cold, "compile_cached": cached}


def peer_available(peer: str) -> bool:
    if peer in ("numpy", "flowc"):
        return True
    try:
        __import__(peer)
        return True
    except ImportError:
        return False


def run_rounds(script: str, peers: list[str], rounds: int, extra: list[str] = ()) -> dict[str, dict[str, float]]:
    """Each peer in its own process, `rounds` times, the peers taking turns; per peer and figure the
    best of the rounds' medians. A shared 2-core VM drifts by tens of percent within a minute, and
    taking turns with the best of several rounds keeps that drift out of the ratios."""
    table: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for peer in peers:
            command = [sys.executable, script, "--peer", peer, *extra]
            result = json.loads(subprocess.check_output(command).decode().strip().splitlines()[-1])
            best = table.setdefault(peer, result)
            for name, seconds in result.items():
                best[name] = min(best[name], seconds)
    return table


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each peer, taking turns (best median kept)")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        print(json.dumps(run_peer(args.peer, args.quick)))
        return
    peers = [p for p in ("numpy", "flowc", "jax") if peer_available(p)]
    table = run_rounds(__file__, peers, args.rounds, ["--quick"] if args.quick else [])
    report = format_report(table, args.quick, args.rounds)
    print(report)
    if args.write:
        write_section(report)


def format_report(table: dict[str, dict[str, float]], quick: bool, rounds: int = 3) -> str:
    peers = list(table)
    lines = [f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_native.py{' --quick' if quick else ''}`.",
             f"Best of {rounds} rounds (peers taking turns) of medians; ratio = numpy time / peer time (higher is faster).",
             "",
             "| workload | " + " | ".join(f"{p} (ms)" for p in peers) + " | " +
             " | ".join(f"{p} ratio" for p in peers if p != "numpy") + " |",
             "|---" * (2 * len(peers)) + "|"]
    for name in WORKLOADS:
        base = table["numpy"][name]
        times = " | ".join(f"{table[p][name] * 1e3:.4g}" for p in peers)
        ratios = " | ".join(f"{base / table[p][name]:.2f}x" for p in peers if p != "numpy")
        lines.append(f"| {name} {'x'.join(map(str, SIZES[name][quick]))} | {times} | {ratios} |")
    flowc = table.get("flowc", {})
    if "compile_cold" in flowc:
        lines += ["", f"flowc compile of a 50-op graph: cold {flowc['compile_cold'] * 1e3:.0f} ms, "
                      f"from the disk cache {flowc['compile_cached'] * 1e3:.1f} ms (first Session.run, in a new process)."]
    return "\n".join(lines)


def write_section(report: str, header: str = "## Native CPU") -> None:
    """Replace (or append) the section `header` of bench/RESULTS.md."""
    path = os.path.join(os.path.dirname(__file__), "RESULTS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = text.find(header)
    section = f"{header}\n\n{report}\n"
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(header))
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
