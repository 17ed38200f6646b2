"""The TF1 tutorial programs of issue 20 (examples/tf1/): each runs as written (`fc.` for `tf.`) on the
"cpu" and "reference" targets with few steps, the two targets agree, and training improves."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import flowc as fc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "tf1")
RTOL = 1e-4


def example(name: str):  # type: ignore[no-untyped-def]
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)


def on_both_targets(name: str, **arguments):  # type: ignore[no-untyped-def]
    main = example(name).main
    return main(target="cpu", **arguments), main(target="reference", **arguments)


def test_mnist_softmax_runs_as_a_script() -> None:
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, "mnist_softmax.py"), "--steps", "30"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # The tutorial prints the test accuracy alone; chance is 0.1.
    assert float(done.stdout.split()[-1]) > 0.8, done.stdout


def test_mnist_softmax_matches_reference_and_learns() -> None:
    native, reference = on_both_targets("mnist_softmax", steps=40)
    np.testing.assert_allclose(native["losses"], reference["losses"], rtol=RTOL)
    np.testing.assert_allclose(native["weights"], reference["weights"], rtol=RTOL, atol=1e-6)
    assert native["accuracy"] == pytest.approx(reference["accuracy"], abs=1 / 360)
    assert native["losses"][-1] < 0.5 * native["losses"][0]
    assert native["accuracy"] > 0.8


def test_deep_mnist_matches_reference_and_learns(capsys: pytest.CaptureFixture[str]) -> None:
    # 80 steps: the ops' seeds count the graph's ops before them (op_seed), so how many ops a layer
    # makes moves the initial weights; from the seeds the pools of Note [pooling of disjoint windows]
    # give, 60 steps reached 0.32 and 80 reach 0.54.
    native, reference = on_both_targets("deep_mnist", steps=80, report=20)
    printed = capsys.readouterr().out
    assert "step 40, training accuracy" in printed and "test accuracy" in printed
    np.testing.assert_allclose(native["train_accuracies"], reference["train_accuracies"], rtol=RTOL)
    assert native["loss"] == pytest.approx(reference["loss"], rel=RTOL)
    assert native["accuracy"] == pytest.approx(reference["accuracy"], abs=1 / 360)
    assert native["train_accuracies"][-1] > native["train_accuracies"][0]
    assert native["accuracy"] > 0.4  # chance: 0.1


def test_mlp_saver_restores_into_a_new_session(tmp_path) -> None:  # type: ignore[no-untyped-def]
    main = example("mlp_saver").main
    native = main(steps=100, target="cpu", checkpoint_dir=str(tmp_path / "cpu"))
    reference = main(steps=100, target="reference", checkpoint_dir=str(tmp_path / "reference"))
    np.testing.assert_allclose(native["losses"], reference["losses"], rtol=RTOL)
    for run in (native, reference):
        assert run["step"] == 100 and run["saved_path"].endswith("model.ckpt-100")
        assert run["accuracy"] == run["accuracy_before"]  # the restored model is the trained one
    assert native["accuracy"] == pytest.approx(reference["accuracy"], abs=1 / 360)
    assert np.mean(native["losses"][-10:]) < 0.5 * native["losses"][0]
    assert native["accuracy"] > 0.7


def test_layers_cnn_with_batch_normalization_matches_reference_and_learns() -> None:
    # Few steps: later, ties in max pooling and relu let float rounding steer the two targets apart.
    native, reference = on_both_targets("layers_cnn_bn", steps=40, report=20)
    np.testing.assert_allclose(native["losses"], reference["losses"], rtol=RTOL)
    assert native["loss"] == pytest.approx(reference["loss"], rel=RTOL)
    for moving, expected in zip(native["moving_means"], reference["moving_means"], strict=True):
        np.testing.assert_allclose(moving, expected, rtol=RTOL, atol=1e-6)
    # The UPDATE_OPS ran: the moving means left their zero initial value.
    assert len(native["moving_means"]) == 2 and all(np.abs(m).max() > 0.01 for m in native["moving_means"])
    assert np.mean(native["losses"][-10:]) < 0.5 * native["losses"][0]
    assert native["accuracy"] > 0.3  # chance: 0.1


def test_linear_regression_with_shapeless_float_placeholders() -> None:
    native, reference = on_both_targets("linear_regression", steps=20, display_step=5)
    assert native["dtypes"] == (fc.float32,) * 2  # placeholder("float") is float32, as in TF1
    np.testing.assert_allclose(native["costs"], reference["costs"], rtol=RTOL)
    assert native["W"] == pytest.approx(reference["W"], rel=RTOL)
    assert native["b"] == pytest.approx(reference["b"], rel=RTOL)
    assert native["costs"] == sorted(native["costs"], reverse=True)
    assert native["training_cost"] < 0.15  # from ~0.55 after five epochs
    # The whole arrays fed to the shapeless placeholders: the cost of all seventeen samples at once.
    train_X, train_Y = native["train"]
    want = np.sum((native["W"] * train_X + native["b"] - train_Y) ** 2) / (2 * len(train_X))
    assert native["training_cost"] == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(native["fitted"], native["W"] * train_X + native["b"], rtol=1e-6)
    assert native["testing_cost"] == pytest.approx(reference["testing_cost"], rel=RTOL)


def test_word2vec_skip_gram_matches_reference_and_learns() -> None:
    native, reference = on_both_targets("word2vec_basic", steps=300, report=50)
    np.testing.assert_allclose(native["averages"], reference["averages"], rtol=RTOL)
    np.testing.assert_allclose(native["embeddings"], reference["embeddings"], rtol=RTOL, atol=1e-5)
    assert native["averages"][-1] < native["averages"][0] - 0.2
    # Words of one generated topic share contexts: each validation word's nearest word is of its topic.
    topic_of = native["topic_of"]
    for word, nearest in native["nearest"].items():
        assert topic_of.get(nearest[0]) == topic_of[word], (word, nearest)
