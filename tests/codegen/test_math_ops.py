"""fc.sin ... fc.floormod, // and % on tensors, fc.math: native against the reference target, TF1's
semantics (round halves to even, Python's floor division), the integer division edges, and errors."""

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcTypeError

SHAPES = [(), (1,), (0, 3), (5, 33), (2, 3, 7)]
UNARY = ["sin", "cos", "tan", "atan", "asin", "acos", "sinh", "cosh", "erf", "log1p", "expm1", "floor", "ceil",
         "round", "sign", "reciprocal"]
TOL = {"float32": dict(rtol=3e-6, atol=1e-7), "float64": dict(rtol=1e-14, atol=1e-300)}


def run_both(build, feeds: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    g = fc.Graph()
    with g.as_default():
        ph = {k: fc.placeholder(v.dtype.name, shape=v.shape, name=k) for k, v in feeds.items()}
        out = build(**ph)
    results = []
    for target in ("cpu", "reference"):
        with fc.Session(graph=g, target=target) as sess:
            results.append(sess.run(out, {ph[k]: v for k, v in feeds.items()}))
    return results[0], results[1]


def close(got: np.ndarray, want: np.ndarray, dtype: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want) & ~np.isinf(want)
    np.testing.assert_allclose(got[ok], want[ok], **TOL[dtype])
    np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)])


def domain(name: str, rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    x = rng.standard_normal(shape) * 4
    if name in ("asin", "acos"):
        x = np.tanh(x)
    if name in ("round", "floor", "ceil"):
        x = np.round(x * 2) / 2  # halves: round to even
    return np.asarray(x, dtype=dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", UNARY)
def test_unary_native_matches_reference(name: str, dtype: str, shape: tuple, rng: np.random.Generator) -> None:
    x = domain(name, rng, shape, dtype)
    got, want = run_both(lambda x: getattr(fc, name)(x), {"x": x})
    close(got, want, dtype)
    with np.errstate(all="ignore"):
        numpy_name = {"atan": "arctan", "asin": "arcsin", "acos": "arccos", "round": "rint"}.get(name, name)
        expected = np.reciprocal(x) if name == "reciprocal" else (
            np.vectorize(__import__("math").erf, otypes=[float])(x) if name == "erf" else getattr(np, numpy_name)(x))
    np.testing.assert_allclose(got, np.asarray(expected, dtype=dtype), rtol=2e-6 if dtype == "float32" else 1e-13,
                               atol=1e-6 if name in ("tan", "asin", "acos", "sinh") and dtype == "float32" else 1e-300)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_values(dtype: str) -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -2.5, -1.0, 1e-30], dtype=dtype)
    names = ["sin", "cos", "atan", "erf", "log1p", "expm1", "floor", "ceil", "round", "sign"]
    got, want = run_both(lambda x: [getattr(fc, n)(x) for n in names], {"x": x})
    for n, a, b in zip(names, got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=n)
        np.testing.assert_array_equal(np.signbit(a[~np.isnan(a)]), np.signbit(b[~np.isnan(b)]), err_msg=n)
    rounded = got[names.index("round")]
    np.testing.assert_array_equal(rounded[5:10], np.array([0.0, 2.0, 2.0, -0.0, -2.0], dtype=dtype))  # to even


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
def test_floor_division_is_pythons(dtype: str, rng: np.random.Generator) -> None:
    x = rng.integers(-40, 40, (7, 13)).astype(dtype)
    y = rng.integers(-9, 10, (13,)).astype(dtype)
    y[y == 0] = 3
    got, want = run_both(lambda x, y: [x // y, x % y, fc.floordiv(x, y), fc.math.floormod(x, y), fc.mod(x, 5)],
                         {"x": x, "y": y})
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[0], x // y)
    np.testing.assert_array_equal(got[1], x % y)
    np.testing.assert_array_equal(got[4], x % 5)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_division_by_zero_and_minus_one_never_traps(dtype: str) -> None:
    """x // 0 = 0 and x % 0 = 0 (numpy's value; no SIGFPE); INT_MIN // -1 wraps to INT_MIN, % -1 is 0."""
    low = np.iinfo(dtype).min
    x = np.array([7, -7, 0, low, low, 5], dtype=dtype)
    y = np.array([0, 0, 0, -1, 0, -1], dtype=dtype)
    got, want = run_both(lambda x, y: [x // y, x % y], {"x": x, "y": y})
    np.testing.assert_array_equal(got[0], [0, 0, 0, low, 0, -5])
    np.testing.assert_array_equal(got[1], [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_float_floor_division_edges() -> None:
    x = np.array([1.0, -1.0, 0.0, np.inf, 5.0, -0.0, 7.0], dtype=np.float64)
    y = np.array([0.0, 0.0, 0.0, 2.0, np.inf, 3.0, -np.inf])
    got, want = run_both(lambda x, y: [x // y, x % y], {"x": x, "y": y})
    with np.errstate(all="ignore"):
        for a, b, c in zip(got, want, [np.floor_divide(x, y), np.remainder(x, y)]):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(np.signbit(a), np.signbit(c))


def test_binary_helpers_and_python_operands(rng: np.random.Generator) -> None:
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((5,))
    i, j = np.arange(-6, 6, dtype=np.int32), np.array([4, -3, 5, 7, -2, 1, 3, 2, -5, 9, 11, 6], dtype=np.int32)
    got, want = run_both(lambda x, y, i, j: [fc.squared_difference(x, y), fc.truediv(i, j), fc.truediv(x, y),
                                             17 // j, 17 % j, fc.math.squared_difference(x, 2.0)],
                         {"x": x, "y": y, "i": i, "j": j})
    np.testing.assert_allclose(got[0], (x - y) ** 2, rtol=1e-15)
    assert got[1].dtype == np.float64
    np.testing.assert_allclose(got[1], i / j, rtol=1e-15)
    np.testing.assert_allclose(got[2], x / y, rtol=1e-15)
    np.testing.assert_array_equal(got[3], 17 // j)
    np.testing.assert_array_equal(got[4], 17 % j)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-15)


def test_gradients_through_composed_functions() -> None:
    """tan, asin, acos, sinh, cosh, reciprocal differentiate through their parts; checked against calculus."""
    x = np.array([-0.7, -0.2, 0.3, 0.6], dtype=np.float64)
    derivative = {"tan": 1 / np.cos(x) ** 2, "asin": 1 / np.sqrt(1 - x * x), "acos": -1 / np.sqrt(1 - x * x),
                  "sinh": np.cosh(x), "cosh": np.sinh(x), "reciprocal": -1 / x ** 2,
                  "erf": 2 / np.sqrt(np.pi) * np.exp(-x * x), "sin": np.cos(x), "cos": -np.sin(x),
                  "atan": 1 / (1 + x * x), "log1p": 1 / (1 + x), "expm1": np.exp(x),
                  }
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder(fc.float64, [4])
        grads = {n: fc.gradients(fc.reduce_sum(getattr(fc, n)(p)), [p])[0] for n in derivative}
        for name in ("floor", "ceil", "round", "sign"):  # piecewise constant: no gradient, as TF1's None
            assert fc.gradients(fc.reduce_sum(getattr(fc, name)(p)), [p])[0] is None
    for target in ("cpu", "reference"):
        with fc.Session(graph=g, target=target) as sess:
            values = sess.run(grads, {p: x})
        for n, d in derivative.items():
            np.testing.assert_allclose(values[n], d, rtol=1e-12, atol=1e-300, err_msg=f"{n} on {target}")


def test_math_namespace_aliases() -> None:
    for name in ["sin", "cos", "tan", "atan", "atan2", "asin", "acos", "sinh", "cosh", "erf", "log1p", "expm1", "floor",
                 "ceil", "round", "sign", "reciprocal", "squared_difference", "truediv", "floordiv", "floormod", "mod",
                 "exp", "log", "abs", "square", "sqrt", "rsqrt", "tanh", "sigmoid", "maximum", "minimum", "pow", "add",
                 "multiply", "subtract", "divide", "reduce_sum", "reduce_mean", "argmax"]:
        assert hasattr(fc.math, name), name
    assert fc.math.sin is fc.sin and fc.math.mod is fc.floormod and fc.floor_div is fc.floordiv


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hyperbolic_and_inverse_edges(dtype: str) -> None:
    big = 100.0 if dtype == "float32" else 800.0  # past exp's overflow
    x = np.array([np.inf, -np.inf, big, -big, 50.0, -0.0, 0.0, 1e-20, np.nan], dtype=dtype)
    u = np.array([1.0, -1.0, -0.0, 0.0, 0.5, 1.5, -2.0, np.nan], dtype=dtype)
    got, want = run_both(lambda x, u: [fc.sinh(x), fc.cosh(x), fc.asin(u), fc.acos(u), fc.tan(x)], {"x": x, "u": u})
    with np.errstate(all="ignore"):
        expected = [np.sinh(x), np.cosh(x), np.arcsin(u), np.arccos(u)]
    for result in (got, want):
        for a, b in zip(result, expected):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            np.testing.assert_allclose(a, b, rtol=2e-6 if dtype == "float32" else 1e-14)
            number = ~np.isnan(b)
            np.testing.assert_array_equal(np.signbit(a[number]), np.signbit(b[number]))


def test_round_of_integers_is_the_integers() -> None:
    i = np.array([-3, 0, 7], dtype=np.int64)
    got, want = run_both(lambda i: fc.round(i), {"i": i})
    np.testing.assert_array_equal(got, i)
    np.testing.assert_array_equal(want, i)


def test_errors_name_the_op_and_the_line() -> None:
    with fc.Graph().as_default():
        i = fc.placeholder(fc.int32, [3])
        f = fc.placeholder(fc.float32, [3])
        with pytest.raises(FlowcTypeError, match="sin"):
            fc.sin(i)
        with pytest.raises(FlowcTypeError, match="floor"):
            fc.floor(i)
        with pytest.raises(FlowcTypeError, match="reciprocal.*cast"):
            fc.reciprocal(i)
        with pytest.raises(FlowcTypeError, match="test_math_ops.py"):
            fc.tan(i)
        with pytest.raises(FlowcTypeError, match="floordiv"):
            i // f
        with pytest.raises(FlowcTypeError, match="truediv"):
            fc.truediv(i, f)
        with pytest.raises(FlowcTypeError, match="sign"):
            fc.sign(fc.placeholder(fc.bool, [2]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_atan2_quadrants_and_edges(dtype: str, rng: np.random.Generator) -> None:
    values = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -3e-3, np.inf, -np.inf, np.nan], dtype=dtype)
    y, x = (a.ravel() for a in np.meshgrid(values, values))
    y = np.concatenate([y, rng.standard_normal(200).astype(dtype)])
    x = np.concatenate([x, rng.standard_normal(200).astype(dtype)])
    got, want = run_both(lambda y, x: fc.atan2(y, x), {"y": y, "x": x})
    expected = np.arctan2(y, x)
    for result in (got, want):
        np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
        number = ~np.isnan(expected)
        np.testing.assert_array_equal(np.signbit(result[number]), np.signbit(expected[number]))
        np.testing.assert_allclose(result, expected, rtol=4e-7 if dtype == "float32" else 1e-15)


def test_atan2_gradient() -> None:
    y, x = np.array([0.3, -0.4, 1.2, -2.0]), np.array([1.5, 0.7, -0.3, -1.1])
    g = fc.Graph()
    with g.as_default():
        py, px = fc.placeholder(fc.float64, [4]), fc.placeholder(fc.float64, [4])
        dy, dx = fc.gradients(fc.reduce_sum(fc.math.atan2(py, px)), [py, px])
    with fc.Session(graph=g) as sess:
        got_y, got_x = sess.run([dy, dx], {py: y, px: x})
    np.testing.assert_allclose(got_y, x / (x * x + y * y), rtol=1e-12)
    np.testing.assert_allclose(got_x, -y / (x * x + y * y), rtol=1e-12)
