"""Exported libraries called from C: programs compiled with cc against NAME.h, linked with libNAME.so and
run with nothing but PATH in their environment, whose results must equal the Session's bit for bit.

Each library is exported once per module (fixtures), and each C program compiled once per build kind
(plain, AddressSanitizer): the C tests cost a few seconds in all.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import flowc as fc
from flowc.aot import build

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples"))
from softmax_regression import build_model, load_data  # noqa: E402

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler")

FEATURES, HIDDEN, CLASSES = 64, 32, 10
ROWS = (1, 3, 1000)
SANITIZE = ("-fsanitize=address", "-fno-omit-frame-pointer")
STEPS, BATCH = 100, 100

# Shared by the programs: NAME and its header come from -D flags; API(run) is NAME_run.
PRELUDE = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include HEADER
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define API(f) CAT(NAME, f)
static void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END); *size = (size_t)ftell(f); fseek(f, 0, SEEK_SET);
    void *data = malloc(*size ? *size : 1);
    if (fread(data, 1, *size, f) != *size) { perror(path); exit(2); }
    fclose(f);
    return data;
}
"""

# The MLP: rows 1, 3, 1000 of the data in turn, on one context (its arena grows, then is reused);
# then dims that do not fit, which must give NAME_ERROR_DIMS and a message.
MLP_PROGRAM = PRELUDE + r"""
int main(int argc, char **argv) {
    size_t size;
    float *x = read_file(argv[1], &size);
    FILE *out = fopen(argv[2], "wb");
    API(context) *ctx = API(create)();
    if (!ctx) return 3;
    int64_t rows[3] = {1, 3, 1000};
    for (int r = 0; r < 3; r++) {
        int64_t in_dims[2] = {rows[r], 64}, out_dims[2];
        if (API(output_dims)(ctx, in_dims, out_dims) != 0) { printf("dims: %s\n", API(error)(ctx)); return 4; }
        if (out_dims[0] != rows[r] || out_dims[1] != 10) return 5;
        float *y = malloc(sizeof(float) * out_dims[0] * out_dims[1]);
        const void *inputs[1] = {x};
        void *outputs[1] = {y};
        if (API(run)(ctx, inputs, in_dims, outputs) != 0) { printf("run: %s\n", API(error)(ctx)); return 6; }
        fwrite(y, sizeof(float), out_dims[0] * out_dims[1], out);
        free(y);
    }
    fclose(out);
    int64_t bad[2] = {3, 63}, out_dims[2];
    float y[30];
    const void *inputs[1] = {x};
    void *outputs[1] = {y};
    int code = API(run)(ctx, inputs, bad, outputs);
    printf("bad dims: %d %d %s\n", code, API(output_dims)(ctx, bad, out_dims), API(error)(ctx));
    int64_t negative[2] = {-1, 64};
    printf("negative: %d %s\n", API(run)(ctx, inputs, negative, outputs), API(error)(ctx));
    printf("variable: %p %p\n", API(variable)(ctx, 0), API(variable)(ctx, -1));
    printf("null: %d\n", API(run)(NULL, inputs, bad, outputs));
    API(destroy)(ctx);
    free(x);
    return code == CAT(NAME, ERROR_DIMS) ? 0 : 7;
}
"""

# The softmax-regression training step: STEPS steps of BATCH rows, the loss of each written out,
# then the variables (W, b) as they are after the last step.
TRAIN_PROGRAM = PRELUDE + r"""
int main(int argc, char **argv) {
    size_t x_size, y_size;
    float *x = read_file(argv[1], &x_size);
    int32_t *labels = read_file(argv[2], &y_size);
    int steps = atoi(argv[4]), batch = atoi(argv[5]);
    int64_t n = (int64_t)(y_size / sizeof(int32_t)), features = (int64_t)(x_size / sizeof(float)) / n;
    FILE *out = fopen(argv[3], "wb");
    API(context) *ctx = API(create)();
    if (!ctx || API(NUM_VARIABLES) != 2) return 3;
    for (int i = 0; i < steps; i++) {
        int64_t start = ((int64_t)i * batch) % (n - batch);
        int64_t dims[3] = {batch, features, batch};
        float loss;
        const void *inputs[2] = {x + start * features, labels + start};
        void *outputs[1] = {&loss};
        if (API(run)(ctx, inputs, dims, outputs) != 0) { printf("run: %s\n", API(error)(ctx)); return 4; }
        fwrite(&loss, sizeof loss, 1, out);
    }
    fwrite(API(variable)(ctx, 0), sizeof(float), features * 10, out);
    fwrite(API(variable)(ctx, 1), sizeof(float), 10, out);
    fclose(out);
    int64_t bad[3] = {5, features, 4};
    float loss;
    const void *inputs[2] = {x, labels};
    void *outputs[1] = {&loss};
    int code = API(run)(ctx, inputs, bad, outputs);
    printf("bad dims: %d %s\n", code, API(error)(ctx));
    API(destroy)(ctx);
    free(x);
    free(labels);
    return code == CAT(NAME, ERROR_DIMS) ? 0 : 7;
}
"""


# One context per thread, four threads at once, each running the MLP on its own rows.
THREADS_PROGRAM = PRELUDE + r"""
#include <pthread.h>
static float *x, *expected;
static void *work(void *arg) {
    long t = (long)arg;
    API(context) *ctx = API(create)();
    int64_t rows = 1 + t, dims[2] = {rows, 64};
    float y[40];
    const void *inputs[1] = {x};
    void *outputs[1] = {y};
    for (int i = 0; i < 50; i++) {
        if (API(run)(ctx, inputs, dims, outputs) != 0) return (void *)1;
        if (memcmp(y, expected + 10 * t * (t + 1) / 2, sizeof(float) * 10 * rows) != 0) return (void *)2;
    }
    API(destroy)(ctx);
    return NULL;
}
int main(int argc, char **argv) {
    size_t size;
    x = read_file(argv[1], &size);
    expected = read_file(argv[2], &size);
    pthread_t threads[4];
    for (long t = 0; t < 4; t++) pthread_create(&threads[t], NULL, work, (void *)t);
    long failed = 0;
    for (int t = 0; t < 4; t++) { void *status; pthread_join(threads[t], &status); failed |= (long)status; }
    return (int)failed;
}
"""


def mlp_graph(seed: int = 0) -> tuple[fc.Graph, fc.Tensor, fc.Tensor]:
    g = fc.Graph()
    with g.as_default():
        fc.set_random_seed(seed)
        x = fc.placeholder(fc.float32, shape=[None, FEATURES], name="x")
        W1 = fc.Variable(fc.random_normal([FEATURES, HIDDEN], stddev=math.sqrt(2.0 / FEATURES)), name="W1")
        b1 = fc.Variable(fc.random_normal([HIDDEN], stddev=0.1), name="b1")
        W2 = fc.Variable(fc.random_normal([HIDDEN, CLASSES], stddev=math.sqrt(1.0 / HIDDEN)), name="W2")
        b2 = fc.Variable(fc.random_normal([CLASSES], stddev=0.1), name="b2")
        logits = fc.matmul(fc.relu(fc.matmul(x, W1) + b1), W2) + b2
    return g, x, logits


def clean_run(command: list[str], cwd: str) -> subprocess.CompletedProcess:
    """Run with nothing in the environment but PATH: no Python, no flowc, no LD_LIBRARY_PATH."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(["env", "-i", *[f"{k}={v}" for k, v in env.items()], *command], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def build_program(source: str, folder: str, name: str, program: str, sanitize: bool) -> str:
    """The program, linked with folder/libNAME.so (folder/asan/libNAME.so when sanitized)."""
    folder = os.path.join(folder, "asan") if sanitize else folder
    path = os.path.join(folder, program)
    with open(path + ".c", "w") as file:
        file.write(source)
    flags = [*SANITIZE, "-g"] if sanitize else ["-O2"]
    result = subprocess.run([CC, *flags, f"-DNAME={name}", f'-DHEADER="{name}.h"', "-I", folder, path + ".c",
                             "-L", folder, f"-l{name}", f"-Wl,-rpath,{folder}", "-o", path],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return path


def asan_works(folder: str) -> bool:
    source = os.path.join(folder, "probe.c")
    with open(source, "w") as file:
        file.write("int main(void) { return 0; }\n")
    built = subprocess.run([CC, *SANITIZE, source, "-o", source[:-2]], capture_output=True)
    return built.returncode == 0 and subprocess.run([source[:-2]], capture_output=True).returncode == 0


def export_twice(folder: str, name: str, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
    """fc.export to folder/name, and where AddressSanitizer works, to folder/asan/name with the
    library's own C (the API, the thread pool) built under it too."""
    fc.export(os.path.join(folder, name), *args, **kwargs)
    if not asan_works(folder):
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "C_FLAGS", (*build.C_FLAGS, *SANITIZE))
        patch.setattr(build, "LINK_FLAGS", SANITIZE)
        fc.export(os.path.join(folder, "asan", name), *args, **kwargs)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """The MLP exported with its weights baked in, and the Session's logits for 1, 3 and 1000 rows."""
    folder = str(tmp_path_factory.mktemp("mlp"))
    g, x, logits = mlp_graph()
    data = np.random.default_rng(0).standard_normal((1000, FEATURES)).astype(np.float32)
    data.tofile(os.path.join(folder, "x.bin"))
    with fc.Session(graph=g) as sess:
        sess.run(_initializer(g))
        export_twice(folder, "mlp", [logits], [x], session=sess, variables="constants")
        expected = [sess.run(logits, {x: data[:rows]}) for rows in ROWS]
        few = [sess.run(logits, {x: data[:rows]}) for rows in (1, 2, 3, 4)]
        np.concatenate([f.ravel() for f in few]).tofile(os.path.join(folder, "few_rows.bin"))
    return folder, expected


def _initializer(g: fc.Graph) -> fc.Operation:
    with g.as_default():
        return fc.global_variables_initializer()


@pytest.fixture(scope="module")
def softmax_step(tmp_path_factory):
    """The softmax-regression training step exported with variables="state" from a fresh Session, and
    that Session's losses and final variables after the same STEPS steps."""
    folder = str(tmp_path_factory.mktemp("softmax"))
    m = build_model(0.5)
    x_train, y_train, _, _ = load_data()
    x_train.tofile(os.path.join(folder, "x.bin"))
    y_train.tofile(os.path.join(folder, "y.bin"))
    with fc.Session(graph=m["graph"]) as sess:
        sess.run(m["init"])
        export_twice(folder, "step", [m["loss"], m["train"]], [m["x"], m["y"]], session=sess)
        losses = []
        for i in range(STEPS):
            start = (i * BATCH) % (len(y_train) - BATCH)
            rows = slice(start, start + BATCH)
            losses.append(sess.run([m["loss"], m["train"]], {m["x"]: x_train[rows], m["y"]: y_train[rows]})[0])
        graph = m["graph"]
        W, b = sess.run([graph.get_tensor_by_name("W:0"), graph.get_tensor_by_name("b:0")])
    return folder, np.array(losses, np.float32), W, b


def run_mlp(folder: str, expected: list[np.ndarray], sanitize: bool) -> str:
    program = build_program(MLP_PROGRAM, folder, "mlp", "mlp_main", sanitize)
    out = os.path.join(folder, "logits_asan.bin" if sanitize else "logits.bin")
    result = clean_run([program, os.path.join(folder, "x.bin"), out], folder)
    assert result.returncode == 0, result.stdout + result.stderr
    got = np.fromfile(out, np.float32)
    assert got.tobytes() == np.concatenate([e.ravel() for e in expected]).tobytes()
    return result.stdout


def test_mlp_from_c_equals_the_session_for_1_3_and_1000_rows(mlp):
    folder, expected = mlp
    output = run_mlp(folder, expected, sanitize=False)
    assert "bad dims: 1 1 input 0 ('x') axis 1: expected dim 64, got 63" in output
    assert "negative: 1 input 0 ('x') axis 0: dim -1 is negative" in output
    assert "variable: (nil) (nil)" in output  # constants: no variable buffers
    assert "null: 4" in output


def test_one_context_per_thread_runs_concurrently(mlp):
    folder, _ = mlp  # the fixture wrote few_rows.bin: the Session's logits for 1, 2, 3 and 4 rows
    program = build_program(THREADS_PROGRAM, folder, "mlp", "threads_main", False)
    result = clean_run([program, os.path.join(folder, "x.bin"), os.path.join(folder, "few_rows.bin")], folder)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)


def test_softmax_training_step_from_c_equals_the_session(softmax_step):
    folder, losses, W, b = softmax_step
    output = run_training(folder, sanitize=False, expected=(losses, W, b))
    assert "bad dims: 1 input 0 ('x') axis 0 is 5 but the other inputs' dims make it 4" in output  # y's 4 labels


def run_training(folder: str, sanitize: bool, expected: tuple) -> str:
    losses, W, b = expected
    program = build_program(TRAIN_PROGRAM, folder, "step", "train_main", sanitize)
    out = os.path.join(folder, "train_asan.bin" if sanitize else "train.bin")
    result = clean_run([program, os.path.join(folder, "x.bin"), os.path.join(folder, "y.bin"), out, str(STEPS),
                        str(BATCH)], folder)
    assert result.returncode == 0, result.stdout + result.stderr
    got = np.fromfile(out, np.float32)
    assert got[:STEPS].tobytes() == losses.tobytes()
    assert got[STEPS:STEPS + W.size].tobytes() == W.tobytes()
    assert got[STEPS + W.size:].tobytes() == b.tobytes()
    assert losses[-1] < losses[0]  # it trained
    return result.stdout


def test_under_address_sanitizer(mlp, softmax_step):
    """The programs and the libraries' C (API, thread pool) under AddressSanitizer and LeakSanitizer:
    no bad access, every byte freed by NAME_destroy. (The LLVM kernels are not instrumented.)"""
    if not os.path.exists(os.path.join(mlp[0], "asan")):
        pytest.skip("the C compiler cannot build and run -fsanitize=address programs here")
    folder, expected = mlp
    run_mlp(folder, expected, sanitize=True)
    folder, losses, W, b = softmax_step
    run_training(folder, sanitize=True, expected=(losses, W, b))


def test_header_compiles_as_cpp(mlp, tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    folder, _ = mlp
    source = tmp_path / "use.cpp"
    source.write_text('#include "mlp.h"\nint main() { mlp_context *c = mlp_create(); mlp_destroy(c); '
                      "return mlp_NUM_INPUTS == 1 ? 0 : 1; }\n")
    built = subprocess.run([cxx, str(source), "-I", folder, "-L", folder, "-lmlp", f"-Wl,-rpath,{folder}",
                            "-o", str(tmp_path / "use")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert clean_run([str(tmp_path / "use")], str(tmp_path)).returncode == 0


def test_only_the_api_is_exported_and_blas_lies_beside(mlp):
    folder, _ = mlp
    library = os.path.join(folder, "libmlp.so")
    symbols = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True, text=True).stdout
    names = {line.split()[-1] for line in symbols.splitlines() if line.strip()}
    assert {f"mlp_{f}" for f in ("create", "destroy", "output_dims", "run", "error", "variable")} <= names
    assert not any(n.startswith("flowc") for n in names), names
    dynamic = subprocess.run(["readelf", "-d", library], capture_output=True, text=True).stdout
    assert "$ORIGIN" in dynamic
    assert "libflowc_rt" not in dynamic  # the thread pool is linked in
