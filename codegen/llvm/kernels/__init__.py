"""One emitter per fusion kind; importing this package registers them (module.KERNELS)."""

from . import loop, matmul, reduction, single  # noqa: F401
