"""A LeNet-style convolutional network on scikit-learn's digits (8x8 images, 10 classes), trained natively.

Two 3x3 convolutions (relu, 2x2 max pooling after each) and a dense layer, written with
`fc.nn.conv2d`, `fc.nn.bias_add` and `fc.nn.max_pool` as a TF1 program writes them; the same
data split and loop as softmax_regression.py, Adam as in mlp.py.

    python examples/cnn.py [--target cpu] [--epochs 15] [--batch 64] [--lr 0.01]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

import flowc as fc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from softmax_regression import fit, print_result  # noqa: E402  (one data split and loop for every example)


def conv_layer(x: fc.Tensor, channels_in: int, channels_out: int) -> fc.Tensor:
    """3x3 SAME convolution, bias, relu, then 2x2 max pooling: halves the image."""
    W = fc.Variable(fc.random_normal([3, 3, channels_in, channels_out], stddev=math.sqrt(2.0 / (9 * channels_in))),
                    name="W")
    b = fc.Variable(fc.zeros([channels_out]), name="b")
    h = fc.nn.relu(fc.nn.bias_add(fc.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding="SAME"), b))
    return fc.nn.max_pool(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="VALID")


def build_model(learning_rate: float, classes: int = 10) -> dict[str, Any]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(0)
        x = fc.placeholder(fc.float32, shape=[None, 64], name="x")
        y = fc.placeholder(fc.int32, shape=[None], name="y")
        images = fc.reshape(x, [-1, 8, 8, 1])
        with fc.name_scope("conv1"):
            h1 = conv_layer(images, 1, 16)  # [N, 4, 4, 16]
        with fc.name_scope("conv2"):
            h2 = conv_layer(h1, 16, 32)  # [N, 2, 2, 32]
        with fc.name_scope("out"):
            W = fc.Variable(fc.random_normal([2 * 2 * 32, classes], stddev=math.sqrt(1.0 / 128)), name="W")
            b = fc.Variable(fc.zeros([classes]), name="b")
            logits = fc.matmul(fc.reshape(h2, [-1, 2 * 2 * 32]), W) + b
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = fc.train.AdamOptimizer(learning_rate).minimize(loss)
        correct = fc.equal(fc.argmax(logits, axis=1, output_type=fc.int32), y)
        accuracy = fc.reduce_mean(fc.cast(correct, fc.float32))
        init = fc.global_variables_initializer()
    return {"graph": g, "x": x, "y": y, "loss": loss, "train": train, "accuracy": accuracy, "init": init}


def train(target: str = "cpu", epochs: int = 15, batch: int = 64, learning_rate: float = 0.01,
          progress: bool = True) -> dict[str, Any]:
    """Train with Adam; returns the per-epoch mean losses and the final accuracies."""
    return fit(build_model(learning_rate), target, epochs, batch, progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu", help="Session target: cpu (native) or reference (numpy)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    print_result(train(args.target, args.epochs, args.batch, args.lr))


if __name__ == "__main__":
    main()
