"""Graphs as versioned JSON documents: as_graph_def -> JSON text -> import_graph_def
runs the same as the graph it came from, bit for bit, and bad documents are refused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowc as fc
from flowc.errors import FetchError, FlowcError, FlowcTypeError, GraphError

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


# -- documents that are not graph_defs: a GraphError naming the node and the field, nothing imported --


def small_document():
    """x -> matmul with a constant -> relu, as strict JSON."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
        fc.nn.relu(fc.matmul(x, fc.constant(np.ones((3, 2), np.float32), name="w"), name="mm"), name="out")
    return json.loads(json.dumps(g.as_graph_def(), allow_nan=False))


def node(document, name):
    return next(n for n in document["nodes"] if n["name"] == name)


def refused(document, *fragments, error=(GraphError, FlowcTypeError)):
    """Importing `document` raises `error` (a type rule's own error, else a GraphError) whose
    message holds every fragment; the graph stays empty."""
    imported = fc.Graph()
    with imported.as_default(), pytest.raises(FlowcError) as info:
        fc.import_graph_def(document)
    assert isinstance(info.value, error), repr(info.value)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert imported.get_operations() == [] and imported.get_collection("variables") == []
    return info.value


@pytest.mark.parametrize("text, fragments", [
    ("not json {", ["not valid JSON", "line 1, column 1"]),
    ('{"format": "flowc.GraphDef", "version": 1, "nodes": [{"name": "x"', ["not valid JSON", "cut short"]),
    (b'{"format": "\xff"}', ["not UTF-8"]),
    ("[1, 2]", ["a JSON object", "got a list"]),
    ("null", ["a JSON object", "got null"]),
    ("[" * 100_000, ["too deep"]),
], ids=["garbage", "truncated", "not-utf8", "list", "null", "deep"])
def test_text_that_is_not_a_graph_def_is_refused(text, fragments):
    refused(text, *fragments)


def test_truncated_text_of_a_real_graph_def_is_refused():
    text = json.dumps(small_document())
    for cut in (1, len(text) // 3, len(text) - 1):
        refused(text[:cut], "not valid JSON")


def test_a_python_object_that_is_not_a_dict_is_refused():
    refused(["nodes"], "a JSON object", "got a list")
    refused(42, "a JSON object", "the number 42")


@pytest.mark.parametrize("edit, fragments", [
    (lambda d: d.pop("version"), ["no version", "version 1"]),
    (lambda d: d.update(version=0), ["version 0", "not a version number"]),
    (lambda d: d.update(version=True), ["version True"]),
    (lambda d: d.pop("nodes"), ["graph_def has no field 'nodes'"]),
    (lambda d: d.update(nodes={}), ["graph_def.nodes must be a list, got an object"]),
    (lambda d: d.update(seed="42"), ["graph_def.seed must be an integer or null, got the string '42'"]),
    (lambda d: d["nodes"].append(7), ["nodes[4]: the node must be an object, got the number 7"]),
    (lambda d: node(d, "mm").pop("outputs"), ["matmul 'mm'", "the node has no field 'outputs'"]),
    (lambda d: node(d, "mm").update(inputs="x:0"), ["matmul 'mm'", "inputs must be a list, got the string 'x:0'"]),
    (lambda d: node(d, "mm").update(inputs=["x:0", 3]),
     ["matmul 'mm'", "inputs[1] must be a string, got the number 3"]),
    (lambda d: node(d, "x")["outputs"][0].update(shape=[None, "3"]), ["Placeholder 'x'", "outputs[0].shape[1]"]),
    (lambda d: node(d, "x").update(op=None), ["node 'x'", "op must be a string, got null"]),
    (lambda d: node(d, "out").update(name="mm"), ["relu 'mm'", "names are unique"]),
    (lambda d: node(d, "out").update(name="a//b"), ["relu 'a//b'", "no empty parts"]),
], ids=["no-version", "version-0", "version-bool", "no-nodes", "nodes-object", "seed-string", "node-number",
        "no-outputs", "inputs-string", "input-number", "shape-string", "op-null", "duplicate-name", "empty-part"])
def test_malformed_structure_is_refused(edit, fragments):
    document = small_document()
    edit(document)
    refused(document, *fragments)


def test_errors_name_the_line_that_built_the_node():
    document = small_document()
    node(document, "mm")["inputs"][0] = "nope:0"
    error = refused(document, "inputs[0] 'nope:0' names node 'nope', which the graph_def does not have")
    assert error.op == "matmul 'mm'" and error.where == node(document, "mm")["loc"]
    assert error.where.startswith("test_graph_def.py:")


@pytest.mark.parametrize("edit, fragments", [
    (lambda d: node(d, "mm")["inputs"].__setitem__(0, "nope:0"), ["matmul 'mm'", "'nope:0'", "does not have"]),
    (lambda d: node(d, "mm")["inputs"].__setitem__(0, "out:0"), ["'out:0'", "does not come before it"]),
    (lambda d: node(d, "mm")["inputs"].__setitem__(0, "x:3"), ["'x:3'", "node 'x' has 1 output"]),
    (lambda d: node(d, "mm")["inputs"].__setitem__(0, "x"), ["'x' is not a tensor name"]),
    (lambda d: node(d, "mm")["control_inputs"].append("ghost"), ["control_inputs[0]", "'ghost'", "does not have"]),
    (lambda d: node(d, "mm")["inputs"].pop(), ["matmul 'mm'", "takes 2 operands, got 1"]),
], ids=["missing-node", "later-node", "output-index", "op-as-input", "missing-control", "one-input"])
def test_bad_references_are_refused(edit, fragments):
    document = small_document()
    edit(document)
    refused(document, *fragments)


def test_unknown_op_type_is_refused_at_import():
    document = small_document()
    node(document, "mm")["op"] = "MatMul"
    error = refused(document, "unknown op type 'MatMul'", "did you mean 'matmul'")
    assert error.op == "MatMul 'mm'"
    for structural in ("return", "fusion"):  # cond, while and call import, with their sub-graphs
        node(document, "mm")["op"] = structural
        refused(document, f"unknown op type {structural!r}")


@pytest.mark.parametrize("name, key, value, fragments", [
    ("mm", "transpose_a", {"dtype": 3}, ["matmul 'mm'", "attribute 'transpose_a'", "a dtype is a name"]),
    ("mm", "transpose_a", [1, 2], ["attribute 'transpose_a' must be bool, got tuple (1, 2)"]),
    ("mm", "transpose_a", {"colour": "red"}, ["attribute 'transpose_a'", "one of dtype, array, float, op"]),
    ("mm", "transpose_b", {"float": "1.5"}, ["a tagged float is 'nan', 'inf' or '-inf'"]),
    ("mm", "transpose_b", {"op": "nowhere"}, ["op reference names node 'nowhere'"]),
    ("mm", "transpose_b", json.loads("[" * 40 + "]" * 40), ["nest deeper than 32"]),
    ("mm", "colour", "red", ["matmul 'mm'", "unknown attribute colour"]),
    ("x", "dtype", {"dtype": "complex64"}, ["Placeholder 'x'", "unsupported dtype 'complex64'"]),
    ("x", "shape", [None, -3], ["Placeholder 'x'", "negative dim"]),
    ("x", "shape", [None, 4], ["Placeholder 'x'", "declared outputs [f32[?,3]] but its attributes give [f32[?,4]]"]),
    ("x", "shape", "abc", ["attribute 'shape' must be tuple[int | None, ...], got str 'abc'"]),
    ("w", "value", {"array": {"dtype": "float32", "shape": [3, 2], "base64": "AAAA"}},
     ["Const 'w'", "holds 3 bytes; shape [3, 2] of float32 needs 24"]),
    ("w", "value", {"array": {"dtype": "float32", "shape": [3, 2], "base64": "!!"}}, ["base64 does not decode"]),
    ("w", "value", {"array": {"dtype": "uint32", "shape": [0], "base64": ""}}, ["unsupported dtype 'uint32'"]),
    ("w", "value", {"array": {"dtype": "float32", "shape": [3]}}, ["the array has no field 'base64'"]),
    ("w", "value", 1.5, ["attribute 'value' must be ndarray, got float 1.5"]),
], ids=["dtype-number", "list-for-bool", "unknown-tag", "bad-float", "dangling-op", "deep", "unknown-attr",
        "complex", "negative-dim", "shape-vs-outputs", "shape-string", "short-array", "bad-base64",
        "uint32", "array-fields", "const-float"])
def test_bad_attribute_values_are_refused(name, key, value, fragments):
    document = small_document()
    node(document, name)["attrs"][key] = value
    refused(document, *fragments)


def test_missing_attributes_of_graph_kinds_are_refused():
    document = small_document()
    del node(document, "w")["attrs"]["value"]
    refused(document, "Const 'w'", "has attributes []; a Const has ['value']")


def test_use_locking_survives_the_round_trip_and_nothing_else_is_taken():
    g = fc.Graph()
    with g.as_default():
        v = fc.Variable(fc.zeros([2]), name="v")
        fc.assign_add(v, fc.ones([2]), use_locking=True, name="locked")
        fc.assign_sub(v, fc.ones([2]), name="plain")
    document = round_trip(g)
    imported = fc.Graph()
    with imported.as_default():
        fc.import_graph_def(document, name="")
    assert imported.get_operation_by_name("locked").attrs["use_locking"] is True
    assert imported.get_operation_by_name("plain").attrs["use_locking"] is False
    node(document, "locked")["attrs"]["use_lock"] = True
    refused(document, "AssignAdd 'locked'", "has attributes ['use_lock', 'use_locking', 'var']; a AssignAdd has ['var'] "
                                            "and may have ['use_locking']")
    del node(document, "locked")["attrs"]["use_lock"]
    node(document, "locked")["attrs"]["use_locking"] = "yes"
    refused(document, "attribute 'use_locking' must be bool, got str 'yes'")


def test_variables_must_be_described_consistently():
    g, _, _ = build_model()
    base = round_trip(g)
    document = json.loads(json.dumps(base))
    document["variables"] = [v for v in document["variables"] if v["op"] != "steps"]
    refused(document, "VariableV2 'steps'", "no entry of the graph_def's variables")
    document = json.loads(json.dumps(base))
    document["variables"][0]["initializer"] = "dense/b/Assign"
    refused(document, "variable 'dense/W'", "names Assign 'import/dense/b/Assign', not a Assign of 'import/dense/W'")
    document = json.loads(json.dumps(base))
    document["variables"][0]["op"] = "x"
    refused(document, "variable 'x'", "not a VariableV2")
    document = json.loads(json.dumps(base))
    document["variables"][1]["trainable"] = "yes"
    refused(document, "variable 'dense/b'", "trainable must be true or false")
    document = json.loads(json.dumps(base))
    node(document, "dense/b/read")["attrs"]["var"] = {"op": "dense/W"}
    refused(document, "ReadVariable 'dense/b/read'", "declared outputs [f32[3]] but its attributes give [f32[4,3]]")
    node(document, "dense/b/read")["attrs"]["var"] = {"op": "x"}
    refused(document, "attribute 'var' names Placeholder 'import/x', not a VariableV2")


def test_a_failed_import_leaves_the_graph_as_it_was():
    g = fc.Graph()
    with g.as_default():
        fc.import_graph_def(small_document(), name="first")
        before = [op.name for op in g.get_operations()]
        document = small_document()
        node(document, "out")["op"] = "relu6"  # the last node: everything before it was imported
        with pytest.raises(GraphError, match="unknown op type 'relu6'; did you mean 'relu'"):
            fc.import_graph_def(document, name="first")
        assert [op.name for op in g.get_operations()] == before
        fc.import_graph_def(small_document(), name="first")  # the names it took are free again
    again = [op.name for op in g.get_operations()][len(before):]
    assert again == [f"first/{name}_1" for name in ("x", "w", "mm", "out")]


def test_cli_ir_reports_a_bad_graph_def(tmp_path, capsys):
    from flowc.cli import main

    path = tmp_path / "broken.json"
    path.write_text(json.dumps(small_document())[:-40])
    assert main(["ir", str(path), "--fetch", "out:0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flowc: error: graph_def is not valid JSON") and err.count("\n") == 1


# -- fuzz: a mutated valid document is imported (and run on the reference target) or refused with a FlowcError --

_NAMES = ["x", "w", "mm", "out"]
_SCALARS = (st.none() | st.booleans() | st.integers(-3, 2**65) | st.floats() | st.text(max_size=4)
            | st.sampled_from(_NAMES + [f"{n}:{i}" for n in _NAMES for i in (0, 1)]
                              + ["float32", "int64", "bool", "matmul", "Const", "Placeholder", "nan", "AAAA"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["dtype", "array", "float", "op", "shape", "base64", "name"]), inner, max_size=2), max_leaves=6)


def _places(value):
    """Every (container, key) in a JSON tree."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in list(items):
        yield value, key
        yield from _places(item)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_documents_import_or_raise_flowc_errors(data):
    document = small_document()
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        places = list(_places(document))
        if not places:
            break
        container, key = data.draw(st.sampled_from(places), label="place")
        action = data.draw(st.sampled_from(["replace", "delete", "swap"]), label="action")
        if action == "replace":
            container[key] = data.draw(_VALUES, label="value")
        elif action == "delete":
            del container[key]
        elif isinstance(container, list):
            other = data.draw(st.integers(0, len(container) - 1), label="other")
            container[key], container[other] = container[other], container[key]
    g = fc.Graph()
    try:
        with g.as_default():
            fc.import_graph_def(document, name="")
        with fc.Session(graph=g, target="reference") as sess:
            sess.run("out:0", {"x:0": np.ones((2, 3), np.float32)})
    except FlowcError:
        pass


def test_write_graph_into_a_file_is_a_graph_error(tmp_path):
    g, _, _ = build_model()
    taken = tmp_path / "taken"
    taken.write_text("")
    with pytest.raises(GraphError, match=f"cannot write the graph_def into {str(taken)!r}: it is a file, not a folder"):
        fc.write_graph(g, str(taken), "model.json")
    with pytest.raises(GraphError, match="cannot write the graph_def to .*: Not a directory"):
        fc.write_graph(g, str(taken / "below"), "model.json")


def test_return_elements_must_be_a_list_of_names():
    with fc.Graph().as_default(), pytest.raises(FetchError, match="a list of names, got the string 'x:0'"):
        fc.import_graph_def(small_document(), return_elements="x:0")
    with fc.Graph().as_default(), pytest.raises(FetchError, match="return_elements holds 3, not a name"):
        fc.import_graph_def(small_document(), return_elements=[3])


def test_an_assign_of_the_wrong_type_is_refused():
    g, _, _ = build_model()
    document = round_trip(g)
    node(document, "dense/b/Assign")["inputs"] = ["dense/W/read:0"]
    refused(document, "Assign 'dense/b/Assign'", "assigns 'import/dense/W/read:0' of type f32[4,3] to variable "
                                                 "'import/dense/b' of type f32[3]")


def test_base64_outside_ascii_is_a_graph_error() -> None:
    """Found by the mutation test above: b64decode raises ValueError, not binascii.Error, for '\\x80'."""
    g = fc.Graph()
    with g.as_default():
        fc.constant(np.arange(3, dtype=np.float32), name="c")
    document = g.as_graph_def()
    node = next(n for n in document["nodes"] if n["name"] == "c")
    tagged = next(v for v in node["attrs"].values() if isinstance(v, dict))
    array = next(iter(tagged.values())) if len(tagged) == 1 else tagged
    array["base64"] = "\x80"
    with pytest.raises(FlowcError, match="base64 does not decode"):
        fc.import_graph_def(document, name="")
