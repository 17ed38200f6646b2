"""float16 beside float32 on the cpu target, and uint8 images cast in the graph beside numpy's conversion.

    taskset -c 0 env OPENBLAS_NUM_THREADS=1 FLOWC_NUM_THREADS=1 .venv/bin/python bench/bench_dtypes.py

float16 is stored as half and computed in float32, each op rounded to half (Note [float16 on the CPU] in
codegen/llvm/types.py); products wider than 16 columns run as sgemm on float32 copies
(passes/widen_half_products.py). CPU time per run, the best of five rounds after a warm-up.
"""

from __future__ import annotations

import time

import numpy as np

import flowc as fc


def best(fn, seconds: float = 0.5) -> float:  # type: ignore[no-untyped-def]
    """Microseconds of CPU time per call of `fn`, the best of five rounds of about `seconds` / 5."""
    fn()
    rounds = []
    for _ in range(5):
        started, calls = time.process_time(), 0
        while time.process_time() - started < seconds / 5 or calls == 0:
            fn()
            calls += 1
        rounds.append((time.process_time() - started) / calls)
    return min(rounds) * 1e6


def float16_rows(rng: np.random.Generator) -> None:
    cases = {"relu(a @ b), 256x512 @ 512x256": lambda dt: ({"a": (256, 512), "b": (512, 256)},
                                                          lambda a, b: fc.nn.relu(fc.matmul(a, b))),
             "a @ b, 1024x784 @ 784x10": lambda dt: ({"a": (1024, 784), "b": (784, 10)}, fc.matmul),
             "softmax, 4096 rows of 10": lambda dt: ({"a": (4096, 10)}, fc.nn.softmax),
             "tanh(2x + 1) x - x^2, 2048x1024": lambda dt: ({"a": (2048, 1024)},
                                                           lambda a: fc.tanh(a * 2.0 + 1.0) * a - a * a)}
    for name, case in cases.items():
        times = {}
        for dtype in (fc.float32, fc.float16):
            shapes, build = case(dtype)
            graph = fc.Graph()
            with graph.as_default():
                placeholders = {key: fc.placeholder(dtype, shape, name=key) for key, shape in shapes.items()}
                result = build(*placeholders.values())
            feed = {placeholders[key]: rng.standard_normal(shape).astype(dtype.np) for key, shape in shapes.items()}
            with fc.Session(graph=graph) as session:
                times[dtype.name] = best(lambda: session.run(result, feed))
        print(f"{name:36s} float16 {times['float16']:9.1f} us   float32 {times['float32']:9.1f} us")


def uint8_row(rng: np.random.Generator) -> None:
    images = rng.integers(0, 256, (1024, 784)).astype(np.uint8)
    weights = rng.standard_normal((784, 10)).astype(np.float32)
    graph = fc.Graph()
    with graph.as_default():
        raw = fc.placeholder(fc.uint8, [None, 784])
        scaled = fc.placeholder(fc.float32, [None, 784])
        from_uint8 = fc.nn.softmax(fc.matmul(fc.cast(raw, fc.float32) / 255.0, fc.constant(weights)))
        from_float = fc.nn.softmax(fc.matmul(scaled, fc.constant(weights)))
    with fc.Session(graph=graph) as session:
        in_graph = best(lambda: session.run(from_uint8, {raw: images}))
        in_numpy = best(lambda: session.run(from_float, {scaled: images.astype(np.float32) / np.float32(255.0)}))
        conversion = best(lambda: images.astype(np.float32) / np.float32(255.0))
    print(f"1024 uint8 images -> softmax(x @ W): cast and /255 in the graph {in_graph:.0f} us; numpy's conversion "
          f"then a float32 feed {in_numpy:.0f} us (the conversion alone {conversion:.0f} us)")


def main() -> None:
    rng = np.random.default_rng(0)
    float16_rows(rng)
    uint8_row(rng)


if __name__ == "__main__":
    main()
