"""Errors raised while building a report."""

from __future__ import annotations

from graphxfer.exceptions import GraphxferError

__all__ = ["ReportError"]


class ReportError(GraphxferError):
    """A report cannot be built as asked (bad records, risk bands, section registry...)."""
