"""Which line of the user's code created an op: named in every error about it."""

from __future__ import annotations

import os
import sys

# Frames from these folders are flowc's own; the first frame outside them is the user's.
_FLOWC_ROOTS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), folder) + os.sep
    for folder in ("compiler", "ir", "passes", "codegen", "runtime")
)
_SKIP = ("<frozen", os.path.dirname(os.__file__))  # the standard library (contextlib, functools)


def user_location() -> str | None:
    """'file.py:LINE' of the innermost caller that is not flowc or the standard library."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_FLOWC_ROOTS) and not filename.startswith(_SKIP):
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return None
