"""Self-contained HTML reports: cohort summary, model card, global importance and per-record
explanations, with the predictions and attributions exported as CSV and JSON.

Sections come from a registry; :func:`register_section` adds one to every report.
"""

from __future__ import annotations

import inspect as _inspect
import sys as _sys
import types as _types
from typing import Any

from graphxfer.report.exceptions import ReportError
from graphxfer.report.registry import register_section
from graphxfer.report.report import report

__all__ = ["ReportError", "register_section", "report"]


class _CallableModule(_types.ModuleType):
    """Lets ``graphxfer.report(...)`` call :func:`report` even after the submodule is imported."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return report(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
# ``inspect.signature(graphxfer.report)`` and help() show report's own parameters
__signature__ = _inspect.signature(report)
