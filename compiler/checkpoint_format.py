"""flowc's checkpoint files: what `fc.train.Saver` writes and reads.

A checkpoint with prefix P is two files:

- `P.data-<the first 16 hex digits of its SHA-256>`: the tensors' bytes, one after the
  other, each in C order and little-endian, at the offsets the index gives.
- `P.index`: one JSON object, the checkpoint's table of contents:

      {"format": "flowc-checkpoint", "version": 1,
       "data_file": "<basename of P>.data-0123456789abcdef", "data_bytes": 1234, "data_sha256": "<hex>",
       "variables": [{"name": "dense/W", "dtype": "float32", "shape": [3, 4],
                      "offset": 0, "bytes": 48, "crc32": 2915947392}, ...],
       "random_counter": 17}

  `name` is the variable's op name (TF1's checkpoint key: "w", "w/Adam", "beta1_power").
  `random_counter` is the Session's run counter of random ops (Note [counter-based random
  numbers] in compiler/random_ops.py), so that dropout after a restore draws what the
  uninterrupted run drew; absent where the writer gave none.

Note [atomic checkpoints]: each file is written to a temporary file in the same folder,
flushed and fsynced, then renamed over its final name (rename is atomic on POSIX), the
data first and the index last, and the folder is fsynced after each rename. The index is
the commit point: a crash before it is renamed leaves either no checkpoint at P or the
previous complete one, whose data file (named by its own content) is still there: saving
over P never writes into the file P's current index names. Data files of P that its index
does not name are deleted once the new index is in place. Every read checks sizes and
checksums (the whole data file's SHA-256, each tensor's CRC-32), so a truncated or
corrupted checkpoint is a CheckpointError, never wrong values.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from dataclasses import dataclass
import numpy as np

from flowc.ir.errors import FlowcError
from flowc.ir.types import as_dtype

FORMAT = "flowc-checkpoint"
VERSION = 1


class CheckpointError(FlowcError, ValueError):
    """A checkpoint that is missing, truncated, corrupted, or lacks a variable asked for."""


@dataclass(frozen=True)
class Entry:
    """One tensor of a checkpoint, as its index describes it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    size: int
    crc32: int


def index_path(prefix: str) -> str:
    return prefix + ".index"


def data_path(prefix: str, sha256: str) -> str:
    return f"{prefix}.data-{sha256[:16]}"


def _data_files(prefix: str) -> list[str]:
    """Every data file of checkpoint `prefix`, named by the index or left by an interrupted save."""
    folder, base = os.path.split(os.path.abspath(prefix))
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [os.path.join(folder, name) for name in names if name.startswith(base + ".data-") and ".tmp" not in name]


def exists(prefix: str) -> bool:
    return os.path.isfile(index_path(prefix))


# -- writing -------------------------------------------------------------------


def write(prefix: str, tensors: dict[str, np.ndarray], random_counter: int | None = None) -> None:
    """Write `tensors` (name -> array) as the checkpoint `prefix`, atomically (Note [atomic checkpoints])."""
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    entries, chunks, offset = [], [], 0
    digest = hashlib.sha256()
    for name, value in tensors.items():
        array = np.asarray(value, order="C")  # (np.ascontiguousarray would make a scalar 1-D)
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        entries.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape),
                        "offset": offset, "bytes": len(raw), "crc32": zlib.crc32(raw)})
        chunks.append(raw)
        digest.update(raw)
        offset += len(raw)
    sha256 = digest.hexdigest()
    data = data_path(prefix, sha256)
    index = {"format": FORMAT, "version": VERSION, "data_file": os.path.basename(data),
             "data_bytes": offset, "data_sha256": sha256, "variables": entries}
    if random_counter is not None:
        index["random_counter"] = random_counter
    write_atomically(data, b"".join(chunks))
    write_atomically(index_path(prefix), json.dumps(index, indent=1).encode())
    for stale in _data_files(prefix):  # an earlier save's data, no index names it any more
        if os.path.abspath(stale) != os.path.abspath(data):
            os.unlink(stale)


def write_atomically(path: str, content: bytes) -> None:
    """`path` holds `content` or what it held before, whatever moment the process dies at."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (where the platform lets a folder be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(descriptor)


def remove(prefix: str) -> None:
    """Delete checkpoint `prefix`, the index first (so it stops being a checkpoint at once)."""
    for path in [index_path(prefix), *_data_files(prefix), prefix + ".meta"]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# -- reading -------------------------------------------------------------------


@dataclass(frozen=True)
class Index:
    """A checkpoint's index, read and checked against the size of its data file."""

    entries: list[Entry]
    data: str  # the data file's path
    data_bytes: int
    data_sha256: str
    random_counter: int | None


def read_index(prefix: str) -> Index:
    """The index of checkpoint `prefix`, after checking it is whole and fits its data file."""
    path = index_path(prefix)
    try:
        with open(path, "rb") as f:
            document = json.loads(f.read().decode())
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {prefix!r}: {path!r} does not exist",
                              op="checkpoint") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"the index {path!r} is corrupted or truncated ({error})", op="checkpoint") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a flowc checkpoint index (expected format {FORMAT!r})",
                              op="checkpoint")
    if document.get("version") != VERSION:
        raise CheckpointError(f"{path!r} has version {document.get('version')!r}; this flowc reads {VERSION}",
                              op="checkpoint")
    try:
        entries = [Entry(e["name"], e["dtype"], tuple(int(d) for d in e["shape"]), int(e["offset"]),
                         int(e["bytes"]), int(e["crc32"])) for e in document["variables"]]
        data_file, data_bytes, sha256 = str(document["data_file"]), int(document["data_bytes"]), \
            str(document["data_sha256"])
        counter = document.get("random_counter")
        counter = None if counter is None else int(counter)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"the index {path!r} is malformed ({error!r})", op="checkpoint") from None
    if os.path.basename(data_file) != data_file:
        raise CheckpointError(f"the index {path!r} names a data file outside its folder: {data_file!r}",
                              op="checkpoint")
    data = os.path.join(os.path.dirname(path), data_file)
    try:
        size = os.path.getsize(data)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {prefix!r} has an index but its data file {data!r} is missing",
                              op="checkpoint") from None
    if size != data_bytes:
        raise CheckpointError(f"the data file {data!r} holds {size} bytes, its index expects {data_bytes}: "
                              "it is truncated or from another save", op="checkpoint")
    return Index(entries, data, data_bytes, sha256, counter)


def read(prefix: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors `names` (default: all) of checkpoint `prefix`; the whole data file is checked against
    its SHA-256 and every tensor against its CRC-32 first."""
    index = read_index(prefix)
    entries = {e.name: e for e in index.entries}
    wanted = list(entries) if names is None else names
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise CheckpointError(f"{', '.join(map(repr, missing))} not found in checkpoint {prefix!r}; it holds "
                              f"{', '.join(sorted(entries)) or 'nothing'}", op="checkpoint")
    with open(index.data, "rb") as f:
        content = f.read()
    if hashlib.sha256(content).hexdigest() != index.data_sha256:
        raise CheckpointError(f"the data file {index.data!r} does not match its index's SHA-256: "
                              "it is corrupted or from another save", op="checkpoint")
    return {n: _decode(index.data, entries[n], content) for n in wanted}


def _decode(data: str, entry: Entry, content: bytes) -> np.ndarray:
    raw = content[entry.offset:entry.offset + entry.size]
    if len(raw) != entry.size or zlib.crc32(raw) != entry.crc32:
        raise CheckpointError(f"the bytes of {entry.name!r} in {data!r} fail their checksum: "
                              "the checkpoint is corrupted", op="checkpoint")
    dtype = np.dtype(as_dtype(entry.dtype).name).newbyteorder("<")
    count = int(np.prod(entry.shape, dtype=np.int64))
    if count * dtype.itemsize != entry.size:
        raise CheckpointError(f"{entry.name!r} claims shape {list(entry.shape)} of {entry.dtype} but has "
                              f"{entry.size} bytes", op="checkpoint")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(entry.shape)
