"""The emitters of every (kind, schedule); importing this package registers them (launch.EMITTERS)."""

from . import column_reduction, dims, loop, matmul, patches, reduction, row_blocks, single, vector_rows  # noqa: F401
from . import scan  # noqa: F401  (line ops: registers into single.LINE_EMITTERS)
from . import checks  # noqa: F401
from . import collective  # noqa: F401  (all_reduce, broadcast: a copy, then an MPI call)
from . import scatter  # noqa: F401  (scatter_add: registers into single.SINGLE_KERNELS)
