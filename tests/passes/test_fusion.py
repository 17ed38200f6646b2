"""The fusion pass and the `fusion` op: fusing never changes what is computed,
leaves only constants, views and kernels at the top level, and every kernel
keeps the contract of its kind (Note [kernel contract] in ir/ops/fusion.py).

Random graphs come from two generators: the pass-property one (every op kind,
odd shapes) and one below shaped like what fusion is for (rows of a matrix,
reductions over either axis, softmax, layer norm, matmuls, views). The
reference interpreter runs each before and after `Fuse`, bit for bit.
"""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pass_properties import assert_same_bits, random_module

import flowc as fc
from flowc.ir import (
    Builder,
    Function,
    Module,
    TensorType,
    Value,
    VerifyError,
    evaluate,
    float32,
    int64,
    parse_module,
    print_module,
    verify,
)
from flowc.ir.op import broadcast_shapes, names_where
from flowc.ir.ops.fusion import DimTies, build_fusion
from flowc.lowering import lower
from flowc.passes import PassManager, optimize, passes_by_name
from flowc.passes.fusion import Fuse

NOT_COUNTED = names_where(is_view=True) | {"constant", "fusion", "return", "yield"}  # what may be added (cloned
# splats), moved (kernels) or left (views) by fusion
TOP_LEVEL = NOT_COUNTED | {"cond", "while"}  # region ops stay beside the kernels, their regions fused inside


def computing_ops(module: Module) -> collections.Counter:
    """How many ops of each name compute something, at any depth."""
    return collections.Counter(op.name for op in module.walk() if op.name not in NOT_COUNTED)


def assert_fused(module: Module) -> None:
    """Each top-level block (and each block of a kernel's cond or while) holds only what fusion leaves."""
    for op in module.walk():
        block_owner = op.parent_op
        if block_owner is None or block_owner.name in ("cond", "while"):
            assert op.name in TOP_LEVEL, f"{op.name} left outside a kernel"


def fuse_and_compare(module: Module, args: list[np.ndarray]) -> None:
    """Fuse; then the results, the ops computed and the text round trip are checked."""
    verify(module)
    source = print_module(module)
    before = evaluate(module["f"], args)
    counts = computing_ops(module)
    PassManager([Fuse()], verify_each=True).run(module)
    context = f"--- before:\n{source}--- after:\n{print_module(module)}"
    assert_same_bits(before, evaluate(module["f"], args), context)
    assert_fused(module)
    assert computing_ops(module) == counts, context  # each op in exactly one kernel, none recomputed
    parsed = parse_module(print_module(module))
    verify(parsed)
    assert parsed == module, context
    assert_same_bits(before, evaluate(parsed["f"], args), context)
    assert Fuse().run(module) is False, context  # a fused module has nothing left to fuse


# -- random graphs ------------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(st.data())
def test_fusing_random_graphs_keeps_results(data: st.DataObject) -> None:
    module, args = random_module(data)
    fuse_and_compare(module, args)


@settings(PROPERTY, max_examples=60)
@given(st.data())
def test_fusing_after_the_pipeline_keeps_results(data: st.DataObject) -> None:
    module, args = random_module(data)
    optimize(module, verify_each=True)
    fuse_and_compare(module, args)


UNARY = ["exp", "tanh", "neg", "relu", "square", "sigmoid", "abs"]
BINARY = ["add", "sub", "mul", "div", "maximum"]
REDUCE = ["reduce_sum", "reduce_max", "reduce_mean", "reduce_min"]


class RowGraph:
    """A random function of rows: f32 values of shapes [N,5], [N,1], [N], [5] and []."""

    def __init__(self, rng: np.random.Generator, rows: int | None):
        self.rng = rng
        types = [TensorType(float32, s) for s in [(rows, 5), (5,), (rows, 1)]]
        self.function = Function("f", types, [], ["x", "v", "k"])
        self.b = Builder.at_end(self.function.entry)
        self.pool: list[Value] = list(self.function.args)

    def pick(self, accept=lambda v: True, floats: bool = True) -> Value | None:  # noqa: ANN001
        fits = [v for v in self.pool if accept(v) and (v.type.dtype == float32 or not floats)]
        if not fits:
            return None
        recent = fits[-3:]
        return recent[self.rng.integers(len(recent))] if self.rng.random() < 0.6 else fits[self.rng.integers(len(fits))]

    def add(self, value: Value) -> Value:
        self.pool.append(value)
        return value

    def splat(self, number: float) -> Value:
        return self.b.constant(np.float32(number))

    def step(self) -> None:
        kind = self.rng.choice(["unary", "binary", "binary", "reduce", "softmax", "layer_norm", "matmul",
                                "transpose", "view", "broadcast", "argmax"])
        x = self.pick()
        getattr(self, kind)(x)

    def unary(self, x: Value) -> None:
        self.add(self.b.create(str(self.rng.choice(UNARY)), [x]).result)

    def binary(self, x: Value) -> None:
        def fits(v: Value) -> bool:
            """Broadcasts with x into x's or v's shape; an unknown dim only meets itself or 1."""
            pairs = zip(reversed(x.type.shape), reversed(v.type.shape))
            if any((d is None) != (e is None) and 1 not in (d, e) for d, e in pairs):
                return False
            try:
                return broadcast_shapes("add", x.type.shape, v.type.shape) in (x.type.shape, v.type.shape)
            except fc.FlowcError:
                return False

        y = self.pick(fits) if self.rng.random() < 0.8 else None
        y = y if y is not None else self.splat(float(self.rng.choice([0.5, 2.0, -1.0])))
        operands = [x, y] if self.rng.random() < 0.7 else [y, x]
        self.add(self.b.create(str(self.rng.choice(BINARY)), operands).result)

    def reduce(self, x: Value) -> None:
        if x.type.rank == 0:
            return
        axes = [a for a in range(x.type.rank) if self.rng.random() < 0.5] or [x.type.rank - 1]
        name = str(self.rng.choice(REDUCE))
        self.add(self.b.create(name, [x], {"axes": tuple(axes), "keepdims": bool(self.rng.random() < 0.5)}).result)

    def argmax(self, x: Value) -> None:
        if x.type.rank and x.type.shape[-1] != 0:
            self.add(self.b.create("argmax", [x], {"axis": -1}).result)

    def softmax(self, x: Value) -> None:
        if x.type.rank == 0:
            return
        b = self.b
        top = b.reduce_max(x, axes=(-1,), keepdims=True)
        e = b.exp(b.sub(x, top))
        self.add(b.div(e, b.reduce_sum(e, axes=(-1,), keepdims=True)))

    def layer_norm(self, x: Value) -> None:
        if x.type.rank == 0:
            return
        b = self.b
        centered = b.sub(x, b.reduce_mean(x, axes=(-1,), keepdims=True))
        variance = b.reduce_mean(b.square(centered), axes=(-1,), keepdims=True)
        self.add(b.mul(centered, b.rsqrt(b.add(variance, self.splat(1e-3)))))

    def matmul(self, x: Value) -> None:
        if x.type.rank != 2 or x.type.shape[1] is None:
            return
        weights = self.b.constant(self.rng.standard_normal((x.type.shape[1], 5)).astype(np.float32))
        y = self.add(self.b.matmul(x, weights))
        if self.rng.random() < 0.7:  # an epilogue
            self.add(self.b.relu(self.b.add(y, self.pick(lambda v: v.type.shape == (5,)))))

    def transpose(self, x: Value) -> None:
        if x.type.rank == 2:
            self.add(self.b.transpose(x, perm=(1, 0)))

    def view(self, x: Value) -> None:
        if x.type.rank == 2 and x.type.shape[1] == 1:
            self.add(self.b.squeeze(x, axes=(1,)))
        elif x.type.rank == 1:
            self.add(self.b.expand_dims(x, axis=1))
        elif x.type.rank == 2 and x.type.is_static:
            self.add(self.b.reshape(x, shape=(-1,)))

    def broadcast(self, x: Value) -> None:
        if x.type.is_static and x.type.rank <= 2:
            target = (3,) * (2 - x.type.rank) + tuple(d if d != 1 else 3 for d in x.type.shape)
            if broadcast_shapes("broadcast_to", x.type.shape, target) == target:
                self.add(self.b.broadcast_to(x, shape=target))

    def finish(self) -> Module:
        count = int(self.rng.integers(1, 4))
        results = [self.pick(floats=False) for _ in range(count)]
        self.function.result_types = [v.type for v in results]
        self.b.create("return", results)
        return Module([self.function])


@pytest.mark.parametrize("rows", [3, None], ids=["static", "dynamic"])
@pytest.mark.parametrize("seed", range(60))
def test_fusing_row_graphs_keeps_results(seed: int, rows: int | None) -> None:
    rng = np.random.default_rng(seed)
    graph = RowGraph(rng, rows)
    for _ in range(int(rng.integers(3, 16))):
        graph.step()
    module = graph.finish()
    args = [rng.standard_normal(s).astype(np.float32) for s in [(3, 5), (5,), (3, 1)]]
    fuse_and_compare(module, args)


# -- what fuses -----------------------------------------------------------------------------------


def kernels(module: Module, name: str = "f") -> list[str]:
    return [op.kind for op in module[name].entry.ops if op.name == "fusion"]


def test_a_network_is_a_few_kernels(rng: np.random.Generator) -> None:
    """dense + relu, layer norm, dense, then softmax cross entropy: six kernels, not thirty ops (the
    labels' one_hot, a comparison after simplify, is computed inside the cross entropy's kernel; the
    labels' range check, a gather, is a single kernel over the batch's labels)."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 8], name="x")
        labels = fc.placeholder(fc.int64, [None], name="labels")
        w1 = fc.constant(rng.standard_normal((8, 16)).astype(np.float32))
        w2 = fc.constant(rng.standard_normal((16, 4)).astype(np.float32))
        h = fc.nn.relu(fc.matmul(x, w1) + fc.constant(np.linspace(-1, 1, 16, dtype=np.float32)))
        centered = h - fc.reduce_mean(h, axis=-1, keepdims=True)
        normal = centered * fc.rsqrt(fc.reduce_mean(fc.square(centered), axis=-1, keepdims=True) + 1e-5)
        logits = fc.matmul(normal, w2)
        loss = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    module = lower(g, [loss, logits], [], [x, labels]).module
    optimize(module, verify_each=True)
    args = [rng.standard_normal((5, 8)).astype(np.float32), rng.integers(0, 4, 5)]
    before = evaluate(module["main"], args)
    PassManager([Fuse()], verify_each=True).run(module)
    assert_same_bits(before, evaluate(module["main"], args), print_module(module))
    assert kernels(module, "main") == ["matmul", "reduction", "matmul", "single", "reduction", "reduction"], (
        print_module(module))


def test_dead_ops_still_make_a_kernel_with_a_result() -> None:
    """Without DCE first, a kernel of dead ops yields its last value (a kernel always has a result)."""
    module = parse_module("""
func @f(%x: f32[4], %z: f32[3]) -> f32[3] {
  %unused = exp %x : f32[4]
  %y = neg %z : f32[3]
  %dead = neg %z : f32[3]
  return %y : f32[3]
}
""")
    Fuse().run(module)
    verify(module)
    ops = module["f"].entry.ops
    assert [op.name for op in ops] == ["fusion", "fusion", "return"]
    assert [[r.name for r in op.results] for op in ops[:2]] == [["unused"], ["y"]]  # %dead: computed, not yielded


# -- the fusion op ------------------------------------------------------------------------------


def test_build_fusion_and_evaluate() -> None:
    f4 = TensorType(float32, (4,))
    function = Function("f", [f4, f4], [f4], ["x", "y"])
    b = Builder.at_end(function.entry)
    (z,) = build_fusion(b, "loop", function.args, lambda b, x, y: b.tanh(b.add(x, y)))
    b.create("return", [z])
    verify(function)
    x, y = np.arange(4, dtype=np.float32), np.ones(4, np.float32)
    (got,) = evaluate(function, [x, y], Module([function]))
    np.testing.assert_array_equal(got, np.tanh(x + y))
    assert "fusion %x, %y {kind = \"loop\"} : f32[4]" in print_module(function.parent)


# message -> (kind, result type, region body yielding %t); the region takes %a: f32[4,6].
BAD_KERNELS = {
    "kind must be one of loop, reduction, matmul, single, got 'vector'": (
        "vector", "f32[4,6]", ["%t = exp %a : f32[4,6]"]),
    "loop kernel: values of different shapes [2,4,6], [4,6]": (
        "loop", "f32[2,4,6]", ["%e = exp %a : f32[4,6]", "%t = broadcast_to %e {shape = [2, 4, 6]} : f32[2,4,6]"]),
    "loop kernel: reduce_sum 't' is not elementwise": (
        "loop", "f32[6]", ["%t = reduce_sum %a {axes = [0], keepdims = false} : f32[6]"]),
    "reductions differ in shape or axes": (
        "reduction", "f32[6]", ["%r = reduce_sum %a {axes = [1], keepdims = false} : f32[4]",
                                "%t = reduce_sum %a {axes = [0], keepdims = false} : f32[6]"]),
    "only a keepdims result of a reduction over trailing axes may be read at the full shape": (
        "reduction", "f32[4,6]", ["%r = reduce_sum %a {axes = [0], keepdims = true} : f32[1,6]",
                                  "%t = sub %a, %r : f32[4,6]"]),
    "has shape [2,4,6]; ops of a reduction of [4,6] over [1] have shape [4,6], [4,1] or [4]": (
        "reduction", "f32[2,4,6]", ["%r = reduce_sum %a {axes = [1], keepdims = false} : f32[4]",
                                    "%t = broadcast_to %a {shape = [2, 4, 6]} : f32[2,4,6]"]),
    "the operands of the matmul must be operands of the kernel": (
        "matmul", "f32[4,4]", ["%e = exp %a : f32[4,6]",
                               "%t = matmul %e, %a {transpose_a = false, transpose_b = true} : f32[4,4]"]),
    "holds 2 products (matmul, conv2d, conv2d_backprop_filter), a matmul kernel holds one": (
        "matmul", "f32[4,4]", ["%m = matmul %a, %a {transpose_a = false, transpose_b = true} : f32[4,4]",
                               "%t = matmul %m, %m {transpose_a = false, transpose_b = false} : f32[4,4]"]),
    "relu 't' is not an elementwise op of the matmul's shape [4,4]": (
        "matmul", "f32[4,6]", ["%m = matmul %a, %a {transpose_a = false, transpose_b = true} : f32[4,4]",
                               "%t = relu %a : f32[4,6]"]),
    "single kernel: holds 2 ops, a single kernel holds one": (
        "single", "f32[4,6]", ["%e = transpose %a {perm = [1, 0]} : f32[6,4]",
                               "%t = transpose %e {perm = [1, 0]} : f32[4,6]"]),
}


@pytest.mark.parametrize("message", BAD_KERNELS)
def test_the_verifier_checks_the_kernel_contract(message: str) -> None:
    kind, result, body = BAD_KERNELS[message]
    lines = "\n".join(f"    {line}" for line in body)
    module = parse_module(f"""
func @f(%x: f32[4,6]) -> {result} {{
  %y = fusion %x {{kind = "{kind}"}} : {result} {{
  ^bb0(%a: f32[4,6]):
{lines}
    yield %t : {result}
  }}
  return %y : {result}
}}
""")
    with pytest.raises(VerifyError, match=re.escape(message)):
        verify(module)


def test_the_verifier_checks_the_region_signature() -> None:
    module = parse_module("""
func @f(%x: f32[4]) -> f32[4] {
  %y = fusion %x {kind = "loop"} : f32[4] {
  ^bb0(%a: f32[1]):
    %e = broadcast_to %a {shape = [4]} : f32[4]
    yield %e : f32[4]
  }
  return %y : f32[4]
}
""")
    with pytest.raises(VerifyError, match=re.escape("region takes [f32[1]], operands are [f32[4]]")):
        verify(module)


def test_kernels_stay_valid_when_later_passes_empty_them() -> None:
    """fold, simplify and DCE run inside regions too; what they leave is still a valid kernel."""
    module = parse_module("""
func @f(%x: i32[4,6], %w: i32[6,6]) -> (i32[4], i32[4,6]) {
  %zero = constant {value = dense<0>} : i32[]
  %s = reduce_sum %x {axes = [1], keepdims = false} : i32[4]
  %z = mul %s, %zero : i32[4]
  %n = neg %z : i32[4]
  %m = matmul %x, %w {transpose_a = false, transpose_b = false} : i32[4,6]
  %k = mul %m, %zero : i32[4,6]
  return %n, %k : i32[4], i32[4,6]
}
""")
    args = [np.arange(24, dtype=np.int32).reshape(4, 6), np.ones((6, 6), np.int32)]
    before = evaluate(module["f"], args)
    PassManager([Fuse(), *passes_by_name(["simplify", "dce", "fold"])], verify_each=True).run(module)
    assert_same_bits(before, evaluate(module["f"], args), print_module(module))


def test_the_fuse_pass_is_in_the_cli_table() -> None:
    from flowc.passes import PASSES, default_pipeline

    assert "fuse" in PASSES
    assert not any(isinstance(p, Fuse) for p in default_pipeline())  # each target adds it to its own pipeline


def test_int_kernels_evaluate(rng: np.random.Generator) -> None:
    module = parse_module("""
func @f(%x: i64[3,4]) -> (i64[3], i64[3,4]) {
  %one = constant {value = dense<1>} : i64[]
  %a = add %x, %one : i64[3,4]
  %m = reduce_max %a {axes = [1], keepdims = true} : i64[3,1]
  %d = sub %a, %m : i64[3,4]
  %i = argmax %d {axis = 1, dtype = i64} : i64[3]
  return %i, %d : i64[3], i64[3,4]
}
""")
    fuse_and_compare(module, [rng.integers(-5, 5, (3, 4))])
    assert kernels(module) == ["reduction"]
    assert int64 in {r.type.dtype for r in module["f"].entry.ops[0].results}


def test_every_op_of_the_text_fixture_fuses(rng: np.random.Generator) -> None:
    """The fixture that uses every op (cond, while and call included) computes the same after fusion."""
    from test_ir_text import ALL_OPS

    module = parse_module(ALL_OPS)
    args = {f.name: [sample(rng, t) for t in f.arg_types] for f in module}
    args["checked"] = [np.ones(2, bool)]  # a check passes on true conditions only (ir/ops/checks.py)
    args["dims"][2] = np.array([[True, False, False], [False, False, True]])  # as many trues as %rows says
    args["stacks"][1] = np.array(0, np.int32)  # the one entry pushed
    del args["transfers"]  # its recv waits for another rank's send (tests/ir/test_transfer_ops.py runs pairs)
    before = {name: evaluate(module[name], values) for name, values in args.items()}
    counts = computing_ops(module)
    PassManager([Fuse()], verify_each=True).run(module)
    assert_fused(module)
    assert computing_ops(module) == counts
    for name, values in args.items():
        assert_same_bits(before[name], evaluate(module[name], values), f"@{name}\n{print_module(module)}")


def sample(rng: np.random.Generator, t: TensorType) -> np.ndarray:
    """An input of type t (unknown dims 2); integers in [0, 2), in range as indices of the fixture."""
    shape = tuple(2 if d is None else d for d in t.shape)
    if t.dtype.is_float:
        return rng.standard_normal(shape).astype(t.dtype.np)
    if t.dtype.is_int:
        return rng.integers(0, 2, shape).astype(t.dtype.np)
    return rng.random(shape) < 0.5


def test_the_verifier_tells_unknown_dims_apart() -> None:
    """x[0::2] and x are both f32[?]: one loop kernel over both is refused (Note [unknown dims in a
    kernel]), and the message numbers the two sizes."""
    module = parse_module("""
func @f(%x: f32[?], %h: f32[?]) -> f32[?] {
  %y, %z = fusion %x, %h {kind = "loop"} : f32[?], f32[?] {
  ^bb0(%a: f32[?], %b: f32[?]):
    %e = exp %a : f32[?]
    %t = tanh %b : f32[?]
    yield %e, %t : f32[?], f32[?]
  }
  return %y : f32[?]
}
""")
    with pytest.raises(VerifyError, match=re.escape("loop kernel: values of different shapes [?0], [?1]")):
        verify(module)


def test_the_verifier_accepts_unknown_dims_tied_outside_the_kernel() -> None:
    """The block's ops tie dims too: %s = x + h makes x and h one size, so a kernel of exp(x) and
    tanh(h) is one loop."""
    module = parse_module("""
func @f(%x: f32[?], %h: f32[?]) -> (f32[?], f32[?]) {
  %s = fusion %x, %h {kind = "loop"} : f32[?] {
  ^bb0(%a: f32[?], %b: f32[?]):
    %c = add %a, %b : f32[?]
    yield %c : f32[?]
  }
  %y, %z = fusion %x, %h {kind = "loop"} : f32[?], f32[?] {
  ^bb0(%a: f32[?], %b: f32[?]):
    %e = exp %a : f32[?]
    %t = tanh %b : f32[?]
    yield %e, %t : f32[?], f32[?]
  }
  return %s, %y : f32[?], f32[?]
}
""")
    verify(module)


def test_ties_follow_reductions_views_and_products() -> None:
    """The kept axes of a reduction, expand_dims and squeeze, and a product's rows, columns and inner
    dim are the operands' own; a dim tied to a static one takes its size."""
    module = parse_module("""
func @f(%x: f32[?,?], %w: f32[?,?], %v: f32[?]) -> (f32[?,?], f32[?,1], f32[?], f32[?]) {
  %p = matmul %x, %w {transpose_a = false, transpose_b = false} : f32[?,?]
  %r = reduce_sum %x {axes = [1], keepdims = true} : f32[?,1]
  %q = squeeze %r {axes = [1]} : f32[?]
  %b = broadcast_to %v {shape = [7]} : f32[7]
  return %p, %r, %q, %v : f32[?,?], f32[?,1], f32[?], f32[?]
}
""")
    function = module["f"]
    ties = DimTies(function.entry.ops)
    x, w, v = function.args
    p, r, q, _ = function.entry.ops[:4]
    rows, inner = ties.shape(x)
    assert ties.shape(w)[0] is inner and ties.shape(p.result) == (rows, ties.shape(w)[1])
    assert ties.shape(r.result) == (rows, 1) and ties.shape(q.result) == (rows,)
    assert ties.shape(v) == (7,)
    assert len({id(d) for d in (rows, inner, ties.shape(w)[1])}) == 3
