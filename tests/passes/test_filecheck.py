"""Lit-style IR tests: each tests/filecheck/**/*.ir file is IR in and CHECK lines out.

The first line says what to run, as in LLVM's lit:
    // RUN: flowc opt %s --passes cse,dce
The runner runs that `flowc` command in process and checks its output
against the file's CHECK lines with `filecheck` (a Python clone of LLVM's).
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import shlex
import subprocess
import sys

import pytest

from flowc.cli import main as flowc_main

ROOT = pathlib.Path(__file__).parent.parent / "filecheck"
FILES = sorted(ROOT.rglob("*.ir"))
FILECHECK = pathlib.Path(sys.executable).parent / "filecheck"


def run_line(path: pathlib.Path) -> list[str]:
    for line in path.read_text().splitlines():
        if line.startswith("// RUN:"):
            words = shlex.split(line[len("// RUN:"):].replace("%s", str(path)))
            assert words[0] == "flowc", f"{path}: RUN lines run flowc, got {words[0]!r}"
            return words[1:]
    raise AssertionError(f"{path} has no '// RUN:' line")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_filecheck(path: pathlib.Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = flowc_main(run_line(path))
    assert status == 0, f"flowc failed on {path.name}:\n{err.getvalue()}"
    check = subprocess.run([str(FILECHECK), str(path)], input=out.getvalue(), capture_output=True, text=True)
    assert check.returncode == 0, f"{path.name}:\n{check.stdout}{check.stderr}\n--- flowc printed:\n{out.getvalue()}"


def test_there_are_filecheck_files() -> None:
    assert len(FILES) >= 10
