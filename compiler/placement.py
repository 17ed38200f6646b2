"""Which target runs a Session's run when the Session was given none: the ops' `fc.device` placement.

Note [placement chooses the target]
flowc compiles a run into one function for one target, so placement is per run, not per op:
  - a Session made with a target (`fc.Session(target="cpu")`) runs everything there, placement ignored;
  - otherwise a run whose computing ops are all placed on /gpu:* runs on target "gpu"; any other run on
    "cpu", the default. Ops that compute nothing themselves (placeholders, constants, variables and
    their reads, no-ops such as the initializer's group) follow the others wherever they are made, so
    a model built in `with fc.device("/gpu:0"):` runs on the gpu with its feeds made outside;
  - a run with some computing ops on /gpu:* and others not (unplaced, or on /cpu:*) runs on "cpu" and
    says so with a PlacementWarning naming one op of each: splitting a run between targets is not
    built yet, and a TensorFlow 1 graph that places only part of its model still runs;
  - without a GPU, a /gpu:* run still runs on "gpu" (Triton's interpreter on the CPU: right but slow),
    unless the config allows soft placement (`fc.ConfigProto(allow_soft_placement=True)`, as
    TensorFlow 1's), which moves it to "cpu".
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Sequence

from .graph import CONST, NOOP, PLACEHOLDER, READ, VARIABLE, Operation

FOLLOWERS = (PLACEHOLDER, CONST, VARIABLE, READ, NOOP)  # compute nothing: run wherever the run does


class PlacementWarning(UserWarning):
    """A run placed partly on a GPU, which runs on cpu (Note [placement chooses the target])."""


def placed_target(ops: Sequence[Operation], soft_placement: bool) -> str:
    """The target a run of `ops` goes to when its Session was given none (Note [placement chooses the target])."""
    computing = [op for op in ops if op.type not in FOLLOWERS]
    on_gpu = next((op for op in computing if device_kind(op.device) == "gpu"), None)
    if on_gpu is None:
        return "cpu"
    elsewhere = next((op for op in computing if device_kind(op.device) != "gpu"), None)
    if elsewhere is not None:
        warnings.warn(
            f"this run has {on_gpu.type} {on_gpu.name!r} (created at {on_gpu.loc}) placed on {on_gpu.device} and "
            f"{elsewhere.type} {elsewhere.name!r} (created at {elsewhere.loc}) on {elsewhere.device or 'no device'}; "
            "flowc compiles a run for one target, so it runs on cpu: place all of its ops on /gpu:0 to run it on "
            "the gpu, or give the Session a target", PlacementWarning, stacklevel=2)
        return "cpu"
    if soft_placement and not gpu_present():
        return "cpu"
    return "gpu"


def device_kind(device: str) -> str | None:
    """"gpu" or "cpu" for a canonical device like '/job:worker/gpu:1'; None when it names neither."""
    for part in (device or "").split("/"):
        kind = part.partition(":")[0]
        if kind in ("gpu", "cpu"):
            return kind
    return None


def gpu_present() -> bool:
    """Whether the gpu target can run on a GPU here: torch and triton installed, and torch sees CUDA."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())
