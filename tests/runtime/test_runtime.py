"""The native runtime: thread pool, linking, the library cache, loading, buffers.

A small C harness stands in for generated code: each entry point has the
signature the CPU backend emits, `void name(void **buffers, const int64_t *dims)`,
and calls flowc_parallel_for the way a compiled loop does.
"""

import ctypes
import importlib.resources
import itertools
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FlowcError
from flowc.runtime import (
    CacheError,
    CachingAllocator,
    CallFrame,
    CompilerNotFoundError,
    Library,
    LoadError,
    NativeBuildError,
    allocator,
    arena,
    build,
    cache,
    cache_dir,
    cache_key,
    cached_library,
    call,
    find_c_compiler,
    include_dir,
    link_shared,
    num_threads,
    options,
    set_num_threads,
    support_library,
)

HARNESS = r"""
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>
#include "flowc_rt.h"

/* out[i] += 2 * i: a chunk run twice, or an index missed, shows in the result. */
static void double_index(void *context, int64_t begin, int64_t end) {
    int64_t *out = context;
    for (int64_t i = begin; i < end; i++) out[i] += 2 * i;
}

/* buffers: [out]; dims: [n, grain] */
void fill(void **buffers, const int64_t *dims) {
    flowc_parallel_for(double_index, buffers[0], dims[0], dims[1]);
}

/* Each chunk sleeps, then writes the id of the thread that ran it. */
static void record_thread(void *context, int64_t begin, int64_t end) {
    int64_t *out = context;
    usleep(2000);
    for (int64_t i = begin; i < end; i++) out[i] = (int64_t)pthread_self();
}

void thread_ids(void **buffers, const int64_t *dims) {
    flowc_parallel_for(record_thread, buffers[0], dims[0], 1);
}

/* A parallel loop over rows whose body runs a parallel loop over columns. */
struct row { int64_t *out; int64_t row, columns; };

static void fill_columns(void *context, int64_t begin, int64_t end) {
    struct row *r = context;
    for (int64_t j = begin; j < end; j++) r->out[r->row * r->columns + j] = r->row * 1000 + j;
}

static void fill_rows(void *context, int64_t begin, int64_t end) {
    int64_t **args = context;
    for (int64_t i = begin; i < end; i++) {
        struct row r = {args[0], i, (int64_t)args[1]};
        flowc_parallel_for(fill_columns, &r, r.columns, 1);
    }
}

/* buffers: [out]; dims: [rows, columns] */
void nested(void **buffers, const int64_t *dims) {
    int64_t *args[2] = {buffers[0], (int64_t *)dims[1]};
    flowc_parallel_for(fill_rows, args, dims[0], 1);
}

/* A gang of n members, each writing its thread's id and then waiting (at most about 10 s) for all
 * n to arrive: out[i] = thread id, out[n] = how many timed out (0 unless some never ran at once). */
struct gang { int64_t *out, n; _Atomic int64_t arrived, timed_out; };

static void gang_member(void *context, int64_t begin, int64_t end) {
    struct gang *g = context;
    for (int64_t i = begin; i < end; i++) {
        g->out[i] = (int64_t)pthread_self();
        atomic_fetch_add(&g->arrived, 1);
        int waited = 0;
        while (atomic_load(&g->arrived) < g->n && waited < 100000) { usleep(100); waited++; }
        if (atomic_load(&g->arrived) < g->n) atomic_fetch_add(&g->timed_out, 1);
    }
}

/* buffers: [out]; dims: [n] */
void gang(void **buffers, const int64_t *dims) {
    struct gang g = {buffers[0], dims[0], 0, 0};
    flowc_run_together(gang_member, &g, (int)dims[0]);
    ((int64_t *)buffers[0])[dims[0]] = atomic_load(&g.timed_out);
}

/* The same gang, started from inside a task of a parallel loop (the pool is busy with that loop). */
static void gang_in_task(void *context, int64_t begin, int64_t end) {
    struct gang *g = context;
    for (int64_t i = begin; i < end; i++)
        if (i == 0) flowc_run_together(gang_member, g, (int)g->n);
}

void nested_gang(void **buffers, const int64_t *dims) {
    struct gang g = {buffers[0], dims[0], 0, 0};
    flowc_parallel_for(gang_in_task, &g, 4, 1);
    ((int64_t *)buffers[0])[dims[0]] = atomic_load(&g.timed_out);
}

/* out[begin] = end - begin for each chunk; out[n] = how many chunks flowc_parallel_chunks foretold. */
static void record_chunk(void *context, int64_t begin, int64_t end) {
    int64_t *out = context;
    out[begin] = end - begin;
}

/* buffers: [out, n + 1 zeros]; dims: [n, grain] */
void chunks(void **buffers, const int64_t *dims) {
    int64_t *out = buffers[0];
    out[dims[0]] = flowc_parallel_chunks(dims[0], dims[1]);
    flowc_parallel_for(record_chunk, out, dims[0], dims[1]);
}

void empty(void **buffers, const int64_t *dims) { (void)buffers; (void)dims; }
"""


def use_cache_dir(patch: pytest.MonkeyPatch, folder) -> None:
    """Make `folder` the cache of this process (the runtime's options, Note [run options]) and of
    the interpreters run_python starts (the variable)."""
    patch.setenv("FLOWC_CACHE_DIR", str(folder))
    patch.setattr(options, "_current", options.RunOptions.from_environment())


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with `env` added; fail the test if it fails."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def native_cache(tmp_path_factory):
    """A cache folder of this module's own, so the tests leave the user's cache alone."""
    folder = tmp_path_factory.mktemp("flowc-cache")
    with pytest.MonkeyPatch.context() as patch:
        use_cache_dir(patch, folder)
        yield folder


@pytest.fixture(scope="module")
def harness(native_cache, tmp_path_factory):
    """The C harness, compiled, linked against libflowc_rt and loaded."""
    folder = tmp_path_factory.mktemp("harness")
    source = folder / "harness.c"
    source.write_text(HARNESS)
    obj = folder / "harness.o"
    subprocess.run(
        [*find_c_compiler(), "-O2", "-fPIC", "-c", str(source), "-I", include_dir(), "-o", str(obj)], check=True
    )
    path = folder / "libharness.so"
    link_shared([obj.read_bytes()], [support_library()], str(path))
    return Library(str(path))


def run_fill(harness: Library, n: int, grain: int = 1000) -> np.ndarray:
    out = np.zeros(n + 1, np.int64)
    out[n] = -7  # a sentinel past the end: no task may write it
    buffers = (ctypes.c_void_p * 4)(out.ctypes.data)
    dims = (ctypes.c_int64 * 2)(n, grain)
    call(harness.entry("fill"), buffers, dims)
    return out


# ---------------------------------------------------------------- thread pool


@pytest.mark.parametrize("n", [0, 1, 999, 1000, 1001, 10_000_000])
def test_parallel_for_writes_every_index_once(harness, n):
    out = run_fill(harness, n)
    np.testing.assert_array_equal(out[:n], 2 * np.arange(n, dtype=np.int64))
    assert out[n] == -7


@pytest.mark.parametrize("grain", [-5, 0, 1, 7, 10**12])
def test_parallel_for_any_grain(harness, grain):
    out = run_fill(harness, 100_003, grain)
    np.testing.assert_array_equal(out[:-1], 2 * np.arange(100_003, dtype=np.int64))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("n, grain", [(1, 1), (49, 16), (50, 16), (48, 16), (31, 16), (32, 16), (1000, 7),
                                      (100_003, 1000), (5, 10**9)])
def test_parallel_chunks_foretells_the_cut(harness, threads, n, grain):
    """flowc_parallel_chunks(n, grain) is the number of chunks flowc_parallel_for cuts [0, n) into,
    chunk i being [i * c, min(n, (i + 1) * c)) with c = ceil(n / chunks) (split-k products rely on it)."""
    set_num_threads(threads)
    try:
        out = np.zeros(n + 1, np.int64)
        call(harness.entry("chunks"), (ctypes.c_void_p * 1)(out.ctypes.data), (ctypes.c_int64 * 2)(n, grain))
    finally:
        set_num_threads(0)
    count = int(out[n])
    size = -(-n // count)
    expected = np.zeros(n, np.int64)
    expected[::size] = [min(size, n - start) for start in range(0, n, size)]
    np.testing.assert_array_equal(out[:n], expected)
    assert len(range(0, n, size)) == count
    assert (count == 1) == (threads == 1 or n < 2 * grain)


def test_parallel_for_runs_on_several_threads(harness):
    set_num_threads(4)
    try:
        out = np.zeros(64, np.int64)
        call(harness.entry("thread_ids"), (ctypes.c_void_p * 1)(out.ctypes.data), (ctypes.c_int64 * 1)(64))
    finally:
        set_num_threads(0)
    assert 2 <= len(set(out.tolist())) <= 4


def test_one_thread_runs_inline_on_the_caller(harness):
    set_num_threads(1)
    try:
        out = np.zeros(64, np.int64)
        call(harness.entry("thread_ids"), (ctypes.c_void_p * 1)(out.ctypes.data), (ctypes.c_int64 * 1)(64))
    finally:
        set_num_threads(0)
    assert len(set(out.tolist())) == 1


def test_nested_parallel_for_runs_inline(harness):
    rows, columns = 37, 5000
    out = np.zeros((rows, columns), np.int64)
    call(harness.entry("nested"), (ctypes.c_void_p * 1)(out.ctypes.data), (ctypes.c_int64 * 2)(rows, columns))
    expected = np.arange(rows)[:, None] * 1000 + np.arange(columns)[None, :]
    np.testing.assert_array_equal(out, expected)


def test_set_num_threads(harness):
    set_num_threads(3)
    assert num_threads() == 3
    set_num_threads(0)
    assert num_threads() == int(os.environ.get("FLOWC_NUM_THREADS") or len(os.sched_getaffinity(0)))


def test_num_threads_follows_affinity_and_environment(harness, native_cache, monkeypatch):
    monkeypatch.delenv("FLOWC_NUM_THREADS", raising=False)
    code = """
        import os
        {setup}
        from flowc.runtime import num_threads
        print(num_threads())
    """
    assert int(run_python(code.format(setup="")).stdout) == len(os.sched_getaffinity(0))
    one_cpu = run_python(code.format(setup="os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})"))
    assert int(one_cpu.stdout) == 1
    assert int(run_python(code.format(setup=""), FLOWC_NUM_THREADS="3").stdout) == 3


def test_two_python_threads_call_at_once(harness):
    errors = []

    def work(n):
        try:
            for _ in range(20):
                out = run_fill(harness, n)
                assert (out[:n] == 2 * np.arange(n)).all() and out[n] == -7
        except Exception as error:  # noqa: BLE001 - reported by the main thread below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in (1_000_000, 777_777, 5_000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads)


def run_gang(harness: Library, n: int, entry: str = "gang") -> np.ndarray:
    out = np.zeros(n + 1, np.int64)
    call(harness.entry(entry), (ctypes.c_void_p * 1)(out.ctypes.data), (ctypes.c_int64 * 1)(n))
    return out


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
@pytest.mark.parametrize("threads", [1, 2])
def test_run_together_runs_every_member_at_once(harness, n, threads):
    # The members wait for each other, as OpenBLAS's jobs do: a pool that ran them one after
    # another, or fewer at a time than asked, would time out (or hang). The thread count of
    # parallel loops does not limit a gang.
    set_num_threads(threads)
    try:
        out = run_gang(harness, n)
    finally:
        set_num_threads(0)
    assert out[n] == 0
    assert len(set(out[:n].tolist())) == n


def test_run_together_inside_a_task_starts_its_own_threads(harness):
    set_num_threads(4)
    try:
        out = run_gang(harness, 3, "nested_gang")
    finally:
        set_num_threads(0)
    assert out[3] == 0 and len(set(out[:3].tolist())) == 3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python warns about fork in a threaded process
def test_fork_after_the_pool_started(harness):
    set_num_threads(4)  # workers exist in the parent before the fork
    try:
        assert run_fill(harness, 2_000_000)[-1] == -7
        pid = os.fork()
        if pid == 0:  # the child: use the pool again, report through the exit status
            status = 1
            try:
                out = run_fill(harness, 2_000_000)
                status = 0 if (out[:-1] == 2 * np.arange(2_000_000)).all() else 2
            finally:
                os._exit(status)
        deadline = time.monotonic() + 60
        while (waited := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        if waited == (0, 0):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in flowc_parallel_for")
        assert os.waitstatus_to_exitcode(waited[1]) == 0
        out = run_fill(harness, 2_000_000)  # the parent's pool still works
        np.testing.assert_array_equal(out[:-1], 2 * np.arange(2_000_000))
    finally:
        set_num_threads(0)


def test_process_exits_cleanly_with_parked_workers(harness, native_cache):
    result = run_python(
        f"""
        import ctypes, numpy as np
        from flowc.runtime import Library, call, set_num_threads
        set_num_threads(4)
        library = Library({harness.path!r})
        out = np.zeros(1_000_001, np.int64)
        call(library.entry("fill"), (ctypes.c_void_p * 1)(out.ctypes.data), (ctypes.c_int64 * 2)(1_000_000, 1000))
        print(int(out[999_999]))
        """
    )
    assert result.stdout.strip() == "1999998"


# ---------------------------------------------------------------- loading and calling


def test_call_frame_reuses_its_arguments(harness):
    frame = CallFrame(harness.entry("fill"), 1, 2)
    for n in (10, 50_000):
        out = np.zeros(n, np.int64)
        frame.buffers[0] = out.ctypes.data
        frame.dims[0], frame.dims[1] = n, 100
        frame()
        np.testing.assert_array_equal(out, 2 * np.arange(n))


def test_entry_is_cached_and_typed(harness):
    entry = harness.entry("fill")
    assert harness.entry("fill") is entry
    assert entry.argtypes == (ctypes.c_void_p, ctypes.c_void_p) and entry.restype is None


def test_missing_entry_and_missing_library(harness, tmp_path):
    with pytest.raises(LoadError, match="no entry point 'nope'"):
        harness.entry("nope")
    with pytest.raises(LoadError, match="cannot load compiled library"):
        Library(str(tmp_path / "absent.so"))


def test_link_failure_reports_the_linker_output(native_cache, tmp_path):
    with pytest.raises(NativeBuildError) as caught:
        link_shared([b"this is not an object file"], [], str(tmp_path / "bad.so"))
    assert isinstance(caught.value, FlowcError)
    assert "linking bad.so failed" in str(caught.value)
    assert "object0.o" in str(caught.value)  # the linker's own complaint names the file


def test_no_c_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CompilerNotFoundError, match="needs a C compiler to link; install gcc or set CC"):
        find_c_compiler()
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(CompilerNotFoundError, match="no-such-cc"):
        find_c_compiler()


def test_cc_with_arguments(monkeypatch):
    monkeypatch.setenv("CC", "cc -O1")
    compiler = find_c_compiler()
    assert os.path.isabs(compiler[0]) and compiler[1:] == ["-O1"]


def test_support_library_is_cached_by_source_and_compiler(harness, native_cache):
    path = support_library()
    assert os.path.dirname(path) == str(native_cache)
    assert os.path.basename(path).startswith("libflowc_rt-") and path.endswith(".so")
    assert os.path.exists(path[: -len(".so")] + ".sha256")
    assert support_library() == path


def test_native_sources_ship_with_the_package():
    native = importlib.resources.files("flowc.runtime") / "native"
    assert (native / "flowc_rt.c").is_file() and (native / "flowc_rt.h").is_file()
    assert os.path.samefile(include_dir(), str(native))


# ---------------------------------------------------------------- the library cache


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    use_cache_dir(monkeypatch, tmp_path / "cache")
    cache.forget()
    yield tmp_path / "cache"
    cache.forget()


def counting_build(payload: bytes):
    calls = []

    def build(path):
        calls.append(path)
        with open(path, "wb") as file:
            file.write(payload)

    return build, calls


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    use_cache_dir(monkeypatch, tmp_path / "a")
    assert cache_dir() == str(tmp_path / "a") and (tmp_path / "a").is_dir()
    monkeypatch.delenv("FLOWC_CACHE_DIR")
    monkeypatch.setattr(options, "_current", options.RunOptions())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == str(tmp_path / "xdg" / "flowc")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == str(tmp_path / "home" / ".cache" / "flowc")


def test_cache_dir_that_is_a_file_is_a_clear_error(monkeypatch, tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    use_cache_dir(monkeypatch, taken)
    with pytest.raises(CacheError) as info:
        cache_dir()
    assert str(info.value) == (f"the cache folder FLOWC_CACHE_DIR={str(taken)!r} is a file, not a folder: point "
                               "FLOWC_CACHE_DIR at a folder (flowc creates it if it is missing)")
    use_cache_dir(monkeypatch, taken / "below")
    with pytest.raises(CacheError, match=r"cannot create the cache folder FLOWC_CACHE_DIR=.*below': Not a directory"):
        cache_dir()
    monkeypatch.delenv("FLOWC_CACHE_DIR")
    monkeypatch.setattr(options, "_current", options.RunOptions())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "flowc").write_text("")
    default = r"the default cache folder .*flowc' \(set FLOWC_CACHE_DIR to use another\) is a file"
    with pytest.raises(CacheError, match=default):
        cache_dir()


def test_session_with_a_file_as_cache_dir_is_a_clear_error(monkeypatch, tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("")
    monkeypatch.setenv("FLOWC_CACHE_DIR", str(taken))
    cache.forget()
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [3], name="x")
        y = fc.exp(x) * 3.5  # a graph no other test compiles: this one must reach the cache
    with fc.Session(graph=g) as sess, pytest.raises(fc.errors.FlowcError, match="is a file, not a folder"):
        sess.run(y, {x: np.ones(3, np.float32)})


def test_unwritable_cache_dir_is_a_clear_error(fresh_cache, monkeypatch):
    build, calls = counting_build(b"never written")
    if os.geteuid() != 0:  # root writes anywhere: there, fake what the kernel would say
        fresh_cache.mkdir()
        fresh_cache.chmod(0o500)
    else:
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        with pytest.raises(CacheError) as info:
            cached_library(cache_key("unwritable"), build)
    finally:
        fresh_cache.chmod(0o700)
    folder = f"the cache folder FLOWC_CACHE_DIR={str(fresh_cache)!r}"
    assert str(info.value) == f"cannot write to {folder}: Permission denied"
    assert calls == []


def test_cache_key():
    key = cache_key("ir", "0.1.0", "skylake")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key("ir", "0.1.0", "skylake")
    assert cache_key("ab", "c") != cache_key("a", "bc")


def test_second_lookup_is_cached(fresh_cache):
    build, calls = counting_build(b"\x7fELF library bytes")
    key = cache_key("second lookup")
    path, was_cached = cached_library(key, build)
    assert not was_cached and len(calls) == 1
    assert path == str(fresh_cache / f"{key}.so")
    assert pathlib.Path(path).read_bytes() == b"\x7fELF library bytes"
    assert cached_library(key, build) == (path, True)
    cache.forget()  # as a new process would: the entry is verified from disk
    assert cached_library(key, build) == (path, True)
    assert len(calls) == 1
    assert sorted(os.listdir(fresh_cache)) == [f"{key}.sha256", f"{key}.so"]  # no temporary files left


def test_another_process_finds_the_entry(fresh_cache, tmp_path):
    build, _ = counting_build(b"shared across processes")
    key = cache_key("across processes")
    path, _ = cached_library(key, build)
    marker = tmp_path / "built-again"
    result = run_python(
        f"""
        from flowc.runtime import cached_library
        def build(path):
            open({str(marker)!r}, "w").close()
            open(path, "wb").write(b"rebuilt")
        print(cached_library({key!r}, build))
        """,
        FLOWC_CACHE_DIR=str(fresh_cache),
    )
    assert result.stdout.strip() == str((path, True))
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "drop the sidecar", "garble the sidecar"])
def test_damaged_entry_is_rebuilt(fresh_cache, damage):
    payload = bytes(range(256)) * 64
    build, calls = counting_build(payload)
    key = cache_key("damaged", damage)
    path, _ = cached_library(key, build)
    sidecar = path[: -len(".so")] + ".sha256"
    if damage == "truncate":
        os.truncate(path, 1000)
    elif damage == "flip a byte":
        with open(path, "r+b") as file:
            file.seek(5000)
            file.write(bytes([payload[5000] ^ 0xFF]))
    elif damage == "drop the sidecar":
        os.remove(sidecar)
    else:
        with open(sidecar, "w") as file:
            file.write("0" * 64 + f" {len(payload)}\n")
    cache.forget()  # a fresh process: nothing remembered
    assert cached_library(key, build) == (path, False)
    assert len(calls) == 2 and pathlib.Path(path).read_bytes() == payload
    assert cached_library(key, build) == (path, True)


def test_truncation_is_seen_within_the_process(fresh_cache):
    build, calls = counting_build(b"x" * 4096)
    key = cache_key("truncated while remembered")
    path, _ = cached_library(key, build)
    os.truncate(path, 10)
    assert cached_library(key, build) == (path, False) and len(calls) == 2


def test_failed_build_leaves_no_entry(fresh_cache):
    def build(path):
        with open(path, "wb") as file:
            file.write(b"half")
        raise NativeBuildError("linker exploded")

    key = cache_key("fails")
    with pytest.raises(NativeBuildError, match="linker exploded"):
        cached_library(key, build)
    assert os.listdir(fresh_cache) == []
    build_ok, _ = counting_build(b"fine")
    assert cached_library(key, build_ok)[1] is False


def test_concurrent_processes_build_the_same_key(fresh_cache):
    key = cache_key("raced")
    code = f"""
        from flowc.runtime import cached_library
        def build(path):
            open(path, "wb").write(b"same bytes" * 100000)
        path, _ = cached_library({key!r}, build)
        assert open(path, "rb").read() == b"same bytes" * 100000
    """
    env = {**os.environ, "FLOWC_CACHE_DIR": str(fresh_cache)}
    processes = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env) for _ in range(4)]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0, 0]
    assert sorted(os.listdir(fresh_cache)) == [f"{key}.sha256", f"{key}.so"]


def test_cached_library_rejects_a_key_that_is_not_hex(fresh_cache):
    with pytest.raises(ValueError, match="hex"):
        cached_library("../escape", lambda path: None)


def test_linked_library_through_the_cache_loads(harness, native_cache, tmp_path):
    source = tmp_path / "tiny.c"
    source.write_text("#include <stdint.h>\nvoid run(void **b, const int64_t *d) { *(int64_t *)b[0] = d[0] * 3; }\n")
    subprocess.run([*find_c_compiler(), "-fPIC", "-c", str(source), "-o", str(tmp_path / "tiny.o")], check=True)
    objects = [(tmp_path / "tiny.o").read_bytes()]
    key = cache_key("tiny", source.read_text(), build.compiler_version())
    path, was_cached = cached_library(key, lambda out: link_shared(objects, [support_library()], out))
    assert not was_cached
    out = np.zeros(1, np.int64)
    Library(path).entry("run")((ctypes.c_void_p * 1)(out.ctypes.data), (ctypes.c_int64 * 1)(14))
    assert out[0] == 42


# ---------------------------------------------------------------- buffers


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def test_dropped_buffer_comes_back():
    pool = CachingAllocator(limit=1 << 30)
    first = pool.allocate((1024, 1024), np.float32)
    where = address(first)
    del first
    again = pool.allocate((1024, 1024), np.float32)
    assert address(again) == where
    assert pool.stats()["hits"] == 1 and pool.stats()["misses"] == 1


def test_same_size_class_shares_blocks():
    pool = CachingAllocator(limit=1 << 30)
    first = pool.allocate((1000, 1000), np.float32)  # 4_000_000 bytes
    where = address(first)
    del first
    assert address(pool.allocate(999_999, np.int32)) == where  # 3_999_996 bytes: same class


def test_a_view_keeps_the_buffer_out_of_the_pool():
    pool = CachingAllocator(limit=1 << 30)
    buffer = pool.allocate((256, 256), np.float64)
    buffer[:] = 5.0
    where = address(buffer)
    view = buffer[10:, ::3].T.reshape(86, 246)[1:]  # a view of a view of a view
    assert np.shares_memory(view, buffer)
    del buffer
    other = pool.allocate((256, 256), np.float64)
    assert address(other) != where
    other[:] = -1.0
    assert (view == 5.0).all()  # untouched by the other buffer
    del view
    assert address(pool.allocate((256, 256), np.float64)) == where


@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 5, 7), (1000, 33), 17])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.bool_])
def test_buffers_are_aligned_and_contiguous(shape, dtype):
    buffer = allocator.allocate(shape, dtype)
    assert address(buffer) % 64 == 0
    assert buffer.flags.c_contiguous and buffer.flags.writeable
    assert buffer.shape == ((shape,) if isinstance(shape, int) else shape) and buffer.dtype == dtype


def test_live_buffers_never_overlap(rng):
    pool = CachingAllocator(limit=1 << 26)
    live = []
    for step in range(300):
        if live and rng.random() < 0.4:
            live.pop(int(rng.integers(len(live))))
        size = int(rng.integers(1, 50_000))
        buffer = pool.allocate(size, np.int32)
        buffer[:] = step
        live.append((step, buffer))
    for step, buffer in live:
        assert (buffer == step).all()
    spans = sorted((address(b), address(b) + b.nbytes) for _, b in live)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))


def test_pool_holds_at_most_its_limit():
    megabyte = 1 << 20
    pool = CachingAllocator(limit=3 * megabyte)
    buffers = [pool.allocate(megabyte, np.uint8) for _ in range(5)]
    addresses = [address(buffer) for buffer in buffers]
    for index in range(5):
        buffers[index] = None  # returned in order 0..4: the two returned first are dropped
    stats = pool.stats()
    assert stats["cached_bytes"] == 3 * megabyte and stats["cached_blocks"] == 3
    pool.allocate(4 * megabyte, np.uint8)  # larger than the whole pool: freed, never cached
    assert pool.stats()["cached_bytes"] == 3 * megabyte
    again = [pool.allocate(megabyte, np.uint8) for _ in range(3)]
    assert [address(buffer) for buffer in again] == addresses[4:1:-1]  # the last returned first
    assert pool.stats()["cached_bytes"] == 0
    again.clear()
    pool.empty_cache()
    assert pool.stats()["cached_bytes"] == 0 and pool.stats()["cached_blocks"] == 0


def test_pool_limit_from_environment(monkeypatch):
    assert options.RunOptions.from_environment({"FLOWC_POOL_BYTES": "12345"}).pool_bytes == 12345
    assert options.RunOptions.from_environment({}).pool_bytes == 1 << 30
    monkeypatch.setattr(options, "_current", options.RunOptions(pool_bytes=12345))
    assert CachingAllocator().limit == 12345


def test_allocator_is_thread_safe():
    pool = CachingAllocator(limit=1 << 24)
    errors = []

    def work(seed):
        local = np.random.default_rng(seed)
        try:
            for step in range(500):
                buffers = [pool.allocate(int(local.integers(1, 4000)), np.int64) for _ in range(3)]
                for index, buffer in enumerate(buffers):
                    buffer[:] = seed * 10_000 + step * 10 + index
                for index, buffer in enumerate(buffers):
                    assert (buffer == seed * 10_000 + step * 10 + index).all()
        except Exception as error:  # noqa: BLE001 - reported by the main thread below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stats = pool.stats()
    assert stats["hits"] + stats["misses"] == 4 * 500 * 3 and stats["live_blocks"] == 0


def test_size_classes():
    for nbytes in [1, 63, 64, 65, 1000, 4096, 4097, 999_999, 1 << 26, (1 << 26) + 1]:
        size = allocator.size_class(nbytes)
        assert size >= nbytes and size % 64 == 0
        assert nbytes <= 64 or size <= 1.25 * nbytes + 64


def test_object_dtype_is_refused():
    with pytest.raises(TypeError, match="object"):
        allocator.allocate(3, object)


def test_arena():
    scratch, where = arena(1000)
    assert where % 64 == 0 and where == address(scratch) and scratch.nbytes == 1000
    scratch[:] = 1  # writable, all of it
