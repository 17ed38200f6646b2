"""send and recv (ir/ops/transfer.py): text form, verifier, and their reference meaning, a mailbox."""

import numpy as np
import pytest

from flowc import ir
from flowc.ir.ops.transfer import TransferMissing

PARTITIONS = """\
func @worker_0(%x: f32[?,4]) -> f32[?,4] {
  %h = tanh %x : f32[?,4]
  send %h {edge = 0, label = "tanh 'h' -> exp 'e' (/job:worker/task:0 -> /job:worker/task:1)", peer = 1} : f32[?,4]
  %g = recv {edge = 1, label = "exp 'e' -> mul 'm' (/job:worker/task:1 -> /job:worker/task:0)", peer = 1} : f32[?,4]
  %m = mul %g, %h : f32[?,4]
  return %m : f32[?,4]
}

func @worker_1() -> () {
  %h = recv {edge = 0, label = "tanh 'h' -> exp 'e' (/job:worker/task:0 -> /job:worker/task:1)", peer = 0} : f32[?,4]
  %e = exp %h : f32[?,4]
  send %e {edge = 1, label = "exp 'e' -> mul 'm' (/job:worker/task:1 -> /job:worker/task:0)", peer = 0} : f32[?,4]
  return
}
"""


def test_partitions_print_as_they_parse_and_verify() -> None:
    module = ir.parse_module(PARTITIONS)
    ir.verify(module)
    assert ir.print_module(module) == PARTITIONS
    send = module["worker_0"].entry.ops[1]
    assert send.results == [] and not send.pure and not send.differentiable
    assert send.attributes == {"edge": 0, "peer": 1,
                               "label": "tanh 'h' -> exp 'e' (/job:worker/task:0 -> /job:worker/task:1)"}


def test_the_reference_meaning_is_a_mailbox_by_edge(rng: np.random.Generator) -> None:
    """A send leaves its value under its edge; the recv of that edge takes it. The partitions are run
    stage by stage, as the executor does: task 0 up to its recv, task 1, then the rest of task 0."""
    module = ir.parse_module(PARTITIONS)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    interpreter = ir.Interpreter(module)
    h = interpreter.run_op(module["worker_0"].entry.ops[0], [x])[0]
    interpreter.run_op(module["worker_0"].entry.ops[1], [h])
    assert interpreter.run_function("worker_1", []) == []
    g = interpreter.run_op(module["worker_0"].entry.ops[2], [])[0]
    np.testing.assert_array_equal(g, np.exp(np.tanh(x)))
    assert interpreter.transfers == {}  # every value sent was received


def test_a_recv_with_nothing_sent_names_its_edge() -> None:
    module = ir.parse_module(PARTITIONS)
    with pytest.raises(TransferMissing, match=r"nothing was sent over edge 0 \(tanh 'h' -> exp 'e'"):
        ir.Interpreter(module).run_function("worker_1", [])
