"""The emitters of every (kind, schedule); importing this package registers them (kernel.EMITTERS)."""
from . import matmul  # noqa: F401
