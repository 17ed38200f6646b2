"""Loading compiled shared libraries and calling their entry points.

Every entry point has the C signature

    void name(void **buffers, const int64_t *dims);

`buffers` holds the address of each argument, result and scratch buffer, in
the order the backend chose; `dims` the run-time sizes. The functions come
from ctypes.CDLL (not PyDLL), so each call releases the GIL: other Python
threads run while native code does, and two threads may call at once.

Note [unloading compiled code]
A process that builds many graphs (a hyperparameter search, a test suite)
must not keep every library it ever loaded: each costs a few mappings and
the pages of its code. A compiled library is unloaded (dlclose) when the last
Python object that can reach its code is gone, so no call ever lands in an
unloaded library:

- The unloader is a finalizer on the ctypes.CDLL, and every function object
  `Library.entry` gives holds a reference to it, so a live entry point keeps
  its code loaded, even in a frame that is calling it while another thread
  drops everything else. (Not ctypes' own `cdll[name]`: a function made that
  way refers to itself, and only a garbage collection would free it and the
  CDLL. `entry` makes one from the symbol's address, which holds nothing, and
  gives it the reference by hand. `ctypes.cast` of a function makes the same
  kind of cycle: see `function_address`.)
- What holds a raw address instead of a function object holds the owner
  explicitly: CallFrame keeps the entry point, a FastRun (native/fast_run.c)
  keeps the Library.
- `Library.load(path)` gives every user of one file the same Library, so the
  Python side counts users as dlopen does; one Library is one dlopen and,
  when it dies, one dlclose. (Two Library objects of one file are two dlopens
  and two dlcloses: the loader unmaps the code after the second.)

At interpreter exit nothing is unloaded: threads and objects that outlive
the finalizers may still hold addresses, and the process is going anyway.
"""

from __future__ import annotations

import _ctypes
import ctypes
import os
import threading
import weakref

from flowc.ir.errors import FlowcError
from flowc.runtime.build import support_library
from flowc.runtime.options import current

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
            if current().num_threads is not None:  # else the C default, the CPUs, found at first use
                library.flowc_set_num_threads(current().num_threads)  # Note [run options] in runtime/options.py
            from .printing import install_print_hook  # Note [printing inside control flow] in ir/ops/checks.py

            install_print_hook(library)
            _support = library
        return _support


def num_threads() -> int:
    """The threads a native parallel loop uses, the calling thread included."""
    return support().flowc_num_threads()


def set_num_threads(count: int) -> None:
    """Set the threads of native parallel loops; count <= 0 restores the default (RunOptions.num_threads,
    which $FLOWC_NUM_THREADS sets, else the CPUs in this process's affinity mask)."""
    support().flowc_set_num_threads(int(count) if count > 0 else current().num_threads or 0)


def apply_num_threads(count: int | None) -> None:
    """`configure`'s thread count: set now if the support library is loaded; else it is set when it loads."""
    with _support_lock:
        library = _support
    if library is not None:
        library.flowc_set_num_threads(count or 0)


# (path, device, inode) -> the Library loaded from that file, while anything uses it.
_loaded: weakref.WeakValueDictionary[tuple[str, int, int], Library] = weakref.WeakValueDictionary()
_loaded_lock = threading.Lock()


class Library:
    """A loaded shared library of compiled code, unloaded when nothing can call into it any more
    (Note [unloading compiled code]). `Library(path)` loads a copy of its own; `Library.load(path)`
    shares one per file."""

    def __init__(self, path: str):
        support()  # first, so the library's references to flowc_rt resolve to the loaded copy
        self.path = path
        try:
            self._library = ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as error:
            raise LoadError(f"cannot load compiled library {path}: {error}") from None
        self._entries: dict[str, ctypes._CFuncPtr] = {}
        unloader = weakref.finalize(self._library, _unload, self._library._handle)
        unloader.atexit = False

    @classmethod
    def load(cls, path: str) -> Library:
        """The Library of the file at `path`: the one already loaded while anything uses it, else a new one."""
        try:
            status = os.stat(path)
        except OSError as error:
            raise LoadError(f"cannot load compiled library {path}: {error}") from None
        key = (path, status.st_dev, status.st_ino)  # a rebuilt file at the same path is another library
        with _loaded_lock:
            library = _loaded.get(key)
            if library is None:
                library = _loaded[key] = cls(path)
            return library

    def data(self, ctype: type, name: str) -> ctypes._CData:
        """The exported variable `name` of the library, seen as `ctype` (no copy); it keeps the library loaded."""
        try:
            value = ctype.in_dll(self._library, name)
        except ValueError:
            raise LoadError(f"{self.path} exports no {name!r}") from None
        value._library = self._library  # in_dll keeps no reference to the CDLL: the view would outlive the pages
        return value

    def entry(self, name: str) -> ctypes._CFuncPtr:
        """The entry point `void name(void **buffers, const int64_t *dims)` as a ctypes function.

        Call it with two addresses (ints) or two ctypes arrays; ints are cheaper.
        """
        function = self._entries.get(name)
        if function is None:
            try:
                address = ctypes.addressof(ctypes.c_char.in_dll(self._library, name))  # dlsym, keeping nothing
            except ValueError:
                raise LoadError(f"{self.path} has no entry point {name!r}") from None
            function = self._library._FuncPtr(address)  # a fresh function object, ours to configure
            function._library = self._library  # what keeps the code loaded (Note [unloading compiled code])
            function.argtypes = ENTRY_ARGTYPES
            function.restype = None
            self._entries[name] = function
        return function

    def __repr__(self) -> str:
        return f"Library({self.path!r})"


class LinkedLibrary(Library):
    """Compiled code that the compiler linked into this process's memory itself, with no file (Note [the quick
    tier linked in process] in codegen/llvm/jit_link.py): a Library whose symbols are known addresses. `owner`
    holds the code's memory, which goes with it: every function and view given out keeps it, as a Library's
    keep their CDLL (Note [unloading compiled code])."""

    def __init__(self, name: str, addresses: dict[str, int], owner: object):
        support()  # as Library's: the code calls flowc_rt
        self.path = name
        self._addresses = addresses
        self._owner = owner
        self._entries = {}

    def data(self, ctype: type, name: str) -> ctypes._CData:
        value = ctype.from_address(self._address(name))
        value._library = self._owner
        return value

    def entry(self, name: str) -> ctypes._CFuncPtr:
        function = self._entries.get(name)
        if function is None:
            function = _LinkedFunction(self._address(name))
            function._library = self._owner
            function.argtypes = ENTRY_ARGTYPES
            function.restype = None
            self._entries[name] = function
        return function

    def _address(self, name: str) -> int:
        address = self._addresses.get(name)
        if not address:
            raise LoadError(f"{self.path} has no symbol {name!r}")
        return address


class _LinkedFunction(_ctypes.CFuncPtr):
    """A C function at a known address, called as a CDLL's are (cdecl, the GIL released)."""

    _flags_ = _ctypes.FUNCFLAG_CDECL
    _restype_ = ctypes.c_int


def _unload(handle: int) -> None:
    """dlclose a handle of ctypes.CDLL, which has no close of its own.

    `_ctypes.dlclose` is the interpreter's own binding of the dlclose that ctypes' dlopen came
    from; libc's through ctypes would first have to find the right library (libdl before glibc
    2.34, libSystem on macOS). A failure (OSError) cannot be reported from a finalizer: the
    library then stays mapped, as every library did before unloading existed."""
    try:
        _ctypes.dlclose(handle)
    except OSError:
        pass


def function_address(function: ctypes._CFuncPtr) -> int:
    """The address of a ctypes function's code. Not `ctypes.cast(function, c_void_p)`: cast stores the
    function in its own `_objects`, a reference cycle that keeps the library loaded until a garbage
    collection (Note [unloading compiled code])."""
    return ctypes.c_void_p.from_address(ctypes.addressof(function)).value or 0


def call(entry: ctypes._CFuncPtr, buffer_addresses: ctypes.Array, dims: ctypes.Array) -> None:
    """Call `entry` with a c_void_p array of buffer addresses and a c_int64 array of dims."""
    entry(ctypes.addressof(buffer_addresses), ctypes.addressof(dims))


class CallFrame:
    """Preallocated arguments for repeated calls of one entry point.

    Fill `buffers[i]` with addresses (`array.ctypes.data`) and `dims[j]` with
    sizes, then call the frame: a call allocates nothing. A frame is not
    thread-safe; give each calling thread its own.
    """

    __slots__ = ("_entry", "_function", "buffers", "dims")

    def __init__(self, entry: ctypes._CFuncPtr, num_buffers: int, num_dims: int):
        self.buffers = (ctypes.c_void_p * max(num_buffers, 1))()
        self.dims = (ctypes.c_int64 * max(num_dims, 1))()
        # The same code with no argtypes: ctypes then passes each array as a
        # pointer to its first element without running a converter, which
        # makes the call about a third cheaper. Safe only because the
        # arguments are always these two arrays.
        self._function = type(entry)(function_address(entry))
        self._function.restype = None
        self._entry = entry  # a function made from an address keeps nothing loaded: the entry keeps its library

    def __call__(self) -> None:
        self._function(self.buffers, self.dims)
