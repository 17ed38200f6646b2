"""The vectorizable math emitters (Note [vectorizable math] in codegen/llvm/mathlib.py).

Each emitter is JIT-compiled inside a loop ``void f(T* x, [T* y,] T* out, i64 n)``, optimized
with LLVM's loop vectorizer on, and checked against numpy: the error in ulps of the exact
result (float64 references for float32, long double references for float64) over dense
sweeps, and exact agreement on the edges (signed zeros, infinities, NaN, thresholds).
"""

import ctypes
import functools
import re

import llvmlite.binding as llvm
import llvmlite.ir as ll
import numpy as np
import pytest

from flowc.codegen.llvm.elementwise import MATH_EMITTERS  # mathlib.py's and mathlib_special.py's
from flowc.codegen.llvm.mathlib import MAX_ULP

DTYPES = ("float32", "float64")
IR_TYPES = {"float32": ll.FloatType(), "float64": ll.DoubleType()}
WIDE = {"float32": np.float64, "float64": np.longdouble}  # where the exact reference is computed
PRECISION = {"float32": (24, -126), "float64": (53, -1022)}  # significand bits, smallest normal exponent
UNARY = ("exp", "log", "tanh", "sigmoid", "rsqrt")


def reference(op: str, *args: np.ndarray) -> np.ndarray:
    """The exact result, to far better than the dtype's ulp; args already in the wide type."""
    if args[0].dtype == np.longdouble and np.finfo(np.longdouble).nmant < 60:
        pytest.skip("float64 references need an extended long double (x86-64, or quad on aarch64 Linux)")
    with np.errstate(all="ignore"):
        if op == "sigmoid":
            return 1 / (1 + np.exp(-args[0]))
        if op == "rsqrt":
            return 1 / np.sqrt(args[0])
        if op == "pow":
            return np.power(*args)
        return getattr(np, op)(args[0])


# --- compiling a loop around an emitter ---------------------------------------------------


def host_target_machine() -> llvm.TargetMachine:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    features = llvm.get_host_cpu_features().flatten()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=features, opt=3)


@functools.cache
def target_machine() -> llvm.TargetMachine:
    """The one the pass pipeline reads; an execution engine owns (and frees) its own."""
    return host_target_machine()


def optimize(module: llvm.ModuleRef) -> None:
    """O3 with the loop and SLP vectorizers, llvmlite's new pass manager."""
    machine = target_machine()
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.loop_vectorization = True
    options.slp_vectorization = True
    builder = llvm.create_pass_builder(machine, options)
    builder.getModulePassManager().run(module, builder)


def loop_module(op: str, dtype: str) -> ll.Module:
    """void f(T* x0, ..., T* out, i64 n): out[i] = op(x0[i], ...)."""
    ty = IR_TYPES[dtype]
    arity = 2 if op == "pow" else 1
    module = ll.Module(name=f"{op}_{dtype}")
    machine = target_machine()
    module.triple = machine.triple
    module.data_layout = str(machine.target_data)
    fn_type = ll.FunctionType(ll.VoidType(), [ty.as_pointer()] * (arity + 1) + [ll.IntType(64)])
    fn = ll.Function(module, fn_type, name="f")
    *pointers, n = fn.args
    for pointer in pointers:
        pointer.add_attribute("noalias")
    entry, body, done = (fn.append_basic_block(name) for name in ("entry", "body", "done"))
    b = ll.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ll.Constant(n.type, 0)), body, done)
    b.position_at_end(body)
    i = b.phi(n.type)
    i.add_incoming(ll.Constant(n.type, 0), entry)
    operands = [b.load(b.gep(p, [i], inbounds=True)) for p in pointers[:-1]]
    b.store(MATH_EMITTERS[op](b, *operands), b.gep(pointers[-1], [i], inbounds=True))
    following = b.add(i, ll.Constant(n.type, 1))
    i.add_incoming(following, body)
    b.cbranch(b.icmp_signed("==", following, n), done, body)
    b.position_at_end(done)
    b.ret_void()
    return module


def vector_module(op: str, dtype: str, lanes: int) -> ll.Module:
    """void f(<lanes x T>* x0, ..., <lanes x T>* out): the emitter on an explicit vector value."""
    ty = ll.VectorType(IR_TYPES[dtype], lanes)
    arity = 2 if op == "pow" else 1
    module = ll.Module(name=f"{op}_{dtype}_v{lanes}")
    module.triple = target_machine().triple
    fn = ll.Function(module, ll.FunctionType(ll.VoidType(), [ty.as_pointer()] * (arity + 1)), name="f")
    b = ll.IRBuilder(fn.append_basic_block("entry"))
    operands = [b.load(p, align=1) for p in fn.args[:-1]]
    b.store(MATH_EMITTERS[op](b, *operands), fn.args[-1], align=1)
    b.ret_void()
    return module


class Kernel:
    """A JIT-compiled module whose function f runs elementwise over numpy arrays."""

    def __init__(self, module: ll.Module, arity: int, dtype: str, loop: bool = True):
        self.unoptimized = str(module)
        compiled = llvm.parse_assembly(self.unoptimized)
        compiled.verify()
        optimize(compiled)
        self.optimized = str(compiled)
        self.engine = llvm.create_mcjit_compiler(compiled, host_target_machine())
        self.engine.finalize_object()
        arguments = [ctypes.c_void_p] * (arity + 1) + ([ctypes.c_int64] if loop else [])
        self.fn = ctypes.CFUNCTYPE(None, *arguments)(self.engine.get_function_address("f"))
        self.arity, self.dtype, self.loop = arity, dtype, loop

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        inputs = [np.ascontiguousarray(x, dtype=self.dtype) for x in np.broadcast_arrays(*inputs)]
        out = np.empty_like(inputs[0])
        pointers = [x.ctypes.data for x in (*inputs, out)]
        self.fn(*pointers, *([out.size] if self.loop else []))
        return out


@functools.cache
def kernel(op: str, dtype: str) -> Kernel:
    arity = 2 if op == "pow" else 1
    return Kernel(loop_module(op, dtype), arity, dtype)


# --- measuring -------------------------------------------------------------------------


def ulp_error(got: np.ndarray, exact: np.ndarray, dtype: str) -> np.ndarray:
    """|got - exact| in ulps of exact (subnormal spacing below the normals); inf where got is off an edge."""
    digits, min_exponent = PRECISION[dtype]
    wide = exact.dtype.type
    with np.errstate(all="ignore"):
        rounded = exact.astype(dtype)
        _, exponent = np.frexp(exact)
        ulp = np.ldexp(wide(1), np.maximum(exponent - 1, min_exponent) - (digits - 1))
        error = np.abs(got.astype(wide) - exact) / ulp
    edge = ~np.isfinite(rounded) | np.isnan(exact)
    same = (got == rounded) | (np.isnan(got) & np.isnan(rounded))
    return np.where(edge, np.where(same, 0.0, np.inf), error)


def assert_within(op: str, dtype: str, inputs: tuple[np.ndarray, ...], got: np.ndarray, bound: float) -> float:
    with np.errstate(invalid="ignore"):  # casting a signaling NaN
        exact = reference(op, *(x.astype(WIDE[dtype]) for x in inputs))
    error = ulp_error(got, exact, dtype)
    worst = int(np.argmax(error))
    shown = ", ".join(repr(x.flat[worst]) for x in np.broadcast_arrays(*inputs))
    assert error.flat[worst] <= bound, (
        f"{op}({shown}) = {got.flat[worst]!r}, exact {exact.flat[worst]!r}: {error.flat[worst]:.3f} ulp > {bound}"
    )
    return float(error.flat[worst])


def bit_walk(dtype: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """count values spread evenly over every bit pattern of dtype (NaNs and infinities included)."""
    bits = {"float32": 32, "float64": 64}[dtype]
    stride = 2**bits // count
    patterns = np.arange(count, dtype=np.uint64) * np.uint64(stride) + rng.integers(0, stride, count, dtype=np.uint64)
    unsigned = np.uint32 if dtype == "float32" else np.uint64
    return patterns.astype(unsigned).view(dtype)


# where each function does its work, beyond which it is constant, 0 or inf
DENSE = {
    ("exp", "float32"): (-104.0, 89.0),
    ("exp", "float64"): (-746.0, 710.0),
    ("log", "float32"): (0.0, 4.0),
    ("log", "float64"): (0.0, 4.0),
    ("tanh", "float32"): (-10.0, 10.0),
    ("tanh", "float64"): (-20.0, 20.0),
    ("sigmoid", "float32"): (-105.0, 20.0),
    ("sigmoid", "float64"): (-746.0, 40.0),
    ("rsqrt", "float32"): (0.0, 4.0),
    ("rsqrt", "float64"): (0.0, 4.0),
}


def edge_values(dtype: str) -> np.ndarray:
    info = np.finfo(dtype)
    t = np.dtype(dtype).type
    tiny, subnormal = info.smallest_normal, info.smallest_subnormal
    overflow = {"float32": 88.72283905206835, "float64": 709.782712893384}[dtype]
    underflow = {"float32": -103.97208, "float64": -745.1332191019411}[dtype]  # exp rounds to 0 below
    values = [0.0, 1.0, 2.0, 0.5, 1e-30, 20.0, 30.0, 100.0, 800.0]
    values += [subnormal, tiny - subnormal, tiny, info.max, np.inf, overflow, underflow, 9.01, 19.06]
    values = np.array(values, dtype=dtype)
    with np.errstate(over="ignore"):
        near = [np.nextafter(values, t(np.inf)), np.nextafter(values, t(-np.inf))]
    values = np.concatenate([values, *near])
    return np.concatenate([values, -values, np.array([np.nan], dtype=dtype)])


# --- tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", UNARY)
def test_unary_accuracy(op: str, dtype: str, rng: np.random.Generator) -> None:
    low, high = DENSE[op, dtype]
    x = np.concatenate(
        [
            bit_walk(dtype, 2**22 if dtype == "float32" else 2**20, rng),
            np.linspace(low, high, 2**20, dtype=dtype),
            rng.uniform(low, high, 2**19).astype(dtype),
            edge_values(dtype),
        ]
    )
    assert_within(op, dtype, (x,), kernel(op, dtype)(x), MAX_ULP[op, dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", UNARY)
def test_unary_edges_match_numpy(op: str, dtype: str) -> None:
    """Where numpy's result is an edge (0, +-1, +-inf, NaN) ours is the same, sign of zero included.

    numpy's result is taken in the wide type and rounded: numpy's own float64 tanh(19.06) is 1.0,
    one ulp above the exact 1 - 2**-53 that we return. rsqrt is numpy's 1 / sqrt(x) as it is.
    """
    x = edge_values(dtype)
    with np.errstate(all="ignore"):
        exact = reference(op, x.astype(WIDE[dtype])).astype(dtype)
        expected = 1 / np.sqrt(x) if op == "rsqrt" else exact
    assert_same_edges(kernel(op, dtype)(x), expected)


def assert_same_edges(got: np.ndarray, expected: np.ndarray, exact_one: np.ndarray | bool = True) -> None:
    """Special results must match exactly; a result of +-1 only where `exact_one` says it is exact."""
    edge = np.isnan(expected) | np.isinf(expected) | (expected == 0) | ((np.abs(expected) == 1) & exact_one)
    np.testing.assert_array_equal(got[edge], expected[edge])
    signed = edge & ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(expected[signed]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_gradual_underflow(dtype: str) -> None:
    """Results below the smallest normal are subnormals, not 0, accurate to MAX_ULP of their spacing."""
    info = np.finfo(dtype)
    low = np.log(float(info.smallest_subnormal))
    x = np.linspace(low, np.log(float(info.smallest_normal)), 2**16).astype(dtype)
    got = kernel("exp", dtype)(x)
    assert np.all(got[8:] > 0)
    assert_within("exp", dtype, (x,), got, MAX_ULP["exp", dtype])


def pow_samples(dtype: str, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """x over every magnitude, y so that x**y spans the range, negative x with integer y."""
    info = np.finfo(dtype)
    log2_max = np.log2(float(info.max))
    log2_min = np.log2(float(info.smallest_subnormal))
    log2_x = rng.uniform(log2_min, log2_max, count)
    log2_x = np.where(rng.random(count) < 0.3, rng.uniform(-1, 1, count) * 2.0 ** -rng.uniform(0, 30, count), log2_x)
    x = np.exp2(log2_x).astype(dtype)
    target = rng.uniform(log2_min - 1, log2_max + 1, count)
    with np.errstate(all="ignore"):
        y = (target / np.log2(x.astype(np.float64))).astype(dtype)
    negative = rng.random(count) < 0.3
    x = np.where(negative, -x, x)
    y = np.where(negative, np.round(y), y)
    small = rng.random(count) < 0.2
    y = np.where(small, rng.integers(-40, 40, count).astype(dtype), y)
    return x.astype(dtype), y.astype(dtype)


def pow_edges(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    info = np.finfo(dtype)
    values = [0.0, 1.0, 0.5, 2.0, 3.0, 2.5, 1e-3, 1e3, float(info.smallest_subnormal), float(info.max), np.inf]
    values += [2.0**60, 2.0**60 + 2.0**10, 1 + float(info.eps), 1 - float(info.epsneg)]
    values = np.array(values + [-v for v in values] + [np.nan], dtype=dtype)
    x, y = np.meshgrid(values, values)
    return x.ravel(), y.ravel()


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_accuracy(dtype: str, rng: np.random.Generator) -> None:
    x, y = pow_samples(dtype, rng, 2**20)
    assert_within("pow", dtype, (x, y), kernel("pow", dtype)(x, y), MAX_ULP["pow", dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_edges_match_numpy(dtype: str) -> None:
    """C99 Annex F: pow(x, 0) = 1 and pow(1, y) = 1 even for NaN, signed results for odd y, and so on."""
    x, y = pow_edges(dtype)
    got = kernel("pow", dtype)(x, y)
    # pow(1 - epsneg, -(1 + eps)) is 1 + 2**-53 and a bit, so 1 + eps when correctly rounded
    # (what we return); numpy's float64 pow on some hosts gives 1.0. A result of 1 is an
    # Annex F case only when x is +-1 or y is 0.
    annex_f_one = (np.abs(x) == 1) | (y == 0)
    with np.errstate(all="ignore"):
        assert_same_edges(got, np.power(x, y), exact_one=annex_f_one)
    assert_within("pow", dtype, (x, y), got, MAX_ULP["pow", dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(MATH_EMITTERS))
def test_loop_vectorizes(op: str, dtype: str) -> None:
    """The optimized loop works on vectors and calls no libm function."""
    compiled = kernel(op, dtype)
    element = str(IR_TYPES[dtype])
    assert re.search(rf"<\d+ x {element}>", compiled.optimized), compiled.optimized
    calls = set(re.findall(r"call [^@]*@([\w.]+)", compiled.optimized))
    assert all(name.startswith("llvm.") for name in calls), calls


@pytest.mark.parametrize("op", sorted(MATH_EMITTERS))
def test_no_fast_math_flags(op: str) -> None:
    text = kernel(op, "float32").unoptimized
    assert not re.search(r"\b(fast|nnan|ninf|nsz|arcp|contract|afn|reassoc)\b", text)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(MATH_EMITTERS))
def test_explicit_vector_operands(op: str, dtype: str, rng: np.random.Generator) -> None:
    """On a <8 x T> value the emitter computes bit for bit what the scalar loop computes (NaN payloads aside)."""
    lanes = 8
    arity = 2 if op == "pow" else 1
    vector = Kernel(vector_module(op, dtype, lanes), arity, dtype, loop=False)
    if op == "pow":
        x, y = pow_edges(dtype)
        inputs = [(x[i : i + lanes], y[i : i + lanes]) for i in range(0, x.size - lanes + 1, 7 * lanes)]
    else:
        x = np.concatenate([edge_values(dtype), rng.uniform(-30, 30, 64).astype(dtype)])
        inputs = [(x[i : i + lanes],) for i in range(0, x.size - lanes + 1, lanes)]
    for chunk in inputs:
        got, expected = vector(*chunk), kernel(op, dtype)(*chunk)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(np.signbit(got) | np.isnan(got), np.signbit(expected) | np.isnan(expected))
