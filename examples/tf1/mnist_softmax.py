"""TF1's "MNIST for ML beginners" softmax regression, as the tutorial wrote it, on 8x8 digits.

Only the import (`flowc as fc`), the data (scikit-learn's digits through digits_input, 64 pixels
instead of 784) and the `main(steps, target)` wrapper differ from the tutorial.

    python examples/tf1/mnist_softmax.py [--steps 1000] [--target cpu]
"""

from __future__ import annotations

import argparse

import flowc as fc

import digits_input


def main(steps: int = 1000, target: str = "cpu") -> dict:
    mnist = digits_input.read_data_sets(one_hot=True)
    with fc.Graph().as_default():
        # Create the model
        x = fc.placeholder(fc.float32, [None, 64])
        W = fc.Variable(fc.zeros([64, 10]))
        b = fc.Variable(fc.zeros([10]))
        y = fc.nn.softmax(fc.matmul(x, W) + b)

        # Define loss and optimizer
        y_ = fc.placeholder(fc.float32, [None, 10])
        cross_entropy = fc.reduce_mean(-fc.reduce_sum(y_ * fc.log(y), reduction_indices=[1]))
        train_step = fc.train.GradientDescentOptimizer(0.5).minimize(cross_entropy)

        sess = fc.Session(target)
        sess.run(fc.global_variables_initializer())

        # Train
        losses = []
        for _ in range(steps):
            batch_xs, batch_ys = mnist.train.next_batch(100)
            sess.run(train_step, feed_dict={x: batch_xs, y_: batch_ys})
            # Not in the tutorial: the loss is recorded for the tests.
            losses.append(sess.run(cross_entropy, feed_dict={x: batch_xs, y_: batch_ys}))

        # Test trained model
        correct_prediction = fc.equal(fc.argmax(y, 1), fc.argmax(y_, 1))
        accuracy = fc.reduce_mean(fc.cast(correct_prediction, fc.float32))
        test_accuracy = sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels})
        print(test_accuracy)
        weights = sess.run(W)
        sess.close()
    return {"losses": losses, "accuracy": float(test_accuracy), "weights": weights}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--target", default="cpu")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.target)
