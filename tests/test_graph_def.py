"""Graphs as versioned JSON documents: as_graph_def -> JSON text -> import_graph_def
runs the same as the graph it came from, bit for bit, and bad documents are refused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FetchError, FlowcError, GraphError

PAYLOAD_NAN = np.array([0x7FC00123], np.uint32).view(np.float32)[0]  # a NaN with payload bits to keep

CONSTANTS = {
    "special": np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, PAYLOAD_NAN, 3.4028235e38], np.float32),
    "f64": np.array([np.pi, 1 / 3, 5e-324, -0.0, np.nan, -np.inf, 1e308], np.float64),
    "i64": np.array([2**62 + 1, -(2**63), 2**63 - 1, 0], np.int64),
    "i32": np.array([[-(2**31), 2**31 - 1]], np.int32),
    "flags": np.array([True, False, True]),
    "scalar": np.array(-0.0, np.float32),
}


def build_model():
    """A small classifier with everything a graph_def must carry."""
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(42)
        x = fc.placeholder(fc.float32, shape=[None, 4], name="x")
        y = fc.placeholder(fc.int32, shape=[None], name="y")
        with fc.name_scope("dense"):
            w = fc.Variable(fc.random_normal([4, 3], stddev=0.5, seed=1), name="W")
            b = fc.Variable(fc.zeros([3]), name="b")
            with fc.device("/gpu:0"):
                logits = fc.matmul(x, w) + b
        steps = fc.Variable(fc.constant(0, fc.int64), name="steps", trainable=False)
        sparse = fc.reduce_mean(fc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), name="loss")
        dense = fc.reduce_mean(fc.nn.softmax_cross_entropy_with_logits(labels=fc.one_hot(y, 3), logits=logits),
                               name="dense_loss")
        probabilities = fc.nn.softmax(logits, name="probabilities")
        with fc.device("/job:worker/task:1"):
            picked = fc.gather(w, y, name="picked")
        sliced = fc.identity(x[1:, ::-2][..., None], name="sliced")
        hot = fc.one_hot(y, 5, on_value=2.0, off_value=-1.0, axis=0, dtype=fc.float64, name="hot")
        noise = fc.random_uniform([3], minval=-1.0, maxval=1.0, seed=9, name="noise")
        for name, value in CONSTANTS.items():
            fc.constant(value, name=name)
        with fc.control_dependencies([fc.assign_add(steps, fc.constant(1, fc.int64), name="count")]):
            train = fc.group(fc.assign_sub(w, 0.1 * w), fc.assign_sub(b, fc.ones([3]) * 0.01), name="train")
        fc.global_variables_initializer()
    fetches = [t.name for t in (sparse, dense, probabilities, picked, sliced, hot, noise)]
    return g, fetches + [f"{name}:0" for name in CONSTANTS], train.name


FEEDS = {"x:0": np.arange(20, dtype=np.float32).reshape(5, 4) / 7 - 1, "y:0": np.array([0, 2, 1, 1, 0], np.int32)}


def run_model(graph, fetches, train, prefix=""):
    """Fetch everything, train twice, fetch again: every value, bit for bit."""
    feeds = {prefix + k: v for k, v in FEEDS.items()}
    with fc.Session(graph=graph) as sess:
        sess.run(prefix + "init")
        before = sess.run([prefix + f for f in fetches], feeds)
        sess.run(prefix + train)
        sess.run(prefix + train)
        after = sess.run([prefix + f for f in fetches] + [prefix + "dense/W:0", prefix + "steps:0"], feeds)
    return before + after


def assert_bit_equal(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right):
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        assert a.tobytes() == b.tobytes(), (a, b)


def round_trip(graph):
    text = json.dumps(graph.as_graph_def(), allow_nan=False)  # strict JSON: no bare NaN or Infinity
    return json.loads(text)


@pytest.mark.parametrize("name, prefix", [("", ""), (None, "import/"), ("model", "model/")],
                         ids=["no-prefix", "default-prefix", "named"])
def test_round_trip_runs_the_same(name, prefix):
    g, fetches, train = build_model()
    expected = run_model(g, fetches, train)
    document = round_trip(g)
    imported = fc.Graph()
    with imported.as_default():
        returned = fc.import_graph_def(document, **({} if name is None else {"name": name}))
    assert returned is None
    assert_bit_equal(run_model(imported, fetches, train, prefix), expected)
    # sanity of the expected values themselves
    constants = dict(zip(CONSTANTS, expected[7:]))
    special, f64, i64, flags = (constants[k] for k in ("special", "f64", "i64", "flags"))
    assert special.view(np.uint32)[6] == 0x7FC00123 and np.signbit(special[3]) and not np.signbit(special[4])
    assert np.signbit(f64[3]) and f64[2] == 5e-324 and np.isnan(f64[4])
    assert i64.tolist() == [2**62 + 1, -(2**63), 2**63 - 1, 0] and flags.dtype == bool
    w_before, w_after, steps = expected[3], expected[-2], expected[-1]
    assert steps == 2
    np.testing.assert_allclose(w_after[FEEDS["y:0"]], w_before * 0.81, rtol=1e-6)


def test_imported_graph_keeps_structure():
    g, _, train = build_model()
    imported = fc.Graph()
    with imported.as_default():
        fc.import_graph_def(round_trip(g))
    original = {op.name: op for op in g.get_operations()}
    copied = {op.name.removeprefix("import/"): op for op in imported.get_operations()}
    assert original.keys() == copied.keys()
    for name, op in original.items():
        twin = copied[name]
        assert twin.type == op.type, name
        assert [t.name for t in twin.inputs] == ["import/" + t.name for t in op.inputs], name
        assert [c.name for c in twin.control_inputs] == ["import/" + c.name for c in op.control_inputs], name
        assert [t.type for t in twin.outputs] == [t.type for t in op.outputs], name
        assert twin.device == op.device and twin.loc == op.loc, name
    assert copied["dense/add"].device == "/gpu:0" and copied["picked"].device == "/job:worker/task:1"
    assert copied["x"].outputs[0].shape == (None, 4)
    assert copied["dense/W"].loc.startswith("test_graph_def.py:")  # errors still name the user's line
    assert [v.name for v in imported.get_collection("variables")] == ["import/dense/W:0", "import/dense/b:0",
                                                                      "import/steps:0"]
    assert [v.name for v in imported.get_collection("trainable_variables")] == ["import/dense/W:0",
                                                                                "import/dense/b:0"]
    assert imported.seed == 42


def test_import_return_elements_and_json_text():
    g, fetches, train = build_model()
    text = json.dumps(g.as_graph_def())
    imported = fc.Graph()
    with imported.as_default():
        loss, init, w = fc.import_graph_def(text, name="", return_elements=["loss:0", "init", "dense/W:0"])
    assert isinstance(loss, fc.Tensor) and loss.name == "loss:0" and loss.graph is imported
    assert isinstance(init, fc.Operation) and init.name == "init"
    assert w.name == "dense/W/read:0"  # a Variable's value is read through its snapshot
    with fc.Session(graph=imported) as sess, fc.Session(graph=g) as reference:
        sess.run(init)
        reference.run("init")
        expected = [reference.run("loss:0", FEEDS), reference.run("dense/W:0")]
        assert_bit_equal([sess.run(loss, FEEDS), sess.run(w)], expected)
    with fc.Graph().as_default(), pytest.raises(FetchError, match="'nothing:0'"):
        fc.import_graph_def(text, return_elements=["nothing:0"])


def test_write_graph_reads_back(tmp_path):
    g, fetches, train = build_model()
    expected = run_model(g, fetches, train)
    for as_text, file_name in ((True, "model.json"), (False, "compact.json")):
        path = fc.write_graph(g, str(tmp_path / "logs"), file_name, as_text=as_text)
        assert path == str(tmp_path / "logs" / file_name)
        with open(path) as f:
            text = f.read()
        assert ("\n" in text) == as_text
        document = json.loads(text)
        imported = fc.Graph()
        with imported.as_default():
            fc.import_graph_def(document, name="")
        assert_bit_equal(run_model(imported, fetches, train), expected)
    # a graph_def dict writes the same document
    path = fc.write_graph(g.as_graph_def(), str(tmp_path), "from_def.json")
    with open(path) as f, open(tmp_path / "logs" / "model.json") as g_file:
        assert json.load(f) == json.load(g_file)


def test_header_is_versioned():
    g, _, _ = build_model()
    document = g.as_graph_def()
    assert document["format"] == "flowc.GraphDef"
    assert document["version"] == 1
    assert document["seed"] == 42
    node = next(n for n in document["nodes"] if n["name"] == "special")
    assert node["op"] == "Const" and set(node["attrs"]["value"]["array"]) == {"dtype", "shape", "base64"}
    assert node["outputs"] == [{"dtype": "float32", "shape": [8]}]


@pytest.mark.parametrize("change, fragments", [
    ({"format": "tensorflow.GraphDef"}, ["format", "'tensorflow.GraphDef'", "flowc.GraphDef"]),
    ({"format": None}, ["format", "flowc.GraphDef"]),
    ({"version": 2}, ["version 2", "newer", "(1)"]),
    ({"version": "1"}, ["version '1'"]),
], ids=["wrong-format", "no-format", "newer-version", "version-not-int"])
def test_bad_header_is_refused(change, fragments):
    g, _, _ = build_model()
    document = {**g.as_graph_def(), **change}
    if change.get("format", "") is None:
        del document["format"]
    imported = fc.Graph()
    with imported.as_default(), pytest.raises(FlowcError) as info:
        fc.import_graph_def(document)
    assert isinstance(info.value, GraphError)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert imported.get_operations() == []  # nothing half-imported


def test_import_twice_into_one_graph():
    g, fetches, train = build_model()
    document = round_trip(g)
    both = fc.Graph()
    with both.as_default():
        fc.import_graph_def(document, name="a")
        fc.import_graph_def(document, name="b")
    expected = run_model(g, fetches, train)
    assert_bit_equal(run_model(both, fetches, train, "a/"), expected)
    assert_bit_equal(run_model(both, fetches, train, "b/"), expected)
