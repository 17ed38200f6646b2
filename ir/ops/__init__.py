"""Every op's declaration; importing this package registers them all."""

from . import elementwise, structure  # noqa: F401
