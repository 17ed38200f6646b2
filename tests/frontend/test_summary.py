"""fc.summary and FileWriter: event files read back by tensorboard's own EventAccumulator (scalar
values and steps, histogram statistics and buckets, images, the graph), on both targets; a summary
is a fetch (Note [summaries are fetches] in compiler/summary.py) that adds nothing to the graph."""

import io
import zlib

import numpy as np
import pytest

import flowc as fc

ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
from tensorboard.compat.proto import summary_pb2  # noqa: E402

TARGETS = ("reference", "cpu")


def read_back(logdir: str):  # type: ignore[no-untyped-def]
    accumulator = ea.EventAccumulator(str(logdir), size_guidance={ea.HISTOGRAMS: 0, ea.IMAGES: 0, ea.SCALARS: 0})
    accumulator.Reload()
    return accumulator


def model():  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 2], name="x")
        w = fc.Variable(np.array([[1.0], [-1.0]], np.float32), name="w")
        loss = fc.reduce_mean(fc.square(fc.matmul(x, w)), name="loss")
        train = fc.train.GradientDescentOptimizer(0.1).minimize(loss)
        fc.summary.scalar("loss", loss)
        fc.summary.histogram("weights", w)
        merged = fc.summary.merge_all()
        init = fc.global_variables_initializer()
    return g, x, w, loss, train, merged, init


@pytest.mark.parametrize("target", TARGETS)
def test_scalars_and_histograms_written_per_step_read_back_by_tensorboard(target: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    g, x, w, loss, train, merged, init = model()
    data = np.array([[1.0, 2.0], [3.0, 0.5], [-1.0, 1.0]], np.float32)
    losses, weights = [], []
    writer = fc.summary.FileWriter(tmp_path, graph=g)
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        for step in range(4):
            value, summary, now, _ = sess.run([loss, merged, w, train], {x: data})
            assert isinstance(summary, bytes)
            losses.append(value), weights.append(now)
            writer.add_summary(summary, global_step=step * 10)
    writer.close()
    events = read_back(tmp_path)
    scalars = events.Scalars("loss")
    assert [e.step for e in scalars] == [0, 10, 20, 30]
    np.testing.assert_allclose([e.value for e in scalars], losses, rtol=1e-6)
    histograms = events.Histograms("weights")
    assert [h.step for h in histograms] == [0, 10, 20, 30]
    for event, values in zip(histograms, weights):
        histo = event.histogram_value
        assert histo.num == 2 and histo.min == pytest.approx(values.min()) and histo.max == pytest.approx(values.max())
        assert histo.sum == pytest.approx(values.sum()) and histo.sum_squares == pytest.approx((values ** 2).sum())
        assert sum(histo.bucket) == 2
        limits = np.array(histo.bucket_limit)
        for v in values.reshape(-1):  # each value counted in the bucket (limit[i-1], limit[i]]
            i = int(np.searchsorted(limits, v))
            assert histo.bucket[i] >= 1 and (i == 0 or limits[i - 1] < v <= limits[i])
    assert events.Tags()["graph"]
    nodes = {node.name: node for node in events.Graph().node}
    assert nodes["loss"].op == "reduce_mean" and nodes["x"].op == "Placeholder"
    assert set(nodes) == {op.name for op in g.get_operations()}
    matmul = next(node for node in nodes.values() if node.op == "matmul")
    assert list(matmul.input)[0] == "x"


def test_a_summary_adds_no_graph_op_and_a_run_without_it_compiles_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [3], name="x")
        y = fc.reduce_sum(x * x)
        count = len(g.get_operations())
        s = fc.summary.scalar("y", y)
        fc.summary.histogram("x", x)
        assert len(g.get_operations()) == count
        assert fc.summary.merge_all() is not None
    with fc.Session(target="cpu", graph=g) as sess:
        assert sess.run(y, {x: [1.0, 2.0, 3.0]}) == 14.0
        (plan,) = sess._plans.values()
        assert list(plan.compiled.signature.fetches) == [y]  # the summaries' tensors are not fetched
        parsed = summary_pb2.Summary.FromString(sess.run(s, {x: [1.0, 2.0, 3.0]}))
        assert [(v.tag, v.simple_value) for v in parsed.value] == [("y", 14.0)]


@pytest.mark.parametrize("target", TARGETS)
def test_images_are_pngs_of_the_batch(target: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        pictures = fc.placeholder(fc.float32, [None, 2, 3, 1], name="pictures")
        summary = fc.summary.image("digits", pictures * 2.0, max_outputs=2)
    batch = np.arange(3 * 6, dtype=np.float32).reshape(3, 2, 3, 1)
    with fc.Session(target=target, graph=g) as sess, fc.summary.FileWriter(tmp_path) as writer:
        writer.add_summary(sess.run(summary, {pictures: batch}), 5)
    events = read_back(tmp_path)
    assert sorted(events.Tags()["images"]) == ["digits/image/0", "digits/image/1"]
    for i in range(2):
        (picture,) = events.Images(f"digits/image/{i}")
        assert (picture.step, picture.width, picture.height) == (5, 3, 2)
        want = np.round(batch[i, :, :, 0] * 255.0 / batch[i].max()).astype(np.uint8)
        assert decode_grey_png(picture.encoded_image_string) == want.tobytes()


def decode_grey_png(png: bytes) -> bytes:
    """The pixel bytes of an 8-bit grey PNG of filter-0 rows, as encode_png writes it."""
    stream = io.BytesIO(png[8:])
    data, width = b"", 0
    while True:
        length = int.from_bytes(stream.read(4), "big")
        kind, body = stream.read(4), stream.read(length)
        stream.read(4)
        if kind == b"IHDR":
            width = int.from_bytes(body[:4], "big")
        elif kind == b"IDAT":
            data += body
        elif kind == b"IEND":
            break
    rows = zlib.decompress(data)
    return b"".join(rows[r + 1:r + 1 + width] for r in range(0, len(rows), width + 1))


def test_merge_of_chosen_summaries_in_nested_fetches_and_errors_name_the_summary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        a = fc.summary.scalar("a", fc.reduce_max(x))
        b = fc.summary.scalar("b", fc.reduce_min(x), family="stats")
        fc.summary.scalar("c", fc.reduce_sum(x))
        both = fc.summary.merge([a, b])
        wrong = fc.summary.scalar("wrong", x)
    with fc.Session(graph=g) as sess:
        out = sess.run({"both": both, "pair": (x, [a])}, {x: [1.0, 5.0]})
        parsed = summary_pb2.Summary.FromString(out["both"])
        assert [(v.tag, v.simple_value) for v in parsed.value] == [("a", 5.0), ("stats/b", 1.0)]
        np.testing.assert_array_equal(out["pair"][0], [1.0, 5.0])
        assert summary_pb2.Summary.FromString(out["pair"][1][0]).value[0].simple_value == 5.0
        with pytest.raises(fc.FlowcError, match="'wrong'.*one value"):
            sess.run(wrong, {x: [1.0, 2.0]})
    writer = fc.summary.FileWriter(tmp_path)
    with pytest.raises(fc.FlowcError, match="fetch it"):
        writer.add_summary(a, 0)
    writer.add_graph(g)
    writer.flush()
    assert read_back(tmp_path).Tags()["graph"]
    writer.close()
