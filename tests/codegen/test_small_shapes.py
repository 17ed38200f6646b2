"""Reductions and softmaxes over every small static shape compile, in bounded time, and match the reference.

Shapes with size-1 axes once sent LLVM's loop vectorizer into a search exponential in the kernel's
depth (Note [one step] in codegen/llvm/kernel.py): `log_softmax(exp(x), axis=0)` over a [1, 1]
never finished compiling. Each grid runs in a child process under a watchdog, with a disk cache
of its own (a cached library would skip the compile), so a hang fails its test instead of freezing
the suite; the child says which shape it is compiling (FLOWC_LOG=compile names the kernel, when
one needs to know more).
"""

from __future__ import annotations

import itertools
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import flowc as fc

WATCHDOG_SECONDS = 300
PRODUCERS = {"exp": fc.exp, "tanh": fc.tanh, "relu": fc.relu}
REDUCTIONS = ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")


def shapes_of_rank(rank: int) -> list[tuple[int, ...]]:
    return list(itertools.product((1, 2, 3), repeat=rank))


def grid_graph(shape: tuple[int, ...], dtype: fc.DType) -> tuple[fc.Graph, list, list[str], list]:
    """Every reduction over every axis set, and softmax, log_softmax and argmax over every axis, each
    of an elementwise producer of its own placeholder (one shared producer would be a kernel of its
    own, not fused into the reductions)."""
    g = fc.Graph()
    names, fetches, inputs = [], [], []

    def producer(name: str):  # type: ignore[no-untyped-def]
        x = fc.placeholder(dtype, shape=list(shape), name=f"x{len(inputs)}")
        inputs.append(x)
        return PRODUCERS[name](x)

    with g.as_default():
        rank = len(shape)
        axis_sets = [list(c) for n in range(1, rank + 1) for c in itertools.combinations(range(rank), n)]
        for case, (axes, reduction) in enumerate(itertools.product(axis_sets, REDUCTIONS)):
            name = list(PRODUCERS)[case % len(PRODUCERS)]
            keepdims = (case + case // len(REDUCTIONS)) % 2 == 1  # each reduction both ways over the axis sets
            names.append(f"{reduction}({name}(x), axis={axes}, keepdims={keepdims})")
            fetches.append(getattr(fc, reduction)(producer(name), axis=axes, keepdims=keepdims))
        for axis in range(rank):
            for function, name in (("softmax", "exp"), ("log_softmax", "exp"), ("log_softmax", "tanh"),
                                   ("softmax", "relu")):
                names.append(f"{function}({name}(x), axis={axis})")
                fetches.append(getattr(fc.nn, function)(producer(name), axis=axis))
            names.append(f"argmax(tanh(x), axis={axis})")
            fetches.append(fc.argmax(producer("tanh"), axis=axis))
    return g, fetches, names, inputs


def mismatches(g: fc.Graph, fetches: list, names: list[str], feeds: dict) -> list[str]:
    with fc.Session(graph=g) as sess:
        got = sess.run(fetches, feeds)
    with fc.Session(graph=g, target="reference") as ref:
        want = ref.run(fetches, feeds)
    tolerance = {"rtol": 1e-5, "atol": 1e-6}
    return [f"{name}: {a!r} != {b!r}" for name, a, b in zip(names, got, want)
            if np.shape(a) != np.shape(b) or not np.allclose(a, b, **tolerance)]


def check_rank(rank: int) -> None:
    """The child's work: every shape of `rank`, float32 and float64 in turn; prints what differs."""
    check_shapes(shapes_of_rank(rank))


def check_shapes(shapes: list[tuple[int, ...]]) -> None:
    rng = np.random.default_rng(len(shapes))
    for index, shape in enumerate(shapes):
        dtype = (fc.float32, fc.float64)[index % 2]
        print(f"compiling {list(shape)} {dtype}", file=sys.stderr, flush=True)
        g, fetches, names, inputs = grid_graph(shape, dtype)
        data = rng.standard_normal(shape)
        for line in mismatches(g, fetches, names, {x: data for x in inputs}):
            print(f"{list(shape)} {dtype}: {line}")


def check_issue_graphs() -> None:
    """The reproducers: the log_softmax of an exp (and of tanh, relu) over a [1, 1], float32 and
    float64, alone, with a gradient, and feeding another kernel; and over [1, 1, 1]."""
    for dtype, shape, (name, function) in itertools.product((fc.float32, fc.float64), ((1, 1), (1, 1, 1)),
                                                          PRODUCERS.items()):
        print(f"compiling the issue's graph: {name} {list(shape)} {dtype}", file=sys.stderr, flush=True)
        g = fc.Graph()
        with g.as_default():
            x = fc.placeholder(dtype, shape=list(shape), name="x")
            y = fc.placeholder(dtype, shape=[None, 3], name="y")
            z = fc.nn.log_softmax(function(x), axis=0)
            (dx,) = fc.gradients(fc.reduce_sum(z * z), [x])
            fetches = [z, dx, fc.reshape(z, [1, 1]) + y]
        feeds = {x: np.full(shape, 0.25), y: np.arange(6.0).reshape(2, 3)}
        for line in mismatches(g, fetches, ["log_softmax", "gradient", "broadcast sum"], feeds):
            print(f"{name} {list(shape)} {dtype}: {line}")


def run_watched(call: str, tmp_path: pathlib.Path) -> None:
    """Run `call` (a function of this module) in a child with a fresh disk cache; fail on a hang,
    a crash or any line it prints."""
    tests = str(pathlib.Path(__file__).parent)
    code = f"import sys; sys.path.insert(0, {tests!r}); import test_small_shapes as t; t.{call}"
    env = {**os.environ, "FLOWC_CACHE_DIR": str(tmp_path)}
    try:
        child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                               timeout=WATCHDOG_SECONDS)
    except subprocess.TimeoutExpired as hung:
        progress = hung.stderr.decode() if isinstance(hung.stderr, bytes) else hung.stderr or ""
        pytest.fail(f"{call} did not finish in {WATCHDOG_SECONDS} s; its last words:\n{progress[-2000:]}")
    assert child.returncode == 0, child.stderr[-4000:]
    assert child.stdout == "", child.stdout


def test_the_log_softmax_of_an_exp_over_a_1x1_compiles(tmp_path) -> None:
    run_watched("check_issue_graphs()", tmp_path)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_every_small_static_shape_compiles_and_matches_the_reference(rank, tmp_path) -> None:
    run_watched(f"check_rank({rank})", tmp_path)


def test_column_reductions_over_size_1_axes_compile_and_match_the_reference(tmp_path) -> None:
    """Reductions over leading axes with at least MIN_KEPT kept elements are column reductions
    (column_reduction.py), which the grids' small shapes never reach."""
    run_watched("check_shapes([(1, 40), (1, 1, 40), (2, 1, 40), (1, 17)])", tmp_path)


LOGGED = """
import numpy as np, flowc as fc
g = fc.Graph()
with g.as_default():
    x = fc.placeholder(fc.float32, shape=[None, 10], name="x")
    y = fc.nn.softmax(fc.tanh(x)) * 2.0
with fc.Session(graph=g) as sess:
    print(sess.run(y, {x: np.zeros((2, 10), np.float32)})[0, 0])
"""


def test_flowc_log_compile_names_each_kernel_before_compiling_it(tmp_path) -> None:
    env = {**os.environ, "FLOWC_CACHE_DIR": str(tmp_path), "FLOWC_LOG": "compile"}
    runs = [subprocess.run([sys.executable, "-c", LOGGED], env=env, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    assert [float(r.stdout) for r in runs] == [pytest.approx(0.2), pytest.approx(0.2)]
    lines = runs[0].stderr.splitlines()
    assert lines[0] == ("flowc compile: kernel 0 of 1: reduction [tanh reduce_max sub exp reduce_sum div mul] "
                        "(f32[?,10]) -> f32[?,10]: compiling alone"), lines
    assert lines[1].startswith("flowc compile: kernel 0: optimized in ") and "object code in" in lines[1]
    assert lines[2] == "flowc compile: the whole module: compiling" and len(lines) == 4, lines
    assert lines[3].startswith("flowc compile: the whole module: optimized in ")
    assert runs[1].stderr.startswith("flowc compile: found compiled in the disk cache: ")
