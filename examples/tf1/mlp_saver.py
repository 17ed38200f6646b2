"""A TF1 multilayer perceptron with variable_scope / get_variable, tf.layers.dense and a Saver, on 8x8 digits.

The pattern of TF1-era training scripts: a hidden layer built by hand in a variable_scope with
get_variable and initializers, a second hidden layer and the logits from tf.layers.dense, a
global step, a Saver that checkpoints the training, then a fresh Session that restores the
checkpoint and evaluates the test accuracy.

    python examples/tf1/mlp_saver.py [--steps 1000] [--target cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import flowc as fc

import digits_input


def fully_connected(inputs, units, scope):
    with fc.variable_scope(scope):
        weights = fc.get_variable("weights", [inputs.get_shape()[1].value, units],
                                  initializer=fc.truncated_normal_initializer(stddev=0.1))
        biases = fc.get_variable("biases", [units], initializer=fc.zeros_initializer())
        return fc.nn.relu(fc.matmul(inputs, weights) + biases)


def inference(images):
    hidden1 = fully_connected(images, 64, "hidden1")
    hidden2 = fc.layers.dense(hidden1, 32, activation=fc.nn.relu, name="hidden2")
    return fc.layers.dense(hidden2, 10, name="softmax_linear")


def main(steps: int = 1000, target: str = "cpu", checkpoint_dir: str | None = None) -> dict:
    mnist = digits_input.read_data_sets(one_hot=False)
    checkpoint_dir = checkpoint_dir or tempfile.mkdtemp(prefix="mlp_saver_")
    with fc.Graph().as_default():
        fc.set_random_seed(0)
        images = fc.placeholder(fc.float32, shape=(None, 64), name="images")
        labels = fc.placeholder(fc.int32, shape=(None,), name="labels")
        logits = inference(images)
        loss = fc.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
        global_step = fc.train.get_or_create_global_step()
        train_op = fc.train.GradientDescentOptimizer(0.1).minimize(loss, global_step=global_step)
        correct = fc.nn.in_top_k(logits, labels, 1)
        accuracy = fc.reduce_mean(fc.cast(correct, fc.float32))
        init = fc.global_variables_initializer()
        saver = fc.train.Saver()

        losses = []
        with fc.Session(target) as sess:
            sess.run(init)
            for step in range(steps):
                batch_images, batch_labels = mnist.train.next_batch(100)
                _, loss_value = sess.run([train_op, loss], feed_dict={images: batch_images, labels: batch_labels})
                losses.append(float(loss_value))
                if step % 100 == 0:
                    print("Step %d: loss = %.2f" % (step, loss_value))
            checkpoint_file = os.path.join(checkpoint_dir, "model.ckpt")
            saved_path = saver.save(sess, checkpoint_file, global_step=global_step)
            print("Model saved in file: %s" % saved_path)
            feed = {images: mnist.test.images, labels: mnist.test.labels}
            accuracy_before = sess.run(accuracy, feed_dict=feed)

        with fc.Session(target) as sess:
            saver.restore(sess, fc.train.latest_checkpoint(checkpoint_dir))
            print("Model restored.")
            restored_step = sess.run(global_step)
            accuracy_restored = sess.run(accuracy, feed_dict=feed)
            print("Test accuracy: %g" % accuracy_restored)
    return {"losses": losses, "accuracy": float(accuracy_restored), "accuracy_before": float(accuracy_before),
            "step": int(restored_step), "saved_path": saved_path}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--target", default="cpu")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.target)
