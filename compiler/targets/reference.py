"""The reference target: the numpy evaluator of each op's meaning, the oracle of every test."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from flowc.ir import Interpreter, Module

from ..options import CompileOptions
from .base import Target


class ReferenceExecutable:
    """Runs the function `main` in the reference interpreter."""

    def __init__(self, module: Module):
        self.module = module
        self.function = module["main"]
        self._interpreter = Interpreter(module)

    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._interpreter.run_function(self.function, args)


class ReferenceTarget(Target):
    """No passes of its own, and the module is its own artifact: numpy is IEEE whatever fast math says."""

    name = "reference"
    sized_by_data = True  # numpy arrays of any size, made as the function runs

    def build(self, module: Module, options: CompileOptions) -> Module:
        return module

    def load(self, artifact: Module, options: CompileOptions) -> ReferenceExecutable:
        return ReferenceExecutable(artifact)
