"""The names of ``graphxfer.__all__``: the real objects, with real signatures and numpydoc
docstrings (what ``help()`` and ``inspect.signature`` show)."""

from __future__ import annotations

import importlib
import inspect
import re
import types
from typing import Any

import pytest

import graphxfer

LAZY = dict(graphxfer._LAZY)
# objects that are modules you can also call: graphxfer.report(...) and graphxfer.explain(...)
CALLABLE_MODULES = {"report": "report", "explain": "explain"}
# names that do not yet show their real signature or a full numpydoc docstring
NOT_YET: dict[str, str] = {}


def marked(names: list[str]) -> list[Any]:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[n]))
        if n in NOT_YET
        else n
        for n in names
    ]


def only_forwards(sig: inspect.Signature) -> bool:
    """``(*args, **kwargs)``: a wrapper's signature, not the function's."""
    kinds = [p.kind for p in sig.parameters.values()]
    return kinds == [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]


def section(doc: str, title: str) -> bool:
    return re.search(rf"^{title}\n-{{{len(title)}}}$", doc, flags=re.MULTILINE) is not None


def test_every_lazy_name_is_public() -> None:
    assert set(LAZY) <= set(graphxfer.__all__)
    assert sorted(graphxfer.__all__) == sorted(set(graphxfer.__all__))


@pytest.mark.parametrize("name", sorted(LAZY))
def test_lazy_names_resolve_to_the_real_object(name: str) -> None:
    module_name, _, attr = LAZY[name].partition(":")
    module = importlib.import_module(module_name)
    expected = getattr(module, attr) if attr else module
    assert getattr(graphxfer, name) is expected


@pytest.mark.parametrize("name", marked(sorted(graphxfer.__all__)))
def test_public_callables_have_real_signatures_and_numpydoc_docstrings(name: str) -> None:
    obj = getattr(graphxfer, name)
    if not callable(obj):
        assert isinstance(obj, (str, types.ModuleType)), name
        return
    sig = inspect.signature(obj)
    assert not only_forwards(sig), f"graphxfer.{name}{sig}"
    if isinstance(obj, types.ModuleType):
        # a module you can call shows the signature of the function it calls
        real = getattr(obj, CALLABLE_MODULES[name])
        assert sig == inspect.signature(real)
        doc = inspect.getdoc(real) or ""
    else:
        doc = inspect.getdoc(obj) or ""
    assert doc, f"graphxfer.{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.strip() and summary[0].isupper(), f"graphxfer.{name}: {summary!r}"
    named = [p for p in sig.parameters.values() if p.name != "self"]
    if inspect.isclass(obj):
        assert not named or section(doc, "Parameters") or section(doc, "Attributes"), name
        return
    if named:
        assert section(doc, "Parameters"), f"graphxfer.{name}: no Parameters section"
        for p in named:
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                assert re.search(rf"^{p.name}\b", doc, flags=re.MULTILINE) or re.search(
                    rf"\b{p.name}\b.* :", doc
                ), f"graphxfer.{name}: parameter {p.name!r} is not documented"
    assert section(doc, "Returns"), f"graphxfer.{name}: no Returns section"


def test_functions_in_all_are_listed_by_inspect_as_functions() -> None:
    functions = [n for n in graphxfer.__all__ if inspect.isfunction(getattr(graphxfer, n))]
    assert {"load_encoder", "load_model", "pretrain", "pretrain_stream"} <= set(functions)
    for name in functions:
        sig = inspect.signature(getattr(graphxfer, name))
        assert not only_forwards(sig) and next(iter(sig.parameters)) != "args", name
