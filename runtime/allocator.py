"""A caching allocator for output and temporary buffers.

As torch's caching allocator does, a buffer the user drops goes back to a pool
keyed by its size class, and a later request of that class gets it back, so a
loop `for _ in range(100): out = run(...)` reuses one 64 MiB block instead of
page-faulting a fresh one every iteration.

Note [who owns an allocated buffer]
An array from `allocate` has a `_Lease` as the root of its base chain. numpy
collapses a view's base down to the first object that is not an ndarray, so
every view, reshape or slice of the array keeps the lease alive too; the block
returns to the pool only when the last of them is gone. (A finalizer on the
array itself would fire while a view of it still lives.) Raw addresses that
escape (`arr.ctypes.data` kept as an int) are the holder's responsibility, as
with any allocator.

The pool holds at most `limit` bytes (RunOptions.pool_bytes, which
$FLOWC_POOL_BYTES sets, default 1 GiB: Note [run options] in runtime/options.py) of
unused blocks, dropping the least recently returned beyond that. A compiled
function `reserve`s the size classes of its big outputs while it lives; when
it goes (its Session closed), `unreserve` frees the unused blocks of each
class no other live function reserved, so a closed Session's outputs do not
sit in the pool until the limit pushes them out.
"""

from __future__ import annotations

import collections
import math
import threading
import weakref
from collections.abc import Iterable

import numpy as np

from flowc.runtime.options import current

ALIGNMENT = 64  # a cache line, and the widest vector load (AVX-512)


def size_class(nbytes: int) -> int:
    """`nbytes` rounded up to one of four steps per power of two (wasting at most 25%), at least 64."""
    if nbytes <= ALIGNMENT:
        return ALIGNMENT
    step = max(ALIGNMENT, 1 << max(0, (nbytes - 1).bit_length() - 3))
    return -(-nbytes // step) * step


class _Lease:
    """The owner of one handed-out block; see Note [who owns an allocated buffer]."""

    __slots__ = ("__array_interface__", "__weakref__", "block")

    def __init__(self, block: np.ndarray, address: int, shape: tuple[int, ...], dtype: np.dtype):
        self.block = block
        interface = {"data": (address, False), "shape": shape, "typestr": dtype.str, "version": 3}
        if dtype.fields is not None:
            interface["descr"] = dtype.descr
        self.__array_interface__ = interface


class CachingAllocator:
    """A pool of 64-byte aligned blocks by size class; thread-safe."""

    def __init__(self, limit: int | None = None):
        self.limit = current().pool_bytes if limit is None else limit
        self._lock = threading.Lock()
        # size class -> {id(block): (block, address)}, most recently returned last
        self._free: dict[int, dict[int, tuple[np.ndarray, int]]] = {}
        self._order: collections.OrderedDict[int, int] = collections.OrderedDict()  # id(block) -> class, LRU first
        # Finalizers only append here (thread-safe, takes no lock), since one
        # can run inside any allocation, even one made while _lock is held.
        self._returned: collections.deque[tuple[int, np.ndarray, int]] = collections.deque()
        # A live lease's weakref -> (size class, block, address) to pool when it dies.
        self._leases: dict[weakref.ref, tuple[int, np.ndarray, int]] = {}
        self._specs: dict[tuple, tuple[int, tuple[int, ...], np.dtype]] = {}
        self._reserved: collections.Counter[int] = collections.Counter()  # size class -> live users
        self._unreserved: collections.deque[tuple[int, ...]] = collections.deque()  # as _returned
        self.hits = self.misses = self.cached_bytes = 0

    def allocate(self, shape: tuple[int, ...] | int, dtype: np.dtype | type | str) -> np.ndarray:
        """An uninitialized C-contiguous array whose data is 64-byte aligned."""
        try:
            size, shape, dtype = self._specs[shape, dtype]
        except (KeyError, TypeError):  # TypeError: an unhashable shape such as a list
            size, shape, dtype = self._spec(shape, dtype)
        with self._lock:
            if self._returned or self._unreserved:
                self._drain()
            blocks = self._free.get(size)
            if blocks:
                key, (block, address) = blocks.popitem()
                del self._order[key]
                self.cached_bytes -= size
                self.hits += 1
            else:
                block = None
                self.misses += 1
        if block is None:
            block, address = _aligned_block(size)
        lease = _Lease(block, address, shape, dtype)
        self._leases[weakref.ref(lease, self._release)] = (size, block, address)
        return np.asarray(lease)

    def _spec(
        self, shape: tuple[int, ...] | int, dtype: np.dtype | type | str
    ) -> tuple[int, tuple[int, ...], np.dtype]:
        """(size class, shape, dtype) of a request, checked; remembered for the next same request."""
        key = (shape, dtype)
        dtype = np.dtype(dtype)
        if dtype.hasobject:
            raise TypeError(f"cannot allocate a native buffer of dtype {dtype}")
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(map(int, shape))
        if shape and min(shape) < 0:
            raise ValueError(f"negative dimension in shape {shape}")
        spec = (size_class(math.prod(shape) * dtype.itemsize), shape, dtype)
        try:
            if len(self._specs) < 4096:  # a bound, for programs that see endless distinct shapes
                self._specs[key] = spec
        except TypeError:
            pass
        return spec

    def stats(self) -> dict[str, int]:
        """hits, misses, cached_bytes and cached_blocks (unused blocks in the pool), live_blocks."""
        with self._lock:
            self._drain()
            return {
                "hits": self.hits,
                "misses": self.misses,
                "cached_bytes": self.cached_bytes,
                "cached_blocks": len(self._order),
                "live_blocks": len(self._leases),
            }

    def empty_cache(self) -> None:
        """Free every unused block; live buffers are untouched."""
        with self._lock:
            self._drain()
            self._free.clear()
            self._order.clear()
            self.cached_bytes = 0

    def set_limit(self, limit: int) -> None:
        """Keep at most `limit` bytes of unused blocks from now on (the least recently returned go first)."""
        with self._lock:
            self.limit = max(0, limit)
            self._drain()

    def reserve(self, nbytes: int) -> None:
        """Note that a live user (a compiled function) will ask for blocks of `nbytes` again."""
        with self._lock:
            self._reserved[size_class(nbytes)] += 1

    def unreserve(self, size_classes: Iterable[int]) -> None:
        """A user that reserved these size classes is gone: free the unused blocks of each class that
        no other live user reserved. (Blocks still lent out come back to the pool as usual.)

        Called from finalizers, so as `_release`: queued, and done now only if the lock is free."""
        self._unreserved.append(tuple(size_classes))
        if self._lock.acquire(blocking=False):
            try:
                self._drain()
            finally:
                self._lock.release()

    def _release(self, lease_ref: weakref.ref) -> None:
        """The weakref callback of a lease: the buffer and every view of it are gone."""
        self._returned.append(self._leases.pop(lease_ref))
        if self._lock.acquire(blocking=False):  # else the holder, or the next call, drains it
            try:
                self._drain()
            finally:
                self._lock.release()

    def _drain(self) -> None:
        """Pool the returned blocks, free the classes nobody reserves any more, then evict the least
        recently returned beyond the limit."""
        while self._returned:
            size, block, address = self._returned.popleft()
            if size > self.limit:
                continue
            self._free.setdefault(size, {})[id(block)] = (block, address)
            self._order[id(block)] = size
            self.cached_bytes += size
        while self._unreserved:
            for size in self._unreserved.popleft():
                self._reserved[size] -= 1
                if self._reserved[size] > 0:
                    continue
                del self._reserved[size]
                for key in self._free.pop(size, {}):
                    del self._order[key]
                    self.cached_bytes -= size
        while self.cached_bytes > self.limit:
            key, size = self._order.popitem(last=False)
            del self._free[size][key]
            self.cached_bytes -= size


def _aligned_block(nbytes: int) -> tuple[np.ndarray, int]:
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)  # numpy leaves the pages untouched until written
    address = raw.ctypes.data
    return raw, address + (-address % ALIGNMENT)


def arena(nbytes: int) -> tuple[np.ndarray, int]:
    """A 64-byte aligned uint8 scratch array of `nbytes` and its address; not pooled, the caller keeps it."""
    raw, address = _aligned_block(max(int(nbytes), 0))
    offset = address - raw.ctypes.data
    return raw[offset : offset + nbytes], address


_default = CachingAllocator()


def default_allocator() -> CachingAllocator:
    """The process-wide allocator behind `allocate`, `stats` and `empty_cache`."""
    return _default


def allocate(shape: tuple[int, ...] | int, dtype: np.dtype | type | str) -> np.ndarray:
    """An uninitialized, C-contiguous, 64-byte aligned array from the process-wide pool."""
    return _default.allocate(shape, dtype)


def stats() -> dict[str, int]:
    """The process-wide pool's counters; see CachingAllocator.stats."""
    return _default.stats()


def empty_cache() -> None:
    """Free the process-wide pool's unused blocks."""
    _default.empty_cache()
