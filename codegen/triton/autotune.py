"""Autotuning on a GPU: a kernel's candidate configurations, emitted beside its own, timed on its first run.

Note [autotuning]
Where: the schedule pass records, for matmul and reduction kernels, the heuristic's configuration
and a few `candidates` (Note [tuning candidates] in passes/schedule_gpu.py). `emit_with_candidates`
runs the kernel's emitter once more per candidate, the op's schedule attributes set to it, and keeps
each result as a variant of the kernel (TritonKernel.variants): its block sizes, grid, warps and
stages, and its own function only where its source differs (a reduction tile that now holds the
whole row); most variants launch the kernel's own function with other constants. So the variants
are in the gpu target's disk cache with the kernels, and every one is built to PTX like the others.

When: on a GPU, the first launch of such a kernel at a shape bucket (each slot's sizes rounded up to
powers of two) runs a Tuner: it times the heuristic's configuration and each variant on the launch's
own tensors, with triton.testing.do_bench (warm-up, then repeated runs with the GPU synchronized and
the L2 cache flushed), takes the fastest and launches it from then on. triton.autotune is not used:
it tunes one function's constants under one grid function, where a variant may be another function,
and it keeps its choices in Triton's cache keyed by its own arguments, not by flowc's bucket.
A configuration that fails to run (a tile over the GPU's shared memory) counts as never finishing.

What is cached: the choice, per kernel and bucket, in `tune-<key>.json` beside the kernel sources
in the disk cache, the key a hash of the device's name and the kernel with all its variants (so a
changed candidate list or backend is a new file, never a stale choice); the file holds each
bucket's choice, its configuration in words and the times. A second process reads it and times
nothing. Results do not depend on the choice: every variant computes the same values (the tests
check each under the interpreter). FLOWC_AUTOTUNE=0 (CompileOptions.autotune) and Triton's
interpreter (no GPU: the CPU test mode) run the heuristic's configuration and time nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

from flowc.ir import Operation
from flowc.runtime.cache import cache_dir, cache_key

from . import cache as kernel_cache
from .kernel import Emitter, TritonKernel

Timer = Callable[[Callable[[], None]], float]  # milliseconds a run takes
MOST_REMEMBERED = 4096  # launch shapes whose configuration a Tuner finds in one lookup


def emit_with_candidates(emitter: Emitter, op: Operation, name: str) -> TritonKernel:
    """Fusion op `op`'s kernel, its schedule's candidates as its variants (Note [autotuning])."""
    kernel = emitter(op, name)
    variants = []
    for number, candidate in enumerate(op.attributes.get("candidates", ()), 1):
        with scheduled_as(op, candidate):
            variant = emitter(op, name)
            if variant.source == kernel.source:
                variant = replace(variant, source="")  # launches the kernel's own function
            else:
                variant = emitter(op, f"{name}_{number}")
        variants.append(variant)
    return replace(kernel, variants=tuple(variants)) if variants else kernel


@contextlib.contextmanager
def scheduled_as(op: Operation, candidate: Sequence[Any]) -> Iterator[None]:
    """While the emitter runs: `op`'s tile or block, warps and stages those of `candidate`."""
    saved = op.attributes
    sizes = "tile" if op.kind == "matmul" else "block"
    chosen = {sizes: tuple(candidate[0]), "warps": candidate[1]}
    if len(candidate) > 2:
        chosen["stages"] = candidate[2]
    op.attributes = {key: value for key, value in saved.items() if key != "candidates"} | chosen
    try:
        yield
    finally:
        op.attributes = saved


def configurations(kernel: TritonKernel) -> list[TritonKernel]:
    """What a tuner chooses from: the heuristic's configuration (the kernel), then its variants."""
    return [kernel, *kernel.variants]


def describe(kernel: TritonKernel) -> str:
    """A configuration in words: its block sizes, warps and stages."""
    return kernel.describe()


def shape_bucket(shapes: Sequence[Sequence[int]]) -> str:
    """The bucket of a launch: every slot's sizes rounded up to powers of two, as text ("64x16,16")."""
    return ",".join("x".join(str(1 << max(size - 1, 0).bit_length()) for size in shape) for shape in shapes)


def gpu_timer(run: Callable[[], None]) -> float:
    """Milliseconds of `run` on the GPU: Triton's do_bench, shortened (a kernel's first run waits on it)."""
    from triton.testing import do_bench

    return do_bench(run, warmup=10, rep=40)


class Tuner:
    """Chooses each kernel's configuration per shape bucket, by timing or from the disk cache (Note
    [autotuning]); one per loaded module, so kernel names are unique in it."""

    def __init__(self, device: str, folder: str | None = None, timer: Timer = gpu_timer):
        """`device`: the GPU's name (torch.cuda.get_device_name()), part of every record's key."""
        self.device, self.folder, self.timer = device, folder, timer
        self.chosen: dict[tuple[str, str], int] = {}  # (kernel name, bucket) -> index in configurations
        self.described: dict[str, str] = {}  # kernel name -> its latest choice in words (bench_gpu.py)
        self._keys: dict[str, str] = {}
        self._launched: dict[tuple[str, tuple[tuple[int, ...], ...]], TritonKernel] = {}
        self._lock = threading.Lock()

    def choose(self, kernel: TritonKernel, shapes: tuple[tuple[int, ...], ...],
               run: Callable[[TritonKernel], None]) -> TritonKernel:
        """The configuration of `kernel` for slots of these shapes; `run(configuration)` launches one
        on the launch's tensors (the tuner times it when no choice is known yet)."""
        known = self._launched.get((kernel.name, shapes))  # every later launch of these shapes: one lookup
        if known is not None:
            return known
        bucket = shape_bucket(shapes)
        options = configurations(kernel)
        with self._lock:
            index = self.chosen.get((kernel.name, bucket))
            if index is None:
                index = self._recorded(kernel, bucket)
                if index is None:
                    index = self._tune(kernel, bucket, options, run)
                self.chosen[kernel.name, bucket] = index
            self.described[kernel.name] = (f"{describe(options[index])} "
                                           f"(tuned: {index} of {len(options)}, 0 the heuristic's)")
            if len(self._launched) >= MOST_REMEMBERED:  # ever new sizes: forget, the buckets stay
                self._launched.clear()
            self._launched[kernel.name, shapes] = options[index]
        return options[index]

    def record_path(self, kernel: TritonKernel) -> str:
        """The file of this kernel's choices on this device."""
        key = self._keys.get(kernel.name)
        if key is None:
            key = self._keys[kernel.name] = cache_key("flowc-tuning", self.device, kernel_cache.dumps([kernel]))
        return os.path.join(cache_dir(self.folder), f"tune-{key[:32]}.json")

    def _recorded(self, kernel: TritonKernel, bucket: str) -> int | None:
        entry = _read(self.record_path(kernel)).get("buckets", {}).get(bucket)
        if not isinstance(entry, dict) or not isinstance(entry.get("choice"), int):
            return None
        return entry["choice"] if 0 <= entry["choice"] <= len(kernel.variants) else None

    def _tune(self, kernel: TritonKernel, bucket: str, options: list[TritonKernel],
              run: Callable[[TritonKernel], None]) -> int:
        times = [self._time(lambda option=option: run(option)) for option in options]
        index = min(range(len(options)), key=lambda i: times[i])  # the heuristic's on a tie, or if all fail
        path = self.record_path(kernel)
        record = _read(path)
        record.update(device=self.device, kernel=kernel.name)
        record.setdefault("buckets", {})[bucket] = {
            "choice": index, "configuration": describe(options[index]),
            "milliseconds": [None if math.isinf(t) else t for t in times]}
        _write(path, record)
        return index

    def _time(self, run: Callable[[], None]) -> float:
        try:
            return self.timer(run)
        except Exception:  # Triton's OutOfResources, a launch the GPU refuses: never the choice
            return math.inf


def _read(path: str) -> dict:
    try:
        with open(path) as file:
            record = json.load(file)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write(path: str, record: dict) -> None:
    """Written whole under a temporary name, then renamed: a reader sees the old file or the new one."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tune-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(record, file, indent=1)
    os.replace(temporary, path)
