"""@fc.jit: a Python function of arrays, traced into a graph once per signature, compiled, cached.

>>> import flowc as fc, numpy as np
>>> @fc.jit
... def scale(x, y):
...     return {"sum": x + y, "scaled": 2.0 * x}
>>> out = scale(np.ones(3, np.float32), np.arange(3, dtype=np.float32))
>>> out["sum"], out["scaled"]
(array([1., 2., 3.], dtype=float32), array([2., 2., 2.], dtype=float32))

A call binds its arguments to the function's parameters, computes their
signature (Note [jit signatures] in jit_signature.py) and looks the compiled
code up; a new signature is traced (`trace`: a placeholder per leaf, the
function called on Tensors, Python control flow unrolled, fc.cond and
fc.while_loop kept as loops), lowered and compiled through the same Target
interface as Session (driver.compile_lowered), and kept in memory per
function and signature; the CPU target's disk cache keys on the IR text, so
another process that traces the same code loads the library.

Note [the jitted call]
A call after the first must cost no more than a Session.run through the fast
run. Where a function has no static or donated arguments and a call passes
only numpy arrays, positionally, the arguments are exactly the compiled
code's feeds, in order, and the FastRun of the latest signature
(runtime/native/fast_run.c) is called with them: `fast(*args)` checks each
is an exact ndarray of the dtype, rank, shape, layout and alignment that
signature has, and runs the code in one C call. Anything it does not
recognise (a Python number, a nested argument, a new shape, a keyword)
returns NotImplemented, and the call takes the keyed path: bind, flatten,
convert, look up, then the FastRun of that signature. No tracing, no
locking, no Python per leaf on the hot path.

Note [jit and state]
A jitted function is pure: it reads its arguments and returns values. An
fc.Variable made or read inside is an error (its value would live nowhere);
pass the value in and return the new one, with donate_argnums to have it
written into the old buffer. numpy arrays the function closes over, the
defaults of parameters not passed, and (for a method) the instance's
attributes are read once, when a signature is traced: they are constants of
that compiled code, and changing them later changes nothing until a new
signature is traced. Random ops draw from a counter the jitted function
keeps, one step per call, as a Session's run counter.

Note [donated arguments of a jitted call]
`donate_argnums` offers the buffers of those arguments' array leaves to
results of the same dtype and shape (each leaf to the first such result not
yet offered one). The memory plan takes an offer only where the result's
kernel can write in place (Note [donated arguments] in passes/memory.py);
then the result is the argument itself, the same ndarray object, holding the
new value: `out is x` and the old contents are gone. numpy cannot invalidate
an array as jax does, so this is how a donation is observed. A donated array
that shares memory with another argument, is read-only or had to be converted
(another dtype, not contiguous) is copied first: the caller's array is then
left as it was. Results never share memory with arguments that were not
donated.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import weakref
from dataclasses import dataclass, field, fields
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from flowc.ir.errors import FlowcError, FlowcTypeError, GraphError
from flowc.ir.types import as_dtype
from flowc.runtime import fast_run

from . import nest
from .array_ops import placeholder
from .driver import compile_lowered
from .graph import Graph, Tensor
from .jit_signature import (LEAF, CallSignature, Parameter, TracerFound, as_leaf_array, closest, flatten_argument)
from .lowering import Signature, lower
from .math_ops import constant
from .options import CompileOptions
from .sources import user_location
from .targets import Executable, target_named


class Trace(NamedTuple):
    """A function traced into a graph: `feeds` are its placeholders (one per array leaf of the
    arguments, in flatten order), `fetches` the tensors it returns (one per tensor leaf of the
    result, duplicates kept), `structure` its return value with those Tensors (and Nones) as leaves."""

    graph: Graph
    feeds: list[Tensor]
    fetches: list[Tensor]
    structure: Any


def trace(fn: Callable[..., Any], specs: Sequence[Any], kwargs: dict[str, Any] | None = None, *,
          static_argnames: Sequence[str] = ()) -> Trace:
    """`fn(*specs, **kwargs)` traced into a new Graph.

    Each leaf (nest.flatten) of the arguments that has a `shape` and a `dtype` (a numpy array, an
    fc.TensorSpec, a Tensor) becomes a placeholder of that dtype and shape, None dims staying
    unknown; Python numbers become 0-d placeholders (bool, int32, float32); every other leaf is
    passed as it is, and so is every argument named in `static_argnames`. The placeholders are named
    after the parameters ("params/W" for params["W"]).
    The result must be a Tensor, an array or a number, or tuples, lists, dicts and namedtuples of
    them (None leaves kept): anything else is a FlowcTypeError naming where it is.

    >>> import flowc as fc
    >>> t = trace(lambda x, y: (x * y, x), [fc.TensorSpec([None, 3], fc.float32), 2.0])
    >>> [f.name for f in t.feeds], [f.name for f in t.fetches], t.structure[1] is t.feeds[0]
    (['x:0', 'y:0'], ['mul:0', 'x:0'], True)
    """
    kwargs = dict(kwargs or {})
    names = _parameter_names(fn, len(specs), kwargs)
    graph = Graph()
    feeds: list[Tensor] = []
    with graph.as_default():
        static = set(static_argnames)
        args = [spec if names[i] in static else _placeholders(spec, names[i], feeds) for i, spec in enumerate(specs)]
        kwargs = {key: value if key in static else _placeholders(value, key, feeds) for key, value in kwargs.items()}
        result = fn(*args, **kwargs)
        fetches, structure = _results(result, graph, fn)
    return Trace(graph, feeds, fetches, structure)


@dataclass(frozen=True)
class TensorSpec:
    """The dtype and shape of an argument, for tracing without data (`trace`, fc.export): None dims
    are known only at run time. Not a tuple, so nest takes it for a leaf."""

    shape: tuple[int | None, ...]
    dtype: Any = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(None if d is None or d == -1 else int(d) for d in self.shape))
        object.__setattr__(self, "dtype", as_dtype(self.dtype))


def _parameter_names(fn: Callable[..., Any], count: int, kwargs: dict[str, Any]) -> list[str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    star = next((p.name for p in parameters if p.kind == p.VAR_POSITIONAL), "arg")
    return [names[i] if i < len(names) else f"{star}{i}" for i in range(count)]


def _placeholders(value: Any, name: str, feeds: list[Tensor]) -> Any:
    """`value` with a placeholder for each leaf that has a dtype and shape (or is a Python number)."""
    leaves = nest.flatten_with_paths(value)
    replaced = []
    for path, leaf in leaves:
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype") or type(leaf) in (bool, int, float):
            array_like = np.asarray(leaf) if type(leaf) in (bool, int, float) else leaf
            dtype = {bool: "bool", int: "int32", float: "float32"}.get(type(leaf), getattr(array_like, "dtype", None))
            shape = [None if d is None or d == -1 else int(d) for d in array_like.shape]
            leaf = placeholder(as_dtype(dtype), shape, name=_op_name(name + path))
            feeds.append(leaf)
        replaced.append(leaf)
    return nest.pack_sequence_as(value, replaced)


def _op_name(path: str) -> str:
    """An op name from an argument's path: params['W'][0] -> params/W/0."""
    parts = [p.strip("'\"") for p in path.replace("]", "").replace(".", "[").split("[") if p]
    name = "/".join("".join(c if c.isalnum() or c in "_.-" else "_" for c in part) for part in parts)
    return name if name and name[0].isalnum() else f"arg{name}"


def _results(result: Any, graph: Graph, fn: Callable[..., Any]) -> tuple[list[Tensor], Any]:
    """The tensors the traced function returns, and its result with each leaf a Tensor (or None)."""
    leaves = []
    fetches = []
    for path, leaf in nest.flatten_with_paths(result, "result"):
        if isinstance(leaf, Tensor):
            if leaf.graph is not graph:
                raise GraphError(f"the function returns {leaf.name!r} at {path}, a tensor of another graph: a jitted "
                                 "function returns what it computes from its arguments", where=definition_line(fn))
        elif leaf is None:
            leaves.append(None)
            continue
        elif isinstance(leaf, (np.ndarray, np.generic, bool, int, float)):
            leaf = constant(leaf)
        else:
            raise FlowcTypeError(f"the function returns a {type(leaf).__name__} at {path}; a jitted function returns "
                                 "Tensors, arrays and numbers, and tuples, lists, dicts and namedtuples of them",
                                 where=definition_line(fn))
        leaves.append(leaf)
        fetches.append(leaf)
    return fetches, nest.pack_sequence_as(result, leaves)


def definition_line(fn: Callable[..., Any]) -> str | None:
    """'file.py:LINE' where `fn` is defined (partials and wrappers seen through)."""
    import os

    while isinstance(fn, functools.partial) or hasattr(fn, "__wrapped__"):
        fn = fn.func if isinstance(fn, functools.partial) else fn.__wrapped__
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code is not None else None


# -- the jitted function ----------------------------------------------------------------------


@dataclass(frozen=True)
class DonatingSignature(Signature):
    """A lowered signature whose donations are the caller's offer (Note [donated arguments of a jitted call])."""

    offered: tuple[tuple[int, int], ...] = ()

    def donations(self) -> dict[int, int]:
        return dict(self.offered)


@dataclass
class CompiledCall:
    """One signature's compiled code and how to call it and shape its answer."""

    signature: CallSignature
    executable: Executable
    picks: tuple[int, ...]  # per leaf of the result: which compiled result it is (-1: None)
    answer: int  # fast_run.ANSWER_*: what a call gives back before `rebuild`
    rebuild: Callable[[Any], Any] | None  # the flat answer -> the function's result structure
    uses_step: bool
    donated: tuple[int, ...]  # the leaves whose buffers the code may write
    hot: bool  # the arguments are the positional arrays themselves (Note [the jitted call])
    fast: Any = None  # the FastRun, once a call on the Python path laid the code out
    fresh_outputs: bool = False
    layouts: int = field(default=0)


class JitFunction:
    """The callable that @fc.jit makes (see the module's docstring); `explain()` says why the latest
    recompile happened, `compiles` counts traces, `clear_cache()` drops the compiled code."""

    def __init__(self, fn: Callable[..., Any], *, static_argnums: int | Sequence[int] = (),
                 static_argnames: str | Sequence[str] = (), donate_argnums: int | Sequence[int] = (),
                 target: str = "cpu", options: CompileOptions | None = None):
        self.fn = fn
        functools.update_wrapper(self, fn, updated=())  # a name, a docstring, a signature; not fn's attributes
        self.target = target_named(target)
        self.options = options or CompileOptions.from_environment()  # read once (compiler/options.py)
        self._parameters = _parameters_of(fn)
        self.static_argnames = frozenset(_names_of(self._parameters, static_argnums, "static_argnums", fn) +
                                         _as_tuple(static_argnames))
        self.donate_argnames = frozenset(_names_of(self._parameters, donate_argnums, "donate_argnums", fn))
        self._init_args = dict(static_argnums=static_argnums, static_argnames=static_argnames,
                               donate_argnums=donate_argnums, target=target)
        both = self.static_argnames & self.donate_argnames
        if both:
            raise FlowcError(f"argument {sorted(both)[0]!r} of {_name(fn)} is both static and donated",
                             where=definition_line(fn))
        self._cache: dict[Any, CompiledCall] = {}
        self._signatures: list[CallSignature] = []
        self._hot: CompiledCall | None = None  # Note [the jitted call]
        self._lock = threading.Lock()
        self._step = np.zeros((), np.int64)  # random ops' counter (Note [jit and state])
        self._explanation: str | None = None
        self._bound: dict[int, tuple[Any, JitFunction]] = {}
        self._attribute: str | None = None
        self.compiles = 0

    # -- calling ---------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hot = self._hot
        if hot is not None and not kwargs:
            answer = hot.fast(*args)
            if answer is not NotImplemented:
                rebuild = hot.rebuild
                return answer if rebuild is None else rebuild(answer)
        return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict[str, Any]) -> Any:
        loc = user_location()
        try:
            key, parameters, leaves = self._key(args, kwargs, loc)
        except TracerFound:  # called on Tensors while a graph is built: the function is inlined
            return self.fn(*args, **kwargs)
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._compile(key, parameters, args, kwargs, loc)
        leaves = self._donatable(compiled, leaves)
        if compiled.fast is not None:
            answer = compiled.fast(*leaves)
            if answer is not NotImplemented:
                if compiled.hot and not kwargs and len(leaves) == len(args):
                    self._hot = compiled
                return answer if compiled.rebuild is None else compiled.rebuild(answer)
        answer = self._run(compiled, leaves)
        if compiled.hot and not kwargs and len(leaves) == len(args) and compiled.fast is not None:
            self._hot = compiled
        return answer if compiled.rebuild is None else compiled.rebuild(answer)

    def _key(self, args: tuple, kwargs: dict[str, Any], loc: str | None) -> tuple[Any, list[Parameter], list]:
        """The cache key of a call, its parameters as the signature sees them, and its array leaves."""
        bound = self._bind(args, kwargs, loc)
        leaves: list[Any] = []
        parameters = []
        key = []
        for name, value in bound:
            if name in self.static_argnames:
                try:
                    hash(value)
                except TypeError:
                    raise FlowcTypeError(f"static argument '{name}' of {_name(self.fn)} is a {type(value).__name__}, "
                                         "which is not hashable: static arguments key the compiled code; pass a "
                                         "tuple, or make it an ordinary (traced) argument", where=loc) from None
                parameters.append(Parameter(name, True, value))
                key.append((name, True, value))
                continue
            first = len(leaves)
            paths: list[str] = []
            structure = flatten_argument(value, "", leaves, paths)
            arrays = [as_leaf_array(leaf, name + path, loc) for leaf, path in zip(leaves[first:], paths)]
            leaves[first:] = arrays
            types = tuple([(a.dtype, a.shape) for a in arrays])
            parameters.append(Parameter(name, False, structure, tuple(paths), types))
            key.append((name, structure, types))
        return tuple(key), parameters, leaves

    def _bind(self, args: tuple, kwargs: dict[str, Any], loc: str | None) -> list[tuple[str, Any]]:
        """(parameter name, value) of each argument given, in the function's parameter order."""
        signature = self._parameters
        if signature is None:
            return [(f"arg{i}", a) for i, a in enumerate(args)] + list(kwargs.items())
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise FlowcTypeError(f"{_name(self.fn)}{signature}: {error}", where=loc) from None
        return list(bound.arguments.items())

    def _donatable(self, compiled: CompiledCall, leaves: list[np.ndarray]) -> list[np.ndarray]:
        """Leaves the code may write, copied where the caller's array cannot take it (Note [donated
        arguments of a jitted call])."""
        for i in compiled.donated:
            leaf = leaves[i]
            if not leaf.flags.writeable or any(j != i and np.may_share_memory(leaf, other)
                                               for j, other in enumerate(leaves)):
                leaves[i] = leaf.copy()
        return leaves

    def _run(self, compiled: CompiledCall, leaves: list[np.ndarray]) -> Any:
        """A call on the Python path; afterwards the signature's FastRun knows its layout."""
        args = list(leaves)
        if compiled.uses_step:
            args.append(self._step.copy())
            self._step += 1
        results = compiled.executable(args)
        if not compiled.fresh_outputs:  # the reference target may hand an argument back
            results = [_owned(r, args + results[:i]) for i, r in enumerate(results)]
        self._refresh_fast(compiled)
        kind = compiled.answer
        if kind == fast_run.ANSWER_ONE:
            return results[compiled.picks[0]]
        if kind == fast_run.ANSWER_NONE:
            return None
        flat = [None if p < 0 else results[p] for p in compiled.picks]
        return flat if kind == fast_run.ANSWER_LIST else tuple(flat)

    def _refresh_fast(self, compiled: CompiledCall) -> None:
        executable = compiled.executable
        count = getattr(executable, "layout_count", None)
        if count is None or count == compiled.layouts:
            return
        compiled.layouts = count
        feed_keys = tuple(range(len(executable.function.args) - compiled.uses_step))
        counter = self._step if compiled.uses_step else None
        n_results = len(executable.function.entry.ops[-1].operands)
        compiled.fast = executable.fast_run(feed_keys, (), {}, n_results, compiled.picks, compiled.answer, counter)

    # -- compiling -------------------------------------------------------------------------

    def _compile(self, key: Any, parameters: list[Parameter], args: tuple, kwargs: dict[str, Any],
                 loc: str | None) -> CompiledCall:
        with self._lock:
            compiled = self._cache.get(key)
            if compiled is not None:
                return compiled
            signature = CallSignature(tuple(parameters))
            if self._signatures:
                self._explain(signature, loc)
            compiled = self._trace_and_compile(signature, args, kwargs)
            self._cache[key] = compiled
            self._signatures.append(signature)
            self.compiles += 1
            return compiled

    def _trace_and_compile(self, signature: CallSignature, args: tuple, kwargs: dict[str, Any]) -> CompiledCall:
        specs = self._specs(signature)
        bound = self._parameters.bind(*args, **kwargs) if self._parameters is not None else None
        if bound is not None:
            for parameter in signature.parameters:
                bound.arguments[parameter.name] = specs[parameter.name]
            positional, keywords = list(bound.args), dict(bound.kwargs)
        else:
            positional, keywords = [specs[f"arg{i}"] for i in range(len(args))], {k: specs[k] for k in kwargs}
        traced = trace(self.fn, positional, keywords, static_argnames=tuple(self.static_argnames))
        lowered = lower(traced.graph, traced.fetches, [], traced.feeds)
        _check_pure(lowered.signature, self.fn)
        donated = self._donated_leaves(signature)
        offered = _offers(donated, traced.feeds, traced.fetches)
        values = {f.name: getattr(lowered.signature, f.name) for f in fields(Signature)}
        lowered = type(lowered)(lowered.module, DonatingSignature(**values, offered=offered))
        executable = compile_lowered(lowered, self.target, self.options)
        picks, answer, rebuild = _answer_of(traced)
        hot = not self.static_argnames and not donated and all(
            not p.static and p.value == LEAF for p in signature.parameters)
        return CompiledCall(signature, executable, picks, answer, rebuild, lowered.signature.uses_step, donated, hot,
                            fresh_outputs=getattr(executable, "fresh_outputs", False))

    def _specs(self, signature: CallSignature) -> dict[str, Any]:
        """Per parameter: the value to trace with (static values as they are, arrays as TensorSpecs)."""
        specs = {}
        for parameter in signature.parameters:
            if parameter.static:
                specs[parameter.name] = parameter.value
            else:
                leaves = iter([TensorSpec(shape, dtype) for dtype, shape in parameter.leaves])
                specs[parameter.name] = _unflatten(parameter.value, leaves)
        return specs

    def _donated_leaves(self, signature: CallSignature) -> tuple[int, ...]:
        donated, at = [], 0
        for parameter in signature.parameters:
            count = len(parameter.leaves)
            if parameter.name in self.donate_argnames:
                donated.extend(range(at, at + count))
            at += count
        return tuple(donated)

    def _explain(self, signature: CallSignature, loc: str | None) -> None:
        before = closest(signature, self._signatures)
        lines = signature.differences(before) or ["the arguments differ from every signature compiled before"]
        self._explanation = (f"recompiling {_name(self.fn)} ({definition_line(self.fn)}) for the call at {loc}: "
                             + "; ".join(lines) + f" (compiled before for {before.describe()})")
        if self.options.log_recompiles:
            sys.stderr.write(f"flowc jit: {self._explanation}\n")
            sys.stderr.flush()

    def explain(self) -> str | None:
        """Why the latest recompile happened: which argument changed, from what to what (None before any)."""
        return self._explanation

    def clear_cache(self) -> None:
        """Forget every compiled signature (the disk cache still holds the CPU's libraries)."""
        with self._lock:
            self._hot = None
            executables = [c.executable for c in self._cache.values()]
            self._cache.clear()
            self._signatures.clear()
            for executable in executables:
                close = getattr(executable, "close", None)
                if close is not None:
                    close()

    def lower(self, *args: Any, **kwargs: Any) -> Trace:
        """The trace a call with these arguments compiles (nothing is compiled)."""
        key, parameters, _ = self._key(args, kwargs, user_location())
        specs = self._specs(CallSignature(tuple(parameters)))
        bound = self._parameters.bind(*args, **kwargs)
        for parameter in parameters:
            bound.arguments[parameter.name] = specs[parameter.name]
        return trace(self.fn, list(bound.args), dict(bound.kwargs), static_argnames=tuple(self.static_argnames))

    # -- methods ---------------------------------------------------------------------------

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """On an instance: a jitted function of the remaining arguments, `self` bound and static.

        One per instance, kept while the instance lives: its compiled code is traced with the
        instance's attributes as they are then (Note [jit and state]).
        """
        if instance is None:
            return self
        known = self._bound.get(id(instance))
        if known is not None and known[0]() is instance:
            return known[1]
        bound = JitFunction(functools.partial(self.fn, instance), static_argnames=tuple(
            self.static_argnames), options=self.options, target=self.target.name)
        bound.donate_argnames = self.donate_argnames
        try:
            reference = weakref.ref(instance, lambda _, key=id(instance): self._bound.pop(key, None))
        except TypeError:  # not weakly referable: kept alive with its jitted method
            reference = lambda value=instance: value  # noqa: E731
        self._bound[id(instance)] = (reference, bound)
        return bound

    def __repr__(self) -> str:
        return f"<fc.jit {_name(self.fn)}: {self.compiles} compiled, target {self.target.name}>"


def jit(fn: Callable[..., Any] | None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (), donate_argnums: int | Sequence[int] = (),
        target: str = "cpu") -> Any:
    """Compile `fn`, a Python function of arrays, once per signature of its arguments.

    `@fc.jit` or `@fc.jit(static_argnums=..., static_argnames=..., donate_argnums=..., target=...)`.
    Arguments and results are numpy arrays, Python numbers, and tuples, lists, dicts and
    namedtuples of them; static arguments are any hashable values and key the compiled code;
    donated arguments' buffers may be reused for results (the result is then the argument itself,
    holding the new value). `target` is "cpu" (default) or "reference". Python control flow runs
    while the function is traced (unrolled); fc.cond and fc.while_loop stay loops.
    `FLOWC_LOG=recompiles` prints why each recompile happens; `.explain()` gives the latest.

    >>> import flowc as fc, numpy as np
    >>> @fc.jit(static_argnames="power")
    ... def norm(x, power):
    ...     return fc.reduce_sum(x ** power)
    >>> float(norm(np.array([1.0, 2.0]), power=2))
    5.0
    """
    if fn is None:
        return lambda f: JitFunction(f, static_argnums=static_argnums, static_argnames=static_argnames,
                                     donate_argnums=donate_argnums, target=target)
    return JitFunction(fn, static_argnums=static_argnums, static_argnames=static_argnames,
                       donate_argnums=donate_argnums, target=target)


# -- helpers ---------------------------------------------------------------------------------


def _parameters_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _as_tuple(value: Any) -> tuple:
    if value is None:
        return ()
    return (value,) if isinstance(value, (int, str)) else tuple(value)


def _names_of(signature: inspect.Signature | None, numbers: Any, what: str, fn: Callable[..., Any]) -> tuple[str, ...]:
    """Parameter names of positional indices (static_argnums, donate_argnums)."""
    numbers = _as_tuple(numbers)
    if not numbers:
        return ()
    if signature is None:
        return tuple(f"arg{i}" for i in numbers)
    positional = [p.name for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY,
                                                                              p.POSITIONAL_OR_KEYWORD)]
    names = []
    for number in numbers:
        if not isinstance(number, int) or not -len(positional) <= number < len(positional):
            raise FlowcError(f"{what} {number!r} is not a positional parameter of {_name(fn)}{signature}",
                             where=definition_line(fn))
        names.append(positional[number])
    return tuple(names)


def _name(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _unflatten(key: Any, leaves: Any) -> Any:
    """A structure from its structure key (jit_signature.flatten_argument), the leaves taken in order."""
    if key == LEAF:
        return next(leaves)
    if key is None:
        return None
    kind, *rest = key
    if isinstance(kind, type) and issubclass(kind, dict):
        keys, children = rest
        values = {k: _unflatten(c, leaves) for k, c in zip(keys, children)}
        return kind(values) if kind is not dict else values
    items = [_unflatten(c, leaves) for c in rest[0]]
    if kind is list:
        return items
    return kind(*items) if kind is not tuple else tuple(items)


def _check_pure(signature: Signature, fn: Callable[..., Any]) -> None:
    """Note [jit and state]."""
    for variable in (*signature.variables, *signature.updates):
        raise GraphError("a jitted function cannot read or assign a Variable: its value would live nowhere; pass the "
                         f"value as an argument and return the new one (donate_argnums reuses its buffer)",
                         op=variable.display_name, where=variable.loc)


def _offers(donated: tuple[int, ...], feeds: list[Tensor], fetches: list[Tensor]) -> tuple[tuple[int, int], ...]:
    """(result, argument) pairs: each donated leaf offered to the first result of its type not yet offered."""
    offers = []
    taken: set[int] = set()
    for i in donated:
        for j, fetch in enumerate(fetches):
            if j not in taken and fetch.type == feeds[i].type:
                offers.append((j, i))
                taken.add(j)
                break
    return tuple(sorted(offers))


def _answer_of(traced: Trace) -> tuple[tuple[int, ...], int, Callable[[Any], Any] | None]:
    """(picks, answer kind, rebuild): how the compiled results become the function's result."""
    structure = traced.structure
    leaves = nest.flatten(structure)
    picks, j = [], 0
    for leaf in leaves:
        picks.append(-1 if leaf is None else j)
        j += leaf is not None
    if isinstance(structure, Tensor):
        return (0,), fast_run.ANSWER_ONE, None
    if structure is None:
        return (), fast_run.ANSWER_NONE, None
    flat = not any(nest.is_nested(child) for child in structure) if type(structure) in (tuple, list) else False
    if flat:
        return tuple(picks), fast_run.ANSWER_LIST if type(structure) is list else fast_run.ANSWER_TUPLE, None
    return tuple(picks), fast_run.ANSWER_TUPLE, lambda flat_answer: nest.pack_sequence_as(structure, flat_answer)


def _owned(value: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """`value`, copied if it is read-only or may share memory with any of `others`."""
    if not value.flags.writeable or any(np.may_share_memory(value, other) for other in others):
        return value.copy()
    return value
