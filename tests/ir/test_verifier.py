"""The verifier: each kind of malformed IR is rejected with a message that says what is wrong.

Most cases are IR text that the parser accepts (it builds ops with the types
the text gives) and the verifier rejects; the rest are built with the Builder
where the parser cannot express them.
"""

import numpy as np
import pytest

from flowc import ir
from flowc.ir import Builder, Function, Module, TensorType, VerifyError, float32, int64
from flowc.ir.verifier import attribute_matches

F4 = TensorType(float32, (4,))

# A loop of no turn whose while op takes the attributes put in place of {} (the cases on `threads`).
LOOP_WITH_ATTRIBUTES = """\
func @f(%x: f32[4]) -> f32[4] {{
  %r = while %x {}: f32[4] {{
  ^bb0(%a: f32[4]):
    %p = constant {{value = dense<false>}} : bool[]
    yield %p : bool[]
  }} {{
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  }}
  return %r : f32[4]
}}
"""

MALFORMED = {
    "type_rule": (
        """\
func @f(%x: f32[4]) -> f32[8] {
  %e = exp %x : f32[8]
  return %e : f32[8]
}
""",
        "'exp' (created at line 2): result types are [f32[8]], the type rule gives [f32[4]]",
    ),
    "operand_count": (
        """\
func @f(%x: f32[4]) -> f32[4] {
  %e = exp %x, %x : f32[4]
  return %e : f32[4]
}
""",
        "'exp' (created at line 2): takes 1 operand, got 2",
    ),
    "isolation": (
        """\
func @f(%p: bool[], %x: f32[4]) -> f32[4] {
  %r = cond %p : f32[4] {
  ^bb0:
    %e = exp %x : f32[4]
    yield %e : f32[4]
  } {
  ^bb0:
    yield %x : f32[4]
  }
  return %r : f32[4]
}
""",
        "'exp' (created at line 4): operand 0 (%x: f32[4]) is defined outside the region; regions are isolated from above, pass it as an operand",
    ),
    "no_terminator": (
        """\
func @f(%x: f32[4]) -> f32[4] {
  %e = exp %x : f32[4]
}
""",
        "'exp' (created at line 2): block must end with return, ends with exp",
    ),
    "terminator_not_last": (
        """\
func @f(%x: f32[4]) -> f32[4] {
  return %x : f32[4]
  %e = exp %x : f32[4]
}
""",
        "'return' (created at line 2): terminator return must be the last op of its block",
    ),
    "yield_in_function": (
        """\
func @f(%x: f32[4]) -> f32[4] {
  yield %x : f32[4]
}
""",
        "'yield' (created at line 2): block must end with return, ends with yield",
    ),
    "return_in_region": (
        """\
func @f(%p: bool[], %x: f32[4]) -> f32[4] {
  %r = cond %p, %x : f32[4] {
  ^bb0(%a: f32[4]):
    return %a : f32[4]
  } {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  }
  return %r : f32[4]
}
""",
        "'return' (created at line 4): block must end with yield, ends with return",
    ),
    "return_types": (
        """\
func @f(%x: f32[4]) -> (f32[4], f32[4]) {
  return %x : f32[4]
}
""",
        "'return' (created at line 2): returns [f32[4]], function @f is declared to return [f32[4], f32[4]]",
    ),
    "cond_predicate": (
        """\
func @f(%p: f32[], %x: f32[4]) -> f32[4] {
  %r = cond %p, %x : f32[4] {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  } {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  }
  return %r : f32[4]
}
""",
        "'cond' (created at line 2): predicate must be bool[], got f32[]",
    ),
    "cond_branch_args": (
        """\
func @f(%p: bool[], %x: f32[4]) -> f32[4] {
  %r = cond %p, %x : f32[4] {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  } {
  ^bb0(%a: f32[8]):
    %c = constant {value = dense<0.0>} : f32[4]
    yield %c : f32[4]
  }
  return %r : f32[4]
}
""",
        "'cond' (created at line 2): else branch takes [f32[8]], operands are [f32[4]]",
    ),
    "cond_branch_yields": (
        """\
func @f(%p: bool[], %x: f32[4]) -> f32[4] {
  %r = cond %p, %x : f32[4] {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  } {
  ^bb0(%a: f32[4]):
    %c = cast %a {dtype = i32} : i32[4]
    yield %c : i32[4]
  }
  return %r : f32[4]
}
""",
        "'cond' (created at line 2): else branch yields [i32[4]], results are [f32[4]]",
    ),
    "while_cond_yield": (
        """\
func @f(%n: i64[]) -> i64[] {
  %r = while %n : i64[] {
  ^bb0(%a: i64[]):
    yield %a : i64[]
  } {
  ^bb0(%a: i64[]):
    yield %a : i64[]
  }
  return %r : i64[]
}
""",
        "'while' (created at line 2): cond region must yield one bool[], yields [i64[]]",
    ),
    "while_body_yield": (
        """\
func @f(%n: i64[], %x: f32[4]) -> (i64[], f32[4]) {
  %i, %y = while %n, %x : i64[], f32[4] {
  ^bb0(%a: i64[], %b: f32[4]):
    %t = constant {value = dense<true>} : bool[]
    yield %t : bool[]
  } {
  ^bb0(%a: i64[], %b: f32[4]):
    yield %b, %a : f32[4], i64[]
  }
  return %i, %y : i64[], f32[4]
}
""",
        "'while' (created at line 2): body yields [f32[4], i64[]], loop values are [i64[], f32[4]]",
    ),
    "call_unknown": (
        """\
func @f(%x: f32[4]) -> f32[4] {
  %y = call %x {callee = @g} : f32[4]
  return %y : f32[4]
}
""",
        "'call' (created at line 2): callee @g is not a function of the module",
    ),
    "call_args": (
        """\
func @g(%x: f32[4]) -> f32[4] {
  return %x : f32[4]
}

func @f(%x: f32[8]) -> f32[4] {
  %y = call %x {callee = @g} : f32[4]
  return %y : f32[4]
}
""",
        "'call' (created at line 6): callee @g takes [f32[4]], operands are [f32[8]]",
    ),
    "call_results": (
        """\
func @g(%x: f32[4]) -> f32[4] {
  return %x : f32[4]
}

func @f(%x: f32[4]) -> (f32[4], f32[4]) {
  %y, %z = call %x {callee = @g} : f32[4], f32[4]
  return %y, %z : f32[4], f32[4]
}
""",
        "'call' (created at line 6): callee @g returns [f32[4]], results are [f32[4], f32[4]]",
    ),
    "region_count": (
        """\
func @f(%p: bool[], %x: f32[4]) -> f32[4] {
  %r = cond %p, %x : f32[4] {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  }
  return %r : f32[4]
}
""",
        "'cond' (created at line 2): takes 2 regions, got 1",
    ),
    "attribute_type": (
        """\
func @f(%x: f32[4]) -> f32[] {
  %s = reduce_sum %x {axes = 0, keepdims = false} : f32[]
  return %s : f32[]
}
""",
        "'reduce_sum' (created at line 2): attribute axes must be tuple[int, ...], got int 0",
    ),
    "empty_block": (
        """\
func @f(%p: bool[], %x: f32[4]) -> f32[4] {
  %r = cond %p, %x : f32[4] {
  ^bb0(%a: f32[4]):
  } {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  }
  return %r : f32[4]
}
""",
        "'cond' (created at line 2): region is empty; it must end with yield",
    ),
    "cond_driven": (
        """\
func @f(%p: bool[], %x: f32[4]) -> f32[4] {
  %r = cond %p, %x {driven = "device"} : f32[4] {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  } {
  ^bb0(%a: f32[4]):
    yield %a : f32[4]
  }
  return %r : f32[4]
}
""",
        "'cond' (created at line 2): driven must be \"host\" where present, got 'device'",
    ),
    "while_threads": (
        LOOP_WITH_ATTRIBUTES.format('{threads = "pool"} '),
        "'while' (created at line 2): threads must be \"gang\" or \"rows\" where present, got 'pool'",
    ),
    "while_rows_without_rows": (
        LOOP_WITH_ATTRIBUTES.format('{threads = "rows"} '),
        "'while' (created at line 2): threads = \"rows\" on a loop whose kernels read rows they do not own "
        "(Note [a gang that owns rows])",
    ),
    "while_gang_driven": (
        LOOP_WITH_ATTRIBUTES.format('{driven = "host", threads = "gang"} '),
        "'while' (created at line 2): a loop driven from the host runs no gang: threads and driven exclude each other",
    ),
    "type_rule_error": (
        """\
func @f(%x: f32[4], %y: f32[3]) -> f32[4] {
  %s = add %x, %y : f32[4]
  return %s : f32[4]
}
""",
        "'add' (created at line 2): shapes [4] and [3] do not broadcast (axis 0: [3, 4])",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_text_is_rejected(case: str) -> None:
    text, message = MALFORMED[case]
    module = ir.parse_module(text)  # the parser accepts it: checking is the verifier's job
    with pytest.raises(VerifyError) as error:
        ir.verify(module)
    assert str(error.value) == message


def _function(name: str = "f") -> tuple[Function, Builder]:
    function = Function(name, [F4], [F4], arg_names=["x"])
    return function, Builder.at_end(function.entry)


def test_use_before_definition() -> None:
    function, b = _function()
    y = b.exp(function.args[0])
    b.create("return", [b.neg(y)])
    ops = function.entry.ops
    ops.insert(0, ops.pop(1))  # neg now comes before the exp it reads
    with pytest.raises(VerifyError) as error:
        ir.verify(function)
    assert str(error.value) == "'neg': operand 0 (result 0 of exp: f32[4]) is used before it is defined"


def test_value_of_another_function() -> None:
    other, b = _function("other")
    b.create("return", [other.args[0]])
    function, b = _function()
    b.create("return", [b.exp(other.args[0])])
    with pytest.raises(VerifyError) as error:
        ir.verify(Module([other, function]))
    assert str(error.value) == "'exp': operand 0 (%x: f32[4]) is not defined in this function"


def test_attribute_names_must_match_the_declaration() -> None:
    function, b = _function()
    total = b.reduce_sum(function.args[0], axes=(0,), keepdims=True)
    b.create("return", [b.add(function.args[0], total)])
    del total.owner.attributes["keepdims"]
    with pytest.raises(VerifyError) as error:
        ir.verify(function)
    assert str(error.value) == "'reduce_sum': has attributes ['axes'], reduce_sum takes ['axes', 'keepdims']"


def test_call_outside_a_module() -> None:
    function, b = _function()
    (y,) = b.create("call", [function.args[0]], {"callee": "g"}, result_types=[F4]).results
    b.create("return", [y])
    with pytest.raises(VerifyError) as error:
        ir.verify(function)
    assert str(error.value) == "'call': callee @g cannot be resolved: the call is not in a module"


def test_error_names_the_source_line_of_a_built_op() -> None:
    function = Function("f", [F4], [F4])
    b = Builder.at_end(function.entry, loc="model.py:12")
    b.create("return", [b.create("exp", [function.args[0]], result_types=[TensorType(float32, (8,))]).result])
    with pytest.raises(VerifyError) as error:
        ir.verify(function)
    assert str(error.value) == (
        "'exp' (created at model.py:12): result types are [f32[8]], the type rule gives [f32[4]]"
    )


def test_well_formed_ir_passes() -> None:
    function, b = _function()
    x = function.args[0]
    b.create("return", [b.mul(b.exp(x), b.constant(np.full(4, 2.0, np.float32)))])
    ir.verify(function)
    ir.verify(Module([function]))


@pytest.mark.parametrize(
    ("value", "expected", "ok"),
    [
        ((1, 2), tuple[int, ...], True),
        ((1, None), tuple[int | None, ...], True),
        ((1, 2.5), tuple[int, ...], False),
        (True, int, False),
        (3, float, True),
        (np.float32(1.5), float, True),
        (None, int | None, True),
        ("x", int, False),
        (float32, ir.DType, True),
        (int64, TensorType, False),
    ],
)
def test_attribute_types(value: object, expected: object, ok: bool) -> None:
    assert attribute_matches(value, expected) is ok
