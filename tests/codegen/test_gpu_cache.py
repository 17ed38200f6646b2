"""The gpu target's disk cache: a second process compiling the same graph reads the kernels and their
module back, and runs no emitter (compiler/targets/gpu.py, codegen/triton/cache.py)."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

from flowc.codegen.triton import cache  # noqa: E402
from flowc.codegen.triton.kernel import Buffer, Extent, GridAxis, Scalar, TritonKernel  # noqa: E402

PROGRAM = """
import sys
import numpy as np
import flowc as fc
from flowc.codegen.triton.kernel import EMITTERS

if sys.argv[1] == "no-emitters":
    def refuse(op, name):
        raise AssertionError("an emitter ran on a disk cache hit")
    for key in list(EMITTERS):
        EMITTERS[key] = refuse
graph = fc.Graph()
with graph.as_default():
    x = fc.placeholder(fc.float32, [None, 3], name="x")
    y = fc.nn.relu(x * 2.0 - 1.0)
with fc.Session(target="gpu", graph=graph) as session:
    out = session.run(y, {x: np.ones((2, 3), np.float32)})
    (compiled,) = session._cache.values()
    executable = compiled.executable
    print(executable.was_cached, executable.kernels.was_cached, out.tolist())
"""


def _run(tmp_path, mode):
    environment = dict(os.environ, FLOWC_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], env=environment, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_second_process_reads_the_kernels_back(tmp_path):
    assert _run(tmp_path, "emit") == "False False [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]"
    assert _run(tmp_path, "no-emitters") == "True True [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]"


def test_kernels_round_trip_through_text():
    kernel = TritonKernel("k", "@triton.jit\ndef k(a, b, n, s, BLOCK: tl.constexpr):\n    pass\n",
                          (("a", Buffer(0)), ("b", Buffer(1)), ("n", Extent(1, 0)), ("s", Scalar("step", "i64"))),
                          (GridAxis((Extent(1, 0), Extent(1, 1)), 64, 2),), {"BLOCK": 64}, num_warps=8)
    assert cache.loads(cache.dumps([kernel])) == (kernel,)
    assert cache.loads(cache.dumps([])) == ()
