"""Seeded random tensors.

Note [counter-based random numbers]: a random op is a pure function of its
seed, the Session's run counter and the element index (Philox, see
ir/ops/philox.py), so every run draws new numbers, two Sessions with the same
seeds draw the same ones, and every backend can compute the same bits.
"""

from __future__ import annotations

import secrets
from typing import Any, Sequence

from flowc.ir import TensorType
from flowc.ir.types import DType, as_dtype, float32

from .graph import Graph, Tensor, get_default_graph

_SEED_MASK = (1 << 63) - 1


def op_seed(graph: Graph, seed: int | None) -> int:
    """TensorFlow's rule: the graph seed and the op seed together fix the stream.

    With neither set, the stream differs from one program run to the next.
    """
    graph_seed = graph.seed
    if graph_seed is None and seed is None:
        return secrets.randbits(63)
    if seed is None:
        # distinct per op, stable for the same program; a sub-graph's ops count from its own offset
        # (Note [random ops in sub-graphs] in func_graph.py)
        seed = len(graph.get_operations()) + getattr(graph, "seed_offset", 0)
    return ((graph_seed or 0) * 0x9E3779B97F4A7C15 + int(seed)) & _SEED_MASK


def _random(kind: str, shape: Sequence[int], dtype: DType | str, seed: int | None, name: str | None,
            **params: float) -> Tensor:
    graph = get_default_graph()
    out_type = TensorType(as_dtype(dtype), tuple(int(d) for d in shape))
    attrs = {"shape": out_type.shape, "dtype": out_type.dtype, "seed": op_seed(graph, seed), **params}
    return graph.create_op(kind, (), attrs, name=name or kind, output_types=[out_type]).outputs[0]


def random_normal(shape: Sequence[int], mean: float = 0.0, stddev: float = 1.0, dtype: DType | str = float32,
                  seed: int | None = None, name: str | None = None) -> Tensor:
    """Normally distributed values.

    >>> import flowc as fc
    >>> fc.random_normal([3, 4], seed=1).shape
    (3, 4)
    """
    return _random("random_normal", shape, dtype, seed, name, mean=float(mean), stddev=float(stddev))


def random_uniform(shape: Sequence[int], minval: float = 0.0, maxval: float = 1.0, dtype: DType | str = float32,
                   seed: int | None = None, name: str | None = None) -> Any:
    """Uniformly distributed values in [minval, maxval)."""
    return _random("random_uniform", shape, dtype, seed, name, minval=float(minval), maxval=float(maxval))
