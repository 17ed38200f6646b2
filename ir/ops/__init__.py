"""Every op's declaration; importing this package registers them all."""

from . import autodiff, control, conv, elementwise, fusion, indexing, linalg, random, reduction, rows, shape, structure  # noqa: F401
from . import checks, dims  # noqa: F401
