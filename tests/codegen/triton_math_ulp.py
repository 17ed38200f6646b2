"""The largest error of each Triton transcendental (codegen/triton/math.py) over many inputs, in Triton's
interpreter: `.venv/bin/python tests/codegen/triton_math_ulp.py [count]` (2**20 a row by default, some
minutes on one core). The same distributions as the CPU's accuracy tests (tests/codegen/test_mathlib*.py):
a walk over every bit pattern, the working range dense and at random, magnitudes down to 2**-60, the edges;
pow's samples span every result magnitude. test_triton_math.py runs a few thousand of these as a test."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
import triton  # noqa: E402,F401  (before any interpreted module)

from test_mathlib import DENSE, bit_walk, edge_values, pow_edges, pow_samples, ulp_error  # noqa: E402
from test_mathlib_special import DENSE as SPECIAL_DENSE  # noqa: E402
from test_triton_math import exact_reference, in_range, kernel_of, one_op  # noqa: E402

from flowc.codegen.triton.kernel import TritonModule  # noqa: E402
from flowc.codegen.triton.math import MAX_ULP  # noqa: E402

DTYPES = ("float32", "float64")


def samples(name: str, dtype: str, count: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    if name == "pow":
        x, y = pow_samples(dtype, rng, count - 1024)
        edge_x, edge_y = pow_edges(dtype)
        return np.concatenate([x, edge_x])[:count], np.concatenate([y, edge_y])[:count]
    low, high = DENSE.get((name, dtype)) or SPECIAL_DENSE[name]
    quarter = count // 4
    x = np.concatenate([bit_walk(dtype, quarter, rng), np.linspace(low, high, quarter, dtype=dtype),
                        rng.uniform(low, high, quarter).astype(dtype),
                        (np.exp2(rng.uniform(-60, 2, quarter)) * rng.choice([-1, 1], quarter)).astype(dtype),
                        edge_values(dtype)])
    return (x[:count],)


def main(count: int) -> None:
    rng = np.random.default_rng(1)
    names = sorted({name for name, _ in MAX_ULP})
    ops = {f"{name}_{dtype}": one_op(name, dtype) for name in names for dtype in DTYPES}
    module = TritonModule([kernel_of(op, key, block=count) for key, op in ops.items()], interpret=True)
    print(f"{'op':8s} {'float32':>8s} {'float64':>8s}   (bounds; {count} inputs a row)")
    for name in names:
        measured = []
        for dtype in DTYPES:
            inputs = samples(name, dtype, count, rng)
            out = np.empty(inputs[0].shape, dtype)
            with np.errstate(all="ignore"):
                module.launch(f"{name}_{dtype}", [torch.from_numpy(np.ascontiguousarray(x)) for x in (*inputs, out)])
            keep = in_range(name, inputs)
            kept = tuple(x[keep] for x in inputs)
            measured.append(float(ulp_error(out[keep], exact_reference(name, dtype, kept), dtype).max()))
        bounds = ", ".join(str(MAX_ULP[name, dtype]) for dtype in DTYPES)
        print(f"{name:8s} {measured[0]:8.3f} {measured[1]:8.3f}   ({bounds})", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2**20)
