"""The options are read once: CompileOptions and RunOptions carry every variable, and a Session
keeps what it read when it started (compiler/options.py, Note [run options] in runtime/options.py)."""

from __future__ import annotations

import numpy as np
import pytest

import flowc as fc
from flowc.options import CompileOptions
from flowc.runtime import default_allocator, num_threads, options, set_num_threads
from flowc.runtime.options import DEFAULT_POOL_BYTES, RunOptions


def test_compile_options_carry_each_variable(tmp_path) -> None:
    environ = {"FLOWC_OPT": "0", "FLOWC_FAST_MATH": "1", "FLOWC_PROFILE": "1", "FLOWC_VERIFY": "1",
               "FLOWC_DUMP_IR": str(tmp_path / "dump"), "FLOWC_LOG": "other,compile",
               "FLOWC_CACHE_DIR": str(tmp_path / "cache")}
    assert CompileOptions.from_environment(environ) == CompileOptions(
        optimize=False, fast_math=True, profile=True, verify=True, dump_dir=str(tmp_path / "dump"),
        log_compile=True, cache_dir=str(tmp_path / "cache"))
    assert CompileOptions.from_environment({}) == CompileOptions()
    # A Session's argument wins over its variable; None leaves the variable's value.
    assert CompileOptions.from_environment(environ, optimize=True, fast_math=None).optimize is True
    assert CompileOptions.from_environment(environ, optimize=True, fast_math=None).fast_math is True


def test_run_options_carry_each_variable(tmp_path) -> None:
    environ = {"FLOWC_POOL_BYTES": "4096", "FLOWC_FAST_RUN": "0", "FLOWC_NUM_THREADS": "3",
               "FLOWC_CACHE_DIR": str(tmp_path)}
    assert RunOptions.from_environment(environ) == RunOptions(pool_bytes=4096, fast_run=False, num_threads=3,
                                                              cache_dir=str(tmp_path))
    assert RunOptions.from_environment({}) == RunOptions(DEFAULT_POOL_BYTES, True, None, None)
    # As the C runtime always took it: a count that is not positive is the default.
    for text in ("0", "-2", "two", ""):
        assert RunOptions.from_environment({"FLOWC_NUM_THREADS": text}).num_threads is None
    with pytest.raises(ValueError, match="FLOWC_POOL_BYTES must be a number of bytes, got 'lots'"):
        RunOptions.from_environment({"FLOWC_POOL_BYTES": "lots"})


@pytest.fixture
def restored_runtime():
    """The process's run options and thread count as they were before the test."""
    before, threads = options.current(), num_threads()
    yield
    options.configure(before)
    set_num_threads(threads)


def test_a_session_keeps_what_it_read_when_it_started(monkeypatch, tmp_path, rng, restored_runtime) -> None:
    for name in ("FLOWC_FAST_MATH", "FLOWC_OPT", "FLOWC_DUMP_IR", "FLOWC_POOL_BYTES", "FLOWC_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLOWC_FAST_RUN", "1")
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 7], name="x")
        y = fc.reduce_sum(fc.exp(x) * 0.0 + x * 1.5, axis=1)  # x*0 -> 0 only under fast math
    data = rng.standard_normal((5, 7)).astype(np.float32)
    data[0, 0] = np.inf  # exp(inf) * 0 is NaN in IEEE arithmetic, 0 under fast math
    with fc.Session(graph=g) as sess:
        started = (sess.options, sess.run_options, default_allocator().limit, num_threads())
        monkeypatch.setenv("FLOWC_FAST_MATH", "1")
        monkeypatch.setenv("FLOWC_OPT", "0")
        monkeypatch.setenv("FLOWC_DUMP_IR", str(tmp_path))
        monkeypatch.setenv("FLOWC_FAST_RUN", "0")
        monkeypatch.setenv("FLOWC_POOL_BYTES", "0")
        monkeypatch.setenv("FLOWC_NUM_THREADS", str(started[3] + 1))
        for _ in range(3):  # the first run takes the Python path, the later ones the fast run
            out = sess.run(y, {x: data})
        assert np.isnan(out[0])  # still IEEE: FLOWC_FAST_MATH=1 came too late
        np.testing.assert_allclose(out[1:], (data[1:] * 1.5).sum(axis=1), rtol=1e-5)
        assert (sess.options, sess.run_options, default_allocator().limit, num_threads()) == started
        assert list(tmp_path.iterdir()) == []  # no dump: the Session read FLOWC_DUMP_IR before it was set
        assert len(sess._fast) == 1  # FLOWC_FAST_RUN=0 came too late for this Session
    # The next Session reads the variables again; the pool and the thread count are the process's.
    with fc.Session(graph=g) as later:
        assert later.options.fast_math and not later.options.optimize and not later.run_options.fast_run
        assert default_allocator().limit == 0 and num_threads() == started[3] + 1
