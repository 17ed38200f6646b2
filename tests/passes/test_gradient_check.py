"""Every differentiable op's gradient against central finite differences, in float64.

Generated from the registry: each op marked `differentiable` must have a
gradient rule (passes/autodiff) and at least one case here, so a new op
fails this file until it has both. A case is a function whose float
arguments are the xs; the check weights its float results by fixed random
cotangents, asks for the gradients of that scalar, expands the request and
compares each gradient with (L(x + h) - L(x - h)) / 2h, on the reference
interpreter. Inputs keep away from kinks (relu and abs at 0, ties of
maximum and reduce_max); the kinks themselves are tested in test_autodiff.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pytest

from flowc.ir import Builder, Function, Module, TensorType, float32, float64, parse_module, registry, verify
from flowc.ir.interpreter import Interpreter
from flowc.passes import optimize
from flowc.passes.autodiff import VJP_RULES, expand_gradients

Sampler = Callable[[np.random.Generator], np.ndarray]


# -- inputs ----------------------------------------------------------------------------


def normal(*shape: int) -> Sampler:
    return lambda rng: rng.standard_normal(shape)


def away_from_zero(*shape: int) -> Sampler:
    """Normal numbers at least 0.2 from 0 (relu, abs)."""
    return lambda rng: (lambda x: x + 0.2 * np.sign(x))(rng.standard_normal(shape))


def positive(*shape: int) -> Sampler:
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def spaced(*shape: int, offset: float = 0.0) -> Sampler:
    """Distinct numbers 0.1 apart (no ties for reduce_max); with offset 0.05, none equal to one without."""
    return lambda rng: (rng.permutation(int(np.prod(shape))) * 0.1 - 1.0 + offset).reshape(shape)


def fixed(value: Any) -> Sampler:
    return lambda rng: np.asarray(value)


@dataclass
class Arg:
    sample: Sampler
    declared: tuple[int | None, ...] | None = None  # the argument's type, None dims included; default: the value's


@dataclass
class Case:
    """`build(b, *args)` returns the results to weight; a module text instead for region ops."""

    args: list[Arg]
    build: Callable[..., Any] | None = None
    text: str | None = None
    dtype: Any = float64
    step: float = 1e-6
    tolerance: float = 1e-6
    label: str = field(default="")


def op(name: str, *args: Arg | Sampler, **attrs: Any) -> Case:
    """A case of one op on arguments (float: differentiated) and constants (indices, conditions)."""
    specs = [a if isinstance(a, Arg) else Arg(a) for a in args]
    return Case(specs, build=lambda b, *values: b.create(name, values, attrs).results, label=f"{name} {attrs}")


def const(value: Any) -> Arg:
    """An operand that is a constant of the function, not an argument (indices, conditions)."""
    return Arg(fixed(value), declared=())  # declared=() marks it: see build_function


def binary(name: str, make: Callable[..., Sampler] = normal) -> list[Case]:
    shapes = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((), (3, 4))]
    cases = [op(name, make(*a), make(*b)) for a, b in shapes]
    # Unknown dims: a batch of ? against a row, and a static 1 against ? (summed over at run time).
    cases.append(op(name, Arg(make(5, 4), (None, 4)), make(4)))
    cases.append(op(name, Arg(make(5, 4), (None, 4)), make(1, 4)))
    return cases


# -- the cases, by op name ----------------------------------------------------------------


def _slice(**attrs: Any) -> dict[str, Any]:
    attrs.setdefault("squeeze_dims", ())
    return attrs


CASES: dict[str, list[Case]] = {
    "neg": [op("neg", normal(3, 4))],
    "abs": [op("abs", away_from_zero(3, 4))],
    "square": [op("square", normal(3, 4))],
    "relu": [op("relu", away_from_zero(3, 4)), op("relu", Arg(away_from_zero(5, 2), (None, 2)))],
    "exp": [op("exp", normal(3, 4))],
    "log": [op("log", positive(3, 4))],
    "tanh": [op("tanh", normal(3, 4)), op("tanh", Arg(normal(5, 4), (None, None)))],
    "sigmoid": [op("sigmoid", normal(3, 4))],
    "sqrt": [op("sqrt", positive(3, 4))],
    "rsqrt": [op("rsqrt", positive(3, 4))],
    "identity": [op("identity", normal(3, 4))],
    "cast": [op("cast", normal(3, 4), dtype=float64),
             replace(op("cast", normal(3, 4), dtype=float32), step=1e-2, tolerance=1e-4)],  # a float32 loss
    "add": binary("add"),
    "sub": binary("sub"),
    "mul": binary("mul"),
    "div": [op("div", normal(3, 4), positive(3, 4)), op("div", normal(3, 4), positive(4)),
            op("div", Arg(normal(5, 4), (None, 4)), positive(1, 4)), op("div", positive(), normal(2, 3))],
    "pow": [op("pow", positive(3, 4), normal(3, 4)), op("pow", positive(3, 4), fixed(3.0)),
            op("pow", Arg(positive(5, 4), (None, 4)), normal(4))],
    "maximum": [op("maximum", spaced(3, 4), spaced(3, 4, offset=0.05)), op("maximum", spaced(3, 4), fixed(0.05)),
                op("maximum", Arg(spaced(5, 4), (None, 4)), fixed([0.05, -0.35, 0.15, 0.25]))],
    "minimum": [op("minimum", spaced(3, 4), spaced(3, 4, offset=0.05)), op("minimum", spaced(3, 4), fixed(0.05))],
    "where": [op("where", const(np.arange(12).reshape(3, 4) % 3 == 0), normal(3, 4), normal(4)),
              op("where", const(True), normal(3, 4), normal(3, 1)),
              op("where", const([True, False, True]), Arg(normal(5, 3), (None, 3)), normal())],
    "reduce_sum": [op("reduce_sum", normal(3, 4), axes=(1,), keepdims=False),
                   op("reduce_sum", normal(2, 3, 4), axes=(0, 2), keepdims=True),
                   op("reduce_sum", Arg(normal(5, 3), (None, 3)), axes=(0, 1), keepdims=False)],
    "reduce_mean": [op("reduce_mean", normal(3, 4), axes=(-1,), keepdims=False),
                    op("reduce_mean", normal(2, 3, 4), axes=(0, 2), keepdims=True),
                    op("reduce_mean", Arg(normal(5, 3), (None, 3)), axes=(0,), keepdims=False),
                    op("reduce_mean", Arg(normal(5, 3), (None, None)), axes=(0, 1), keepdims=True)],
    "reduce_max": [op("reduce_max", spaced(3, 4), axes=(1,), keepdims=False),
                   op("reduce_max", spaced(2, 3, 4), axes=(0, 2), keepdims=True),
                   op("reduce_max", Arg(spaced(5, 3), (None, 3)), axes=(0, 1), keepdims=False)],
    "reduce_min": [op("reduce_min", spaced(3, 4), axes=(0,), keepdims=True),
                   op("reduce_min", spaced(2, 3, 4), axes=(1,), keepdims=False)],
    # Zeros (one and two in a group) check the rules that never divide by x (Note [products without division]).
    "reduce_prod": [op("reduce_prod", normal(3, 4), axes=(1,), keepdims=False),
                    op("reduce_prod", normal(2, 3, 4), axes=(0, 2), keepdims=True),
                    op("reduce_prod", fixed([[1.5, 0.0, -2.0], [0.0, 3.0, 0.0]]), axes=(0, 1), keepdims=False),
                    op("reduce_prod", fixed([[1.5, 0.0, -2.0], [0.0, 3.0, 0.0]]), axes=(1,), keepdims=False),
                    op("reduce_prod", Arg(normal(5, 3), (None, 3)), axes=(0,), keepdims=False)],
    "cumsum": [op("cumsum", normal(3, 4), axis=1), op("cumsum", normal(3, 4), axis=0, exclusive=True, reverse=True),
               op("cumsum", Arg(normal(5, 3), (None, 3)), axis=-2, reverse=True)],
    "cumprod": [op("cumprod", normal(3, 4), axis=1), op("cumprod", normal(3, 4), axis=0, exclusive=True),
                op("cumprod", fixed([[1.5, 0.0, -2.0, 0.0, 0.5], [0.0, 3.0, 0.7, 2.0, 0.0]]), axis=1),
                op("cumprod", fixed([[1.5, 0.0, -2.0, 0.0, 0.5], [0.0, 3.0, 0.7, 2.0, 0.0]]), axis=-1,
                   exclusive=True, reverse=True),
                op("cumprod", Arg(normal(4, 3), (None, 3)), axis=0, reverse=True)],
    "top_k": [op("top_k", spaced(3, 5), k=2), op("top_k", spaced(2, 3, 4), k=4), op("top_k", spaced(2, 3), k=0),
              op("top_k", Arg(spaced(4, 5), (None, 5)), k=3)],
    "matmul": [op("matmul", normal(3, 4), normal(4, 5)),
               op("matmul", normal(4, 3), normal(4, 5), transpose_a=True),
               op("matmul", normal(3, 4), normal(5, 4), transpose_b=True),
               op("matmul", normal(4, 3), normal(5, 4), transpose_a=True, transpose_b=True),
               op("matmul", normal(2, 3, 4), normal(2, 4, 5)),
               op("matmul", normal(2, 3, 4), normal(4, 5)),
               op("matmul", normal(1, 3, 4), normal(2, 4, 2), transpose_a=False),
               op("matmul", normal(3, 4), normal(2, 2, 4, 3)),
               op("matmul", Arg(normal(6, 4), (None, 4)), normal(4, 3)),
               op("matmul", Arg(normal(2, 3, 4), (None, 3, 4)), normal(4, 5), transpose_b=False)],
    "reshape": [op("reshape", normal(3, 4), shape=(2, 6)),
                op("reshape", Arg(normal(4, 3), (None, 3)), shape=(-1, 6))],
    "transpose": [op("transpose", normal(2, 3, 4), perm=(2, 0, 1))],
    "concat": [op("concat", normal(2, 3), normal(4, 3), axis=0),
               op("concat", normal(2, 3), normal(2, 1), normal(2, 2), axis=-1),
               op("concat", Arg(normal(3, 2), (None, 2)), normal(2, 2), axis=0),
               op("concat", normal(2, 2), Arg(normal(3, 2), (None, 2)), axis=0)],
    "expand_dims": [op("expand_dims", normal(3, 4), axis=1), op("expand_dims", normal(3, 4), axis=-1)],
    "squeeze": [op("squeeze", normal(3, 1, 4, 1), axes=(1, 3)), op("squeeze", normal(3, 1), axes=(-1,))],
    "ensure_shape": [op("ensure_shape", Arg(normal(3, 4), (None, None)), shape=(3, -1))],
    "relax_shape": [op("relax_shape", normal(3, 4), axes=(0,))],
    "broadcast_to": [op("broadcast_to", normal(4), shape=(3, 4)), op("broadcast_to", normal(3, 1), shape=(2, 3, 5)),
                     op("broadcast_to", normal(), shape=(2, 2))],
    "slice": [op("slice", normal(4, 5), **_slice(begin=(1, 0), end=(3, None), strides=(1, 1))),
              op("slice", normal(4, 5), **_slice(begin=(0, 0), end=(None, None), strides=(1, 2))),
              op("slice", normal(4, 5), **_slice(begin=(-1, 3), end=(None, 0), strides=(-1, -2))),
              op("slice", normal(4, 5), **_slice(begin=(-2, 1), end=(None, 2), strides=(1, 1), squeeze_dims=(1,))),
              op("slice", normal(6), **_slice(begin=(4,), end=(0,), strides=(-3,))),
              op("slice", Arg(normal(5, 3), (None, 3)), **_slice(begin=(1, 1), end=(None, 3), strides=(1, 1)))],
    "gather": [op("gather", normal(5, 3), const(np.array([[0, 2], [4, 0]])), axis=0),
               op("gather", normal(2, 5, 3), const(np.array([1, 1, 4])), axis=1),
               op("gather", normal(5, 3), const(np.array(2)), axis=0),
               op("gather", Arg(normal(4, 3), (None, 3)), const(np.array([0, 0, 1])), axis=0),
               op("gather", Arg(normal(2, 5, 3), (None, None, 3)), const(np.array([[2, 0], [2, 2]])), axis=1),
               op("gather", Arg(normal(3, 4), (None, None)), const(np.array([3, 1, 3], np.int32)), axis=-1)],
    "scatter_add": [op("scatter_add", normal(5, 3), const(np.array([[0, 2], [4, 0]])), normal(2, 2, 3), axis=0),
                    op("scatter_add", Arg(normal(2, 4, 3), (None, None, 3)), const(np.array([1, 1, 3], np.int32)),
                       Arg(normal(2, 3, 3), (None, 3, 3)), axis=1),
                    op("scatter_add", normal(3, 4), const(np.array(2)), normal(3), axis=-1)],
    "extract_patches": [op("extract_patches", normal(2, 5, 4, 3), window=(3, 2), strides=(2, 1), dilations=(1, 1),
                           pads=(1, 1, 0, 1)),
                        op("extract_patches", Arg(normal(1, 6, 5, 2), (None, 6, 5, 2)), window=(2, 2), strides=(1, 1),
                           dilations=(2, 1), pads=(0, 0, 0, 0))],
    "fold_patches": [op("fold_patches", normal(2, 3, 4, 18), window=(3, 2), strides=(2, 1), dilations=(1, 1),
                        pads=(1, 1, 0, 1), size=(5, 4))],
    "gather_nd": [op("gather_nd", normal(4, 3, 2), const(np.array([[1, 2], [3, 0], [1, 2]]))),
                  op("gather_nd", normal(4, 3), const(np.array([[[0], [3]]]))),
                  op("gather_nd", normal(2, 3), const(np.zeros((2, 0), np.int64))),
                  op("gather_nd", Arg(normal(4, 3, 2), (4, 3, None)), const(np.array([[1, 2], [1, 2], [0, 0]]))),
                  op("gather_nd", Arg(normal(4, 3), (None, None)), const(np.array([[[0], [3]], [[0], [0]]])))],
    "reshape_dims": [op("reshape_dims", Arg(normal(4, 3), (None, 3)), Arg(normal(4, 2), (None, 2)), shape=(0, 3),
                        source=(1, 0), source_axis=(0, 0)),
                     op("reshape_dims", Arg(normal(2, 6), (None, None)), Arg(normal(4, 1), (None, 1)), shape=(0, -1),
                        source=(1, 0), source_axis=(0, 0))],
    "pad": [op("pad", normal(3, 4), before=(1, 0), after=(2, 3)),
            op("pad", Arg(normal(3, 4), (None, None)), before=(0, 2), after=(1, 0), value=1.5)],
    "broadcast_dims": [op("broadcast_dims", normal(3), Arg(normal(4, 2), (None, 2)), shape=(0, 3), source=(1, 0),
                          source_axis=(0, 0)),
                       op("broadcast_dims", normal(1, 1), Arg(normal(4, 5), (None, None)), shape=(0, 0),
                          source=(1, 1), source_axis=(0, 1))],
    "read_row": [op("read_row", normal(4, 3), const(np.array(2))), op("read_row", normal(2, 2, 3), const(np.int32(0)))],
    "write_row": [op("write_row", normal(4, 3), const(np.array(1)), normal(3))],
    "fill_rows": [op("fill_rows", const(np.array(3)), normal(2))],
    "all_reduce": [op("all_reduce", normal(3, 2), reduction="sum")],  # one rank here; 2: tests/runtime/test_distribute.py
    "cond": [Case([Arg(fixed(flag)), Arg(normal(3)), Arg(normal(3))], text="""
func @f(%p: bool[], %x: f64[3], %w: f64[3]) -> (f64[3], f64[3]) {
  %r, %s = cond %p, %x, %w : f64[3], f64[3] {
  ^bb0(%a: f64[3], %c: f64[3]):
    %m = mul %a, %c : f64[3]
    %t = tanh %m : f64[3]
    yield %t, %c : f64[3], f64[3]
  } {
  ^bb0(%a: f64[3], %c: f64[3]):
    %e = exp %a : f64[3]
    yield %e, %a : f64[3], f64[3]
  }
  return %r, %s : f64[3], f64[3]
}""", label=f"cond {flag}") for flag in (True, False)],
    "call": [Case([Arg(normal(3)), Arg(normal(2, 3))], text="""
func @layer(%v: f64[3], %m: f64[2,3]) -> f64[2,3] {
  %y = mul %m, %v : f64[2,3]
  %t = tanh %y : f64[2,3]
  return %t : f64[2,3]
}

func @f(%x: f64[3], %w: f64[2,3]) -> f64[2,3] {
  %h = call %x, %w {callee = @layer} : f64[2,3]
  %z = call %x, %h {callee = @layer} : f64[2,3]
  return %z : f64[2,3]
}""")],
    # s = x; repeat 3 times: s = tanh(s * w) + i, with a counter, a loop-invariant w and an unused float
    "while": [Case([Arg(normal(3)), Arg(normal(3))], text="""
func @f(%x: f64[3], %w: f64[3]) -> (f64[3], f64[3]) {
  %zero = constant {value = dense<0>} : i64[]
  %unused = constant {value = dense<1.0>} : f64[]
  %k, %s, %ww, %u = while %zero, %x, %w, %unused : i64[], f64[3], f64[3], f64[] {
  ^bb0(%i: i64[], %a: f64[3], %b: f64[3], %c: f64[]):
    %three = constant {value = dense<3>} : i64[]
    %go = less %i, %three : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %a: f64[3], %b: f64[3], %c: f64[]):
    %one = constant {value = dense<1>} : i64[]
    %next = add %i, %one : i64[]
    %m = mul %a, %b : f64[3]
    %t = tanh %m : f64[3]
    %fi = cast %i {dtype = f64} : f64[]
    %y = add %t, %fi : f64[3]
    yield %next, %y, %b, %c : i64[], f64[3], f64[3], f64[]
  }
  return %s, %ww : f64[3], f64[3]
}""")],
}

CASES.update({name: [op(name, sample(3, 4))] for name, sample in (  # ir/ops/elementwise_math.py
              ("sin", normal), ("cos", normal), ("atan", normal), ("erf", normal), ("log1p", positive),
              ("expm1", normal))},
             floormod=[op("floormod", normal(3, 4), positive(4))])


# -- the check --------------------------------------------------------------------------


def build_function(case: Case, values: list[np.ndarray]) -> tuple[Module, Function]:
    """The case's function; constants (declared=()) are folded in, the rest are arguments."""
    if case.text is not None:
        module = parse_module(case.text)
        return module, module["f"]
    is_arg = [a.declared != () for a in case.args]
    types = [TensorType(case.dtype, a.declared if a.declared is not None else v.shape)
             for a, v, keep in zip(case.args, values, is_arg) if keep]
    function = Function("f", types, [])
    args = iter(function.args)
    b = Builder.at_end(function.entry)
    operands = [next(args) if keep else b.constant(v) for v, keep in zip(values, is_arg)]
    results = case.build(b, *operands)
    b.create("return", list(results))
    function.result_types = [r.type for r in results]
    return Module([function]), function


def request_gradients(function: Function, weights: list[np.ndarray]) -> None:
    """Make `function` return (loss, d loss / d each float argument), loss = sum(weights * results)."""
    ret = function.entry.ops[-1]
    b = Builder.before(ret)
    outputs = [v for v in ret.operands if v.type.dtype.is_float]
    terms = [b.reduce_sum(b.mul(v, b.constant(w.astype(v.type.dtype.np))), axes=tuple(range(w.ndim)))
             for v, w in zip(outputs, weights)]
    loss = terms[0]
    for term in terms[1:]:
        loss = b.add(loss, term)
    xs = [a for a in function.args if a.type.dtype.is_float]
    grads = b.create("gradients", [loss, *xs], {"num_ys": 1, "num_xs": len(xs)}).results
    ret.erase()
    b.create("return", [loss, *grads])
    function.result_types = [loss.type, *(x.type for x in xs)]


def check_case(case: Case, rng: np.random.Generator) -> None:
    values = [np.asarray(a.sample(rng)) for a in case.args]
    values = [v.astype(case.dtype.np) if v.dtype.kind == "f" else v for v in values]
    module, function = build_function(case, values)
    args = [v for v, a in zip(values, case.args) if a.declared != ()]
    shapes = Interpreter(module).run_function(function, args)
    weights = [rng.standard_normal(np.shape(s)) for s in shapes if np.asarray(s).dtype.kind == "f"]
    request_gradients(function, weights)
    expand_gradients(module)
    verify(module)
    assert "gradients" not in [o.name for o in module.walk()]
    interpreter = Interpreter(module)
    _, *grads = interpreter.run_function(function, args)
    wrt = [i for i, a in enumerate(args) if a.dtype.kind == "f"]
    for grad, index in zip(grads, wrt):
        expected = numeric_gradient(lambda x: interpreter.run_function(function, _replace(args, index, x))[0],
                                    args[index], case.step)
        assert grad.shape == args[index].shape, case.label
        np.testing.assert_allclose(grad, expected, rtol=case.tolerance, atol=case.tolerance,
                                   err_msg=f"{case.label}: argument {index}")
    optimize(module, verify_each=True)  # the cleanups after autodiff keep every gradient, bit for bit
    for got, want in zip(Interpreter(module).run_function(function, args)[1:], grads):
        np.testing.assert_array_equal(got, want, err_msg=f"{case.label}: after the pipeline")


def numeric_gradient(loss: Callable[[np.ndarray], np.ndarray], x: np.ndarray, step: float) -> np.ndarray:
    grad = np.zeros(x.shape)
    for i in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (float(loss(up)) - float(loss(down))) / (2 * step)
    return grad


def _replace(values: list[np.ndarray], index: int, value: np.ndarray) -> list[np.ndarray]:
    return values[:index] + [value] + values[index + 1:]


DIFFERENTIABLE = [op_class.name for op_class in registry.all_ops() if op_class.differentiable]


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradient_matches_finite_differences(name: str, rng: np.random.Generator) -> None:
    assert name in VJP_RULES, f"{name} is differentiable but has no gradient rule in passes/autodiff"
    assert CASES.get(name), f"{name} is differentiable but has no gradient check case here"
    for case in CASES[name]:
        check_case(case, rng)


def test_rules_are_for_registered_differentiable_ops() -> None:
    assert sorted(set(VJP_RULES) - set(DIFFERENTIABLE)) == []
    assert sorted(set(CASES) - set(DIFFERENTIABLE)) == []
