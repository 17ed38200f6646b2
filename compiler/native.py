"""The CPU target's executable: a loaded library, called through one entry point per run.

Building it is the CPU target's job (compiler/targets/cpu.py). Running: for
each new set of argument shapes (one per batch size, say) the concrete shapes
of every value are worked out once with the IR's own type rules, giving the
dims vector, the arena layout and the output shapes; after that a call
allocates outputs from the caching allocator, fills the buffer addresses and
makes one foreign call, with the GIL released.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from flowc.codegen.llvm.mpi import COLLECTIVES
from flowc.codegen.llvm.program import ENTRY, PROFILE_SYMBOL, Program, kernel_op_names
from flowc.ir import Function, Operation
from flowc.ir.errors import FlowcError, IndexOutOfRange, RuntimeShapeError
from flowc.ir.ops.checks import CheckFailed, failure_message
from flowc.ir.ops.collective import CollectiveError, collective_failure
from flowc.ir.shapes import check_no_hidden_broadcast, propagate_shapes
from flowc.runtime import Library, allocate, arena, default_allocator
from flowc.runtime.allocator import size_class
from flowc.runtime.fast_run import module as fast_run_module
from flowc.runtime.loader import function_address

from .memory_limit import check_run_fits, value_bytes


@dataclass
class ShapeLayout:
    """Everything a call needs that depends only on the argument shapes."""

    outputs: list[tuple[int | None, tuple[int, ...], np.dtype, bool]]
    # per result: (the argument written in place, or None; shape; dtype; small enough for np.empty)
    shapes: dict  # every value's concrete shape, for run-time error messages
    dims: ctypes.Array  # the dims vector: run-time dims, arena offsets, two error slots
    arena_bytes: int
    arena: np.ndarray | None
    arena_address: int  # 0 when there is no arena
    lock: threading.Lock
    buffers: ctypes.Array  # the pointers passed to the entry point, refilled on each call under `lock`


class NativeExecutable:
    """A loaded CPU build (compiler/targets/cpu.py makes it): one native call per run."""

    def __init__(self, program: Program, library_path: str, was_cached: bool = False,
                 layouts_dump: str | None = None, library: Library | None = None):
        self.program = program
        self.function: Function = program.function
        self.plan = program.plan
        self.profiling = program.profile
        self.library_path, self.was_cached = library_path, was_cached
        self._dump = layouts_dump  # FLOWC_DUMP_IR: each new layout's arena peak is written here
        # Shared with every executable of the same file; unloaded after the last of them and of their
        # FastRuns is gone (Note [unloading compiled code] in runtime/loader.py).
        # `library`: one linked in this process, with no file (Note [the quick tier linked in process] in
        # codegen/llvm/jit_link.py); `library_path` then names it.
        self.library: Library | None = library or Library.load(self.library_path)
        self._entry = self.library.entry(ENTRY)
        self._entry.restype = ctypes.c_int32
        # Size classes of the caching allocator that this executable's big outputs take: when it goes,
        # the pool frees the blocks of those no other live executable takes.
        self._pool_classes: set[int] = set()
        self._release_pool = weakref.finalize(self, default_allocator().unreserve, self._pool_classes)
        self._release_pool.atexit = False
        self._layouts: dict[tuple, ShapeLayout] = {}
        self._result_dtypes = [v.type.dtype.np for v in self.function.entry.ops[-1].operands]
        # Addresses as integers: filling an existing array by a slice costs a fifth of building a c_void_p one.
        self._buffers_type = ctypes.c_uint64 * (len(self.function.args) + len(self._result_dtypes) + 1)
        self._addresses = AddressMemo()
        self._error_slot = self.program.error_slot

    fresh_outputs = True  # results come from the allocator, never aliasing an argument unless donated
    # How many argument shapes keep their layout (None: all), the oldest let go first: each layout holds
    # an arena, so a Session fed ever new batch sizes must not keep them all (a layout let go is laid out
    # again, in Python, if its shapes come back). A segment after a cut at a data-dependent size sees a
    # new shape whenever the count changes and keeps fewer (Note [data-dependent sizes]).
    max_layouts: int | None = 64

    def close(self) -> None:
        """Let go of the compiled code and the buffers: the arenas now, the caching allocator's blocks of
        the sizes only this executable asked for, and the library once nothing else holds it (another
        executable of the same file, a FastRun, a call in flight in another thread). A later call raises."""
        self._entry = None
        self.library = None
        self._layouts = {}
        self._release_pool()

    def __call__(self, args: list[np.ndarray]) -> list[np.ndarray]:
        layout = self._layouts.get(tuple([a.shape for a in args])) or self._layout(args)
        if layout.lock.acquire(blocking=False):  # the layout's own arena and dims vector
            try:
                return self._run(args, layout, layout.dims, layout.buffers, layout.arena_address)
            finally:
                layout.lock.release()
        dims = (ctypes.c_int64 * len(layout.dims))(*layout.dims)  # another thread holds them: use copies
        scratch = arena(layout.arena_bytes)[0] if layout.arena_bytes else None
        return self._run(args, layout, dims, self._buffers_type(), address_of(scratch) if scratch is not None else 0,
                         scratch)

    def _run(self, args: list[np.ndarray], layout: ShapeLayout, dims: ctypes.Array, buffers: ctypes.Array,
             scratch_address: int, scratch: np.ndarray | None = None) -> list[np.ndarray]:
        # `scratch` only keeps a private arena alive during the call. One loop builds the results and
        # the pointer list (a donated result is its argument's buffer; a fresh one is new each run):
        # cheaper than separate comprehensions, on a path where every microsecond of Python counts.
        memo = self._addresses.of
        addresses = [memo(a) for a in args]
        results = []
        for donor, shape, dtype, small in layout.outputs:
            if donor is not None:
                results.append(args[donor])
                addresses.append(addresses[donor])
            else:
                result = np.empty(shape, dtype) if small else allocate(shape, dtype)
                results.append(result)
                addresses.append(address_of(result))
        addresses.append(scratch_address)
        buffers[:] = addresses
        error_slot = self._error_slot
        dims[error_slot] = 0
        entry = self._entry  # a local: it keeps the code loaded through the call, whatever close() does
        if entry is None:
            raise _closed_error()
        status = entry(buffers, dims)  # ctypes releases the GIL for the call
        if status:
            self._raise(status, dims[error_slot + 1], layout.shapes)
        return results

    @property
    def layout_count(self) -> int:
        """How many argument shapes this executable has laid out so far."""
        return len(self._layouts)

    def fast_run(self, feed_keys: tuple, variables: tuple, values: dict, n_fetched: int, picks: tuple[int, ...],
                 answer: int, counter: np.ndarray | None, locks: tuple = ()) -> object | None:
        """A FastRun of this executable for one Session plan (Note [the fast run] in
        runtime/native/fast_run.c), knowing the latest layouts; None where the extension is
        unavailable or an update is not written in place (the Session would have to store it).

        The arguments are `values[feed_keys[i]]` of the feed dict, then `values[v]` for `variables`,
        then, for random ops, the count in `counter` (a 0-d int64 array the run increments); `picks`
        says which fetched result each element of the answer is (-1: None), `answer` what is given
        back (runtime/fast_run.py's ANSWER_*), `locks` the locks every run holds throughout."""
        extension = fast_run_module()
        library = self.library
        args = self.function.args
        donors = tuple(self.plan.donated.get(j, -1) for j in range(len(self._result_dtypes)))
        if extension is None or library is None or len(args) != len(feed_keys) + len(variables) + \
                (counter is not None) or -1 in donors[n_fetched:]:
            return None
        entry = function_address(library.entry(ENTRY))
        fast = extension.FastRun(
            entry, feed_keys, variables, values, tuple(v.type.dtype.np.num for v in args),
            tuple(v.type.rank for v in args), tuple(self._result_dtypes),
            tuple(v.type.rank for v in self.function.entry.ops[-1].operands), donors, n_fetched,
            self._error_slot, picks, answer, self._raise_from_layout, allocate, counter,
            library, tuple(locks))  # `library`: the FastRun holds an address in its code, so keeps it loaded
        for shapes, layout in list(self._layouts.items())[-8:]:  # the latest: a FastRun holds at most 8
            fast.add_layout(layout, shapes, tuple(o[1] for o in layout.outputs), tuple(o[3] for o in layout.outputs),
                            ctypes.addressof(layout.buffers), ctypes.addressof(layout.dims), layout.arena_address,
                            layout.lock)
        return fast

    def _raise_from_layout(self, status: int, index: int, layout: ShapeLayout) -> None:
        self._raise(status, index, layout.shapes)

    def _layout(self, args: list[np.ndarray]) -> ShapeLayout:
        if self._entry is None:
            raise _closed_error()
        # The type rules on the fed shapes: an argmax over an axis fed 0 fails here, before any kernel runs.
        shapes = propagate_shapes(self.function, [a.shape for a in args], "the cpu target")
        for op in self.program.kernel_ops:
            check_no_hidden_broadcast(op, shapes)
        temps = [value_bytes(v, shapes) for v in self.plan.temps]
        offsets, peak = self.plan.layout(temps)
        check_run_fits(self.function, self.plan, shapes, peak)  # before allocating, once per set of shapes
        slots = [0] * (len(self.program.dims) + len(offsets) + 2)
        for (value, axis), slot in self.program.dims.slots.items():
            slots[slot] = shapes[value][axis]
        slots[len(self.program.dims):len(self.program.dims) + len(offsets)] = offsets
        result_shapes = [shapes[v] for v in self.function.entry.ops[-1].operands]
        outputs = [(self.plan.donated.get(j), shape, dtype, math.prod(shape) * dtype.itemsize <= SMALL_BYTES)
                   for j, (shape, dtype) in enumerate(zip(result_shapes, self._result_dtypes))]
        for donor, shape, dtype, small in outputs:
            size = size_class(math.prod(shape) * dtype.itemsize)
            if donor is None and not small and size not in self._pool_classes:
                self._pool_classes.add(size)
                default_allocator().reserve(size)
        if self._dump:
            os.makedirs(os.path.dirname(self._dump) or ".", exist_ok=True)  # no pass may have dumped yet
            with open(self._dump, "a") as f:
                f.write(f"arguments {[a.shape for a in args]}: scratch arena peak {peak} bytes\n")
        scratch = arena(peak)[0] if peak else None
        layout = ShapeLayout(outputs, shapes, (ctypes.c_int64 * len(slots))(*slots), peak, scratch,
                             address_of(scratch) if scratch is not None else 0, threading.Lock(), self._buffers_type())
        if self.max_layouts is not None and len(self._layouts) >= self.max_layouts:
            del self._layouts[next(iter(self._layouts))]  # the oldest; a call still using it holds it
        self._layouts[tuple(a.shape for a in args)] = layout
        return layout

    def profile(self) -> list[dict]:
        """Per kernel, in the entry point's order: its kind, the ops it computes, calls and total
        milliseconds so far. Only for a build made with FLOWC_PROFILE=1 (else an error)."""
        if not self.profiling:
            raise FlowcError("no profile: this function was compiled without FLOWC_PROFILE=1")
        if self.library is None:
            raise FlowcError("no profile: this compiled function was closed")
        count = 2 * max(len(self.program.kernel_ops), 1)
        table = self.library.data(ctypes.c_int64 * count, PROFILE_SYMBOL)
        rows = []
        for number, op in enumerate(self.program.kernel_ops):
            rows.append({"kernel": number, "kind": op.kind, "ops": kernel_op_names(op), "calls": table[2 * number + 1],
                         "ms": table[2 * number] / 1e6})
        return rows

    def memory_peak_bytes(self, arg_shapes: list[tuple[int, ...]]) -> int:
        """Bytes of scratch the memory plan needs for these argument shapes (outputs not counted)."""
        args = [np.empty(s, v.type.dtype.np) for s, v in zip(arg_shapes, self.function.args)]
        return (self._layouts.get(tuple(arg_shapes)) or self._layout(args)).arena_bytes

    def _raise(self, status: int, index: int, shapes: dict) -> None:
        """A kernel found a bad index or a false check: raise_kernel_failure."""
        raise_kernel_failure(self.program.kernel_ops[status - 1], index, shapes)


def raise_kernel_failure(kernel: Operation, index: int, shapes: dict) -> None:
    """Kernel `kernel` (a fusion op) found a bad index (gather, an integer slice, a row op) or a false check
    at `index`: raise the error that says which op, which index, which range (or the check's message).
    The CPU's error slots and the gpu target's error flags (Note [error flags] in codegen/triton/kernel.py)
    both come here."""
    check = next((o for o in kernel.walk() if o.name == "check"), None)
    if check is not None:  # an assert or check_numerics (ir/ops/checks.py)
        raise CheckFailed(failure_message(check.message, index), op=check.display_name, where=check.loc)
    collective = next((o for o in kernel.walk() if o.name in COLLECTIVES), None)
    if collective is not None:  # codegen/llvm/kernels/collective.py: the MPI shim's return code
        raise CollectiveError(collective_failure(index), op=collective.display_name, where=collective.loc)
    indexed = ("gather", "gather_nd", "scatter_add", "slice", "read_row", "write_row", "where_indices")
    op = next((o for o in kernel.walk() if o.name in indexed), kernel)
    if op.name == "where_indices":  # kernels/dims.py: `index` is the rows it found (more: the limit)
        rows = shapes[op.operands[1]][0]
        found = f"more than {rows}" if index >= rows else str(index)
        raise RuntimeShapeError(f"cond has {found} true elements, its rows operand says {rows}",
                                op=op.display_name, where=op.loc)
    if op.name in ("read_row", "write_row"):
        message = f"row index {index} is out of range [0, {shapes[op.operands[0]][0]}) at run time"
    elif op.name in ("gather", "scatter_add"):
        size = shapes[op.operands[0]][op.axis % op.operands[0].type.rank]
        message = f"index {index} is out of range [0, {size}) at run time"
    elif op.name == "gather_nd":
        message = f"index {index} is out of range at run time for params of shape {list(shapes[op.operands[0]])}"
    else:
        message = f"index {index} is out of range at run time for {list(shapes[op.operands[0]])}" \
            if op.operands else f"index {index} is out of range at run time"
    raise IndexOutOfRange(message, op=op.display_name, where=op.loc)


def _closed_error() -> FlowcError:
    return FlowcError("this compiled function was closed (its Session was closed)")


def address_of(array: np.ndarray) -> int:
    """The address of an array's data, without `array.ctypes.data`, which builds a ctypes object (slower)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError):  # read-only or empty
        return array.ctypes.data


class AddressMemo:
    """Addresses of arrays passed before, by identity: a Session passes the same variable buffers
    (and often the same feeds) run after run. Weak references, so no array is kept alive. An
    ndarray's data moves only when `resize` changes its size, so the size is checked too."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[weakref.ref, int, int]] = {}

    def of(self, array: np.ndarray) -> int:
        known = self._known.get(id(array))
        if known is not None and known[0]() is array and known[2] == array.nbytes:
            return known[1]
        address = address_of(array)
        if len(self._known) > 256:  # dead entries pile up when every run feeds new arrays
            self._known = {k: v for k, v in self._known.items() if v[0]() is not None}
            if len(self._known) > 128:  # mostly live ones: start over rather than prune on every call
                self._known.clear()
        self._known[id(array)] = (weakref.ref(array), address, array.nbytes)
        return address


SMALL_BYTES = 1 << 16  # below this malloc is cheap and page faults are few: skip the caching allocator
