"""Softmax regression on scikit-learn's bundled digits (8x8 images, 10 classes), trained natively.

The TensorFlow 1 program of DESIGN.md, as written there: placeholders,
Variables, logits = x @ W + b, mean sparse softmax cross entropy,
fc.gradients, assign_sub, group, and a loop of sess.run with feed_dict.
Each step is one call of compiled native code (target "cpu").

    python examples/softmax_regression.py [--target cpu] [--epochs 30] [--batch 100] [--lr 0.5]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

import flowc as fc


def load_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits scaled to [0, 1], shuffled with `seed`, split 80/20 into train and test."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def build_model(learning_rate: float, features: int = 64, classes: int = 10) -> dict[str, Any]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(0)
        x = fc.placeholder(fc.float32, shape=[None, features], name="x")
        y = fc.placeholder(fc.int32, shape=[None], name="y")
        W = fc.Variable(fc.random_normal([features, classes], stddev=0.01), name="W")
        b = fc.Variable(fc.zeros([classes]), name="b")
        logits = fc.matmul(x, W) + b
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        gW, gb = fc.gradients(loss, [W, b])
        train = fc.group(fc.assign_sub(W, learning_rate * gW), fc.assign_sub(b, learning_rate * gb))
        correct = fc.equal(fc.argmax(logits, axis=1, output_type=fc.int32), y)
        accuracy = fc.reduce_mean(fc.cast(correct, fc.float32))
        init = fc.global_variables_initializer()
    return {"graph": g, "x": x, "y": y, "loss": loss, "train": train, "accuracy": accuracy, "init": init}


def train(target: str = "cpu", epochs: int = 30, batch: int = 100, learning_rate: float = 0.5,
          progress: bool = True) -> dict[str, Any]:
    """Train with minibatch SGD; returns the per-epoch mean losses and the final accuracies."""
    return fit(build_model(learning_rate), target, epochs, batch, progress)


def fit(m: dict[str, Any], target: str, epochs: int, batch: int, progress: bool) -> dict[str, Any]:
    """The seed's loop: sess.run([loss, train]) per shuffled minibatch, then accuracy on both splits."""
    x_train, y_train, x_test, y_test = load_data()
    order_rng = np.random.default_rng(1)
    curve = []
    with fc.Session(target=target, graph=m["graph"]) as sess:
        sess.run(m["init"])
        bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress)
        for _ in bar:
            order = order_rng.permutation(len(x_train))
            losses = []
            for start in range(0, len(order), batch):
                rows = order[start:start + batch]
                # The loss is from before this step's update (TensorFlow 1 ordering).
                loss, _ = sess.run([m["loss"], m["train"]], feed_dict={m["x"]: x_train[rows], m["y"]: y_train[rows]})
                losses.append(loss)
            curve.append(float(np.mean(losses)))
            bar.set_postfix(loss=f"{curve[-1]:.4f}")
        train_acc = sess.run(m["accuracy"], {"x": x_train, "y": y_train})
        test_acc = sess.run(m["accuracy"], {"x:0": x_test, "y:0": y_test})
    return {"curve": curve, "train_accuracy": float(train_acc), "test_accuracy": float(test_acc)}


def print_result(result: dict[str, Any]) -> None:
    print("loss per epoch:")
    for epoch, loss in enumerate(result["curve"], start=1):
        print(f"  {epoch:3d}  {loss:.4f}  {'#' * int(round(loss * 40))}")
    print(f"train accuracy {result['train_accuracy']:.3f}, test accuracy {result['test_accuracy']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu", help="Session target: cpu (native), gpu (Triton) or reference (numpy)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()
    print_result(train(args.target, args.epochs, args.batch, args.lr))


if __name__ == "__main__":
    main()
