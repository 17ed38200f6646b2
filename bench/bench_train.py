"""Training steps: flowc (a Session.run per step with feed_dict, as the seed's loop) against numpy,
and JAX when installed, each peer in its own process.

    .venv/bin/python bench/bench_train.py [--write]

Workloads (float32): one SGD step of softmax regression, batch 100, 784 -> 10
(the seed's MNIST step), and one SGD step of a 784 -> 256 relu -> 10 MLP,
batch 128. numpy is a hand-written forward, backward and update. Then the
compile time of the softmax-regression training step: cold (empty disk
cache) and from the disk cache, each the first Session.run of a new process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_native import cold_and_cached, machine, peer_available, run_rounds, time_it, write_section  # noqa: E402

WORKLOADS = {"softmax_step": (100, 784, 0, 10), "mlp_step": (128, 784, 256, 10)}  # batch, in, hidden, out
LR = 0.1


def data(name: str) -> dict[str, np.ndarray]:
    batch, n_in, hidden, n_out = WORKLOADS[name]
    rng = np.random.default_rng(0)
    out = {"x": rng.random((batch, n_in), dtype=np.float32), "y": rng.integers(0, n_out, batch).astype(np.int32)}
    shapes = [(n_in, n_out)] if not hidden else [(n_in, hidden), (hidden, n_out)]
    for k, shape in enumerate(shapes):
        out[f"W{k}"] = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        out[f"b{k}"] = np.zeros(shape[1], np.float32)
    return out


# -- numpy: forward, backward and update by hand -------------------------------------------


def numpy_step(name: str, d: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    params = {k: v.copy() for k, v in d.items() if k[0] in "Wb"}
    layers = len(params) // 2

    def step(x: np.ndarray, y: np.ndarray) -> float:
        activations = [x]
        for k in range(layers):
            z = activations[-1] @ params[f"W{k}"] + params[f"b{k}"]
            activations.append(np.maximum(z, 0) if k < layers - 1 else z)
        logits = activations[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        p = e / e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(e.sum(axis=1)) - shifted[np.arange(len(y)), y]))
        grad = p
        grad[np.arange(len(y)), y] -= 1
        grad /= len(y)
        for k in reversed(range(layers)):
            gW, gb = activations[k].T @ grad, grad.sum(axis=0)
            if k:
                grad = (grad @ params[f"W{k}"].T) * (activations[k] > 0)
            params[f"W{k}"] -= LR * gW
            params[f"b{k}"] -= LR * gb
        return loss

    return lambda x, y, **_: step(x, y)


# -- flowc: the seed's program ---------------------------------------------------------------


def flowc_graph(name: str, d: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    import flowc as fc

    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, d["x"].shape[1]], name="x")
        y = fc.placeholder(fc.int32, shape=[None], name="y")
        params = [fc.Variable(d[k], name=k) for k in sorted(d) if k[0] in "Wb"]
        layers = len(params) // 2
        h = x
        for k in range(layers):
            W, b = params[k], params[layers + k]  # sorted: W0 W1 ... then b0 b1 ... (capitals sort first)
            h = fc.matmul(h, W) + b
            if k < layers - 1:
                h = fc.relu(h)
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=h))
        grads = fc.gradients(loss, params)
        train = fc.group(*[fc.assign_sub(p, LR * gp) for p, gp in zip(params, grads)])
        init = fc.global_variables_initializer()
    return g, x, y, loss, train, init


def flowc_step(name: str, d: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    import flowc as fc

    g, x, y, loss, train, init = flowc_graph(name, d)
    sess = fc.Session(target="cpu", graph=g)
    sess.run(init)
    fetches = [loss, train]
    return lambda x_, y_, **_: sess.run(fetches, {x: x_, y: y_})


def jax_step(name: str, d: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    import jax
    import jax.numpy as jnp

    keys = sorted(k for k in d if k[0] in "Wb")
    layers = len(keys) // 2

    def loss_fn(params, x, y):  # type: ignore[no-untyped-def]
        h = x
        for k in range(layers):
            h = h @ params[f"W{k}"] + params[f"b{k}"]
            if k < layers - 1:
                h = jax.nn.relu(h)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], axis=1))

    @jax.jit
    def update(params, x, y):  # type: ignore[no-untyped-def]
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return loss, {k: params[k] - LR * grads[k] for k in params}

    state = {"params": {k: jnp.asarray(d[k]) for k in keys}}

    def step(x, y, **_):  # type: ignore[no-untyped-def]
        loss, state["params"] = update(state["params"], x, y)
        return loss.block_until_ready()

    return step


def run_peer(peer: str) -> dict[str, float]:
    make = {"numpy": numpy_step, "flowc": flowc_step, "jax": jax_step}[peer]
    results = {}
    for name in WORKLOADS:
        d = data(name)
        fn = make(name, d)
        results[name] = time_it(lambda **kw: fn(kw["x"], kw["y"]), {"x": d["x"], "y": d["y"]}, 300)
    if peer == "flowc":
        results.update(compile_times())
    return results


def compile_times() -> dict[str, float]:
    script = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "import bench_train as bt, flowc as fc\n"
        "d = bt.data('softmax_step'); g, x, y, loss, train, init = bt.flowc_graph('softmax_step', d)\n"
        "s = fc.Session(target='cpu', graph=g); s.run(init)\n"
        "t = time.perf_counter(); s.run([loss, train], {x: d['x'], y: d['y']}); print(time.perf_counter() - t)\n"
    ) % os.path.dirname(os.path.abspath(__file__))
    return cold_and_cached(script)


def format_report(table: dict[str, dict[str, float]], rounds: int = 3) -> str:
    peers = list(table)
    lines = [f"Machine: {machine()}. Command: `.venv/bin/python bench/bench_train.py`.",
             f"Best of {rounds} rounds (peers taking turns) of medians of one training step (forward, backward, update; "
             "flowc: one Session.run with feed_dict); ratio = numpy time / peer time.", "",
             "| step | " + " | ".join(f"{p} (us)" for p in peers) + " | " +
             " | ".join(f"{p} ratio" for p in peers if p != "numpy") + " |",
             "|---" * (2 * len(peers)) + "|"]
    for name, (batch, n_in, hidden, n_out) in WORKLOADS.items():
        base = table["numpy"][name]
        times = " | ".join(f"{table[p][name] * 1e6:.0f}" for p in peers)
        ratios = " | ".join(f"{base / table[p][name]:.2f}x" for p in peers if p != "numpy")
        shape = f"{n_in}->{hidden}->{n_out}" if hidden else f"{n_in}->{n_out}"
        lines.append(f"| {name} batch {batch}, {shape} | {times} | {ratios} |")
    flowc = table.get("flowc", {})
    if "compile_cold" in flowc:
        lines += ["", f"flowc compile of the softmax-regression training step: cold {flowc['compile_cold'] * 1e3:.0f} ms,"
                      f" from the disk cache {flowc['compile_cached'] * 1e3:.1f} ms (first Session.run, new process)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each peer, taking turns (best median kept)")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        print(json.dumps(run_peer(args.peer)))
        return
    table = run_rounds(__file__, [p for p in ("numpy", "flowc", "jax") if peer_available(p)], args.rounds)
    report = format_report(table, args.rounds)
    print(report)
    if args.write:
        write_section(report, "## Training steps")


if __name__ == "__main__":
    main()
