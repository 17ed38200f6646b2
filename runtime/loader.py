"""Loading compiled shared libraries and calling their entry points.

Every entry point has the C signature

    void name(void **buffers, const int64_t *dims);

`buffers` holds the address of each argument, result and scratch buffer, in
the order the backend chose; `dims` the run-time sizes. The functions come
from ctypes.CDLL (not PyDLL), so each call releases the GIL: other Python
threads run while native code does, and two threads may call at once.
"""

from __future__ import annotations

import ctypes
import os
import threading

from flowc.ir.errors import FlowcError
from flowc.runtime.build import support_library

# c_void_p for both: passing a plain int (an address) is ctypes' cheapest
# conversion, and it accepts ctypes arrays too.
ENTRY_ARGTYPES = (ctypes.c_void_p, ctypes.c_void_p)

_support_lock = threading.Lock()
_support: ctypes.CDLL | None = None


class LoadError(FlowcError):
    """A compiled library that does not load, or lacks the entry point asked for."""


def support() -> ctypes.CDLL:
    """libflowc_rt, loaded once with RTLD_GLOBAL so generated code resolves its symbols there."""
    global _support
    with _support_lock:
        if _support is None:
            path = support_library()
            try:
                library = ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_GLOBAL)
            except OSError as error:
                raise LoadError(f"cannot load the support library {path}: {error}") from None
            library.flowc_num_threads.argtypes = ()
            library.flowc_num_threads.restype = ctypes.c_int
            library.flowc_set_num_threads.argtypes = (ctypes.c_int,)
            library.flowc_set_num_threads.restype = None
            library.flowc_parallel_for.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
            library.flowc_parallel_for.restype = None
            _support = library
        return _support


def num_threads() -> int:
    """The threads a native parallel loop uses, the calling thread included."""
    return support().flowc_num_threads()


def set_num_threads(count: int) -> None:
    """Set the threads of native parallel loops; count <= 0 restores the default
    ($FLOWC_NUM_THREADS, else the CPUs in this process's affinity mask)."""
    support().flowc_set_num_threads(int(count))


class Library:
    """A loaded shared library of compiled code. It stays loaded for the process's life."""

    def __init__(self, path: str):
        support()  # first, so the library's references to flowc_rt resolve to the loaded copy
        self.path = path
        try:
            self._library = ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as error:
            raise LoadError(f"cannot load compiled library {path}: {error}") from None
        self._entries: dict[str, ctypes._CFuncPtr] = {}

    def data(self, ctype: type, name: str) -> ctypes._CData:
        """The exported variable `name` of the library, seen as `ctype` (no copy)."""
        try:
            return ctype.in_dll(self._library, name)
        except ValueError:
            raise LoadError(f"{self.path} exports no {name!r}") from None

    def entry(self, name: str) -> ctypes._CFuncPtr:
        """The entry point `void name(void **buffers, const int64_t *dims)` as a ctypes function.

        Call it with two addresses (ints) or two ctypes arrays; ints are cheaper.
        """
        function = self._entries.get(name)
        if function is None:
            try:
                function = self._library[name]  # a fresh function object, ours to configure
            except AttributeError:
                raise LoadError(f"{self.path} has no entry point {name!r}") from None
            function.argtypes = ENTRY_ARGTYPES
            function.restype = None
            self._entries[name] = function
        return function

    def __repr__(self) -> str:
        return f"Library({self.path!r})"


def call(entry: ctypes._CFuncPtr, buffer_addresses: ctypes.Array, dims: ctypes.Array) -> None:
    """Call `entry` with a c_void_p array of buffer addresses and a c_int64 array of dims."""
    entry(ctypes.addressof(buffer_addresses), ctypes.addressof(dims))


class CallFrame:
    """Preallocated arguments for repeated calls of one entry point.

    Fill `buffers[i]` with addresses (`array.ctypes.data`) and `dims[j]` with
    sizes, then call the frame: a call allocates nothing. A frame is not
    thread-safe; give each calling thread its own.
    """

    __slots__ = ("_function", "buffers", "dims")

    def __init__(self, entry: ctypes._CFuncPtr, num_buffers: int, num_dims: int):
        self.buffers = (ctypes.c_void_p * max(num_buffers, 1))()
        self.dims = (ctypes.c_int64 * max(num_dims, 1))()
        # The same code with no argtypes: ctypes then passes each array as a
        # pointer to its first element without running a converter, which
        # makes the call about a third cheaper. Safe only because the
        # arguments are always these two arrays.
        self._function = type(entry)(ctypes.cast(entry, ctypes.c_void_p).value)
        self._function.restype = None

    def __call__(self) -> None:
        self._function(self.buffers, self.dims)
