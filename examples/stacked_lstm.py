"""A stacked LSTM (4 layers, 8 steps by fc.nn.dynamic_rnn) trained with Adam to recall a sequence's first symbol.

    python examples/stacked_lstm.py [--target cpu] [--iterations 400] [--threshold 0.05]

Each input is a sequence of 8 random symbols out of 4 (one-hot); the label is the first one,
so the network must carry it through 7 more steps and 4 layers. fc.nn.rnn_cell.MultiRNNCell
stacks four BasicLSTMCells; fc.nn.dynamic_rnn runs it in one fc.while_loop over the time
steps, and a dense layer reads the last step's output. Training stops when the mean cross
entropy of an iteration falls below --threshold (guessing scores ln 4 = 1.39).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import flowc as fc

SYMBOLS, STEPS, LAYERS = 4, 8, 4


def batch_of_sequences(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot sequences [batch, STEPS, SYMBOLS] and their first symbols [batch]."""
    symbols = rng.integers(0, SYMBOLS, (batch, STEPS))
    return np.eye(SYMBOLS, dtype=np.float32)[symbols], symbols[:, 0].astype(np.int32)


def build_model(hidden: int, learning_rate: float) -> dict[str, Any]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(0)
        x = fc.placeholder(fc.float32, shape=[None, STEPS, SYMBOLS], name="x")
        labels = fc.placeholder(fc.int32, shape=[None], name="labels")
        cell = fc.nn.rnn_cell.MultiRNNCell([fc.nn.rnn_cell.BasicLSTMCell(hidden) for _ in range(LAYERS)])
        outputs, _ = fc.nn.dynamic_rnn(cell, x, dtype=fc.float32)  # [batch, STEPS, hidden]
        w = fc.Variable(fc.random_normal([hidden, SYMBOLS], stddev=1.0 / np.sqrt(hidden)), name="w")
        b = fc.Variable(fc.zeros([SYMBOLS]), name="b")
        logits = fc.matmul(outputs[:, -1, :], w) + b
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        train = fc.train.AdamOptimizer(learning_rate).minimize(loss)
        correct = fc.equal(fc.argmax(logits, axis=1, output_type=fc.int32), labels)
        accuracy = fc.reduce_mean(fc.cast(correct, fc.float32))
        init = fc.global_variables_initializer()
    return {"graph": g, "x": x, "labels": labels, "loss": loss, "accuracy": accuracy, "train": train, "init": init}


def train(target: str = "cpu", iterations: int = 400, threshold: float = 0.05, hidden: int = 32, batch: int = 64,
          learning_rate: float = 0.01, progress: bool = True) -> dict[str, Any]:
    """Adam until an iteration's loss is below `threshold` (or `iterations` run out): the losses, and the
    accuracy on a fresh batch."""
    model = build_model(hidden, learning_rate)
    rng = np.random.default_rng(0)
    losses: list[float] = []
    with fc.Session(graph=model["graph"], target=target) as sess:
        sess.run(model["init"])
        for iteration in range(iterations):
            x, labels = batch_of_sequences(rng, batch)
            loss, _ = sess.run([model["loss"], model["train"]], {model["x"]: x, model["labels"]: labels})
            losses.append(float(loss))
            if progress and (iteration % 25 == 0 or loss < threshold):
                print(f"iteration {iteration:4d}  cross entropy {loss:.4f}")
            if loss < threshold:
                break
        x, labels = batch_of_sequences(rng, 1000)
        accuracy = float(sess.run(model["accuracy"], {model["x"]: x, model["labels"]: labels}))
    return {"losses": losses, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu", help="Session target: cpu (native) or reference (numpy)")
    parser.add_argument("--iterations", type=int, default=400, help="at most this many Adam steps")
    parser.add_argument("--threshold", type=float, default=0.05, help="stop once the loss is below this")
    parser.add_argument("--hidden", type=int, default=32)
    args = parser.parse_args()
    result = train(args.target, args.iterations, args.threshold, args.hidden)
    losses = result["losses"]
    reached = "reached" if losses[-1] < args.threshold else "did not reach"
    print(f"{reached} cross entropy < {args.threshold} after {len(losses)} iterations "
          f"(last {losses[-1]:.4f}); accuracy on 1000 new sequences: {result['accuracy']:.3f}")


if __name__ == "__main__":
    main()
