"""TF1's session conveniences: ConfigProto, the default Session, InteractiveSession,
Tensor.eval / Operation.run, set_shape, and the module-level collections.

`Session.as_default()` pushes a Session on a per-thread stack; `Tensor.eval()` and
`Operation.run()` without a `session=` run in its top. An InteractiveSession
stays the default from its creation until it is closed, as in TF1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from flowc.ir.errors import FlowcError, FlowcTypeError, GraphError

from .graph import PLACEHOLDER, get_default_graph
from .sources import user_location
from .tensor_shape import as_shape


@dataclass
class GPUOptions:
    """TF1's GPUOptions; accepted so TF1 configs run. flowc's GPU target allocates as it needs,
    which is what `allow_growth=True` asks for; the fraction is not a limit here."""

    allow_growth: bool = False
    per_process_gpu_memory_fraction: float = 0.0
    visible_device_list: str = ""


@dataclass
class ConfigProto:
    """TF1's session config. `intra_op_parallelism_threads` sets the native thread pool's size
    (0: every CPU this process may use) and `operation_timeout_in_ms` how long a run partitioned
    over MPI ranks waits for a value from another rank (compiler/partitioned_run.py); the other
    fields are accepted and change nothing, as flowc runs one compiled function per run and places
    by `fc.device`."""

    intra_op_parallelism_threads: int = 0
    inter_op_parallelism_threads: int = 0
    allow_soft_placement: bool = False
    log_device_placement: bool = False
    gpu_options: GPUOptions = field(default_factory=GPUOptions)
    device_count: dict[str, int] = field(default_factory=dict)
    use_per_session_threads: bool = False
    operation_timeout_in_ms: int = 0  # how long a partitioned run waits for another rank; 0: 60 s


def with_config(options: Any, config: Any) -> Any:
    """The run options with what a ConfigProto sets: `intra_op_parallelism_threads` (> 0) is the pool's size."""
    if config is None:
        return options
    if not hasattr(config, "intra_op_parallelism_threads"):
        raise FlowcTypeError(f"Session(config=...) takes an fc.ConfigProto, got {config!r}", op="Session",
                             where=user_location())
    threads = int(config.intra_op_parallelism_threads or 0)
    return dataclasses.replace(options, num_threads=threads) if threads > 0 else options


class _Stack(threading.local):
    def __init__(self) -> None:
        self.sessions: list[Any] = []


_default = _Stack()


@contextlib.contextmanager
def as_default(session: Any) -> Iterator[Any]:
    """`session` is the default Session inside (Session.as_default)."""
    _default.sessions.append(session)
    try:
        yield session
    finally:
        _default.sessions.remove(session)


def get_default_session() -> Any:
    """The innermost default Session (`with sess.as_default()`, `with fc.Session()`, an
    InteractiveSession), or None."""
    return _default.sessions[-1] if _default.sessions else None


def push(session: Any) -> None:
    _default.sessions.append(session)


def pop(session: Any) -> None:
    if session in _default.sessions:
        _default.sessions.remove(session)


def run_in_session(element: Any, feed_dict: Any, session: Any, what: str) -> Any:
    """`session.run(element, feed_dict)`, in the default Session when `session` is None."""
    session = session or get_default_session()
    if session is None:
        raise FlowcError(f"{what} needs a Session: pass session=sess, or call it inside `with sess.as_default():` "
                         "or `with fc.Session() as sess:`, or make an fc.InteractiveSession()",
                         op=element.op.display_name if hasattr(element, "value_index") else element.display_name,
                         where=user_location())
    return session.run(element, feed_dict=feed_dict)


def set_shape(tensor: Any, shape: Any) -> None:
    """TF1's Tensor.set_shape: the static shape refined by `shape`; a FlowcTypeError naming the op and the
    user's line where they are not compatible. A placeholder no op uses yet takes the refined shape (and so
    its rank, Note [placeholders of unknown rank] in unknown_rank.py); a tensor whose consumers' types are already
    inferred (or
    another op's output, whose type its type rule fixed) may only be given a shape it already has: refine it
    with fc.ensure_shape, which checks it at run time."""
    op, loc = tensor.op, user_location()
    new = as_shape(shape)
    if not tensor.shape.is_compatible_with(new):
        raise FlowcTypeError(f"set_shape({new.as_list()}) is not compatible with the shape {tensor.shape} it has",
                             op=op.display_name, where=loc)
    merged = tensor.shape.merge_with(new)
    if merged.ndims is None or merged == tensor.shape and merged.ndims == tensor.shape.ndims:
        return
    if op.type != PLACEHOLDER:
        raise GraphError(f"set_shape({new.as_list()}) would refine the shape {tensor.shape} that the op's type rule "
                         f"gave; use t = fc.ensure_shape(t, {new.as_list()}), which checks it at run time",
                         op=op.display_name, where=loc)
    if any(t is tensor for later in op.graph.get_operations()[op.id + 1:] for t in later.inputs):
        raise GraphError(f"set_shape({new.as_list()}) on a placeholder after ops were built on it with the shape "
                         f"{tensor.shape}; call set_shape right after fc.placeholder, or give the placeholder its "
                         "shape there", op=op.display_name, where=loc)
    tensor.type = tensor.type.with_shape(merged.as_list())
    op.attrs["shape"] = tensor.type.shape
    op.attrs.pop("unknown_rank", None)
    op.unknown_rank_outputs = frozenset()


class GraphKeys:
    """TF1's standard collection names."""

    GLOBAL_VARIABLES = "variables"
    VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    LOSSES = "losses"
    SUMMARIES = "summaries"
    UPDATE_OPS = "update_ops"
    TRAIN_OP = "train_op"
    GLOBAL_STEP = "global_step"
    INIT_OP = "init_op"
    SAVERS = "savers"
    QUEUE_RUNNERS = "queue_runners"
    ACTIVATIONS = "activations"
    WEIGHTS = "weights"
    BIASES = "biases"


def add_to_collection(name: str, value: Any) -> None:
    get_default_graph().add_to_collection(name, value)


def add_to_collections(names: Any, value: Any) -> None:
    for name in [names] if isinstance(names, str) else names:
        add_to_collection(name, value)


def get_collection(key: str, scope: str | None = None) -> list[Any]:
    """A copy of the default graph's collection `key`; with `scope`, only the items whose name
    starts with it (TF1 matches the scope as a regular expression at the name's start)."""
    import re

    items = get_default_graph().get_collection(key)
    if scope is None:
        return items
    pattern = re.compile(scope)
    return [item for item in items if pattern.match(getattr(item, "name", "") or "")]


def get_collection_ref(key: str) -> list[Any]:
    """The default graph's collection `key` itself: appending to it adds to the collection."""
    return get_default_graph().collections.setdefault(key, [])
