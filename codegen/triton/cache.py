"""The gpu target's kernels as text for the disk cache: a second process with the same IR reads them back
instead of running the emitters again (compiler/targets/gpu.py keys the entry as the CPU keys its library:
the IR text, flowc's version, and this backend's own source)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Any, Mapping, Sequence

from . import kernel
from .kernel import TritonKernel


def codegen_fingerprint() -> str:
    """A hash of the Triton backend's source: kernels an older backend wrote are never reused."""
    digest = hashlib.sha256()
    for path in sorted(pathlib.Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def dumps(kernels: Sequence[TritonKernel]) -> str:
    """The kernels as JSON: every field of every dataclass (kernel.py's), by name, so a field added
    there is kept without a change here."""
    return json.dumps(_encode(tuple(kernels)), indent=1)


def loads(text: str) -> tuple[TritonKernel, ...]:
    """The kernels `dumps` wrote."""
    return _decode(json.loads(text))


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {"class": type(value).__name__,
                "fields": {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, (tuple, list)):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, Mapping):
        return {"dict": {key: _encode(v) for key, v in value.items()}}
    return value


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "class" in value:
        cls = getattr(kernel, value["class"])  # one of kernel.py's dataclasses: Buffer, GridAxis, ...
        assert dataclasses.is_dataclass(cls), value["class"]
        return cls(**{name: _decode(v) for name, v in value["fields"].items()})
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    return {key: _decode(v) for key, v in value["dict"].items()}
