"""Exported libraries of graphs with control flow (cond, while_loop), static and unknown dims: C programs
compiled with cc against NAME.h, run with nothing but PATH, equal to the Session bit for bit; and the
same graphs through `flowc compile` and `@fc.jit`."""

from __future__ import annotations

import os

import numpy as np
import pytest

import flowc as fc
from flowc.cli import main as flowc_main
from flowc.aot import build
from test_export_c import CC, PRELUDE, SANITIZE, asan_works, build_program, clean_run

pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler")

# One float32 input of rank 1 and one float32 output: argv[1] the input file, argv[2] the output file,
# the input's length from the file's size; the output's dims from NAME_output_dims.
VECTOR_PROGRAM = PRELUDE + r"""
int main(int argc, char **argv) {
    size_t size;
    float *x = read_file(argv[1], &size);
    API(context) *ctx = API(create)();
    if (!ctx) return 3;
    int64_t in_dims[1] = {(int64_t)(size / sizeof(float))}, out_dims[1];
    if (API(output_dims)(ctx, in_dims, out_dims) != 0) { printf("dims: %s\n", API(error)(ctx)); return 4; }
    float *y = malloc(sizeof(float) * (out_dims[0] ? out_dims[0] : 1));
    const void *inputs[1] = {x};
    void *outputs[1] = {y};
    if (API(run)(ctx, inputs, in_dims, outputs) != 0) { printf("run: %s\n", API(error)(ctx)); return 5; }
    FILE *out = fopen(argv[2], "wb");
    fwrite(y, sizeof(float), out_dims[0], out);
    fclose(out);
    API(destroy)(ctx);
    free(x);
    free(y);
    return 0;
}
"""


def doubling_loop(x: fc.Tensor) -> fc.Tensor:
    """The issue's reproducer: three turns of a * 2."""
    _, z = fc.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2.0), [fc.constant(0), x])
    return z


def data_dependent_loop(x: fc.Tensor) -> fc.Tensor:
    """Turns until the sum passes 100 (at most 50): the trip count depends on the values."""
    return fc.while_loop(lambda a: fc.reduce_sum(fc.abs(a)) < 100.0, lambda a: a * 1.5 + 0.25, [x],
                         maximum_iterations=50)


def branching(x: fc.Tensor) -> fc.Tensor:
    return fc.cond(fc.reduce_sum(x) > 0.0, lambda: fc.exp(x) * 2.0, lambda: x - 1.0)


def loop_in_branch(x: fc.Tensor) -> fc.Tensor:
    def loop():
        return fc.while_loop(lambda i, a: i < 4, lambda i, a: (i + 1, fc.cond(fc.reduce_max(a) > 3.0,
                                                                              lambda: a * 0.5, lambda: a + 1.0)),
                             [fc.constant(0), x])[1]
    return fc.cond(fc.reduce_min(x) < 0.0, lambda: fc.abs(x), loop)


GRAPHS = {"doubling": doubling_loop, "data_dependent": data_dependent_loop, "branching": branching,
          "loop_in_branch": loop_in_branch}
INPUTS = [np.array([1.5, -2.0, 3.25], np.float32), np.array([-0.5, -1.0, -3.0], np.float32),
          np.array([0.5, 2.0, 0.125], np.float32)]


def session_and_library(folder: str, name: str, build, dim):  # noqa: ANN001
    """Export `build` of a placeholder [dim] to folder/name; the Session's results on INPUTS (and, with an
    unknown dim, on longer and empty inputs)."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [dim], name="x")
        y = build(x)
    inputs = list(INPUTS)
    if dim is None:
        inputs += [np.linspace(-1, 2, 7, dtype=np.float32), np.zeros(0, np.float32)]
    with fc.Session(graph=g) as sess:
        fc.export(os.path.join(folder, name), [y], [x], session=sess)
        expected = [sess.run(y, {x: value}) for value in inputs]
    return inputs, expected


@pytest.mark.parametrize("dim", [3, None], ids=["static", "unknown"])
@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_control_flow_from_c_equals_the_session(tmp_path, graph, dim):
    folder = str(tmp_path)
    inputs, expected = session_and_library(folder, graph, GRAPHS[graph], dim)
    program = build_program(VECTOR_PROGRAM, folder, graph, "main", sanitize=False)
    for index, (value, want) in enumerate(zip(inputs, expected)):
        value.tofile(os.path.join(folder, f"in{index}.bin"))
        result = clean_run([program, f"in{index}.bin", f"out{index}.bin"], folder)
        assert result.returncode == 0, result.stdout + result.stderr
        got = np.fromfile(os.path.join(folder, f"out{index}.bin"), np.float32)
        assert got.tobytes() == want.tobytes(), (value, got, want)


def test_exported_loop_through_fc_load_equals_the_session(tmp_path):
    inputs, expected = session_and_library(str(tmp_path), "loop", loop_in_branch, None)
    loaded = fc.load(str(tmp_path / "loop"))
    for value, want in zip(inputs, expected):
        assert loaded(value).tobytes() == want.tobytes()
    loaded.close()


LOOP_MODEL = '''
import flowc as fc

def power(x, n):
    """x ** n by a loop of n turns, n fed."""
    return fc.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, fc.cond(i < 2, lambda: a * x, lambda: a * x + 0.0)),
                         [fc.constant(0), fc.ones_like(x)])[1]
'''


def test_flowc_compile_a_function_with_a_loop(tmp_path, capsys, rng):
    (tmp_path / "model.py").write_text(LOOP_MODEL)
    code = flowc_main(["compile", f"{tmp_path / 'model.py'}:power", "--input", "x=float32[None]",
                       "--input", "n=int32[]", "-o", str(tmp_path / "out" / "power")])
    assert code == 0, capsys.readouterr().err
    power = fc.load(str(tmp_path / "out" / "power"))
    x = rng.standard_normal(6).astype(np.float32)
    for n in (0, 1, 5):
        expected = np.ones(6, np.float32)
        for _ in range(n):
            expected = expected * x
        assert power(x, np.int32(n)).tobytes() == expected.tobytes()
    power.close()


def test_jit_keeps_cond_and_while_loop(rng):
    traced = []

    @fc.jit
    def f(x, n):
        traced.append(1)
        total = fc.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + fc.cast(i, fc.float32) * x),
                              [fc.constant(0), fc.zeros_like(x)])[1]
        return fc.cond(fc.reduce_sum(total) > 0.0, lambda: total, lambda: -total)

    x = rng.standard_normal(5).astype(np.float32)
    for n in (0, 3, 7):
        g = fc.Graph()
        with g.as_default():
            xp = fc.placeholder(fc.float32, [5])
            np_ = fc.placeholder(fc.int32, [])
            total = fc.while_loop(lambda i, a: i < np_, lambda i, a: (i + 1, a + fc.cast(i, fc.float32) * xp),
                                  [fc.constant(0), fc.zeros_like(xp)])[1]
            y = fc.cond(fc.reduce_sum(total) > 0.0, lambda: total, lambda: -total)
        with fc.Session(graph=g) as sess:
            expected = sess.run(y, {xp: x, np_: n})
        assert np.asarray(f(x, np.int32(n))).tobytes() == expected.tobytes()
    assert len(traced) == 1  # one signature: the loop's trip count is a value, not a retrace


def test_random_ops_in_a_called_function_in_a_loop_continue_the_run_counter(tmp_path):
    """Note [random streams in calls and nested loops]: the exported library folds the same counters as
    the Session, so its runs draw what the Session's next runs would."""
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(9)

        @fc.function
        def noisy(v):
            return v + fc.random_normal([4])

        x = fc.placeholder(fc.float32, [4], name="x")
        y = fc.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, noisy(a) * 0.5), [fc.constant(0), x])[1] + noisy(x)
    data = np.arange(4, dtype=np.float32)
    with fc.Session(graph=g) as sess:
        sess.run(y, {x: data})
        fc.export(str(tmp_path / "noisy"), [y], [x], session=sess)
        expected = [sess.run(y, {x: data}) for _ in range(2)]
    loaded = fc.load(str(tmp_path / "noisy"))
    assert [loaded(data).tobytes() for _ in range(2)] == [e.tobytes() for e in expected]
    assert expected[0].tobytes() != expected[1].tobytes()
    loaded.close()


def test_loops_and_branches_under_address_sanitizer(tmp_path):
    """The library's C (API, thread pool) and the program under AddressSanitizer, with unknown dims."""
    folder = str(tmp_path)
    if not asan_works(folder):
        pytest.skip("the C compiler cannot build and run -fsanitize=address programs here")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "C_FLAGS", (*build.C_FLAGS, *SANITIZE))
        patch.setattr(build, "LINK_FLAGS", SANITIZE)
        inputs, expected = session_and_library(os.path.join(folder, "asan"), "loop", loop_in_branch, None)
    folder = os.path.join(folder, "asan")
    program = build_program(VECTOR_PROGRAM, str(tmp_path), "loop", "main", sanitize=True)
    for index, (value, want) in enumerate(zip(inputs, expected)):
        value.tofile(os.path.join(folder, f"in{index}.bin"))
        result = clean_run([program, f"in{index}.bin", f"out{index}.bin"], folder)
        assert result.returncode == 0, result.stdout + result.stderr
        assert np.fromfile(os.path.join(folder, f"out{index}.bin"), np.float32).tobytes() == want.tobytes()


def test_loops_and_branches_the_cpu_target_refuses_are_export_errors(tmp_path):
    """A cond whose branches yield different sizes and a loop value that grows (Note [fixed shapes in
    control flow] in ir/shapes.py): an ExportShapeError naming the op, not a crash."""
    from flowc.aot.dims import ExportShapeError

    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        uneven = fc.cond(fc.reduce_sum(x) > 0.0, lambda: x, lambda: fc.concat([x, x], 0))
        i0, acc0 = fc.constant(0), fc.zeros([0], fc.float32)
        _, grown = fc.while_loop(lambda i, a: i < 5, lambda i, a: (i + 1, fc.concat([a, x[:1]], 0)), [i0, acc0],
                                 shape_invariants=[i0.shape, fc.TensorShape([None])])
    with fc.Session(graph=g) as sess:
        with pytest.raises(ExportShapeError, match="does not run this cond"):
            fc.export(str(tmp_path / "uneven"), [uneven], [x], session=sess)
        with pytest.raises(ExportShapeError, match="does not run this while loop: loop value 1 enters as"):
            fc.export(str(tmp_path / "grown"), [grown], [x], session=sess)
