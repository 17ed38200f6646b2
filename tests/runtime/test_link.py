"""Note [linking without the compiler driver] in runtime/build.py: on Linux with no $CC, ld links the CPU
target's objects alone, with libm (libc resolves the rest when loaded); the compiler driver links where ld
fails or $CC is chosen."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest
from flowc.runtime import build
from flowc.runtime.build import find_c_compiler, link_shared

SOURCE = """
#include <math.h>
double remainder_of(double x, double y) { return fmod(x, y) + sin(0.0); }
"""


def object_bytes(tmp_path) -> bytes:  # type: ignore[no-untyped-def]
    source = tmp_path / "remainder.c"
    source.write_text(SOURCE)
    obj = tmp_path / "remainder.o"
    subprocess.run([*find_c_compiler(), "-O2", "-fPIC", "-fno-builtin", "-c", str(source), "-o", str(obj)], check=True)
    return obj.read_bytes()


def remainder_of(path: str) -> float:
    library = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    library.remainder_of.argtypes = (ctypes.c_double, ctypes.c_double)
    library.remainder_of.restype = ctypes.c_double
    return library.remainder_of(7.5, 2.0)


@pytest.mark.skipif(not sys.platform.startswith("linux") or build._ld() is None, reason="ld links on Linux only")
def test_ld_links_alone_without_cc(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    assert build._system_linker() == build._ld()
    calls: list[list[str]] = []
    run = build._run
    monkeypatch.setattr(build, "_run", lambda command, what: (calls.append(command), run(command, what))[1])
    path = str(tmp_path / "libremainder.so")
    link_shared([object_bytes(tmp_path)], [], path)
    assert [command[0] for command in calls] == [build._ld()]  # one process: ld, libm named
    assert calls[0][-1] == "-lm"
    assert remainder_of(path) == 1.5


def test_the_driver_links_where_ld_fails_or_cc_is_chosen(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = object_bytes(tmp_path)
    monkeypatch.setattr(build, "_system_linker", lambda: "/bin/false")  # an ld that fails
    failing = str(tmp_path / "libfailing.so")
    link_shared([data], [], failing)
    assert remainder_of(failing) == 1.5
    monkeypatch.undo()
    monkeypatch.setenv("CC", find_c_compiler()[0])
    assert build._system_linker() is None
    chosen = str(tmp_path / "libchosen.so")
    link_shared([data], [], chosen)
    assert remainder_of(chosen) == 1.5
