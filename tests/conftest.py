"""Fixtures shared by every test module."""

import os

import numpy as np
import pytest

from flowc.runtime import options

# The verifier runs after every pass and after the CPU target's own rewrites (FLOWC_VERIFY), as it
# should under test; a user's runs skip it.
os.environ.setdefault("FLOWC_VERIFY", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so a failing test fails the same way every time."""
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _run_options_restored():
    """A Session makes its run options the process's (Note [run options] in runtime/options.py):
    put back the ones from before the test, so one test's FLOWC_CACHE_DIR does not outlive it."""
    before = options.current()
    yield
    if options.current() != before:
        options.configure(before)
