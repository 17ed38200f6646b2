"""TF1's "Deep MNIST for experts" convolutional network, as the tutorial wrote it, on 8x8 digits.

The style is the tutorial's: an InteractiveSession, weight_variable/bias_variable helpers with
truncated_normal and constant, conv2d/max_pool_2x2 helpers, dropout through a keep_prob
placeholder, `accuracy.eval(feed_dict=...)` and `train_step.run(feed_dict=...)`. The sizes are
adapted to 8x8 images: 3x3 kernels with 8 and 16 filters (the tutorial: 5x5, 32 and 64), 8 -> 4 -> 2
after the two poolings (28 -> 14 -> 7), a 64-unit dense layer (1024), Adam at 1e-3 (1e-4, which
needs the tutorial's 20000 steps), batches of 50 and a report every `report` steps (100).

    python examples/tf1/deep_mnist.py [--steps 2000] [--target cpu]
"""

from __future__ import annotations

import argparse

import flowc as fc

import digits_input


def weight_variable(shape):
    initial = fc.truncated_normal(shape, stddev=0.1)
    return fc.Variable(initial)


def bias_variable(shape):
    initial = fc.constant(0.1, shape=shape)
    return fc.Variable(initial)


def conv2d(x, W):
    return fc.nn.conv2d(x, W, strides=[1, 1, 1, 1], padding='SAME')


def max_pool_2x2(x):
    return fc.nn.max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding='SAME')


def main(steps: int = 2000, target: str = "cpu", report: int = 100) -> dict:
    mnist = digits_input.read_data_sets(one_hot=True)
    with fc.Graph().as_default():
        fc.set_random_seed(0)
        sess = fc.InteractiveSession(target)

        x = fc.placeholder(fc.float32, shape=[None, 64])
        y_ = fc.placeholder(fc.float32, shape=[None, 10])

        W_conv1 = weight_variable([3, 3, 1, 8])
        b_conv1 = bias_variable([8])
        x_image = fc.reshape(x, [-1, 8, 8, 1])
        h_conv1 = fc.nn.relu(conv2d(x_image, W_conv1) + b_conv1)
        h_pool1 = max_pool_2x2(h_conv1)

        W_conv2 = weight_variable([3, 3, 8, 16])
        b_conv2 = bias_variable([16])
        h_conv2 = fc.nn.relu(conv2d(h_pool1, W_conv2) + b_conv2)
        h_pool2 = max_pool_2x2(h_conv2)

        W_fc1 = weight_variable([2 * 2 * 16, 64])
        b_fc1 = bias_variable([64])
        h_pool2_flat = fc.reshape(h_pool2, [-1, 2 * 2 * 16])
        h_fc1 = fc.nn.relu(fc.matmul(h_pool2_flat, W_fc1) + b_fc1)

        keep_prob = fc.placeholder(fc.float32)
        h_fc1_drop = fc.nn.dropout(h_fc1, keep_prob)

        W_fc2 = weight_variable([64, 10])
        b_fc2 = bias_variable([10])
        y_conv = fc.matmul(h_fc1_drop, W_fc2) + b_fc2

        cross_entropy = fc.reduce_mean(fc.nn.softmax_cross_entropy_with_logits(labels=y_, logits=y_conv))
        train_step = fc.train.AdamOptimizer(1e-3).minimize(cross_entropy)
        correct_prediction = fc.equal(fc.argmax(y_conv, 1), fc.argmax(y_, 1))
        accuracy = fc.reduce_mean(fc.cast(correct_prediction, fc.float32))
        sess.run(fc.global_variables_initializer())
        train_accuracies = []
        for i in range(steps):
            batch = mnist.train.next_batch(50)
            if i % report == 0:
                train_accuracy = accuracy.eval(feed_dict={x: batch[0], y_: batch[1], keep_prob: 1.0})
                train_accuracies.append(float(train_accuracy))
                print("step %d, training accuracy %g" % (i, train_accuracy))
            train_step.run(feed_dict={x: batch[0], y_: batch[1], keep_prob: 0.5})

        test_accuracy = accuracy.eval(feed_dict={x: mnist.test.images, y_: mnist.test.labels, keep_prob: 1.0})
        print("test accuracy %g" % test_accuracy)
        # Not in the tutorial: the test loss, for the tests.
        test_loss = cross_entropy.eval(feed_dict={x: mnist.test.images, y_: mnist.test.labels, keep_prob: 1.0})
        sess.close()
    return {"train_accuracies": train_accuracies, "accuracy": float(test_accuracy), "loss": float(test_loss)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--target", default="cpu")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.target)
