"""A closed (or dropped) Session frees its compiled code and buffers (Note [unloading compiled code] in
runtime/loader.py), and nothing ever calls into code that was unloaded."""

import ctypes
import gc
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FlowcError
from flowc.runtime import CallFrame, Library, default_allocator, fast_run, find_c_compiler, support_library
from flowc.runtime.allocator import size_class


def mapped(path: str) -> bool:
    """Whether a file is mapped into this process (a loaded library is)."""
    with open("/proc/self/maps") as maps:
        return any(line.rstrip().endswith(path) for line in maps)


def scaled(c: float):
    """A graph of one plan, `x * c`: a different constant is another library."""
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None], name="x")
        y = x * float(c)
    return g, x, y


def library_of(sess: fc.Session) -> str:
    (compiled,) = sess._cache.values()
    return compiled.executable.library_path


# A child process, so the figures are its own: it loads graph after graph (built into the cache by a
# first child, so no compiler runs here), runs each (the fast run too) and closes its Session.
GROWTH = """
import gc, sys
import numpy as np
import flowc as fc

def mappings():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))

def one(c):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None], name="x")
        y = x * float(c)
    with fc.Session(graph=g) as sess:
        for _ in range(3):
            assert sess.run(y, {x: np.ones(3, np.float32)})[0] == np.float32(c)

count = int(sys.argv[1])
one(0.5)  # imports, the support library, the fast run extension
gc.collect()
before = mappings(), rss()
for i in range(count):
    one(1000 + i)
gc.collect()
print(mappings() - before[0], rss() - before[1])
"""


def test_hundreds_of_closed_sessions_leave_no_libraries_behind():
    # Before unloading: 5 mappings and 21 kB of RSS more per graph (120 graphs: 600 and 2.5 MB).
    count = 120  # enough to tell 5 mappings a graph from none; each costs a compile on an empty cache

    def run() -> list[str]:
        return subprocess.run([sys.executable, "-c", GROWTH, str(count)], capture_output=True, text=True,
                              timeout=600, check=True).stdout.split()

    run()  # builds what the cache lacks: about 12 s of CPU the first time, none after
    mappings, rss = map(int, run())
    assert mappings < count // 10, f"{mappings} more mappings after {count} closed Sessions"
    assert rss < count * 6 * 1024, f"{rss >> 10} kB more RSS after {count} closed Sessions"


def test_close_unloads_at_once_without_the_garbage_collector():
    g, x, y = scaled(3.0)
    gc.disable()  # no cycle may hold the code: plain reference counts free it
    try:
        sess = fc.Session(graph=g)
        for _ in range(3):  # the second and later runs are fast runs, which hold the code too
            sess.run(y, {x: np.ones(2, np.float32)})
        path = library_of(sess)
        assert mapped(path)
        sess.close()
        assert not mapped(path)
    finally:
        gc.enable()


def test_a_dropped_session_unloads_too():
    g, x, y = scaled(5.0)
    sess = fc.Session(graph=g)
    for _ in range(3):
        sess.run(y, {x: np.ones(2, np.float32)})
    path = library_of(sess)
    executable = weakref.ref(next(iter(sess._cache.values())).executable)
    del sess
    gc.collect()
    assert executable() is None and not mapped(path)


def test_a_session_outlives_another_on_the_same_library():
    g, x, y = scaled(7.0)
    ones = np.ones(4, np.float32)
    first, second = fc.Session(graph=g), fc.Session(graph=g)
    for _ in range(3):
        first.run(y, {x: ones}), second.run(y, {x: ones})
    path = library_of(first)
    assert library_of(second) == path
    assert first._cache[next(iter(first._cache))].executable.library is \
        second._cache[next(iter(second._cache))].executable.library  # one Library per file
    first.close()
    assert mapped(path)
    for batch in (4, 4, 9, 4):  # fast runs, and a new batch size on the Python path
        np.testing.assert_array_equal(second.run(y, {x: np.arange(batch, dtype=np.float32)}),
                                      np.arange(batch, dtype=np.float32) * 7)
    with pytest.raises(FlowcError, match="closed"):
        first.run(y, {x: ones})
    second.close()
    assert not mapped(path)


def test_a_closed_sessions_run_raises_whatever_path_it_took():
    g, x, y = scaled(9.0)
    with g.as_default():
        v = fc.Variable(np.zeros(3, np.float32))
        bump = fc.assign_add(v, fc.ones([3]))
    sess = fc.Session(graph=g)
    sess.run(v.initializer)
    for _ in range(3):
        sess.run(y, {x: np.ones(2, np.float32)}), sess.run(bump)
    executable = sess._compiled([y], [], [x]).executable  # the one already compiled for y
    sess.close()
    for fetch, feeds in [(y, {x: np.ones(2, np.float32)}), (bump, None), (y, {x: [1.0]})]:
        with pytest.raises(FlowcError, match="this Session is closed"):
            sess.run(fetch, feeds)
    with pytest.raises(FlowcError, match="closed"):
        executable([np.ones(2, np.float32)])  # an executable kept past its Session's close


def test_a_fast_run_kept_past_close_keeps_its_code():
    g, x, y = scaled(11.0)
    sess = fc.Session(graph=g)
    ones = np.ones(5, np.float32)
    for _ in range(3):
        sess.run(y, {x: ones})
    path = library_of(sess)
    table = dict(sess._fast)  # what the C side calls: it holds an address in the code
    sess.close()
    gc.collect()
    assert mapped(path)
    np.testing.assert_array_equal(fast_run.module().run(table, y, {x: ones}), ones * 11)
    table.clear()
    gc.collect()
    assert not mapped(path)


def test_runs_racing_a_close_finish_or_raise_the_closed_error():
    g, x, y = scaled(13.0)
    data = np.ones(1 << 16, np.float32)  # big enough that runs are in flight while close() runs
    for _ in range(5):
        sess = fc.Session(graph=g)
        sess.run(y, {x: data})
        outcomes = []

        def loop() -> None:
            try:
                while True:
                    assert sess.run(y, {x: data})[-1] == 13.0
            except FlowcError as error:
                outcomes.append(str(error))

        threads = [threading.Thread(target=loop) for _ in range(3)]
        for t in threads:
            t.start()
        sess.close()
        for t in threads:
            t.join(timeout=60)
        assert len(outcomes) == 3 and all("closed" in o for o in outcomes), outcomes


def test_close_frees_the_pool_blocks_only_its_runs_asked_for():
    shape = (9973, 3)  # float32: a size class of its own, above np.empty's share
    size = size_class(9973 * 3 * 4)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 3], name="x")
        y = fc.exp(x) + 1.0
    data = np.zeros(shape, np.float32)
    pool = default_allocator()
    first, second = fc.Session(graph=g), fc.Session(graph=g)
    for sess in (first, second):
        for _ in range(3):
            sess.run(y, {x: data})  # each answer goes back to the pool when dropped
    cached = pool.stats()["cached_bytes"]
    pooled = len(pool._free.get(size, {}))
    assert pooled >= 1
    first.close()
    assert pool.stats()["cached_bytes"] == cached  # the other Session's runs still take that class
    second.close()
    assert pool.stats()["cached_bytes"] == cached - pooled * size and size not in pool._free


def test_close_drops_the_arenas():
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, shape=[None, 64], name="x")
        y = fc.nn.softmax(fc.matmul(x, fc.constant(np.ones((64, 64), np.float32))))
    sess = fc.Session(graph=g)
    sess.run(y, {x: np.ones((256, 64), np.float32)})
    executable = next(c.executable for c in sess._cache.values())
    arenas = [weakref.ref(l.arena) for l in executable._layouts.values() if l.arena is not None]
    assert arenas, "the graph was meant to need scratch memory"
    sess.close()
    assert all(a() is None for a in arenas)


# ---------------------------------------------------------------- the loader


@pytest.fixture(scope="module")
def tiny_library(tmp_path_factory):
    """A library of one entry point, `run`, writing dims[0] * 3 to *buffers[0]."""
    folder = tmp_path_factory.mktemp("tiny")
    source = folder / "tiny.c"
    source.write_text("#include <stdint.h>\nvoid run(void **b, const int64_t *d) { *(int64_t *)b[0] = d[0] * 3; }\n")
    path = folder / "libtiny.so"
    subprocess.run([*find_c_compiler(), "-fPIC", "-shared", str(source), "-o", str(path)], check=True)
    support_library()
    return str(path)


def call_tiny(entry, n: int) -> int:
    out = np.zeros(1, np.int64)
    entry((ctypes.c_void_p * 1)(out.ctypes.data), (ctypes.c_int64 * 1)(n))
    return int(out[0])


def test_one_library_per_file_unloaded_after_its_last_entry_point(tiny_library):
    first, second = Library.load(tiny_library), Library.load(tiny_library)
    assert first is second and mapped(tiny_library)
    entry = first.entry("run")
    del first, second
    gc.collect()
    assert mapped(tiny_library)  # the entry point keeps its code loaded
    assert call_tiny(entry, 14) == 42
    del entry
    gc.collect()
    assert not mapped(tiny_library)


def test_own_copies_count_like_dlopen(tiny_library):
    shared, own = Library.load(tiny_library), Library(tiny_library)
    assert shared is not own
    del shared
    gc.collect()
    assert mapped(tiny_library) and call_tiny(own.entry("run"), 2) == 6  # the loader counts two opens
    del own
    gc.collect()
    assert not mapped(tiny_library)


def test_a_call_frame_keeps_its_code(tiny_library):
    frame = CallFrame(Library.load(tiny_library).entry("run"), 1, 1)
    gc.collect()
    assert mapped(tiny_library)
    out = np.zeros(1, np.int64)
    frame.buffers[0], frame.dims[0] = out.ctypes.data, 5
    frame()
    assert out[0] == 15
    del frame
    gc.collect()
    assert not mapped(tiny_library)
