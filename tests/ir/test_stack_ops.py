"""stack_push and stack_read (ir/ops/stacks.py): text form, verifier, the reference meaning (a byte
stack), and the host's list form of the same stack (compiler/host_stacks.py)."""

import numpy as np
import pytest

from flowc import ir
from flowc.host_stacks import HostStack, StackOp, as_host_stack
from flowc.ir.errors import FlowcError, IndexOutOfRange

PUSH_TWICE = """\
func @main(%x: f64[?], %k: i64[]) -> (f64[?], u8[?]) {
  %e = constant {value = dense<[]>} : u8[0]
  %s = stack_push %e, %x : u8[?]
  %c = concat %x, %x {axis = 0} : f64[?]
  %t = stack_push %s, %c : u8[?]
  %r = stack_read %t, %k {dtype = f64, shape = [none]} : f64[?]
  return %r, %t : f64[?], u8[?]
}
"""


def test_the_text_form_round_trips_and_verifies() -> None:
    module = ir.parse_module(PUSH_TWICE)
    ir.verify(module)
    assert ir.print_module(module) == PUSH_TWICE
    push, read = module["main"].entry.ops[1], module["main"].entry.ops[4]
    assert not push.foldable and not read.foldable and not push.differentiable
    assert read.attributes == {"dtype": ir.types.float64, "shape": (None,)}


def test_entries_of_different_shapes_read_back_by_index() -> None:
    function = ir.parse_module(PUSH_TWICE)["main"]
    x = np.array([1.5, -2.0, 3.25])
    for index, want in ((0, x), (1, np.concatenate([x, x]))):
        got, stack = ir.evaluate(function, [x, np.asarray(index)])
        np.testing.assert_array_equal(got, want)
    assert stack.dtype == np.uint8 and stack.size == 2 * 8 + 9 * 8  # two headers of one dim, 9 float64


def test_a_read_past_the_top_is_index_out_of_range_naming_the_op() -> None:
    function = ir.parse_module(PUSH_TWICE, source="model.ir")["main"]
    with pytest.raises(IndexOutOfRange, match=r"stack_read 'r' \(created at model.ir:6\).*entry 2 is out of range "
                                              r"\[0, 2\)"):
        ir.evaluate(function, [np.ones(2), np.asarray(2)])


@pytest.mark.parametrize("dtype, shapes", [("float32", [(2, 3), (0, 3), (4, 3)]), ("bool", [(1,), (3,)]),
                                           ("int32", [(), ()])])
def test_the_byte_form_and_the_host_form_hold_the_same_entries(dtype: str, shapes: list,
                                                              rng: np.random.Generator) -> None:
    values = [(rng.standard_normal(shape) > 0).astype(dtype) if dtype == "bool" else
              rng.standard_normal(shape).astype(dtype) for shape in shapes]
    types = [ir.TensorType(ir.types.as_dtype(dtype), value.shape) for value in values]
    function = ir.Function("pushes", types, [ir.TensorType(ir.types.uint8, (None,))])
    b = ir.Builder.at_end(function.entry)
    top = b.constant(np.zeros(0, np.uint8))
    for arg in function.entry.args:
        top = b.stack_push(top, arg)
    b.create("return", [top])
    (stack,) = ir.evaluate(function, values)
    host = HostStack([], 0)
    for value in values:
        host = host.pushed(value)
    decoded = as_host_stack(stack, np.dtype(dtype), len(shapes[0]))
    assert decoded.size == host.size == len(values)
    for a, b, value in zip(decoded.arrays, host.arrays, values):
        np.testing.assert_array_equal(a, value)
        np.testing.assert_array_equal(b, value)
        assert a.shape == b.shape == value.shape and a.dtype == b.dtype == value.dtype


def test_a_host_stack_is_a_value_a_second_push_onto_it_leaves_the_first_alone() -> None:
    base = HostStack([], 0).pushed(np.zeros(1))
    first, second = base.pushed(np.ones(2)), base.pushed(np.full(3, 7.0))
    assert first.arrays is base.arrays and second.arrays is not base.arrays  # the tip shares, a branch copies
    assert [a.tolist() for a in first.arrays[:first.size]] == [[0.0], [1.0, 1.0]]
    assert [a.tolist() for a in second.arrays[:second.size]] == [[0.0], [7.0, 7.0, 7.0]]
    pushed = np.arange(2.0)
    third = second.pushed(pushed)
    pushed[0] = 99.0  # a push copies: the array the caller keeps may change
    assert third.size == 3 and third.arrays[2].tolist() == [0.0, 1.0]


def test_the_host_piece_reads_a_host_stack_and_refuses_a_read_past_its_top() -> None:
    function = ir.parse_module(PUSH_TWICE, source="model.ir")["main"]
    read = function.entry.ops[4]
    stack = HostStack([], 0).pushed(np.ones(1)).pushed(np.ones(2))
    env = {read.operands[0]: stack, read.operands[1]: np.asarray(1)}
    StackOp(read).run(env)
    np.testing.assert_array_equal(env[read.result], np.ones(2))
    env[read.operands[1]] = np.asarray(2)
    with pytest.raises(IndexOutOfRange, match=r"created at model.ir:6.*entry 2 is out of range \[0, 2\)"):
        StackOp(read).run(env)


def test_the_type_rules_want_a_u8_vector_stack_and_a_scalar_index() -> None:
    bad_stack = PUSH_TWICE.replace("%s = stack_push %e, %x", "%s = stack_push %x, %x")
    with pytest.raises(FlowcError, match="stack must be a u8"):
        ir.verify(ir.parse_module(bad_stack))
    bad_index = PUSH_TWICE.replace("stack_read %t, %k", "stack_read %t, %x")
    with pytest.raises(FlowcError, match="index must be a scalar integer"):
        ir.verify(ir.parse_module(bad_index))
