"""flowc.runtime: build, cache and load native code; own its buffers.

Imports nothing from flowc.passes or flowc.codegen: it loads what they built.
"""

from flowc.runtime.allocator import CachingAllocator, allocate, arena, default_allocator, empty_cache, stats
from flowc.runtime.build import (
    CompilerNotFoundError,
    NativeBuildError,
    compiler_version,
    find_c_compiler,
    include_dir,
    link_shared,
    support_library,
)
from flowc.runtime.cache import CacheError, cache_dir, cache_key, cached_library
from flowc.runtime.loader import CallFrame, Library, LoadError, call, num_threads, set_num_threads, support
from flowc.runtime.options import RunOptions, configure

__all__ = [
    "CacheError",
    "CachingAllocator",
    "CallFrame",
    "CompilerNotFoundError",
    "Library",
    "LoadError",
    "NativeBuildError",
    "RunOptions",
    "allocate",
    "arena",
    "cache_dir",
    "cache_key",
    "cached_library",
    "call",
    "compiler_version",
    "configure",
    "default_allocator",
    "empty_cache",
    "find_c_compiler",
    "include_dir",
    "link_shared",
    "num_threads",
    "set_num_threads",
    "stats",
    "support",
    "support_library",
]
