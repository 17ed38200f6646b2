"""fc.nn.rnn_cell and fc.nn.static_rnn against numpy versions of each cell's equations.

Each cell's Variables are read back from the Session after initialization and
fed to a numpy implementation written from TensorFlow 1's documented
equations (gate orders i, j, f, o and r, u). Gradients (float64) are checked
against central differences of the numpy implementation, which the value
tests check against the compiled graph.
"""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.errors import FlowcError
from flowc.nn import rnn_cell

TARGETS = ["reference", "cpu"]
LOOP_TARGETS = ["reference", "cpu"]  # dynamic_rnn is a while loop
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# -- numpy cells: (weights in cell.variables order, inputs, state) -> (output, state) ----------------


def np_basic_rnn(weights, x, h):
    kernel, bias = weights
    out = np.tanh(np.concatenate([x, h], 1) @ kernel + bias)
    return out, out


def np_basic_lstm(weights, x, state, forget_bias=1.0):
    kernel, bias = weights
    c, h = state
    i, j, f, o = np.split(np.concatenate([x, h], 1) @ kernel + bias, 4, axis=1)
    new_c = c * sigmoid(f + forget_bias) + sigmoid(i) * np.tanh(j)
    new_h = np.tanh(new_c) * sigmoid(o)
    return new_h, (new_c, new_h)


def np_lstm(weights, x, state, peepholes=False, cell_clip=None, num_proj=None, proj_clip=None, forget_bias=1.0):
    kernel, bias, *rest = weights
    w_f, w_i, w_o = rest[:3] if peepholes else (0, 0, 0)
    c, m = state
    i, j, f, o = np.split(np.concatenate([x, m], 1) @ kernel + bias, 4, axis=1)
    c = sigmoid(f + forget_bias + w_f * c) * c + sigmoid(i + w_i * c) * np.tanh(j)
    if cell_clip is not None:
        c = np.clip(c, -cell_clip, cell_clip)
    m = sigmoid(o + w_o * c) * np.tanh(c)
    if num_proj is not None:
        m = m @ rest[-1]
        if proj_clip is not None:
            m = np.clip(m, -proj_clip, proj_clip)
    return m, (c, m)


def np_gru(weights, x, h):
    gate_kernel, gate_bias, candidate_kernel, candidate_bias = weights
    r, u = np.split(sigmoid(np.concatenate([x, h], 1) @ gate_kernel + gate_bias), 2, axis=1)
    candidate = np.tanh(np.concatenate([x, r * h], 1) @ candidate_kernel + candidate_bias)
    new_h = u * h + (1 - u) * candidate
    return new_h, new_h


def np_multi(steps, counts):
    """A stack of numpy cells; `counts` says how many weights each takes."""

    def step(weights, x, state):
        new_states, at = [], 0
        for cell_step, count, part in zip(steps, counts, state):
            x, new = cell_step(weights[at:at + count], x, part)
            new_states.append(new)
            at += count
        return x, tuple(new_states)

    return step


# Each case: a function making the cell, its numpy step, and the state's widths (nested like the state).
CASES = {
    "basic_rnn": (lambda: rnn_cell.BasicRNNCell(4), np_basic_rnn, 4),
    "basic_lstm": (lambda: rnn_cell.BasicLSTMCell(4, forget_bias=0.5), lambda w, x, s: np_basic_lstm(w, x, s, 0.5),
                   (4, 4)),
    "lstm": (lambda: rnn_cell.LSTMCell(4), np_lstm, (4, 4)),
    "lstm_peephole_clip_proj": (
        lambda: rnn_cell.LSTMCell(4, use_peepholes=True, cell_clip=0.8, num_proj=3, proj_clip=0.3),
        lambda w, x, s: np_lstm(w, x, s, peepholes=True, cell_clip=0.8, num_proj=3, proj_clip=0.3), (4, 3)),
    "gru": (lambda: rnn_cell.GRUCell(4), np_gru, 4),
    "multi": (lambda: rnn_cell.MultiRNNCell([rnn_cell.BasicLSTMCell(4), rnn_cell.GRUCell(3)]),
              np_multi([np_basic_lstm, np_gru], [2, 4]), ((4, 4), 3)),
}


def state_placeholders(widths, dtype):
    """Placeholders [None, w] nested like `widths`, as the cell's state structure."""
    if isinstance(widths, int):
        return fc.placeholder(dtype, [None, widths])
    parts = tuple(state_placeholders(w, dtype) for w in widths)
    if len(widths) == 2 and all(isinstance(w, int) for w in widths):
        return rnn_cell.LSTMStateTuple(*parts)
    return parts


def leaves(structure):
    return [structure] if not isinstance(structure, tuple) else [x for part in structure for x in leaves(part)]


def rebuild(template, flat):
    """The values of `flat`, nested like `template` (plain tuples; its leaves are widths or arrays)."""
    flat = list(flat)

    def take(part):
        return tuple(take(p) for p in part) if isinstance(part, tuple) else flat.pop(0)

    return take(template)


def sample_state(rng, widths, batch, dtype):
    return rebuild(widths, [rng.uniform(-1, 1, (batch, w)).astype(dtype) for w in leaves(widths)])


# -- values ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_one_step_matches_numpy(case, dtype, target, rng):
    make, np_step, widths = CASES[case]
    g = fc.Graph()
    with g.as_default():
        cell = make()
        x = fc.placeholder(dtype, [None, 3])
        state = state_placeholders(widths, dtype)
        output, new_state = cell(x, state)
        init = fc.global_variables_initializer()
    assert output.dtype.np == dtype
    assert all(v.dtype.np == dtype for v in cell.variables)
    xv, sv = rng.uniform(-1, 1, (5, 3)).astype(dtype), sample_state(rng, widths, 5, dtype)
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        weights = sess.run(cell.variables)
        feeds = {x: xv, **dict(zip(leaves(state), leaves(sv)))}
        got_out, got_state = sess.run([output, leaves(new_state)], feeds)
    want_out, want_state = np_step(weights, xv, sv)
    np.testing.assert_allclose(got_out, want_out, **TOL[dtype])
    for got, want in zip(got_state, leaves(want_state)):
        np.testing.assert_allclose(got, want, **TOL[dtype])


def np_static_rnn(np_step, weights, xs, state, lengths=None):
    outputs = []
    for time, x in enumerate(xs):
        out, new = np_step(weights, x, state)
        if lengths is not None:
            running = (time < lengths)[:, None]
            out = np.where(running, out, 0)
            new = rebuild(state, [np.where(running, a, b) for a, b in zip(leaves(new), leaves(state))])
        outputs.append(out)
        state = new
    return outputs, state


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", ["basic_lstm", "gru", "multi"])
def test_static_rnn_with_sequence_length(case, target, rng):
    make, np_step, widths = CASES[case]
    g = fc.Graph()
    with g.as_default():
        cell = make()
        xs = [fc.placeholder(fc.float64, [None, 3]) for _ in range(4)]
        lengths = fc.placeholder(fc.int32, [None])
        outputs, state = fc.nn.static_rnn(cell, xs, dtype=fc.float64, sequence_length=lengths)
        init = fc.global_variables_initializer()
    values = [rng.uniform(-1, 1, (4, 3)) for _ in xs]
    lengths_value = np.array([0, 4, 2, 3], np.int32)
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        weights = sess.run(cell.variables)
        got_outputs, got_state = sess.run([outputs, leaves(state)], {**dict(zip(xs, values)), lengths: lengths_value})
    zero = rebuild(widths, [np.zeros((4, w)) for w in leaves(widths)])
    want_outputs, want_state = np_static_rnn(np_step, weights, values, zero, lengths_value)
    for got, want in zip(got_outputs, want_outputs):
        np.testing.assert_allclose(got, want, **TOL[np.float64])
    for got, want in zip(got_state, leaves(want_state)):
        np.testing.assert_allclose(got, want, **TOL[np.float64])
    assert not got_outputs[3][0].any() and not got_outputs[2][2].any()  # finished rows give zeros
    np.testing.assert_array_equal(got_state[-1][0], 0.0)  # row 0 (length 0) keeps the zero state


@pytest.mark.parametrize("target", TARGETS)
def test_state_is_tuple_false_concatenates(target, rng):
    g = fc.Graph()
    with g.as_default():
        cells = [rnn_cell.BasicLSTMCell(3, state_is_tuple=False),
                 rnn_cell.LSTMCell(3, num_proj=2, state_is_tuple=False)]
        stacked = rnn_cell.MultiRNNCell(cells, state_is_tuple=False)
        assert stacked.state_size == 6 + 5 and stacked.output_size == 2
        xs = [fc.placeholder(fc.float64, [2, 4]) for _ in range(3)]
        outputs, state = fc.nn.static_rnn(stacked, xs, initial_state=stacked.zero_state(2, fc.float64))
        init = fc.global_variables_initializer()
    assert state.shape == (2, 11)
    values = [rng.uniform(-1, 1, (2, 4)) for _ in xs]
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        weights = sess.run(stacked.variables)
        got_outputs, got_state = sess.run([outputs, state], dict(zip(xs, values)))
    np_step = np_multi([np_basic_lstm, lambda w, x, s: np_lstm(w, x, s, num_proj=2)], [2, 3])
    zero = ((np.zeros((2, 3)), np.zeros((2, 3))), (np.zeros((2, 3)), np.zeros((2, 2))))
    want_outputs, want_state = np_static_rnn(np_step, weights, values, zero)
    for got, want in zip(got_outputs, want_outputs):
        np.testing.assert_allclose(got, want, **TOL[np.float64])
    np.testing.assert_allclose(got_state, np.concatenate(leaves(want_state), 1), **TOL[np.float64])


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the row holding inf
@pytest.mark.parametrize("target", TARGETS)
def test_unknown_batch_zero_state_and_activation(target, rng):
    g = fc.Graph()
    with g.as_default():
        cell = rnn_cell.BasicRNNCell(2, activation=fc.nn.relu)
        xs = [fc.placeholder(fc.float32, [None, 3]) for _ in range(2)]
        outputs, state = fc.nn.static_rnn(cell, xs, dtype=fc.float32)
        init = fc.global_variables_initializer()
    values = [rng.uniform(-1, 1, (3, 3)).astype(np.float32) for _ in xs]
    values[0][1] = np.inf  # the zero state takes the batch of the inputs, never their values
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        kernel, bias = sess.run(cell.variables)
        got = sess.run(outputs[0], dict(zip(xs, values)))
    want = np.maximum(np.concatenate([values[0], np.zeros((3, 2), np.float32)], 1) @ kernel + bias, 0)
    np.testing.assert_allclose(got[[0, 2]], want[[0, 2]], **TOL[np.float32])
    assert got.shape == (3, 2)


# -- gradients --------------------------------------------------------------------------------------------------


def central_differences(loss, arrays, step=1e-6):
    """d loss / d each array, by (loss(x + h) - loss(x - h)) / 2h elementwise."""
    gradients = []
    for array in arrays:
        gradient = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + step
            up = loss()
            array[index] = saved - step
            down = loss()
            array[index] = saved
            gradient[index] = (up - down) / (2 * step)
        gradients.append(gradient)
    return gradients


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", list(CASES))
def test_static_rnn_gradients_match_central_differences(case, target, rng):
    make, np_step, widths = CASES[case]
    g = fc.Graph()
    with g.as_default():
        cell = make()
        xs = [fc.placeholder(fc.float64, [2, 3]) for _ in range(3)]
        initial = state_placeholders(widths, fc.float64)
        outputs, state = fc.nn.static_rnn(cell, xs, initial_state=initial)
        results = [*outputs, *leaves(state)]
        cotangents = [rng.standard_normal(r.shape) for r in results]
        loss = sum(fc.reduce_sum(r * c) for r, c in zip(results, cotangents))
        wrt = [*xs, *leaves(initial), *cell.variables]
        grads = fc.gradients(loss, wrt)
        init = fc.global_variables_initializer()
    x_values = [rng.uniform(-1, 1, (2, 3)) for _ in xs]
    state_values = [rng.uniform(-1, 1, (2, w)) for w in leaves(widths)]
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        weights = sess.run(cell.variables)
        got = sess.run(grads, {**dict(zip(xs, x_values)), **dict(zip(leaves(initial), state_values))})

    def np_loss():
        outs, final = np_static_rnn(np_step, weights, x_values, rebuild(widths, state_values))
        return sum(np.sum(r * c) for r, c in zip([*outs, *leaves(final)], cotangents))

    want = central_differences(np_loss, [*x_values, *state_values, *weights])
    for got_gradient, want_gradient in zip(got, want):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=1e-6, atol=1e-7)


# -- names and errors ----------------------------------------------------------------------------------------------


def test_variable_names_follow_tensorflow():
    with fc.Graph().as_default():
        xs = [fc.placeholder(fc.float32, [None, 3])]
        lstm = rnn_cell.BasicLSTMCell(4)
        fc.nn.static_rnn(lstm, xs, dtype=fc.float32)
        other = rnn_cell.LSTMCell(4, use_peepholes=True, num_proj=2)
        fc.nn.static_rnn(other, xs, dtype=fc.float32, scope="decoder")
        gru = rnn_cell.GRUCell(2, name="my_gru")
        gru(xs[0], fc.zeros([1, 2]))
        second = rnn_cell.BasicLSTMCell(4)
        fc.nn.static_rnn(second, xs, dtype=fc.float32)
        stacked = rnn_cell.MultiRNNCell([rnn_cell.BasicRNNCell(2), rnn_cell.BasicRNNCell(2)])
        fc.nn.static_rnn(stacked, xs, dtype=fc.float32, scope="stack")
    assert [v.name for v in lstm.variables] == ["rnn/basic_lstm_cell/kernel:0", "rnn/basic_lstm_cell/bias:0"]
    assert [v.name for v in other.variables] == [
        "decoder/lstm_cell/kernel:0", "decoder/lstm_cell/bias:0", "decoder/lstm_cell/w_f_diag:0",
        "decoder/lstm_cell/w_i_diag:0", "decoder/lstm_cell/w_o_diag:0", "decoder/lstm_cell/projection/kernel:0"]
    assert [v.shape for v in other.variables] == [(3 + 2, 16), (16,), (4,), (4,), (4,), (4, 2)]
    assert [v.name for v in gru.variables] == ["my_gru/gates/kernel:0", "my_gru/gates/bias:0",
                                               "my_gru/candidate/kernel:0", "my_gru/candidate/bias:0"]
    assert [v.name for v in second.variables] == ["rnn/basic_lstm_cell_1/kernel:0", "rnn/basic_lstm_cell_1/bias:0"]
    assert [v.name for v in stacked.variables] == [
        "stack/multi_rnn_cell/cell_0/basic_rnn_cell/kernel:0", "stack/multi_rnn_cell/cell_0/basic_rnn_cell/bias:0",
        "stack/multi_rnn_cell/cell_1/basic_rnn_cell/kernel:0", "stack/multi_rnn_cell/cell_1/basic_rnn_cell/bias:0"]


def test_a_cell_called_again_reuses_its_variables():
    with fc.Graph().as_default():
        cell = rnn_cell.BasicLSTMCell(3)
        x = fc.placeholder(fc.float32, [2, 5])
        _, state = cell(x, cell.zero_state(2, fc.float32))
        cell(x, state)
        fc.nn.static_rnn(cell, [x, x], dtype=fc.float32)
        assert len(cell.variables) == 2 and fc.global_variables() == cell.variables
    assert cell.trainable_variables == cell.variables


def test_gru_bias_initializers_and_user_initializer():
    g = fc.Graph()
    with g.as_default():
        gru = rnn_cell.GRUCell(2, kernel_initializer=lambda shape, dtype: np.full(shape, 0.5))
        lstm = rnn_cell.LSTMCell(2, initializer=lambda shape, dtype: fc.ones(shape, dtype))
        x = fc.zeros([1, 3])
        gru(x, fc.zeros([1, 2]))
        lstm(x, lstm.zero_state(1, fc.float32))
        init = fc.global_variables_initializer()
    with fc.Session(graph=g, target="reference") as sess:
        sess.run(init)
        gate_kernel, gate_bias, candidate_kernel, candidate_bias = sess.run(gru.variables)
        lstm_kernel, lstm_bias = sess.run(lstm.variables)
    np.testing.assert_array_equal(gate_kernel, np.full((5, 4), 0.5, np.float32))
    np.testing.assert_array_equal(gate_bias, np.ones(4, np.float32))
    np.testing.assert_array_equal(candidate_bias, np.zeros(2, np.float32))
    np.testing.assert_array_equal(lstm_kernel, np.ones((5, 8), np.float32))
    np.testing.assert_array_equal(lstm_bias, np.zeros(8, np.float32))


def test_default_kernel_is_glorot_uniform():
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(3)
        cell = rnn_cell.BasicRNNCell(200)
        cell(fc.zeros([1, 100]), fc.zeros([1, 200]))
        init = fc.global_variables_initializer()
    with fc.Session(graph=g, target="reference") as sess:
        sess.run(init)
        kernel = sess.run(cell.variables[0])
    limit = np.sqrt(6 / (300 + 200))
    assert kernel.shape == (300, 200) and np.abs(kernel).max() <= limit
    assert abs(kernel.std() - limit / np.sqrt(3)) < 0.01 * limit


def test_state_sizes_and_zero_state():
    with fc.Graph().as_default():
        lstm = rnn_cell.LSTMCell(4, num_proj=2)
        stacked = rnn_cell.MultiRNNCell([lstm, rnn_cell.GRUCell(3)])
        assert lstm.state_size == rnn_cell.LSTMStateTuple(4, 2) and lstm.output_size == 2
        assert stacked.state_size == (rnn_cell.LSTMStateTuple(4, 2), 3) and stacked.output_size == 3
        zero = stacked.zero_state(5, fc.float64)
        assert isinstance(zero[0], rnn_cell.LSTMStateTuple)
        assert [t.shape for t in leaves(zero)] == [(5, 4), (5, 2), (5, 3)]
        assert zero[0].dtype == fc.float64


def test_errors_name_the_call():
    with fc.Graph().as_default():
        cell = rnn_cell.BasicLSTMCell(3)
        x = fc.placeholder(fc.float32, [None, 3])
        with pytest.raises(FlowcError, match="zero_state needs a Python int batch size"):
            cell.zero_state(fc.constant(2), fc.float32)
        with pytest.raises(FlowcError, match=r"static_rnn.*give initial_state, or dtype"):
            fc.nn.static_rnn(cell, [x])
        with pytest.raises(FlowcError, match=r"sequence_length must be an int32 or int64 vector"):
            fc.nn.static_rnn(cell, [x], dtype=fc.float32, sequence_length=fc.constant([1.0, 2.0]))
        with pytest.raises(FlowcError, match="cell must be an RNNCell"):
            fc.nn.static_rnn(lambda x, s: (x, s), [x], dtype=fc.float32)
        with pytest.raises(FlowcError, match=r"created at test_rnn_cells.py:\d+\): .*known depth"):
            cell(fc.placeholder(fc.float32, [2, None]), cell.zero_state(2, fc.float32))
        with pytest.raises(FlowcError, match="a concatenated state is"):
            rnn_cell.BasicLSTMCell(3, state_is_tuple=False)(x, fc.zeros([2, 5]))


# -- dynamic_rnn ------------------------------------------------------------------------------------------------

def np_dynamic_rnn(np_step, weights, inputs, state, lengths=None):
    """Batch-major inputs [batch, time, depth] -> (outputs [batch, time, out], final state)."""
    outputs, state = np_static_rnn(np_step, weights, list(inputs.transpose(1, 0, 2)), state, lengths)
    return np.stack(outputs, 1) if outputs else None, state


@pytest.mark.parametrize("target", LOOP_TARGETS)
@pytest.mark.parametrize("case", list(CASES))
def test_dynamic_rnn_matches_numpy(case, target, rng):
    make, np_step, widths = CASES[case]
    g = fc.Graph()
    with g.as_default():
        cell = make()
        x = fc.placeholder(fc.float64, [None, None, 3])  # batch and time known only at run time
        lengths = fc.placeholder(fc.int64, [None])
        outputs, state = fc.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=fc.float64)
        plain_outputs, plain_state = fc.nn.dynamic_rnn(cell, x, dtype=fc.float64)
        init = fc.global_variables_initializer()
    assert outputs.shape == (None, None, leaves(widths)[-1])  # the output is the last state tensor
    value = rng.uniform(-1, 1, (4, 5, 3))
    lengths_value = np.int64([5, 0, 2, 3])
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        weights = sess.run(cell.variables)
        got = sess.run([outputs, leaves(state), plain_outputs, leaves(plain_state)], {x: value, lengths: lengths_value})
        empty = sess.run([outputs, leaves(state)], {x: np.zeros((4, 0, 3)), lengths: np.zeros(4, np.int64)})
    zero = rebuild(widths, [np.zeros((4, w)) for w in leaves(widths)])
    for (got_outputs, got_state), length in ((got[:2], lengths_value), (got[2:], None)):
        want_outputs, want_state = np_dynamic_rnn(np_step, weights, value, zero, length)
        np.testing.assert_allclose(got_outputs, want_outputs, **TOL[np.float64])
        for got_leaf, want_leaf in zip(got_state, leaves(want_state)):
            np.testing.assert_allclose(got_leaf, want_leaf, **TOL[np.float64])
    assert empty[0].shape == (4, 0, got[0].shape[2])
    for leaf in empty[1]:
        np.testing.assert_array_equal(leaf, 0.0)  # no step: the initial state


@pytest.mark.parametrize("target", LOOP_TARGETS)
def test_dynamic_rnn_time_major_and_initial_state(target, rng):
    g = fc.Graph()
    with g.as_default():
        cell = rnn_cell.LSTMCell(3, use_peepholes=True)
        x = fc.placeholder(fc.float32, [4, 2, 5])  # [time, batch, depth]
        c, h = fc.placeholder(fc.float32, [2, 3]), fc.placeholder(fc.float32, [2, 3])
        outputs, state = fc.nn.dynamic_rnn(cell, x, initial_state=(c, h), time_major=True, scope="encoder")
        init = fc.global_variables_initializer()
    assert isinstance(state, rnn_cell.LSTMStateTuple) and outputs.shape == (4, 2, 3)
    assert [v.name for v in cell.variables][:2] == ["encoder/lstm_cell/kernel:0", "encoder/lstm_cell/bias:0"]
    value, c0, h0 = rng.uniform(-1, 1, (4, 2, 5)), rng.uniform(-1, 1, (2, 3)), rng.uniform(-1, 1, (2, 3))
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        weights = sess.run(cell.variables)
        got_outputs, got_state = sess.run([outputs, list(state)], {x: value, c: c0, h: h0})
    want_outputs, want_state = np_static_rnn(lambda w, x_, s: np_lstm(w, x_, s, peepholes=True), weights,
                                             list(value), (c0, h0))
    np.testing.assert_allclose(got_outputs, np.stack(want_outputs), **TOL[np.float32])
    for got_leaf, want_leaf in zip(got_state, want_state):
        np.testing.assert_allclose(got_leaf, want_leaf, **TOL[np.float32])


@pytest.mark.parametrize("target", LOOP_TARGETS)
@pytest.mark.parametrize("case", ["basic_rnn", "lstm_peephole_clip_proj", "gru", "multi"])
def test_dynamic_rnn_gradients_match_central_differences(case, target, rng):
    make, np_step, widths = CASES[case]
    g = fc.Graph()
    with g.as_default():
        cell = make()
        x = fc.placeholder(fc.float64, [2, 3, 3])
        initial = state_placeholders(widths, fc.float64)
        lengths = fc.constant([3, 2], fc.int32)
        outputs, state = fc.nn.dynamic_rnn(cell, x, sequence_length=lengths, initial_state=initial)
        results = [outputs, *leaves(state)]
        cotangents = [rng.standard_normal((2, 3, outputs.shape[2])),
                      *(rng.standard_normal((2, w)) for w in leaves(widths))]
        loss = sum(fc.reduce_sum(r * c) for r, c in zip(results, cotangents))
        grads = fc.gradients(loss, [x, *leaves(initial), *cell.variables])
        init = fc.global_variables_initializer()
    x_value = rng.uniform(-1, 1, (2, 3, 3))
    state_values = [rng.uniform(-1, 1, (2, w)) for w in leaves(widths)]
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        weights = sess.run(cell.variables)
        got = sess.run(grads, {x: x_value, **dict(zip(leaves(initial), state_values))})

    def np_loss():
        outs, final = np_dynamic_rnn(np_step, weights, x_value, rebuild(widths, state_values), np.array([3, 2]))
        return sum(np.sum(r * c) for r, c in zip([outs, *leaves(final)], cotangents))

    want = central_differences(np_loss, [x_value, *state_values, *weights])
    for got_gradient, want_gradient in zip(got, want):
        np.testing.assert_allclose(got_gradient, want_gradient, rtol=1e-6, atol=1e-7)


def test_dynamic_rnn_errors():
    with fc.Graph().as_default():
        cell = rnn_cell.GRUCell(2)
        with pytest.raises(FlowcError, match=r"dynamic_rnn \(created at test_rnn_cells.py:\d+\): inputs must be "
                                             r"\[batch, time, depth\]"):
            fc.nn.dynamic_rnn(cell, fc.zeros([2, 3]), dtype=fc.float32)
        with pytest.raises(FlowcError, match=r"dynamic_rnn.*give initial_state, or dtype"):
            fc.nn.dynamic_rnn(cell, fc.zeros([2, 3, 4]))
        with pytest.raises(FlowcError, match=r"sequence_length must be an int32 or int64 vector \[batch_size\] "
                                             r"\(batch size 2\)"):
            fc.nn.dynamic_rnn(cell, fc.zeros([2, 3, 4]), sequence_length=[1, 2, 3], dtype=fc.float32)


def test_dynamic_rnn_stacked_lstm_trains():
    """Adam through the while loop's gradient: a 2-layer LSTM learns the sum of an 8-step sequence."""
    rng = np.random.default_rng(0)
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(1)
        x = fc.placeholder(fc.float32, [None, 8, 1])
        y = fc.placeholder(fc.float32, [None, 1])
        cell = rnn_cell.MultiRNNCell([rnn_cell.BasicLSTMCell(8) for _ in range(2)])
        _, state = fc.nn.dynamic_rnn(cell, x, dtype=fc.float32)
        w = fc.Variable(fc.random_normal([8, 1], stddev=0.1))
        loss = fc.reduce_mean(fc.square(fc.matmul(state[-1].h, w) - y))
        train = fc.train.AdamOptimizer(0.02).minimize(loss)
        init = fc.global_variables_initializer()
    losses = []
    with fc.Session(graph=g, target=LOOP_TARGETS[0]) as sess:
        sess.run(init)
        for _ in range(40):
            batch = rng.uniform(-1, 1, (16, 8, 1)).astype(np.float32)
            losses.append(sess.run([loss, train], {x: batch, y: batch.sum(1)})[0])
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:5]), losses


@pytest.mark.parametrize("target", LOOP_TARGETS)
def test_a_cell_first_called_in_a_loop_body_makes_its_variables_outside(target, rng):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float64, [5, 2, 3])
        cell = rnn_cell.GRUCell(4)
        states = fc.scan(lambda h, step: cell(step, h)[1], x, initializer=fc.zeros([2, 4], fc.float64))
        assert [v.name for v in cell.variables][:2] == ["scan/gru_cell/gates/kernel:0", "scan/gru_cell/gates/bias:0"]
        assert fc.global_variables() == cell.variables
        outputs, _ = fc.nn.dynamic_rnn(cell, x, dtype=fc.float64, time_major=True)  # the same Variables
        init = fc.global_variables_initializer()
    with fc.Session(graph=g, target=target) as sess:
        sess.run(init)
        got_states, got_outputs = sess.run([states, outputs], {x: rng.uniform(-1, 1, (5, 2, 3))})
    np.testing.assert_allclose(got_states, got_outputs, **TOL[np.float64])
