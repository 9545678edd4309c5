"""The examples in the explanation modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)


@pytest.mark.parametrize("name", ["graphxfer.explain.explain", "graphxfer.explain.export"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
