"""flowc's checkpoint files: what `fc.train.Saver` writes and reads.

A checkpoint with prefix P is two files:

- `P.data`: the tensors' bytes, one after the other, each in C order and little-endian,
  at the offsets the index gives.
- `P.index`: one JSON object, the checkpoint's table of contents:

      {"format": "flowc-checkpoint", "version": 1,
       "data_file": "<basename of P>.data", "data_bytes": 1234, "data_sha256": "<hex>",
       "variables": [{"name": "dense/W", "dtype": "float32", "shape": [3, 4],
                      "offset": 0, "bytes": 48, "crc32": 2915947392}, ...]}

  `name` is the variable's op name (TF1's checkpoint key: "w", "w/Adam", "beta1_power").

Note [atomic checkpoints]: each file is written to a temporary file in the same folder,
flushed and fsynced, then renamed over its final name (rename is atomic on POSIX), the
data first and the index last, and the folder is fsynced after each rename. The index is
the commit point: a crash before it is renamed leaves either no checkpoint at P or the
previous complete one. Should the old index outlive a new data file (a crash between the
two renames while overwriting P), the data's SHA-256 no longer matches and reading raises.
Every read checks sizes and checksums, so a truncated or corrupted checkpoint is a
CheckpointError, never wrong values.
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


def data_path(prefix: str) -> str:
    return prefix + ".data"


def exists(prefix: str) -> bool:
    return os.path.isfile(index_path(prefix))


# -- writing -------------------------------------------------------------------


def write(prefix: str, tensors: dict[str, np.ndarray]) -> None:
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
    index = {"format": FORMAT, "version": VERSION, "data_file": os.path.basename(data_path(prefix)),
             "data_bytes": offset, "data_sha256": digest.hexdigest(), "variables": entries}
    write_atomically(data_path(prefix), b"".join(chunks))
    write_atomically(index_path(prefix), json.dumps(index, indent=1).encode())


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
    for path in (index_path(prefix), data_path(prefix), prefix + ".meta"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# -- reading -------------------------------------------------------------------


def read_index(prefix: str) -> list[Entry]:
    """The entries of checkpoint `prefix`, after checking the index is whole and fits its data file."""
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
        data_bytes = int(document["data_bytes"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"the index {path!r} is malformed ({error!r})", op="checkpoint") from None
    size = _data_size(prefix)
    if size != data_bytes:
        raise CheckpointError(f"the data file {data_path(prefix)!r} holds {size} bytes, its index expects "
                              f"{data_bytes}: it is truncated or from another save", op="checkpoint")
    return entries


def read(prefix: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors `names` (default: all) of checkpoint `prefix`; the whole data file is checked against
    its SHA-256 and every tensor against its CRC-32 first."""
    entries = {e.name: e for e in read_index(prefix)}
    wanted = list(entries) if names is None else names
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise CheckpointError(f"{', '.join(map(repr, missing))} not found in checkpoint {prefix!r}; it holds "
                              f"{', '.join(sorted(entries)) or 'nothing'}", op="checkpoint")
    with open(data_path(prefix), "rb") as f:
        content = f.read()
    _check_whole(prefix, content)
    return {n: _decode(prefix, entries[n], content) for n in wanted}


def _check_whole(prefix: str, content: bytes) -> None:
    with open(index_path(prefix), "rb") as f:
        expected = json.loads(f.read().decode()).get("data_sha256")
    if hashlib.sha256(content).hexdigest() != expected:
        raise CheckpointError(f"the data file {data_path(prefix)!r} does not match its index's SHA-256: "
                              "it is corrupted or from another save", op="checkpoint")


def _decode(prefix: str, entry: Entry, content: bytes) -> np.ndarray:
    raw = content[entry.offset:entry.offset + entry.size]
    if len(raw) != entry.size or zlib.crc32(raw) != entry.crc32:
        raise CheckpointError(f"the bytes of {entry.name!r} in {data_path(prefix)!r} fail their checksum: "
                              "the checkpoint is corrupted", op="checkpoint")
    dtype = np.dtype(as_dtype(entry.dtype).name).newbyteorder("<")
    count = int(np.prod(entry.shape, dtype=np.int64))
    if count * dtype.itemsize != entry.size:
        raise CheckpointError(f"{entry.name!r} claims shape {list(entry.shape)} of {entry.dtype} but has "
                              f"{entry.size} bytes", op="checkpoint")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(entry.shape)


def _data_size(prefix: str) -> int:
    try:
        return os.path.getsize(data_path(prefix))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {prefix!r} has an index but no data file {data_path(prefix)!r}",
                              op="checkpoint") from None
