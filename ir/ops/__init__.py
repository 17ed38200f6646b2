"""Every op's declaration; importing this package registers them all."""

from . import autodiff, control, elementwise, elementwise_math, fusion, indexing, linalg, random, reduction, rows, shape, structure  # noqa: F401
