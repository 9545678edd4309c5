"""SHAP explanations of every prediction, over the user's original columns.

:func:`explain` returns a ``shap.Explanation`` whose attributions add up to the model's output
(probability or log-odds of the positive class, as stated in ``output_names``);
:func:`explanation_frame` and :func:`export_explanations` turn it into a table and into CSV and
JSON files.
"""

from __future__ import annotations

import inspect as _inspect
import sys as _sys
import types as _types
from typing import Any

from graphxfer.explain._model import LOG_ODDS, PROBABILITY
from graphxfer.explain.exceptions import BackgroundFromDataWarning, ExplanationError
from graphxfer.explain.explain import explain
from graphxfer.explain.export import explanation_frame, export_explanations

__all__ = [
    "LOG_ODDS",
    "PROBABILITY",
    "BackgroundFromDataWarning",
    "ExplanationError",
    "explain",
    "explanation_frame",
    "export_explanations",
]


class _CallableModule(_types.ModuleType):
    """Lets ``graphxfer.explain(...)`` call :func:`explain` even after the submodule is imported."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return explain(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
# ``inspect.signature(graphxfer.explain)`` and help() show explain's own parameters
__signature__ = _inspect.signature(explain)
