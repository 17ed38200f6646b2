"""While loops run by a gang of threads (Note [loops run by a gang] in passes/gang_loops.py), against the reference.

Each loop here is marked `threads = "gang"` (checked), and runs on the cpu target on shapes that
hurt: batches of 0, 1 and 3 (run on one thread: a gang would not pay) and odd sizes past the gang's
threshold (a product split unevenly), a sequence of no step, a transposed and a float64 product, one
thread and two; a bad index at some turn stops
every member with the error a plain loop gives, from a kernel that splits and from one that member
0 runs alone; gradients through a gang loop match the reference; an exported library runs one from C,
also under AddressSanitizer, equal to the Session bit for bit.
"""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import IndexOutOfRange
from flowc.ir.ops.kernel_space import GANG_MIN_MULTIPLY_ADDS
from flowc.runtime import options, support
from test_native_control import compile_cpu, floats, reference

RNN = """\
func @main(%n: i64[], %xs: T[?,?,64], %h0: T[?,128], %wx: T[64,128], %wh: T[128,128], %b: T[128]) -> T[?,128] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %h, %seq, %a, %u, %c = while %zero, %n, %h0, %xs, %wx, %wh, %b : i64[], i64[], T[?,128], T[?,?,64], T[64,128], T[128,128], T[128] {
  ^bb0(%i: i64[], %m: i64[], %h: T[?,128], %seq: T[?,?,64], %a: T[64,128], %u: T[128,128], %c: T[128]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %h: T[?,128], %seq: T[?,?,64], %a: T[64,128], %u: T[128,128], %c: T[128]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %x = gather %seq, %i {axis = 0} : T[?,64]
    %p = matmul %x, %a {transpose_a = false, transpose_b = false} : T[?,128]
    %q = matmul %h, %u {transpose_a = false, transpose_b = TRANSPOSED} : T[?,128]
    %s = add %p, %q : T[?,128]
    %t = add %s, %c : T[?,128]
    %y = tanh %t : T[?,128]
    yield %j, %m, %y, %seq, %a, %u, %c : i64[], i64[], T[?,128], T[?,?,64], T[64,128], T[128,128], T[128]
  }
  return %h : T[?,128]
}
"""


def rnn(dtype: str = "f32", transposed: bool = False) -> str:
    return RNN.replace("T[", f"{dtype}[").replace("TRANSPOSED", "true" if transposed else "false")


def rnn_args(rng: np.random.Generator, steps: int, batch: int, turns: int,
             dtype: type = np.float32) -> list[np.ndarray]:
    return [np.array(turns, np.int64), floats(rng, steps, batch, 64, dtype=dtype), floats(rng, batch, 128, dtype=dtype),
            floats(rng, 64, 128, dtype=dtype) * 0.1, floats(rng, 128, 128, dtype=dtype) * 0.1,
            floats(rng, 128, dtype=dtype) * 0.1]


def gang_marks(executable) -> list[str | None]:  # type: ignore[no-untyped-def]
    """Per top-level while of the compiled function: how the gang-loops pass marked it ("gang", "rows", None)."""
    return [op.attributes.get("threads") for op in executable.function.entry.ops if op.name == "while"]


def assert_matches(executable, text: str, args: list[np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    (want,) = reference(text, args)
    (got,) = executable(args)
    assert got.dtype == want.dtype and got.shape == want.shape
    tolerance = 1e-4 if want.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance, err_msg=str([a.shape for a in args]))


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):  # type: ignore[no-untyped-def]
    options.configure(dataclasses.replace(options.current(), num_threads=request.param))
    return request.param


def gangs_run() -> int:
    gangs = support().flowc_gangs_run
    gangs.restype = ctypes.c_int64
    return gangs()


def backing_off() -> bool:
    """Whether the next gang runs alone: the last waited for cores (a loaded machine, flowc_rt.c)."""
    return support().flowc_gang_backoff() > 0


@pytest.mark.parametrize("batch", [0, 1, 3, 21, 22, 23, 32, 33, 47])
def test_rnn_at_every_batch(rng: np.random.Generator, batch: int, threads: int) -> None:
    """Marked at compile time (the batch is fed); run by a gang where a turn's products, batch x (64 + 128)
    x 128 multiply-adds, reach GANG_MIN_MULTIPLY_ADDS (from a batch of 22) and there are two threads."""
    text = rnn()
    executable = compile_cpu(text)
    assert gang_marks(executable) == ["rows"]
    for steps, turns in ((5, 5), (5, 3), (1, 1), (0, 0)):
        before, alone = gangs_run(), backing_off()
        assert_matches(executable, text, rnn_args(rng, steps, batch, turns))
        worth = threads == 2 and batch * 192 * 128 >= GANG_MIN_MULTIPLY_ADDS
        assert gangs_run() - before == (worth and not alone)


@pytest.mark.parametrize("dtype, transposed", [("f64", False), ("f32", True), ("f64", True)])
def test_rnn_float64_and_transposed(rng: np.random.Generator, dtype: str, transposed: bool, threads: int) -> None:
    text = rnn(dtype, transposed)
    executable = compile_cpu(text)
    assert gang_marks(executable) == ["rows"]
    for batch in (9, 25, 32):
        assert_matches(executable, text, rnn_args(rng, 4, batch, 4, np.float64 if dtype == "f64" else np.float32))


def test_a_bad_row_index_stops_every_member(rng: np.random.Generator, threads: int) -> None:
    """Turns past the sequence's steps: the row read (split over the members) finds step 3 of 3."""
    executable = compile_cpu(rnn())
    for _ in range(50):  # a member that left one barrier early (it read the slot the next kernel set) hung here
        with pytest.raises(IndexOutOfRange, match="gather"):
            executable(rnn_args(rng, 3, 32, 6))
    assert_matches(executable, rnn(), rnn_args(rng, 3, 32, 3))  # the gang runs again after a failure


def test_the_sequence_is_shared_and_the_weights_copied_aligned(rng: np.random.Generator) -> None:
    """passes/memory.py's _unchanged_state: the sequence, read a row a turn, is the caller's bytes; Wx and
    Wh, read whole by a product every turn, are copied into 64-byte aligned bytes of the loop's own
    (however the caller's arrays fall), and b too. Equal to the reference with weights fed at 16 mod 64."""
    executable = compile_cpu(rnn())
    plan, function = executable.program.plan, executable.program.function
    (loop,) = [op for op in function.entry.ops if op.name == "while"]
    shared = [plan.buffer_of(r) == plan.buffer_of(v) for r, v in zip(loop.results, loop.operands)]
    assert shared == [False, False, False, True, False, False, False]  # i, n, h, seq, wx, wh, b
    args = rnn_args(rng, 4, 33, 4)
    for index in (3, 4, 5):  # at 16 bytes past a cache line
        buffer = np.empty(args[index].nbytes + 128, np.uint8)
        start = (-buffer.ctypes.data) % 64 + 16
        placed = buffer[start:start + args[index].nbytes].view(np.float32).reshape(args[index].shape)
        placed[...] = args[index]
        args[index] = placed
    assert_matches(executable, rnn(), args)


def test_the_values_of_a_rows_loop_keep_their_bytes_through_the_loop() -> None:
    """passes/memory.py: in a loop marked rows a member may be a turn ahead of another, so no two temps of
    its regions share bytes: each lives from the loop's start to its end."""
    executable = compile_cpu(rnn())
    plan, function = executable.program.plan, executable.program.function
    (loop,) = [op for op in function.entry.ops if op.name == "while"]
    inside = {r for region in loop.regions for op in region.entry.ops for r in op.results}
    temps = [v for v in plan.temps if v in inside]
    assert temps, "the RNN's products are temps of its body"
    spans = {plan.lifetimes[plan.temps.index(v)] for v in temps}
    assert len(spans) == 1
    (start, end), = spans
    outer = [plan.lifetimes[plan.temps.index(r)] for r in loop.results if r in plan.temps]
    assert all(s <= start and end <= e for s, e in outer)


TWO_BATCHES = """\
func @main(%n: i64[], %xs: f32[?,?,64], %h0: f32[?,128], %u: f32[128,128], %s0: f32[?,?,64]) -> (f32[?,128], f32[?,?,64]) {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %h, %w, %seq, %s = while %zero, %n, %h0, %u, %xs, %s0 : i64[], i64[], f32[?,128], f32[128,128], f32[?,?,64], f32[?,?,64] {
  ^bb0(%i: i64[], %m: i64[], %h: f32[?,128], %w: f32[128,128], %seq: f32[?,?,64], %s: f32[?,?,64]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %h: f32[?,128], %w: f32[128,128], %seq: f32[?,?,64], %s: f32[?,?,64]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %x = gather %seq, %i {axis = 0} : f32[?,64]
    %x2 = mul %x, %x : f32[?,64]
    %s2 = write_row %s, %i, %x2 : f32[?,?,64]
    %q = matmul %h, %w {transpose_a = false, transpose_b = false} : f32[?,128]
    %y = tanh %q : f32[?,128]
    yield %j, %m, %y, %w, %seq, %s2 : i64[], i64[], f32[?,128], f32[128,128], f32[?,?,64], f32[?,?,64]
  }
  return %h, %s : f32[?,128], f32[?,?,64]
}
"""


@pytest.mark.parametrize("batch, rows", [(32, 7), (33, 50), (64, 1), (40, 0)])
def test_two_groups_of_rows(rng: np.random.Generator, batch: int, rows: int, threads: int) -> None:
    """The RNN's rows and, apart, rows of a sequence of another batch squared into a stack (Note [a gang
    that owns rows]: two groups, each shared out by its own size), against the reference."""
    executable = compile_cpu(TWO_BATCHES)
    assert gang_marks(executable) == ["rows"]
    for steps, turns in ((4, 4), (4, 2)):
        args = [np.array(turns, np.int64), floats(rng, steps, rows, 64), floats(rng, batch, 128),
                floats(rng, 128, 128) * 0.1, floats(rng, steps + 1, rows, 64)]
        wants = reference(TWO_BATCHES, args)
        gots = executable(args)
        for got, want in zip(gots, wants):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


GATHER_ROWS = """\
func @main(%n: i64[], %table: f32[?,128], %picks: i64[?,32], %h0: f32[32,128], %u: f32[128,128]) -> f32[32,128] {
  %zero = constant {value = dense<0>} : i64[]
  %i, %m, %h, %t, %k, %w = while %zero, %n, %h0, %table, %picks, %u : i64[], i64[], f32[32,128], f32[?,128], i64[?,32], f32[128,128] {
  ^bb0(%i: i64[], %m: i64[], %h: f32[32,128], %t: f32[?,128], %k: i64[?,32], %w: f32[128,128]):
    %go = less %i, %m : bool[]
    yield %go : bool[]
  } {
  ^bb0(%i: i64[], %m: i64[], %h: f32[32,128], %t: f32[?,128], %k: i64[?,32], %w: f32[128,128]):
    %one = constant {value = dense<1>} : i64[]
    %j = add %i, %one : i64[]
    %row = gather %k, %i {axis = 0} : i64[32]
    %x = gather %t, %row {axis = 0} : f32[32,128]
    %q = matmul %h, %w {transpose_a = false, transpose_b = false} : f32[32,128]
    %s = add %q, %x : f32[32,128]
    %y = tanh %s : f32[32,128]
    yield %j, %m, %y, %t, %k, %w : i64[], i64[], f32[32,128], f32[?,128], i64[?,32], f32[128,128]
  }
  return %h : f32[32,128]
}
"""


def test_a_bad_gathered_index_stops_every_member(rng: np.random.Generator, threads: int) -> None:
    """An embedding-style gather of 32 rows a turn, which member 0 runs alone; turn 2 picks row 9 of 8.
    Its rows come from a tensor of indices, which the members do not own (a plain gang)."""
    executable = compile_cpu(GATHER_ROWS)
    assert gang_marks(executable) == ["gang"]
    table, u, h0 = floats(rng, 8, 128), floats(rng, 128, 128) * 0.1, floats(rng, 32, 128)
    picks = rng.integers(0, 8, (5, 32))
    args = [np.array(5, np.int64), table, picks, h0, u]
    assert_matches(executable, GATHER_ROWS, args)
    picks[2, 1] = 9
    for _ in range(50):
        with pytest.raises(IndexOutOfRange, match="gather"):
            executable(args)


def rnn_gradient_graph(batch: int, steps: int, dtype, static: bool = False):  # type: ignore[no-untyped-def]
    g = fc.Graph()
    with g.as_default():
        xs = fc.placeholder(dtype, [steps, batch if static else None, 64])
        h0 = fc.placeholder(dtype, [batch if static else None, 128])
        wx = fc.placeholder(dtype, [64, 128])
        wh = fc.placeholder(dtype, [128, 128])
        step = lambda t, h: (t + 1, fc.tanh(fc.matmul(fc.gather(xs, t), wx) + fc.matmul(h, wh)))  # noqa: E731
        _, h = fc.while_loop(lambda t, h: t < steps, step, [fc.constant(0), h0])
        fetches = [h, *fc.gradients(fc.reduce_sum(h * h), [wx, wh, h0, xs])]
    return g, [xs, h0, wx, wh], fetches


@pytest.mark.parametrize("static", [False, True], ids=["fed batch", "static batch"])
@pytest.mark.parametrize("batch", [1, 25, 32])
def test_gradient_through_gang_loops(rng: np.random.Generator, batch: int, static: bool, threads: int) -> None:
    """The forward and backward loops of the RNN's gradient (both products of 128 x 128 a row), with
    respect to the weights, h0 and xs, on cpu against the reference, in float64."""
    g, placeholders, fetches = rnn_gradient_graph(batch, 6, fc.float64, static)
    values = [floats(rng, 6, batch, 64, dtype=np.float64), floats(rng, batch, 128, dtype=np.float64),
              floats(rng, 64, 128, dtype=np.float64) * 0.1, floats(rng, 128, 128, dtype=np.float64) * 0.1]
    feeds = dict(zip(placeholders, values))
    with fc.Session(graph=g, target="reference") as session:
        want = session.run(fetches, feeds)
    with fc.Session(graph=g, target="cpu") as session:
        got = session.run(fetches, feeds)
        (compiled,) = session._cache.values()
        marks = gang_marks(compiled.executable)
    # A fed batch: both loops marked, the entry point judges the fed one; the backward loop keeps its sums
    # over the batch (stacks need static shapes), so its members share rows at barriers. A static batch
    # from 22 on: the sums (dWx, dWh) leave the backward loop, whose members then own rows too, xs's
    # gradient (a scatter_add of a row a turn) included.
    if not static:
        assert marks == ["rows", "gang"]
    else:
        assert marks == (["rows", "rows"] if batch * 192 * 128 >= GANG_MIN_MULTIPLY_ADDS else [None, None])
    for w, v in zip(want, got):
        np.testing.assert_allclose(v, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sanitize", [False, True], ids=["plain", "address sanitizer"])
def test_an_exported_library_runs_gang_loops(tmp_path, rng: np.random.Generator, sanitize: bool) -> None:
    """fc.export of a loop marked for a gang (a batch fed at run time, 128 x 128 products): the C program,
    whose library links the pool statically, equals the Session bit for bit, on a gang (33 rows) and
    alone; also with the library's C and the program under AddressSanitizer."""
    from flowc.aot import build
    from test_export_c import CC, SANITIZE, asan_works, build_program, clean_run
    from test_export_control import VECTOR_PROGRAM

    if CC is None:
        pytest.skip("needs a C compiler")
    if sanitize and not asan_works(str(tmp_path)):
        pytest.skip("the C compiler cannot build and run -fsanitize=address programs here")
    weights = (rng.standard_normal((128, 128)) * 0.1).astype(np.float32)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        w = fc.constant(weights)
        step = lambda i, h: (i + 1, fc.tanh(fc.matmul(h, w)))  # noqa: E731
        rows = fc.expand_dims(x, 1) * fc.constant(np.linspace(-1, 1, 128, dtype=np.float32)[None])  # [len(x), 128]
        _, h = fc.while_loop(lambda i, h: i < 4, step, [fc.constant(0), rows])
        y = fc.reduce_sum(h, axis=1)
    inputs = [floats(rng, 33), floats(rng, 1), np.zeros(0, np.float32)]
    with fc.Session(graph=g) as session, pytest.MonkeyPatch.context() as patch:
        if sanitize:
            patch.setattr(build, "C_FLAGS", (*build.C_FLAGS, *SANITIZE))
            patch.setattr(build, "LINK_FLAGS", SANITIZE)
        folder = tmp_path / "asan" if sanitize else tmp_path  # where build_program looks
        fc.export(str(folder / "rnn"), [y], [x], session=session)
        expected = [session.run(y, {x: value}) for value in inputs]
    program = build_program(VECTOR_PROGRAM, str(tmp_path), "rnn", "main", sanitize=sanitize)
    for index, (value, want) in enumerate(zip(inputs, expected)):
        value.tofile(folder / f"in{index}.bin")
        result = clean_run([program, f"in{index}.bin", f"out{index}.bin"], str(folder))
        assert result.returncode == 0, result.stdout + result.stderr
        assert np.fromfile(folder / f"out{index}.bin", np.float32).tobytes() == want.tobytes()
