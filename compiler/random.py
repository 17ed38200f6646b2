"""fc.random: TensorFlow 1's tf.random names of the seeded random ops."""

from .candidate_sampling import fixed_unigram_candidate_sampler, log_uniform_candidate_sampler, uniform_candidate_sampler
from .graph import set_random_seed
from .random_ops import categorical, multinomial, random_normal as normal, random_shuffle as shuffle
from .random_ops import random_uniform as uniform, truncated_normal

__all__ = ["categorical", "fixed_unigram_candidate_sampler", "log_uniform_candidate_sampler", "uniform_candidate_sampler",
           "multinomial", "normal", "set_random_seed", "shuffle", "truncated_normal", "uniform"]
