"""fc.TensorArray: a list of same-shaped tensors that a loop fills one element per step.

As in TensorFlow 1, a TensorArray is functional: `write` and `unstack`
return a new TensorArray and leave the old one as it was, and a loop carries
the array as a loop variable (`ta = ta.write(i, x)` in the body).

Note [tensor array storage]
The elements live in one buffer tensor T[capacity, element_shape...]; a
write is the IR op `write_row`, a read `read_row` (ir/ops/rows.py), both
range-checked at run time. The array is composite (Note [composite protocol]
in nest.py): its components are the buffer, and for a dynamic-size array its
size (an int32 scalar) too, so fc.while_loop and fc.cond carry it like any
other loop variable.

- A fixed-size array's buffer has exactly `size` rows.
- A dynamic-size array's buffer has an unknown number of rows in its type
  (relax_shape) and exactly `size()` rows at run time: a write past the end
  grows the buffer to that index (the rows between hold zeros, as many as a
  data_dim of the count says: Note [data-dependent sizes] in data_sized_run.py)
  under an fc.cond, so a read past the size is the read_row range error,
  which names the array and the index. Growing to the index, not doubling, keeps that error exact; the
  price is a copy of the buffer per growth, so a loop that appends to a
  dynamic array copies O(n^2) elements: give a size when it is known. On the
  cpu and gpu targets such a loop is also driven from the host (the growing
  cond holds a data_dim: Note [conds driven from the host] in
  host_driven.py), a few native calls and layouts per write.

The buffer is made when the element shape is first known (element_shape
given fully, or the first write or unstack; unknown dims such as a batch of
None take their size from the value written). An array enters a loop or
cond only with its buffer made; one that has none yet enters an
fc.while_loop as in TensorFlow 1 (infer_shape: the first write fixes the
shape): the body is traced once on a throwaway graph to see the shape its
first write gives the array, and the array enters with an empty buffer of
that shape (`buffers_from_first_writes`; a shape with unknown dims is still
refused, as the buffer's dims would not match the rows written).

What differs from TensorFlow 1: reading an element twice is allowed
(`clear_after_read` changes nothing: values are immutable here), an element
never written reads as zeros, and every element has the same shape
(`infer_shape=False` is accepted, and a write of another shape is an error).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from flowc.ir.errors import FlowcError, FlowcTypeError, GraphError, IndexOutOfRange
from flowc.ir.types import DType, as_dtype, format_shape, int32

from .array_ops import concat, expand_dims, gather, reshape, zeros
from .graph import Operation, Tensor, get_default_graph
from .math_ops import apply, cast, constant, convert_to_tensor, equal, greater, maximum, where
from .sources import user_location
from .state_ops import no_op
from .tensor_shape import plain_dim

Shape = tuple[int | None, ...]


class TensorArray:
    """A TensorFlow 1 TensorArray of `size` elements of `dtype` (dynamic_size: it grows on writes).

    >>> import flowc as fc
    >>> g = fc.Graph()
    >>> with g.as_default():
    ...     ta = fc.TensorArray(fc.float32, size=3)
    ...     ta = ta.write(0, [1.0, 2.0]).write(2, [5.0, 6.0])
    ...     both = ta.stack()
    >>> with fc.Session(graph=g, target="reference") as sess:
    ...     sess.run(both)
    array([[1., 2.],
           [0., 0.],
           [5., 6.]], dtype=float32)
    """

    def __init__(self, dtype: DType | str, size: Any = None, dynamic_size: bool | None = None,
                 clear_after_read: bool | None = None, tensor_array_name: str | None = None, handle: Any = None,
                 flow: Any = None, infer_shape: bool = True, element_shape: Sequence[int | None] | None = None,
                 colocate_with_first_write_call: bool = True, name: str | None = None):
        loc = user_location()
        if handle is not None or flow is not None:
            raise GraphError("a TensorArray from a handle or flow is TensorFlow's resource plumbing, which flowc "
                             "does not have: make one with dtype and size", op="TensorArray", where=loc)
        graph = get_default_graph()
        self._name = graph.unique_name(tensor_array_name or name or "TensorArray", loc)
        self._dtype = as_dtype(dtype)
        self._grows = bool(dynamic_size)
        self._element_shape: Shape | None = None if element_shape is None else _as_shape(element_shape)
        self._buffer: Tensor | None = None
        count = _static_size(size, self._name, self._grows, loc)
        # The size as Python knows it (None: only the run knows it), and the size as a tensor, which the
        # array carries through loops when it can change or is known only at run time.
        self._static_size: int | None = count
        self._size: Tensor | None = constant(count, int32, name=f"{self._name}/size") if self._grows else None
        if self._element_shape is not None and None not in self._element_shape:
            self._buffer = self._new_buffer(zeros(self._element_shape, self._dtype))

    # -- what TensorFlow 1 has -------------------------------------------------------------

    @property
    def dtype(self) -> DType:
        return self._dtype

    @property
    def element_shape(self) -> Shape | None:
        return self._element_shape

    @property
    def dynamic_size(self) -> bool:
        return self._grows

    @property
    def name(self) -> str:
        return self._name

    def size(self, name: str | None = None) -> Tensor:
        """The number of elements, an int32 scalar."""
        if self._size is not None:
            return self._size
        return constant(self._static_size, int32, name=name or f"{self._name}/size")

    def read(self, index: Any, name: str | None = None) -> Tensor:
        """Element `index` (an int or int scalar tensor); one outside [0, size) is an error at run time."""
        buffer = self._require_buffer("read")
        index = self._index(index, "read", check_range=True)
        return apply("read_row", (buffer, index), name=name or f"{self._name}/read")

    def write(self, index: Any, value: Any, name: str | None = None) -> TensorArray:
        """A new TensorArray with element `index` set to `value`; a dynamic-size one grows to hold it."""
        value = self._element(value, "write")
        index = self._index(index, "write", check_range=not self._grows)
        out = self._copy()
        out._element_shape = self._merged_shape(value.type.shape, "write")
        if out._buffer is None:
            out._buffer = out._new_buffer(value)
        if self._grows:
            out._grow_to_hold(index, value)
        out._buffer = apply("write_row", (out._buffer, index, value), name=name or f"{self._name}/write")
        return out

    def stack(self, name: str | None = None) -> Tensor:
        """All elements stacked along a new first axis: [size, element_shape...]."""
        return self._require_buffer("stack")

    def gather(self, indices: Any, element_shape: Any = None, name: str | None = None) -> Tensor:
        """The elements at `indices`, stacked (each index in [0, size), checked at run time)."""
        indices = convert_to_tensor(indices)
        if indices.dtype.kind != "int":
            raise FlowcTypeError(f"indices must be int32 or int64, got {indices.type}", op=self._label("gather"),
                                 where=user_location())
        return gather(self._require_buffer("gather"), indices, name=name or f"{self._name}/gather")

    def unstack(self, value: Any, name: str | None = None) -> TensorArray:
        """A new TensorArray whose elements are value[0], value[1], ... (for a fixed size: exactly `size`)."""
        value = convert_to_tensor(value)
        loc = user_location()
        if value.dtype != self._dtype or value.type.rank == 0:
            raise FlowcTypeError(f"unstack takes a {self._dtype.name} tensor of rank >= 1, got {value.type}",
                                 op=self._label("unstack"), where=loc)
        rows = value.type.shape[0]
        out = self._copy()
        out._element_shape = self._merged_shape(value.type.shape[1:], "unstack")
        if self._static_size is not None and not self._grows:
            if rows is not None and rows != self._static_size:
                raise FlowcTypeError(f"unstack of {rows} elements into an array of size {self._static_size}",
                                     op=self._label("unstack"), where=loc)
            out._buffer = value if rows is not None else apply(
                "ensure_shape", (value,), shape=(self._static_size, *(-1 for _ in value.type.shape[1:])),
                name=name or f"{self._name}/unstack")
            return out
        out._buffer = relaxed_rows(value) if self._grows else value
        out._size = count_rows(value) if rows is None else constant(rows, int32, name=f"{self._name}/size")
        out._static_size = rows
        return out

    def scatter(self, indices: Any, value: Any, name: str | None = None) -> TensorArray:
        """A new TensorArray with element indices[k] set to value[k] for each k.

        Indices of a known length are written one by one; of a length known
        only at run time, by an fc.while_loop.
        """
        indices = convert_to_tensor(indices)
        value = self._element(value, "scatter")
        loc = user_location()
        if indices.type.rank != 1 or indices.dtype.kind != "int":
            raise FlowcTypeError(f"scatter takes a vector of int32 or int64 indices, got {indices.type}",
                                 op=self._label("scatter"), where=loc)
        count = indices.type.shape[0]
        if value.type.rank == 0 or None not in (count, value.type.shape[0]) and value.type.shape[0] != count:
            raise FlowcTypeError(f"scatter of {count} indices takes a value of {count} rows, got {value.type}",
                                 op=self._label("scatter"), where=loc)
        if count is not None:
            out = self
            for k in range(count):
                out = out.write(indices[k], value[k])
            return out
        return self._scatter_in_a_loop(indices, value)

    def _scatter_in_a_loop(self, indices: Tensor, value: Tensor) -> TensorArray:
        from .control_flow import while_loop  # control flow is built on the graph ops this module uses

        out = self._copy()
        out._element_shape = self._merged_shape(value.type.shape[1:], "scatter")
        if out._buffer is None:
            out._buffer = out._new_buffer(row_zeros(value))
        with get_default_graph().name_scope(f"{self._name}/scatter"):
            positions = TensorArray.from_buffer(indices, "indices")
            rows = TensorArray.from_buffer(value, "rows")
            count = count_rows(indices)
            _, out = while_loop(lambda k, array: k < count,
                                lambda k, array: (k + 1, array.write(positions.read(k), rows.read(k))), [0, out])
        return out

    def concat(self, name: str | None = None) -> Tensor:
        """The elements joined along their first axis: [size * element_shape[0], element_shape[1:]...]."""
        stacked = self.stack()
        if stacked.type.rank < 2:
            raise FlowcTypeError(f"concat needs elements of rank >= 1, the elements are {stacked.type}",
                                 op=self._label("concat"), where=user_location())
        rest = stacked.type.shape[2:]
        if None in rest:
            raise FlowcTypeError(f"concat needs the elements' dims after the first known, got {stacked.type}",
                                 op=self._label("concat"), where=user_location())
        return reshape(stacked, [-1, *rest], name=name or f"{self._name}/concat")

    def identity(self) -> TensorArray:
        return self._copy()

    def close(self, name: str | None = None) -> Operation:
        """An op that does nothing: the array's buffer is freed when nothing reads it."""
        return no_op(name=name or f"{self._name}/close")

    def __repr__(self) -> str:
        shape = "?" if self._element_shape is None else format_shape(self._element_shape)
        size = "dynamic" if self._grows else self._static_size
        return f"<fc.TensorArray '{self._name}' size={size} element_shape={shape} dtype={self._dtype.name}>"

    # -- Note [composite protocol] --------------------------------------------------------------

    def _flowc_components(self) -> list[Tensor]:
        buffer = self._require_buffer("loop variable", "carry it through a loop or cond")  # nest.flatten
        return [buffer] if self._size is None else [buffer, self._size]

    def _flowc_rebuild(self, components: Sequence[Tensor]) -> TensorArray:
        out = self._copy()
        out._buffer = components[0]
        if self._size is not None:
            out._size = components[1]
            out._static_size = None if self._grows else self._static_size  # a loop may grow it
        return out

    # -- inside -------------------------------------------------------------------------------------

    @classmethod
    def from_buffer(cls, buffer: Tensor, name: str) -> TensorArray:
        """A fixed-size array holding the rows of `buffer`, however many the run gives it (functional ops)."""
        out = object.__new__(cls)
        out._name = get_default_graph().unique_name(name, user_location())
        out._dtype, out._grows, out._element_shape, out._buffer = buffer.dtype, False, buffer.type.shape[1:], buffer
        out._static_size = buffer.type.shape[0]
        out._size = count_rows(buffer) if out._static_size is None else None
        return out

    def _copy(self) -> TensorArray:
        out = object.__new__(TensorArray)
        out.__dict__.update(self.__dict__)
        return out

    def _label(self, method: str) -> str:
        return f"TensorArray '{self._name}'.{method}"

    def _require_buffer(self, method: str, doing: str | None = None) -> Tensor:
        """The buffer; without one (Note [tensor array storage]) an error saying what to give."""
        if self._buffer is not None:
            return self._buffer
        shape = "unknown" if self._element_shape is None else f"{format_shape(self._element_shape)} (not all known)"
        raise GraphError(f"cannot {doing or method + ' it'}: its element shape is {shape} and no element is written "
                         "yet; give element_shape=[...] with every dim, or write an element first",
                         op=self._label(method), where=user_location())

    def _new_buffer(self, like: Tensor) -> Tensor:
        """Zeros of [size, like's shape]; unknown dims of `like` (and a dynamic size) taken at run time."""
        zero_row = zeros_like_any(like)
        with get_default_graph().name_scope(self._name):
            if zero_row.type.is_static:
                buffer = zeros([self._static_size, *zero_row.type.shape], self._dtype, name="buffer")
            else:
                buffer = where(constant(False), expand_dims(zero_row, 0),
                               zeros([self._static_size, *(1 for _ in zero_row.type.shape)], self._dtype),
                               name="buffer")
        return relaxed_rows(buffer) if self._grows else buffer

    def _grow_to_hold(self, index: Tensor, value: Tensor) -> None:
        """Make the buffer (and size) reach index + 1 when it is shorter: Note [tensor array storage]."""
        from .control_flow import cond  # control flow is built on the graph ops this module uses

        size = self._size
        needed = index + 1 if index.dtype == int32 else cast(index + 1, int32)
        buffer = self._buffer

        def grown() -> Tensor:
            # The count of new rows is data: a data_dim, where the host reads it (Note [tensor array storage]).
            rows = apply("data_dim", (needed - size,), name="extra_rows")
            return concat([buffer, zero_rows(rows, zeros_like_any(value))], 0)

        with get_default_graph().name_scope(f"{self._name}/grow"):
            self._buffer = cond(greater(needed, size), grown, lambda: buffer)
            self._size = maximum(size, needed)
        self._static_size = None

    def _element(self, value: Any, method: str) -> Tensor:
        try:
            value = convert_to_tensor(value, dtype=self._dtype)
        except FlowcTypeError as error:
            raise FlowcTypeError(f"the array holds {self._dtype.name}: {error.detail}", op=self._label(method),
                                 where=user_location()) from None
        return value

    def _merged_shape(self, shape: Shape, method: str) -> Shape:
        """The element shape once an element of `shape` is added (the array itself is left as it is)."""
        known = self._element_shape
        if known is not None and (len(known) != len(shape) or any(
                a is not None and b is not None and a != b for a, b in zip(known, shape))):
            raise FlowcTypeError(f"elements of this array are {format_shape(known)}, got one of "
                                 f"{format_shape(shape)}; every element has the same shape",
                                 op=self._label(method), where=user_location())
        merged = shape if known is None else tuple(a if a is not None else b for a, b in zip(known, shape))
        return tuple(merged)

    def _index(self, index: Any, method: str, check_range: bool) -> Tensor:
        loc = user_location()
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            if index < 0 or (check_range and self._static_size is not None and index >= self._static_size):
                raise IndexOutOfRange(f"index {int(index)} is out of range [0, {self._static_size})",
                                      op=self._label(method), where=loc)
            return constant(int(index), int32)
        tensor = convert_to_tensor(index)
        if tensor.dtype.kind != "int" or tensor.type.rank != 0:
            raise FlowcTypeError(f"the index must be an int or an int32/int64 scalar, got {tensor.type}",
                                 op=self._label(method), where=loc)
        return tensor


def buffers_from_first_writes(loop_vars: list[Any], body: Callable[..., Any], label: str,
                              as_tensors: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """`loop_vars` with each array that has no buffer yet given an empty one of the element shape the first
    write in `body` gives it (Note [tensor array storage]); as they were where none lacks one. `as_tensors`
    makes the other loop variables tensors, as the loop does."""
    from .func_graph import trace  # late: it imports the graph ops this module uses too

    missing = [k for k, v in enumerate(loop_vars) if isinstance(v, TensorArray) and v._buffer is None]
    if not missing:
        return loop_vars
    others = iter(as_tensors([v for k, v in enumerate(loop_vars) if k not in missing]))
    loop_vars = [v if k in missing else next(others) for k, v in enumerate(loop_vars)]  # converted once

    def with_arrays(*args: Any) -> Any:
        given = iter(args)
        return body(*(v if k in missing else next(given) for k, v in enumerate(loop_vars)))

    outer = get_default_graph()
    sub_graphs = getattr(outer, "_sub_graphs", 0)
    tensors = [v for k, v in enumerate(loop_vars) if k not in missing]
    try:  # a throwaway trace: the loop's own comes after, on the arrays with their buffers
        written = trace(with_arrays, tensors, name="body", purpose=f"the body of {label}", owner=label,
                        allows_random=True, repeats=True).structured_outputs
    except FlowcError:
        return loop_vars  # the loop's own trace says what is wrong (an array still without a buffer, say)
    finally:
        outer._sub_graphs = sub_graphs  # the seeds of later sub-graphs stay as they would be
    if not isinstance(written, (list, tuple)) or len(written) != len(loop_vars):
        return loop_vars
    return [_with_buffer(v, written[k]) if k in missing else v for k, v in enumerate(loop_vars)]


def _with_buffer(array: TensorArray, written: Any) -> TensorArray:
    shape = written._element_shape if isinstance(written, TensorArray) else None
    if shape is None or None in shape:
        return array  # no element written, or of dims only the run knows: the loop's trace refuses it
    out = array._copy()
    out._element_shape = shape
    out._buffer = out._new_buffer(zeros(shape, out._dtype))
    return out


def zeros_like_any(tensor: Tensor) -> Tensor:
    """Zeros of `tensor`'s shape, unknown dims included (their sizes come from `tensor` at run time)."""
    if tensor.type.is_static:
        return zeros(tensor.type.shape, tensor.dtype)
    return where(constant(False), tensor, zeros([], tensor.dtype))  # its shape, none of its values


def relaxed_rows(buffer: Tensor) -> Tensor:
    """`buffer` with its number of rows unknown to its type: a growing array's buffer changes it."""
    if buffer.type.shape[0] is None:
        return buffer
    return apply("relax_shape", (buffer,), axes=(0,))


def row_zeros(tensor: Tensor) -> Tensor:
    """Zeros of one row of `tensor` (its shape without the first dim), also when it has no rows."""
    if tensor.type.is_static or None not in tensor.type.shape[1:]:
        return zeros(tensor.type.shape[1:], tensor.dtype)
    counts = apply("reduce_sum", (cast(equal(tensor, tensor), int32),), axes=(0,), keepdims=False)
    return cast(zeros_like_any(counts), tensor.dtype)  # the row's shape, taken at run time


def zero_rows(rows_like: Tensor, zero_row: Tensor) -> Tensor:
    """Zeros [n, zero_row's shape...], n the first dim of `rows_like` (taken at run time when unknown)."""
    count = rows_like.type.shape[0]
    if count is not None and zero_row.type.is_static:
        return zeros([count, *zero_row.type.shape], zero_row.dtype)
    if count is not None:
        rows = zeros([count, *(1 for _ in zero_row.type.shape)], zero_row.dtype)
    else:
        rows = cast(_one_per_row(rows_like), zero_row.dtype)  # n values, none of them used
        for _ in zero_row.type.shape:
            rows = expand_dims(rows, -1)
    return where(constant(False), rows, expand_dims(zero_row, 0))  # [n, 1...] against [1, row...]


def count_rows(tensor: Tensor) -> Tensor:
    """The size of `tensor`'s first axis, an int32 scalar, also when only the run knows it."""
    if tensor.type.shape[0] is not None:
        return constant(tensor.type.shape[0], int32)
    ones = where(constant(True), constant(1, int32), _one_per_row(tensor))  # a 1 per row
    return apply("reduce_sum", (ones,), axes=(0,), keepdims=False)


def _one_per_row(tensor: Tensor) -> Tensor:
    """An int32 vector [n] for `tensor` [n, ...], its values of no use: only its length, known at run time.

    It reads the first element of each row, tensor[:, :1, :1, ...] summed over the later axes, and not
    tensor[:, 0, 0, ...], which is out of range when a later dim is 0 (map_fn over [n, 0] elems is n
    empty elements, not an error).
    """
    if tensor.type.rank == 1:
        return cast(equal(tensor, tensor), int32)
    head = tensor[(slice(None), *(slice(0, 1) for _ in tensor.type.shape[1:]))]
    return apply("reduce_sum", (cast(equal(head, head), int32),), axes=tuple(range(1, tensor.type.rank)),
                 keepdims=False)


def _as_shape(shape: Sequence[int | None]) -> Shape:
    return tuple(None if d is None or d == -1 else int(d) for d in map(plain_dim, shape))


def _static_size(size: Any, name: str, dynamic: bool, loc: str | None) -> int:
    """The size as an int: a Python int, or a constant tensor's value."""
    if size is None:
        if dynamic:
            return 0
        raise GraphError("a TensorArray needs a size, or dynamic_size=True", op=f"TensorArray '{name}'", where=loc)
    if isinstance(size, Tensor) and size.op.type == "Const":
        size = size.op.attrs["value"]
    if isinstance(size, (int, np.integer, np.ndarray)) and not isinstance(size, bool) and np.ndim(size) == 0:
        if int(size) < 0:
            raise GraphError(f"the size must be >= 0, got {int(size)}", op=f"TensorArray '{name}'", where=loc)
        return int(size)
    raise GraphError(f"the size must be an int known when the graph is built (or a constant), got {size!r}; "
                     "for a size known only at run time, use dynamic_size=True", op=f"TensorArray '{name}'",
                     where=loc)
