"""The disk cache writes without fsync (a cold compile's time, issue 18) and still never loads what a
power loss could leave behind: an empty or short library, an empty sidecar (Note in runtime/cache.py)."""

import os

import pytest

from flowc.runtime import cache
from flowc.runtime.cache import cache_key, cached_library

PAYLOAD = bytes(range(256)) * 16


def counting_build(payload: bytes):
    calls = []

    def build(path):
        calls.append(path)
        with open(path, "wb") as file:
            file.write(payload)

    return build, calls


def test_an_entry_is_written_without_fsync(tmp_path, monkeypatch):
    def refuse(descriptor):
        raise AssertionError("the cache fsynced a file")

    monkeypatch.setattr(os, "fsync", refuse)
    build, calls = counting_build(PAYLOAD)
    path, was_cached = cached_library(cache_key("unsynced"), build, folder=str(tmp_path))
    assert not was_cached and len(calls) == 1
    with open(path, "rb") as file:
        assert file.read() == PAYLOAD


@pytest.mark.parametrize("left", ["empty library", "short library", "empty sidecar", "stale sidecar"])
def test_what_a_power_loss_leaves_is_rebuilt(tmp_path, left):
    build, calls = counting_build(PAYLOAD)
    key = cache_key("power loss", left)
    path, _ = cached_library(key, build, folder=str(tmp_path))
    sidecar = path[: -len(".so")] + ".sha256"
    if left == "empty library":
        os.truncate(path, 0)
    elif left == "short library":
        os.truncate(path, len(PAYLOAD) // 2)
    elif left == "empty sidecar":
        os.truncate(sidecar, 0)
    else:  # the sidecar of an older build of the same key, the library newer
        with open(path, "wb") as file:
            file.write(PAYLOAD[::-1])
    cache.forget()  # a fresh process: nothing remembered
    try:
        assert cached_library(key, build, folder=str(tmp_path)) == (path, False)
        assert len(calls) == 2
        with open(path, "rb") as file:
            assert file.read() == PAYLOAD
        assert cached_library(key, build, folder=str(tmp_path)) == (path, True)
    finally:
        cache.forget()
