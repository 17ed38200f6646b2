"""The GPU's reduction kernels (codegen/triton/kernels/reduction.py): each kernel shape run in Triton's
interpreter on CPU torch tensors against the reference target, and built to PTX for an H100.

Each case is a function that fuses into one reduction kernel whose operands are the function's
arguments and whose results are its results; the fusion pass and the GPU schedule pass run on it,
the emitter writes the kernel, and it is launched on the fed shapes: odd sizes, 0 and 1, two
unknown dims fed different sizes, rows that fit one block (kept in registers) and rows walked in
several blocks.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from flowc.codegen.triton.expressions import EXPRESSIONS  # noqa: E402
from flowc.codegen.triton import kernels  # noqa: E402,F401  (registers the emitters)
from flowc.codegen.triton.kernel import TritonModule, emitter_of, slot_dtypes  # noqa: E402
from flowc.ir import Interpreter, parse_module  # noqa: E402
from flowc.passes import PassManager  # noqa: E402
from flowc.passes.fusion import Fuse  # noqa: E402
from flowc.passes.schedule_gpu import GpuSchedule  # noqa: E402

RNG = np.random.default_rng(21)
# Masked points of a tile (rows past the end) compute on zeros, log(0) included; they are never stored.
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")

# softmax as exp(x - max - log(sum)): one kernel of two passes and a write walk, from ops every
# Triton expression table has (no division).
SOFTMAX = """
func @main(%x: f32[ROWS,ROW]) -> f32[ROWS,ROW] {
  %mx = reduce_max %x {axes = [-1], keepdims = true} : f32[ROWS,1]
  %d = sub %x, %mx : f32[ROWS,ROW]
  %e = exp %d : f32[ROWS,ROW]
  %s = reduce_sum %e {axes = [-1], keepdims = true} : f32[ROWS,1]
  %l = log %s : f32[ROWS,1]
  %z = sub %d, %l : f32[ROWS,ROW]
  %y = exp %z : f32[ROWS,ROW]
  return %y : f32[ROWS,ROW]
}
"""

# Layer norm with rsqrt(v) written exp(-0.5 * log(v)), the scale and shift read along the row.
LAYER_NORM = """
func @main(%x: T[?,ROW], %gamma: T[ROW], %beta: T[ROW]) -> T[?,ROW] {
  %mean = reduce_mean %x {axes = [1], keepdims = true} : T[?,1]
  %c = sub %x, %mean : T[?,ROW]
  %sq = mul %c, %c : T[?,ROW]
  %var = reduce_mean %sq {axes = [1], keepdims = true} : T[?,1]
  %eps = constant {value = dense<1e-05>} : T[]
  %v = add %var, %eps : T[?,1]
  %lv = log %v : T[?,1]
  %half = constant {value = dense<-0.5>} : T[]
  %h = mul %lv, %half : T[?,1]
  %r = exp %h : T[?,1]
  %n = mul %c, %r : T[?,ROW]
  %g = mul %n, %gamma : T[?,ROW]
  %y = add %g, %beta : T[?,ROW]
  return %y : T[?,ROW]
}
"""

# Results at both spaces: the softmax, its max (keepdims) and its sum (dropped).
SOFTMAX_PARTS = """
func @main(%x: f32[?,?]) -> (f32[?,?], f32[?,1], f32[?]) {
  %mx = reduce_max %x {axes = [1], keepdims = true} : f32[?,1]
  %d = sub %x, %mx : f32[?,?]
  %e = exp %d : f32[?,?]
  %s = reduce_sum %e {axes = [1], keepdims = false} : f32[?]
  %s1 = reduce_sum %e {axes = [1], keepdims = true} : f32[?,1]
  %l = log %s1 : f32[?,1]
  %z = sub %d, %l : f32[?,?]
  %y = exp %z : f32[?,?]
  return %y, %mx, %s : f32[?,?], f32[?,1], f32[?]
}
"""

# Every reduction over the rows of one input, several in one kernel, with a reduced-space epilogue
# that reads an argument aligned with the dropped shape.
ROW_REDUCTIONS = """
func @main(%x: T[?,ROW], %b: T[?]) -> (T[?], T[?,1], T[?], T[?]) {
  %s = reduce_sum %x {axes = [1], keepdims = false} : T[?]
  %mx = reduce_max %x {axes = [1], keepdims = true} : T[?,1]
  %mn = reduce_min %x {axes = [1], keepdims = false} : T[?]
  %sb = add %s, %b : T[?]
  return %s, %mx, %mn, %sb : T[?], T[?,1], T[?], T[?]
}
"""

# Products: a tl.reduce of our own, which the interpreter runs a point at a time, so small rows.
PRODUCT = """
func @main(%x: T[?,?]) -> (T[?], T[?,1]) {
  %p = reduce_prod %x {axes = [1], keepdims = false} : T[?]
  %s = reduce_sum %x {axes = [1], keepdims = true} : T[?,1]
  return %p, %s : T[?], T[?,1]
}
"""

MEAN = """
func @main(%x: T[?,ROW]) -> T[?] {
  %m = reduce_mean %x {axes = [1], keepdims = false} : T[?]
  return %m : T[?]
}
"""

ARG = """
func @main(%x: T[?,ROW]) -> (i64[?], i32[?]) {
  %a = argmax %x {axis = 1, dtype = i64} : i64[?]
  %b = argmin %x {axis = 1, dtype = i32} : i32[?]
  return %a, %b : i64[?], i32[?]
}
"""

ANY_ALL = """
func @main(%x: f32[?,ROW]) -> (bool[?], bool[?,1]) {
  %zero = constant {value = dense<0.0>} : f32[]
  %p = greater %x, %zero : bool[?,ROW]
  %a = reduce_any %p {axes = [1], keepdims = false} : bool[?]
  %l = reduce_all %p {axes = [1], keepdims = true} : bool[?,1]
  return %a, %l : bool[?], bool[?,1]
}
"""

# A bias gradient: column sums over the batch, beside the full-space value it is made of.
COLUMN_SUMS = """
func @main(%x: T[?,COLUMNS], %w: T[COLUMNS]) -> (T[?,COLUMNS], T[COLUMNS], T[1,COLUMNS]) {
  %y = mul %x, %w : T[?,COLUMNS]
  %s = reduce_sum %y {axes = [0], keepdims = false} : T[COLUMNS]
  %mx = reduce_max %x {axes = [0], keepdims = true} : T[1,COLUMNS]
  return %y, %s, %mx : T[?,COLUMNS], T[COLUMNS], T[1,COLUMNS]
}
"""

COLUMN_ARG = """
func @main(%x: f32[?,?]) -> i64[?] {
  %a = argmax %x {axis = 0, dtype = i64} : i64[?]
  return %a : i64[?]
}
"""

MIDDLE_AXIS = """
func @main(%x: f32[3,?,5]) -> (f32[3,5], f32[3,1,5]) {
  %s = reduce_sum %x {axes = [1], keepdims = false} : f32[3,5]
  %m = reduce_min %x {axes = [1], keepdims = true} : f32[3,1,5]
  return %s, %m : f32[3,5], f32[3,1,5]
}
"""

OUTER_AXES = """
func @main(%x: f32[?,3,?]) -> f32[3] {
  %s = reduce_sum %x {axes = [0, 2], keepdims = false} : f32[3]
  return %s : f32[3]
}
"""

TRAILING_AXES = """
func @main(%x: f32[?,?,4]) -> (f32[?], f32[?,1,1]) {
  %s = reduce_sum %x {axes = [1, 2], keepdims = false} : f32[?]
  %m = reduce_max %x {axes = [1, 2], keepdims = true} : f32[?,1,1]
  return %s, %m : f32[?], f32[?,1,1]
}
"""

EVERYTHING = """
func @main(%x: T[?,?]) -> (T[], T[]) {
  %s = reduce_sum %x {axes = [0, 1], keepdims = false} : T[]
  %m = reduce_max %x {axes = [0, 1], keepdims = false} : T[]
  return %s, %m : T[], T[]
}
"""

# A per-row operand of the keepdims shape, read along the row by a full-space op.
PER_ROW_SHIFT = """
func @main(%x: f32[?,?], %c: f32[?,1]) -> f32[?] {
  %d = sub %x, %c : f32[?,?]
  %q = mul %d, %d : f32[?,?]
  %s = reduce_sum %q {axes = [1], keepdims = false} : f32[?]
  return %s : f32[?]
}
"""


def case(text: str, **substitutions: str) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


@pytest.fixture(scope="module")
def folder(tmp_path_factory):  # type: ignore[no-untyped-def]
    return str(tmp_path_factory.mktemp("triton"))


@functools.lru_cache(maxsize=None)
def kernel_of(text: str, block: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    """The one reduction kernel `text` fuses into, scheduled for the GPU (with this block, if given),
    and its TritonKernel."""
    module = parse_module(text)
    PassManager([Fuse(), GpuSchedule()], verify_each=True).run(module)
    if block is not None:
        for op in module["main"].entry.ops:
            if op.name == "fusion":
                op.attributes = op.attributes | {"block": block}
    function = module["main"]
    (op,) = [o for o in function.entry.ops if o.name == "fusion"]
    assert list(op.operands) == list(function.entry.args), "the case must be one kernel of the arguments"
    returned = list(function.entry.terminator.operands)
    assert sorted(map(id, op.results)) == sorted(map(id, returned))
    assert op.kind == "reduction"
    return op, emitter_of(op)(op, "kernel"), [returned.index(r) for r in op.results]


def run(text: str, args: list[np.ndarray], folder: str,
        block: tuple[int, int] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(the kernel's results, the reference target's) on these arguments."""
    want = Interpreter(parse_module(text)).run_function(parse_module(text)["main"], args)
    _, kernel, order = kernel_of(text, block)
    module = TritonModule([kernel], interpret=True, folder=folder)
    results = [torch.full(want[i].shape, 7, dtype=getattr(torch, str(want[i].dtype))) for i in order]
    module.launch("kernel", [torch.from_numpy(np.ascontiguousarray(a)) for a in args] + results)
    got = {i: r.numpy() for i, r in zip(order, results)}
    return [got[i] for i in range(len(want))], want


def check(text: str, args: list[np.ndarray], folder: str, rtol: float = 1e-5) -> None:
    got, want = run(text, args, folder)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)
        else:
            np.testing.assert_array_equal(g, w)


def normal(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def schedule(text: str) -> tuple[str, tuple[int, int]]:
    op = kernel_of(text)[0]
    return op.attributes["schedule"], op.attributes["block"]


# -- row kernels --------------------------------------------------------------------------------

@pytest.mark.parametrize("rows", [0, 1, 7, 300])
def test_softmax_over_rows_kept_in_registers(rows: int, folder: str) -> None:
    text = case(SOFTMAX, ROWS="?", ROW="10")
    assert schedule(text) == ("row_tiles", (256, 16))
    assert "for start" not in kernel_of(text)[1].source  # one block a row: no walk, registers reread
    check(text, [normal(rows, 10)], folder)


@pytest.mark.parametrize("shape", [(3, 0), (3, 1), (2, 1100), (0, 5)])
def test_softmax_over_unknown_rows_walks_blocks(shape: tuple[int, int], folder: str) -> None:
    text = case(SOFTMAX, ROWS="?", ROW="?")
    source = kernel_of(text)[1].source
    assert source.count("for start") == 3  # the max, the sum, the write: Note [reduction passes]
    check(text, [normal(*shape)], folder)


def test_softmax_of_a_static_matrix(folder: str) -> None:
    check(case(SOFTMAX, ROWS="5", ROW="33"), [normal(5, 33) * 30], folder)


@pytest.mark.parametrize("row, dtype, rtol", [("64", "f32", 1e-5), ("?", "f32", 1e-5), ("?", "f64", 1e-12),
                                              ("37", "f64", 1e-12)])
def test_layer_norm(row: str, dtype: str, rtol: float, folder: str) -> None:
    text = case(LAYER_NORM, ROW=row, T=dtype)
    width = 37 if row == "37" else 64 if row == "64" else 1500
    npt = np.float32 if dtype == "f32" else np.float64
    check(text, [normal(3, width, dtype=npt) * 4 + 1, normal(width, dtype=npt), normal(width, dtype=npt)],
          folder, rtol)


@pytest.mark.parametrize("shape", [(4, 9), (1, 1), (2, 0), (0, 3), (3, 2000)])
def test_results_at_both_spaces(shape: tuple[int, int], folder: str) -> None:
    check(SOFTMAX_PARTS, [normal(*shape)], folder)


@pytest.mark.parametrize("row", ["6", "?"])
@pytest.mark.parametrize("dtype", ["f32", "f64", "i32", "i64"])
def test_every_combining_reduction(row: str, dtype: str, folder: str) -> None:
    text = case(ROW_REDUCTIONS, ROW=row, T=dtype)
    npt = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64}[dtype]
    for rows, width in ((5, 6), (1, 6), (3, 0) if row == "?" else (0, 6), (2, 1100) if row == "?" else (2, 6)):
        if npt in (np.int32, np.int64):
            x = RNG.integers(-9, 9, (rows, width)).astype(npt)
        else:
            x = (RNG.uniform(0.5, 1.5, (rows, width)) * RNG.choice([-1, 1], (rows, width))).astype(npt)
        check(text, [x, normal(rows).astype(npt)], folder, rtol=1e-4 if npt == np.float32 else 1e-12)


def test_integer_sums_and_products_wrap_as_the_reference(folder: str) -> None:
    check(case(ROW_REDUCTIONS, ROW="?", T="i32"),
          [RNG.integers(-(2**30), 2**30, (3, 1500)).astype(np.int32), RNG.integers(-5, 5, 3).astype(np.int32)],
          folder)
    check(case(PRODUCT, T="i32"), [RNG.integers(-(2**20), 2**20, (2, 9)).astype(np.int32)], folder)


@pytest.mark.parametrize("row", ["7", "?"])
def test_mean_of_empty_rows_is_nan(row: str, folder: str) -> None:
    text = case(MEAN, ROW=row, T="f32")
    check(text, [normal(4, 7)], folder)
    if row == "?":
        got, _ = run(text, [normal(3, 0)], folder)
        assert np.isnan(got[0]).all()


def test_max_and_min_propagate_nan_and_empty_rows_give_identities(folder: str) -> None:
    text = case(ROW_REDUCTIONS, ROW="?", T="f32")
    x = normal(4, 1300)
    x[1, 5] = np.nan
    x[2, 1200] = np.nan
    check(text, [x, normal(4)], folder)
    got, _ = run(text, [np.zeros((2, 0), np.float32), normal(2)], folder)
    total, peak, least, _ = got
    assert (total == 0).all() and (peak == -np.inf).all() and (least == np.inf).all()


@pytest.mark.parametrize("dtype", ["f32", "f64", "i32", "i64"])
def test_products(dtype: str, folder: str) -> None:
    """In registers, and walked in blocks of 4 (a block made small: few points to interpret)."""
    text = case(PRODUCT, T=dtype)
    npt = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64}[dtype]
    for shape in ((3, 5), (2, 0), (1, 1), (2, 11)):
        x = (RNG.integers(-40, 40, shape) if npt in (np.int32, np.int64) else RNG.uniform(-2, 2, shape)).astype(npt)
        for block in (None, (2, 4)):
            got, want = run(text, [x], folder, block)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-5 if npt == np.float32 else 1e-12)


@pytest.mark.parametrize("row", ["8", "?"])
@pytest.mark.parametrize("dtype", ["f32", "i32"])
def test_argmax_and_argmin_take_the_first_extremum(row: str, dtype: str, folder: str) -> None:
    text = case(ARG, ROW=row, T=dtype)
    width = 8 if row == "8" else 2100
    x = RNG.integers(-3, 3, (5, width)).astype(np.float32 if dtype == "f32" else np.int32)  # many ties
    if dtype == "f32":
        x[1, 6] = np.nan  # the first NaN wins both
        x[1, 7] = np.nan
        x[3, :] = -np.inf
    check(text, [x], folder)


@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (0, 5), (4, 0), (2, 1100)])
def test_any_and_all(shape: tuple[int, int], folder: str) -> None:
    x = normal(*shape)
    if shape[0] > 1 and shape[1]:
        x[1] = np.abs(x[1]) + 1  # a row of all True
        x[-1] = -np.abs(x[-1])  # and one of all False
    check(case(ANY_ALL, ROW="?"), [x], folder)


BOOL_ARGUMENT = """
func @main(%p: bool[?,?]) -> (bool[?], bool[1,?]) {
  %a = reduce_any %p {axes = [1], keepdims = false} : bool[?]
  %l = reduce_all %p {axes = [0], keepdims = true} : bool[1,?]
  return %a, %l : bool[?], bool[1,?]
}
"""


@pytest.mark.parametrize("shape", [(4, 5), (0, 3), (3, 0), (1, 1)])
def test_bool_arguments(shape: tuple[int, int], folder: str) -> None:
    """Two kernels (rows, then columns) over bool buffers read as Triton's int1."""
    module = parse_module(BOOL_ARGUMENT)
    PassManager([Fuse(), GpuSchedule()], verify_each=True).run(module)
    kernels = [o for o in module["main"].entry.ops if o.name == "fusion"]
    assert sorted(k.attributes["schedule"] for k in kernels) == ["column_tiles", "row_tiles"]
    p = RNG.random(shape) < 0.6
    want = Interpreter(parse_module(BOOL_ARGUMENT)).run_function(parse_module(BOOL_ARGUMENT)["main"], [p])
    emitted = [emitter_of(k)(k, f"kernel{i}") for i, k in enumerate(kernels)]
    triton_module = TritonModule(emitted, interpret=True, folder=folder)
    got = []
    for i, k in enumerate(kernels):
        result = torch.zeros(want[i].shape, dtype=torch.bool)
        triton_module.launch(f"kernel{i}", [torch.from_numpy(p), result])
        got.append(result.numpy())
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    triton_module.ptx("kernel0", slot_dtypes(kernels[0]))


def test_per_row_operand_read_along_the_row(folder: str) -> None:
    check(PER_ROW_SHIFT, [normal(5, 3), normal(5, 1)], folder)
    check(PER_ROW_SHIFT, [normal(2, 1500), normal(2, 1)], folder)


def test_reduction_over_several_trailing_axes(folder: str) -> None:
    assert schedule(TRAILING_AXES)[0] == "row_tiles"
    for shape in ((3, 5, 4), (2, 1, 4), (0, 2, 4), (2, 0, 4), (1, 300, 4)):
        check(TRAILING_AXES, [normal(*shape)], folder)


@pytest.mark.parametrize("dtype", ["f32", "f64", "i64"])
def test_reduction_over_every_axis_is_one_program(dtype: str, folder: str) -> None:
    text = case(EVERYTHING, T=dtype)
    assert schedule(text)[1][0] == 1
    npt = {"f32": np.float32, "f64": np.float64, "i64": np.int64}[dtype]
    for shape in ((3, 7), (1, 1), (0, 4), (5, 900)):
        x = RNG.integers(-50, 50, shape).astype(npt) if dtype == "i64" else normal(*shape, dtype=npt)
        check(text, [x], folder, rtol=1e-4 if dtype == "f32" else 1e-12)


# -- column kernels -----------------------------------------------------------------------------

@pytest.mark.parametrize("columns, dtype", [("37", "f32"), ("300", "f32"), ("5", "f64"), ("9", "i32")])
def test_column_sums_beside_their_full_value(columns: str, dtype: str, folder: str) -> None:
    text = case(COLUMN_SUMS, COLUMNS=columns, T=dtype)
    assert schedule(text)[0] == "column_tiles"
    npt = {"f32": np.float32, "f64": np.float64, "i32": np.int32}[dtype]
    n = int(columns)
    for rows in (0, 1, 6, 77):
        if dtype == "i32":
            x, w = RNG.integers(-9, 9, (rows, n)).astype(npt), RNG.integers(-3, 3, n).astype(npt)
        else:
            x, w = normal(rows, n, dtype=npt), normal(n, dtype=npt)
        check(text, [x, w], folder, rtol=1e-4 if dtype == "f32" else 1e-12)


def test_column_argmax(folder: str) -> None:
    assert schedule(COLUMN_ARG)[0] == "column_tiles"
    x = RNG.integers(-2, 2, (70, 9)).astype(np.float32)
    x[5, 2] = np.nan
    check(COLUMN_ARG, [x], folder)
    check(COLUMN_ARG, [normal(1, 3)], folder)


def test_reduction_over_a_middle_axis(folder: str) -> None:
    assert schedule(MIDDLE_AXIS)[0] == "column_tiles"
    for middle in (0, 1, 4, 70):
        check(MIDDLE_AXIS, [normal(3, middle, 5)], folder)


def test_reduction_over_axes_around_a_kept_one(folder: str) -> None:
    assert schedule(OUTER_AXES)[0] == "column_tiles"
    for shape in ((2, 3, 5), (0, 3, 4), (7, 3, 1), (40, 3, 9)):
        check(OUTER_AXES, [normal(*shape)], folder)


# -- accuracy -----------------------------------------------------------------------------------

def test_long_float32_sums_keep_the_rounding_error_of_each_block(folder: str) -> None:
    """Note [block sums]: in blocks of 2**14 (few programs to interpret), a first block holding 1e10
    (and zeros), then blocks of 0.3s, whose tree sums are exact (4915.2: 0.3f times a power of two).
    A plain running total rounds each block's sum to a multiple of its ulp, 1024: 205 too much, 19
    times; compensated, the result is the exact sum rounded once."""
    text = case(MEAN, ROW="?", T="f32").replace("reduce_mean", "reduce_sum")
    block = 2**14
    x = np.full((1, 20 * block), 0.3, np.float32)
    x[0, :block] = 0
    x[0, 0] = 1e10
    exact = x.astype(np.float64).sum()
    plain = np.float32(0)
    for start in range(0, x.shape[1], block):  # what a running total without compensation gives
        plain = np.float32(plain + x[0, start:start + block].astype(np.float64).sum().astype(np.float32))
    assert abs(float(plain) - exact) > 3e-7 * exact  # so the bound below tells the two apart
    got, _ = run(text, [x], folder, block=(1, block))
    assert abs(float(got[0][0]) - exact) <= 1e-7 * exact, (got[0][0], exact)


@pytest.mark.parametrize("shape, axis", [((1, 30_000), 1), ((20_000, 3), 0)])
def test_float32_sums_are_as_accurate_as_the_cpus(shape: tuple[int, int], axis: int, folder: str) -> None:
    """Random terms against a float64 sum, as tests/codegen/test_summation_accuracy.py holds the CPU:
    within a few ulps of the sum of magnitudes."""
    x = normal(*shape)
    text = (COLUMN_SUMS if axis == 0 else case(MEAN, T="f32").replace("reduce_mean", "reduce_sum"))
    text = case(text, COLUMNS=str(shape[1]), ROW="?", T="f32")
    args = [x, np.ones(shape[1], np.float32)] if axis == 0 else [x]
    got, _ = run(text, args, folder)
    total = got[1] if axis == 0 else got[0]
    exact = x.astype(np.float64).sum(axis=axis)
    scale = np.abs(x).astype(np.float64).sum(axis=axis)
    assert (np.abs(total - exact) <= 5e-7 * scale).all()


# -- with the division and rsqrt of the math tables ----------------------------------------------

from test_schedule import SOFTMAX as SOFTMAX_DIVIDED  # noqa: E402  (the CPU schedule tests' softmax text)

LAYER_NORM_RSQRT = """
func @main(%x: f32[?,ROW]) -> f32[?,ROW] {
  %mean = reduce_mean %x {axes = [1], keepdims = true} : f32[?,1]
  %c = sub %x, %mean : f32[?,ROW]
  %sq = mul %c, %c : f32[?,ROW]
  %var = reduce_mean %sq {axes = [1], keepdims = true} : f32[?,1]
  %eps = constant {value = dense<1e-05>} : f32[]
  %v = add %var, %eps : f32[?,1]
  %r = rsqrt %v : f32[?,1]
  %y = mul %c, %r : f32[?,ROW]
  return %y : f32[?,ROW]
}
"""


@pytest.mark.parametrize("text, op", [(SOFTMAX_DIVIDED, "div"), (LAYER_NORM_RSQRT, "rsqrt")])
@pytest.mark.parametrize("row", ["12", "?"])
def test_softmax_and_layer_norm_as_written(text: str, op: str, row: str, folder: str) -> None:
    if op not in EXPRESSIONS:
        pytest.skip(f"{op} has no Triton expression on this branch (codegen/triton/expressions.py)")
    check(case(text, ROW=row), [normal(5, 12 if row == "12" else 1200) * 3], folder)


# -- PTX ----------------------------------------------------------------------------------------

PTX_CASES = {
    "softmax_registers": case(SOFTMAX, ROWS="?", ROW="10"),
    "softmax_walked": case(SOFTMAX, ROWS="?", ROW="?"),
    "layer_norm_f64": case(LAYER_NORM, ROW="?", T="f64"),
    "both_spaces": SOFTMAX_PARTS,
    "every_reduction_i64": case(ROW_REDUCTIONS, ROW="?", T="i64"),
    "products_f32": case(PRODUCT, T="f32"),
    "every_reduction_f32": case(ROW_REDUCTIONS, ROW="6", T="f32"),
    "argmax": case(ARG, ROW="?", T="f32"),
    "any_all": case(ANY_ALL, ROW="?"),
    "column_sums": case(COLUMN_SUMS, COLUMNS="37", T="f32"),
    "column_argmax": COLUMN_ARG,
    "middle_axis": MIDDLE_AXIS,
    "outer_axes": OUTER_AXES,
    "everything_f32": case(EVERYTHING, T="f32"),
}


@pytest.mark.parametrize("name", sorted(PTX_CASES))
def test_builds_to_ptx_for_an_h100(name: str, folder: str) -> None:
    op, kernel, _ = kernel_of(PTX_CASES[name])
    ptx = TritonModule([kernel], interpret=True, folder=folder).ptx("kernel", slot_dtypes(op))
    assert ".target sm_90" in ptx and ".entry kernel" in ptx


SIMPLIFIED = """
func @main(%x: f32[?,3]) -> f32[?,3] {
  %y = fusion %x {kind = "reduction"} : f32[?,3] {
  ^bb0(%a: f32[?,3]):
    %t = mul %a, %a : f32[?,3]
    yield %t : f32[?,3]
  }
  return %y : f32[?,3]
}
"""


def test_a_reduction_kernel_simplified_to_pointwise_ops(folder: str) -> None:
    """A pass after fusion may leave a reduction kernel with no reduction (Note [kernel contract]): it
    runs as rows of one point."""
    module = parse_module(SIMPLIFIED)
    PassManager([GpuSchedule()], verify_each=True).run(module)
    (op,) = [o for o in module["main"].entry.ops if o.name == "fusion"]
    assert op.attributes["schedule"] == "row_tiles"
    kernel = emitter_of(op)(op, "kernel")
    x = normal(5, 3)
    y = torch.zeros(5, 3)
    TritonModule([kernel], interpret=True, folder=folder).launch("kernel", [torch.from_numpy(x), y])
    np.testing.assert_array_equal(y.numpy(), x * x)
