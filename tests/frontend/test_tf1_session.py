"""TF1's Graph and Session API as TF1 programs use it (issue 20 items 1 and 8): placeholders without a
shape, dtype names, ConfigProto, the default Session, eval/run, TensorShape, finalize, collections,
deprecated spellings, and the errors that say what to do. Values on reference and cpu."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcError, FlowcTypeError, GraphError
from flowc.runtime import options as run_options

TARGETS = ["reference", "cpu"]
HERE = "test_tf1_session.py"


def line_of(text: str) -> str:
    """'test_tf1_session.py:N' for the line of this file holding `text` (the user's line of an error)."""
    with open(__file__) as f:
        for number, line in enumerate(f, 1):
            if text in line:
                return f"{HERE}:{number}"
    raise AssertionError(text)


# -- placeholders without a shape, dtype names ------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_placeholder_without_shape_is_a_fed_scalar(target):
    g = fc.Graph()
    with g.as_default():
        keep_prob = fc.placeholder(fc.float32)
        x = fc.placeholder(fc.float32, [None, 3])
        y = x * keep_prob
    assert keep_prob.shape.ndims is None and keep_prob.get_shape() == fc.TensorShape(None)
    with pytest.raises(ValueError):
        keep_prob.shape.as_list()
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    with fc.Session(target, graph=g) as sess:
        np.testing.assert_array_equal(sess.run(y, {x: xv, keep_prob: 0.5}), xv * 0.5)


@pytest.mark.parametrize("target", TARGETS)
def test_placeholder_without_shape_takes_another_rank(target):
    g = fc.Graph()
    with g.as_default():
        p = fc.placeholder("float", name="rate")  # the rank-less placeholder
        y = p + 1.0
    with fc.Session(target, graph=g) as sess:  # more in test_unknown_rank.py
        np.testing.assert_array_equal(sess.run(y, {p: np.ones(3)}), np.full(3, 2, np.float32))
        assert sess.run(y, {p: 1}) == 2


@pytest.mark.parametrize("target", TARGETS)
def test_set_shape_gives_a_placeholder_its_rank(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder("float")
        x.set_shape([None, 2])
        s = fc.reduce_sum(x, axis=1)
    assert x.shape.as_list() == [None, 2]
    with fc.Session(target, graph=g) as sess:
        np.testing.assert_array_equal(sess.run(s, {x: [[1, 2], [3, 4]]}), np.float32([3, 7]))


def test_set_shape_errors_name_the_op_and_line():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        x.set_shape([4, None])
        assert x.shape == (4, 3) and x.shape.is_fully_defined()
        with pytest.raises(FlowcTypeError) as info:
            x.set_shape([4, 5])  # incompatible
        assert "Placeholder 'x'" in str(info.value) and line_of("# incompatible") in str(info.value)
        y = fc.placeholder(fc.float32, [None], name="y")
        z = y * 2.0
        with pytest.raises(GraphError, match="ensure_shape") as info:
            z.set_shape([3])  # an op's output
        assert line_of("# an op's output") in str(info.value)
        z.set_shape([None])  # what it has: nothing to do
        with pytest.raises(GraphError, match="right after fc.placeholder") as info:
            y.set_shape([3])  # y is used by z
        assert "Placeholder 'y'" in str(info.value) and line_of("# y is used by z") in str(info.value)


@pytest.mark.parametrize("name, dtype", [("float", fc.float32), ("float32", fc.float32), ("double", fc.float64),
                                         ("float64", fc.float64), ("int32", fc.int32), ("int64", fc.int64),
                                         ("bool", fc.bool), ("half", fc.float16), ("float16", fc.float16)])
def test_dtype_names(name, dtype):
    with fc.Graph().as_default():
        assert fc.placeholder(name, [2]).dtype == dtype
        assert fc.cast(fc.constant([1, 2]), name).dtype == dtype


def test_dtypes_flowc_lacks_say_which_it_has():
    with fc.Graph().as_default(), pytest.raises(FlowcTypeError, match="float16, float32, float64"):
        fc.placeholder("complex64", [2])


# -- Session, ConfigProto, the default Session, eval and run ------------------------------------------


def test_session_takes_tf1_arguments_and_config_sets_the_pool():
    g = fc.Graph()
    with g.as_default():
        c = fc.constant([1.0, 2.0]) * 3.0
    config = fc.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=2,
                            allow_soft_placement=True, log_device_placement=False,
                            gpu_options=fc.GPUOptions(allow_growth=True))
    with fc.Session("", g, config) as sess:
        assert sess.target == "cpu" and sess.graph is g
        assert run_options.current().num_threads == 1
        np.testing.assert_array_equal(sess.run(c), np.float32([3, 6]))
    with fc.Session(graph=g, config=fc.ConfigProto()) as sess:  # 0: the default pool
        assert sess.run_options.num_threads == run_options.RunOptions.from_environment().num_threads
    with pytest.raises(FlowcTypeError, match="ConfigProto"):
        fc.Session(graph=g, config={"intra_op_parallelism_threads": 1})


@pytest.mark.parametrize("target", TARGETS)
def test_eval_and_run_in_the_default_session(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        v = fc.Variable(fc.zeros([2]), name="v")
        step = fc.assign_add(v, fc.ones([2]))
        total = fc.reduce_sum(x * 2.0)
        init = fc.global_variables_initializer()
    with fc.Session(target, graph=g) as sess:  # `with Session()` makes it the default
        assert fc.get_default_session() is sess
        init.run()
        step.op.run()
        step.op.run(session=sess)
        np.testing.assert_array_equal(v.eval(), np.float32([2, 2]))
        v.initializer.run()
        np.testing.assert_array_equal(v.eval(session=sess), np.float32([0, 0]))
        assert total.eval(feed_dict={x: [1, 2, 3]}) == 12
    assert fc.get_default_session() is None
    sess = fc.Session(target, graph=g)
    with sess.as_default():
        init.run()
        assert total.eval({x: [1.0]}) == 2
    assert fc.get_default_session() is None
    assert total.eval({x: [4.0]}, session=sess) == 8
    sess.close()


@pytest.mark.parametrize("target", TARGETS)
def test_interactive_session_is_the_default_until_closed(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [2, 2])
        y = fc.matmul(x, x)
    sess = fc.InteractiveSession(target, graph=g)
    xv = np.float32([[1, 2], [3, 4]])
    np.testing.assert_allclose(y.eval(feed_dict={x: xv}), xv @ xv)
    sess.close()
    assert fc.get_default_session() is None


def test_eval_without_a_session_says_how_to_get_one():
    with fc.Graph().as_default():
        c = fc.constant(1.0, name="c")
        with pytest.raises(FlowcError, match="InteractiveSession") as info:
            c.eval()  # no Session
    assert "Const 'c'" in str(info.value) and line_of("# no Session") in str(info.value)


# -- TensorShape ---------------------------------------------------------------------------------------


def test_tensor_shape():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [None, 784])
        shape = x.get_shape()
        assert isinstance(shape, fc.TensorShape) and x.shape is not None
        assert shape.as_list() == [None, 784] and shape.ndims == 2 and shape.rank == 2
        assert shape[1].value == 784 and int(shape[1]) == 784 and shape[0].value is None
        assert shape[1:].as_list() == [784] and not shape.is_fully_defined()
        assert shape == (None, 784) and shape == [None, 784] and shape != (None, 10)
        assert fc.TensorShape([2, 3]).num_elements() == 6 and fc.TensorShape([2, 3]).is_fully_defined()
        assert shape.is_compatible_with([5, 784]) and not shape.is_compatible_with([5, 10])
        assert shape.merge_with([5, None]).as_list() == [5, 784]
        W = fc.Variable(fc.zeros([784, 10]))
        assert W.get_shape().as_list() == [784, 10] and W.shape[0].value == 784
        y = fc.matmul(x, fc.zeros([int(x.shape[1]), 10]))
        assert y.shape.as_list() == [None, 10] and str(y.shape) == "(?, 10)"


def test_unknown_dim_is_a_dimension_whose_value_is_none():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        batch = x.get_shape()[0].value  # TF1's idiom; raised AttributeError when the dim was None
        assert batch is None and x.get_shape()[1].value == 3 and type(x.shape[1].value) is int
        assert x.shape[0].value is None and x.shape[0] is not None and isinstance(x.shape[0], fc.Dimension)
        assert [d.value for d in x.shape.dims] == [None, 3] and x.shape.as_list() == [None, 3]
    shape = fc.TensorShape([None, 3])
    assert shape[0].value is None and shape[1].value == 3 and fc.Dimension(None).value is None
    assert fc.TensorShape([fc.Dimension(None), fc.Dimension(3)]).as_list() == [None, 3]
    assert fc.TensorShape([-1, 3]) == shape and shape[:1].as_list() == [None]


def test_unknown_dim_compares_as_none():
    shape = fc.TensorShape([None, 3])
    assert shape == (None, 3) and shape == [None, 3] and (None, 3) == shape and shape != (2, 3)
    assert None in shape and shape[0] == None and shape[0] == fc.Dimension(None)  # noqa: E711
    assert shape[0] != 3 and shape[0] != 0 and not shape[0] and shape[1] == 3
    assert hash(shape) == hash((None, 3)) and {shape: 1}[(None, 3)] == 1
    assert repr(shape) == "(None, 3)" and str(shape) == "(?, 3)" and repr(shape[0]) == "None"
    with pytest.raises(TypeError):
        int(shape[0])  # as int(None): an unknown dim has no size
    with pytest.raises(TypeError):
        shape[0] + 1


def test_tensor_shape_methods_with_unknown_dims():
    shape = fc.TensorShape([None, 3])
    assert not shape.is_fully_defined() and shape.num_elements() is None
    assert shape.is_compatible_with([7, 3]) and shape.is_compatible_with([None, None])
    assert not shape.is_compatible_with([7, 4]) and not shape.is_compatible_with([None])
    merged = shape.merge_with([7, None])
    assert merged.as_list() == [7, 3] and merged.is_fully_defined() and merged.num_elements() == 21
    assert shape.merge_with(fc.TensorShape([None, None])).as_list() == [None, 3]
    with pytest.raises(FlowcTypeError):
        shape.merge_with([7, 4])


@pytest.mark.parametrize("target", TARGETS)
def test_shapes_with_unknown_dims_feed_back_into_ops(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        x.set_shape([None, 3])  # what it has already
        assert x.shape[0].value is None and x.shape.as_list() == [None, 3]
        y = fc.matmul(x, fc.ones([x.shape[1].value, 4]))
        assert y.shape[0].value is None and y.shape[1].value == 4 and y.shape == (None, 4)
        s = fc.reduce_sum(y, axis=1)
        assert s.get_shape()[0].value is None and s.shape.dims == [None]
        c = fc.concat([x, x], axis=0)
        assert c.shape[0].value is None and c.shape[1].value == 3
        z = fc.zeros(x.shape[1:])  # a TensorShape as a shape argument
        w = fc.ensure_shape(x + z, x.get_shape())
        r = fc.reshape(w, x.shape)
        p = fc.placeholder(fc.float32, x.shape)  # a placeholder shaped like another
        q = p + 1.0
        assert p.shape == (None, 3) and p.shape[0].value is None and w.shape == r.shape == (None, 3)
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    with fc.Session(target, graph=g) as sess:
        got_y, got_s, got_c, got_r, got_p = sess.run([y, s, c, r, q], {x: xv, p: xv})
    np.testing.assert_array_equal(got_y, xv @ np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(got_s, (xv @ np.ones((3, 4), np.float32)).sum(axis=1))
    np.testing.assert_array_equal(got_c, np.concatenate([xv, xv]))
    np.testing.assert_array_equal(got_r, xv)
    np.testing.assert_array_equal(got_p, xv + 1)


def test_set_shape_fills_unknown_dims():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [None, None])
        assert x.shape[0].value is None and x.shape[1].value is None
        x.set_shape([5, None])
        assert x.shape[0].value == 5 and x.shape[1].value is None and x.shape.as_list() == [5, None]
        x.set_shape(fc.TensorShape([None, 2]))
        assert x.get_shape().as_list() == [5, 2] and x.shape.is_fully_defined()


def test_a_shape_with_unknown_dims_is_refused_where_a_static_one_is_needed():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [None, 3])
        with pytest.raises(FlowcTypeError, match="not a number"):
            fc.random_normal(x.shape)  # the unknown dim is named, not a TypeError from int()
        with pytest.raises(GraphError, match="fully defined"):
            fc.get_variable("w", shape=x.shape)
        assert fc.random_normal(x.shape[1:]).shape == (3,)


# -- Graph: names, finalize, collections ---------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_lookup_by_name_and_finalize(target):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        y = fc.multiply(x, 3.0, name="y")
    assert g.get_tensor_by_name("y:0") is y and g.get_operation_by_name("y") is y.op
    g.finalize()
    with g.as_default(), pytest.raises(GraphError, match="finalized") as info:
        fc.constant(1.0)  # after finalize
    assert line_of("# after finalize") in str(info.value)
    with fc.Session(target, graph=g) as sess:  # a finalized graph still runs
        np.testing.assert_array_equal(sess.run("y:0", {"x:0": [1.0, 2.0]}), np.float32([3, 6]))


def test_module_level_collections():
    g = fc.Graph()
    with g.as_default():
        w = fc.Variable(fc.zeros([2]), name="layer1/w")
        fc.Variable(fc.zeros([2]), name="layer2/w")
        assert fc.get_collection(fc.GraphKeys.TRAINABLE_VARIABLES) == fc.trainable_variables()
        assert fc.get_collection(fc.GraphKeys.GLOBAL_VARIABLES, scope="layer1") == [w]
        loss = fc.constant(1.0)
        fc.add_to_collection(fc.GraphKeys.LOSSES, loss)
        fc.get_collection_ref("extra").append(loss)
        fc.add_to_collections(["a", "b"], loss)
        assert fc.get_collection("losses") == [loss] and g.get_collection("extra") == [loss]
        assert fc.get_collection("a") == fc.get_collection("b") == [loss] and fc.get_collection("none") == []


# -- deprecated spellings ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_deprecated_spellings(target):
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((3, 4)).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 4])
        n = fc.placeholder(fc.int32, [None])
        fetches = {
            "mean": fc.reduce_mean(x, reduction_indices=[1]),
            "sum": fc.reduce_sum(x, reduction_indices=0, keep_dims=True),
            "max": fc.reduce_max(x, 1, keep_dims=True),
            "argmax": fc.argmax(x, dimension=1),
            "arg_max": fc.arg_max(x, 1),
            "arg_min": fc.arg_min(x, dimension=0),
            "to_float": fc.to_float(n),
            "to_int32": fc.to_int32(x),
            "to_int64": fc.to_int64(n),
            "div": fc.div(x, 2.0),
            "integer div": fc.div(n, 2),  # Python 2's / on integers: floor division
        }
    with fc.Session(target, graph=g) as sess:
        got = sess.run(fetches, {x: xv, n: [1, -2]})
    np.testing.assert_allclose(got["mean"], xv.mean(1), rtol=1e-6)
    np.testing.assert_allclose(got["sum"], xv.sum(0, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(got["max"], xv.max(1, keepdims=True))
    np.testing.assert_array_equal(got["argmax"], xv.argmax(1))
    np.testing.assert_array_equal(got["arg_max"], xv.argmax(1))
    np.testing.assert_array_equal(got["arg_min"], xv.argmin(0))
    assert got["to_float"].dtype == np.float32 and got["to_int64"].dtype == np.int64
    np.testing.assert_array_equal(got["to_int32"], xv.astype(np.int32))
    np.testing.assert_array_equal(got["div"], xv / 2)
    np.testing.assert_array_equal(got["integer div"], np.array([1, -2], np.int32) // 2)  # [0, -1]
    assert got["integer div"].dtype == np.int32


def test_deprecated_spelling_errors():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float32, [2, 2])
        with pytest.raises(FlowcTypeError, match="reduction_indices, not both") as info:
            fc.reduce_sum(x, axis=1, reduction_indices=1)  # both spellings
        assert line_of("# both spellings") in str(info.value)
        with pytest.raises(FlowcTypeError, match="cast them to a number") as info:
            fc.div(fc.constant([True]), fc.constant([True]))  # bool div
        assert "div" in str(info.value) and line_of("# bool div") in str(info.value)


# -- item 8: errors that say what to do ---------------------------------------------------------------


def test_random_shape_with_none_says_what_to_do():
    with fc.Graph().as_default():
        with pytest.raises(FlowcTypeError) as info:
            fc.random_uniform([None, 3])  # a None dim
        message = str(info.value)
        assert "random_uniform" in message and line_of("# a None dim") in message and "fc.nn.dropout" in message
        with pytest.raises(FlowcTypeError, match="random_normal"):
            fc.random_normal([fc.placeholder(fc.int32, []), 3])
        assert fc.random_uniform(np.array([2, 3])).shape == (2, 3)


def test_import_graph_def_given_a_path(tmp_path):
    g = fc.Graph()
    with g.as_default():
        fc.multiply(fc.placeholder(fc.float32, [None], name="x"), 2.0, name="y")
    path = fc.write_graph(g, str(tmp_path), "g.json")
    with fc.Graph().as_default():
        with pytest.raises(GraphError, match=r"not the file path .*open\(path\)\.read\(\)") as info:
            fc.import_graph_def(path)  # a path
        assert line_of("# a path") in str(info.value)
        fc.import_graph_def(open(path).read(), name="")  # what the message says works
        assert fc.get_default_graph().get_tensor_by_name("y:0").shape == (None,)


def test_mixed_dtypes_name_the_placeholder_and_say_what_to_do():
    with fc.Graph().as_default():
        x = fc.placeholder(fc.float64, [None, 3], name="features")  # float64 data
        W = fc.Variable(fc.zeros([3, 2]))
        for build in (lambda: fc.matmul(x, W), lambda: x + fc.ones([3]), lambda: fc.ones([3]) * x):
            with pytest.raises(FlowcTypeError, match="one dtype") as info:
                build()
            message = str(info.value)
            assert "Placeholder 'features'" in message and line_of("# float64 data") in message
            assert "make the placeholder float32" in message and "fc.cast" in message


def test_placeholder_without_shape_round_trips_through_graph_def():
    g = fc.Graph()
    with g.as_default():
        fc.placeholder(fc.float32, name="p")
    h = fc.Graph()
    with h.as_default():
        fc.import_graph_def(g.as_graph_def(), name="")
    assert h.get_tensor_by_name("p:0").shape.ndims is None
