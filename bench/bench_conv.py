"""3x3 convolutions at ResNet-like sizes: flowc against numpy's sgemm, numpy and torch on CPU.

    .venv/bin/python bench/bench_conv.py [--quick]

Forward, input gradient and filter gradient of a stride-1 SAME 3x3 convolution (NHWC for
flowc and numpy; torch in its own default NCHW layout) at batch 32, 56x56x64 -> 64 and
28x28x128 -> 128. "sgemm" is a matmul on the [N*H*W, 9*C] x [9*C, O] product that has the
convolution's multiply-adds, by numpy (its BLAS) and by flowc (its matmul kernel); the
faster of the two is this machine's sgemm rate, which "% sgemm" compares with.
Every peer runs twice, each time in a process of its own: on one thread (flowc's pool,
OpenBLAS and torch each set to 1) and on all cores, and the table has a row per thread
count, so that flowc is compared with torch at the same count. Also one training step (loss, gradients, Adam update) of examples/cnn.py on a batch of 64
digits, flowc's compiled step against torch's eager one. Each peer runs in its own
process; the median of repeated runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SIZES = {"56x56x64": (32, 56, 64, 64), "28x28x128": (32, 28, 128, 128)}
QUICK = {"56x56x64": (4, 56, 64, 64), "28x28x128": (4, 28, 128, 128)}
PASSES = ["forward", "input_grad", "filter_grad"]
PEERS = ["sgemm", "numpy", "flowc", "torch"]


def data(size: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
    batch, side, channels, out = size
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((batch, side, side, channels), dtype=np.float32),
            "w": rng.standard_normal((3, 3, channels, out), dtype=np.float32) * 0.05,
            "dy": rng.standard_normal((batch, side, side, out), dtype=np.float32)}


def multiply_adds(size: tuple[int, int, int, int]) -> int:
    batch, side, channels, out = size
    return batch * side * side * 9 * channels * out


# -- the passes per peer --------------------------------------------------------------


def numpy_fns(d: dict[str, np.ndarray]) -> dict:  # type: ignore[type-arg]
    x, w, dy = d["x"], d["w"], d["dy"]
    batch, side, _, channels = x.shape
    out = w.shape[3]

    def columns() -> np.ndarray:  # im2col: the padded image's 3x3 windows as rows
        padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
        return np.concatenate([padded[:, i:i + side, j:j + side] for i in range(3) for j in range(3)], axis=3)

    def input_grad() -> np.ndarray:
        patches = (dy.reshape(-1, out) @ w.reshape(-1, out).T).reshape(batch, side, side, 9 * channels)
        padded = np.zeros((batch, side + 2, side + 2, channels), np.float32)
        for tap in range(9):
            padded[:, tap // 3:tap // 3 + side, tap % 3:tap % 3 + side] += patches[..., tap * channels:(tap + 1) * channels]
        return padded[:, 1:-1, 1:-1]

    return {"forward": lambda: columns().reshape(-1, 9 * channels) @ w.reshape(-1, out),
            "input_grad": input_grad,
            "filter_grad": lambda: columns().reshape(-1, 9 * channels).T @ dy.reshape(-1, out)}


def sgemm_fns(d: dict[str, np.ndarray]) -> dict:  # type: ignore[type-arg]
    a, b = _sgemm_operands(d)
    return {name: (lambda: a @ b) for name in PASSES}


def _sgemm_operands(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[N*H*W, 9*C] and [9*C, O]: a product with the convolution's multiply-adds."""
    batch, side = d["x"].shape[:2]
    channels, out = d["w"].shape[2], d["w"].shape[3]
    rng = np.random.default_rng(1)
    return (rng.standard_normal((batch * side * side, 9 * channels), dtype=np.float32),
            rng.standard_normal((9 * channels, out), dtype=np.float32))


def flowc_fns(d: dict[str, np.ndarray]) -> dict:  # type: ignore[type-arg]
    import flowc as fc

    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, *d["x"].shape[1:]])
        w = fc.placeholder(fc.float32, list(d["w"].shape))
        dy = fc.placeholder(fc.float32, [None, *d["dy"].shape[1:]])
        y = fc.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME")
        (dx,) = fc.gradients(y, [x], grad_ys=dy)
        (dw,) = fc.gradients(y, [w], grad_ys=dy)
    sess = fc.Session(graph=g, target="cpu")
    feeds = {x: d["x"], w: d["w"], dy: d["dy"]}
    a, b = _sgemm_operands(d)
    with g.as_default():
        pa, pb = fc.placeholder(fc.float32, list(a.shape)), fc.placeholder(fc.float32, list(b.shape))
        ab = fc.matmul(pa, pb)
    return {"forward": lambda: sess.run(y, feeds), "input_grad": lambda: sess.run(dx, feeds),
            "filter_grad": lambda: sess.run(dw, feeds), "sgemm": lambda: sess.run(ab, {pa: a, pb: b})}


def torch_fns(d: dict[str, np.ndarray]) -> dict:  # type: ignore[type-arg]
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(d["x"].transpose(0, 3, 1, 2)))
    w = torch.from_numpy(np.ascontiguousarray(d["w"].transpose(3, 2, 0, 1)))
    dy = torch.from_numpy(np.ascontiguousarray(d["dy"].transpose(0, 3, 1, 2)))
    with torch.no_grad():
        return {"forward": lambda: F.conv2d(x, w, padding=1),
                "input_grad": lambda: torch.nn.grad.conv2d_input(x.shape, w, dy, padding=1),
                "filter_grad": lambda: torch.nn.grad.conv2d_weight(x, w.shape, dy, padding=1)}


# -- one training step of examples/cnn.py (batch 64 of 8x8 digits), flowc against torch's eager step --


def cnn_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((64, 64), dtype=np.float32), rng.integers(0, 10, 64).astype(np.int32)


def flowc_cnn_step():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("cnn", os.path.join(os.path.dirname(__file__), "..", "examples",
                                                                      "cnn.py"))
    cnn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cnn)
    import flowc as fc

    m = cnn.build_model(0.01)
    sess = fc.Session(graph=m["graph"], target="cpu")
    sess.run(m["init"])
    x, y = cnn_batch()
    feeds = {m["x"]: x, m["y"]: y}
    return lambda: sess.run([m["loss"], m["train"]], feeds)


def torch_cnn_step():  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = cnn_batch()
    images, labels = torch.from_numpy(x).reshape(-1, 1, 8, 8), torch.from_numpy(y).long()

    def step() -> float:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def time_it(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while time.perf_counter() - start < 0.5:  # warm-up: thread pools and clocks settle
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run_peer(peer: str, quick: bool) -> dict[str, float]:
    """The peer's figures at the thread count that main() set in this process's environment."""
    if peer == "torch":
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    make = {"sgemm": sgemm_fns, "numpy": numpy_fns, "flowc": flowc_fns, "torch": torch_fns}[peer]
    results = {}
    for label, size in (QUICK if quick else SIZES).items():
        fns = make(data(size))
        for name in fns:
            results[f"{label} {name}"] = time_it(fns[name], 5 if quick else 9)
    step = {"flowc": flowc_cnn_step, "torch": torch_cnn_step}.get(peer)
    if step is not None:
        results["cnn step"] = time_it(step(), 200)
    return results


def thread_environment(threads: int) -> dict[str, str]:
    """Every pool a peer may use held to `threads`: flowc's, OpenBLAS's (numpy's and flowc's) and torch's."""
    return {**os.environ, "FLOWC_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 4 instead of 32")
    parser.add_argument("--peer", help=argparse.SUPPRESS)  # run one peer, print JSON (the parent's child)
    args = parser.parse_args()
    if args.peer:
        print(json.dumps(run_peer(args.peer, args.quick)))
        return
    for threads in sorted({1, os.cpu_count() or 1}):
        print(f"-- {threads} thread{'s' if threads > 1 else ''} (every peer) --")
        report(run_peers(args.quick, threads), QUICK if args.quick else SIZES)


def run_peers(quick: bool, threads: int) -> dict[str, dict[str, float]]:
    results = {}
    for peer in PEERS:
        command = [sys.executable, __file__, "--peer", peer] + (["--quick"] if quick else [])
        done = subprocess.run(command, capture_output=True, text=True, env=thread_environment(threads))
        if done.returncode:
            print(f"{peer}: not run ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'})")
            continue
        results[peer] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def report(results: dict[str, dict[str, float]], sizes: dict[str, tuple[int, int, int, int]]) -> None:
    best_sgemm = {label: min(t for t in (results.get("sgemm", {}).get(f"{label} forward"),
                                         results.get("flowc", {}).get(f"{label} sgemm")) if t)
                  for label in sizes if "sgemm" in results or "flowc" in results}
    print(f"{'workload':<24}" + "".join(f"{peer:>12}" for peer in results) + f"{'flowc GF/s':>12}{'% sgemm':>9}")
    for label, size in sizes.items():
        for name in PASSES:
            key = f"{label} {name}"
            row = "".join(f"{results[peer][key] * 1e3:>10.1f}ms" for peer in results)
            extra = ""
            if "flowc" in results and "sgemm" in results:
                rate = 2 * multiply_adds(size) / results["flowc"][key] / 1e9
                extra = f"{rate:>12.1f}{100 * best_sgemm[label] / results['flowc'][key]:>8.0f}%"
            print(f"{key:<24}{row}{extra}")
    steps = {peer: results[peer]["cnn step"] * 1e3 for peer in results if "cnn step" in results[peer]}
    print("examples/cnn.py training step, batch 64: " + ", ".join(f"{p} {ms:.2f} ms" for p, ms in steps.items()))
    for label in sizes:
        print(f"sgemm {label}: numpy {results.get('sgemm', {}).get(label + ' forward', 0) * 1e3:.1f} ms, "
              f"flowc matmul {results.get('flowc', {}).get(label + ' sgemm', 0) * 1e3:.1f} ms; "
              f"% sgemm is of the faster")


if __name__ == "__main__":
    main()
