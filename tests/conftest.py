"""Fixtures shared by every test module."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so a failing test fails the same way every time."""
    return np.random.default_rng(0)
