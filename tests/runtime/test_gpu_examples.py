"""The training steps of examples/ on the gpu target against the reference target: the MLP (Adam,
sparse softmax cross entropy, random initialization) and softmax regression (SGD), a few steps each on
small batches, parameters kept on the device between steps; every kernel also builds to PTX."""

import os
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402

from gpu_check import build_ptx  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
import mlp  # noqa: E402
import softmax_regression  # noqa: E402


def _train(model, target, batches):
    with fc.Session(target=target, graph=model["graph"]) as session:
        session.run(model["init"])
        losses = [session.run([model["loss"], model["train"]], {model["x"]: x, model["y"]: y})[0] for x, y in batches]
        accuracy = session.run(model["accuracy"], {model["x"]: batches[0][0], model["y"]: batches[0][1]})
        if target == "gpu":
            assert build_ptx(session) > 0
        return np.array(losses), accuracy


def _batches(features, count=3, rows=12):
    """One batch, `count` times: its loss must fall step by step."""
    rng = np.random.default_rng(0)
    return [(rng.random((rows, features), dtype=np.float32), rng.integers(0, 10, rows).astype(np.int32))] * count


@pytest.mark.parametrize("example", ["mlp", "softmax_regression"])
def test_training_steps_match_the_reference(example):
    model = mlp.build_model(16, 0.01) if example == "mlp" else softmax_regression.build_model(0.5)
    batches = _batches(64)
    gpu_losses, gpu_accuracy = _train(model, "gpu", batches)
    reference_losses, reference_accuracy = _train(model, "reference", batches)
    np.testing.assert_allclose(gpu_losses, reference_losses, rtol=1e-5)
    assert np.all(np.diff(gpu_losses) < 0)
    np.testing.assert_allclose(gpu_accuracy, reference_accuracy)
