"""Compiled control flow: while loops on the CPU target against numpy's Python loop (and JAX's, if installed).

    .venv/bin/python bench/bench_control.py [--rounds N] [--write]

Two workloads of issue 17:
  while_scalar  a while loop of 1,000,000 turns over a scalar state: i < n: (i + 1, acc + 0.5 * i)
  rnn_forward   a tanh RNN of 200 steps, batch 32, 64 -> 128, forward: h = tanh(x_t @ Wx + h @ Wh + b),
                x_t read with a gather at the step index, inside one while loop
flowc compiles the loop once (IR text through the shared pipeline and the cpu target) and runs it
as one native call; numpy runs the same loop in Python. The house style of bench_native.py: each
peer in its own process, taking turns, best of the rounds' medians; ratio = numpy / peer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_native import machine, peer_available, run_rounds, time_it, write_section  # noqa: E402

WORKLOADS = ["while_scalar", "rnn_forward"]
TURNS, STEPS, BATCH, INPUTS, HIDDEN = 1_000_000, 200, 32, 64, 128
REPEATS = {"while_scalar": 5, "rnn_forward": 20}

WHILE_SCALAR = """\
func @main(%n: i64[]) -> f64[] {
  %zero = constant {value = dense<0>} : i64[]
  %acc0 = constant {value = dense<0.0>} : f64[]
  %i, %acc, %m = while %zero, %acc0, %n : i64[], f64[], i64[] {
  ^bb0(%i: i64[], %a: f64[], %k: i64[]):
    %go = less %i, %k : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %a: f64[], %k: i64[]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %f = cast %i {dtype = f64} : f64[]
    %half = constant {value = dense<0.5>} : f64[]
    %g = mul %f, %half : f64[]
    %a2 = add %a, %g : f64[]
    yield %j, %a2, %k : i64[], f64[], i64[]
  }
  return %acc : f64[]
}
"""

RNN_FORWARD = """\
func @main(%n: i64[], %xs: f32[?,?,I], %h0: f32[?,H], %wx: f32[I,H], %wh: f32[H,H], %b: f32[H]) -> f32[?,H] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %h, %seq, %a, %u, %c = while %zero, %n, %h0, %xs, %wx, %wh, %b : i64[], i64[], f32[?,H], f32[?,?,I], f32[I,H], f32[H,H], f32[H] {
  ^bb0(%i: i64[], %m: i64[], %h: f32[?,H], %seq: f32[?,?,I], %a: f32[I,H], %u: f32[H,H], %c: f32[H]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %h: f32[?,H], %seq: f32[?,?,I], %a: f32[I,H], %u: f32[H,H], %c: f32[H]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %x = gather %seq, %i {axis = 0} : f32[?,I]
    %p = matmul %x, %a {transpose_a = false, transpose_b = false} : f32[?,H]
    %q = matmul %h, %u {transpose_a = false, transpose_b = false} : f32[?,H]
    %s = add %p, %q : f32[?,H]
    %t = add %s, %c : f32[?,H]
    %y = tanh %t : f32[?,H]
    yield %j, %m, %y, %seq, %a, %u, %c : i64[], i64[], f32[?,H], f32[?,?,I], f32[I,H], f32[H,H], f32[H]
  }
  return %h : f32[?,H]
}
""".replace("I]", f"{INPUTS}]").replace("I,", f"{INPUTS},").replace("H]", f"{HIDDEN}]").replace("H,", f"{HIDDEN},")


def inputs(name: str) -> dict[str, np.ndarray]:
    if name == "while_scalar":
        return {"n": np.array(TURNS, np.int64)}
    rng = np.random.default_rng(0)
    return {"n": np.array(STEPS, np.int64),
            "xs": rng.standard_normal((STEPS, BATCH, INPUTS), dtype=np.float32),
            "h0": np.zeros((BATCH, HIDDEN), np.float32),
            "wx": rng.standard_normal((INPUTS, HIDDEN), dtype=np.float32) * 0.1,
            "wh": rng.standard_normal((HIDDEN, HIDDEN), dtype=np.float32) * 0.1,
            "b": rng.standard_normal(HIDDEN, dtype=np.float32) * 0.1}


def numpy_fn(name: str):  # type: ignore[no-untyped-def]
    if name == "while_scalar":
        def loop(n):  # type: ignore[no-untyped-def]
            i, acc = 0, 0.0
            while i < n:
                i, acc = i + 1, acc + 0.5 * i
            return acc
        return loop

    def rnn(n, xs, h0, wx, wh, b):  # type: ignore[no-untyped-def]
        h = h0
        for t in range(int(n)):
            h = np.tanh(xs[t] @ wx + h @ wh + b)
        return h
    return rnn


def flowc_fn(name: str):  # type: ignore[no-untyped-def]
    from flowc import ir
    from flowc.options import CompileOptions
    from flowc.passes import PassManager, default_pipeline
    from flowc.targets import target_named

    module = ir.parse_module(WHILE_SCALAR if name == "while_scalar" else RNN_FORWARD)
    target, options = target_named("cpu"), CompileOptions.from_environment()
    PassManager([*default_pipeline(), *target.passes(options)], record=False).run(module)
    executable = target.load(target.build(module, options), options)
    return lambda **data: executable(list(data.values()))


def jax_fn(name: str):  # type: ignore[no-untyped-def]
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    if name == "while_scalar":
        def loop(n):  # type: ignore[no-untyped-def]
            return jax.lax.while_loop(lambda s: s[0] < n, lambda s: (s[0] + 1, s[1] + 0.5 * s[0]),
                                      (jnp.int64(0), jnp.float64(0.0)))[1]
        jitted = jax.jit(loop)
    else:
        def rnn(n, xs, h0, wx, wh, b):  # type: ignore[no-untyped-def]
            return jax.lax.scan(lambda h, x: (jnp.tanh(x @ wx + h @ wh + b),) * 2, h0, xs)[0]
        jitted = jax.jit(rnn)
    return lambda **kw: jitted(**kw).block_until_ready()


def run_peer(peer: str) -> dict[str, float]:
    results = {}
    for name in WORKLOADS:
        data = inputs(name)
        fn = {"numpy": numpy_fn, "flowc": flowc_fn, "jax": jax_fn}[peer](name)
        results[name] = time_it(fn, data, REPEATS[name])
    return results


def check() -> None:
    """flowc computes what numpy does, before anything is timed."""
    for name in WORKLOADS:
        data = inputs(name)
        want = numpy_fn(name)(**data)
        (got,) = flowc_fn(name)(**data)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)


def format_report(table: dict[str, dict[str, float]], rounds: int) -> str:
    peers = list(table)
    sizes = {"while_scalar": f"{TURNS:,} turns", "rnn_forward": f"{STEPS} steps, batch {BATCH}, {INPUTS} -> {HIDDEN}"}
    lines = [f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_control.py`.",
             f"Best of {rounds} rounds (peers taking turns) of medians; ratio = numpy time / peer time (higher is "
             "faster); numpy runs the loop in Python.",
             "",
             "| workload | " + " | ".join(f"{p} (ms)" for p in peers) + " | " +
             " | ".join(f"{p} ratio" for p in peers if p != "numpy") + " |",
             "|---" * (2 * len(peers)) + "|"]
    for name in WORKLOADS:
        base = table["numpy"][name]
        times = " | ".join(f"{table[p][name] * 1e3:.4g}" for p in peers)
        ratios = " | ".join(f"{base / table[p][name]:.2f}x" for p in peers if p != "numpy")
        lines.append(f"| {name} ({sizes[name]}) | {times} | {ratios} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="replace the Control flow section of RESULTS.md")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each peer, taking turns (best median kept)")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        print(json.dumps(run_peer(args.peer)))
        return
    check()
    peers = [p for p in ("numpy", "flowc", "jax") if peer_available(p)]
    report = format_report(run_rounds(__file__, peers, args.rounds), args.rounds)
    print(report)
    if args.write:
        write_section(report, "## Control flow")


if __name__ == "__main__":
    main()
