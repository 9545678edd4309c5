"""Errors and warnings raised while explaining predictions."""

from __future__ import annotations

from graphxfer.exceptions import GraphxferError, GraphxferWarning

__all__ = ["BackgroundFromDataWarning", "ExplanationError"]


class ExplanationError(GraphxferError):
    """A model, its data or the requested method cannot be explained as asked."""


class BackgroundFromDataWarning(GraphxferWarning):
    """No source-cohort background was available, so a sample of the explained data was used."""
