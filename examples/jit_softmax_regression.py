"""Softmax regression on scikit-learn's digits, as a jitted training step instead of a graph and a Session.

The model of examples/softmax_regression.py written as JAX users write it:
the parameters are a dict of arrays, the step is a Python function that
returns the loss and the updated parameters (fc.value_and_grad), and
@fc.jit traces it once and runs it natively; donate_argnums=0 writes the
update into the parameters' own buffers.

    python examples/jit_softmax_regression.py [--epochs 30] [--batch 100] [--lr 0.5]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

import flowc as fc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from softmax_regression import load_data  # noqa: E402


def loss_fn(params: dict[str, Any], x: Any, y: Any) -> Any:
    logits = fc.matmul(x, params["W"]) + params["b"]
    return fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


def make_step(learning_rate: float) -> Any:
    @fc.jit(donate_argnums=0)
    def step(params, x, y):
        loss, grads = fc.value_and_grad(loss_fn)(params, x, y)
        return loss, {name: params[name] - learning_rate * grads[name] for name in params}

    return step


@fc.jit
def accuracy(params, x, y):
    predicted = fc.argmax(fc.matmul(x, params["W"]) + params["b"], axis=1, output_type=fc.int32)
    return fc.reduce_mean(fc.cast(fc.equal(predicted, y), fc.float32))


def train(epochs: int = 30, batch: int = 100, learning_rate: float = 0.5,
          params: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Minibatch SGD over the same shuffles as examples/softmax_regression.py; the loss per epoch."""
    x_train, y_train, x_test, y_test = load_data()
    rng = np.random.default_rng(0)
    params = params or {"W": (rng.standard_normal((64, 10)) * 0.01).astype(np.float32),
                        "b": np.zeros(10, np.float32)}
    step = make_step(learning_rate)
    order_rng = np.random.default_rng(1)
    curve = []
    for _ in range(epochs):
        order = order_rng.permutation(len(x_train))
        losses = []
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            loss, params = step(params, x_train[rows], y_train[rows])  # a last, smaller batch compiles once more
            losses.append(loss)
        curve.append(float(np.mean(losses)))
    return {"curve": curve, "params": params, "compiles": step.compiles,
            "train_accuracy": float(accuracy(params, x_train, y_train)),
            "test_accuracy": float(accuracy(params, x_test, y_test))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()
    result = train(args.epochs, args.batch, args.lr)
    for epoch, loss in enumerate(result["curve"], 1):
        print(f"epoch {epoch:3d}  loss {loss:.4f}")
    print(f"train accuracy {result['train_accuracy']:.3f}  test accuracy {result['test_accuracy']:.3f}  "
          f"({result['compiles']} compiles of the step)")


if __name__ == "__main__":
    main()
