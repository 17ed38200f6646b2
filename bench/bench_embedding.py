"""Embedding gradients through scatter_add: word2vec's training step and the embedding gradient alone.

    taskset -c 0 env OPENBLAS_NUM_THREADS=1 FLOWC_NUM_THREADS=1 .venv/bin/python bench/bench_embedding.py

word2vec as examples/tf1/word2vec_basic.py builds it (vocab 50,000, batch 128, dim 128, nce_loss with 64
sampled classes, SGD), and the gradient of sum(gather(table, ids) * c) by a [50000, 128] table for 128 ids,
fetched alone and applied by SGD. The gradient of gather is scatter_add into zeros of the table's shape
(passes/autodiff/rules_shape.py); before it, a one_hot(ids)^T @ dy product. CPU time per step, the best of
three rounds of 20 steps after a warm-up.
"""

from __future__ import annotations

import math
import time

import numpy as np

import flowc as fc

VOCABULARY, BATCH, DIM, SAMPLED, STEPS = 50_000, 128, 128, 64, 20


def timed(session: fc.Session, fetch, feeds) -> float:  # type: ignore[no-untyped-def]
    """Milliseconds of CPU time per run of `fetch` with fresh `feeds()`, the best of three rounds."""
    session.run(fetch, feeds())
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(STEPS):
            session.run(fetch, feeds())
        rounds.append((time.process_time() - started) / STEPS)
    return min(rounds) * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    graph = fc.Graph()
    with graph.as_default():
        fc.set_random_seed(0)
        inputs = fc.placeholder(fc.int32, [BATCH])
        labels = fc.placeholder(fc.int32, [BATCH, 1])
        embeddings = fc.Variable(fc.random_uniform([VOCABULARY, DIM], -1.0, 1.0))
        weights = fc.Variable(fc.truncated_normal([VOCABULARY, DIM], stddev=1.0 / math.sqrt(DIM)))
        biases = fc.Variable(fc.zeros([VOCABULARY]))
        loss = fc.reduce_mean(fc.nn.nce_loss(weights=weights, biases=biases, labels=labels,
                                             inputs=fc.nn.embedding_lookup(embeddings, inputs),
                                             num_sampled=SAMPLED, num_classes=VOCABULARY))
        train = fc.train.GradientDescentOptimizer(1.0).minimize(loss)
        table = fc.Variable(fc.random_uniform([VOCABULARY, DIM], -1.0, 1.0))
        ids = fc.placeholder(fc.int32, [BATCH])
        scale = fc.constant(rng.standard_normal((BATCH, DIM)).astype(np.float32))
        (gradient,) = fc.gradients(fc.reduce_sum(fc.gather(table, ids) * scale), [table])
        applied = fc.assign_sub(table, 0.1 * gradient)
        first_row = gradient[:1]  # one row fetched: the gradient's cost, not a 25 MB copy out
        init = fc.global_variables_initializer()

    def some_ids() -> dict:
        return {ids: rng.integers(0, VOCABULARY, BATCH).astype(np.int32)}

    with fc.Session(graph=graph) as session:
        session.run(init)
        step = timed(session, [train, loss], lambda: {inputs: rng.integers(0, VOCABULARY, BATCH).astype(np.int32),
                                                      labels: rng.integers(0, VOCABULARY, (BATCH, 1)).astype(np.int32)})
        alone = timed(session, first_row, some_ids)
        with_sgd = timed(session, applied, some_ids)
    print(f"word2vec step {step:.2f} ms; embedding gradient alone {alone:.2f} ms; gradient and SGD {with_sgd:.2f} ms")


if __name__ == "__main__":
    main()
