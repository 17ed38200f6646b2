"""Every op's declaration; importing this package registers them all."""

from . import autodiff, control, conv, elementwise, fusion, indexing, linalg, random, reduction, rows, shape, structure  # noqa: F401
from . import dims  # noqa: F401
from . import scan, selection  # noqa: F401
from . import elementwise_math  # noqa: F401
from . import checks  # noqa: F401
from . import transfer  # noqa: F401
from . import collective  # noqa: F401
from . import stacks  # noqa: F401
