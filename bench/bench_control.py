"""Compiled control flow: while loops on the CPU target against numpy's Python loop (and JAX's, if installed).

    .venv/bin/python bench/bench_control.py [--rounds N] [--batch B] [--no-gang] [--write]

The workloads of issue 17:
  while_scalar  a while loop of 1,000,000 turns over a scalar state: i < n: (i + 1, acc + 0.5 * i)
  rnn_forward   a tanh RNN of 200 steps, batch 32, 64 -> 128, forward: h = tanh(x_t @ Wx + h @ Wh + b),
                x_t read with a gather at the step index, inside one while loop
  rnn_gradient  the same RNN and its gradient (of sum(h_200) with respect to Wx, Wh and b), against
                numpy's hand-written backpropagation through time
--batch runs the RNN at another batch (the gradient loop's sums over the batch run after it, at a
batch of at most 12 or where the loop then keeps rows apart: Note [accumulated products after the loop]
in passes/loop_products.py). --no-gang runs
flowc's loops on one thread each, as before Note [loops run by a gang] (passes/gang_loops.py);
the compile times are measured with gangs either way.
flowc compiles the loop once and runs it as one native call: the first two from IR text through the
shared pipeline and the cpu target, the gradient from the front end (fc.while_loop, fc.gradients, a
Session); numpy runs the same loop in Python. The house style of bench_native.py: each peer in its
own process, taking turns, best of the rounds' medians; ratio = numpy / peer.

Compile time: the RNN with its gradient at 20 and at 200 steps, each the first Session.run of a new
process with an empty FLOWC_CACHE_DIR (cold), then again from the disk cache; the graph is one loop,
so the step count should not change it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_native import machine, peer_available, run_rounds, time_it, write_section  # noqa: E402

WORKLOADS = ["while_scalar", "rnn_forward", "rnn_gradient"]
TURNS, STEPS, BATCH, INPUTS, HIDDEN = 1_000_000, 200, 32, 64, 128
REPEATS = {"while_scalar": 5, "rnn_forward": 20, "rnn_gradient": 10}

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
    if name == "rnn_gradient":
        return numpy_bptt
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


def numpy_bptt(n, xs, h0, wx, wh, b):  # type: ignore[no-untyped-def]
    """The final state and d sum(h_n) / d (Wx, Wh, b): the forward loop keeps every state, the backward
    loop walks them in reverse, three products per step."""
    states = [h0]
    for t in range(int(n)):
        states.append(np.tanh(xs[t] @ wx + states[-1] @ wh + b))
    dh, dwx, dwh, db = np.ones_like(h0), np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
    for t in reversed(range(int(n))):
        dpre = dh * (1 - states[t + 1] * states[t + 1])
        dwx += xs[t].T @ dpre
        dwh += states[t].T @ dpre
        db += dpre.sum(axis=0)
        dh = dpre @ wh.T
    return states[-1], dwx, dwh, db


RNN_GRADIENT_GRAPH = """\
import flowc as fc
def rnn_gradient(steps, batch, inputs, hidden):
    g = fc.Graph()
    with g.as_default():
        xs = fc.placeholder(fc.float32, [steps, batch, inputs], name="xs")
        h0 = fc.placeholder(fc.float32, [batch, hidden], name="h0")
        wx = fc.placeholder(fc.float32, [inputs, hidden], name="wx")
        wh = fc.placeholder(fc.float32, [hidden, hidden], name="wh")
        b = fc.placeholder(fc.float32, [hidden], name="b")
        step = lambda t, h: (t + 1, fc.tanh(fc.matmul(fc.gather(xs, t), wx) + fc.matmul(h, wh) + b))
        # A constant bound: the gradient keeps the states in a stack of steps + 1 rows (rules_while.py).
        _, h = fc.while_loop(lambda t, h: t < steps, step, [fc.constant(0), h0])
        fetches = [h, *fc.gradients(fc.reduce_sum(h), [wx, wh, b])]
    return g, [xs, h0, wx, wh, b], fetches
"""


def rnn_gradient_session(steps: int):  # type: ignore[no-untyped-def]
    """(session, placeholders, fetches) of the RNN with its gradient, built by the front end."""
    import flowc as fc

    scope: dict = {}
    exec(RNN_GRADIENT_GRAPH, scope)
    graph, placeholders, fetches = scope["rnn_gradient"](steps, BATCH, INPUTS, HIDDEN)
    return fc.Session(graph=graph, target="cpu"), placeholders, fetches


def flowc_fn(name: str):  # type: ignore[no-untyped-def]
    if name == "rnn_gradient":
        session, placeholders, fetches = rnn_gradient_session(STEPS)
        return lambda n, **data: session.run(fetches, dict(zip(placeholders, data.values())))

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
        if name == "rnn_gradient":
            def value_and_gradient(n, xs, h0, wx, wh, b):  # type: ignore[no-untyped-def]
                return rnn(n, xs, h0, wx, wh, b), jax.grad(lambda *w: rnn(n, xs, h0, *w).sum(), (0, 1, 2))(wx, wh, b)
            gradient = jax.jit(value_and_gradient)
            return lambda **kw: jax.block_until_ready(gradient(**kw))
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
        got = flowc_fn(name)(**data)
        for index, (value, expected) in enumerate(zip(got, want if name == "rnn_gradient" else [want])):
            np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5, err_msg=f"{name} result {index}")


def compile_times() -> dict[str, float]:
    """Seconds of the first Session.run of the RNN with its gradient, less a later run's: cold in a new
    process with an empty disk cache, at 20 and 200 steps, and from the disk cache at 200."""
    from bench_native import cold_and_cached

    times = {}
    for steps in (20, STEPS):
        script = (RNN_GRADIENT_GRAPH + "import time, numpy as np\n"
                  f"g, placeholders, fetches = rnn_gradient({steps}, {BATCH}, {INPUTS}, {HIDDEN})\n"
                  "feeds = {p: np.zeros([int(d) for d in p.shape], np.float32) for p in placeholders}\n"
                  "s = fc.Session(graph=g, target='cpu')\n"
                  "t = time.perf_counter(); s.run(fetches, feeds); first = time.perf_counter() - t\n"
                  "runs = []\n"
                  "for _ in range(3):\n"
                  "    t = time.perf_counter(); s.run(fetches, feeds); runs.append(time.perf_counter() - t)\n"
                  "print(first - min(runs))\n")
        measured = cold_and_cached(script)
        times[f"cold, {steps} steps"] = measured["compile_cold"]
        if steps == STEPS:
            times[f"from the disk cache, {steps} steps"] = measured["compile_cached"]
    return times


def format_report(table: dict[str, dict[str, float]], rounds: int) -> str:
    peers = list(table)
    rnn = f"{STEPS} steps, batch {BATCH}, {INPUTS} -> {HIDDEN}"
    sizes = {"while_scalar": f"{TURNS:,} turns", "rnn_forward": rnn, "rnn_gradient": rnn + ", numpy: hand-written BPTT"}
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
    global BATCH
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="replace the Control flow section of RESULTS.md")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each peer, taking turns (best median kept)")
    parser.add_argument("--batch", type=int, default=BATCH, help="the RNN's batch (rows per step)")
    parser.add_argument("--no-gang", action="store_true",
                        help="flowc without loops run by a gang (Note [loops run by a gang]): the pass marks none")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    BATCH = args.batch
    if args.no_gang:
        import flowc.passes.gang_loops as gang_loops
        gang_loops.runs_on_gang = lambda loop: False
    if args.peer:
        print(json.dumps(run_peer(args.peer)))
        return
    check()
    peers = [p for p in ("numpy", "flowc", "jax") if peer_available(p)]
    passed = ["--batch", str(BATCH), *(["--no-gang"] if args.no_gang else [])]
    report = format_report(run_rounds(__file__, peers, args.rounds, passed), args.rounds)
    compiles = [compile_times() for _ in range(args.rounds)]
    report += ("\n\nCompiling the RNN with its gradient (first Session.run less the fastest of three more, new "
               f"process; best of {args.rounds}): " + ", ".join(f"{name} {min(c[name] for c in compiles) * 1e3:.0f} ms"
                                               for name in compiles[0]) + ".")
    print(report)
    if args.write:
        write_section(report, "## Control flow")


if __name__ == "__main__":
    main()
