"""Fixtures shared by every test module."""

import os

import numpy as np
import pytest

# The verifier runs after every pass and after the CPU target's own rewrites (FLOWC_VERIFY), as it
# should under test; a user's runs skip it.
os.environ.setdefault("FLOWC_VERIFY", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so a failing test fails the same way every time."""
    return np.random.default_rng(0)
