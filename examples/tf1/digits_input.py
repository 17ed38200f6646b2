"""A stand-in for TF1's `tensorflow.examples.tutorials.mnist.input_data`, on scikit-learn's bundled digits.

`read_data_sets(one_hot=True)` returns an object with `.train` and `.test`, each with `.images`
(rows of 64 pixels scaled to [0, 1], float32), `.labels` (one-hot float32 rows, or int32 class ids)
and `next_batch(n)`, as the MNIST tutorials use them. The split and the batch order are fixed by
`seed`, so two runs (one per target) see the same batches.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits


class DataSet:
    """Images and labels served in consecutive batches, reshuffled (with a fixed seed) each epoch."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int):
        self.images = images
        self.labels = labels
        self.rng = np.random.default_rng(seed)
        self.position = 0

    def next_batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        if self.position + batch_size > len(self.images):
            order = self.rng.permutation(len(self.images))
            self.images, self.labels = self.images[order], self.labels[order]
            self.position = 0
        start, self.position = self.position, self.position + batch_size
        return self.images[start:self.position], self.labels[start:self.position]


class DataSets:
    def __init__(self, train: DataSet, test: DataSet):
        self.train = train
        self.test = test


def read_data_sets(one_hot: bool = True, seed: int = 0) -> DataSets:
    """The 1797 digits, shuffled with `seed` and split 80/20 into train and test."""
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    if one_hot:
        labels = np.eye(10, dtype=np.float32)[labels]
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order], labels[order]
    cut = int(0.8 * len(images))
    return DataSets(DataSet(images[:cut], labels[:cut], seed), DataSet(images[cut:], labels[cut:], seed + 1))
