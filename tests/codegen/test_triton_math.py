"""Every elementwise op as a Triton expression (codegen/triton/expressions.py, math.py), run in Triton's
interpreter on CPU torch tensors against the op's numpy meaning, and built to PTX for an H100.

One small kernel per op and dtype (the op's statement from body.pointwise_lines between loads and a
store), on inputs that hurt: signed zeros, infinities, NaN, subnormals, the extremes, and both sides of
every branch point of math.py's formulas. The transcendentals are held to math.MAX_ULP in ulps of the
exact result (float64 references for float32, long double ones for float64, as tests/codegen/
test_mathlib.py measures the CPU's) and their edges must be numpy's; every other op is exact, sign of
zero included.
"""

import functools
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from test_mathlib import (DENSE, WIDE, assert_same_edges, bit_walk, edge_values, pow_edges,  # noqa: E402
                          pow_samples, ulp_error)
from test_mathlib_special import DENSE as SPECIAL_DENSE  # noqa: E402
from test_mathlib_special import erf_series  # noqa: E402

from flowc.codegen.triton.body import pointwise_lines  # noqa: E402
from flowc.codegen.triton.expressions import EXPRESSIONS  # noqa: E402
from flowc.codegen.triton.kernel import Buffer, Extent, GridAxis, TritonKernel, TritonModule  # noqa: E402
from flowc.codegen.triton.math import MAX_ULP  # noqa: E402
from flowc.ir import DTYPES, Builder, Function, OpResult, TensorType, as_dtype  # noqa: E402
from flowc.ir.op import OPS  # noqa: E402

BLOCK = 4096
ELEMENTWISE = sorted(name for name, cls in OPS.items() if cls.elementwise)
# float16 has its own tests, with a half's tolerances (test_gpu_float16.py)
NOT_HALF = [dtype for dtype in DTYPES if dtype.name != "float16"]
CASES = [(name, dtype.name) for name in ELEMENTWISE if name not in ("cast", "where") for dtype in OPS[name].dtypes
         if dtype.name != "float16"]
CASES += [("where", dtype.name) for dtype in NOT_HALF]
CASTS = [(source.name, target.name) for source in NOT_HALF for target in NOT_HALF]
FLOATS = ("float32", "float64")


def one_op(name: str, dtype: str, target: str | None = None, constant: tuple[int, object] | None = None):
    """A function computing one `name` op on operands of `dtype` (where: a bool condition first);
    `constant` = (i, value) makes operand i a splat constant, as the fusion pass clones them into a region."""
    arity = OPS[name].num_operands
    types = [TensorType(as_dtype("bool" if name == "where" and i == 0 else dtype), (None,)) for i in range(arity)]
    function = Function("f", types, [])
    builder = Builder.at_end(function.entry)
    operands = list(function.args)
    if constant is not None:
        index, value = constant
        operands[index] = builder.constant(value, types[index].dtype)
    attributes = {"dtype": target} if name == "cast" else {}
    return builder.create(name, operands, attributes)


def kernel_of(op, kernel_name: str, block: int = BLOCK) -> TritonKernel:
    """Loads of the operands, the op's statement as body.pointwise_lines writes it, a store."""
    loaded = [value for value in op.operands if not (isinstance(value, OpResult) and value.owner.name == "constant")]
    names = {value: f"a{i}" for i, value in enumerate(loaded)}
    constants = [value.owner for value in op.operands if value not in names]
    lines = pointwise_lines([*constants, op], names)
    arguments = "".join(f"x{i}, " for i in range(len(loaded)))
    loads = "".join(f"    a{i} = tl.load(x{i} + offsets, mask=inside)\n" for i in range(len(loaded)))
    body = "".join(f"    {line}\n" for line in lines)
    source = (f"@triton.jit\ndef {kernel_name}({arguments}out, n, BLOCK: tl.constexpr):\n"
              f"    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)\n    inside = offsets < n\n"
              f"{loads}{body}    tl.store(out + offsets, {names[op.results[0]]}, mask=inside)\n")
    slots = len(loaded)
    parameters = tuple((f"x{i}", Buffer(i)) for i in range(slots)) + (("out", Buffer(slots)), ("n", Extent(slots, 0)))
    return TritonKernel(kernel_name, source, parameters, (GridAxis((Extent(slots, 0),), block),), {"BLOCK": block})


CAST_CASES = [("cast", source, target) for source, target in CASTS]
ALL_KERNELS = [(name, dtype, None) for name, dtype in CASES] + CAST_CASES
# Binary ops (and where) with one operand a splat constant, a 0-d tl.full, first or second
SPLATS = {"float32": (7.5, -2.5), "float64": (7.5, -2.5), "int32": (7, -3), "int64": (7, -3), "bool": (True, False),
          "int8": (7, -3), "int16": (7, -3), "uint8": (7, 3), "uint16": (7, 3)}
CONSTANT_CASES = [(name, dtype, index) for name, dtype in CASES if OPS[name].num_operands > 1 for index in (0, 1)]


def kernel_name(name: str, dtype: str, target: str | None) -> str:
    return f"{name}_{dtype}" + (f"_to_{target}" if target else "")


def constant_kernel_name(name: str, dtype: str, index: int) -> str:
    return f"{name}_{dtype}_constant{index}"


@functools.cache
def module(folder: str) -> tuple[TritonModule, dict]:
    """One interpreted module holding every case's kernel, and the ops they compute."""
    ops = {kernel_name(*case): one_op(*case) for case in ALL_KERNELS}
    for name, dtype, index in CONSTANT_CASES:
        value = True if name == "where" and index == 0 else SPLATS[dtype][index]
        ops[constant_kernel_name(name, dtype, index)] = one_op(name, dtype, constant=(index, value))
    return TritonModule([kernel_of(op, key) for key, op in ops.items()], interpret=True, folder=folder), ops


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    return module(str(tmp_path_factory.mktemp("triton-math")))


def run(kernels, key: str, *inputs: np.ndarray) -> np.ndarray:
    triton_module, ops = kernels
    op = ops[key]
    inputs = np.broadcast_arrays(*inputs)
    out = np.empty(inputs[0].shape, dtype=op.results[0].type.dtype.np)
    tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in (*inputs, out)]
    with np.errstate(all="ignore"):
        triton_module.launch(key, tensors)
    return tensors[-1].numpy()


# --- inputs that hurt -------------------------------------------------------------------------------

BRANCH_POINTS = [0.55, 0.8, 9.5, 19.5, 0.75, 1.25, 1.875, 2.75, 4.0, 6.0, 2.0**-9, 2.0**-60, 40.0, 710.0, 746.0,
                 0.125, 0.375, 0.625, 0.875, 8 / 7, 4 / 3, 1.6, 8 / 3, 2**40, 0.7853981633974483, 1.5707963267948966,
                 3.141592653589793, 1e5, 2.5, 1.5, 0.5, 3.5, 2.0**52, 2.0**23, 4503599627370497.0]


def float_inputs(dtype: str, rng: np.random.Generator, count: int = 256) -> np.ndarray:
    """The CPU tests' edge values, the branch points of math.py's formulas with their neighbours, and
    magnitudes spread over 2**-60 .. 2**10 of both signs."""
    t = np.dtype(dtype).type
    with np.errstate(all="ignore"):
        points = np.array(BRANCH_POINTS, dtype=dtype)
        near = np.concatenate([points, np.nextafter(points, t(np.inf)), np.nextafter(points, t(-np.inf))])
    spread = np.exp2(rng.uniform(-60, 10, count)) * rng.choice([-1, 1], count)
    return np.concatenate([edge_values(dtype), near, -near, spread.astype(dtype)])


def int_inputs(dtype: str, rng: np.random.Generator) -> np.ndarray:
    info = np.iinfo(dtype)
    values = [0, 1, -1, 2, -2, 3, -3, 7, -7, 100, -100, info.min, info.max, info.min + 1, info.max - 1]
    # through int64, so that an unsigned dtype takes -1 and the other negative values wrapped, as numpy casts
    return np.concatenate([np.array(values, dtype=np.int64).astype(dtype), rng.integers(-1000, 1000, 32).astype(dtype)])


def inputs_of(dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype in FLOATS:
        return float_inputs(dtype, rng)
    if dtype == "bool":
        return np.array([False, True])
    return int_inputs(dtype, rng)


def pairs(dtype: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of a set of hard values (BLOCK of them at most), then random pairs and huge quotients."""
    if dtype in FLOATS:
        info = np.finfo(dtype)
        values = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 7.0, -7.5, 1e-3, 2.0**60 + 2.0**40, float(info.max),
                  float(info.smallest_subnormal), -float(info.smallest_normal), np.inf, -np.inf, np.nan, 5.5, -3.0,
                  0.1, 1e10, -2.0**70, 6.0]
        values = np.array(values, dtype=dtype)
        x, y = (v.ravel() for v in np.meshgrid(values, values))
        x2 = (np.exp2(rng.uniform(-80, 80, 256)) * rng.choice([-1, 1], 256)).astype(dtype)
        y2 = (np.exp2(rng.uniform(-80, 80, 256)) * rng.choice([-1, 1], 256)).astype(dtype)
        return np.concatenate([x, x2]), np.concatenate([y, y2])
    values = inputs_of(dtype, rng)[:24] if dtype != "bool" else np.array([False, True])
    x, y = (v.ravel() for v in np.meshgrid(values, values))
    return x, y


def operands(name: str, dtype: str, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    if name == "pow":
        x, y = pow_edges(dtype)
        xs, ys = pow_samples(dtype, rng, 3072)
        return np.concatenate([x, xs]), np.concatenate([y, ys])
    if (name, dtype) in MAX_ULP:  # and a walk over every bit pattern, and the function's working range
        low, high = DENSE.get((name, dtype)) or SPECIAL_DENSE[name]
        sweep = [bit_walk(dtype, 1536, rng), np.linspace(low, high, 1024, dtype=dtype)]
        return (np.concatenate([inputs_of(dtype, rng), *sweep]),)
    if name == "where":
        x, y = pairs(dtype, rng)
        return (rng.random(x.size) < 0.5), x, y
    if OPS[name].num_operands == 2:
        return pairs(dtype, rng)
    return (inputs_of(dtype, rng),)


# --- references -------------------------------------------------------------------------------------

WIDE_REFERENCES = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "sin": np.sin, "cos": np.cos, "atan": np.arctan,
                   "log1p": np.log1p, "expm1": np.expm1, "pow": np.power, "erf": erf_series,
                   "sigmoid": lambda x: 1 / (1 + np.exp(-x))}


def exact_reference(name: str, dtype: str, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """The exact result in the wide type (long double for float64, which needs an extended one)."""
    if WIDE[dtype] == np.longdouble and np.finfo(np.longdouble).nmant < 60:
        pytest.skip("float64 references need an extended long double")
    with np.errstate(all="ignore"):
        return WIDE_REFERENCES[name](*(x.astype(WIDE[dtype]) for x in inputs))


def in_range(name: str, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """sin and cos are bounded only for |x| < 2**40, as the CPU's."""
    if name in ("sin", "cos"):
        return ~(np.abs(inputs[0]) >= 2.0**40)
    return np.ones(inputs[0].shape, dtype=bool)


def max_ulp(name: str, dtype: str, inputs: tuple[np.ndarray, ...], got: np.ndarray) -> float:
    """Asserts the op's bound and numpy's edges; returns the largest error measured."""
    keep = in_range(name, inputs)
    inputs, got = tuple(x[keep] for x in np.broadcast_arrays(*inputs)), got[keep]
    exact = exact_reference(name, dtype, inputs)
    error = ulp_error(got, exact, dtype)
    worst = int(np.argmax(error))
    shown = ", ".join(repr(x[worst]) for x in inputs)
    bound = MAX_ULP[name, dtype]
    assert error[worst] <= bound, f"{name}({shown}) = {got[worst]!r}, exact {exact[worst]!r}: {error[worst]:.3f} ulp"
    with np.errstate(all="ignore"):  # numpy's edges, from the exact result (numpy's own float32 exp(-1e-8) is 1)
        expected = exact.astype(dtype)
    # +-1 is an edge where it is the exact result (tanh(inf), erf(-inf), C99 Annex F's pow(x, 0)), not where
    # the exact result merely rounds to it (erf(5.9): ours is 1 - 2**-53, within the bound)
    assert_same_edges(got, expected, exact_one=np.abs(exact) == 1)
    return float(error[worst])


def assert_exact(got: np.ndarray, expected: np.ndarray, inputs: tuple[np.ndarray, ...]) -> None:
    """Equal values, NaN where numpy has NaN, and the same sign of every zero."""
    wrong = ~((got == expected) | (np.isnan(got.astype(float)) & np.isnan(expected.astype(float))))
    if expected.dtype.kind == "f":
        wrong |= np.signbit(got) != np.signbit(expected)
        wrong &= ~(np.isnan(got) & np.isnan(expected))
    if wrong.any():
        at = np.flatnonzero(wrong)[:5]
        shown = [(tuple(x[i] for x in np.broadcast_arrays(*inputs)), got[i], expected[i]) for i in at]
        raise AssertionError(f"{int(wrong.sum())} of {got.size} differ (inputs, got, numpy): {shown}")


# --- tests ------------------------------------------------------------------------------------------

MEASURED: dict[tuple[str, str], float] = {}


@pytest.mark.parametrize("name, dtype", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_op_matches_numpy(kernels, name: str, dtype: str, rng: np.random.Generator) -> None:
    inputs = operands(name, dtype, rng)
    got = run(kernels, kernel_name(name, dtype, None), *inputs)
    if (name, dtype) in MAX_ULP:
        MEASURED[name, dtype] = max_ulp(name, dtype, inputs, got)
        return
    op = kernels[1][kernel_name(name, dtype, None)]
    assert_exact(got, op.reference(*inputs), inputs)


@pytest.mark.parametrize("name, dtype, index", CONSTANT_CASES,
                         ids=[constant_kernel_name(*case) for case in CONSTANT_CASES])
def test_a_splat_constant_operand(kernels, name: str, dtype: str, index: int, rng: np.random.Generator) -> None:
    """An operand that body.py writes as a 0-d tl.full broadcasts against the loaded block (fmod's loop too)."""
    key = constant_kernel_name(name, dtype, index)
    op = kernels[1][key]
    inputs = list(operands(name, dtype, rng))
    constant = op.operands[index].owner.attributes["value"]
    loaded = inputs[:index] + inputs[index + 1:]
    got = run(kernels, key, *loaded)
    inputs[index] = np.asarray(constant)
    expected = op.reference(*np.broadcast_arrays(*inputs))
    if (name, dtype) in MAX_ULP:
        exact = exact_reference(name, dtype, tuple(np.broadcast_arrays(*inputs)))
        assert ulp_error(got, exact, dtype).max() <= MAX_ULP[name, dtype]
    else:
        assert_exact(got, expected, tuple(inputs))


def cast_inputs(source: str, target: str, rng: np.random.Generator) -> np.ndarray:
    """Values numpy converts the same on every host: finite floats in the integer target's range."""
    x = inputs_of(source, rng)
    if source in FLOATS and target not in FLOATS + ("bool",):
        limit = 2.0**31 if target == "int32" else 2.0**63
        x = x[np.isfinite(x) & (np.abs(x) < limit)]
    return x


@pytest.mark.parametrize("source, target", CASTS, ids=[f"{s}-{t}" for s, t in CASTS])
def test_cast_matches_numpy(kernels, source: str, target: str, rng: np.random.Generator) -> None:
    x = cast_inputs(source, target, rng)
    key = kernel_name("cast", source, target)
    assert_exact(run(kernels, key, x), kernels[1][key].reference(x), (x,))


def test_every_elementwise_op_has_an_expression_and_every_expression_an_op() -> None:
    assert sorted(set(ELEMENTWISE) ^ set(EXPRESSIONS)) == []


# --- PTX for an H100 --------------------------------------------------------------------------------

INTEGER_PATHS = ("floordiv", "floormod", "sign", "maximum", "minimum", "abs")  # their own integer form
PTX_CASES = [(name, dtype, None) for name, dtype in CASES
             if dtype in FLOATS or not set(FLOATS) & {d.name for d in OPS[name].dtypes}
             or (name in INTEGER_PATHS and dtype == "int64")]
PTX_CASES += [("cast", source, target) for source, target in (("float32", "int32"), ("float64", "int64"),
              ("bool", "float32"), ("float64", "bool"), ("int64", "float64"), ("float64", "float32"))]


@functools.cache
def ptx_module(folder: str) -> tuple[TritonModule, dict]:
    """The same kernels, blocks of 128 (a program a thread's worth each: quick to build)."""
    ops = {kernel_name(*case): one_op(*case) for case in PTX_CASES}
    return TritonModule([kernel_of(op, key, block=128) for key, op in ops.items()], interpret=True, folder=folder), ops


@pytest.mark.parametrize("name, dtype, target", PTX_CASES, ids=[kernel_name(*case) for case in PTX_CASES])
def test_builds_to_ptx_for_an_h100(tmp_path_factory, name: str, dtype: str, target: str | None) -> None:
    """Correctly rounded float arithmetic only: no approximate division, root or exponential, no
    flushed subnormals, no libdevice call."""
    triton_module, ops = ptx_module(str(tmp_path_factory.getbasetemp() / "triton-math-ptx"))
    key = kernel_name(name, dtype, target)
    op = ops[key]
    ptx = triton_module.ptx(key, [v.type.dtype for v in (*op.operands, *op.results)])
    assert ".target sm_90" in ptx and f".entry {key}" in ptx
    instructions = [line.strip() for line in ptx.splitlines() if not line.lstrip().startswith((".", "//", "$"))]
    unwanted = [i for i in instructions if re.search(r"\.approx|div\.full|\.ftz|^call", i)]
    assert unwanted == [], key


@pytest.mark.parametrize("dtype", FLOATS)
def test_sin_cos_past_their_range_stay_within_one(kernels, dtype: str, rng: np.random.Generator) -> None:
    """Past 2**40 (no Payne-Hanek reduction, as the CPU's) the value is not accurate, but in [-1, 1]."""
    x = (np.exp2(rng.uniform(40, 127, 512)) * rng.choice([-1, 1], 512)).astype(dtype)
    for name in ("sin", "cos"):
        assert np.all(np.abs(run(kernels, kernel_name(name, dtype, None), x)) <= 1), name


FRESH_PROCESS = '''
import sys
from flowc.codegen.triton.kernel import Buffer, Extent, GridAxis, TritonKernel, TritonModule
from flowc.ir import as_dtype

source = """
@triton.jit
def twice(x, out, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out + offsets, tl.load(x + offsets, mask=offsets < n) * 2, mask=offsets < n)
"""
kernel = TritonKernel("twice", source, (("x", Buffer(0)), ("out", Buffer(1)), ("n", Extent(1, 0))),
                      (GridAxis((Extent(1, 0),), 64),), {"BLOCK": 64})
assert "triton" not in sys.modules
module = TritonModule([kernel], interpret=True, folder=sys.argv[1])
print(".target sm_90" in module.ptx("twice", [as_dtype("float32")] * 2))
'''


def test_an_interpreted_module_first_then_ptx_in_a_fresh_process(tmp_path) -> None:
    """kernel.py imports triton before it sets TRITON_INTERPRET: were triton first imported under the
    variable, its library would be interpreted functions, and building PTX (on a miss of Triton's own
    cache) would fail in gluon's import."""
    environment = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path / "triton-cache")}
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path)], capture_output=True, text=True,
                          env=environment)
    assert done.stdout.strip() == "True", done.stderr[-3000:]
