"""Session.run's repeated call in C: the `_fast_run` extension (Note [the fast run] in native/fast_run.c).

It is built with the system C compiler against this Python's and numpy's headers, once per
machine, Python and numpy, into the disk cache, as the support library is. Where it cannot be
built (no Python headers, say), `module()` is None and every run takes the Python path, which
computes the same results. FLOWC_FAST_RUN=0 turns it off for a Session: the Session asks its
RunOptions (Note [run options] in runtime/options.py) before it asks for the module.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import threading
from types import ModuleType

from flowc.runtime.build import NATIVE_DIR, NativeBuildError, _run, find_c_compiler
from flowc.runtime.cache import cache_key, cached_library

SOURCE = os.path.join(NATIVE_DIR, "fast_run.c")
FLAGS = ("-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-Wall", "-Werror=implicit-function-declaration")
_UNDEFINED = ("-undefined", "dynamic_lookup") if sys.platform == "darwin" else ()  # symbols from the interpreter

# What a FastRun gives back: one result itself, a list or tuple of results and Nones, or None.
ANSWER_ONE, ANSWER_LIST, ANSWER_TUPLE, ANSWER_NONE = range(4)

_lock = threading.Lock()
# Loaded once per process, from whichever cache folder was current then: a second copy from another
# folder would be another FastRun type, which the first copy's `run` does not recognise.
_loaded: list[ModuleType | None] = []
why_not: str | None = None  # why the extension could not be built or loaded, when it could not


def module() -> ModuleType | None:
    """The `_fast_run` extension, built on first use; None where it cannot be built."""
    global why_not
    with _lock:
        if not _loaded:
            try:
                _loaded.append(_load())
            except (NativeBuildError, ImportError, OSError) as error:
                why_not = f"the fast run could not be built or loaded: {error}"
                _loaded.append(None)
        return _loaded[0]


def _load() -> ModuleType:
    import numpy

    with open(SOURCE) as source:  # the interpreter's own suffix for extensions is sysconfig's EXT_SUFFIX
        key = cache_key("_fast_run", source.read(), *FLAGS, sys.version, numpy.__version__,
                        importlib.machinery.EXTENSION_SUFFIXES[0])[:32]

    def build(out_path: str) -> None:
        import sysconfig  # late: only a build needs the headers, and the import costs a first call 1 ms

        includes = (sysconfig.get_paths()["include"], numpy.get_include())
        if not os.path.exists(os.path.join(includes[0], "Python.h")):
            raise NativeBuildError(f"no Python.h in {includes[0]} (install the Python development headers)")
        command = [*find_c_compiler(), *FLAGS, *_UNDEFINED, *(f"-I{d}" for d in includes), "-o", out_path, SOURCE]
        _run(command, "building the fast run extension _fast_run")

    path, _ = cached_library(key, build, prefix="_fast_run-")
    loader = importlib.machinery.ExtensionFileLoader("_fast_run", path)
    spec = importlib.util.spec_from_file_location("_fast_run", path, loader=loader)
    assert spec is not None
    extension = importlib.util.module_from_spec(spec)
    loader.exec_module(extension)
    return extension
