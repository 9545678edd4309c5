"""Self-contained HTML reports: cohort summary, model card, global importance and per-record
explanations, with the predictions and attributions exported as CSV and JSON.

Sections come from a registry; :func:`register_section` adds one to every report.
"""

from __future__ import annotations

from graphxfer.report.exceptions import ReportError
from graphxfer.report.registry import register_section
from graphxfer.report.report import report

__all__ = ["ReportError", "register_section", "report"]
