"""A persistent on-disk cache of compiled shared libraries.

An entry is `<prefix><key>.so` plus a sidecar `<prefix><key>.sha256` holding
"<sha256 of the library> <size in bytes>". Both are written atomically: built
under a temporary name in the cache directory, then os.replace'd into place, the
library first and the sidecar second. So a reader sees a complete library or
none, and an entry counts only once its sidecar vouches for it. A missing or
mismatching sidecar (a crash between the two writes, a truncated or corrupted
file) makes the entry be rebuilt, never loaded.

Nothing is fsynced: every process hashes an entry before its first use of it, so
a power loss that leaves either file short, empty or stale is caught by that
check and the entry rebuilt. An fsync would cost a cold compile 3-4 ms per file
on this disk (three per entry, and a split module has an entry per kernel).

Concurrent processes may build the same key at once; each builds under its own
temporary name and the last os.replace wins. A process that has the library
loaded keeps its mapping of the old file, since os.replace never writes into it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable

from flowc.ir.errors import FlowcError
from flowc.runtime.options import current

# key -> (path, (size, mtime_ns, inode)) of an entry this process has checked,
# so a second lookup costs one stat() instead of hashing the file again.
_verified: dict[str, tuple[str, tuple[int, int, int]]] = {}
_lock = threading.Lock()


class CacheError(FlowcError):
    """A cache folder that cannot be made, or written when something must be built."""


def cache_dir(folder: str | None = None) -> str:
    """`folder` (a compile's CompileOptions.cache_dir, which FLOWC_CACHE_DIR sets), else the
    process's RunOptions.cache_dir (the same variable, Note [run options] in runtime/options.py),
    else $XDG_CACHE_HOME/flowc, else ~/.cache/flowc (created)."""
    path = folder or current().cache_dir or _default_folder()
    if os.path.exists(path) and not os.path.isdir(path):
        raise CacheError(f"{_named(path)} is a file, not a folder: point FLOWC_CACHE_DIR at a folder "
                         "(flowc creates it if it is missing)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise CacheError(f"cannot create {_named(path)}: {error.strerror or error}") from None
    return path


def _default_folder() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flowc")


def _named(path: str) -> str:
    """How errors name the cache folder: with the variable that chose it, or as the default."""
    if path != _default_folder():
        return f"the cache folder FLOWC_CACHE_DIR={path!r}"
    return f"the default cache folder {path!r} (set FLOWC_CACHE_DIR to use another)"


def cache_key(*parts: str) -> str:
    """The sha256 hex digest of `parts`; each is length-prefixed, so ("ab", "c") != ("a", "bc")."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def cached_library(key: str, build: Callable[[str], None], *, prefix: str = "",
                   folder: str | None = None, suffix: str = ".so") -> tuple[str, bool]:
    """The path of the library cached under `key`, building it first if needed (any file: the
    CPU target keeps each kernel's object here too, with `suffix` ".o").

    `build(path)` must write the library to `path` (a temporary file in the
    cache directory). Returns (path, was_cached); was_cached is False when this
    call ran `build`.
    """
    if not key or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"cache key must be a lowercase hex string, got {key!r}")
    directory = cache_dir(folder)
    path = os.path.join(directory, f"{prefix}{key}{suffix}")
    with _lock:
        remembered = _verified.get(key)
    if remembered is not None and remembered[0] == path and _stat_signature(path) == remembered[1]:
        return path, True
    if _entry_is_valid(path):
        _remember(key, path)
        return path, True
    _build_entry(path, build)
    _remember(key, path)
    return path, False


def cached_path(key: str, *, prefix: str = "", suffix: str = ".so", folder: str | None = None) -> str | None:
    """The path of the entry cached under `key` if there is a valid one (cached_library without building)."""
    path = os.path.join(cache_dir(folder), f"{prefix}{key}{suffix}")
    with _lock:
        remembered = _verified.get(key)
    if remembered is not None and remembered[0] == path and _stat_signature(path) == remembered[1]:
        return path
    if _entry_is_valid(path):
        _remember(key, path)
        return path
    return None


def forget() -> None:
    """Drop this process's memory of verified entries; the next lookups hash again."""
    with _lock:
        _verified.clear()


def _stat_signature(path: str) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def _remember(key: str, path: str) -> None:
    signature = _stat_signature(path)
    if signature is not None:
        with _lock:
            _verified[key] = (path, signature)


def _sidecar(path: str) -> str:
    return os.path.splitext(path)[0] + ".sha256"


def _file_checksum(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _entry_is_valid(path: str) -> bool:
    try:
        with open(_sidecar(path)) as file:
            want_digest, want_size = file.read().split()
        if os.path.getsize(path) != int(want_size):
            return False
        return _file_checksum(path)[0] == want_digest
    except (OSError, ValueError):
        return False


def _build_entry(path: str, build: Callable[[str], None]) -> None:
    directory, name = os.path.split(path)
    temporary = _temporary_path(directory, name)
    try:
        build(temporary)
        os.chmod(temporary, 0o644)  # mkstemp made it 0600; others may share the cache
        digest, size = _file_checksum(temporary)
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise
    _write_atomically(_sidecar(path), f"{digest} {size}\n".encode())


def _temporary_path(directory: str, name: str) -> str:
    import tempfile  # late: only a build writes, and a cache hit should not pay for the import

    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as error:  # a read-only cache still serves what it holds; only a build needs to write
        raise CacheError(f"cannot write to {_named(directory)}: {error.strerror or error}") from None
    os.close(handle)
    return temporary


def _write_atomically(path: str, data: bytes) -> None:
    directory, name = os.path.split(path)
    temporary = _temporary_path(directory, name)
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
