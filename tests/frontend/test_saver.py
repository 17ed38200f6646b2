"""fc.train.Saver and the checkpoint files: bit-for-bit continuation, max_to_keep, the state file, corruption."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import flowc as fc
from flowc.checkpoint_format import CheckpointError

TARGETS = ["reference", "cpu"]


def build_model(seed_values: dict[str, np.ndarray], optimizer: str):
    """A small regression with Adam or Momentum and a global step; returns its graph and handles."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
        t = fc.placeholder(fc.float32, shape=[None, 2], name="t")
        W = fc.Variable(seed_values["W"], name="W")
        b = fc.Variable(seed_values["b"], name="b")
        step = fc.Variable(np.int64(0), trainable=False, name="global_step")
        loss = fc.reduce_mean(fc.square(fc.tanh(fc.matmul(x, W) + b) - t))
        make = {"adam": lambda: fc.train.AdamOptimizer(0.05),
                "momentum": lambda: fc.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
                "rmsprop": lambda: fc.train.RMSPropOptimizer(0.01, momentum=0.5, centered=True),
                "adadelta": lambda: fc.train.AdadeltaOptimizer(1.0),
                "ftrl": lambda: fc.train.FtrlOptimizer(fc.train.exponential_decay(0.5, step, 3, 0.7),
                                                       l1_regularization_strength=0.001)}[optimizer]
        train = make().minimize(loss, global_step=step)  # ftrl: a learning rate that decays with the step
        init = fc.global_variables_initializer()
        saver = fc.train.Saver()
    return g, {"x": x, "t": t, "train": train, "init": init, "saver": saver, "step": step}


def problem(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"W": rng.standard_normal((3, 2)).astype(np.float32), "b": rng.standard_normal(2).astype(np.float32),
            "x": rng.standard_normal((16, 3)).astype(np.float32), "t": rng.standard_normal((16, 2)).astype(np.float32)}


def all_values(sess, g) -> dict[str, np.ndarray]:
    with g.as_default():
        variables = fc.global_variables()
    return {v.op.name: sess.run(v) for v in variables}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("optimizer", ["adam", "momentum", "rmsprop", "adadelta", "ftrl"])
def test_restored_run_continues_bit_for_bit(tmp_path, rng, target, optimizer):
    p = problem(rng)
    g, h = build_model(p, optimizer)
    feed = {h["x"]: p["x"], h["t"]: p["t"]}
    with fc.Session(target=target, graph=g) as sess:
        sess.run(h["init"])
        for _ in range(4):
            sess.run(h["train"], feed)
        path = h["saver"].save(sess, str(tmp_path / "model.ckpt"), global_step=h["step"])
        for _ in range(3):
            sess.run(h["train"], feed)
        uninterrupted = all_values(sess, g)
    assert path.endswith("model.ckpt-4")

    g2, h2 = build_model({"W": p["W"] * 0, "b": p["b"] * 0}, optimizer)  # fresh graph, other initial values
    feed2 = {h2["x"]: p["x"], h2["t"]: p["t"]}
    with fc.Session(target=target, graph=g2) as sess:
        sess.run(h2["init"])
        h2["saver"].restore(sess, fc.train.latest_checkpoint(str(tmp_path)))
        for _ in range(3):
            sess.run(h2["train"], feed2)
        continued = all_values(sess, g2)
    assert sorted(continued) == sorted(uninterrupted)
    if optimizer == "adam":  # the slots and powers are in the checkpoint
        assert {"W/Adam", "W/Adam_1", "Adam/beta1_power", "Adam/beta2_power", "global_step"} <= set(continued)
    for name, value in uninterrupted.items():
        assert continued[name].dtype == value.dtype
        assert continued[name].tobytes() == value.tobytes(), name
    assert continued["global_step"] == 7


def simple_graph():
    g = fc.Graph()
    with g.as_default():
        w = fc.Variable(np.arange(6, dtype=np.float64).reshape(2, 3), name="scope/w")
        n = fc.Variable(np.int32([4, 5]), name="n")
        bump = fc.group(fc.assign_add(w, np.ones((2, 3))), fc.assign_add(n, np.int32([1, 1])))
        init = fc.global_variables_initializer()
    return g, w, n, bump, init


@pytest.mark.parametrize("target", TARGETS)
def test_max_to_keep_and_state_file(tmp_path, target):
    g, w, n, bump, init = simple_graph()
    with g.as_default():
        saver = fc.train.Saver(max_to_keep=2)
    prefix = str(tmp_path / "model.ckpt")
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        paths = []
        for step in range(4):
            paths.append(saver.save(sess, prefix, global_step=step))
            sess.run(bump)
    assert paths == [f"{prefix}-{i}" for i in range(4)]
    assert saver.last_checkpoints == paths[2:]
    for old in paths[:2]:
        assert not [f for f in os.listdir(tmp_path) if f.startswith(os.path.basename(old) + ".")]
    state = (tmp_path / "checkpoint").read_text().splitlines()
    assert state == [f'model_checkpoint_path: "{paths[3]}"', f'all_model_checkpoint_paths: "{paths[2]}"',
                     f'all_model_checkpoint_paths: "{paths[3]}"']
    assert fc.train.latest_checkpoint(str(tmp_path)) == paths[3]
    checkpoint_state = fc.train.get_checkpoint_state(str(tmp_path))
    assert checkpoint_state.all_model_checkpoint_paths == paths[2:]
    assert fc.train.list_variables(str(tmp_path)) == [("n", [2]), ("scope/w", [2, 3])]
    np.testing.assert_array_equal(fc.train.load_variable(paths[2], "scope/w:0"), np.arange(6.0).reshape(2, 3) + 2)
    np.testing.assert_array_equal(fc.train.load_variable(str(tmp_path), "n"), np.int32([7, 8]))
    assert fc.train.load_variable(str(tmp_path), "n").dtype == np.int32


def test_relative_paths_pad_and_var_list_dict(tmp_path):
    g, w, n, bump, init = simple_graph()
    with g.as_default():
        saver = fc.train.Saver({"weights": w}, save_relative_paths=True, pad_step_number=True, max_to_keep=None)
    with fc.Session(target="reference", graph=g) as sess:
        sess.run(init)
        first = saver.save(sess, str(tmp_path / "m"), global_step=3, write_meta_graph=False)
        second = saver.save(sess, str(tmp_path / "m"), global_step=12)
    assert first.endswith("m-00000003") and os.path.exists(first + ".index")  # max_to_keep=None deletes nothing
    assert (tmp_path / "checkpoint").read_text() == ('model_checkpoint_path: "m-00000012"\n'
                                                     'all_model_checkpoint_paths: "m-00000012"\n')
    assert fc.train.latest_checkpoint(str(tmp_path)) == second
    assert fc.train.list_variables(second) == [("weights", [2, 3])]
    assert os.path.exists(second + ".meta") and not os.path.exists(first + ".meta")


def test_no_checkpoint_gives_none_and_errors(tmp_path):
    assert fc.train.latest_checkpoint(str(tmp_path)) is None
    g, w, n, bump, init = simple_graph()
    with g.as_default():
        saver = fc.train.Saver()
    with fc.Session(target="reference", graph=g) as sess:
        sess.run(init)
        with pytest.raises(CheckpointError, match="save_path None"):
            saver.restore(sess, fc.train.latest_checkpoint(str(tmp_path)))
        with pytest.raises(CheckpointError, match="does not exist"):
            saver.restore(sess, str(tmp_path / "nothing"))
    with pytest.raises(CheckpointError, match="no variables to save"):
        with fc.Graph().as_default():
            fc.train.Saver()


def saved_checkpoint(tmp_path):
    g, w, n, bump, init = simple_graph()
    with g.as_default():
        saver = fc.train.Saver()
    sess = fc.Session(target="reference", graph=g)
    sess.run(init)
    path = saver.save(sess, str(tmp_path / "model"))
    sess.run(bump)  # now differs from the checkpoint
    return sess, saver, path, w


@pytest.mark.parametrize("damage", ["flip_data", "truncate_data", "truncate_index", "drop_data", "other_data"])
def test_corrupted_checkpoint_is_an_error_and_changes_nothing(tmp_path, damage):
    sess, saver, path, w = saved_checkpoint(tmp_path)
    before = sess.run(w)
    index = path + ".index"
    data = os.path.join(tmp_path, json.loads(open(index).read())["data_file"])
    content = open(data, "rb").read()
    if damage == "flip_data":
        open(data, "wb").write(content[:5] + bytes([content[5] ^ 1]) + content[6:])
    elif damage == "truncate_data":
        open(data, "wb").write(content[:-3])
    elif damage == "truncate_index":
        text = open(index, "rb").read()
        open(index, "wb").write(text[: len(text) // 2])
    elif damage == "drop_data":
        os.unlink(data)
    else:  # a data file of the same size from elsewhere
        open(data, "wb").write(bytes(len(content)))
    with pytest.raises(CheckpointError):
        saver.restore(sess, path)
    np.testing.assert_array_equal(sess.run(w), before)  # all or nothing
    sess.close()


def test_restore_checks_shape_and_dtype(tmp_path):
    sess, saver, path, w = saved_checkpoint(tmp_path)
    sess.close()
    g = fc.Graph()
    with g.as_default():
        fc.Variable(np.zeros((3, 2)), name="scope/w")
        fc.Variable(np.int32([0, 0]), name="n")
        init = fc.global_variables_initializer()
        other = fc.train.Saver()
    with fc.Session(target="reference", graph=g) as sess:
        sess.run(init)
        with pytest.raises(CheckpointError, match=r"float64\[2, 3\]"):
            other.restore(sess, path)
    g = fc.Graph()
    with g.as_default():
        fc.Variable(np.zeros(2), name="missing")
        lonely = fc.train.Saver()
    with fc.Session(target="reference", graph=g) as sess:
        with pytest.raises(CheckpointError, match="'missing' not found"):
            lonely.restore(sess, path)


def test_index_is_documented_json(tmp_path):
    sess, saver, path, w = saved_checkpoint(tmp_path)
    sess.close()
    index = json.loads(open(path + ".index").read())
    assert index["format"] == "flowc-checkpoint"
    assert index["data_file"] == "model.data-" + index["data_sha256"][:16]
    by_name = {e["name"]: e for e in index["variables"]}
    entry = by_name["scope/w"]
    content = open(os.path.join(tmp_path, index["data_file"]), "rb").read()
    raw = content[entry["offset"]: entry["offset"] + entry["bytes"]]
    np.testing.assert_array_equal(np.frombuffer(raw, "<f8").reshape(entry["shape"]), np.arange(6.0).reshape(2, 3))
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]  # no temporary file left behind


def test_crash_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    g, w, n, bump, init = simple_graph()
    with g.as_default():
        saver = fc.train.Saver()
    prefix = str(tmp_path / "model.ckpt")
    with fc.Session(target="reference", graph=g) as sess:
        sess.run(init)
        first = saver.save(sess, prefix, global_step=1)
        saved = sess.run(w)
        sess.run(bump)
        real_replace = os.replace

        def crash_at_the_index(source, destination):
            if destination.endswith(".index"):
                raise KeyboardInterrupt("the process dies here")
            real_replace(source, destination)

        for target_prefix in (prefix, first):  # a new step, then over the existing checkpoint itself
            monkeypatch.setattr(os, "replace", crash_at_the_index)
            with pytest.raises(KeyboardInterrupt):
                saver.save(sess, target_prefix, global_step=2 if target_prefix == prefix else None)
            monkeypatch.setattr(os, "replace", real_replace)
            assert fc.train.latest_checkpoint(str(tmp_path)) == first  # the state file was not touched
            assert not fc.train.checkpoint_exists(prefix + "-2")  # no index: not a checkpoint
            assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
        # the crashed save over `first` wrote a new data file beside the one `first`'s index names
        saver.restore(sess, first)
        np.testing.assert_array_equal(sess.run(w), saved)
        assert len([f for f in os.listdir(tmp_path) if f.startswith("model.ckpt-1.data-")]) == 2
        saver.save(sess, first)  # a save that completes deletes the data file no index names
        assert len([f for f in os.listdir(tmp_path) if f.startswith("model.ckpt-1.data-")]) == 1


def test_restore_moving_averages_through_variables_to_restore(tmp_path):
    g = fc.Graph()
    with g.as_default():
        w = fc.Variable(np.float32([1.0, 2.0]), name="w")
        ema = fc.train.ExponentialMovingAverage(0.5)
        with fc.control_dependencies([fc.assign(w, [3.0, 6.0])]):
            update = ema.apply([w])
        init = fc.global_variables_initializer()
        saver = fc.train.Saver()
    with fc.Session(target="cpu", graph=g) as sess:
        sess.run(init)
        sess.run(update)
        path = saver.save(sess, str(tmp_path / "model"))
    g2 = fc.Graph()
    with g2.as_default():
        w2 = fc.Variable(np.float32([0.0, 0.0]), name="w")
        loader = fc.train.Saver(fc.train.ExponentialMovingAverage(0.5).variables_to_restore())
    with fc.Session(target="cpu", graph=g2) as sess:
        loader.restore(sess, path)
        np.testing.assert_array_equal(sess.run(w2), np.float32([2.0, 4.0]))  # the average, not w's value


@pytest.mark.parametrize("target", TARGETS)
def test_restore_in_a_session_that_already_ran_the_step(tmp_path, rng, target):
    """The compiled step (and its fast run) must see restored values, not the buffers it last wrote."""
    p = problem(rng)
    g, h = build_model(p, "adam")
    feed = {h["x"]: p["x"], h["t"]: p["t"]}
    with fc.Session(target=target, graph=g) as sess:
        sess.run(h["init"])
        for _ in range(3):
            sess.run(h["train"], feed)
        path = h["saver"].save(sess, str(tmp_path / "model"))
        for _ in range(4):
            sess.run(h["train"], feed)
        first = all_values(sess, g)
        h["saver"].restore(sess, path)
        assert sess.run(h["step"]) == 3
        for _ in range(4):
            sess.run(h["train"], feed)
        second = all_values(sess, g)
    for name, value in first.items():
        assert second[name].tobytes() == value.tobytes(), name


@pytest.mark.parametrize("target", TARGETS)
def test_import_meta_graph_then_restore(tmp_path, rng, target):
    p = problem(rng)
    g, h = build_model(p, "adam")
    feed = {h["x"]: p["x"], h["t"]: p["t"]}
    with fc.Session(target=target, graph=g) as sess:
        sess.run(h["init"])
        sess.run(h["train"], feed)
        path = h["saver"].save(sess, str(tmp_path / "model"), global_step=h["step"])
        sess.run(h["train"], feed)
        expected = all_values(sess, g)
    fresh = fc.Graph()
    with fresh.as_default():
        saver = fc.train.import_meta_graph(path + ".meta")
    with fc.Session(target=target, graph=fresh) as sess:
        saver.restore(sess, fc.train.latest_checkpoint(str(tmp_path)))
        sess.run(h["train"].name, {"x:0": p["x"], "t:0": p["t"]})  # the step, found by its name
        got = all_values(sess, fresh)
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].tobytes() == value.tobytes(), name


def test_saver_of_another_graph_is_an_error(tmp_path):
    g, w, n, bump, init = simple_graph()
    with g.as_default():
        saver = fc.train.Saver()
    with fc.Session(target="reference", graph=fc.Graph()) as sess:
        with pytest.raises(CheckpointError, match="another graph"):
            saver.save(sess, str(tmp_path / "model"))


@pytest.mark.parametrize("target", TARGETS)
def test_dropout_continues_bit_for_bit_with_seeds(tmp_path, rng, target):
    p = problem(rng)

    def build():
        g = fc.Graph()
        with g.as_default():
            fc.set_random_seed(7)
            x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
            t = fc.placeholder(fc.float32, shape=[None, 2], name="t")
            W = fc.Variable(p["W"], name="W")
            hidden = fc.nn.dropout(x, keep_prob=0.6)
            loss = fc.reduce_mean(fc.square(fc.matmul(hidden, W) - t))
            train = fc.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
            init = fc.global_variables_initializer()
            saver = fc.train.Saver()
        return g, {x: p["x"], t: p["t"]}, train, init, saver

    g, feed, train, init, saver = build()
    with fc.Session(target=target, graph=g) as sess:
        sess.run(init)
        for _ in range(3):
            sess.run(train, feed)
        path = saver.save(sess, str(tmp_path / "model"))
        for _ in range(3):
            sess.run(train, feed)
        expected = all_values(sess, g)
    g2, feed2, train2, init2, saver2 = build()
    with fc.Session(target=target, graph=g2) as sess:
        saver2.restore(sess, path)
        for _ in range(3):
            sess.run(train2, feed2)
        got = all_values(sess, g2)
    for name, value in expected.items():
        assert got[name].tobytes() == value.tobytes(), name
