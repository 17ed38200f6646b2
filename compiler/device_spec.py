"""Device specifications: where `with fc.device(...)` puts the ops made inside.

A spec names up to five parts, each optional, as TensorFlow 1's DeviceSpec:
the job ("worker", "ps"), the replica and task indices, and a device type
("cpu", "gpu") with its index:

    /job:worker/task:1/gpu:0    /job:ps/task:0    /cpu:0    /device:GPU:1

Nested scopes merge: a part the inner spec names wins, a part it leaves out
comes from the outer one, so `with fc.device("/job:worker/task:1"):` around
`with fc.device("/gpu:0"):` places on "/job:worker/task:1/gpu:0".
`fc.device(None)` (or "") clears the outer scopes.

Only the job and task decide where an op runs across processes
(compiler/placement.py); the device type is recorded, and a Session runs
every op on its own target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from flowc.ir.errors import GraphError

DEVICE_TYPES = ("cpu", "gpu")
_JOB = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DeviceSpec:
    """A possibly partial device: each part None when the spec does not name it."""

    job: str | None = None
    replica: int | None = None
    task: int | None = None
    device_type: str | None = None
    device_index: int | None = None

    @staticmethod
    def parse(spec: str | DeviceSpec | None, where: str | None = None) -> DeviceSpec:
        """The spec in `spec`; a malformed one is a GraphError naming it and the user's line `where`."""
        if isinstance(spec, DeviceSpec):
            return spec
        if spec is None:
            return DeviceSpec()
        if not isinstance(spec, str):
            raise GraphError(f"a device is a string like '/job:worker/task:1' or a DeviceSpec, not {spec!r}",
                             where=where)
        parts: dict[str, object] = {}
        for part in (p for p in spec.strip().split("/") if p):
            _parse_part(part, spec, parts, where)
        return DeviceSpec(**parts)  # type: ignore[arg-type]

    def merged_into(self, outer: DeviceSpec) -> DeviceSpec:
        """This (inner) spec with the parts it leaves out taken from `outer` (TF1's merge of nested scopes)."""
        taken = {f.name: getattr(outer, f.name) for f in fields(self) if getattr(self, f.name) is None}
        if self.device_type is not None and self.device_type != outer.device_type:
            taken.pop("device_index", None)  # another device type: the outer index is not its index
        return replace(self, **taken)

    @property
    def task_key(self) -> tuple[str, int] | None:
        """(job, task) when the spec names a task: what decides the process an op runs in."""
        if self.task is None and self.job is None:
            return None
        return (self.job or "worker", self.task or 0)

    def __str__(self) -> str:
        parts = []
        if self.job is not None:
            parts.append(f"job:{self.job}")
        if self.replica is not None:
            parts.append(f"replica:{self.replica}")
        if self.task is not None:
            parts.append(f"task:{self.task}")
        if self.device_type is not None:
            parts.append(f"{self.device_type}:{0 if self.device_index is None else self.device_index}")
        return "/" + "/".join(parts) if parts else ""


def _parse_part(part: str, spec: str, parts: dict[str, object], where: str | None) -> None:
    key, _, rest = part.partition(":")
    low = key.lower()
    if low in ("job", "replica", "task"):
        value: object = rest if low == "job" else _index(rest, part, spec, where)
        if low == "job" and not _JOB.match(rest):
            raise _malformed(spec, f"the job name in {part!r} is not a name", where)
        _set(parts, low, value, spec, where)
        return
    if low == "device":  # "/device:GPU:0", TF1's long form
        key, _, rest = rest.partition(":")
        low = key.lower()
    if low in DEVICE_TYPES:
        _set(parts, "device_type", low, spec, where)
        if rest and rest != "*":
            _set(parts, "device_index", _index(rest, part, spec, where), spec, where)
        return
    raise _malformed(spec, f"{part!r} is not job:NAME, replica:N, task:N, cpu:N or gpu:N", where)


def _index(text: str, part: str, spec: str, where: str | None) -> int:
    if not text.isdigit():
        raise _malformed(spec, f"{part!r} needs a non-negative integer after ':'", where)
    return int(text)


def _set(parts: dict[str, object], key: str, value: object, spec: str, where: str | None) -> None:
    if key in parts:
        raise _malformed(spec, f"it names the {key.replace('_', ' ')} twice", where)
    parts[key] = value


def _malformed(spec: str, why: str, where: str | None) -> GraphError:
    return GraphError(f"device {spec!r} is malformed: {why}; a device looks like '/cpu:0', '/gpu:0', "
                      "'/job:worker/task:1' or '/job:ps/task:0/cpu:0'", where=where)
