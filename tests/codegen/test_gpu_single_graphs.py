"""Graphs whose kernels include the GPU's single kernels (codegen/triton/kernels/: movement, gathers,
random, scans) run on Session(target="gpu") (Triton's interpreter without a GPU) against the
reference target, their kernels built to PTX for sm_90; and the errors that their error flags raise
(Note [error flags] in codegen/triton/kernel.py), as the CPU raises them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

from gpu_check import assert_gpu_matches  # noqa: E402

import flowc as fc  # noqa: E402
from flowc.ir.errors import IndexOutOfRange  # noqa: E402
from flowc.ir.ops.checks import CheckFailed  # noqa: E402


def test_reshuffles_of_a_batch_of_unknown_size():
    def build():
        x = fc.placeholder(fc.float32, [None, 4], name="x")
        y = fc.placeholder(fc.float32, [None, 4], name="y")
        moved = fc.concat([fc.transpose(x), fc.transpose(y)], axis=1)  # [4, n + m]
        flipped = fc.reverse(x, [0])[::2, 1:3] * 2.0
        padded = fc.pad(y, [[1, 0], [2, 1]], constant_values=-1.0)
        return [moved + 1.0, flipped, padded]

    rng = np.random.default_rng(0)
    for n, m in ((5, 3), (1, 0), (0, 2)):
        assert_gpu_matches(build, {"x": rng.standard_normal((n, 4)).astype(np.float32),
                                   "y": rng.standard_normal((m, 4)).astype(np.float32)})


def test_embedding_lookup_one_hot_and_scans():
    def build():
        table = fc.Variable(np.arange(30, dtype=np.float32).reshape(10, 3), name="table")
        ids = fc.placeholder(fc.int32, [None], name="ids")
        rows = fc.gather(table, ids)
        hot = fc.one_hot(ids, 10, on_value=2.0, off_value=-1.0)
        values, indices = fc.nn.top_k(hot + fc.cumsum(hot, axis=1, reverse=True), k=3)
        return [rows, fc.cumsum(rows, axis=0, exclusive=True), values, indices]

    for ids in ([3, 0, 9, 3], [7], []):
        assert_gpu_matches(build, {"ids": np.array(ids, np.int32)})


def test_random_draws_match_the_reference_run_after_run():
    from flowc.random_ops import _uniform_like  # dropout's draw (fc.nn.dropout divides: not this file's kernels)

    def build():
        x = fc.placeholder(fc.float32, [None, 6], name="x")
        uniform = fc.random_uniform([3, 5], minval=-2.0, maxval=2.0, seed=7)
        normal = fc.random_normal([4], mean=1.0, stddev=3.0, dtype=fc.float64, seed=8)
        return [uniform, normal, fc.where(_uniform_like(x, seed=9) < 0.5, x, 0.0)]

    assert_gpu_matches(build, {"x": np.ones((5, 6), np.float32)}, runs=2)


def test_a_gather_out_of_range_raises_as_on_the_cpu():
    g = fc.Graph()
    with g.as_default():
        params = fc.placeholder(fc.float32, [None, 2], name="params")
        ids = fc.placeholder(fc.int64, [None], name="ids")
        picked = fc.gather(params, ids) + 1.0
    messages = []
    for target in ("cpu", "gpu"):
        with fc.Session(target=target, graph=g) as session:
            with pytest.raises(IndexOutOfRange) as failure:
                session.run(picked, {"params": np.ones((3, 2), np.float32), "ids": np.array([0, 5])})
            messages.append(str(failure.value))
            np.testing.assert_array_equal(  # the next run is clean: the flags were zeroed
                session.run(picked, {"params": np.ones((3, 2), np.float32), "ids": np.array([2])}), [[2.0, 2.0]])
    assert messages[0] == messages[1] and "index 5 is out of range [0, 3)" in messages[1]


def test_concurrent_runs_of_one_session_keep_their_own_error_flags():
    import threading

    g = fc.Graph()
    with g.as_default():
        params = fc.placeholder(fc.float32, [None, 2], name="params")
        ids = fc.placeholder(fc.int64, [None], name="ids")
        picked = fc.gather(fc.exp(params), ids) * 2.0 + 1.0
    outcomes: dict[str, list] = {"good": [], "bad": []}
    with fc.Session(target="gpu", graph=g) as session:
        def runs(kind: str, chosen: list[int]) -> None:
            for _ in range(12):
                try:
                    session.run(picked, {"params": np.zeros((3, 2), np.float32), "ids": np.array(chosen)})
                    outcomes[kind].append("values")
                except IndexOutOfRange:
                    outcomes[kind].append("raised")
                except Exception as error:  # noqa: BLE001 - a thread's exception would be lost: record it
                    outcomes[kind].append(repr(error))
        threads = [threading.Thread(target=runs, args=("good", [0, 2, 1])), threading.Thread(target=runs, args=("bad", [7]))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert outcomes == {"good": ["values"] * 12, "bad": ["raised"] * 12}


def test_a_false_assert_stops_the_run_with_its_message():
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        check = fc.debugging.assert_positive(x, message="x must be positive")
        with fc.control_dependencies([check]):
            total = x * 2.0
    with fc.Session(target="gpu", graph=g) as session:
        np.testing.assert_array_equal(session.run(total, {"x": np.array([1.0, 2.0], np.float32)}), [2.0, 4.0])
        with pytest.raises(CheckFailed, match="x must be positive.*at element 2"):
            session.run(total, {"x": np.array([1.0, 2.0, -1.0], np.float32)})


def test_where_with_one_argument_runs_cut_at_its_count():
    """Its result's size is data: the run is cut at the count, which the host reads (Note [data-dependent
    sizes]; tests/codegen/test_gpu_where.py has the rest)."""
    g = fc.Graph()
    with g.as_default():
        condition = fc.placeholder(fc.bool, [None], name="condition")
        found = fc.where(condition)
    with fc.Session(target="gpu", graph=g) as session:
        np.testing.assert_array_equal(session.run(found, {"condition": np.array([True, False, True])}), [[0], [2]])
