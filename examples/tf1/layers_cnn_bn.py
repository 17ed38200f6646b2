"""A TF1 tf.layers convolutional network with batch normalization, on 8x8 digits.

As TF1 users wrote it: a boolean `training` placeholder, conv2d -> batch_normalization(training=)
-> relu -> max_pooling2d, twice, then flatten, dropout(training=) and dense logits; the moving
averages' updates taken from the UPDATE_OPS collection and made control dependencies of the
train op. The test accuracy is measured with training=False, that is with the moving averages.

    python examples/tf1/layers_cnn_bn.py [--steps 500] [--target cpu]
"""

from __future__ import annotations

import argparse

import flowc as fc

import digits_input


def cnn_model(images, training):
    input_layer = fc.reshape(images, [-1, 8, 8, 1])
    conv1 = fc.layers.conv2d(inputs=input_layer, filters=8, kernel_size=[3, 3], padding="same", use_bias=False)
    conv1 = fc.nn.relu(fc.layers.batch_normalization(conv1, training=training))
    pool1 = fc.layers.max_pooling2d(inputs=conv1, pool_size=[2, 2], strides=2)
    conv2 = fc.layers.conv2d(inputs=pool1, filters=16, kernel_size=[3, 3], padding="same", use_bias=False)
    conv2 = fc.nn.relu(fc.layers.batch_normalization(conv2, training=training))
    pool2 = fc.layers.max_pooling2d(inputs=conv2, pool_size=[2, 2], strides=2)
    pool2_flat = fc.layers.flatten(pool2)
    dense = fc.layers.dense(inputs=pool2_flat, units=64, activation=fc.nn.relu)
    dropout = fc.layers.dropout(inputs=dense, rate=0.4, training=training)
    return fc.layers.dense(inputs=dropout, units=10)


def main(steps: int = 500, target: str = "cpu", report: int = 100) -> dict:
    mnist = digits_input.read_data_sets(one_hot=False)
    with fc.Graph().as_default():
        fc.set_random_seed(0)
        x = fc.placeholder(fc.float32, [None, 64], name="x")
        y = fc.placeholder(fc.int32, [None], name="y")
        training = fc.placeholder(fc.bool, name="training")
        logits = cnn_model(x, training)
        loss = fc.losses.sparse_softmax_cross_entropy(labels=y, logits=logits)
        update_ops = fc.get_collection(fc.GraphKeys.UPDATE_OPS)
        with fc.control_dependencies(update_ops):
            train_op = fc.train.AdamOptimizer(learning_rate=0.003).minimize(loss)
        predictions = fc.argmax(logits, axis=1, output_type=fc.int32)
        accuracy = fc.reduce_mean(fc.cast(fc.equal(predictions, y), fc.float32))

        losses = []
        with fc.Session(target) as sess:
            sess.run(fc.global_variables_initializer())
            for step in range(steps):
                batch_x, batch_y = mnist.train.next_batch(64)
                _, loss_value = sess.run([train_op, loss], feed_dict={x: batch_x, y: batch_y, training: True})
                losses.append(float(loss_value))
                if step % report == 0:
                    print("step %d, loss %.4f" % (step, loss_value))
            test_feed = {x: mnist.test.images, y: mnist.test.labels, training: False}
            test_accuracy, test_loss = sess.run([accuracy, loss], feed_dict=test_feed)
            print("test accuracy %g" % test_accuracy)
            moving_means = [sess.run(v) for v in fc.global_variables() if "moving_mean" in v.name]
    return {"losses": losses, "accuracy": float(test_accuracy), "loss": float(test_loss), "moving_means": moving_means}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--target", default="cpu")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.target)
