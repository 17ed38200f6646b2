"""Candidate samplers: TensorFlow 1's log_uniform_, uniform_ and fixed_unigram_candidate_sampler.

Each returns (sampled_candidates [num_sampled] int64, true_expected_count [batch, num_true] float32,
sampled_expected_count [num_sampled] float32). A class of base probability p is expected
p * num_tries times in a draw with replacement (num_tries = num_sampled), and
-expm1(num_tries * log1p(-p)) times -- the chance that it came up at least once -- in a draw
without replacement, where num_tries is how many draws with replacement it took to see
num_sampled distinct classes (TensorFlow's formulas).

Note [unique candidates without a loop]: TensorFlow draws with replacement and rejects repeats
until num_sampled distinct classes came up. The distinct classes, in the order they first came
up, are then a successive sample without replacement proportional to p, and that is what
top_k(log p + Gumbel noise) gives, exactly (the Gumbel-top-k identity), in one static-shaped draw
of range_max uniforms. The number of tries follows from the order: with mass S_i already drawn,
the draws rejected before the (i+1)-th new class are geometric, P(at least n) = S_i^n, which
floor(log v / log S_i) is for v uniform in (0, 1]. So (candidates, num_tries) has the joint law
of TensorFlow's loop, with static shapes and no while loop; the cost is range_max uniforms per
run instead of ~num_sampled, which is small beside the matmul over the sampled rows.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from flowc.ir.errors import FlowcTypeError, GraphError
from flowc.ir.types import float32, float64, int64

from .array_ops import gather, reshape
from .elementwise_math_ops import expm1, floor, log1p
from .gradients import stop_gradient
from .graph import Tensor, name_scope
from .math_ops import cast, constant, convert_to_tensor, exp, greater, greater_equal, log, matmul, maximum, minimum, reduce_sum, where
from .random_ops import random_uniform
from .reduction_ops import top_k
from .sources import user_location

__all__ = ["fixed_unigram_candidate_sampler", "log_uniform_candidate_sampler", "uniform_candidate_sampler"]


def log_uniform_candidate_sampler(true_classes: Any, num_true: int, num_sampled: int, unique: bool, range_max: int,
                                  seed: int | None = None, name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Classes of [0, range_max) drawn from P(class) = log((class + 2) / (class + 1)) / log(range_max + 1),
    without replacement when `unique` (Note [unique candidates without a loop]).

    >>> import flowc as fc
    >>> sampled, true_count, sampled_count = fc.nn.log_uniform_candidate_sampler(
    ...     fc.constant([[1], [4]]), num_true=1, num_sampled=3, unique=True, range_max=10, seed=1)
    >>> sampled.shape, true_count.shape, sampled_count.shape
    ((3,), (2, 1), (3,))
    """
    op = "log_uniform_candidate_sampler"
    classes = _range_max(range_max, op)
    ids = np.arange(classes, dtype=np.float64)
    probabilities = (np.log(ids + 2.0) - np.log(ids + 1.0)) / np.log(classes + 1.0)
    with name_scope(name or "LogUniformCandidateSampler"):
        if unique:
            return _sample_unique(true_classes, num_true, num_sampled, probabilities, seed, op)
        u = random_uniform([_count(num_sampled, classes, False, op)], dtype=float64, seed=seed)
        # the inverse CDF: class c where c + 1 <= (range_max + 1)^u < c + 2
        drawn = floor(exp(u * float(np.log(classes + 1.0)))) - 1.0
        return _with_replacement(true_classes, num_true, num_sampled, drawn, probabilities, op)


def uniform_candidate_sampler(true_classes: Any, num_true: int, num_sampled: int, unique: bool, range_max: int,
                              seed: int | None = None, name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Classes of [0, range_max) drawn with equal probability, without replacement when `unique`."""
    op = "uniform_candidate_sampler"
    classes = _range_max(range_max, op)
    probabilities = np.full(classes, 1.0 / classes)
    with name_scope(name or "UniformCandidateSampler"):
        if unique:
            return _sample_unique(true_classes, num_true, num_sampled, probabilities, seed, op)
        u = random_uniform([_count(num_sampled, classes, False, op)], dtype=float64, seed=seed)
        return _with_replacement(true_classes, num_true, num_sampled, floor(u * float(classes)), probabilities, op)


def fixed_unigram_candidate_sampler(true_classes: Any, num_true: int, num_sampled: int, unique: bool, range_max: int,
                                    vocab_file: str = "", distortion: float = 1.0, num_reserved_ids: int = 0,
                                    num_shards: int = 1, shard: int = 0, unigrams: Sequence[float] = (),
                                    seed: int | None = None, name: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Classes drawn in proportion to unigrams[c - num_reserved_ids] ** distortion (reserved ids weigh 0),
    as TensorFlow 1's, from a `unigrams` list or a `vocab_file` of CSV lines whose last field is the count.
    With num_shards > 1 only the ids i with i % num_shards == shard keep their weight."""
    op = "fixed_unigram_candidate_sampler"
    classes = _range_max(range_max, op)
    weights = np.asarray(_unigram_counts(vocab_file, unigrams, op), dtype=np.float64)
    if len(weights) + int(num_reserved_ids) != classes or np.any(weights < 0):
        raise GraphError(f"range_max {classes} must be num_reserved_ids ({num_reserved_ids}) plus the number of "
                         f"unigrams ({len(weights)}), and the unigrams must be >= 0", op=op, where=user_location())
    weights = np.concatenate([np.zeros(int(num_reserved_ids)), weights ** float(distortion)])
    weights[np.arange(classes) % int(num_shards) != int(shard)] = 0.0
    if weights.sum() <= 0:
        raise GraphError("the unigrams give every class weight 0", op=op, where=user_location())
    probabilities = weights / weights.sum()
    with name_scope(name or "FixedUnigramCandidateSampler"):
        if unique:
            return _sample_unique(true_classes, num_true, num_sampled, probabilities, seed, op)
        u = random_uniform([_count(num_sampled, classes, False, op)], dtype=float64, seed=seed)
        # the inverse CDF: the number of classes whose cumulative probability is <= u
        cumulative = constant(np.cumsum(probabilities)[:-1].reshape(1, -1))
        drawn = reduce_sum(cast(greater_equal(reshape(u, [-1, 1]), cumulative), float64), 1)
        return _with_replacement(true_classes, num_true, num_sampled, drawn, probabilities, op)


def _unigram_counts(vocab_file: str, unigrams: Sequence[float], op: str) -> list[float]:
    if bool(vocab_file) == bool(len(unigrams)):
        raise GraphError("give exactly one of vocab_file and unigrams", op=op, where=user_location())
    if unigrams:
        return [float(u) for u in unigrams]
    with open(vocab_file) as lines:
        return [float(line.rsplit(",", 1)[-1]) for line in lines if line.strip()]


def _sample_unique(true_classes: Any, num_true: int, num_sampled: int, probabilities: np.ndarray,
                   seed: int | None, op: str) -> tuple[Tensor, Tensor, Tensor]:
    """num_sampled distinct classes and TensorFlow's post-rejection expected counts
    (Note [unique candidates without a loop])."""
    classes = len(probabilities)
    count = _count(num_sampled, int(np.count_nonzero(probabilities)), True, op)
    uniforms = random_uniform([classes + count], dtype=float64, seed=seed)
    with np.errstate(divide="ignore"):
        log_p = constant(np.log(probabilities))  # -inf: a class of weight 0 is never drawn
    gumbel = -log(-log(1.0 - uniforms[:classes]))  # 1 - u lies in (0, 1]
    _, order = top_k(log_p + gumbel, k=count)
    chosen = gather(constant(probabilities), order)
    # S_i: the mass of the classes drawn before the i-th, by a strictly lower triangular matmul
    before = matmul(constant(np.tril(np.ones((count, count)), -1)), reshape(chosen, [count, 1]))
    mass = minimum(reshape(before, [count]), 1.0 - 1e-16)
    v = 1.0 - uniforms[classes:]
    rejected = where(greater(mass, 0.0), floor(log(v) / log(maximum(mass, 1e-300))), 0.0)
    num_tries = float(count) + reduce_sum(minimum(rejected, 1e15))
    return _expected_counts(true_classes, num_true, cast(order, int64), probabilities, num_tries, True, op)


def _with_replacement(true_classes: Any, num_true: int, num_sampled: int, drawn: Tensor, probabilities: np.ndarray,
                      op: str) -> tuple[Tensor, Tensor, Tensor]:
    """Classes drawn independently (as float64 class numbers, clamped against rounding at the top)."""
    sampled = cast(minimum(maximum(drawn, 0.0), float(len(probabilities) - 1)), int64)
    return _expected_counts(true_classes, num_true, sampled, probabilities, float(num_sampled), False, op)


def _expected_counts(true_classes: Any, num_true: int, sampled: Tensor, probabilities: np.ndarray, num_tries: Any,
                     unique: bool, op: str) -> tuple[Tensor, Tensor, Tensor]:
    true = _true_classes(true_classes, num_true, op)
    table = constant(probabilities)

    def expected(ids: Tensor) -> Tensor:
        p = gather(table, ids)
        count = -expm1(num_tries * log1p(-p)) if unique else p * num_tries
        return cast(count, float32)

    sampled = stop_gradient(sampled)
    return sampled, stop_gradient(expected(true)), stop_gradient(expected(sampled))


def _true_classes(true_classes: Any, num_true: int, op: str) -> Tensor:
    true = convert_to_tensor(true_classes)
    if true.dtype.kind != "int" or true.type.rank != 2 or true.type.shape[1] != int(num_true):
        raise FlowcTypeError(f"true_classes must be int64 (or int32) of shape [batch_size, num_true={num_true}], "
                             f"got {true.type}", op=op, where=user_location())
    return cast(true, int64)


def _range_max(range_max: Any, op: str) -> int:
    if not isinstance(range_max, (int, np.integer)) or range_max < 1:
        raise GraphError(f"range_max must be a positive int known when the graph is built, got {range_max!r}",
                         op=op, where=user_location())
    return int(range_max)


def _count(num_sampled: Any, available: int, unique: bool, op: str) -> int:
    if not isinstance(num_sampled, (int, np.integer)) or num_sampled < 1:
        raise GraphError(f"num_sampled must be a positive int, got {num_sampled!r}", op=op, where=user_location())
    if unique and num_sampled > available:
        raise GraphError(f"unique=True draws num_sampled={num_sampled} distinct classes, but only {available} "
                         "classes can be drawn: lower num_sampled or pass unique=False", op=op, where=user_location())
    return int(num_sampled)
