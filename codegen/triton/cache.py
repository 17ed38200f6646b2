"""The gpu target's kernels as text for the disk cache: a second process with the same IR reads them back
instead of running the emitters again (compiler/targets/gpu.py keys the entry as the CPU keys its library:
the IR text, flowc's version, and this backend's own source)."""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Sequence

from .kernel import Buffer, Extent, GridAxis, Parameter, Scalar, TritonKernel


def codegen_fingerprint() -> str:
    """A hash of the Triton backend's source: kernels an older backend wrote are never reused."""
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def dumps(kernels: Sequence[TritonKernel]) -> str:
    """The kernels as JSON: every field, parameters and grid as plain lists."""
    return json.dumps([{
        "name": k.name, "source": k.source, "num_warps": k.num_warps, "constants": dict(k.constants),
        "parameters": [[name, *_parameter(p)] for name, p in k.parameters],
        "grid": [[[[e.slot, e.axis] for e in axis.extents], axis.block, axis.factor] for axis in k.grid],
    } for k in kernels], indent=1)


def loads(text: str) -> tuple[TritonKernel, ...]:
    """The kernels `dumps` wrote."""
    return tuple(TritonKernel(
        name=k["name"], source=k["source"], num_warps=k["num_warps"], constants=k["constants"],
        parameters=tuple((name, _parameter_of(kind, args)) for name, kind, *args in k["parameters"]),
        grid=tuple(GridAxis(tuple(Extent(*e) for e in extents), block, factor) for extents, block, factor in k["grid"]),
    ) for k in json.loads(text))


def _parameter(parameter: Parameter) -> list:
    if isinstance(parameter, Buffer):
        return ["buffer", parameter.slot]
    if isinstance(parameter, Extent):
        return ["extent", parameter.slot, parameter.axis]
    return ["scalar", parameter.name, parameter.dtype]


def _parameter_of(kind: str, args: list) -> Parameter:
    return {"buffer": Buffer, "extent": Extent, "scalar": Scalar}[kind](*args)
