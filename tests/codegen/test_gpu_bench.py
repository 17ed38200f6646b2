"""bench/bench_gpu.py runs under Triton's interpreter with tiny sizes: every workload either runs and
matches torch, or is skipped with a line saying what the gpu target lacks."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "bench_gpu.py")


def test_the_gpu_benchmark_runs_tiny(tmp_path):
    done = subprocess.run([sys.executable, BENCH, "--size", "tiny", "--repeats", "1"], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, FLOWC_CACHE_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("# flowc gpu target on")
    assert any(line.startswith("chain: flowc ms") for line in lines)
    assert any(line.startswith("matmul float16 +bias relu: flowc ms") for line in lines), done.stdout  # fc.float16
    assert not any("differs from torch" in line for line in lines), done.stdout
    # each kernel's configuration: the heuristic's, since the interpreter times nothing (Note [autotuning])
    assert "# matmul float32 +bias relu: kernel0: BLOCK_M=64 BLOCK_N=32 BLOCK_K=32, 4 warps, 3 stages " \
           "(the heuristic's: the interpreter times nothing)" in lines, done.stdout
    assert "# chain: kernel0: BLOCK=1024, 4 warps (the heuristic's: no candidates)" in lines, done.stdout
    for name in ("softmax rows", "layer norm rows", "matmul float16", "matmul bfloat16", "matmul float32", "mlp step"):
        assert any(line.startswith(name) for line in lines), name
