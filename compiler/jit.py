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
another process that traces the same code loads the library. A signature
with a narrow product runs a quick tier first while its optimized code
compiles on a thread (driver.compile_tiered, Note [tiered compilation] in
passes/schedule.py; FLOWC_TIERS=0 compiles the optimized code first).

Note [the jitted call]
A call after the first must cost no more than a Session.run through the fast
run. The jitted function keeps its latest signature's compiled call, for the
form of the call that used it, on a hot path: that form's guard (Note [the
hot path's guard] in jit_signature.py; none where every argument is an array
given by position) checks the form, the containers and the static values and
hands the array leaves, in feed order, to the signature's FastRun
(runtime/native/fast_run.c), which checks each is an exact ndarray of the
dtype, rank, shape, layout and alignment that signature has, that no donated
buffer overlaps another argument, and runs the code in one C call. Anything
either does not recognise (a new shape or static value, another keyword, a
list where a tuple was) falls to the keyed path: bind, flatten, convert, look
up (or trace and compile), then that signature's FastRun, which becomes the
hot one. The hot path traces nothing and runs no Python per argument: about
0.4 us for one array, 0.9 us for a dict of two, on the machine of
bench/bench_jit.py.

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
import time
import weakref
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Sequence

import numpy as np

from flowc.ir.errors import FlowcError, FlowcTypeError, GraphError
from flowc.runtime import fast_run
from flowc.runtime.options import RunOptions
from flowc.runtime.options import configure as configure_runtime

from . import nest
from .driver import compile_tiered
from .graph import Tensor
from .jit_signature import (LEAF, NUMBER, CallSignature, TracerFound, as_leaf_array, closest, fits,
                            flatten_argument, guard, leaf_paths, number, plain, signature_of)
from .jit_trace import Trace, TensorSpec, definition_line, trace
from .lowering import Signature, lower
from .options import CompileOptions
from .sources import user_location
from .targets import Executable, target_named


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
    fast: Any = None  # the FastRun, once a call on the Python path laid the code out
    fresh_outputs: bool = False
    layouts: int = 0
    hot_calls: dict[tuple, HotCall | None] = field(default_factory=dict)  # per form of call (Note [the jitted call])
    # Builds and loads the optimized tier while `executable` is the quick one (Note [tiered compilation] in
    # passes/schedule.py); None once started, or where the executable is the optimized tier.
    tier_up: Callable[[], Executable] | None = None


@dataclass(frozen=True)
class HotCall:
    """The hot path of one signature and form of call (Note [the jitted call])."""

    fast: Any  # the signature's FastRun
    guard: Callable[[tuple, dict], tuple | None] | None  # the call's arguments -> the leaves; None: args are the leaves
    rebuild: Callable[[Any], Any] | None


class _Keyword:
    """Where a keyword argument lands when a form of call is bound (JitFunction._sources)."""

    def __init__(self, name: str):
        self.name = name


class JitFunction:
    """The callable that @fc.jit makes (see the module's docstring); `explain()` says why the latest
    recompile happened, `compiles` counts traces, `clear_cache()` drops the compiled code."""

    def __init__(self, fn: Callable[..., Any], *, static_argnums: int | Sequence[int] = (),
                 static_argnames: str | Sequence[str] = (), donate_argnums: int | Sequence[int] = (),
                 target: str = "cpu", options: CompileOptions | None = None, run_options: RunOptions | None = None):
        self.fn = fn
        functools.update_wrapper(self, fn, updated=())  # a name, a docstring, a signature; not fn's attributes
        self.target = target_named(target)
        # Every FLOWC_* setting, read once, when the function is jitted, as a Session reads them when it starts
        # (compiler/options.py; Note [run options] in runtime/options.py): the fast run is this function's, the
        # pool limit and thread count the process's, set from here.
        self.options = options or CompileOptions.from_environment()
        if run_options is None:
            run_options = RunOptions.from_environment()
            configure_runtime(run_options)
        self.run_options = run_options
        self._parameters = _parameters_of(fn)
        self._positional, self._required = _positional_of(self._parameters)
        self.static_argnames = frozenset(_names_of(self._parameters, static_argnums, "static_argnums", fn) +
                                         _as_tuple(static_argnames))
        self.donate_argnames = frozenset(_names_of(self._parameters, donate_argnums, "donate_argnums", fn))
        both = self.static_argnames & self.donate_argnames
        if both:
            raise FlowcError(f"argument {sorted(both)[0]!r} of {_name(fn)} is both static and donated",
                             where=definition_line(fn))
        self._cache: dict[Any, CompiledCall] = {}
        self._signatures: list[CallSignature] = []
        self._hot: CompiledCall | None = None  # Note [the jitted call]
        self._swap = threading.Lock()  # a signature's optimized tier takes its quick tier's place, hot path included
        self._tier_threads: list[threading.Thread] = []  # Note [tiered compilation] in passes/schedule.py
        self._lock = threading.RLock()  # a function that calls itself on arrays while traced compiles inside
        self._step = np.zeros((), np.int64)  # random ops' counter (Note [jit and state])
        self._explanation: str | None = None
        self._bound: dict[int, tuple[Any, JitFunction]] = {}
        self.compiles = 0

    # -- calling ---------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hot = self._hot
        if hot is not None:
            guard = hot.guard
            leaves = (None if kwargs else args) if guard is None else guard(args, kwargs)
            if leaves is not None:
                answer = hot.fast(*leaves)
                if answer is not NotImplemented:
                    rebuild = hot.rebuild
                    return answer if rebuild is None else rebuild(answer)
        return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict[str, Any]) -> Any:
        try:
            key, leaves = self._key(args, kwargs)
        except TracerFound:  # called on Tensors while a graph is built: the function is inlined
            return self.fn(*args, **kwargs)
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._compile(key, args, kwargs)
        answer = compiled.fast(*leaves) if compiled.fast is not None else NotImplemented
        if answer is NotImplemented:
            answer = self._run(compiled, self._donatable(compiled, leaves))
        if compiled.fast is not None:
            hot = self._hot_call(compiled, args, kwargs)  # Note [the jitted call]
            with self._swap:
                if self._cache.get(key) is compiled:  # not a quick tier that was replaced meanwhile
                    self._hot = hot
        if compiled.tier_up is not None:
            self._start_tier_up(key, compiled)
        return answer if compiled.rebuild is None else compiled.rebuild(answer)

    def _start_tier_up(self, key: tuple, quick: CompiledCall) -> None:
        """Note [tiered compilation] in passes/schedule.py: after the quick tier's first call, the optimized tier
        is built on a thread of its own (not a daemon: a process that ends first waits for it, and the disk
        cache keeps it), then takes the quick tier's place."""
        with self._swap:
            tier_up, quick.tier_up = quick.tier_up, None
        if tier_up is None:  # another thread started it
            return
        thread = threading.Thread(target=self._tier_up, args=(key, quick, tier_up),
                                  name=f"flowc tier-up of {_name(self.fn)}")
        self._tier_threads = [t for t in self._tier_threads if t.is_alive()] + [thread]
        thread.start()

    def _tier_up(self, key: tuple, quick: CompiledCall, tier_up: Callable[[], Executable]) -> None:
        time.sleep(0)  # the GIL back to the caller first: the call that started this returns before the compile
        try:
            executable = tier_up()
        except Exception as error:  # noqa: BLE001 - the quick tier computes the same function: it stays
            if self.options.log_compile:
                sys.stderr.write(f"flowc jit: {_name(self.fn)} keeps its quick tier: {error}\n")
            return
        optimized = replace(quick, executable=executable, fast=None, layouts=0, hot_calls={}, tier_up=None,
                            fresh_outputs=getattr(executable, "fresh_outputs", False))
        with self._swap:
            swapped = self._cache.get(key) is quick  # else the cache was cleared meanwhile
            if swapped:
                self._cache[key] = optimized
                self._hot = None  # the next call takes the keyed path to the optimized tier's own FastRun
        if not swapped:
            close = getattr(executable, "close", None)
            if close is not None:
                close()

    def _hot_call(self, compiled: CompiledCall, args: tuple, kwargs: dict[str, Any]) -> HotCall | None:
        """The hot path of a signature for calls of this form (Note [the hot path's guard]), made once per form."""
        form = (len(args), tuple(kwargs))
        if form not in compiled.hot_calls:
            sources = self._sources(form)
            hot = None
            if sources is not None and len(sources) == len(compiled.signature.parameters):
                check = None if plain(compiled.signature, sources) else guard(compiled.signature, sources)
                hot = HotCall(compiled.fast, check, compiled.rebuild)
            compiled.hot_calls[form] = hot
        return compiled.hot_calls[form]

    def _sources(self, form: tuple[int, tuple[str, ...]]) -> list[int | str] | None:
        """Per parameter a call of this form binds: its position among the arguments or its keyword; None
        where the form does not bind each parameter to one argument (*args, **kwargs, no signature)."""
        if self._parameters is None:
            return None
        count, keywords = form
        try:
            bound = self._parameters.bind(*range(count), **{k: _Keyword(k) for k in keywords})
        except TypeError:
            return None
        sources: list[int | str] = []
        for value in bound.arguments.values():
            if isinstance(value, _Keyword):
                sources.append(value.name)
            elif type(value) is int:
                sources.append(value)
            else:  # a *args tuple or a **kwargs dict
                return None
        return sources

    def _key(self, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, list[np.ndarray]]:
        """The cache key of a call, per argument (name, True, (type, value)) if static else (name,
        structure key, leaf types), and its array leaves as the compiled code takes them."""
        leaves: list[Any] = []
        key = []
        statics = self.static_argnames
        for name, value in self._bind(args, kwargs):
            if name in statics:
                try:
                    hash(value)
                except TypeError:
                    raise FlowcTypeError(f"static argument '{name}' of {_name(self.fn)} is a {type(value).__name__}, "
                                         "which is not hashable: static arguments key the compiled code; pass a "
                                         "tuple, or make it an ordinary (traced) argument", where=user_location()) \
                        from None
                key.append((name, True, (type(value), value)))  # the type too: 1 == 1.0 == True
                continue
            first = len(leaves)
            structure = flatten_argument(value, leaves)
            types = []
            for i in range(first, len(leaves)):
                array = leaves[i]
                if not fits(array):
                    array = leaves[i] = as_leaf_array(array, lambda i=i: name + leaf_paths(structure)[i - first])
                types.append((array.dtype, array.shape))
            key.append((name, structure, tuple(types)))
        return tuple(key), leaves

    def _bind(self, args: tuple, kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        """(parameter name, value) of each argument given, in the function's parameter order."""
        signature = self._parameters
        if signature is None:
            return [(f"arg{i}", a) for i, a in enumerate(args)] + list(kwargs.items())
        positional = self._positional
        if not kwargs and positional is not None and self._required <= len(args) <= len(positional):
            return list(zip(positional, args))  # what bind gives, at a tenth of its cost
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise FlowcTypeError(f"{_name(self.fn)}{signature}: {error}", where=user_location()) from None
        return list(bound.arguments.items())

    def _donatable(self, compiled: CompiledCall, leaves: list[np.ndarray]) -> list[np.ndarray]:
        """Leaves the code may write, copied where the caller's array cannot take it (Note [donated
        arguments of a jitted call])."""
        if not compiled.donated:
            return leaves
        roots = [id(_root(leaf)) for leaf in leaves]  # arrays of different roots share no memory
        for i in compiled.donated:
            leaf = leaves[i]
            if not leaf.flags.writeable or (roots.count(roots[i]) > 1 and any(
                    j != i and roots[j] == roots[i] and np.may_share_memory(leaf, leaves[j])
                    for j in range(len(leaves)))):
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
        if count is None or count == compiled.layouts or not self.run_options.fast_run:
            return
        compiled.layouts = count
        feed_keys = tuple(range(len(executable.function.args) - compiled.uses_step))
        counter = self._step if compiled.uses_step else None
        n_results = len(executable.function.entry.ops[-1].operands)
        compiled.fast = executable.fast_run(feed_keys, (), {}, n_results, compiled.picks, compiled.answer, counter)

    # -- compiling -------------------------------------------------------------------------

    def _compile(self, key: tuple, args: tuple, kwargs: dict[str, Any]) -> CompiledCall:
        loc = user_location()
        with self._lock:
            compiled = self._cache.get(key)
            if compiled is not None:
                return compiled
            signature = signature_of(key)
            if self._signatures:
                self._explain(signature, loc)
            compiled = self._trace_and_compile(signature, args, kwargs)
            self._cache[key] = compiled
            self._signatures.append(signature)
            self.compiles += 1
            return compiled

    def _trace_and_compile(self, signature: CallSignature, args: tuple, kwargs: dict[str, Any]) -> CompiledCall:
        traced = self._trace(signature, args, kwargs)
        lowered = lower(traced.graph, traced.fetches, [], traced.feeds)
        _check_pure(lowered.signature, self.fn)
        donated = self._donated_leaves(signature)
        offered = _offers(donated, traced.feeds, traced.fetches)
        values = {f.name: getattr(lowered.signature, f.name) for f in fields(Signature)}
        lowered = type(lowered)(lowered.module, DonatingSignature(**values, offered=offered))
        executable, tier_up = compile_tiered(lowered, self.target, self.options)
        picks, answer, rebuild = _answer_of(traced)
        return CompiledCall(signature, executable, picks, answer, rebuild, lowered.signature.uses_step, donated,
                            fresh_outputs=getattr(executable, "fresh_outputs", False), tier_up=tier_up)

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
        with self._lock, self._swap:
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
        key, _ = self._key(args, kwargs)
        return self._trace(signature_of(key), args, kwargs)

    def _trace(self, signature: CallSignature, args: tuple, kwargs: dict[str, Any]) -> Trace:
        """The function traced for `signature`: the call's arguments with a TensorSpec per array leaf."""
        specs = self._specs(signature)
        if self._parameters is None:
            positional, keywords = [specs[f"arg{i}"] for i in range(len(args))], {k: specs[k] for k in kwargs}
        else:
            bound = self._parameters.bind(*args, **kwargs)
            for parameter in signature.parameters:
                bound.arguments[parameter.name] = specs[parameter.name]
            positional, keywords = list(bound.args), dict(bound.kwargs)
        return trace(self.fn, positional, keywords, static_argnames=tuple(self.static_argnames))

    # -- methods ---------------------------------------------------------------------------

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
        try:
            reference = weakref.ref(instance, lambda _, key=id(instance): self._bound.pop(key, None))
        except TypeError:  # not weakly referable: kept alive with its jitted method
            reference = lambda value=instance: value  # noqa: E731
        bound = JitFunction(_Method(self.fn, instance, reference), static_argnames=tuple(self.static_argnames),
                            options=self.options, run_options=self.run_options, target=self.target.name)
        bound.donate_argnames = self.donate_argnames
        self._bound[id(instance)] = (reference, bound)
        return bound

    def __repr__(self) -> str:
        return f"<fc.jit {_name(self.fn)}: {self.compiles} compiled, target {self.target.name}>"


class _Method:
    """A method's function with its instance bound, held weakly: a jitted method keeps no instance alive
    (the class's JitFunction keeps one jitted function per live instance)."""

    def __init__(self, fn: Callable[..., Any], instance: Any, reference: Callable[[], Any]):
        self.__wrapped__ = fn  # for names and lines; __signature__ is what binding sees
        self.__name__ = getattr(fn, "__name__", "method")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__signature__ = _parameters_of(functools.partial(fn, instance))
        self._instance = reference

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(self._instance(), *args, **kwargs)


def jit(fn: Callable[..., Any] | None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (), donate_argnums: int | Sequence[int] = (),
        target: str = "cpu") -> Any:
    """Compile `fn`, a Python function of arrays, once per signature of its arguments.

    `@fc.jit` or `@fc.jit(static_argnums=..., static_argnames=..., donate_argnums=..., target=...)`.
    Arguments and results are numpy arrays, and tuples, lists, dicts and namedtuples of them
    (Note [jit signatures]: shapes are specialized; Python numbers are static, numpy scalars
    traced); static arguments are any hashable values and key the compiled code;
    donated arguments' buffers may be reused for results (the result is then the argument itself,
    holding the new value). `target` is "cpu" (default), "gpu" (Triton kernels on a GPU, or in Triton's
    interpreter without one; donations are not taken there) or "reference". Python control flow runs
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


def _positional_of(signature: inspect.Signature | None) -> tuple[tuple[str, ...] | None, int]:
    """The names of the positional parameters and how many have no default, where a call that passes
    only positional arguments binds them to those names in order (None where it may not: *args, a
    required keyword-only parameter)."""
    if signature is None:
        return None, 0
    parameters = list(signature.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL or (p.kind == p.KEYWORD_ONLY and p.default is p.empty) for p in parameters):
        return None, 0
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return tuple(p.name for p in positional), sum(p.default is p.empty for p in positional)


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
    while isinstance(fn, (functools.partial, _Method)):
        fn = fn.func if isinstance(fn, functools.partial) else fn.__wrapped__
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _unflatten(key: Any, leaves: Any) -> Any:
    """A structure from its structure key (jit_signature.flatten_argument), the leaves taken in order."""
    if key == LEAF:
        return next(leaves)
    if key is None:
        return None
    kind, *rest = key
    if kind == NUMBER:
        return number(key)
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
                         "value as an argument and return the new one (donate_argnums reuses its buffer)",
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
    return tuple(picks), fast_run.ANSWER_TUPLE, _rebuilder(structure, iter(range(len(leaves))))


def _rebuilder(structure: Any, positions: Any) -> Callable[[Sequence[Any]], Any]:
    """A function from the flat answer (nest.flatten's order) to `structure` with those values: a
    closure per node, made once, so a call rebuilds without walking the structure again."""
    if not nest.is_nested(structure):
        index = next(positions)
        return lambda flat: flat[index]
    parts = [_rebuilder(child, positions) for child in nest.children(structure)]
    kind = type(structure)
    if kind is tuple:
        return lambda flat: tuple([part(flat) for part in parts])
    if kind is list:
        return lambda flat: [part(flat) for part in parts]
    if kind is dict and list(structure) == sorted(structure):
        keys = list(structure)
        return lambda flat: {key: part(flat) for key, part in zip(keys, parts)}
    return lambda flat: nest.rebuild(structure, [part(flat) for part in parts])


def _root(array: np.ndarray) -> Any:
    """The object that owns an array's memory (itself, or the end of its chain of bases)."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array


def _owned(value: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """`value`, copied if it is read-only or may share memory with any of `others`."""
    if not value.flags.writeable or any(np.may_share_memory(value, other) for other in others):
        return value.copy()
    return value
