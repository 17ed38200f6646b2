"""Refusing a run that cannot fit in memory before allocating any of it.

The CPU target knows every value's concrete size once per set of fed shapes
(compiler/native.py, NativeExecutable._layout): an outer product of two
vectors of a million floats needs 4 TB for its result. Rather than let numpy
or the allocator fail with a bare MemoryError (or, under memory overcommit,
let the kernel kill the process half-way), the layout compares what the run
needs with what the machine has and raises a ResourceExhaustedError naming
the op whose value is biggest. The limit is sound: physical memory plus swap,
which no run can exceed and finish.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Sequence

from flowc.ir import Function, Operation, Value
from flowc.ir.core import OpResult
from flowc.ir.errors import ResourceExhaustedError, describe_bytes
from flowc.ir.shapes import Shapes
from flowc.passes.memory import MemoryPlan


@functools.cache
def machine_memory_bytes() -> int | None:
    """Physical memory plus swap, in bytes; None where the system does not say."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    return physical + _swap_bytes()


def _swap_bytes() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("SwapTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def value_bytes(value: Value, shapes: Shapes) -> int:
    """Exact, in Python integers: numpy's int64 product would wrap for absurd shapes."""
    return math.prod(shapes[value]) * value.type.dtype.itemsize


def check_run_fits(function: Function, plan: MemoryPlan, shapes: Shapes, peak: int) -> None:
    """The scratch arena (`peak` bytes) and the results not written into an argument fit in memory."""
    results = [v for j, v in enumerate(function.entry.ops[-1].operands) if j not in plan.donated]
    fresh = [v for v in results if isinstance(v, OpResult)]  # a returned argument is the caller's
    check_fits(function, shapes, [*plan.temps, *fresh], peak + sum(value_bytes(v, shapes) for v in fresh))


def check_fits(function: Function, shapes: Shapes, values: Sequence[OpResult], total: int) -> None:
    """Raise ResourceExhaustedError when `total` bytes (the run's fresh results and scratch arena,
    `values` being what they hold) exceed the machine's memory; it names the op of the biggest value."""
    limit = machine_memory_bytes()
    if limit is None or total <= limit or not values:
        return
    order = {op: index for index, op in enumerate(function.walk())}
    biggest = max(values, key=lambda v: (value_bytes(v, shapes), -order.get(producer(v), 0)))
    size, op = value_bytes(biggest, shapes), producer(biggest)
    shown = f"{biggest.type.dtype.short}[{','.join(str(d) for d in shapes[biggest])}]"
    available = f"more than this machine's {describe_bytes(limit)} of memory (physical and swap)"
    if size > limit:
        message = f"its result {shown} needs {describe_bytes(size)}, {available}"
    else:
        message = (f"this run needs {describe_bytes(total)} for its results and scratch, {available}; "
                   f"the largest value is this op's result {shown}, {describe_bytes(size)}")
    raise ResourceExhaustedError(message, op=op.display_name, where=op.loc)


def producer(value: OpResult) -> Operation:
    """The op that computes `value`: for a fused kernel's result, the op inside the kernel."""
    while value.op.name == "fusion":
        inner = value.op.regions[0].entry.ops[-1].operands[value.index]
        if not isinstance(inner, OpResult):
            break  # the kernel passes an argument through: name the kernel
        value = inner
    return value.op
