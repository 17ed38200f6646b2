"""A walk over the op registry: every op has every target's rule, and its kind facts agree.

Every registered op is evaluated by the reference target; the cpu target emits it (Note [what the
CPU emits] in codegen/llvm/support.py) or declares it unsupported, and then compiling it is an
UnsupportedOpError that names the op, the target and the user's line, never a KeyError from codegen.
"""

import numpy as np
import pytest

from flowc import ir
from flowc.codegen.llvm.kernels.reduction import EMITTED_REDUCTIONS
from flowc.codegen.llvm.support import UNSUPPORTED, emitted_ops
from flowc.ir import Operation, registry
from flowc.ir.errors import FlowcError, TargetError, UnsupportedOpError
from flowc.native import NativeExecutable
from flowc.options import CompileOptions
from flowc.passes import PassManager
from flowc.targets import target_named

FACTS = ("is_reduction", "is_view", "is_random", "costly", "transcendental")


def own(op_class: type[Operation], method: str) -> bool:
    """Whether the class (or a base below Operation) defines `method` rather than inheriting Operation's."""
    return getattr(op_class, method) is not getattr(Operation, method)


@pytest.mark.parametrize("op_class", registry.all_ops(), ids=lambda op: op.name)
def test_the_reference_target_evaluates_every_op(op_class: type[Operation]) -> None:
    # Terminators are the interpreter's own structure: run_region and run_function read their operands.
    assert op_class.is_terminator or own(op_class, "reference") or own(op_class, "evaluate"), op_class.name


@pytest.mark.parametrize("op_class", registry.all_ops(), ids=lambda op: op.name)
def test_the_cpu_target_emits_every_op_or_declares_it_unsupported(op_class: type[Operation]) -> None:
    emitted, unsupported = op_class.name in emitted_ops(), op_class.name in UNSUPPORTED
    assert emitted != unsupported, f"{op_class.name}: emitted {emitted}, declared unsupported {unsupported}"


def test_the_cpu_tables_name_only_registered_ops() -> None:
    assert set(emitted_ops()) - set(registry.OPS) == set()
    assert set(UNSUPPORTED) - set(registry.OPS) == set()


def test_every_reduction_has_a_reduction_kernel_rule_and_every_view_is_left_to_the_memory_plan() -> None:
    ways = emitted_ops()
    assert registry.names_where(is_reduction=True) == EMITTED_REDUCTIONS
    assert registry.names_where(is_view=True) == {name for name, way in ways.items() if way == "view"}


# -- the kind facts -----------------------------------------------------------------------------


def test_the_kind_facts_have_the_members_the_passes_and_backends_relied_on() -> None:
    """The name lists that these facts replaced, member for member (no codegen change)."""
    assert registry.names_where(is_reduction=True) == {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min",
                                                       "reduce_prod", "reduce_any", "reduce_all", "argmax", "argmin"}
    assert registry.names_where(is_view=True) == {"reshape", "expand_dims", "squeeze", "ensure_shape", "relax_shape",
                                                  "reshape_dims"}
    assert registry.names_where(is_random=True) == {"random_uniform", "random_normal", "random_uniform_like"}
    special = {"sin", "cos", "atan", "erf", "log1p", "expm1"}  # ir/ops/elementwise_math.py
    assert registry.names_where(costly=True) == {"exp", "log", "tanh", "sigmoid", "rsqrt", "pow", "sqrt", "div",
                                                 "floordiv", "floormod"} | special
    assert registry.names_where(transcendental=True) == {"exp", "log", "tanh", "sigmoid", "pow"} | special


@pytest.mark.parametrize("op_class", registry.all_ops(), ids=lambda op: op.name)
def test_kind_facts_agree_with_each_other(op_class: type[Operation]) -> None:
    facts = {fact: getattr(op_class, fact) for fact in FACTS}
    assert all(isinstance(value, bool) for value in facts.values()), facts
    if op_class.transcendental:
        assert op_class.costly and op_class.elementwise
    if op_class.costly:
        assert op_class.elementwise  # the reduction kernel's kept row holds elementwise values
    if op_class.is_random:
        assert not op_class.foldable and op_class.num_operands >= 1  # the run counter, first
    if op_class.is_reduction or op_class.is_view:
        assert (op_class.num_operands == 1 or op_class.name == "reshape_dims") and not op_class.elementwise
    assert sum(map(bool, (op_class.is_reduction, op_class.is_view, op_class.is_random, op_class.elementwise))) <= 1


def test_collectives_are_ordered_effects_emitted_as_single_kernels() -> None:
    """Note [collectives are ordered effects]: never merged, dropped, folded or hoisted; each its own kernel."""
    for name in ("all_reduce", "all_reduce_start", "all_reduce_done", "broadcast"):
        op_class = registry.get(name)
        assert not op_class.pure and not op_class.foldable and emitted_ops()[name] == "single", name


def test_a_view_keeps_the_elements_and_their_order() -> None:
    """What the memory plan relies on when it gives a view's result its operand's buffer."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    attributes = {"reshape": {"shape": (3, 2)}, "expand_dims": {"axis": 0}, "squeeze": {"axes": (2,)},
                  "ensure_shape": {"shape": (2, -1, 1)}, "relax_shape": {"axes": (0, 2)},
                  "reshape_dims": {"shape": (0, -1), "source": (1, 0), "source_axis": (1, 0)}}  # x lends its dim 1
    assert set(attributes) == registry.names_where(is_view=True)
    for name, attrs in attributes.items():
        function = ir.Function("f", [ir.TensorType(ir.float32, x.shape)], [])
        operands = [function.args[0]] * (2 if name == "reshape_dims" else 1)
        op = ir.Builder.at_end(function.entry).create(name, operands, attrs)
        (y,) = ir.Interpreter().run_op(op, [x] * len(operands))
        np.testing.assert_array_equal(y.ravel(), x.ravel(), err_msg=name)


def test_ops_where_rejects_a_name_that_is_not_a_fact() -> None:
    with pytest.raises(FlowcError, match="is_reductoin"):
        registry.ops_where(is_reductoin=True)


# -- an op the cpu target lacks -----------------------------------------------------------------

# One module per unsupported op; the op is on line 3 of the text (the parser's loc is "model.ir:3").
MODULES = {
    "cond": """\
func @main(%flag: bool[], %x: f32[4]) -> f32[4] {
  %one = constant {value = dense<1.0>} : f32[]
  %r = cond %flag, %x : f32[4] {
  ^bb0(%a: f32[4]):
    %e = exp %a : f32[4]
    yield %e : f32[4]
  } {
  ^bb0(%a: f32[4]):
    %one_1 = constant {value = dense<1.0>} : f32[]
    %s = sub %a, %one_1 : f32[4]
    yield %s : f32[4]
  }
  return %r : f32[4]
}
""",
    "while": """\
func @main(%flag: bool[], %x: f32[4]) -> f32[4] {
  %n = constant {value = dense<0>} : i64[]
  %k, %y = while %n, %x : i64[], f32[4] {
  ^bb0(%i: i64[], %v: f32[4]):
    %three = constant {value = dense<3>} : i64[]
    %go = less %i, %three : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %v: f32[4]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %w = add %v, %v : f32[4]
    yield %j, %w : i64[], f32[4]
  }
  return %y : f32[4]
}
""",
    "call": """\
func @main(%flag: bool[], %x: f32[4]) -> f32[4] {
  %t = tanh %x : f32[4]
  %r = call %t {callee = @twice} : f32[4]
  return %r : f32[4]
}

func @twice(%x: f32[4]) -> f32[4] {
  %y = add %x, %x : f32[4]
  return %y : f32[4]
}
""",
    "fill_rows": """\
func @main(%flag: bool[], %x: f32[4]) -> f32[?, 4] {
  %n = constant {value = dense<3>} : i64[]
  %r = fill_rows %n, %x : f32[?, 4]
  return %r : f32[?, 4]
}
""",
    "data_dim": """\
func @main(%flag: bool[], %x: f32[4]) -> i64[?, 0] {
  %n = constant {value = dense<3>} : i64[]
  %r = data_dim %n : i64[?, 0]
  return %r : i64[?, 0]
}
""",
    "stop_gradient": """\
func @main(%flag: bool[], %x: f32[4]) -> f32[4] {
  %t = tanh %x : f32[4]
  %s = stop_gradient %t : f32[4]
  return %s : f32[4]
}
""",
    "gradients": """\
func @main(%flag: bool[], %x: f32[4]) -> f32[4] {
  %l = reduce_sum %x {axes = [0], keepdims = false} : f32[]
  %g = gradients %l, %x {num_xs = 1, num_ys = 1} : f32[4]
  return %g : f32[4]
}
""",
    "stack_push": """\
func @main(%flag: bool[], %x: f32[4]) -> u8[?] {
  %e = constant {value = dense<[]>} : u8[0]
  %s = stack_push %e, %x : u8[?]
  return %s : u8[?]
}
""",
    "stack_read": """\
func @main(%flag: bool[], %x: f32[4], %s: u8[?]) -> f32[4] {
  %k = constant {value = dense<0>} : i64[]
  %r = stack_read %s, %k {dtype = f32, shape = [4]} : f32[4]
  return %r : f32[4]
}
""",
    "send": """\
func @main(%flag: bool[], %x: f32[4]) -> f32[4] {
  %t = tanh %x : f32[4]
  send %t {edge = 0, label = "Tanh 't' -> Add 'a' (task 0 -> task 1)", peer = 1} : f32[4]
  return %t : f32[4]
}
""",
    "recv": """\
func @main(%flag: bool[], %x: f32[4]) -> f32[4] {
  %t = tanh %x : f32[4]
  %r = recv {edge = 0, label = "Tanh 't' -> Add 'a' (task 1 -> task 0)", peer = 1} : f32[4]
  %a = add %r, %t : f32[4]
  return %a : f32[4]
}
""",
}
MEANINGS = {
    "cond": lambda flag, x: np.exp(x) if flag else x - np.float32(1),
    "while": lambda flag, x: x * np.float32(8),
    "call": lambda flag, x: np.tanh(x) * 2,
    "stop_gradient": lambda flag, x: np.tanh(x),
}


def compile_on_cpu(module: ir.Module) -> NativeExecutable:
    """The cpu target's own passes, build and load (what the driver runs after the shared pipeline)."""
    target, options = target_named("cpu"), CompileOptions.from_environment()
    PassManager(target.passes(options), verify_each=options.verify, record=False).run(module)
    return target.load(target.build(module, options), options)


def test_every_unsupported_op_has_a_module_here() -> None:
    assert set(UNSUPPORTED) <= set(MODULES)  # and cond, while, call: compiled since (test_native_control.py)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_an_unsupported_op_on_cpu_is_an_error_naming_the_op_the_target_and_the_line(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = ir.parse_module(MODULES[name], source="model.ir")
    ir.verify(module)

    def no_codegen(*args: object) -> None:
        raise AssertionError("refused after codegen started")

    monkeypatch.setattr("flowc.targets.cpu.plan_program", no_codegen)
    with pytest.raises(UnsupportedOpError) as caught:  # a KeyError would fail this test, not pass it
        compile_on_cpu(module)
    message = str(caught.value)
    assert isinstance(caught.value, TargetError)
    assert f"{name} " in message and "the cpu target does not compile" in message, message
    assert "(created at model.ir:3)" in message, message
    assert caught.value.where == "model.ir:3"


@pytest.mark.parametrize("name", sorted(MEANINGS))
@pytest.mark.parametrize("flag", [True, False])
def test_the_reference_target_runs_what_cpu_refuses(name: str, flag: bool, rng: np.random.Generator) -> None:
    module = ir.parse_module(MODULES[name], source="model.ir")
    x = rng.standard_normal(4).astype(np.float32)
    (y,) = ir.Interpreter(module).run_function("main", [np.array(flag), x])
    np.testing.assert_allclose(y, MEANINGS[name](flag, x), rtol=1e-6)


def test_the_gpu_target_writes_every_elementwise_op_as_a_triton_expression() -> None:
    from flowc.codegen.triton.expressions import EXPRESSIONS

    elementwise = {op.name for op in registry.all_ops() if op.elementwise}
    assert sorted(elementwise - set(EXPRESSIONS)) == [] and sorted(set(EXPRESSIONS) - elementwise) == []
