"""Data-parallel training of the MLP example (mlp.py) on scikit-learn's digits, over MPI.

Every rank builds the same model; fc.distribute.DistributedOptimizer averages the gradients over the
ranks (one all_reduce per bucket of gradients) before Adam's update, and
broadcast_global_variables starts every rank from rank 0's weights. Each step, the ranks take
equal shares of one global batch, so N ranks train as one process would on that batch: the same
curve, each rank doing 1/N of the work. Rank 0 prints the progress.

    python examples/distributed_mlp.py [--epochs 20] [--batch 128] [--hidden 128] [--lr 0.005]
    flowc run -n 2 examples/distributed_mlp.py        (or -n 4; or mpiexec -n 2 python examples/...)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

import flowc as fc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlp import build_model  # noqa: E402
from softmax_regression import load_data  # noqa: E402


def train(epochs: int = 20, batch: int = 128, hidden: int = 128, learning_rate: float = 0.005, target: str = "cpu",
          progress: bool = True) -> dict[str, Any]:
    """Train on this rank's share of each global batch of `batch` rows; returns the curve, the
    accuracies (rank 0's, the same on every rank), the steps and the seconds the steps took."""
    rank, size = fc.distribute.rank(), fc.distribute.size()
    if batch % size:
        raise SystemExit(f"the global batch ({batch}) must split evenly over {size} ranks")
    share = batch // size
    optimizer = fc.distribute.DistributedOptimizer(fc.train.AdamOptimizer(learning_rate))
    m = build_model(hidden, learning_rate, optimizer=optimizer)
    with m["graph"].as_default():
        sync = fc.distribute.broadcast_global_variables(root_rank=0)
    x_train, y_train, x_test, y_test = load_data()
    order_rng = np.random.default_rng(1)  # the same on every rank: they agree on each global batch
    curve, steps, seconds = [], 0, 0.0  # steps and seconds after the first step (which compiles)
    with fc.Session(target=target, graph=m["graph"]) as sess:
        sess.run(m["init"])
        sess.run(sync)
        for epoch in range(epochs):
            order = order_rng.permutation(len(x_train))
            losses = []
            for start in range(0, len(order) - batch + 1, batch):  # whole global batches only
                rows = order[start + rank * share:start + (rank + 1) * share]
                started = time.perf_counter()
                loss, _ = sess.run([m["loss"], m["train"]], {m["x"]: x_train[rows], m["y"]: y_train[rows]})
                if losses or epoch:
                    seconds += time.perf_counter() - started
                    steps += 1
                losses.append(loss)
            curve.append(float(np.mean(losses)))
            if progress and rank == 0:
                print(f"epoch {epoch + 1:3d}  loss {curve[-1]:.4f} (rank 0's share)  {steps / seconds:7.1f} steps/s",
                      flush=True)
        train_accuracy = float(sess.run(m["accuracy"], {m["x"]: x_train, m["y"]: y_train}))
        test_accuracy = float(sess.run(m["accuracy"], {m["x"]: x_test, m["y"]: y_test}))
    return {"curve": curve, "train_accuracy": train_accuracy, "test_accuracy": test_accuracy, "steps": steps,
            "seconds": seconds, "ranks": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128, help="the global batch, split evenly over the ranks")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--target", default="cpu", help="Session target: cpu (native) or reference (numpy)")
    args = parser.parse_args()
    result = train(args.epochs, args.batch, args.hidden, args.lr, args.target)
    if fc.distribute.rank() == 0:
        print(f"{result['ranks']} rank(s): train accuracy {result['train_accuracy']:.3f}, "
              f"test accuracy {result['test_accuracy']:.3f}, {result['steps'] / result['seconds']:.1f} steps/s")


if __name__ == "__main__":
    main()
