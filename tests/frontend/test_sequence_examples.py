"""The sequence examples of issue 17 (examples/rnn_sequence.py, stacked_lstm.py, decode.py): each runs as a
script, native training follows the reference target's, and the in-graph decoders pick exactly the tokens
of a plain numpy decoder."""

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")


def example(name: str):  # type: ignore[no-untyped-def]
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name)


def run_script(name: str, *args: str) -> str:
    # One pool thread: on a small loaded machine, OpenBLAS handing small products to a second thread that
    # is not running costs more than the product (the examples' products are 32 x 32 or so).
    env = {**os.environ, "FLOWC_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, f"{name}.py"), *args], check=False,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- a tanh RNN by fc.while_loop -------------------------------------------------------------------


def test_rnn_sequence_runs_as_a_script_and_learns() -> None:
    out = run_script("rnn_sequence", "--iterations", "60", "--steps", "12")
    first, last = (float(part.split()[-1].rstrip(",")) for part in out.splitlines()[-1].split(":")[1].split("last ten"))
    # Repeating the last input would score ~0.036; an untrained network ~0.9.
    assert last < 0.03 < first, out


def test_rnn_sequence_training_on_cpu_follows_the_reference() -> None:
    rnn_sequence = example("rnn_sequence")
    # The script test's sizes, so that its compiled library comes from the disk cache.
    native = rnn_sequence.train("cpu", iterations=5, steps=12, progress=False)
    reference = rnn_sequence.train("reference", iterations=5, steps=12, progress=False)
    np.testing.assert_allclose(native, reference, rtol=1e-4)


# -- the seed's stacked LSTM ---------------------------------------------------------------------------


def test_stacked_lstm_reaches_its_stated_loss() -> None:
    out = run_script("stacked_lstm")
    last = out.splitlines()[-1]
    assert last.startswith("reached cross entropy < 0.05"), out
    assert float(last.split()[-1]) > 0.9, out  # accuracy on new sequences, against 0.25 for guessing


def test_stacked_lstm_training_on_cpu_follows_the_reference() -> None:
    stacked_lstm = example("stacked_lstm")
    kwargs = dict(iterations=3, threshold=0.0, batch=5, progress=False)  # the script's graph: from the disk cache
    native = stacked_lstm.train("cpu", **kwargs)
    reference = stacked_lstm.train("reference", **kwargs)
    np.testing.assert_allclose(native["losses"], reference["losses"], rtol=1e-4)
    assert native["losses"][0] == pytest.approx(np.log(4), abs=0.05)  # four layers of fresh cells: about a guess


# -- greedy and beam search in the graph -------------------------------------------------------------


@pytest.mark.parametrize("max_length", [12, 4], ids=["hypotheses_end", "cut_at_max_length"])
def test_decoders_pick_the_tokens_numpy_picks(max_length: int) -> None:
    decode = example("decode")
    inputs = np.random.default_rng(1).normal(0, 1, (6, decode.FEATURES))
    got = decode.decode(inputs, max_length, target="cpu")
    want = decode.decode_numpy(inputs, max_length)
    for name, g, w in zip(["greedy tokens", "greedy scores", "beam tokens", "beam scores"], got, want):
        assert g.shape == w.shape, name
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-9, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)
    greedy_scores, beam_scores = got[1], got[3]
    assert np.all(beam_scores[:, 0] >= greedy_scores - 1e-12)
    assert np.all(np.diff(beam_scores, axis=1) <= 0)  # hypotheses best first
    if max_length == 12:  # these inputs exercise both ends: ties with greedy and strictly better beams
        assert np.any(beam_scores[:, 0] > greedy_scores + 1e-6) and np.any(beam_scores[:, 0] == greedy_scores)
        assert np.all(got[0][:, -1] == decode.EOS)


def test_decoders_agree_on_the_reference_target() -> None:
    decode = example("decode")
    inputs = np.random.default_rng(2).normal(0, 1, (3, decode.FEATURES))
    for got, want in zip(decode.decode(inputs, 8, target="reference"), decode.decode_numpy(inputs, 8)):
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_decode_runs_as_a_script() -> None:
    out = run_script("decode")  # the graph of the first test above: from the disk cache
    assert "input 5: greedy" in out and "lower on 0" in out, out
