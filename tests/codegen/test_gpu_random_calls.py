"""Random ops in @fc.function bodies and nested loop bodies on the gpu target: the folded counters of
Note [random streams in calls and nested loops] (compiler/control_flow_lowering.py) draw the reference's
numbers bit for bit, run after run."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import flowc as fc  # noqa: E402

from gpu_check import assert_gpu_matches  # noqa: E402
from test_random_in_functions import nested_loops, two_calls_and_a_loop  # noqa: E402


@pytest.mark.parametrize("make", [two_calls_and_a_loop, nested_loops], ids=["calls", "nested"])
def test_gpu_draws_what_the_reference_draws(make):
    def build():
        fc.set_random_seed(3)
        return make()

    assert_gpu_matches(build, {}, rtol=0.0, runs=2)
