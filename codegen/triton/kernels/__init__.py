"""The emitters of every (kind, schedule); importing this package registers them (kernel.EMITTERS)."""

from . import loop  # noqa: F401  loop kernels, schedule "blocks"
