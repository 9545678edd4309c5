"""The examples in the docstrings of graphxfer.graphs run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "graphxfer.graphs.attach",
    "graphxfer.graphs.encoders",
    "graphxfer.graphs.features",
    "graphxfer.graphs.knn",
    "graphxfer.graphs.relational",
    "graphxfer.graphs.sampling",
    "graphxfer.graphs.validate",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
