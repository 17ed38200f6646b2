"""fc.cond and fc.while_loop as a TensorFlow 1 program writes them, with a gradient through each.

    python examples/cond_while.py [--target reference]

A branch and a loop body are Python functions traced into sub-graphs; they read tensors and Variables
of the graph around them, and fc.gradients goes through both.
"""

from __future__ import annotations

import argparse

import flowc as fc
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="reference", help="reference or cpu")
    target = parser.parse_args().target

    g = fc.Graph()
    with g.as_default():
        # cond: only the chosen branch runs.
        x = fc.placeholder(fc.float32, shape=[], name="x")
        y = fc.cond(x > 0, lambda: x * 10.0, lambda: -x)

        # while_loop: count to 10, summing the squares on the way.
        i = fc.constant(0)
        total = fc.constant(0)
        i_final, total_final = fc.while_loop(lambda i, total: i < 10, lambda i, total: (i + 1, total + i * i),
                                             [i, total])

        # A loop that reads a Variable and a placeholder, bounded by maximum_iterations, and its gradient.
        w = fc.Variable(0.5, name="w")
        power = fc.while_loop(lambda k, p: fc.constant(True), lambda k, p: (k + 1, p * w + x), [0, fc.constant(1.0)],
                              maximum_iterations=4)[1]
        dw, dx = fc.gradients(power, [w, x])
        init = fc.global_variables_initializer()

    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        positive, negative = (float(sess.run(y, {x: value})) for value in (2.0, -3.0))
        print(f"cond: {positive} and {negative}")
        count, squares = sess.run([i_final, total_final])
        print(f"while_loop: i = {count}, sum of squares below it = {squares}")
        value, grad_w, grad_x = sess.run([power, dw, dx], {x: 1.0})
        # p_{k+1} = p_k * w + x from p_0 = 1, four times: w^4 + x (w^3 + w^2 + w + 1)
        want = 0.5**4 + (0.5**3 + 0.5**2 + 0.5 + 1)
        print(f"bounded loop: {value:.6f} (closed form {want:.6f}), d/dw = {grad_w:.6f}, d/dx = {grad_x:.6f}")
        assert np.isclose(value, want) and np.isclose(grad_x, 0.5**3 + 0.5**2 + 0.5 + 1)


if __name__ == "__main__":
    main()
