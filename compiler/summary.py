"""fc.summary: TF1's summaries and FileWriter, writing TensorBoard event files with the `tensorboard`
package's own protos (tensorboard.compat.proto) and event file writer.

Note [summaries are fetches]
A summary is not an op of the compiled function: the values it reports are ordinary tensors of the
graph, and turning them into a Summary proto (a histogram's buckets, an image's PNG) is numpy work on
the fetched values. So `fc.summary.scalar` returns a SummaryOp, a fetch like any other: a Session
run that fetches it fetches its tensors beside the user's (one compiled run), then gives the
serialized Summary proto (bytes) in its place. A run that does not fetch it compiles and runs
exactly as if it did not exist: it costs nothing in the compiled step.
"""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any, Callable

import numpy as np

from .graph import Graph, Tensor, get_default_graph
from .math_ops import convert_to_tensor

__all__ = ["FileWriter", "FileWriterCache", "SummaryOp", "histogram", "image", "merge", "merge_all", "scalar"]

SUMMARIES = "summaries"  # TF1's GraphKeys.SUMMARIES: the collection merge_all reads


class SummaryOp:
    """A summary to fetch (Note [summaries are fetches]): `tensors` are fetched, `build` makes the
    Summary values from their arrays."""

    def __init__(self, name: str, tensors: list[Tensor], build: Callable[[list[np.ndarray]], list[Any]],
                 graph: Graph):
        self.name = name
        self.tensors = tensors
        self.build = build
        self.graph = graph

    def serialize(self, arrays: list[np.ndarray]) -> bytes:
        from tensorboard.compat.proto import summary_pb2

        return summary_pb2.Summary(value=self.build(arrays)).SerializeToString()

    def __repr__(self) -> str:
        return f"<fc.summary {self.name!r}>"


def _summary(name: str, tensors: list[Tensor], build: Callable[[list[np.ndarray]], list[Any]],
             collections: list[str] | None) -> SummaryOp:
    graph = tensors[0].graph if tensors else get_default_graph()
    op = SummaryOp(name, tensors, build, graph)
    for key in (SUMMARIES,) if collections is None else collections:
        graph.add_to_collection(key, op)
    return op


def scalar(name: str, tensor: Any, collections: list[str] | None = None, family: str | None = None) -> SummaryOp:
    """A summary of one number under tag `name` (TF1's tf.summary.scalar); the tensor must hold one element."""
    from tensorboard.compat.proto import summary_pb2

    tensor = convert_to_tensor(tensor)
    tag = f"{family}/{name}" if family else name

    def build(arrays: list[np.ndarray]) -> list[Any]:
        value = np.asarray(arrays[0])
        if value.size != 1:
            from .errors import FlowcError

            raise FlowcError(f"a scalar summary needs one value, got shape {list(value.shape)}", op=f"summary {tag!r}")
        return [summary_pb2.Summary.Value(tag=tag, simple_value=float(value.reshape(-1)[0]))]

    return _summary(tag, [tensor], build, collections)


def _default_bucket_limits() -> np.ndarray:
    """TensorFlow's default histogram bucket edges: +-1e-12 growing by 10% up to 1e20, and 0."""
    positive = []
    edge = 1e-12
    while edge < 1e20:
        positive.append(edge)
        edge *= 1.1
    positive = np.array(positive)
    return np.concatenate([-positive[::-1], [0.0], positive, [np.finfo(np.float64).max]])


BUCKET_LIMITS = _default_bucket_limits()


def histogram_proto(values: np.ndarray) -> Any:
    """A HistogramProto of the values: min, max, count, sum, sum of squares, and the counts of the
    default buckets that hold values (bucket i counts values in (limit[i-1], limit[i]])."""
    from tensorboard.compat.proto import summary_pb2

    flat = np.asarray(values, np.float64).reshape(-1)
    if flat.size == 0:
        return summary_pb2.HistogramProto()
    counts = np.bincount(np.searchsorted(BUCKET_LIMITS, flat, side="left"), minlength=len(BUCKET_LIMITS))
    used = np.flatnonzero(counts)
    kept = slice(max(used[0] - 1, 0), used[-1] + 1)  # one empty bucket in front marks where the first starts
    return summary_pb2.HistogramProto(min=flat.min(), max=flat.max(), num=flat.size, sum=flat.sum(),
                                      sum_squares=np.dot(flat, flat), bucket_limit=BUCKET_LIMITS[kept].tolist(),
                                      bucket=counts[kept].astype(np.float64).tolist())


def histogram(name: str, values: Any, collections: list[str] | None = None, family: str | None = None) -> SummaryOp:
    """A histogram of every element of `values` (TF1's tf.summary.histogram, TF's default buckets)."""
    from tensorboard.compat.proto import summary_pb2

    tensor = convert_to_tensor(values)
    tag = f"{family}/{name}" if family else name
    return _summary(tag, [tensor], lambda arrays: [summary_pb2.Summary.Value(tag=tag, histo=histogram_proto(arrays[0]))],
                    collections)


def encode_png(pixels: np.ndarray) -> bytes:
    """A PNG of uint8 pixels [height, width, channels] (1 grey, 3 RGB, 4 RGBA): one zlib stream of
    filter-0 rows, as the PNG format lays out."""
    height, width, channels = pixels.shape
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """TF1's scaling of a float image: all values >= 0: the largest becomes 255; else 0 becomes 128 and
    the largest magnitude 127. uint8 images pass unchanged."""
    if image.dtype == np.uint8:
        return image
    image = np.asarray(image, np.float64)
    image = np.where(np.isfinite(image), image, 0.0)
    if image.size and image.min() >= 0:
        largest = image.max()
        scaled = image * (255.0 / largest) if largest > 0 else image
    else:
        largest = np.abs(image).max() if image.size else 0.0
        scaled = image * (127.0 / largest) + 128.0 if largest > 0 else image + 128.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def image(name: str, tensor: Any, max_outputs: int = 3, collections: list[str] | None = None,
          family: str | None = None) -> SummaryOp:
    """Up to `max_outputs` images of a [batch, height, width, channels] tensor as PNGs, tagged
    `name/image/i` (`name/image` for a batch of one), as TF1's tf.summary.image."""
    from tensorboard.compat.proto import summary_pb2

    tensor = convert_to_tensor(tensor)
    tag = f"{family}/{name}" if family else name

    def build(arrays: list[np.ndarray]) -> list[Any]:
        batch = np.asarray(arrays[0])
        if batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4):
            from .errors import FlowcError

            raise FlowcError(f"an image summary needs [batch, height, width, 1, 3 or 4], got shape "
                             f"{list(batch.shape)}", op=f"summary {tag!r}")
        values = []
        count = min(max_outputs, batch.shape[0])
        for i in range(count):
            pixels = to_uint8(batch[i])
            picture = summary_pb2.Summary.Image(height=pixels.shape[0], width=pixels.shape[1],
                                                colorspace=pixels.shape[2], encoded_image_string=encode_png(pixels))
            values.append(summary_pb2.Summary.Value(tag=f"{tag}/image" if count == 1 else f"{tag}/image/{i}",
                                                    image=picture))
        return values

    return _summary(tag, [tensor], build, collections)


def merge(inputs: list[Any], collections: list[str] | None = None, name: str | None = None) -> SummaryOp:
    """One summary holding the values of all `inputs`, SummaryOps of this module (TF1's tf.summary.merge;
    unlike TF1 it does not take string tensors of serialized summaries: flowc has no string dtype)."""
    parts = [s for s in inputs if s is not None]
    tensors = list(dict.fromkeys(t for part in parts for t in part.tensors))

    def build(arrays: list[np.ndarray]) -> list[Any]:
        by_tensor = dict(zip(tensors, arrays))
        return [value for part in parts for value in part.build([by_tensor[t] for t in part.tensors])]

    op = SummaryOp(name or "Merge/MergeSummary", tensors, build, parts[0].graph if parts else get_default_graph())
    for key in collections or ():
        op.graph.add_to_collection(key, op)
    return op


def merge_all(key: str = SUMMARIES, scope: str | None = None, name: str | None = None) -> SummaryOp | None:
    """Every summary of the default graph's collection `key` merged into one; None where there is none (as TF1)."""
    summaries = [s for s in get_default_graph().get_collection(key) if isinstance(s, SummaryOp)
                 and (scope is None or s.name.startswith(scope))]
    return merge(summaries, name=name) if summaries else None


# -- the Session's side (Note [summaries are fetches]) --------------------------------------------


def holds_summary(fetches: Any) -> bool:
    if isinstance(fetches, SummaryOp):
        return True
    if isinstance(fetches, (list, tuple)):
        return any(holds_summary(f) for f in fetches)
    if isinstance(fetches, dict):
        return any(holds_summary(f) for f in fetches.values())
    return False


def run_with_summaries(run: Callable[[Any, Any], Any], fetches: Any, feed_dict: Any) -> Any:
    """`run(fetches, feed_dict)` where each SummaryOp in `fetches` becomes the list of its tensors, and
    then the serialized Summary computed from their values."""
    summaries: list[SummaryOp] = []

    def replace(element: Any) -> Any:
        if isinstance(element, SummaryOp):
            summaries.append(element)
            return list(element.tensors)
        if isinstance(element, dict):
            return type(element)((k, replace(v)) for k, v in element.items())
        if isinstance(element, (list, tuple)) and not hasattr(element, "_fields"):
            return type(element)(replace(v) for v in element)
        if isinstance(element, tuple):  # a namedtuple
            return type(element)(*(replace(v) for v in element))
        return element

    answer = run(replace(fetches), feed_dict)
    done = iter(summaries)

    def restore(element: Any, value: Any) -> Any:
        if isinstance(element, SummaryOp):
            return next(done).serialize(list(value))
        if isinstance(element, dict):
            return type(value)((k, restore(element[k], value[k])) for k in element)
        if isinstance(element, (list, tuple)) and not hasattr(element, "_fields"):
            return type(value)(restore(e, v) for e, v in zip(element, value))
        if isinstance(element, tuple):
            return type(value)(*(restore(e, v) for e, v in zip(element, value)))
        return value

    return restore(fetches, answer)


# -- FileWriter -----------------------------------------------------------------------------------


def graph_def_proto(graph: Graph) -> Any:
    """A TensorBoard GraphDef of the graph: per op its name, type, inputs ('op', 'op:1', '^control'),
    device, and its outputs' dtype and shapes as attributes (what TensorBoard's graph view reads)."""
    from tensorboard.compat.proto import attr_value_pb2, graph_pb2, node_def_pb2, tensor_shape_pb2

    nodes = []
    for op in graph.get_operations():
        inputs = [t.op.name if t.value_index == 0 else f"{t.op.name}:{t.value_index}" for t in op.inputs]
        inputs += [f"^{c.name}" for c in op.control_inputs]
        node = node_def_pb2.NodeDef(name=op.name, op=op.type, input=inputs, device=op.device or "")
        shapes = []
        for output in op.outputs:
            dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if d is None else d) for d in output.type.shape]
            shapes.append(tensor_shape_pb2.TensorShapeProto(dim=dims))
        if shapes:
            node.attr["_output_shapes"].CopyFrom(attr_value_pb2.AttrValue(
                list=attr_value_pb2.AttrValue.ListValue(shape=shapes)))
        nodes.append(node)
    return graph_pb2.GraphDef(node=nodes)


class FileWriter:
    """Writes TensorBoard event files into `logdir` (TF1's tf.summary.FileWriter): summaries with
    add_summary, the graph with add_graph (or `graph=` here). Events are queued and written by the
    tensorboard package's writer thread; flush() writes them now, close() finishes the file."""

    def __init__(self, logdir: str, graph: Graph | None = None, max_queue: int = 10, flush_secs: int = 120,
                 filename_suffix: str | None = None, session: Any = None):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(str(logdir), max_queue_size=max_queue, flush_secs=flush_secs,
                                       filename_suffix=filename_suffix or "")
        self._closed = False
        if graph is not None:
            self.add_graph(graph)

    def get_logdir(self) -> str:
        return self._writer.get_logdir()

    def add_event(self, event: Any) -> None:
        if self._closed:
            from .errors import FlowcError

            raise FlowcError("this FileWriter was closed")
        self._writer.add_event(event)

    def _event(self, global_step: int | None, **fields: Any) -> Any:
        from tensorboard.compat.proto import event_pb2

        event = event_pb2.Event(wall_time=time.time(), **fields)
        if global_step is not None:
            event.step = int(global_step)
        return event

    def add_summary(self, summary: Any, global_step: Any = None) -> None:
        """A Summary (serialized bytes, as a fetched summary gives, or a Summary proto) at `global_step`."""
        from tensorboard.compat.proto import summary_pb2

        if isinstance(summary, (bytes, bytearray)):
            summary = summary_pb2.Summary.FromString(bytes(summary))
        if isinstance(summary, SummaryOp):
            from .errors import FlowcError

            raise FlowcError(f"add_summary needs the value of {summary!r}: fetch it with sess.run first")
        step = None if global_step is None else int(np.asarray(global_step))
        self.add_event(self._event(step, summary=summary))

    def add_graph(self, graph: Any, global_step: int | None = None, graph_def: Any = None) -> None:
        """The graph (an fc.Graph, or a Session's) for TensorBoard's graph view."""
        graph = getattr(graph, "graph", graph) if not isinstance(graph, Graph) else graph
        proto = graph_def if graph_def is not None else graph_def_proto(graph)
        self.add_event(self._event(global_step, graph_def=proto.SerializeToString()))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        if not self._closed:
            self._writer.close()
            self._closed = True

    def reopen(self) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        if self._closed:
            self._writer = EventFileWriter(self._writer.get_logdir())
            self._closed = False

    def __enter__(self) -> FileWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class FileWriterCache:
    """One FileWriter per logdir (TF1's tf.summary.FileWriterCache)."""

    _writers: dict[str, FileWriter] = {}

    @classmethod
    def get(cls, logdir: str) -> FileWriter:
        if logdir not in cls._writers:
            cls._writers[logdir] = FileWriter(logdir)
        return cls._writers[logdir]

    @classmethod
    def clear(cls) -> None:
        for writer in cls._writers.values():
            writer.close()
        cls._writers.clear()
