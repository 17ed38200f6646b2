"""Session: runs parts of a graph, holding the values of its variables.

A run lowers the sub-graph its fetches need into one IR function and compiles
it for the Session's target, once per (fetches, fed tensors, target): the
cache key holds no fed sizes, because lowering uses the placeholders' static
types, whose `None` dims stay symbolic. Later runs with the same key only
check feeds and call the compiled function; on the CPU target a plan's later
runs do that in C (Note [the fast run] in runtime/native/fast_run.c).

Closing a Session (or dropping it) frees what its compiled runs hold: buffers
at once, and each library once nothing else uses it (Note [unloading compiled
code] in runtime/loader.py).

Note [use_locking]
A compiled run reads the variables it needs at its start and writes the ones it
updates at its end (Note [variables as arguments]), so two threads running one
training step on one Session both start from the same values and one update is
lost, as TensorFlow 1's default `use_locking=False` may lose them. An assign
made with `use_locking=True` (the optimizers' too) records it on the graph op;
lowering lists those variables in `Signature.locked`, and every run whose plan
updates one holds that variable's lock (one per Session and variable) from
before it reads anything until it has written everything: such runs of one
variable are serialized and none is lost. Locks are taken in the variables'
creation order, so two plans never wait for each other. Runs that only read a
variable, or update it without use_locking, take no lock and are not blocked.
The fast run takes the same locks (runtime/native/fast_run.c).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from flowc.ir.errors import FetchError, FlowcError, RuntimeShapeError, UninitializedVariableError
from flowc.ir import TensorType
from flowc.ir.types import format_shape
from flowc.runtime import fast_run
from flowc.runtime.gpu import host_array
from flowc.runtime.options import RunOptions
from flowc.runtime.options import configure as configure_runtime

from .debugging import emit_prints, prints_reached
from .summary import holds_summary, run_with_summaries
from .driver import compile_lowered
from .feeds import check_device_feed, check_feed, is_device_array
from .graph import VARIABLE, Graph, Operation, Tensor, get_default_graph
from .lowering import Lowered, Signature, lower, needed_ops
from .target_placement import placed_target
from .unknown_rank import fed_rank, fed_type
from .options import CompileOptions
from . import partitioned_run, tf1_session
from .targets import Executable, target_named


@dataclass
class RunPlan:
    compiled: CompiledRun
    feed_keys: list[Any]  # the user's feed keys, in the compiled function's argument order
    feed_tensors: list[Tensor]
    tensors: list[Tensor]  # fetched tensors, in result order
    rebuild: Callable[[Callable[[Any], Any]], Any]
    single: bool = False  # the fetch is one tensor: its result is the answer
    flat: list[int | None] | None = None  # a flat list/tuple fetch: per element its result (None: an op)
    flat_kind: type = list
    fast_layouts: int = 0  # the layouts the plan's FastRun knows (Note [the fast run]); -1: it has none
    locks: tuple[threading.Lock, ...] = ()  # held across every run, in this order (Note [use_locking])
    prints: list = field(default_factory=list)  # fc.Print ops the run reaches (Note [printing from a run])
    # the feed keys of placeholders of unknown rank: the plan is for the ranks they were fed (RankedPlans)
    rank_keys: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        # Per feed: what an array must be to pass untouched (the fast path of `_checked`).
        self.feed_specs = [FeedSpec.of(t, t.type) for t in self.feed_tensors]
        # Whether arrays already on the device may be fed as they are (Note [state on the device]).
        self.on_device = bool(getattr(self.compiled.executable, "state_on_device", False))


class RankedPlans:
    """The plans of one fetch structure and set of feed keys that feeds placeholders of unknown rank: one
    per combination of ranks fed to them (Note [placeholders of unknown rank] in unknown_rank.py)."""

    def __init__(self, keys: tuple[Any, ...]):
        self.keys = keys
        self.plans: dict[tuple[int, ...], RunPlan] = {}

    def ranks(self, feed_dict: dict[Any, Any]) -> tuple[int, ...]:
        return tuple(fed_rank(feed_dict[k]) for k in self.keys)

    def get(self, feed_dict: dict[Any, Any]) -> RunPlan | None:
        return self.plans.get(self.ranks(feed_dict))

    def put(self, feed_dict: dict[Any, Any], plan: RunPlan) -> None:
        self.plans[self.ranks(feed_dict)] = plan


@dataclass
class CompiledRun:
    lowered: Lowered
    executable: Executable

    @property
    def signature(self) -> Signature:
        return self.lowered.signature


class Session:
    """Runs fetches of a graph with feeds; variables persist across runs.

    >>> import flowc as fc, numpy as np
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     x = fc.placeholder(fc.float32, shape=[None], name="x")
    ...     y = x * 2 + 1
    >>> with fc.Session(graph=g) as sess:
    ...     sess.run(y, {x: np.array([1, 2], np.float32)})
    array([3., 5.], dtype=float32)
    """

    def __init__(self, target: str = "", graph: Graph | None = None, config: Any = None,
                 optimize: bool | None = None, fast_math: bool | None = None):
        """`target` is "cpu", "gpu" or "reference"; left out (or TF1's ""), each run goes to "cpu" unless its
        ops are placed on /gpu:* with `fc.device` (Note [placement chooses the target] in placement.py).
        `config` is an fc.ConfigProto, whose `intra_op_parallelism_threads` sets the native thread pool
        and `allow_soft_placement` lets a /gpu:* run fall back to cpu without a GPU (the other fields are
        accepted).

        `optimize=False` (or FLOWC_OPT=0 in the environment) runs the IR exactly as lowered.

        `fast_math=True` (or FLOWC_FAST_MATH=1) trades IEEE results for speed: the pipeline may
        rewrite x*0 to 0 and x-x to 0, and compiled code may reassociate and contract the graph's
        own float arithmetic and assume no NaN or inf in it (the transcendental approximations
        keep their stated error). Off by default: results are IEEE.
        """
        self._target = target_named(target or "cpu")
        self.target = self._target.name
        # No target given: each run's goes by its ops' fc.device (Note [placement chooses the target]).
        self._placed = not target
        self._soft_placement = bool(getattr(config, "allow_soft_placement", False))
        self.graph = graph or get_default_graph()
        # Every FLOWC_* setting, read once, here (compiler/options.py); every compile of this Session uses it.
        self.options = CompileOptions.from_environment(optimize=optimize, fast_math=fast_math)
        # The run-time ones too (Note [run options] in runtime/options.py): the fast run is this
        # Session's; the pool limit and the thread count are the process's, set from here.
        self.run_options = tf1_session.with_config(RunOptions.from_environment(), config)
        configure_runtime(self.run_options)
        # How long a partitioned run waits for a value from another rank (Note [partitioned runs]).
        timeout_ms = getattr(config, "operation_timeout_in_ms", 0) or 0
        self.transfer_timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self._values: dict[Operation, np.ndarray] = {}  # VariableV2 op -> its value
        self._cache: dict[tuple, CompiledRun] = {}
        self._plans: dict[tuple, RunPlan] = {}
        # Note [the fast run] (runtime/native/fast_run.c): plans that run below Python, and the C
        # function that finds and runs them; None until the first FastRun is made.
        self._fast: dict[tuple, Any] = {}
        self._fast_call: Callable[[dict, Any, Any], Any] | None = None
        # Run counter of random ops (Note [counter-based random numbers]): an array, so the fast
        # run counts in the same place.
        self._step = np.zeros((), np.int64)
        self._locks: dict[Operation, threading.Lock] = {}  # per variable (Note [use_locking])
        self._closed = False

    def __enter__(self) -> Session:
        tf1_session.push(self)  # `with fc.Session() as sess:` makes it the default Session, as in TF1
        return self

    def __exit__(self, *exc: Any) -> None:
        tf1_session.pop(self)
        self.close()

    def as_default(self) -> Any:
        """A context in which this Session is the default one (`Tensor.eval()`, `Operation.run()`)."""
        return tf1_session.as_default(self)

    def close(self) -> None:
        """Free the variables and the compiled runs; a later run raises. A run in flight in another
        thread finishes: what it calls stays loaded until it returns (runtime/loader.py)."""
        self._closed = True
        tf1_session.pop(self)  # an InteractiveSession is the default until it is closed
        self._fast_call = None  # first: no fast run starts any more
        self._fast.clear()  # the FastRuns hold their executables' code loaded
        executables = [compiled.executable for compiled in self._cache.values()]
        self._cache.clear()
        self._plans.clear()
        self._values.clear()
        for executable in executables:
            close = getattr(executable, "close", None)  # the reference target holds nothing to free
            if close is not None:
                close()

    @property
    def optimize(self) -> bool:
        return self.options.optimize

    @property
    def fast_math(self) -> bool:
        return self.options.fast_math

    # -- run -----------------------------------------------------------------

    def run(self, fetches: Any, feed_dict: dict[Any, Any] | None = None) -> Any:
        """Values of `fetches` (a tensor, op, Variable, name, or nested list/tuple/dict of them).

        Fetching an op (or a name without ':N' of an op without outputs) runs it and gives None.

        Threads may share a Session and run at once. A run reads its variables at its start and
        writes its updates at its end, so concurrent runs that update one variable may lose
        updates (each starts from the same value), as under TensorFlow 1's default
        `use_locking=False`. Build the updates with `use_locking=True` (`fc.assign_add(v, 1,
        use_locking=True)`, `fc.train.GradientDescentOptimizer(0.1, use_locking=True)`) and the
        runs that make them hold the variable's lock throughout, one at a time: no update is lost.
        Runs that only read are never blocked (and may see a value being written).
        """
        fast = self._fast_call
        if fast is not None:
            answer = fast(self._fast, fetches, feed_dict)
            if answer is not NotImplemented:
                return answer
        if self._closed:
            raise FlowcError("this Session is closed")
        if holds_summary(fetches):  # Note [summaries are fetches] in summary.py
            return run_with_summaries(self.run, fetches, feed_dict)
        original_feeds, feed_dict = feed_dict, feed_dict or {}
        try:
            key = (_structure_key(fetches), tuple(feed_dict))
            plan = self._plans.get(key)
        except TypeError:  # an unhashable leaf: plan this run afresh
            key, plan = None, None
        ranked = None
        if type(plan) is RankedPlans:  # Note [placeholders of unknown rank] in unknown_rank.py
            ranked, plan = plan, plan.get(feed_dict)
        if plan is None:
            plan = self._plan(fetches, feed_dict)
            if key is not None and plan.rank_keys:
                ranked = ranked or self._plans.setdefault(key, RankedPlans(plan.rank_keys))
                ranked.put(feed_dict, plan)
            elif key is not None:
                self._plans[key] = plan
        args = [_checked(spec, feed_dict[k], plan.on_device) for k, spec in zip(plan.feed_keys, plan.feed_specs)]
        results = self._call_locked(plan, args) if plan.locks else self._call(plan.compiled, args)
        if plan.prints:  # their tensors are fetched after the user's (Note [printing from a run])
            emit_prints(plan.prints, dict(zip(plan.compiled.signature.fetches, results)))
        if plan.fast_layouts >= 0:
            self._refresh_fast(plan, fetches, original_feeds)
        if plan.single:
            return results[0]
        if plan.flat is not None:  # a flat list or tuple of fetches
            values = [None if i is None else results[i] for i in plan.flat]
            return values if plan.flat_kind is list else tuple(values)
        by_tensor = dict(zip(plan.tensors, results))
        return plan.rebuild(lambda element: by_tensor[element] if isinstance(element, Tensor) else None)

    def _plan(self, fetches: Any, feed_dict: dict[Any, Any]) -> RunPlan:
        """Everything about a run that depends only on what is fetched and which keys are fed."""
        leaves: list[Tensor | Operation] = []
        rebuild = _flatten(fetches, lambda leaf: self._fetch_element(leaf, leaves))
        by_tensor = {self._feed_tensor(k): k for k in feed_dict}
        tensors = list(dict.fromkeys(t for t in leaves if isinstance(t, Tensor)))
        targets = list(dict.fromkeys(op for op in leaves if isinstance(op, Operation)))
        prints = prints_reached([t.op for t in tensors if t not in by_tensor] + targets, set(by_tensor))
        printed = [t for t in dict.fromkeys(t for spec in prints for t in spec.tensors) if t not in tensors]
        # Note [placeholders of unknown rank] in unknown_rank.py: typed for the ranks fed to them
        fed_types = {t: fed_type(t, feed_dict[k]) for t, k in by_tensor.items() if t.has_unknown_rank}
        compiled = self._compiled(tensors + printed, targets, list(by_tensor), fed_types)
        feed_tensors = list(compiled.signature.feeds)
        single = not isinstance(fetches, _NESTED) and len(tensors) == 1 and not targets
        plan = RunPlan(compiled, [by_tensor[t] for t in feed_tensors], feed_tensors, tensors, rebuild, single)
        plan.feed_specs = [FeedSpec.of(t, fed_types.get(t, t.type)) for t in feed_tensors]
        plan.rank_keys = tuple(by_tensor[t] for t in feed_tensors if t in fed_types)
        plan.locks = tuple(self._locks.setdefault(var, threading.Lock()) for var in compiled.signature.locked)
        if prints:
            plan.prints, plan.fast_layouts = prints, -1  # the fast run would not print
        if type(fetches) in (list, tuple) and len(leaves) == len(fetches) and \
                not any(type(v) in _NESTED for v in fetches):
            plan.flat = [tensors.index(leaf) if isinstance(leaf, Tensor) else None for leaf in leaves]
            plan.flat_kind = type(fetches)
        return plan

    def _refresh_fast(self, plan: RunPlan, fetches: Any, feed_dict: Any) -> None:
        """After a run on the Python path: give the plan a FastRun that knows every layout its
        executable has, where it can have one (Note [the fast run])."""
        executable = plan.compiled.executable
        count = getattr(executable, "layout_count", None)
        if count == plan.fast_layouts:
            return
        module = fast_run.module() if self.run_options.fast_run else None
        key = module.key(fetches, feed_dict) if module is not None else None
        sig = plan.compiled.signature
        fast = None
        answer = self._answer_kind(plan, fetches)
        if count is not None and key is not None and answer is not None:
            picks = (0,) if plan.single else tuple(-1 if i is None else i for i in plan.flat or ())
            fast = executable.fast_run(tuple(plan.feed_keys), tuple(sig.variables), self._values, len(sig.fetches),
                                       picks, answer, self._step if sig.uses_step else None, plan.locks)
        if fast is None:
            plan.fast_layouts = -1
            return
        plan.fast_layouts = count
        self._fast[key] = fast
        self._fast_call = module.run
        if self._closed:  # close() ran in another thread meanwhile: a closed Session's runs must raise
            self._fast.clear()
            self._fast_call = None

    @staticmethod
    def _answer_kind(plan: RunPlan, fetches: Any) -> int | None:
        """What a FastRun of the plan gives back, or None where only `plan.rebuild` can say."""
        if plan.single:
            return fast_run.ANSWER_ONE
        if plan.flat is not None:
            return fast_run.ANSWER_LIST if plan.flat_kind is list else fast_run.ANSWER_TUPLE
        if not isinstance(fetches, _NESTED) and not plan.tensors:
            return fast_run.ANSWER_NONE  # ops alone: sess.run(train_op)
        return None

    def _compiled(self, tensors: list[Tensor], targets: list[Operation], feeds: list[Tensor],
                  fed_types: dict[Tensor, TensorType] | None = None) -> CompiledRun:
        fed_types = fed_types or {}  # Note [placeholders of unknown rank] in unknown_rank.py
        feeds = sorted(feeds, key=lambda t: (t.op.id, t.value_index))
        target = self._target
        if self._placed:
            fed = set(feeds)
            ops = needed_ops([t.op for t in tensors if t not in fed] + targets, fed)
            target = target_named(placed_target(ops, self._soft_placement))
        ranks = tuple(fed_types[t].rank for t in feeds if t in fed_types)
        key = (tuple(tensors), tuple(targets), tuple(feeds), ranks, target.name)
        compiled = self._cache.get(key)
        if compiled is None:
            lowered = lower(self.graph, tensors, targets, feeds, fed_types)
            # Under mpiexec, a graph placed on tasks runs partitioned (Note [partitioned runs]).
            executable = partitioned_run.partitioned_executable(self.graph, lowered, target, self.options,
                                                                self.transfer_timeout)
            compiled = CompiledRun(lowered, executable or compile_lowered(lowered, target, self.options))
            self._cache[key] = compiled
        return compiled

    def _call_locked(self, plan: RunPlan, args: list[np.ndarray]) -> list[np.ndarray]:
        """`_call` holding the locks of the variables the plan updates with use_locking (Note [use_locking])."""
        taken = 0
        try:
            for lock in plan.locks:
                lock.acquire()
                taken += 1
            return self._call(plan.compiled, args)
        finally:
            for lock in reversed(plan.locks[:taken]):
                lock.release()

    def _call(self, compiled: CompiledRun, args: list[np.ndarray]) -> list[np.ndarray]:
        if isinstance(compiled.executable, partitioned_run.PartitionedExecutable):
            return compiled.executable.run(self, args)  # this rank's part; it reads and writes the variables
        sig = compiled.signature
        on_device = getattr(compiled.executable, "state_on_device", False)
        if sig.variables:
            args = args + [self._state_of(v, on_device) for v in sig.variables]
        if sig.uses_step:
            args.append(self._step.copy())
            self._step += 1  # in place
        if on_device:
            return self._call_on_device(compiled, args)
        outputs = compiled.executable(args)
        fetched, updates = outputs[: len(sig.fetches)], outputs[len(sig.fetches):]
        for var, value in zip(sig.updates, updates):
            current = self._values.get(var)
            if value is current:
                continue  # written in place into the variable's own buffer (Note [donated arguments])
            self._store(var, _owned(value, [a for a in args if a is not current]))
        if getattr(compiled.executable, "fresh_outputs", False):
            return fetched  # every fetched buffer was allocated for this run alone
        # What the user gets must not alias the Session's variables, their feeds, or each other.
        return [_owned(value, args + updates + fetched[:i]) for i, value in enumerate(fetched)]

    def _call_on_device(self, compiled: CompiledRun, args: list[Any]) -> list[np.ndarray]:
        """Note [state on the device] (runtime/gpu.py): the updates stay device tensors, kept as the
        variables' values; only the fetches come back to the host. Each is a fresh kernel result."""
        sig = compiled.signature
        outputs = compiled.executable.run_on_device(args)
        fetched, updates = outputs[: len(sig.fetches)], outputs[len(sig.fetches):]
        for var, value in zip(sig.updates, updates):
            self._store(var, value)
        return [host_array(value) for value in fetched]

    # -- variables -------------------------------------------------------------

    def _value_of(self, var: Operation) -> np.ndarray:
        """The variable's value as a numpy array (one a gpu run left on the device is copied back)."""
        return host_array(self._state_of(var, on_device=False))

    def _state_of(self, var: Operation, on_device: bool) -> Any:
        """The variable's value as the run takes it: as stored when the executable keeps state on the
        device (a numpy array or a device tensor), else as a numpy array."""
        try:
            value = self._values[var]
            return value if on_device else host_array(value)
        except KeyError:
            raise UninitializedVariableError(
                "read before it was initialized; run fc.global_variables_initializer() (or its initializer) first",
                op=f"Variable '{var.name}'", where=var.loc) from None

    def _store(self, var: Operation, value: np.ndarray) -> None:
        shape = var.variable.type.shape
        if value.shape != shape:
            raise RuntimeShapeError(f"assigned a value of shape {format_shape(value.shape)} to a variable of "
                                    f"shape {format_shape(shape)}", op=f"Variable '{var.name}'", where=var.loc)
        self._values[var] = value

    # -- names -----------------------------------------------------------------

    def _fetch_element(self, leaf: Any, leaves: list[Tensor | Operation]) -> Tensor | Operation:
        element = self.graph.as_graph_element(leaf)
        if isinstance(leaf, str) and isinstance(element, Operation):
            if element.type == VARIABLE:
                element = element.variable._graph_element()
            elif element.outputs:
                element = element.outputs[0]  # a bare name fetches the op's first output
        if isinstance(element, Operation) and element.type == VARIABLE:
            element = element.variable._graph_element()
        leaves.append(element)
        return element

    def _feed_tensor(self, key: Any) -> Tensor:
        element = self.graph.as_graph_element(key)
        if isinstance(element, Operation):
            if len(element.outputs) != 1:
                raise FetchError(f"cannot feed op {element.name!r}: it has {len(element.outputs)} outputs; "
                                 "name a tensor like 'x:0'")
            element = element.outputs[0]
        return element


@dataclass
class FeedSpec:
    tensor: Tensor
    type: TensorType  # the tensor's type, or the one a run gives a placeholder of unknown rank (unknown_rank.py)
    dtype: np.dtype
    rank: int
    known: tuple[tuple[int, int], ...]  # (axis, dim) of each dim known at build time

    @staticmethod
    def of(tensor: Tensor, t: TensorType) -> FeedSpec:
        return FeedSpec(tensor, t, t.dtype.np, t.rank, tuple((a, d) for a, d in enumerate(t.shape) if d is not None))


def _checked(spec: FeedSpec, value: Any, on_device: bool = False) -> np.ndarray:
    """The fed value as the compiled code needs it; an array that already fits passes untouched
    (check_feed handles, and explains, everything else). A run whose executable keeps state on the
    device also takes an array already there (a torch tensor, anything with __dlpack__) as it is."""
    if type(value) is np.ndarray and (value.dtype is spec.dtype or value.dtype == spec.dtype):
        shape = value.shape
        flags = value.flags  # a new flags object per access: read it once
        if flags.c_contiguous and flags.aligned and len(shape) == spec.rank:
            for axis, dim in spec.known:  # a loop, not all(): no generator per call
                if shape[axis] != dim:
                    break
            else:
                return value
    if on_device and is_device_array(value):
        return check_device_feed(spec.tensor, value, spec.type)
    return check_feed(spec.tensor, value, spec.type)


_NESTED = (list, tuple, dict)


def _structure_key(fetches: Any) -> Any:
    """A hashable stand-in for a fetch structure (raises TypeError for an unhashable leaf)."""
    kind = type(fetches)
    if (kind is list or kind is tuple) and not any(type(v) in _NESTED for v in fetches):
        return (kind, tuple(fetches))  # the usual flat list: hashed when it is looked up
    if isinstance(fetches, dict):
        return (dict, tuple((k, _structure_key(v)) for k, v in fetches.items()))
    if isinstance(fetches, (list, tuple)):
        return (type(fetches), tuple(_structure_key(v) for v in fetches))
    hash(fetches)
    return fetches


def _owned(value: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """`value`, copied if it is read-only or may share memory with any of `others`."""
    if not value.flags.writeable or any(np.may_share_memory(value, other) for other in others):
        return value.copy()
    return value


def _flatten(structure: Any, leaf: Callable[[Any], Any]) -> Callable[[Callable[[Any], Any]], Any]:
    """Visit the leaves of nested lists/tuples/dicts; return a function that rebuilds the structure."""
    if isinstance(structure, dict):
        parts = {k: _flatten(v, leaf) for k, v in structure.items()}
        return lambda value: type(structure)((k, p(value)) for k, p in parts.items())
    if isinstance(structure, (list, tuple)):
        items = [_flatten(v, leaf) for v in structure]
        if hasattr(structure, "_fields"):  # namedtuple
            return lambda value: type(structure)(*(p(value) for p in items))
        return lambda value: type(structure)(p(value) for p in items)
    element = leaf(structure)
    return lambda value: value(element)


class InteractiveSession(Session):
    """A Session that makes itself the default one when it is made, until it is closed, so
    `t.eval()` and `op.run()` need no `with` block (TF1's InteractiveSession, for shells and notebooks)."""

    def __init__(self, target: str = "", graph: Graph | None = None, config: Any = None, **options: Any):
        super().__init__(target, graph, config, **options)
        tf1_session.push(self)
