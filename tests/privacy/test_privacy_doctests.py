"""The examples in the docstrings of the privacy package run and are right."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import privacy

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(privacy.__path__, prefix="privacy."))


def test_the_public_api_is_importable() -> None:
    for name in privacy.__all__:
        assert getattr(privacy, name) is not None, name


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module_name}"
