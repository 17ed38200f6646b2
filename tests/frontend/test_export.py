"""fc.export, fc.load and `flowc compile`: exported libraries called through their C API from Python
(ctypes), against the Session; and the errors for what cannot be exported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import flowc as fc
from flowc.cli import main as flowc_main
from flowc.aot.dims import ExportShapeError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A linear model with a training step, exported once with variables="state" and once "constants"."""
    folder = str(tmp_path_factory.mktemp("export"))
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(1)
        x = fc.placeholder(fc.float32, [None, 5], name="x")
        y = fc.placeholder(fc.float32, [None], name="y")
        W = fc.Variable(fc.random_normal([5, 1]), name="W")
        b = fc.Variable(fc.zeros([1]), name="b")
        prediction = fc.reshape(fc.matmul(x, W) + b, [-1])
        loss = fc.reduce_mean(fc.square(prediction - y))
        train = fc.train.GradientDescentOptimizer(0.1).minimize(loss)
        init = fc.global_variables_initializer()
    sess = fc.Session(graph=g)
    sess.run(init)
    fc.export(os.path.join(folder, "step"), [loss, train], [x, y], session=sess, variables="state")
    fc.export(os.path.join(folder, "predict"), [prediction], [x], session=sess, variables="constants")
    yield folder, sess, {"x": x, "y": y, "loss": loss, "train": train, "prediction": prediction, "W": W, "b": b}
    sess.close()


def test_state_round_trip_updates_variables_like_the_session(trained, rng):
    folder, sess, m = trained
    step = fc.load(os.path.join(folder, "step"))
    assert set(step.variables) == {"W", "b"}
    W0 = sess.run(m["W"])
    assert step.variables["W"].tobytes() == W0.tobytes()
    xs = rng.standard_normal((4, 7, 5)).astype(np.float32)
    ys = rng.standard_normal((4, 7)).astype(np.float32)
    with fc.Session(graph=sess.graph) as twin, sess.graph.as_default():  # starting from the exported values
        twin.run([fc.assign(m["W"], W0), fc.assign(m["b"], sess.run(m["b"]))])
        for xb, yb in zip(xs, ys):
            expected, _ = twin.run([m["loss"], m["train"]], {m["x"]: xb, m["y"]: yb})
            assert step(xb, yb).tobytes() == expected.tobytes()
        assert step.variables["W"].tobytes() == twin.run(m["W"]).tobytes()
    # The views are the context's buffers: a write changes what the next run reads.
    step.variables["W"][:] = 0
    step.variables["b"][:] = 2
    assert step(xs[0], np.full(7, 2, np.float32)) == 0.0
    step.close()


def test_constants_bake_the_values_and_take_any_batch(trained, rng):
    folder, sess, m = trained
    predict = fc.load(os.path.join(folder, "predict"))
    assert predict.variables == {}
    for rows in (0, 1, 3, 64):
        xb = rng.standard_normal((rows, 5)).astype(np.float32)
        got = predict(xb)
        assert got.shape == (rows,)
        assert got.tobytes() == sess.run(m["prediction"], {m["x"]: xb}).tobytes()
    assert predict(rng.standard_normal((2, 5))).dtype == np.float32  # float64 data converted, as a feed is


def test_header_documents_inputs_outputs_variables(trained):
    folder, _, _ = trained
    header = open(os.path.join(folder, "step.h")).read()
    assert " *   0: x  float32 (float), rank 2, dims [-1, 5]" in header
    assert " *   1: y  float32 (float), rank 1, dims [-1]" in header
    assert " *   0: W  float32 (float), rank 2, dims [5, 1]" in header
    assert "#define step_NUM_INPUTS 2" in header and "#define step_NUM_OUTPUTS 1" in header
    assert "#define step_NUM_VARIABLES 2" in header
    for declaration in ("step_context *step_create(void);", "void step_destroy(step_context *ctx);",
                        "int step_output_dims(step_context *ctx, const int64_t *input_dims, int64_t *output_dims);",
                        "int step_run(step_context *ctx, const void *const *inputs, const int64_t *input_dims, "
                        "void *const *outputs);", "const char *step_error(const step_context *ctx);",
                        "void *step_variable(step_context *ctx, int index);"):
        assert declaration in header
    assert 'extern "C"' in header


def test_bad_dims_from_python_are_errors_not_crashes(trained):
    folder, _, _ = trained
    step = fc.load(os.path.join(folder, "step"))
    with pytest.raises(fc.errors.RuntimeShapeError,
                       match=r"input 1 \('y'\) axis 0 is 3 but the other inputs' dims make it 4"):
        step(np.zeros((4, 5), np.float32), np.zeros(3, np.float32))
    with pytest.raises(fc.errors.RuntimeShapeError, match=r"axis 1: expected dim 5, got 4"):
        step(np.zeros((4, 4), np.float32), np.zeros(4, np.float32))
    with pytest.raises(fc.errors.FeedError, match="rank 2"):
        step(np.zeros(4, np.float32), np.zeros(4, np.float32))


def test_function_export_with_specs(tmp_path, rng):
    def f(x, y):
        return fc.reduce_sum(x * y, axis=1), fc.transpose(x)

    fc.export(str(tmp_path / "f"), f, fc.TensorSpec([None, 3], fc.float32), fc.TensorSpec([None, 3], fc.float32))
    loaded = fc.load(str(tmp_path / "f"))
    x = rng.standard_normal((6, 3)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32)
    total, transposed = loaded(x, y)
    np.testing.assert_allclose(total, (x * y).sum(1), rtol=1e-6)
    assert transposed.tobytes() == np.ascontiguousarray(x.T).tobytes()


def test_sizes_that_are_sums_of_dims(tmp_path, rng):
    """concat adds two unknown dims, a reshape to [-1] scales one: both are formulas C evaluates."""
    def f(a, b):
        return fc.concat([a, b], axis=0) * 2.0, fc.reshape(a, [-1])

    fc.export(str(tmp_path / "g"), f, fc.TensorSpec([None, 2], fc.float32), fc.TensorSpec([None, 2], fc.float32))
    loaded = fc.load(str(tmp_path / "g"))
    for n, m in ((1, 4), (3, 0), (5, 2)):
        a = rng.standard_normal((n, 2)).astype(np.float32)
        b = rng.standard_normal((m, 2)).astype(np.float32)
        joined, flat = loaded(a, b)
        assert joined.tobytes() == (np.concatenate([a, b]) * 2).tobytes()
        assert flat.tobytes() == a.ravel().tobytes()


def test_gather_index_out_of_range_is_an_error_code(tmp_path):
    def f(table, index):
        return fc.gather(table, index)

    fc.export(str(tmp_path / "lookup"), f, fc.TensorSpec([4, 2], fc.float32), fc.TensorSpec([None], fc.int32))
    lookup = fc.load(str(tmp_path / "lookup"))
    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    assert lookup(table, np.array([3, 0], np.int32)).tolist() == [[6, 7], [0, 1]]
    with pytest.raises(fc.errors.IndexOutOfRange, match="gather.*index 9 is out of range"):
        lookup(table, np.array([1, 9], np.int32))


def test_specs_that_do_not_fit_the_function(tmp_path):
    def f(x, w):
        return fc.matmul(x, w)

    with pytest.raises(fc.FlowcError, match="spec"):
        fc.export(str(tmp_path / "f"), f, fc.TensorSpec([None, 3], fc.float32))
    with pytest.raises(fc.FlowcError, match="matmul"):
        fc.export(str(tmp_path / "f"), f, fc.TensorSpec([None, 3], fc.float32), fc.TensorSpec([4, 2], fc.float32))
    with pytest.raises(fc.FlowcError, match="TensorSpec"):
        fc.export(str(tmp_path / "f"), f, [1, 2], fc.TensorSpec([4, 2], fc.float32))


def test_a_fetch_that_needs_an_unfed_placeholder(tmp_path):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        z = fc.placeholder(fc.float32, [None], name="z")
        y = x + z
    with pytest.raises(fc.errors.FeedError, match="'z'.*needs a value fed"):
        fc.export(str(tmp_path / "f"), [y], [x])


def test_an_op_the_cpu_target_cannot_compile(tmp_path, monkeypatch):
    from flowc.codegen.llvm import support

    monkeypatch.setitem(support.UNSUPPORTED, "tanh", "not in this test's CPU target")
    with pytest.raises(fc.errors.UnsupportedOpError, match="tanh.*does not compile tanh"):
        fc.export(str(tmp_path / "f"), lambda x: fc.tanh(x), fc.TensorSpec([3], fc.float32))


def test_an_output_folder_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(fc.FlowcError, match="cannot export to .*file"):
        fc.export(str(tmp_path / "file" / "f"), lambda x: x + 1, fc.TensorSpec([3], fc.float32))
    with pytest.raises(fc.FlowcError, match="must be a C identifier"):
        fc.export(str(tmp_path / "bad-name"), lambda x: x + 1, fc.TensorSpec([3], fc.float32))


def test_a_size_no_formula_gives_is_refused(tmp_path):
    with pytest.raises(ExportShapeError, match="not a sum of multiples of the input dims"):
        fc.export(str(tmp_path / "f"), lambda x: x[::2] * 2.0, fc.TensorSpec([None], fc.float32))


def test_variables_without_a_session(tmp_path):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [2], name="x")
        v = fc.Variable(fc.zeros([2]), name="v")
        y = x + v
    with pytest.raises(fc.FlowcError, match="pass session="):
        fc.export(str(tmp_path / "f"), [y], [x])


MODEL_FILE = '''
import flowc as fc

def predict(x, w):
    return fc.nn.softmax(fc.matmul(x, w))
'''


def test_flowc_compile_a_function(tmp_path, capsys, rng):
    (tmp_path / "model.py").write_text(MODEL_FILE)
    code = flowc_main(["compile", f"{tmp_path / 'model.py'}:predict", "--input", "x=float32[None,4]",
                       "--input", "w=float32[4,3]", "-o", str(tmp_path / "out" / "predict")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"wrote {tmp_path / 'out' / 'libpredict.so'}" in out and "predict.h" in out
    assert all(stage in out for stage in ("load:", "trace:", "lower:", "optimize:", "llvm:", "cc:"))
    predict = fc.load(str(tmp_path / "out" / "predict"))
    x = rng.standard_normal((5, 4)).astype(np.float32)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    probabilities = predict(x, w)
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-5)


def test_flowc_compile_a_graph_def(tmp_path, capsys, rng):
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(3)
        x = fc.placeholder(fc.float32, [None, 3], name="x")
        W = fc.Variable(fc.random_normal([3, 2]), name="W")
        loss = fc.reduce_sum(fc.matmul(x, W), name="loss")
        train = fc.train.GradientDescentOptimizer(0.5).minimize(loss)
        init = fc.global_variables_initializer()
    fc.write_graph(g, str(tmp_path), "graph.json")
    code = flowc_main(["compile", str(tmp_path / "graph.json"), "--feed", "x", "--fetch", "loss", "--fetch", train.name,
                       "-o", str(tmp_path / "step"), "--variables", "state", "--target", "cpu"])
    assert code == 0, capsys.readouterr().err
    step = fc.load(str(tmp_path / "step"))
    with fc.Session(graph=g) as sess:
        sess.run(init)
        assert step.variables["W"].tobytes() == sess.run(W).tobytes()  # the initializers' values
        xb = rng.standard_normal((4, 3)).astype(np.float32)
        for _ in range(3):
            expected, _ = sess.run([loss, train], {x: xb})
            assert step(xb).tobytes() == expected.tobytes()


def test_flowc_compile_bad_input_prints_one_line(tmp_path, capsys):
    (tmp_path / "model.py").write_text(MODEL_FILE)
    assert flowc_main(["compile", f"{tmp_path / 'model.py'}:predict", "--input", "x=float32[None,4]",
                       "-o", str(tmp_path / "p")]) == 1
    assert "no --input for w" in capsys.readouterr().err
    assert flowc_main(["compile", f"{tmp_path / 'model.py'}:nothing", "-o", str(tmp_path / "p")]) == 1
    assert "has no function 'nothing'" in capsys.readouterr().err
    assert flowc_main(["compile", f"{tmp_path / 'model.py'}:predict", "--input", "x=float32(4)",
                       "-o", str(tmp_path / "p")]) == 1
    assert "NAME=DTYPE[DIMS]" in capsys.readouterr().err


def test_flowc_compile_as_a_command(tmp_path):
    """The installed command, in a process of its own."""
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL_FILE))
    result = subprocess.run([sys.executable, "-m", "flowc.cli", "compile", "model.py:predict",
                             "--input", "x=float32[None,4]", "--input", "w=float32[4,3]", "-o", "lib/predict"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lib" / "libpredict.so").exists() and (tmp_path / "lib" / "predict.h").exists()


def test_function_that_makes_variables(tmp_path):
    """A traced function's Variables start at their initializers' values: state keeps them in the
    context (NAME_variable), constants bakes them in."""
    def scale(x):
        v = fc.Variable(fc.fill([3], 3.0), name="v")
        return x * v

    spec = fc.TensorSpec([None, 3], fc.float32)
    fc.export(str(tmp_path / "state"), scale, spec)
    fc.export(str(tmp_path / "baked"), scale, spec, variables="constants")
    state, baked = fc.load(str(tmp_path / "state")), fc.load(str(tmp_path / "baked"))
    x = np.ones((2, 3), np.float32)
    assert state(x).tolist() == baked(x).tolist() == [[3.0] * 3] * 2
    state.variables["v"][:] = [1, 2, 3]
    assert state(x).tolist() == [[1.0, 2.0, 3.0]] * 2
    assert baked.variables == {}


THREADS_SCRIPT = '''
import os, sys, numpy as np, flowc as fc
rng = np.random.default_rng(0)
w = rng.standard_normal((784, 512), dtype=np.float32) * 0.05
data = rng.standard_normal((256, 784), dtype=np.float32)
g = fc.Graph()
with g.as_default():
    x = fc.placeholder(fc.float32, [None, 784], name="x")
    y = fc.matmul(x, fc.constant(w))
with fc.Session(graph=g) as sess:
    before = sess.run(y, {x: data})
    fc.export(os.path.join(sys.argv[1], "product"), [y], [x])
    exported = fc.load(os.path.join(sys.argv[1], "product"))(data)
    after = sess.run(y, {x: data})
print(before.tobytes() == exported.tobytes() == after.tobytes())
'''


def test_thread_count_agrees_with_the_sessions_in_one_process(tmp_path):
    """FLOWC_NUM_THREADS=1: the exported library's own pool (and the OpenBLAS it shares with the Session,
    which it adopts when loaded) runs one thread too, so neither changes the other's results."""
    env = {**os.environ, "FLOWC_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, str(tmp_path)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.stdout.strip() == "True", result.stdout + result.stderr


def test_random_ops_continue_the_sessions_run_counter(tmp_path):
    """The context's run counter starts where the Session's was at export: its runs draw what the
    Session's next runs would (counter-based random numbers)."""
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(5)
        x = fc.placeholder(fc.float32, [None], name="x")
        noisy = x + fc.random_normal([4])
    with fc.Session(graph=g) as sess:
        data = np.zeros(4, np.float32)
        sess.run(noisy, {x: data})
        fc.export(str(tmp_path / "noisy"), [noisy], [x], session=sess)
        expected = [sess.run(noisy, {x: data}) for _ in range(2)]
    noisy_c = fc.load(str(tmp_path / "noisy"))
    assert [noisy_c(data).tobytes() for _ in range(2)] == [e.tobytes() for e in expected]
    assert expected[0].tobytes() != expected[1].tobytes()
