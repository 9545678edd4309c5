"""The examples in the docstrings of the tabular package run and are right."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tabular

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(tabular.__path__, prefix="tabular.")
    if not m.name.split(".")[-1].startswith("_") or m.name.endswith("__init__")
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module_name}"
