"""A two-layer perceptron (64 -> 128 relu -> 10) on scikit-learn's digits, trained with Adam.

The same data and split as softmax_regression.py; `fc.train.AdamOptimizer`
builds the update (gradients, slot variables m and v, bias-corrected step),
and each step is one native call.

    python examples/mlp.py [--target cpu] [--epochs 40] [--batch 64] [--hidden 128] [--lr 0.005]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

import flowc as fc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from softmax_regression import fit, print_result  # noqa: E402  (one data split and loop for both examples)


def build_model(hidden: int, learning_rate: float, features: int = 64, classes: int = 10) -> dict[str, Any]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(0)
        x = fc.placeholder(fc.float32, shape=[None, features], name="x")
        y = fc.placeholder(fc.int32, shape=[None], name="y")
        with fc.name_scope("hidden"):  # He initialization for the relu layer
            W1 = fc.Variable(fc.random_normal([features, hidden], stddev=math.sqrt(2.0 / features)), name="W")
            b1 = fc.Variable(fc.zeros([hidden]), name="b")
        with fc.name_scope("out"):
            W2 = fc.Variable(fc.random_normal([hidden, classes], stddev=math.sqrt(1.0 / hidden)), name="W")
            b2 = fc.Variable(fc.zeros([classes]), name="b")
        h = fc.relu(fc.matmul(x, W1) + b1)
        logits = fc.matmul(h, W2) + b2
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = fc.train.AdamOptimizer(learning_rate).minimize(loss)
        correct = fc.equal(fc.argmax(logits, axis=1, output_type=fc.int32), y)
        accuracy = fc.reduce_mean(fc.cast(correct, fc.float32))
        init = fc.global_variables_initializer()
    return {"graph": g, "x": x, "y": y, "loss": loss, "train": train, "accuracy": accuracy, "init": init}


def train(target: str = "cpu", epochs: int = 40, batch: int = 64, hidden: int = 128, learning_rate: float = 0.005,
          progress: bool = True) -> dict[str, Any]:
    """Train with Adam; returns the per-epoch mean losses and the final accuracies."""
    return fit(build_model(hidden, learning_rate), target, epochs, batch, progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu", help="Session target: cpu (native), gpu (Triton) or reference (numpy)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.005)
    args = parser.parse_args()
    print_result(train(args.target, args.epochs, args.batch, args.hidden, args.lr))


if __name__ == "__main__":
    main()
