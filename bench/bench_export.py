"""Exported libraries (fc.export): the C call's overhead, an exported MLP against the Session, the size.

    .venv/bin/python bench/bench_export.py [--threads N]

- tiny: `x * 2 + 1` on 4 floats, exported, called NAME_run in a C loop (the input dims unchanged, as
  a serving loop calls it): nanoseconds per call. The Session's fast run on the same graph beside it.
- mlp: bench_native's MLP (784 -> 512 relu -> 512 relu -> 10, batch 256), weights as Variables:
  the Session's run against the exported library (variables="constants") called from C, in turns
  (three rounds), each the fastest of repeated batches of calls after a warm-up: on a shared
  machine the fastest batch is the one least disturbed by other work. --threads N sets
  FLOWC_NUM_THREADS for both (one thread: the code compared, without the pool's gangs, which a busy
  machine delays most).
- size: libmlp.so with the weights fed as inputs (code only), and with them baked in; OpenBLAS is the
  separate libscipy_openblas.so beside it, not counted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import flowc as fc

TIMER_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include HEADER
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define API(f) CAT(NAME, f)
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    int64_t rows = atoll(argv[1]), cols = atoll(argv[2]), outs = atoll(argv[3]);
    long calls = atol(argv[4]);
    int repeats = atoi(argv[5]);
    float *x = calloc(rows * cols, sizeof(float)), *y = calloc(rows * outs, sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    int64_t dims[2] = {rows, cols};
    const void *inputs[1] = {x};
    void *outputs[1] = {y};
    API(context) *ctx = API(create)();
    double start = now();
    while (now() - start < 0.3) API(run)(ctx, inputs, dims, outputs);  /* warm up: pools, clocks */
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        for (long i = 0; i < calls; i++)
            if (API(run)(ctx, inputs, dims, outputs)) { printf("error %s\n", API(error)(ctx)); return 1; }
        printf("%.9f\n", (now() - t0) / calls);
    }
    API(destroy)(ctx);
    return 0;
}
"""


def c_timer(folder: str, name: str) -> str:
    source = os.path.join(folder, f"time_{name}.c")
    with open(source, "w") as file:
        file.write(TIMER_PROGRAM)
    program = source[:-2]
    subprocess.run(["cc", "-O2", f"-DNAME={name}", f'-DHEADER="{name}.h"', "-I", folder, source, "-L", folder,
                    f"-l{name}", f"-Wl,-rpath,{folder}", "-o", program], check=True)
    return program


def c_seconds(program: str, rows: int, cols: int, outs: int, calls: int, repeats: int) -> float:
    threads = [f"FLOWC_NUM_THREADS={os.environ['FLOWC_NUM_THREADS']}"] if "FLOWC_NUM_THREADS" in os.environ else []
    result = subprocess.run(["env", "-i", f"PATH={os.environ['PATH']}", *threads, program, str(rows), str(cols), str(outs),
                             str(calls), str(repeats)], capture_output=True, text=True, check=True)
    return min(float(line) for line in result.stdout.split())


def python_seconds(fn, calls: int, repeats: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while time.perf_counter() - start < 0.3:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return min(times)


def tiny(folder: str) -> None:
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None], name="x")
        y = x * 2.0 + 1.0
    fc.export(os.path.join(folder, "tiny"), [y], [x])
    seconds = c_seconds(c_timer(folder, "tiny"), 4, 1, 1, 1_000_000, 7)
    data = np.ones(4, np.float32)
    with fc.Session(graph=g) as sess:
        session = python_seconds(lambda: sess.run(y, {x: data}), 100_000, 5)
    print(f"tiny (x * 2 + 1 on 4 floats): C call of tiny_run {seconds * 1e9:.0f} ns; "
          f"Session.run {session * 1e6:.2f} us")


def mlp(folder: str) -> None:
    rng = np.random.default_rng(0)
    weights = {"w1": rng.standard_normal((784, 512), dtype=np.float32) * 0.05,
               "w2": rng.standard_normal((512, 512), dtype=np.float32) * 0.05,
               "w3": rng.standard_normal((512, 10), dtype=np.float32) * 0.05,
               "b": rng.standard_normal((512,), dtype=np.float32)}
    x_value = ((np.arange(256 * 784) * 7919) % 1000 / 1000.0 - 0.5).astype(np.float32).reshape(256, 784)
    g = fc.Graph()
    with g.as_default():
        x = fc.placeholder(fc.float32, [None, 784], name="x")
        v = {k: fc.Variable(fc.constant(w), name=k) for k, w in weights.items()}
        h = fc.relu(fc.matmul(x, v["w1"]) + v["b"])
        h = fc.relu(fc.matmul(h, v["w2"]) + v["b"])
        y = fc.matmul(h, v["w3"])
        init = fc.global_variables_initializer()
    with fc.Session(graph=g) as sess:
        sess.run(init)
        exported = fc.export(os.path.join(folder, "mlp"), [y], [x], session=sess, variables="constants")
        program = c_timer(folder, "mlp")
        for _ in range(3):
            session = python_seconds(lambda: sess.run(y, {x: x_value}), 20, 9)
            seconds = c_seconds(program, 256, 784, 10, 20, 9)
            print(f"mlp 784-512-512-10, batch 256: Session.run {session * 1e3:.2f} ms; exported, called from C "
                  f"{seconds * 1e3:.2f} ms (Session / exported = {session / seconds:.2f})")
        # Last: loaded here, the library's pool would adopt the OpenBLAS the Session's runs use.
        assert fc.load(os.path.join(folder, "mlp"))(x_value).tobytes() == sess.run(y, {x: x_value}).tobytes()
    print(f"  stages: {', '.join(f'{s} {t * 1e3:.0f} ms' for s, t in exported.stages)}")
    baked = os.path.getsize(exported.library)
    g2 = fc.Graph()
    with g2.as_default():
        ph = {k: fc.placeholder(fc.float32, list(w.shape), name=k) for k, w in weights.items()}
        x2 = fc.placeholder(fc.float32, [None, 784], name="x")
        h = fc.relu(fc.matmul(x2, ph["w1"]) + ph["b"])
        h = fc.relu(fc.matmul(h, ph["w2"]) + ph["b"])
        y2 = fc.matmul(h, ph["w3"])
    code = fc.export(os.path.join(folder, "mlp_code"), [y2], [x2, *ph.values()])
    blas = [f for f in os.listdir(folder) if f.startswith("libscipy_openblas")]
    print(f"size: libmlp_code.so (weights as inputs) {os.path.getsize(code.library) / 1024:.0f} KB; libmlp.so with "
          f"the weights baked in {baked / 1024:.0f} KB (weights {sum(w.nbytes for w in weights.values()) / 1024:.0f} "
          f"KB); beside them {', '.join(blas) or 'no OpenBLAS'} "
          f"({sum(os.path.getsize(os.path.join(folder, f)) for f in blas) / 1e6:.0f} MB)")


def main() -> None:
    if "--threads" in sys.argv:  # before flowc's pool starts: it reads the variable once
        os.environ["FLOWC_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        print(f"{sys.platform}, {len(os.sched_getaffinity(0))} CPUs, FLOWC_NUM_THREADS="
              f"{os.environ.get('FLOWC_NUM_THREADS', 'unset')}, load average {os.getloadavg()[0]:.1f}")
        tiny(folder)
        mlp(folder)


if __name__ == "__main__":
    main()
