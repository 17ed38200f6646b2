"""A concat of many inputs: the CPU kernel that copies runs (Note [a concat of many inputs] in
codegen/llvm/kernels/concat_runs.py) against the reference, and against numpy, on known and
unknown dims, inputs of size 0, every axis, several dtypes, and outputs big enough to be split
across threads (a share that starts or stops inside a run)."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.codegen.llvm.kernels.concat_runs import CONCAT_RUNS_MIN_INPUTS
from test_native import assert_matches

DTYPES = {"float32": fc.float32, "float64": fc.float64, "int32": fc.int32, "int64": fc.int64, "bool": fc.bool}


def _pieces(shapes: list[tuple[int, ...]], dtype: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return [rng.random(shape) < 0.5 for shape in shapes]
    return [(rng.standard_normal(shape) * 100).astype(dtype) for shape in shapes]


def _run(pieces: list[np.ndarray], axis: int, known: bool) -> None:
    """concat(pieces, axis) on both targets (placeholders of known or unknown dims), against numpy."""
    dtype = DTYPES[pieces[0].dtype.name]
    g = fc.Graph()
    with g.as_default():
        ph = [fc.placeholder(dtype, shape=p.shape if known else [None] * p.ndim) for p in pieces]
        out = fc.concat(ph, axis=axis)
    want = np.concatenate(pieces, axis=axis)
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=g) as sess:
            got = sess.run(out, dict(zip(ph, pieces, strict=True)))
        assert_matches(got, want, f"{target} axis {axis} known {known} {[p.shape for p in pieces]}")


@pytest.mark.parametrize("known", [True, False], ids=["known", "unknown"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_many_pieces_some_empty(dtype, axis, known) -> None:
    sizes = [3, 0, 1, 5, 0, 2, 7, 1, 0, 4, 2, 3]
    shapes = [(s, 4, 3) if axis == 0 else (5, s, 3) if axis == 1 else (5, 4, s) for s in sizes]
    _run(_pieces(shapes, dtype, len(sizes)), axis, known)


@pytest.mark.parametrize("known", [True, False], ids=["known", "unknown"])
def test_a_stack_of_128_steps(known) -> None:
    """The unrolled RNN's stack: 128 [batch, hidden] steps, each a run of its own."""
    pieces = _pieces([(1, 6, 5)] * 128, "float32", 1)
    _run(pieces, 0, known)


@pytest.mark.parametrize("known", [True, False], ids=["known", "unknown"])
def test_split_across_threads(known) -> None:
    """Thousands of outer rows: each thread's share starts and ends inside some input's run."""
    sizes = [1, 3, 0, 2, 5, 1, 1, 4, 0, 2]
    _run(_pieces([(3001, s) for s in sizes], "float32", 2), 1, known)


@pytest.mark.parametrize("rows", [0, 1, 9])
def test_empty_other_axis_and_all_empty_pieces(rows) -> None:
    _run(_pieces([(rows, 2)] * CONCAT_RUNS_MIN_INPUTS, "int32", 3), 1, False)
    _run(_pieces([(rows, 0)] * CONCAT_RUNS_MIN_INPUTS, "float32", 4), 1, True)


def test_rank_1_and_inputs_computed_by_kernels() -> None:
    """Pieces made by other kernels (the concat reads their buffers); rank 1, axis 0."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None])
        out = fc.concat([x * float(k) + 1.0 for k in range(20)] + [x[:0]], axis=0) * 2.0
    feed = np.arange(7, dtype=np.float32)
    want = np.concatenate([feed * k + 1.0 for k in range(20)]) * 2.0
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=g) as sess:
            assert_matches(sess.run(out, {x: feed}), want, target)


def test_split_modules_and_code_that_does_not_grow_with_the_inputs(tmp_path, monkeypatch) -> None:
    """Each kernel compiled in a module of its own (which carries no globals of the kernel's), and
    the concat's code: about 870 characters of LLVM IR per input when unrolled, now its context's
    pointer loads only (Note [a concat of many inputs])."""
    from flowc.codegen.llvm import compile as llvm_compile
    from flowc.codegen.llvm import split

    monkeypatch.setenv("FLOWC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(llvm_compile, "SPLIT_CHARS", 0)
    monkeypatch.setattr(llvm_compile, "PARALLEL_CHARS", 0)
    monkeypatch.setattr(llvm_compile, "GROUP_CHARS", 0)
    texts: list[str] = []
    original = split.split_module
    def recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
        parts = original(*args, **kwargs)
        texts.extend(part.text for part in parts or [])
        return parts

    monkeypatch.setattr(split, "split_module", recorded)
    pieces = _pieces([(s, 3) for s in [1, 0, 2] * 43], "float32", 5)  # 129 inputs
    g = fc.Graph()
    with g.as_default():
        ph = [fc.placeholder(fc.float32, shape=[None, 3]) for _ in pieces]
        out = fc.concat([fc.exp(p * 0.01) for p in ph], axis=0) * 2.0
    want = np.concatenate([np.exp(p * np.float32(0.01)) for p in pieces]) * 2.0
    for target in ("reference", "cpu"):
        with fc.Session(target=target, graph=g) as sess:
            assert_matches(sess.run(out, dict(zip(ph, pieces, strict=True))), want, target)
    concat = [d for d in (_definition(t, "_single") for t in texts) if d]
    assert concat, "the concat was not compiled in a module of its own"
    assert max(len(t) for t in concat) < 400 * len(pieces)  # a table entry of 3 instructions per input


def _definition(text: str, suffix: str) -> str:
    """The text of the function defined in `text` whose name ends with `suffix` ("" if none)."""
    start = next((line for line in text.splitlines() if line.startswith("define") and f"{suffix}(" in line.replace('"', "")), None)
    return "" if start is None else text[text.index(start):text.index("\n}\n", text.index(start))]
