"""Central differences for the gradient tests of the front end."""

from __future__ import annotations

from typing import Callable

import numpy as np


def central_differences(loss: Callable[[], float], array: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """d loss / d array by central differences; `loss()` reads `array`, which is perturbed in place and restored."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        up = loss()
        array[index] = saved - step
        down = loss()
        array[index] = saved
        gradient[index] = (up - down) / (2 * step)
    return gradient
