"""Graph mechanics (names, scopes, devices, control dependencies, the default
graph) and Session semantics (fetch structures, feeds by name, variables,
TensorFlow-1 ordering of reads and assigns, no aliasing of the Session's state).
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FetchError, FlowcError, GraphError


@pytest.fixture
def g():
    graph = fc.Graph()
    with graph.as_default():
        yield graph


def f32(*values):
    return np.array(values if len(values) != 1 else values[0], np.float32)


def assert_equal(actual, expected):
    expected = np.asarray(expected)
    assert isinstance(actual, np.ndarray) and actual.dtype == expected.dtype, (actual, expected)
    np.testing.assert_array_equal(actual, expected)


# -- names and scopes ---------------------------------------------------------------


def test_unique_names(g):
    x = fc.placeholder(fc.float32, shape=[2], name="x")
    sums = [x + 1, x + 2, fc.add(x, 3)]
    assert [s.op.name for s in sums] == ["add", "add_1", "add_2"]
    assert [s.name for s in sums] == ["add:0", "add_1:0", "add_2:0"]
    assert fc.placeholder(fc.float32, shape=[2], name="x").name == "x_1:0"
    assert fc.identity(x, name="add").name == "add_3:0"  # a user name that is taken gets the next free suffix
    assert fc.identity(x, name="add_5").name == "add_5:0"
    assert fc.identity(x, name="add").name == "add_4:0"
    assert g.get_operation_by_name("add_1") is sums[1].op
    assert g.get_tensor_by_name("add_2:0") is sums[2]
    assert [op.name for op in g.get_operations() if op.type == "add"] == ["add", "add_1", "add_2"]
    assert [op.name for op in g.get_operations() if op.type == "identity"] == ["add_3", "add_5", "add_4"]
    with pytest.raises(GraphError, match="not a valid op name"):
        fc.identity(x, name="bad name!")


def test_name_scope(g):
    x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
    with fc.name_scope("dense") as scope:
        assert scope == "dense/"
        w = fc.Variable(fc.zeros([3, 2]), name="W")
        y = fc.matmul(x, w)
        with fc.name_scope("inner"):
            z = fc.exp(y)
        z2 = fc.exp(y)
    after = fc.exp(x)
    assert y.op.name == "dense/MatMul" and y.name == "dense/MatMul:0"
    assert w.name == "dense/W:0"
    assert z.name == "dense/inner/Exp:0"
    assert z2.name == "dense/Exp:0"
    assert after.name == "Exp:0"
    with g.name_scope("loss"):
        loss = fc.nn.softmax(y)
        with fc.control_dependencies([w.initializer]):
            fresh = w.read_value()
        with fc.name_scope("dense/inner/"):  # ending in "/": that scope itself, not loss/dense/inner
            again = fc.exp(y)
    assert loss.name.startswith("loss/Softmax/")
    # a variable's own ops are named after it, whatever scope they are made in
    assert w.initializer.name == "dense/W/Assign"
    assert w.value().name == "dense/W/read:0"
    assert fresh.name == "dense/W/read_1:0"
    assert again.name == "dense/inner/Exp_1:0"


def test_device_scopes(g):
    x = fc.placeholder(fc.float32, shape=[2], name="x")
    with fc.device("/gpu:0"):
        a = x * 2
        w = fc.Variable(fc.zeros([2]), name="w")
        with fc.device("/job:worker/task:1"):
            b = x * 3
        c = x * 4
    with fc.device("/GPU:1"):
        d = x * 5
    with fc.device("/device:CPU:0"):
        e = x * 6
    f = x * 7
    assert a.op.device == "/gpu:0" and a.device == "/gpu:0"
    assert w.device == "/gpu:0"
    assert b.op.device == "/job:worker/task:1/gpu:0"  # nested scopes merge, as TF1's DeviceSpec
    assert c.op.device == "/gpu:0"  # the inner scope ends with its block
    assert d.op.device == "/gpu:1"
    assert e.op.device == "/cpu:0"
    assert f.op.device == "" and x.op.device == ""
    with pytest.raises(GraphError, match="tpu"):
        with fc.device("/tpu:0"):
            pass
    # devices are recorded, and the reference target runs every op wherever it was placed
    with fc.Session(graph=g) as sess:
        sess.run(w.initializer)
        values = sess.run([a, b, c, d, e, f], {x: f32(1, 2)})
    for value, k in zip(values, [2, 3, 4, 5, 6, 7]):
        assert_equal(value, f32(k, 2 * k))


def test_control_dependencies_recorded(g):
    x = fc.placeholder(fc.float32, shape=[2], name="x")
    first = fc.no_op(name="first")
    second = fc.identity(x, name="second")
    with fc.control_dependencies([first]):
        a = x + 1
        with fc.control_dependencies([second]):  # a tensor stands for its op
            b = x + 2
            with fc.control_dependencies(None):
                c = x + 3
            d = x + 4
        e = x + 5
    f = x + 6
    assert a.op.control_inputs == [first]
    assert b.op.control_inputs == [first, second.op]
    assert c.op.control_inputs == []
    assert d.op.control_inputs == [first, second.op]
    assert e.op.control_inputs == [first]
    assert f.op.control_inputs == []
    grouped = fc.group(a, [b, c.op], name="all")
    assert grouped.name == "all" and grouped.outputs == []
    assert grouped.control_inputs == [a.op, b.op, c.op]
    with fc.Session(graph=g) as sess:
        assert sess.run(grouped, {x: f32(0, 0)}) is None


def test_default_graph():
    fc.reset_default_graph()
    outer = fc.constant(1.0, name="outer")
    default = fc.get_default_graph()
    assert outer.graph is default
    g = fc.Graph()
    with g.as_default() as entered:
        assert entered is g and fc.get_default_graph() is g
        inner = fc.constant(2.0, name="inner")
        h = fc.Graph()
        with h.as_default():
            assert fc.get_default_graph() is h
        assert fc.get_default_graph() is g
    assert inner.graph is g and fc.get_default_graph() is default
    assert g.get_operations() == [inner.op]
    assert [op.name for op in default.get_operations()] == ["outer"]
    with fc.Session() as sess:  # the default graph
        assert_equal(sess.run(outer), f32(1.0))
        with pytest.raises(FetchError):
            sess.run(inner)
    with fc.Session(graph=g) as sess:
        assert_equal(sess.run("inner:0"), f32(2.0))
    fc.reset_default_graph()
    assert fc.get_default_graph() is not default
    with g.as_default(), pytest.raises(GraphError):
        fc.reset_default_graph()


# -- fetches and feeds ----------------------------------------------------------------

Pair = collections.namedtuple("Pair", "first second")


def test_fetch_structures(g):
    x = fc.placeholder(fc.float32, shape=[2], name="x")
    y = fc.multiply(x, 2.0, name="y")
    z = fc.add(x, 1.0, name="z")
    v = fc.Variable(f32(5, 6), name="v")
    init = fc.global_variables_initializer()
    feeds = {x: f32(1, 2)}
    with fc.Session(graph=g) as sess:
        assert sess.run(init) is None
        assert_equal(sess.run(y, feeds), f32(2, 4))
        single_list = sess.run([y], feeds)
        assert isinstance(single_list, list) and len(single_list) == 1
        assert_equal(single_list[0], f32(2, 4))
        pair = sess.run((y, z), feeds)
        assert isinstance(pair, tuple) and len(pair) == 2
        assert_equal(pair[1], f32(2, 3))
        for _ in range(2):  # planned, then from the plan
            flat = sess.run([z, init, y, z, "y:0"], feeds)
            assert isinstance(flat, list) and flat[1] is None
            assert_equal(flat[0], f32(2, 3)), assert_equal(flat[3], f32(2, 3)), assert_equal(flat[4], f32(2, 4))
        named = sess.run(Pair(y, second=z), feeds)
        assert isinstance(named, Pair)
        assert_equal(named.first, f32(2, 4))
        assert_equal(named.second, f32(2, 3))
        nested = sess.run({"a": [y, {"b": z, "c": (v, init)}], "d": init, "e": Pair(v, [z])}, feeds)
        assert set(nested) == {"a", "d", "e"}
        assert_equal(nested["a"][0], f32(2, 4))
        assert_equal(nested["a"][1]["b"], f32(2, 3))
        assert_equal(nested["a"][1]["c"][0], f32(5, 6))
        assert nested["a"][1]["c"][1] is None and nested["d"] is None
        assert isinstance(nested["e"], Pair)
        assert_equal(nested["e"].second[0], f32(2, 3))
        assert sess.run([], feeds) == [] and sess.run({}) == {}
        # Variables and names
        assert_equal(sess.run(v), f32(5, 6))
        assert_equal(sess.run("v:0"), f32(5, 6))
        assert_equal(sess.run("v"), f32(5, 6))
        assert_equal(sess.run("y:0", feeds), f32(2, 4))
        assert_equal(sess.run("y", feeds), f32(2, 4))  # a bare name of an op with outputs: its first output
        assert sess.run("init") is None  # a bare name of an op without outputs: runs it
        assert sess.run(init.name) is None
        first, second = sess.run([y, y], feeds)  # the same tensor twice
        assert_equal(first, f32(2, 4))
        assert_equal(second, f32(2, 4))


def test_feeds_by_tensor_and_name(g):
    x = fc.placeholder(fc.float32, shape=[None], name="x")
    k = fc.placeholder(fc.int32, shape=[], name="k")
    y = x * fc.cast(k, fc.float32)
    with fc.Session(graph=g) as sess:
        for feeds in ({x: [1.0, 2.0], k: 3}, {"x:0": [1.0, 2.0], "k:0": 3}, {"x": f32(1, 2), "k": np.int32(3)},
                      {x: np.array([1, 2], np.float64), "k": np.array(3, np.int64)}):
            assert_equal(sess.run(y, feeds), f32(3, 6))
        assert len(sess._cache) == 1  # the same fed tensors, however they are named
        # feeding a computed tensor replaces it; what it was computed from need not be fed
        assert_equal(sess.run(y * 2, {y: f32(1, 1, 1)}), f32(2, 2, 2))
        with pytest.raises(FetchError, match="'nope'"):
            sess.run(y, {"nope:0": 1.0})


def test_closed_session(g):
    c = fc.constant(1.0)
    sess = fc.Session(graph=g)
    assert_equal(sess.run(c), f32(1.0))
    sess.close()
    with pytest.raises(FlowcError, match="closed"):
        sess.run(c)


# -- variables ------------------------------------------------------------------------


def test_variables_persist_and_assign(g):
    v = fc.Variable(f32(1, 2), name="v")
    i = fc.Variable(np.array([10, 20], np.int64), name="i")
    p = fc.placeholder(fc.float32, shape=[2], name="p")
    set_v = fc.assign(v, p)
    add_v = fc.assign_add(v, f32(1, 1))
    sub_v = v.assign_sub(f32(0.5, 0.5))
    inc_i = i.assign_add(np.array([1, 2], np.int64))
    init = fc.global_variables_initializer()
    assert (v.dtype, i.dtype, v.shape) == (fc.float32, fc.int64, (2,))
    with fc.Session(graph=g) as sess:
        sess.run(init)
        assert_equal(sess.run(v), f32(1, 2))
        assert_equal(sess.run(add_v), f32(2, 3))  # an assign's value is the variable's new value
        assert_equal(sess.run(v), f32(2, 3))  # and it stays for later runs
        assert_equal(sess.run(sub_v), f32(1.5, 2.5))
        assert_equal(sess.run(set_v, {p: f32(7, 8)}), f32(7, 8))
        assert_equal(sess.run(v), f32(7, 8))
        assert_equal(sess.run(inc_i), np.array([11, 22], np.int64))
        assert_equal(sess.run(inc_i), np.array([12, 24], np.int64))
        sess.run(init)  # re-initializing resets every variable
        assert_equal(sess.run(v), f32(1, 2))
        assert_equal(sess.run(i), np.array([10, 20], np.int64))
    with fc.Session(graph=g) as other:  # values live in a Session, not in the graph
        other.run(v.initializer)
        assert_equal(other.run(add_v), f32(2, 3))


def test_variable_initializers(g):
    v = fc.Variable(f32(1, 2), name="v")
    w = fc.Variable(v.initialized_value() * 10, name="w")
    lazy = fc.Variable(lambda: fc.ones([2], fc.int32), name="lazy", trainable=False)
    typed = fc.Variable([1, 2], dtype=fc.float64, name="typed")
    assert typed.dtype == fc.float64
    with fc.Session(graph=g) as sess:
        sess.run(fc.variables_initializer([v]))
        assert_equal(sess.run(v), f32(1, 2))
        sess.run(fc.global_variables_initializer())
        assert_equal(sess.run(w), f32(10, 20))
        assert_equal(sess.run(lazy), np.array([1, 1], np.int32))
        assert_equal(sess.run(typed), np.array([1.0, 2.0]))


def test_trainable_and_global_variables(g):
    a = fc.Variable(fc.zeros([2]), name="a")
    b = fc.Variable(fc.zeros([2]), name="b", trainable=False)
    with fc.name_scope("layer"):
        c = fc.Variable(fc.zeros([1]), name="c")
    assert fc.trainable_variables() == [a, c]
    assert fc.global_variables() == [a, b, c]
    assert [v.name for v in fc.trainable_variables()] == ["a:0", "layer/c:0"]
    other = fc.Graph()
    with other.as_default():
        assert fc.trainable_variables() == [] and fc.global_variables() == []


def test_loss_and_train_in_one_run_see_the_start_value(g):
    x = fc.placeholder(fc.float32, shape=[None, 2], name="x")
    w = fc.Variable(f32([[1.0], [2.0]]), name="w")
    loss = fc.reduce_sum(fc.matmul(x, w))
    train = fc.assign_sub(w, 0.5 * w)
    step = fc.group(train)
    init = fc.global_variables_initializer()
    data = f32([[1.0, 1.0]])
    with fc.Session(graph=g) as sess:
        sess.run(init)
        loss_value, new_w = sess.run([loss, train], {x: data})
        assert_equal(loss_value, f32(3.0))  # computed with w before the update
        assert_equal(new_w, f32([[0.5], [1.0]]))
        assert_equal(sess.run(w), f32([[0.5], [1.0]]))  # updated after the run
        loss_value, none = sess.run([loss, step], {x: data})
        assert_equal(loss_value, f32(1.5))
        assert none is None
        assert_equal(sess.run(w), f32([[0.25], [0.5]]))
        # the order of the fetches does not matter
        none, w_value, loss_value = sess.run([step, w, loss], {x: data})
        assert_equal(loss_value, f32(0.75))
        assert_equal(w_value, f32([[0.25], [0.5]]))
        assert_equal(sess.run(w), f32([[0.125], [0.25]]))


def test_reads_after_an_update_in_control_dependencies(g):
    v = fc.Variable(f32(4, 8), name="v")
    update = fc.assign_sub(v, v * 0.5)
    before = v * 1
    with fc.control_dependencies([update]):
        fresh = v.read_value()
        derived = v + 0  # an op on v created in the block reads after the update
        through_identity = fc.identity(v)
    with fc.control_dependencies([update]):
        with fc.control_dependencies(None):
            cleared = v * 1  # None clears the outer dependencies: the start value
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        values = sess.run([before, fresh, derived, through_identity, cleared])
        assert_equal(values[0], f32(4, 8))
        assert_equal(values[1], f32(2, 4))
        assert_equal(values[2], f32(2, 4))
        assert_equal(values[3], f32(2, 4))
        assert_equal(values[4], f32(4, 8))  # no dependency on the update: the start value
        assert_equal(sess.run(v), f32(2, 4))
        assert_equal(sess.run(cleared), f32(2, 4))  # alone: no update in this run
        assert_equal(sess.run(fresh), f32(1, 2))  # fetching the read runs its update
        assert_equal(sess.run(v), f32(1, 2))


def test_the_same_train_op_twice_updates_twice(g):
    v = fc.Variable(f32(1.0), name="v")
    grow = fc.assign_add(v, 1.0)
    train = fc.group(grow)
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        sess.run(train)
        sess.run(train)
        assert_equal(sess.run(v), f32(3.0))
        assert_equal(sess.run(grow), f32(4.0))
        sess.run(v.initializer)
        assert_equal(sess.run(v), f32(1.0))


def test_chained_assigns_in_one_run(g):
    v = fc.Variable(f32(1.0), name="v")
    first = fc.assign_add(v, 1.0)
    with fc.control_dependencies([first]):
        second = fc.assign_add(v, 10.0)
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        a, b = sess.run([first, second])
        assert_equal(a, f32(2.0))
        assert_equal(b, f32(12.0))
        assert_equal(sess.run(v), f32(12.0))


def test_fetched_values_do_not_alias_variables(g):
    v = fc.Variable(f32(1, 2, 3), name="v")
    grow = fc.assign_add(v, f32(1, 1, 1))
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        fetched = sess.run(v)
        fetched[:] = -1  # writing into what was fetched ...
        assert_equal(sess.run(v), f32(1, 2, 3))  # ... does not change the variable
        updated = sess.run(grow)
        updated[:] = -2
        assert_equal(sess.run(v), f32(2, 3, 4))
        kept = sess.run(v)
        sess.run(grow)  # ... nor does the variable's next value change what was fetched
        assert_equal(kept, f32(2, 3, 4))


def test_session_does_not_keep_the_fed_array(g):
    v = fc.Variable(fc.zeros([3]), name="v")
    p = fc.placeholder(fc.float32, shape=[3], name="p")
    load = fc.assign(v, p)
    passthrough = fc.identity(p)
    data = f32(1, 2, 3)
    with fc.Session(graph=g) as sess:
        sess.run(v.initializer)
        loaded, echoed = sess.run([load, passthrough], {p: data})
        data[:] = 99  # the user reuses their buffer
        assert_equal(sess.run(v), f32(1, 2, 3))
        assert_equal(loaded, f32(1, 2, 3))
        assert_equal(echoed, f32(1, 2, 3))
        fed_back = sess.run(p, {p: data})  # a fed tensor fetched: a copy, not the user's array
        fed_back[:] = 0
        assert_equal(data, f32(99, 99, 99))


def test_assign_type_errors(g):
    v = fc.Variable(fc.zeros([3]), name="v")
    with pytest.raises(FlowcError, match=r"\[4\]"):
        fc.assign(v, fc.zeros([4]))
    with pytest.raises(FlowcError, match=r"float32.*i32\[3\]"):
        fc.assign(v, fc.zeros([3], fc.int32))
    with pytest.raises(GraphError, match="Variable"):
        fc.assign(fc.zeros([3]), 1.0)
    with pytest.raises(FlowcError, match="static shape"):
        fc.Variable(fc.placeholder(fc.float32, shape=[None]), name="w")
