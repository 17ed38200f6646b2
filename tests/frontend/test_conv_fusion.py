"""conv2d + bias_add + relu, read by a max_pool as in a CNN, is one matmul kernel with the bias
and relu in its epilogue.

Note [reshape past elementwise] in passes/simplify.py moves the reshape back to NHWC below
the bias and the activation, so fusion puts them in the product's kernel. The values must be
those of the reference target, and of the native code without that rewrite, to the bit. Where
the relu is itself the result the rewrite stays out (a returned view costs a copy kernel).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import flowc as fc
from flowc.passes import canonicalize, simplify

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def without_the_rewrite(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    kept = [p for p in simplify.SIMPLIFY_PATTERNS if p is not simplify.elementwise_before_reshape]
    monkeypatch.setattr(simplify, "SIMPLIFY_PATTERNS", kept)
    monkeypatch.setattr(canonicalize, "SIMPLIFY_PATTERNS", kept)


def conv_graph(dtype: str, strides: int, padding: str, gradients: bool, pooled: bool = True):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(getattr(fc, dtype), shape=[None, 9, 7, 3], name="x")
        w = fc.Variable(rng.standard_normal((3, 3, 3, 5)).astype(dtype), name="w")
        b = fc.Variable(rng.standard_normal(5).astype(dtype), name="b")
        y = fc.nn.relu(fc.nn.bias_add(fc.nn.conv2d(x, w, strides=[1, strides, strides, 1], padding=padding), b))
        if pooled:
            y = fc.nn.max_pool(y, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
        fetches = [y]
        if gradients:  # relu's gradient reads the biased product: it moves above the reshape too
            fetches += fc.gradients(fc.reduce_sum(y * y), [x, w, b])
        init = fc.global_variables_initializer()
    return g, x, fetches, init


def run(target: str, dtype: str, strides: int, padding: str, gradients: bool, batch: int,  # type: ignore[no-untyped-def]
        pooled: bool = True):
    g, x, fetches, init = conv_graph(dtype, strides, padding, gradients, pooled)
    feed = np.random.default_rng(batch).standard_normal((batch, 9, 7, 3)).astype(dtype)
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        return sess.run(fetches, {x: feed})


def top_level_kernels(dump) -> list[str]:  # type: ignore[no-untyped-def]
    (fused,) = [f for f in dump.glob("*/05-fuse.ir") if "extract_patches" in f.read_text()]  # not the init's
    return re.findall(r'^  %\S+ = fusion .*\{kind = "(\w+)"', fused.read_text(), re.MULTILINE)


def epilogue_of_the_product(dump) -> list[str]:  # type: ignore[no-untyped-def]
    (fused,) = [f for f in dump.glob("*/05-fuse.ir") if "extract_patches" in f.read_text()]
    kernel = fused.read_text().split('{kind = "matmul"}')[1].split("yield")[0]
    return re.findall(r"= (\w+) ", kernel)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("strides, padding", [(1, "SAME"), (2, "VALID")])
def test_bias_and_relu_are_the_products_epilogue(tmp_path, monkeypatch, dtype, strides, padding) -> None:
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path / "fused"))
    fused = run("cpu", dtype, strides, padding, False, 3)
    kernels = top_level_kernels(tmp_path / "fused")
    assert epilogue_of_the_product(tmp_path / "fused") == ["matmul", "add", "relu"]

    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path / "apart"))
    without_the_rewrite(monkeypatch)
    apart = run("cpu", dtype, strides, padding, False, 3)
    assert epilogue_of_the_product(tmp_path / "apart") == ["matmul"]
    assert len(top_level_kernels(tmp_path / "apart")) == len(kernels) + 1  # the loop kernel of bias + relu
    np.testing.assert_array_equal(fused[0], apart[0])


def test_a_returned_relu_is_left_to_its_loop_kernel(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))
    got = run("cpu", "float32", 1, "SAME", False, 2, pooled=False)
    assert top_level_kernels(tmp_path) == ["single", "matmul", "loop"]
    assert epilogue_of_the_product(tmp_path) == ["matmul"]
    want = run("reference", "float32", 1, "SAME", False, 2, pooled=False)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 4])
def test_values_and_gradients_match_the_reference(dtype, batch) -> None:
    """Unknown batch, fed two sizes; the gradients of input, filter and bias too."""
    got = run("cpu", dtype, 1, "SAME", True, batch)
    want = run("reference", dtype, 1, "SAME", True, batch)
    assert (got[0] > 0).any() and (got[0] == 0).any()  # the relu cuts somewhere and passes somewhere
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
