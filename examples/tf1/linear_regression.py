"""The classic TF1 linear regression example (TensorFlow-Examples' linear_regression), as written.

Shapeless `placeholder("float")`s fed one sample at a time in a Python loop, and the whole
training (and testing) arrays to the same placeholders for the cost; a Variable made from
`rng.randn()`, cost = reduce_sum(pow(pred - Y, 2)) / (2 * n_samples), plain gradient descent,
the fitted line `sess.run(W) * train_X + sess.run(b)` (the tutorial plots it; here it is
returned). The data are the example's own seventeen points.

    python examples/tf1/linear_regression.py [--steps 1000] [--target cpu]
"""

from __future__ import annotations

import argparse

import numpy

import flowc as fc

rng = numpy.random


def main(steps: int = 1000, target: str = "cpu", display_step: int = 50, seed: int = 0) -> dict:
    rng.seed(seed)
    # Parameters
    learning_rate = 0.01
    training_epochs = steps

    # Training Data
    train_X = numpy.asarray([3.3, 4.4, 5.5, 6.71, 6.93, 4.168, 9.779, 6.182, 7.59, 2.167,
                             7.042, 10.791, 5.313, 7.997, 5.654, 9.27, 3.1])
    train_Y = numpy.asarray([1.7, 2.76, 2.09, 3.19, 1.694, 1.573, 3.366, 2.596, 2.53, 1.221,
                             2.827, 3.465, 1.65, 2.904, 2.42, 2.94, 1.3])
    n_samples = train_X.shape[0]

    with fc.Graph().as_default():
        # tf Graph Input
        X = fc.placeholder("float")
        Y = fc.placeholder("float")

        # Set model weights
        W = fc.Variable(rng.randn(), name="weight")
        b = fc.Variable(rng.randn(), name="bias")

        # Construct a linear model
        pred = fc.add(fc.multiply(X, W), b)

        # Mean squared error
        cost = fc.reduce_sum(fc.pow(pred - Y, 2)) / (2 * n_samples)
        # Gradient descent
        optimizer = fc.train.GradientDescentOptimizer(learning_rate).minimize(cost)

        # Initialize the variables (i.e. assign their default value)
        init = fc.global_variables_initializer()

        costs = []
        # Start training
        with fc.Session(target) as sess:
            # Run the initializer
            sess.run(init)

            # Fit all training data
            for epoch in range(training_epochs):
                for (x, y) in zip(train_X, train_Y):
                    sess.run(optimizer, feed_dict={X: x, Y: y})

                # Display logs per epoch step
                if (epoch + 1) % display_step == 0:
                    c = sess.run(cost, feed_dict={X: train_X, Y: train_Y})
                    costs.append(float(c))
                    print("Epoch:", '%04d' % (epoch + 1), "cost=", "{:.9f}".format(c),
                          "W=", sess.run(W), "b=", sess.run(b))

            print("Optimization Finished!")
            training_cost = sess.run(cost, feed_dict={X: train_X, Y: train_Y})
            print("Training cost=", training_cost, "W=", sess.run(W), "b=", sess.run(b), '\n')
            weight, bias = sess.run(W), sess.run(b)

            # Graphic display (the tutorial plots the data and this line with matplotlib)
            fitted = sess.run(W) * train_X + sess.run(b)

            # Testing example
            test_X = numpy.asarray([6.83, 4.668, 8.9, 7.91, 5.7, 8.7, 3.1, 2.1])
            test_Y = numpy.asarray([1.84, 2.273, 3.2, 2.831, 2.92, 3.24, 1.35, 1.03])

            print("Testing... (Mean square loss Comparison)")
            testing_cost = sess.run(
                fc.reduce_sum(fc.pow(pred - Y, 2)) / (2 * test_X.shape[0]),
                feed_dict={X: test_X, Y: test_Y})  # same function as cost above
            print("Testing cost=", testing_cost)
            print("Absolute mean square loss difference:", abs(training_cost - testing_cost))
    return {"costs": costs, "training_cost": float(training_cost), "W": float(weight), "b": float(bias),
            "fitted": fitted, "testing_cost": float(testing_cost), "dtypes": (X.dtype, W.dtype),
            "train": (train_X, train_Y)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--target", default="cpu")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.target)
