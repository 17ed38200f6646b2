"""Vector memory access beyond llvmlite's builder: splats, gathers, scatters, masked loads and stores.

The masked forms let a kernel run a short last block with its lanes past the end switched off; the
gathers and scatters take constant element offsets from one base, which LLVM's x86 backend turns
into one vgather/vscatter with 32-bit indices.
"""

from __future__ import annotations

from llvmlite import ir as ll

from .types import I32, I64, constant_of, declared, from_storage, storage_type, to_storage


def all_lanes(lanes: int) -> ll.Constant:
    """A mask with every lane set."""
    return ll.Constant(ll.VectorType(ll.IntType(1), lanes), [ll.Constant(ll.IntType(1), 1)] * lanes)


def splat(b: ll.IRBuilder, scalar: ll.Value, lanes: int) -> ll.Value:
    vector = ll.VectorType(scalar.type, lanes)
    x = b.insert_element(ll.Constant(vector, ll.Undefined), scalar, ll.Constant(I32, 0))
    return b.shuffle_vector(x, ll.Constant(vector, ll.Undefined), ll.Constant(ll.VectorType(I32, lanes),
                                                                              [ll.Constant(I32, 0)] * lanes))


def _addresses(b: ll.IRBuilder, base: ll.Value, offsets: list[int], item: ll.Type) -> ll.Value:
    """A vector of pointers base + offsets[l] elements. (llvmlite's gep takes no vector index; LLVM's
    x86 backend still finds the base and the 32-bit offsets of a gather or scatter in this form.)"""
    lanes = len(offsets)
    index_vector = ll.VectorType(I64, lanes)
    start = splat(b, b.ptrtoint(base, I64), lanes)
    steps = ll.Constant(index_vector, [ll.Constant(I64, o * _bytes(item)) for o in offsets])
    return b.inttoptr(b.add(start, steps), ll.VectorType(item.as_pointer(), lanes))


def _bytes(item: ll.Type) -> int:
    return {"i1": 1, "i8": 1, "i16": 2, "i32": 4, "i64": 8, "half": 2, "float": 4, "double": 8}[str(item)]


def _vector_name(vector: ll.VectorType) -> str:
    element = str(vector.element)
    names = {"half": "f16", "float": "f32", "double": "f64"}
    return f"v{vector.count}{names.get(element, element)}"


def load_vector(b: ll.IRBuilder, first: ll.Value, dtype, lanes: int) -> ll.Value:  # type: ignore[no-untyped-def]
    """`lanes` consecutive elements from `first` (a pointer to dtype's storage) as one vector of the
    compute type (a float16 vector widened to float)."""
    vector = ll.VectorType(storage_type(dtype), lanes)
    return from_storage(b, b.load(b.bitcast(first, vector.as_pointer()), align=dtype.itemsize), dtype)


def gather(b: ll.IRBuilder, base: ll.Value, offsets: list[int], dtype, mask: ll.Value) -> ll.Value:  # type: ignore[no-untyped-def]
    """The elements at base + offsets[l] where the mask is set, else 0."""
    item = storage_type(dtype)
    lanes = len(offsets)
    vector = ll.VectorType(item, lanes)
    pointers = _addresses(b, b.bitcast(base, item.as_pointer()), offsets, item)
    gather = declared(b.module, f"llvm.masked.gather.{_vector_name(vector)}.v{lanes}p0", vector,
                        [pointers.type, I32, mask.type, vector])
    value = b.call(gather, [pointers, ll.Constant(I32, dtype.itemsize), mask, constant_of(vector, 0)])
    return from_storage(b, value, dtype)


def masked_load(b: ll.IRBuilder, first: ll.Value, dtype, mask: ll.Value) -> ll.Value:  # type: ignore[no-untyped-def]
    """Consecutive elements from `first` where the mask is set, else 0."""
    item = storage_type(dtype)
    vector = ll.VectorType(item, mask.type.count)
    load = declared(b.module, f"llvm.masked.load.{_vector_name(vector)}.p0", vector,
                      [vector.as_pointer(), I32, mask.type, vector])
    value = b.call(load, [b.bitcast(first, vector.as_pointer()), ll.Constant(I32, dtype.itemsize), mask,
                          constant_of(vector, 0)])
    return from_storage(b, value, dtype)


def masked_store(b: ll.IRBuilder, value: ll.Value, first: ll.Value, dtype, mask: ll.Value) -> None:  # type: ignore[no-untyped-def]
    """Lanes to consecutive elements from `first` where the mask is set."""
    item = storage_type(dtype)
    vector = ll.VectorType(item, mask.type.count)
    store = declared(b.module, f"llvm.masked.store.{_vector_name(vector)}.p0", ll.VoidType(),
                       [vector, vector.as_pointer(), I32, mask.type])
    b.call(store, [to_storage(b, value, dtype), b.bitcast(first, vector.as_pointer()), ll.Constant(I32, dtype.itemsize),
                   mask])


def scatter(b: ll.IRBuilder, value: ll.Value, base: ll.Value, offsets: list[int], dtype,  # type: ignore[no-untyped-def]
             mask: ll.Value) -> None:
    """Lanes to base + offsets[l] where the mask is set."""
    item = storage_type(dtype)
    lanes = len(offsets)
    vector = ll.VectorType(item, lanes)
    pointers = _addresses(b, b.bitcast(base, item.as_pointer()), offsets, item)
    scatter = declared(b.module, f"llvm.masked.scatter.{_vector_name(vector)}.v{lanes}p0", ll.VoidType(),
                         [vector, pointers.type, I32, mask.type])
    b.call(scatter, [to_storage(b, value, dtype), pointers, ll.Constant(I32, dtype.itemsize), mask])
