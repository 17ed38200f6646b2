"""The emitters of every (kind, schedule); importing this package registers them (kernel.EMITTERS)."""

from . import movement, single  # noqa: F401  (single kernels: gpuops)
from . import gathers  # noqa: F401  (single kernels: gpuops)
from . import scatters  # noqa: F401  (single kernels: gpuops)
from . import random  # noqa: F401  (single kernels: gpuops)
from . import scans  # noqa: F401  (single kernels: gpuops)
from . import patches  # noqa: F401  (single kernels: gpuops)
from . import loop  # noqa: F401  loop kernels, schedule "blocks"
from . import matmul  # noqa: F401  matmul kernels, schedule "dot_tiles"
from . import reduction  # noqa: F401  reduction kernels, schedules "row_tiles" and "column_tiles"
