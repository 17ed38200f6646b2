"""RunOptions: the run-time settings (pool bytes, fast run, threads, cache folder), read once.

Note [run options]
The runtime reads no environment variable while it runs. Its `FLOWC_*` settings are read by
`RunOptions.from_environment`, at two moments only: once when flowc.runtime is imported (what
code that runs without a Session gets) and once when a Session starts, which then `configure`s
the process with them (compiler/session.py). Changing a variable later changes nothing until
the next Session starts.

The caching allocator and the native thread pool are the process's, not a Session's: the latest
`configure` sets them for every Session. The fast run is a Session's own (Session.run_options).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_POOL_BYTES = 1 << 30


@dataclass(frozen=True)
class RunOptions:
    pool_bytes: int = DEFAULT_POOL_BYTES  # FLOWC_POOL_BYTES: unused bytes the caching allocator keeps
    fast_run: bool = True  # FLOWC_FAST_RUN=0: every Session.run takes the Python path
    num_threads: int | None = None  # FLOWC_NUM_THREADS: native pool threads (None: the CPUs this process may use)
    cache_dir: str | None = None  # FLOWC_CACHE_DIR: the cache folder (None: the default one, runtime/cache.py)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> RunOptions:
        """The settings the `FLOWC_*` variables ask for; a malformed number is a ValueError naming its variable."""
        return cls(
            pool_bytes=_bytes(environ.get("FLOWC_POOL_BYTES", "").strip()),
            fast_run=environ.get("FLOWC_FAST_RUN", "1") != "0",
            num_threads=_threads(environ.get("FLOWC_NUM_THREADS", "").strip()),
            cache_dir=environ.get("FLOWC_CACHE_DIR") or None,
        )


def _bytes(text: str) -> int:
    if not text:
        return DEFAULT_POOL_BYTES
    try:
        return max(0, int(text))
    except ValueError:
        raise ValueError(f"FLOWC_POOL_BYTES must be a number of bytes, got {text!r}") from None


def _threads(text: str) -> int | None:
    """A positive count; anything else is the default, as the C runtime has always taken it."""
    try:
        count = int(text)
    except ValueError:
        return None
    return count if count > 0 else None


_lock = threading.Lock()
_current = RunOptions.from_environment()  # Note [run options]: what runs without a Session uses


def current() -> RunOptions:
    """The process's run options: the latest `configure`d, else those read when flowc.runtime was imported."""
    return _current


def configure(options: RunOptions) -> None:
    """Make `options` the process's (Note [run options]): the caching allocator keeps at most
    `pool_bytes` from now on, and the native pool runs `num_threads` (at once when the support
    library is loaded, else when it loads)."""
    global _current
    from flowc.runtime import allocator, loader  # both import this module

    with _lock:
        previous, _current = _current, options
    allocator.default_allocator().set_limit(options.pool_bytes)
    if options.num_threads != previous.num_threads:
        loader.apply_num_threads(options.num_threads)
