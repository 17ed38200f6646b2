"""The emitters of every (kind, schedule); importing this package registers them (launch.EMITTERS)."""

from . import checks, column_reduction, dims, loop, matmul, patches, reduction, row_blocks, single, vector_rows  # noqa: F401
