"""The gpu target's kernels against torch and torch.compile (issue 21, part 4).

    .venv/bin/python bench/bench_gpu.py [--size tiny|full] [--repeats N] [--json]

Workloads (float32 unless named):
- chain: relu(x * 1.5 + y) * x - y over N elements, one loop kernel: reads x and y, writes the result;
- softmax rows: fc.nn.softmax over the last axis of [R, C];
- layer norm rows: (x - mean) * rsqrt(var + 1e-5) * gamma + beta over the last axis of [R, C];
- matmul float16 / bfloat16 / float32: relu(a @ b + bias), the bias and relu fused into the product's
  epilogue (float32 as torch runs it by default: no TF32);
- mlp step: one SGD step of a [B, 784] -> 1024 relu -> 10 perceptron with softmax cross entropy.
flowc is timed on its GpuExecutable's `run_on_device` with every argument already a device tensor
(Session.run adds the copies of numpy feeds and fetches), torch on the same tensors; each figure is
the median of --repeats runs after warm-up, the GPU synchronized around each. Bandwidth is the bytes
the kernel must move (each input read once, each output written once) over the time, and its fraction
of the device's peak (the vendor's figure for the GPUs named in PEAK_GB_PER_S, and of a measured torch
copy, which is what the memory system delivers). Matmuls are reported in TFLOP/s and against
torch.matmul alone.

After each workload, a line per kernel says the block sizes, warps and stages it ran with: on a GPU
the tuner's choice among the schedule's candidates (FLOWC_AUTOTUNE=0: the heuristic's), with which of
them it was. Without a GPU the kernels run in Triton's interpreter with tiny sizes (--size tiny, the default there),
so the benchmark is known to work; its times then mean nothing and no peer is timed. Either way each
workload's first result is first checked against torch's (a line says where they differ). A workload whose
kernels the gpu target cannot compile yet (an emitter missing) is skipped with a line saying why.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flowc as fc  # noqa: E402
from flowc.driver import compile_lowered  # noqa: E402
from flowc.lowering import lower  # noqa: E402
from flowc.options import CompileOptions  # noqa: E402

# The vendor's HBM bandwidth, GB/s, by a part of torch's device name.
PEAK_GB_PER_S = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0,
                 "H100": 3350.0, "A100-SXM4-80GB": 2039.0, "A100": 1555.0}

SIZES = {  # per workload: tiny (the interpreter), full (a GPU)
    "chain": {"tiny": 3000, "full": 1 << 27},
    "rows": {"tiny": (6, 100), "full": (32768, 4096)},
    "matmul": {"tiny": (16, 32, 32), "full": (8192, 8192, 8192)},
    "mlp": {"tiny": (16, 784, 32, 10), "full": (4096, 784, 1024, 10)},
}


@dataclass
class Workload:
    name: str
    build: Callable[[], tuple]  # -> (graph, fetches, targets, {placeholder: torch tensor}, variables' values)
    torch_fn: Callable[..., Any] | None = None  # the peer: a function of the same tensors, in feed order
    bytes_moved: int = 0  # for bandwidth; 0: reported by flops
    flops: int = 0
    matmul_peer: Callable[..., Any] | None = None
    peer_arguments: list[Any] | None = None  # what the peers take, if not the feeds in order
    tolerance: float = 1e-4  # flowc's first result against the torch peer's (None: not compared)


# -- workloads ----------------------------------------------------------------------------------------


def chain(size: str, torch: Any, device: str) -> Workload:
    n = SIZES["chain"][size]
    x, y = (torch.randn(n, device=device) for _ in range(2))

    def build() -> tuple:
        g = fc.Graph()
        with g.as_default():
            px = fc.placeholder(fc.float32, [None], name="x")
            py = fc.placeholder(fc.float32, [None], name="y")
            out = fc.nn.relu(px * 1.5 + py) * px - py
        return g, [out], [], {px: x, py: y}, {}

    def peer(x: Any, y: Any) -> Any:
        return torch.relu(x * 1.5 + y) * x - y

    return Workload("chain", build, peer, bytes_moved=3 * n * 4)


def softmax_rows(size: str, torch: Any, device: str) -> Workload:
    rows, columns = SIZES["rows"][size]
    x = torch.randn(rows, columns, device=device)

    def build() -> tuple:
        g = fc.Graph()
        with g.as_default():
            px = fc.placeholder(fc.float32, [None, columns], name="x")
            out = fc.nn.softmax(px)
        return g, [out], [], {px: x}, {}

    return Workload("softmax rows", build, lambda x: torch.softmax(x, dim=-1), bytes_moved=2 * rows * columns * 4)


def layer_norm_rows(size: str, torch: Any, device: str) -> Workload:
    rows, columns = SIZES["rows"][size]
    x = torch.randn(rows, columns, device=device)
    gamma, beta = torch.rand(columns, device=device) + 0.5, torch.randn(columns, device=device)

    def build() -> tuple:
        g = fc.Graph()
        with g.as_default():
            px = fc.placeholder(fc.float32, [None, columns], name="x")
            pg = fc.placeholder(fc.float32, [columns], name="gamma")
            pb = fc.placeholder(fc.float32, [columns], name="beta")
            mean = fc.reduce_mean(px, axis=-1, keepdims=True)
            centered = px - mean
            variance = fc.reduce_mean(fc.square(centered), axis=-1, keepdims=True)
            out = centered * fc.rsqrt(variance + 1e-5) * pg + pb
        return g, [out], [], {px: x, pg: gamma, pb: beta}, {}

    def peer(x: Any, gamma: Any, beta: Any) -> Any:
        return torch.nn.functional.layer_norm(x, (columns,), gamma, beta, 1e-5)

    return Workload("layer norm rows", build, peer, bytes_moved=2 * rows * columns * 4 + 2 * columns * 4)


def matmul_epilogue(dtype: str) -> Callable[[str, Any, str], Workload]:
    def make(size: str, torch: Any, device: str) -> Workload:
        m, k, n = SIZES["matmul"][size]
        flowc_dtype = getattr(fc, dtype, None)
        torch_dtype = getattr(torch, dtype)
        a = (torch.randn(m, k, device=device) / math.sqrt(k)).to(torch_dtype)
        b = torch.randn(k, n, device=device).to(torch_dtype)
        bias = torch.randn(n, device=device).to(torch_dtype)

        def build() -> tuple:
            if flowc_dtype is None:
                raise NotImplementedError(f"flowc has no {dtype} dtype (fc.{dtype})")
            g = fc.Graph()
            with g.as_default():
                pa = fc.placeholder(flowc_dtype, [None, k], name="a")
                pb = fc.placeholder(flowc_dtype, [k, n], name="b")
                pbias = fc.placeholder(flowc_dtype, [n], name="bias")
                out = fc.nn.relu(fc.matmul(pa, pb) + pbias)
            return g, [out], [], {pa: a, pb: b, pbias: bias}, {}

        return Workload(f"matmul {dtype} +bias relu", build, lambda a, b, bias: torch.relu(a @ b + bias),
                        flops=2 * m * n * k, matmul_peer=lambda a, b, bias: torch.matmul(a, b),
                        tolerance=1e-4 if dtype == "float32" else 2e-2)
    return make


def mlp_step(size: str, torch: Any, device: str) -> Workload:
    batch, features, hidden, classes = SIZES["mlp"][size]
    rng = np.random.default_rng(0)
    values = {"W1": (rng.standard_normal((features, hidden)) * math.sqrt(2 / features)).astype(np.float32),
              "b1": np.zeros(hidden, np.float32),
              "W2": (rng.standard_normal((hidden, classes)) * math.sqrt(1 / hidden)).astype(np.float32),
              "b2": np.zeros(classes, np.float32)}
    x = torch.rand(batch, features, device=device)
    y = torch.from_numpy(rng.integers(0, classes, batch).astype(np.int32)).to(device)
    lr = 0.1

    def build() -> tuple:
        g = fc.Graph()
        with g.as_default():
            px = fc.placeholder(fc.float32, [None, features], name="x")
            py = fc.placeholder(fc.int32, [None], name="y")
            variables = {name: fc.Variable(value, name=name) for name, value in values.items()}
            h = fc.nn.relu(fc.matmul(px, variables["W1"]) + variables["b1"])
            logits = fc.matmul(h, variables["W2"]) + variables["b2"]
            loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=py, logits=logits))
            train = fc.train.GradientDescentOptimizer(lr).minimize(loss)
        state = {v.op: torch.from_numpy(values[name]).to(device) for name, v in variables.items()}
        return g, [loss], [train], {px: x, py: y}, state

    def peer(x: Any, y: Any, w1: Any, b1: Any, w2: Any, b2: Any) -> Any:
        """The same step by hand (forward, backward, update), as torch.compile can fuse it whole."""
        z = x @ w1 + b1
        h = torch.relu(z)
        logits = h @ w2 + b2
        p = torch.softmax(logits, dim=1)
        loss = (torch.logsumexp(logits, dim=1) - logits.gather(1, y.long()[:, None])[:, 0]).mean()
        grad = p - torch.nn.functional.one_hot(y.long(), classes).to(p.dtype)
        grad = grad / x.shape[0]
        gw2, gb2 = h.T @ grad, grad.sum(0)
        gh = (grad @ w2.T) * (z > 0)
        gw1, gb1 = x.T @ gh, gh.sum(0)
        return loss, w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2

    parameters = [torch.from_numpy(values[name]).to(device) for name in ("W1", "b1", "W2", "b2")]
    return Workload("mlp step (SGD)", build, peer, flops=6 * batch * (features * hidden + hidden * classes),
                    peer_arguments=[x, y, *parameters], tolerance=1e-3)


WORKLOADS = [chain, softmax_rows, layer_norm_rows, matmul_epilogue("float16"), matmul_epilogue("bfloat16"),
             matmul_epilogue("float32"), mlp_step]


# -- running ------------------------------------------------------------------------------------------


def compile_gpu(build: Callable[[], tuple]) -> tuple[Callable[[], Any], list[Any], Callable[[], list[str]]]:
    """flowc's run of the workload on device tensors, the arguments of a peer (the feeds in order), and
    what says how each kernel ran (kernel_configurations)."""
    graph, fetches, targets, feeds, state = build()
    ordered = sorted(feeds, key=lambda t: (t.op.id, t.value_index))
    lowered = lower(graph, fetches, targets, ordered)
    executable = compile_lowered(lowered, "gpu", CompileOptions.from_environment())
    signature = lowered.signature
    step = np.zeros((), np.int64)

    def run() -> Any:
        args = [feeds[t] for t in signature.feeds] + [state[v] for v in signature.variables]
        if signature.uses_step:
            args.append(step)
        outputs = executable.run_on_device(args)
        for var, value in zip(signature.updates, outputs[len(signature.fetches):]):
            state[var] = value  # the next step starts from the values this one wrote
        return outputs

    return run, [feeds[t] for t in signature.feeds], lambda: kernel_configurations(executable)


def kernel_configurations(executable: Any) -> list[str]:
    """Each kernel's block sizes, warps and stages as it last ran: on a GPU the configuration the tuner
    chose (Note [autotuning] in codegen/triton/autotune.py), else the schedule's heuristic one."""
    names = getattr(executable, "names", {})  # none said for a program cut at a data-dependent size
    return [f"{name}: {executable.kernels.configuration(name)}" for name in names.values()]


def timed(fn: Callable[[], Any], repeats: int, synchronize: Callable[[], None]) -> float:
    """Median seconds of `repeats` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(torch: Any, device: str, repeats: int, synchronize: Callable[[], None]) -> float:
    """GB/s of a torch copy of 1 GiB: what the memory system delivers to a plain stream."""
    source = torch.empty(1 << 28, device=device)
    target = torch.empty_like(source)
    seconds = timed(lambda: target.copy_(source), repeats, synchronize)
    return 2 * source.numel() * 4 / seconds / 1e9


def vendor_peak(name: str) -> float | None:
    for part, peak in PEAK_GB_PER_S.items():
        if part in name:
            return peak
    return None


def figures(work: Workload, seconds: float) -> dict[str, float]:
    if work.bytes_moved:
        return {"GB/s": work.bytes_moved / seconds / 1e9}
    return {"TFLOP/s": work.flops / seconds / 1e12}


def main() -> None:
    import torch

    on_gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="full" if on_gpu else "tiny")
    parser.add_argument("--repeats", type=int, default=20 if on_gpu else 1)
    parser.add_argument("--json", action="store_true", help="one JSON object per workload instead of lines")
    args = parser.parse_args()
    device = "cuda" if on_gpu else "cpu"
    synchronize = torch.cuda.synchronize if on_gpu else (lambda: None)
    name = torch.cuda.get_device_name() if on_gpu else "no GPU: Triton's interpreter on the CPU (times mean nothing)"
    print(f"# flowc gpu target on {name}, size {args.size}, median of {args.repeats}")
    peak = vendor_peak(name) if on_gpu else None
    copy = copy_bandwidth(torch, device, args.repeats, synchronize) if on_gpu and args.size == "full" else None
    if copy is not None:
        print(f"# torch copy: {copy:.0f} GB/s" + (f" ({copy / peak:.0%} of the {peak:.0f} GB/s peak)" if peak else ""))
    for make in WORKLOADS:
        work = make(args.size, torch, device)
        try:
            run, peer_args, configurations = compile_gpu(work.build)
        except (fc.errors.FlowcError, NotImplementedError) as error:
            print(f"{work.name}: skipped, the gpu target cannot compile it yet: {error}")
            continue
        arguments = work.peer_arguments if work.peer_arguments is not None else peer_args
        try:
            first = run()[0]
        except Exception as error:  # a kernel that fails to run: say which workload, go on with the others
            print(f"{work.name}: failed on the gpu target: {type(error).__name__}: {str(error).splitlines()[0]}")
            continue
        mismatch = _mismatch(torch, first, work.torch_fn(*arguments), work.tolerance)  # before any update
        if mismatch:
            print(f"{work.name}: flowc's result differs from torch's: {mismatch}")
        result: dict[str, Any] = {"workload": work.name, "flowc ms": timed(run, args.repeats, synchronize) * 1e3}
        result.update({f"flowc {k}": v for k, v in figures(work, result["flowc ms"] / 1e3).items()})
        if work.bytes_moved and peak:
            result["flowc of peak"] = result["flowc GB/s"] / peak
        if work.bytes_moved and copy:
            result["flowc of copy"] = result["flowc GB/s"] / copy
        if on_gpu:
            peers = {"torch": work.torch_fn, "torch.compile": torch.compile(work.torch_fn)}
            if work.matmul_peer is not None:
                peers["torch.matmul"] = work.matmul_peer
            for peer, fn in peers.items():
                try:
                    result[f"{peer} ms"] = timed(lambda fn=fn: fn(*arguments), args.repeats, synchronize) * 1e3
                except Exception as error:  # a peer that fails (torch.compile without a compiler) is noted
                    result[f"{peer} ms"] = float("nan")
                    print(f"# {work.name}: {peer} failed: {type(error).__name__}: {error}".splitlines()[0])
            if work.matmul_peer is not None:
                result["flowc of torch.matmul"] = result["torch.matmul ms"] / result["flowc ms"]
        print(json.dumps(result) if args.json else _line(result))
        for line in configurations():  # after the timed runs: on a GPU, the tuner's choices
            print(f"# {work.name}: {line}")


def _mismatch(torch: Any, got: Any, peer: Any, tolerance: float) -> str | None:
    """Why flowc's result is not torch's within `tolerance` (relative to the largest magnitude), or None."""
    want = peer[0] if isinstance(peer, tuple) else peer
    got, want = got.float().cpu(), want.float().cpu()
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)}, torch's {tuple(want.shape)}"
    error = (got - want).abs().max().item() if got.numel() else 0.0
    scale = max(want.abs().max().item() if want.numel() else 0.0, 1e-30)
    return None if error <= tolerance * scale else f"largest difference {error:.3g} on values up to {scale:.3g}"


def _line(result: dict[str, Any]) -> str:
    parts = [result["workload"]]
    for key, value in result.items():
        if key == "workload":
            continue
        parts.append(f"{key} {value:.1%}" if "of" in key.split() else f"{key} {value:.3g}")
    return ": ".join(parts[:1]) + ": " + ", ".join(parts[1:])


if __name__ == "__main__":
    main()
