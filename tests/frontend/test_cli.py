"""The `flowc` command on bad input: one line `flowc: error: ...` on standard error, exit
status 1, no traceback; and good input still works."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

import flowc as fc
from flowc.cli import main

GOOD = "func @f(%x: f32[4]) -> f32[4] {\n  %y = exp %x : f32[4]\n  return %y : f32[4]\n}\n"
MATMUL = "func @f(%a: f32[2,2]) -> f32[2,2] {\n  %m = matmul %a, %a : f32[2,2]\n  return %m : f32[2,2]\n}\n"
DEEP = GOOD.replace("exp %x", "exp %x {deep = " + "[" * 5000 + "]" * 5000 + "}")


def flowc_error(capsys, argv: list[str]) -> str:
    """Run flowc in process; it must fail with exactly one line on standard error, which is returned."""
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("flowc: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err.strip()


def test_good_file_is_optimized(tmp_path, capsys):
    path = tmp_path / "good.ir"
    path.write_text(GOOD)
    assert main(["opt", str(path), "--passes", "cse"]) == 0
    assert capsys.readouterr().out == GOOD


@pytest.mark.parametrize("content, expected", [
    (b"func @f() \xff\xfe -> f32[4] {", "at {path}: line 1: not UTF-8 text (byte 0xff at offset 10)"),
    (b"// fine\n// still fine\n\xc3(", "at {path}: line 3: not UTF-8 text (byte 0xc3 at offset 22)"),
    (DEEP.encode(), "at {path}: line 2, col 87: lists nested more than 64 deep"),
    (b"", "at {path}: no function: IR text holds functions such as"),
    (b"// only a comment\n", "at {path}: no function"),
    (MATMUL.encode(), "at {path}: line 2, col 8: matmul: missing attribute transpose_a, transpose_b"),
], ids=["not-utf8", "not-utf8-line-3", "nested-5000-deep", "empty", "comment-only", "matmul-no-attributes"])
def test_bad_ir_file(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.ir"
    path.write_bytes(content)
    assert flowc_error(capsys, ["opt", str(path)]).startswith("flowc: error: " + expected.format(path=path))


def test_missing_file_and_folder(tmp_path, capsys):
    missing = tmp_path / "missing.ir"
    assert flowc_error(capsys, ["opt", str(missing)]) == \
        f"flowc: error: cannot read IR file '{missing}': No such file or directory"
    assert flowc_error(capsys, ["opt", str(tmp_path)]) == \
        f"flowc: error: cannot read IR file '{tmp_path}': Is a directory"
    assert flowc_error(capsys, ["ir", str(missing), "--fetch", "y:0"]) == \
        f"flowc: error: cannot read graph_def file '{missing}': No such file or directory"


def test_standard_input_that_is_not_utf8(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x80abc")))
    assert flowc_error(capsys, ["opt", "-"]) == "flowc: error: at -: line 1: not UTF-8 text (byte 0x80 at offset 0)"


def test_unknown_pass(tmp_path, capsys):
    path = tmp_path / "good.ir"
    path.write_text(GOOD)
    assert "unknown pass nope" in flowc_error(capsys, ["opt", str(path), "--passes", "nope"])


def test_ir_of_a_graph_def(tmp_path, capsys):
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 2], name="x")
        fc.exp(x, name="y")
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(g.as_graph_def()))
    assert main(["ir", str(path), "--fetch", "y:0", "--feed", "x:0"]) == 0
    assert "exp %x" in capsys.readouterr().out
    document = g.as_graph_def()
    document["nodes"][1]["op"] = "Exp"
    path.write_text(json.dumps(document))
    assert "Exp 'y'" in flowc_error(capsys, ["ir", str(path), "--fetch", "y:0"])
    path.write_bytes(b"\xff")
    assert "graph.json: line 1: not UTF-8 text" in flowc_error(capsys, ["ir", str(path), "--fetch", "y:0"])


def test_bad_input_in_a_subprocess_prints_one_line(tmp_path):
    """The installed command, as a user runs it: the same one line, exit status 1, no traceback."""
    path = tmp_path / "deep.ir"
    path.write_text(DEEP)
    done = subprocess.run([sys.executable, "-m", "flowc.cli", "opt", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"flowc: error: at {path}: line 2, col 87: lists nested more than 64 deep\n"
