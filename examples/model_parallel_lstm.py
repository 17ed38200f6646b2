"""A model-parallel stacked LSTM: one layer per task, trained to recall a sequence's first symbol.

    python examples/model_parallel_lstm.py [--steps 60]                        # one process, every task
    .venv/bin/mpiexec -n 2 .venv/bin/python examples/model_parallel_lstm.py   # a task per rank

Layer 0 (its LSTM over the sequence, fc.nn.dynamic_rnn) is placed on /job:worker/task:0 and
layer 1 with the dense read-out and the loss on /job:worker/task:1. Under mpiexec each rank
runs its task's partition: rank 0 sends layer 0's outputs to rank 1, which sends back the
gradient that layer 0's backward pass needs; each rank keeps and updates its own layer's
variables. One process runs the same graph unpartitioned, and the losses are the same, bit
for bit. Rank 0 prints them.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

import flowc as fc

SYMBOLS, LENGTH = 4, 6
TASKS = ("/job:worker/task:0", "/job:worker/task:1")


def batch_of_sequences(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot sequences [batch, LENGTH, SYMBOLS] and their first symbols [batch]."""
    symbols = rng.integers(0, SYMBOLS, (batch, LENGTH))
    return np.eye(SYMBOLS, dtype=np.float32)[symbols], symbols[:, 0].astype(np.int32)


def build_model(hidden: int, learning_rate: float) -> dict[str, Any]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(0)
        x = fc.placeholder(fc.float32, shape=[None, LENGTH, SYMBOLS], name="x")
        labels = fc.placeholder(fc.int32, shape=[None], name="labels")
        outputs = x
        for layer, task in enumerate(TASKS):
            with fc.device(task):  # the layer's variables, its loop and (by colocation) its gradients
                cell = fc.nn.rnn_cell.BasicLSTMCell(hidden)
                outputs, _ = fc.nn.dynamic_rnn(cell, outputs, dtype=fc.float32, scope=f"layer{layer}")
        with fc.device(TASKS[-1]):
            w = fc.Variable(fc.random_normal([hidden, SYMBOLS], stddev=1.0 / np.sqrt(hidden)), name="w")
            b = fc.Variable(fc.zeros([SYMBOLS]), name="b")
            logits = fc.matmul(outputs[:, -1, :], w) + b
            loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        train = fc.train.GradientDescentOptimizer(learning_rate).minimize(loss)  # updates follow their variable
        init = fc.global_variables_initializer()
    return {"graph": g, "x": x, "labels": labels, "loss": loss, "train": train, "init": init}


def train(steps: int = 60, hidden: int = 16, batch: int = 32, learning_rate: float = 0.5,
          target: str = "cpu") -> list[float]:
    """The loss of each training step (every rank gets every fetch)."""
    model = build_model(hidden, learning_rate)
    rng = np.random.default_rng(0)  # the same batches on every rank: feeds are given everywhere
    losses = []
    with fc.Session(graph=model["graph"], target=target) as sess:
        sess.run(model["init"])
        for _ in range(steps):
            x, labels = batch_of_sequences(rng, batch)
            loss, _ = sess.run([model["loss"], model["train"]], {model["x"]: x, model["labels"]: labels})
            losses.append(float(loss))
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--target", default="cpu", help="Session target: cpu (native) or reference (numpy)")
    args = parser.parse_args()
    losses = train(args.steps, args.hidden, target=args.target)
    if os.environ.get("PMI_RANK", "0") == "0":  # mpiexec (MPICH) names each rank; one process is rank 0
        for step, loss in enumerate(losses):
            print(f"step {step:3d}  cross entropy {loss!r}")


if __name__ == "__main__":
    main()
