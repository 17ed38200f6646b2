"""Gradients of the ops that move elements along a dim known only at run time: slices of any
begin and stride (Note [a slice's gradient along an unknown dim]), reversal, concat of operands
whose offsets are known only at run time, tile. Each is checked on `cpu` against `reference` and
against central differences, fed sizes that hurt (0, 1, odd), two unknown dims fed different sizes."""

import flowc as fc
import numpy as np
import pytest
from numeric_gradients import central_differences

SIZES = (0, 1, 2, 5, 8)

SLICES = {
    "x[1:3]": lambda x: x[1:3],
    "x[2:]": lambda x: x[2:],
    "x[:-1]": lambda x: x[:-1],
    "x[-3:]": lambda x: x[-3:],
    "x[-4:-1:2]": lambda x: x[-4:-1:2],
    "x[1::3]": lambda x: x[1::3],
    "x[::-1]": lambda x: x[::-1],
    "x[::-2]": lambda x: x[::-2],
    "x[3:0:-1]": lambda x: x[3:0:-1],
    "x[-2::-3]": lambda x: x[-2::-3],
    "x[10:]": lambda x: x[10:],
    "x[:, ::-1] and x[1:] together": lambda x: x[1:, ::-1],
    "reverse": lambda x: fc.reverse(x, [0]),
    "concat of x and 2x": lambda x: fc.concat([x, 2.0 * x[::-1]], 0),
    "concat of three, unknown in the middle": lambda x: fc.concat([x[:1] * 0.5, x, x[1:] * 3.0], 0),
    "tile": lambda x: fc.tile(x, [3, 1]),
}


def _gradient_case(pick):
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float64, [None, None], name="x")
        y = pick(x)
        weights = fc.placeholder(fc.float64, [None, None], name="w")  # weighs each element of y
        loss = fc.reduce_sum(y * fc.sin(y) * weights)
        (dx,) = fc.gradients(loss, [x])
    return graph, x, weights, y, loss, dx


@pytest.mark.parametrize("name", list(SLICES))
def test_gradient_along_an_unknown_dim_matches_central_differences(name):
    rng = np.random.default_rng(len(name))
    graph, x, weights, y, loss, dx = _gradient_case(SLICES[name])
    for rows in SIZES:
        value = rng.standard_normal((rows, 3))
        sessions = {t: fc.Session(graph=graph, target=t) for t in ("reference", "cpu")}
        shape = sessions["reference"].run(y, {x: value}).shape
        w = rng.standard_normal(shape)
        feed = {x: value, weights: w}
        expected = central_differences(lambda: sessions["reference"].run(loss, feed), value)
        for target, session in sessions.items():
            got = session.run(dx, feed)
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8, err_msg=f"{target}, {rows} rows")
            session.close()


def test_two_unknown_dims_fed_different_sizes_in_one_concat():
    graph = fc.Graph()
    with graph.as_default():
        a = fc.placeholder(fc.float64, [None, 2])
        b = fc.placeholder(fc.float64, [None, 2])
        joined = fc.concat([a, b[::-1], a * b[0]], 0)
        loss = fc.reduce_sum(fc.square(joined) * fc.cast(fc.range(fc.shape(joined)[0]), fc.float64)[:, None])
        grads = fc.gradients(loss, [a, b])
    rng = np.random.default_rng(1)
    for rows_a, rows_b in ((3, 5), (1, 4), (0, 2), (6, 1)):  # b[0] needs a row of b
        feed = {a: rng.standard_normal((rows_a, 2)), b: rng.standard_normal((rows_b, 2))}
        with fc.Session(graph=graph, target="reference") as reference, fc.Session(graph=graph, target="cpu") as cpu:
            for index, placeholder in enumerate((a, b)):
                expected = central_differences(lambda: reference.run(loss, feed), feed[placeholder])
                for target, session in (("reference", reference), ("cpu", cpu)):
                    np.testing.assert_allclose(session.run(grads[index], feed), expected, rtol=1e-6, atol=1e-8,
                                               err_msg=f"{target}, d/d{'ab'[index]}, rows {rows_a}, {rows_b}")


@pytest.mark.parametrize("index", [0, 1, -1, -2])
def test_an_indexed_row_of_an_unknown_dim_gets_its_gradient_back(index):
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float64, [None, 3])
        loss = fc.reduce_sum(fc.exp(x[index]) * fc.constant([1.0, -2.0, 0.5], fc.float64))
        (dx,) = fc.gradients(loss, [x])
    rng = np.random.default_rng(2)
    for rows in (2, 3, 7):
        value = rng.standard_normal((rows, 3))
        with fc.Session(graph=graph, target="reference") as reference, fc.Session(graph=graph, target="cpu") as cpu:
            expected = central_differences(lambda: reference.run(loss, {x: value}), value)
            for target, session in (("reference", reference), ("cpu", cpu)):
                np.testing.assert_allclose(session.run(dx, {x: value}), expected, rtol=1e-6, atol=1e-8,
                                           err_msg=f"{target}, {rows} rows")


def test_a_strided_slice_of_a_known_size_puts_each_cotangent_element_back_alone():
    """x[1::3] of a [7]: each element of the cotangent goes back to its position, a NaN too (a product by a
    0/1 placement matrix would have spread it over x's whole gradient), zeros where the slice skipped."""
    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float64, [7])
        w = fc.placeholder(fc.float64, [2])
        (dx,) = fc.gradients(fc.reduce_sum(x[1::3] * w), [x])
    for target in ("reference", "cpu"):
        with fc.Session(graph=graph, target=target) as session:
            got = session.run(dx, {x: np.arange(7.0), w: [np.nan, 2.0]})
        np.testing.assert_array_equal(got, [0.0, np.nan, 0.0, 0.0, 2.0, 0.0, 0.0], err_msg=target)
