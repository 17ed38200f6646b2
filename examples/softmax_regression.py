"""Softmax regression on scikit-learn's bundled digits (8x8 images, 10 classes).

The model of DESIGN.md: logits = x @ W + b, mean sparse softmax cross entropy.
For now this runs the forward pass over the data in batches and prints the
loss; training (fc.gradients) and the native target come in later issues.

    python examples/softmax_regression.py [--target reference] [--batch 100]
"""

from __future__ import annotations

import argparse

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


def build_model(features: int = 64, classes: int = 10) -> dict[str, object]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(0)
        x = fc.placeholder(fc.float32, shape=[None, features], name="x")
        y = fc.placeholder(fc.int32, shape=[None], name="y")
        W = fc.Variable(fc.random_normal([features, classes], stddev=0.01), name="W")
        b = fc.Variable(fc.zeros([classes]), name="b")
        logits = fc.matmul(x, W) + b
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        correct = fc.equal(fc.argmax(logits, axis=1, output_type=fc.int32), y)
        accuracy = fc.reduce_mean(fc.cast(correct, fc.float32))
        init = fc.global_variables_initializer()
    return {"graph": g, "x": x, "y": y, "loss": loss, "accuracy": accuracy, "init": init}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="reference", help="Session target")
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = load_data()
    m = build_model()
    with fc.Session(target=args.target, graph=m["graph"]) as sess:
        sess.run(m["init"])
        losses = []
        for start in tqdm(range(0, len(x_train), args.batch), desc="forward", unit="batch"):
            feed = {m["x"]: x_train[start:start + args.batch], m["y"]: y_train[start:start + args.batch]}
            losses.append(sess.run(m["loss"], feed))
        print(f"batch losses: {' '.join(f'{l:.4f}' for l in losses)}")
        train_loss, train_acc = sess.run([m["loss"], m["accuracy"]], {"x": x_train, "y": y_train})
        test_loss, test_acc = sess.run([m["loss"], m["accuracy"]], {"x:0": x_test, "y:0": y_test})
    print(f"untrained model: train loss {train_loss:.4f} (ln 10 = {np.log(10):.4f}), accuracy {train_acc:.3f}")
    print(f"                 test loss  {test_loss:.4f}, accuracy {test_acc:.3f}")


if __name__ == "__main__":
    main()
