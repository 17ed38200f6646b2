"""The Tuner's choice (Note [autotuning] in codegen/triton/autotune.py), with timings injected by a fake timer:
the fastest configuration per shape bucket, its record in the disk cache read back by a fresh tuner (a
second process) that times nothing, and FLOWC_AUTOTUNE=0 and the interpreter, which run the heuristic's."""

from __future__ import annotations

import json
import os
from typing import Callable

import numpy as np
import pytest

from flowc.codegen.triton.autotune import Tuner, shape_bucket
from flowc.codegen.triton.kernel import TritonKernel
from flowc.options import CompileOptions


def kernel_of(blocks: list[int]) -> TritonKernel:
    """A kernel whose configurations (the heuristic's, then its variants) differ in BLOCK."""
    def configuration(block: int, source: str) -> TritonKernel:
        return TritonKernel("k", source, (), (), {"BLOCK": block}, num_warps=4)
    return TritonKernel("k", "@triton.jit\ndef k(BLOCK: tl.constexpr):\n    pass\n", (), (), {"BLOCK": blocks[0]},
                        variants=tuple(configuration(block, "") for block in blocks[1:]))


class FakeTimer:
    """Runs what it is given and says it took `milliseconds[BLOCK]` of the configuration that ran."""

    def __init__(self, milliseconds: dict[int, float | None]):
        self.milliseconds = milliseconds
        self.ran: list[int] = []  # BLOCK of each configuration run
        self.timed: list[int] = []

    def __call__(self, run: Callable[[], None]) -> float:
        run()
        block = self.ran[-1]
        self.timed.append(block)
        if self.milliseconds[block] is None:
            raise RuntimeError("out of resources: shared memory")  # as Triton's OutOfResources would
        return self.milliseconds[block]

    def run(self, configuration: TritonKernel) -> None:
        self.ran.append(configuration.constants["BLOCK"])


timer = FakeTimer


class SequenceTimer:
    """Runs what it is given and says it took the next of `milliseconds` (the Tuner times the heuristic's
    configuration first, then each variant in order)."""

    def __init__(self, milliseconds: list[float]):
        self.milliseconds = list(milliseconds)
        self.calls = 0

    def __call__(self, run: Callable[[], None]) -> float:
        run()
        self.calls += 1
        return self.milliseconds[self.calls - 1]


def never(run: Callable[[], None]) -> float:
    raise AssertionError("a recorded choice must not be timed again")


SHAPES = ((37, 10), (37, 10))


def test_the_fastest_configuration_is_chosen_and_recorded(tmp_path) -> None:
    fake = timer({256: 3.0, 512: 1.5, 128: 2.0})
    tuner = Tuner("Fake H100", str(tmp_path), fake)
    chosen = tuner.choose(kernel_of([256, 512, 128]), SHAPES, fake.run)
    assert chosen.constants == {"BLOCK": 512} and chosen.name == "k"  # a variant of source "": k's function
    assert fake.timed == [256, 512, 128]
    record = json.loads(open(tuner.record_path(kernel_of([256, 512, 128]))).read())
    assert record["device"] == "Fake H100" and record["kernel"] == "k"
    assert record["buckets"] == {"64x16,64x16": {"choice": 1, "configuration": "BLOCK=512, 4 warps",
                                                 "milliseconds": [3.0, 1.5, 2.0]}}
    assert tuner.described["k"] == "BLOCK=512, 4 warps (tuned: 1 of 3, 0 the heuristic's)"
    # the same bucket again, in this process: no timing, no file read
    os.remove(tuner.record_path(kernel_of([256, 512, 128])))
    assert tuner.choose(kernel_of([256, 512, 128]), ((60, 9), (60, 9)), never).constants == {"BLOCK": 512}


def test_a_second_process_reads_the_choice_and_times_nothing(tmp_path) -> None:
    fake = timer({256: 3.0, 512: 4.0, 128: 2.0})
    assert Tuner("Fake H100", str(tmp_path), fake).choose(kernel_of([256, 512, 128]), SHAPES, fake.run).constants \
        == {"BLOCK": 128}
    second = Tuner("Fake H100", str(tmp_path), never)  # a fresh runtime: nothing in memory
    assert second.choose(kernel_of([256, 512, 128]), ((50, 16), (50, 16)), fake.run).constants == {"BLOCK": 128}
    assert fake.ran == [256, 512, 128]  # only the first tuner's timing ran anything
    # another bucket is timed, and recorded beside the first
    other = timer({256: 1.0, 512: 4.0, 128: 2.0})
    third = Tuner("Fake H100", str(tmp_path), other)
    assert third.choose(kernel_of([256, 512, 128]), ((5000, 10), (5000, 10)), other.run).constants == {"BLOCK": 256}
    record = json.loads(open(third.record_path(kernel_of([256, 512, 128]))).read())
    assert {bucket: entry["choice"] for bucket, entry in record["buckets"].items()} == {
        "64x16,64x16": 2, "8192x16,8192x16": 0}


def test_choices_are_per_device_and_per_kernel(tmp_path) -> None:
    fake = timer({256: 3.0, 512: 1.0, 128: 2.0})
    Tuner("Fake H100", str(tmp_path), fake).choose(kernel_of([256, 512, 128]), SHAPES, fake.run)
    other_gpu = timer({256: 1.0, 512: 3.0, 128: 2.0})
    assert Tuner("Fake H200", str(tmp_path), other_gpu).choose(kernel_of([256, 512, 128]), SHAPES,
                                                                other_gpu.run).constants == {"BLOCK": 256}
    fewer = timer({256: 3.0, 512: 1.0})  # another candidate list: another kernel, another record
    assert Tuner("Fake H100", str(tmp_path), fewer).choose(kernel_of([256, 512]), SHAPES, fewer.run).constants \
        == {"BLOCK": 512}
    assert fewer.timed == [256, 512]
    assert len([name for name in os.listdir(tmp_path) if name.startswith("tune-")]) == 3


def test_a_configuration_that_fails_is_never_chosen(tmp_path) -> None:
    fake = timer({256: 3.0, 512: None, 128: 5.0})
    tuner = Tuner("Fake H100", str(tmp_path), fake)
    assert tuner.choose(kernel_of([256, 512, 128]), SHAPES, fake.run).constants == {"BLOCK": 256}
    record = json.loads(open(tuner.record_path(kernel_of([256, 512, 128]))).read())
    assert record["buckets"]["64x16,64x16"]["milliseconds"] == [3.0, None, 5.0]


def test_a_tie_keeps_the_heuristic_and_a_damaged_record_is_retimed(tmp_path) -> None:
    fake = timer({256: 2.0, 512: 2.0, 128: 2.0})
    tuner = Tuner("Fake H100", str(tmp_path), fake)
    assert tuner.choose(kernel_of([256, 512, 128]), SHAPES, fake.run).constants == {"BLOCK": 256}
    with open(tuner.record_path(kernel_of([256, 512, 128])), "w") as file:
        file.write('{"buckets": {"64x16,64x16": {"choice": 7')  # cut short
    again = timer({256: 2.0, 512: 1.0, 128: 2.0})
    assert Tuner("Fake H100", str(tmp_path), again).choose(kernel_of([256, 512, 128]), SHAPES,
                                                           again.run).constants == {"BLOCK": 512}


def test_shape_buckets_round_each_size_up_to_a_power_of_two() -> None:
    assert shape_bucket([(37, 10), (10,), ()]) == "64x16,16,"
    assert shape_bucket([(0, 1, 2, 3)]) == "1x1x2x4"


# -- through the gpu target ---------------------------------------------------------------------------


def test_autotune_off_and_the_interpreter_mean_no_tuner(monkeypatch, tmp_path) -> None:
    pytest.importorskip("torch")
    from flowc.targets import gpu

    assert CompileOptions.from_environment({}).autotune
    assert not CompileOptions.from_environment({"FLOWC_AUTOTUNE": "0"}).autotune
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Fake H100")
    assert gpu._tuner("cuda", CompileOptions(autotune=False), str(tmp_path)) is None
    assert gpu._tuner("cpu", CompileOptions(autotune=True), str(tmp_path)) is None  # the interpreter
    tuner = gpu._tuner("cuda", CompileOptions(autotune=True), str(tmp_path))
    assert isinstance(tuner, Tuner) and tuner.device == "Fake H100" and tuner.folder == str(tmp_path)
    pytest.importorskip("triton")
    from flowc.codegen.triton.kernel import TritonModule

    off = TritonModule([kernel_of([256, 512])], interpret=False, folder=str(tmp_path))  # as on a GPU, tuner off
    assert off.configuration("k") == "BLOCK=256, 4 warps (the heuristic's: FLOWC_AUTOTUNE=0)"


def softmax_executable(folder: str):
    import flowc as fc
    from flowc.driver import compile_lowered
    from flowc.lowering import lower

    graph = fc.Graph()
    with graph.as_default():
        x = fc.placeholder(fc.float32, [None, 10])
        y = fc.nn.softmax(x)
    return compile_lowered(lower(graph, [y], [], [x]), "gpu", CompileOptions(verify=True, cache_dir=folder))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_two_runtimes_share_the_choice_through_the_disk_cache(tmp_path, rng) -> None:
    """Kernels of the gpu target in the interpreter, each run given a tuner with a fake timer: the first
    runtime times every configuration (running each: the results stay right) and launches the fastest;
    a second one, made afresh, launches the recorded choice without timing."""
    pytest.importorskip("triton")
    x = rng.standard_normal((37, 10)).astype(np.float32)
    first = softmax_executable(str(tmp_path))
    assert first.kernels.tuner is None  # no GPU here: the heuristic's configuration
    (name,) = first.names.values()
    assert first.kernels.configuration(name).endswith("(the heuristic's: the interpreter times nothing)")
    np.testing.assert_allclose(first([x])[0], softmax(x), rtol=1e-6)
    count = 1 + len(first.kernels.kernels[name].variants)
    fake = SequenceTimer([2.0, 2.0, 1.0] + [3.0] * (count - 3))
    first.kernels.tuner = Tuner("Fake H100", str(tmp_path), fake)
    np.testing.assert_allclose(first([x])[0], softmax(x), rtol=1e-6)
    assert fake.calls == count
    assert "tuned: 2 of" in first.kernels.configuration(name)
    np.testing.assert_allclose(first([2 * x])[0], softmax(2 * x), rtol=1e-6)  # a second run: no timing
    assert fake.calls == count

    second = softmax_executable(str(tmp_path))  # a fresh runtime: its own module and tuner
    second.kernels.tuner = Tuner("Fake H100", str(tmp_path), never)
    np.testing.assert_allclose(second([x[:33]])[0], softmax(x[:33]), rtol=1e-6)  # 33 rows: the same bucket
    assert "tuned: 2 of" in second.kernels.configuration(name)
