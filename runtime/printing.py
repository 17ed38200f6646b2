"""The Python end of flowc_print (runtime/native/flowc_rt.c): a print op's value, from native code, handed
to the IR's print handler (Note [printing inside control flow] in ir/ops/checks.py)."""

from __future__ import annotations

import ctypes
import threading

import numpy as np

from flowc.ir.ops.checks import PRINT_DTYPES, deliver_print

HOOK_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                             ctypes.POINTER(ctypes.c_int64), ctypes.c_int64)
_lock = threading.Lock()
_hook: list[object] = []  # the ctypes callback, kept alive while the support library may call it


def _on_print(key: int, part: int, parts: int, dtype: int, data: int, dims: object, rank: int) -> None:
    shape = tuple(int(dims[a]) for a in range(rank))  # type: ignore[index]
    kind = np.dtype(PRINT_DTYPES[dtype])
    size = int(np.prod(shape, dtype=np.int64)) * kind.itemsize
    buffer = ctypes.string_at(data, size) if size else b""
    deliver_print(key, part, parts, np.frombuffer(buffer, dtype=kind).reshape(shape).copy())


def install_print_hook(library: ctypes.CDLL) -> None:
    """Make the support library's flowc_print call back into Python (runtime/loader.py's support(), once)."""
    with _lock:
        if _hook:
            return
        callback = HOOK_TYPE(_on_print)
        library.flowc_set_print_hook.argtypes = (HOOK_TYPE,)
        library.flowc_set_print_hook.restype = None
        library.flowc_set_print_hook(callback)
        _hook.append(callback)
