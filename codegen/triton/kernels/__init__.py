"""The emitters of every (kind, schedule); importing this package registers them (kernel.EMITTERS)."""
from . import reduction  # noqa: F401  (row_tiles, column_tiles)
