"""Greedy decoding and a beam search of width 4, written entirely in the graph: one Session.run decodes a batch.

    python examples/decode.py [--target cpu] [--batch 6] [--max-length 12]

The model is a fixed, seeded random decoder over a vocabulary of 10 tokens (0 is GO, the first
input; 1 is EOS, which ends a hypothesis). An encoder maps each input vector x to the first
state, h_0 = tanh(x We); a step reads the previous token and the state:

    h_t = tanh(E[token_{t-1}] + h_{t-1} Wh + b),  log p(. | prefix) = log_softmax(h_t Wo + bo)

Both decoders are one fc.while_loop over time steps, each step writing its tokens into an
fc.TensorArray; the loop stops when every hypothesis has emitted EOS or at --max-length.
A sequence's score is the sum of its tokens' log-probabilities up to and including EOS.

- Greedy: the most likely next token of each sequence.
- Beam search: K = 4 hypotheses per input. Each step scores all K * V extensions (a finished
  hypothesis has one, EOS, at no cost), keeps the K best by K rounds of argmax with the winner
  masked out, and records each kept token and the hypothesis it extends (its parent) in two
  TensorArrays; the states follow their parents by a gather. A second while_loop walks the
  parents back from the last step to spell each final hypothesis out (TensorFlow's gather_tree).

It runs in float64, so the numpy decoder of the tests (decode_numpy below) picks the same tokens.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import flowc as fc

VOCABULARY, HIDDEN, FEATURES, BEAM = 10, 16, 8, 4
GO, EOS = 0, 1
MASKED = -1e9  # the score of an extension that may not be chosen (a finished hypothesis's non-EOS tokens)


def model_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    bias_out = rng.normal(0, 0.5, VOCABULARY)
    return {"encoder": rng.normal(0, 1.0, (FEATURES, HIDDEN)),
            "embedding": rng.normal(0, 1.0, (VOCABULARY, HIDDEN)),
            "recurrent": rng.normal(0, 1.0 / np.sqrt(HIDDEN), (HIDDEN, HIDDEN)),
            "bias": rng.normal(0, 0.1, HIDDEN),
            "out": rng.normal(0, 2.0 / np.sqrt(HIDDEN), (HIDDEN, VOCABULARY)),
            "bias_out": bias_out}


class Decoder:
    """The decoder's step as graph ops over the weights, held as float64 constants."""

    def __init__(self, weights: dict[str, np.ndarray]):
        self.w = {name: fc.constant(value, dtype=fc.float64) for name, value in weights.items()}

    def initial_state(self, x: fc.Tensor) -> fc.Tensor:
        return fc.tanh(fc.matmul(x, self.w["encoder"]))

    def step(self, tokens: fc.Tensor, state: fc.Tensor) -> tuple[fc.Tensor, fc.Tensor]:
        """(next state, log-probabilities of the next token) for rows of previous tokens and states."""
        state = fc.tanh(fc.gather(self.w["embedding"], tokens) + fc.matmul(state, self.w["recurrent"]) + self.w["bias"])
        return state, fc.nn.log_softmax(fc.matmul(state, self.w["out"]) + self.w["bias_out"])


def any_unfinished(finished: fc.Tensor) -> fc.Tensor:
    return fc.reduce_sum(fc.cast(fc.logical_not(finished), fc.int32)) > 0


def pad_after(tokens: fc.Tensor, steps: fc.Tensor, max_length: int) -> fc.Tensor:
    """Time-major `tokens` [max_length, ...] with the rows from `steps` on (never written) set to EOS."""
    time = fc.constant(np.arange(max_length, dtype=np.int32).reshape(-1, *[1] * (tokens.type.rank - 1)))
    return fc.where(time < steps, tokens, EOS)


def greedy(decoder: Decoder, x: fc.Tensor, max_length: int) -> tuple[fc.Tensor, fc.Tensor]:
    """Tokens [batch, max_length] (EOS after the end) and scores [batch]."""
    batch = x.shape[0]

    def body(t, previous, state, finished, score, tokens):  # type: ignore[no-untyped-def]
        state, log_probs = decoder.step(previous, state)
        token = fc.where(finished, EOS, fc.argmax(log_probs, axis=1, output_type=fc.int32))
        gain = fc.reduce_sum(log_probs * fc.one_hot(token, VOCABULARY, dtype=fc.float64), axis=1)
        score = score + fc.where(finished, 0.0, gain)
        return t + 1, token, state, fc.logical_or(finished, fc.equal(token, EOS)), score, tokens.write(t, token)

    start = [fc.constant(0), fc.fill([batch], GO, fc.int32), decoder.initial_state(x),
             fc.fill([batch], False, fc.bool_), fc.zeros([batch], fc.float64),
             fc.TensorArray(fc.int32, size=max_length, element_shape=[batch])]
    steps, _, _, _, score, tokens = fc.while_loop(
        lambda t, previous, state, finished, score, tokens: fc.logical_and(t < max_length, any_unfinished(finished)),
        body, start)
    return fc.transpose(pad_after(tokens.stack(), steps, max_length)), score


def k_best(candidates: fc.Tensor, k: int) -> tuple[fc.Tensor, fc.Tensor]:
    """Indices [batch, k] and values of the k largest of each row, best first, the first index on ties:
    k rounds of argmax, each masking its winner."""
    columns = candidates.shape[1]
    indices, values = [], []
    for _ in range(k):
        index = fc.argmax(candidates, axis=1, output_type=fc.int32)
        indices.append(index)
        values.append(fc.reduce_max(candidates, axis=1))
        candidates = fc.where(fc.one_hot(index, columns, dtype=fc.float64) > 0.5, -np.inf, candidates)
    return fc.stack(indices, axis=1), fc.stack(values, axis=1)


def beam_search(decoder: Decoder, x: fc.Tensor, max_length: int) -> tuple[fc.Tensor, fc.Tensor]:
    """Hypotheses [batch, BEAM, max_length] (EOS after the end), best first, and their scores [batch, BEAM]."""
    batch = x.shape[0]
    row_start = fc.constant(np.arange(batch, dtype=np.int32).reshape(-1, 1) * BEAM)  # first flat row of each input
    # Only the EOS extension of a finished hypothesis is allowed, at no cost.
    eos_only = fc.constant(np.where(np.arange(VOCABULARY) == EOS, 0.0, MASKED))

    def follow(values: fc.Tensor, parents: fc.Tensor) -> fc.Tensor:
        """values [batch * BEAM, ...] reordered so that row (b, k) is row (b, parents[b, k]) of before."""
        return fc.gather(values, fc.reshape(parents + row_start, [batch * BEAM]))

    def body(t, previous, state, finished, scores, tokens, parents):  # type: ignore[no-untyped-def]
        state, log_probs = decoder.step(previous, state)
        log_probs = fc.where(fc.reshape(finished, [batch, BEAM, 1]), eos_only,
                             fc.reshape(log_probs, [batch, BEAM, VOCABULARY]))
        candidates = fc.reshape(fc.reshape(scores, [batch, BEAM, 1]) + log_probs, [batch, BEAM * VOCABULARY])
        best, scores = k_best(candidates, BEAM)
        # Which hypothesis each winner extends (best // VOCABULARY, by comparisons), and with which token.
        parent = fc.cast(best >= VOCABULARY, fc.int32)
        for k in range(2, BEAM):
            parent = parent + fc.cast(best >= k * VOCABULARY, fc.int32)
        token = best - parent * VOCABULARY
        was_finished = fc.reshape(follow(fc.reshape(finished, [batch * BEAM]), parent), [batch, BEAM])
        finished = fc.logical_or(was_finished, fc.equal(token, EOS))
        return (t + 1, fc.reshape(token, [batch * BEAM]), follow(state, parent), finished, scores,
                tokens.write(t, token), parents.write(t, parent))

    first_state = fc.gather(decoder.initial_state(x), np.repeat(np.arange(batch, dtype=np.int32), BEAM))
    # All K hypotheses start as the same empty one; scoring the copies MASKED keeps them from being chosen twice.
    first_scores = fc.constant(np.tile([0.0] + [MASKED] * (BEAM - 1), (batch, 1)))
    start = [fc.constant(0), fc.fill([batch * BEAM], GO, fc.int32), first_state,
             fc.fill([batch, BEAM], False, fc.bool_), first_scores,
             fc.TensorArray(fc.int32, size=max_length, element_shape=[batch, BEAM]),
             fc.TensorArray(fc.int32, size=max_length, element_shape=[batch, BEAM])]
    steps, _, _, _, scores, tokens, parents = fc.while_loop(
        lambda t, previous, state, finished, scores, tokens, parents:
            fc.logical_and(t < max_length, any_unfinished(finished)), body, start)

    def back(t, hypothesis, spelled):  # type: ignore[no-untyped-def]
        """Step t of the hypotheses that end in beam slots `hypothesis` [batch, BEAM], walking backwards."""
        token, parent = (fc.reshape(follow(fc.reshape(array.read(t), [batch * BEAM]), hypothesis), [batch, BEAM])
                         for array in (tokens, parents))
        return t - 1, parent, spelled.write(t, token)

    final_slots = fc.constant(np.tile(np.arange(BEAM, dtype=np.int32), (batch, 1)))
    _, _, spelled = fc.while_loop(
        lambda t, hypothesis, spelled: t >= 0, back,
        [steps - 1, final_slots, fc.TensorArray(fc.int32, size=max_length, element_shape=[batch, BEAM])])
    return fc.transpose(pad_after(spelled.stack(), steps, max_length), [1, 2, 0]), scores


def build(batch: int, max_length: int, seed: int = 0) -> dict[str, Any]:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, shape=[batch, FEATURES], name="x")
        decoder = Decoder(model_weights(seed))
        greedy_tokens, greedy_scores = greedy(decoder, x, max_length)
        beam_tokens, beam_scores = beam_search(decoder, x, max_length)
    return {"graph": g, "x": x, "fetches": [greedy_tokens, greedy_scores, beam_tokens, beam_scores]}


def decode(inputs: np.ndarray, max_length: int = 12, target: str = "cpu", seed: int = 0) -> list[np.ndarray]:
    """[greedy tokens, greedy scores, beam tokens, beam scores] of a batch of inputs [batch, FEATURES], in one run."""
    model = build(len(inputs), max_length, seed)
    with fc.Session(graph=model["graph"], target=target) as sess:
        return sess.run(model["fetches"], {model["x"]: inputs})


def decode_numpy(inputs: np.ndarray, max_length: int = 12, seed: int = 0) -> list[np.ndarray]:
    """The same decoders written plainly in numpy, one input at a time (the oracle of the tests)."""
    w = model_weights(seed)

    def step(token: int, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        state = np.tanh(w["embedding"][token] + state @ w["recurrent"] + w["bias"])
        logits = state @ w["out"] + w["bias_out"]
        shifted = logits - logits.max()
        return state, shifted - np.log(np.exp(shifted).sum())

    def pad(tokens: list[int]) -> list[int]:
        return tokens + [EOS] * (max_length - len(tokens))

    greedy_tokens, greedy_scores, beam_tokens, beam_scores = [], [], [], []
    for x in inputs:
        state, tokens, score = np.tanh(x @ w["encoder"]), [], 0.0
        while len(tokens) < max_length and EOS not in tokens:
            state, log_probs = step(tokens[-1] if tokens else GO, state)
            tokens.append(int(np.argmax(log_probs)))
            score += log_probs[tokens[-1]]
        greedy_tokens.append(pad(tokens))
        greedy_scores.append(score)

        # A hypothesis: (score, tokens, state); finished once its last token is EOS.
        hypotheses = [(0.0, [], np.tanh(x @ w["encoder"]))]
        for _ in range(max_length):
            if all(tokens and tokens[-1] == EOS for _, tokens, _ in hypotheses):
                break
            candidates = []  # in the order (hypothesis, token), so that a stable sort breaks ties as argmax does
            for score, tokens, state in hypotheses:
                if tokens and tokens[-1] == EOS:
                    candidates.append((score, tokens + [EOS], state))
                    continue
                next_state, log_probs = step(tokens[-1] if tokens else GO, state)
                candidates += [(score + log_probs[v], tokens + [v], next_state) for v in range(VOCABULARY)]
            hypotheses = sorted(candidates, key=lambda c: -c[0])[:BEAM]
        beam_tokens.append([pad(tokens) for _, tokens, _ in hypotheses])
        beam_scores.append([score for score, _, _ in hypotheses])
    return [np.array(greedy_tokens), np.array(greedy_scores), np.array(beam_tokens), np.array(beam_scores)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu", help="Session target: cpu (native) or reference (numpy)")
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--max-length", type=int, default=12)
    args = parser.parse_args()
    inputs = np.random.default_rng(1).normal(0, 1, (args.batch, FEATURES))
    greedy_tokens, greedy_scores, beam_tokens, beam_scores = decode(inputs, args.max_length, args.target)
    for row in range(args.batch):
        print(f"input {row}: greedy {' '.join(map(str, greedy_tokens[row]))}  score {greedy_scores[row]:8.4f}")
        print(f"         beam   {' '.join(map(str, beam_tokens[row, 0]))}  score {beam_scores[row, 0]:8.4f}")
    better = int(np.sum(beam_scores[:, 0] > greedy_scores + 1e-9))
    worse = int(np.sum(beam_scores[:, 0] < greedy_scores - 1e-9))
    print(f"beam search scored higher than greedy on {better} of {args.batch} inputs, lower on {worse}")


if __name__ == "__main__":
    main()
