"""The `>>>` examples in public docstrings run, so the docs cannot go stale."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import flowc

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(flowc.__path__, prefix="flowc.")
    if not name.startswith("flowc.cli")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"


def test_public_examples_exist() -> None:
    examples = sum(len(doctest.DocTestFinder().find(importlib.import_module(n))) for n in MODULES)
    assert examples >= 10
