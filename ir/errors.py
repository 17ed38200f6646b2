"""The FlowcError hierarchy.

It lives in `ir` because `ir` imports nothing of flowc and must raise these
too; `flowc.errors` re-exports the same classes for users.

Every error can carry the op it is about (`op`: a display name such as
"matmul 'dense/MatMul'") and the user's source line that created the op
(`where`: "model.py:12"), so a message reads
    matmul 'dense/MatMul' (created at model.py:12): inner dims differ: x is f32[4,3], y is f32[5,2]
"""

from __future__ import annotations


class FlowcError(Exception):
    """Base of every error flowc raises on purpose."""

    def __init__(self, message: str, *, op: str | None = None, where: str | None = None):
        self.detail = message
        self.op = op
        self.where = where
        super().__init__(self._format())

    def _format(self) -> str:
        prefix = self.op or ""
        if self.where:
            prefix = f"{prefix} (created at {self.where})" if prefix else f"at {self.where}"
        return f"{prefix}: {self.detail}" if prefix else self.detail

    def located(self, *, op: str | None = None, where: str | None = None) -> FlowcError:
        """The same error with the op and source line filled in where missing."""
        self.op = self.op or op
        self.where = self.where or where
        self.args = (self._format(),)
        return self


class FlowcTypeError(FlowcError, TypeError):
    """Operands whose dtypes or shapes an op's type rule rejects."""


class VerifyError(FlowcError):
    """Malformed IR: types, dominance, region signatures."""

    def __init__(self, op: object, message: str):
        name = getattr(op, "name", None) or str(op)
        super().__init__(message, op=f"'{name}'", where=getattr(op, "loc", None))


class ParseError(FlowcError):
    """IR text that does not parse; the message names line and column."""


class FeedError(FlowcError, ValueError):
    """A feed that is missing or does not match its placeholder's dtype or shape."""


class FetchError(FlowcError, ValueError):
    """A fetch that names nothing in the graph, or cannot be fetched."""


class GraphError(FlowcError, ValueError):
    """A graph that cannot be built or lowered (cycles, foreign tensors, bad names)."""


class UninitializedVariableError(FlowcError):
    """A run that reads a Variable whose value was never set."""


class RuntimeShapeError(FlowcError, ValueError):
    """Shapes that only disagree at run time (a `None` dim fed inconsistently)."""


class TargetError(FlowcError, ValueError):
    """An unknown or unavailable compilation target."""


class UnsupportedOpError(TargetError):
    """An op that the chosen target does not compile (the message names the op, the target and why)."""


class IndexOutOfRange(FlowcError, IndexError):
    """An index (gather, integer slice) outside the valid range of its axis."""


class ResourceExhaustedError(FlowcError, MemoryError):
    """A run that needs more memory than the machine has (TensorFlow's name for it)."""


class DeadlineExceededError(FlowcError, TimeoutError):
    """A value another MPI rank should have sent (or received) did not come within the Session's
    timeout (`operation_timeout_in_ms`); the message names the edge (TensorFlow's name for it)."""


def describe_bytes(size: int) -> str:
    """'3.64 TiB (4000000000000 bytes)': a size as ResourceExhaustedError messages give it."""
    if size < 1024:
        return f"{size} bytes"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        scaled /= 1024
        if scaled < 1024:
            break
    return f"{scaled:.2f} {unit} ({size} bytes)"
