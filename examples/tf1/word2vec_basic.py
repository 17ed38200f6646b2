"""TF1's word2vec_basic skip-gram, as the tutorial wrote it, on a generated corpus.

Kept from the tutorial: build_dataset (a vocabulary of the most common words, UNK for the rest),
generate_batch (a sliding window with skip_window and num_skips over a deque), the embeddings
Variable from random_uniform, embedding_lookup, the [batch_size, 1] labels placeholder,
fc.nn.nce_loss over num_sampled negative classes, SGD at 1.0, the normalized embeddings and the
cosine similarity of a validation set, the average loss printed every `report` steps and the
nearest words printed at the end.

How it differs from the tutorial: the corpus is generated: sentences drawn from a few topics,
each topic a small set of words, so the words of one topic end up nearest to each other. The
vocabulary has 35 words, so num_sampled is 8 instead of the tutorial's 64 (nce_loss draws its
negative classes without replacement, from the vocabulary).

    python examples/tf1/word2vec_basic.py [--steps 2000] [--target cpu]
"""

from __future__ import annotations

import argparse
import collections
import math
import random

import numpy as np

import flowc as fc

TOPICS = [
    "cat dog horse cow sheep goat pig".split(),
    "red green blue yellow purple orange pink".split(),
    "one two three four five six seven".split(),
    "paris london berlin rome madrid vienna lisbon".split(),
]
FILLER = "the a of and in is".split()


def generate_words(count: int, seed: int = 0) -> list[str]:
    """Sentences of six words from one topic, with filler words between them."""
    generator = random.Random(seed)
    words = []
    while len(words) < count:
        topic = generator.choice(TOPICS)
        for _ in range(6):
            words.append(generator.choice(topic))
            if generator.random() < 0.3:
                words.append(generator.choice(FILLER))
    return words[:count]


def build_dataset(words, n_words):
    """Process raw inputs into a dataset."""
    count = [['UNK', -1]]
    count.extend(collections.Counter(words).most_common(n_words - 1))
    dictionary = dict()
    for word, _ in count:
        dictionary[word] = len(dictionary)
    data = list()
    unk_count = 0
    for word in words:
        index = dictionary.get(word, 0)
        if index == 0:  # dictionary['UNK']
            unk_count += 1
        data.append(index)
    count[0][1] = unk_count
    reversed_dictionary = dict(zip(dictionary.values(), dictionary.keys()))
    return data, count, dictionary, reversed_dictionary


class BatchGenerator:
    """The tutorial's generate_batch, with its global data_index kept on an object."""

    def __init__(self, data, seed: int = 0):
        self.data = data
        self.data_index = 0
        self.random = random.Random(seed)

    def generate_batch(self, batch_size, num_skips, skip_window):
        data = self.data
        assert batch_size % num_skips == 0
        assert num_skips <= 2 * skip_window
        batch = np.ndarray(shape=(batch_size), dtype=np.int32)
        labels = np.ndarray(shape=(batch_size, 1), dtype=np.int32)
        span = 2 * skip_window + 1  # [ skip_window target skip_window ]
        buffer = collections.deque(maxlen=span)
        if self.data_index + span > len(data):
            self.data_index = 0
        buffer.extend(data[self.data_index:self.data_index + span])
        self.data_index += span
        for i in range(batch_size // num_skips):
            context_words = [w for w in range(span) if w != skip_window]
            words_to_use = self.random.sample(context_words, num_skips)
            for j, context_word in enumerate(words_to_use):
                batch[i * num_skips + j] = buffer[skip_window]
                labels[i * num_skips + j, 0] = buffer[context_word]
            if self.data_index == len(data):
                buffer.extend(data[0:span])
                self.data_index = span
            else:
                buffer.append(data[self.data_index])
                self.data_index += 1
        # Backtrack a little bit to avoid skipping words in the end of a batch
        self.data_index = (self.data_index + len(data) - span) % len(data)
        return batch, labels


def main(steps: int = 2000, target: str = "cpu", report: int = 200) -> dict:
    vocabulary = generate_words(20000)
    vocabulary_size = 35  # the 34 words of the generated corpus, and UNK
    data, count, dictionary, reverse_dictionary = build_dataset(vocabulary, vocabulary_size)
    print('Most common words (+UNK)', count[:5])
    print('Sample data', data[:10], [reverse_dictionary[i] for i in data[:10]])
    batches = BatchGenerator(data)

    batch_size = 64
    embedding_size = 16  # Dimension of the embedding vector.
    skip_window = 1  # How many words to consider left and right.
    num_skips = 2  # How many times to reuse an input to generate a label.
    num_sampled = 8  # Number of negative examples to sample.

    valid_words = ["cat", "red", "one", "paris"]
    valid_examples = np.array([dictionary[w] for w in valid_words], dtype=np.int32)

    graph = fc.Graph()
    with graph.as_default():
        fc.set_random_seed(0)
        # Input data.
        train_inputs = fc.placeholder(fc.int32, shape=[batch_size])
        train_labels = fc.placeholder(fc.int32, shape=[batch_size, 1])
        valid_dataset = fc.constant(valid_examples, dtype=fc.int32)

        # Look up embeddings for inputs.
        embeddings = fc.Variable(fc.random_uniform([vocabulary_size, embedding_size], -1.0, 1.0))
        embed = fc.nn.embedding_lookup(embeddings, train_inputs)

        # Construct the variables for the NCE loss
        nce_weights = fc.Variable(
            fc.truncated_normal([vocabulary_size, embedding_size], stddev=1.0 / math.sqrt(embedding_size)))
        nce_biases = fc.Variable(fc.zeros([vocabulary_size]))

        # The batch's mean NCE loss; every run draws new negative classes.
        loss = fc.reduce_mean(
            fc.nn.nce_loss(weights=nce_weights,
                           biases=nce_biases,
                           labels=train_labels,
                           inputs=embed,
                           num_sampled=num_sampled,
                           num_classes=vocabulary_size))

        # Construct the SGD optimizer using a learning rate of 1.0.
        optimizer = fc.train.GradientDescentOptimizer(1.0).minimize(loss)

        # Compute the cosine similarity between minibatch examples and all embeddings.
        norm = fc.sqrt(fc.reduce_sum(fc.square(embeddings), 1, keep_dims=True))
        normalized_embeddings = embeddings / norm
        valid_embeddings = fc.nn.embedding_lookup(normalized_embeddings, valid_dataset)
        similarity = fc.matmul(valid_embeddings, normalized_embeddings, transpose_b=True)

        # Add variable initializer.
        init = fc.global_variables_initializer()

    averages = []
    with fc.Session(target, graph=graph) as session:
        init.run()
        print('Initialized')
        average_loss = 0
        for step in range(steps):
            batch_inputs, batch_labels = batches.generate_batch(batch_size, num_skips, skip_window)
            feed_dict = {train_inputs: batch_inputs, train_labels: batch_labels}
            _, loss_val = session.run([optimizer, loss], feed_dict=feed_dict)
            average_loss += loss_val
            if (step + 1) % report == 0:
                average_loss /= report
                # The average loss is an estimate of the loss over the last `report` batches.
                print('Average loss at step ', step + 1, ': ', average_loss)
                averages.append(float(average_loss))
                average_loss = 0

        sim = similarity.eval()
        nearest_words = {}
        for i, valid_word in enumerate(valid_words):
            top_k = 3  # number of nearest neighbors
            nearest = (-sim[i, :]).argsort()[1:top_k + 1]
            nearest_words[valid_word] = [reverse_dictionary[k] for k in nearest]
            print('Nearest to %s: %s' % (valid_word, ', '.join(nearest_words[valid_word])))
        final_embeddings = normalized_embeddings.eval()
    topic_of = {word: n for n, topic in enumerate(TOPICS) for word in topic}
    return {"averages": averages, "nearest": nearest_words, "embeddings": final_embeddings,
            "topic_of": topic_of}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--target", default="cpu")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.target)
