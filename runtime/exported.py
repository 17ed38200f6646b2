"""fc.load: a library that fc.export wrote, called from Python through its C API (ctypes), with no
compiler involved: what it needs to know (dtypes, ranks, names) it reads from NAME.h."""

from __future__ import annotations

import ctypes
import os
import re
import threading
import weakref
from typing import Any

import numpy as np

from flowc.ir.errors import FeedError, FlowcError, IndexOutOfRange, ResourceExhaustedError, RuntimeShapeError

# Lines of the header's Inputs/Outputs/Variables comments (compiler/aot/c_source.py writes them).
_TENSOR_LINE = re.compile(r"^ \*   (\d+): (\S+)  (\w+) \([^)]*\), rank (\d+), dims \[([-\d, ]*)\]$")
_ERRORS = {1: RuntimeShapeError, 2: IndexOutOfRange, 3: ResourceExhaustedError}


class ExportedFunction:
    """An exported library, loaded: call it with one array per input; it gives one array per output
    (a single output alone, several as a tuple, None for a run without outputs: a training step).

    `variables` maps each variable's name to a numpy array that *is* the context's buffer (a view, not
    a copy): reading it shows the values after the latest call, writing it changes what the next call
    uses. The views are valid while this object lives. Calls are serialized (one context); load the
    library once per thread to run calls at once.
    """

    def __init__(self, path: str):
        directory, name = os.path.split(os.path.abspath(os.fspath(path)))
        self.name = name
        header = os.path.join(directory, f"{name}.h")
        try:
            with open(header) as file:
                sections = _read_header(file.read())
        except OSError as error:
            raise FlowcError(f"fc.load({path!r}): cannot read {header}: {error.strerror or error}") from None
        self.inputs, self.outputs, variables = sections["Inputs"], sections["Outputs"], sections["Variables"]
        try:
            self._library = ctypes.CDLL(os.path.join(directory, f"lib{name}.so"))
        except OSError as error:
            raise FlowcError(f"fc.load({path!r}): cannot load lib{name}.so: {error}") from None
        self._bind()
        self._context = self._create()
        if not self._context:
            raise ResourceExhaustedError(f"fc.load({path!r}): {name}_create failed (out of memory)")
        self._release = weakref.finalize(self, self._destroy, self._context)
        self._lock = threading.Lock()
        self.variables = {}
        for index, (var_name, dtype, shape) in enumerate(variables):
            address = self._variable(self._context, index)
            size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            buffer = (ctypes.c_char * max(size, 1)).from_address(address)
            self.variables[var_name] = np.frombuffer(buffer, dtype, int(np.prod(shape))).reshape(shape)

    def _bind(self) -> None:
        lib, name = self._library, self.name
        self._create = getattr(lib, f"{name}_create")
        self._create.restype, self._create.argtypes = ctypes.c_void_p, []
        self._destroy = getattr(lib, f"{name}_destroy")
        self._destroy.restype, self._destroy.argtypes = None, [ctypes.c_void_p]
        self._output_dims = getattr(lib, f"{name}_output_dims")
        self._output_dims.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self._run = getattr(lib, f"{name}_run")
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self._error = getattr(lib, f"{name}_error")
        self._error.restype, self._error.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
        self._variable = getattr(lib, f"{name}_variable")
        self._variable.restype, self._variable.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]

    def __call__(self, *inputs: Any) -> Any:
        if len(inputs) != len(self.inputs):
            raise FeedError(f"{self.name} takes {len(self.inputs)} input(s) "
                            f"({', '.join(n for n, _, _ in self.inputs)}), got {len(inputs)}")
        arrays = [_as_input(value, spec) for value, spec in zip(inputs, self.inputs)]
        input_dims = np.array([d for a in arrays for d in a.shape] or [0], np.int64)
        output_dims = np.zeros(max(sum(len(s) for _, _, s in self.outputs), 1), np.int64)
        pointers = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
        with self._lock:
            self._check(self._output_dims(self._context, input_dims.ctypes.data, output_dims.ctypes.data))
            results, start = [], 0
            for _, dtype, shape in self.outputs:
                results.append(np.empty(tuple(output_dims[start:start + len(shape)]), dtype))
                start += len(shape)
            outputs = (ctypes.c_void_p * max(len(results), 1))(*[r.ctypes.data for r in results])
            self._check(self._run(self._context, pointers, input_dims.ctypes.data, outputs))
        return None if not results else results[0] if len(results) == 1 else tuple(results)

    def _check(self, status: int) -> None:
        if status:
            message = self._error(self._context).decode(errors="replace")
            raise _ERRORS.get(status, FlowcError)(message, op=f"exported function {self.name!r}")

    def close(self) -> None:
        """Free the context (its scratch memory and variables); `variables` must not be used after."""
        self.variables = {}
        self._release()


def load(path: str) -> ExportedFunction:
    """The library DIR/libNAME.so that fc.export(path) wrote, as a callable on numpy arrays
    (path = "DIR/NAME"); see ExportedFunction."""
    return ExportedFunction(path)


def _read_header(text: str) -> dict[str, list[tuple[str, np.dtype, tuple]]]:
    sections: dict[str, list] = {"Inputs": [], "Outputs": [], "Variables": []}
    current = None
    for line in text.splitlines():
        if line.startswith("/* "):
            current = next((s for s in sections if line[3:].startswith(s)), None)
            continue
        match = _TENSOR_LINE.match(line)
        if current is not None and match:
            dims = tuple(int(d) for d in match.group(5).split(",") if d.strip())
            sections[current].append((match.group(2), np.dtype(match.group(3)), dims))
    return sections


def _as_input(value: Any, spec: tuple[str, np.dtype, tuple]) -> np.ndarray:
    name, dtype, dims = spec
    array = np.asarray(value)
    if array.dtype != dtype and np.can_cast(array.dtype, dtype, "same_kind"):
        with np.errstate(over="ignore"):
            converted = array.astype(dtype)
        if dtype.kind == "f" and array.dtype.kind in "fiu" and (np.isinf(converted) & np.isfinite(array)).any():
            # as a Session's feeds (Note [feeds past a float's range] in compiler/feeds.py)
            raise FeedError(f"input {name!r} must be {dtype.name}, got {array.dtype.name} values past "
                            f"{dtype.name}'s range (largest {np.finfo(dtype).max}), which would become inf")
        array = converted
    if array.dtype != dtype or array.ndim != len(dims):
        raise FeedError(f"input {name!r} must be {dtype.name} of rank {len(dims)} "
                        f"(dims {list(dims)}), got {array.dtype.name} of shape {list(array.shape)}")
    return np.ascontiguousarray(array)
