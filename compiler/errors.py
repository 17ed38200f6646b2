"""flowc.errors: every error flowc raises on purpose is a FlowcError.

The classes live in flowc.ir.errors (the IR raises them too and imports
nothing of flowc); this module is their public home.
"""

from flowc.ir.errors import (
    DeadlineExceededError,
    FeedError,
    FetchError,
    FlowcError,
    FlowcTypeError,
    GraphError,
    IndexOutOfRange,
    ParseError,
    ResourceExhaustedError,
    RuntimeShapeError,
    TargetError,
    UninitializedVariableError,
    UnsupportedOpError,
    VerifyError,
)

__all__ = [
    "DeadlineExceededError", "FeedError", "FetchError", "FlowcError", "FlowcTypeError", "GraphError", "IndexOutOfRange",
    "ParseError", "ResourceExhaustedError", "RuntimeShapeError", "TargetError", "UninitializedVariableError",
    "UnsupportedOpError", "VerifyError",
]
