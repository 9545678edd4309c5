"""Errors raised by the ``tabular`` package."""

from __future__ import annotations

__all__ = [
    "BaselineError",
    "EncoderError",
    "FeaturizerError",
    "NotFittedError",
    "PretrainingError",
    "RegistryError",
    "TabularError",
]


class TabularError(ValueError):
    """Base class of errors about user input in ``tabular``."""


class FeaturizerError(TabularError):
    """Preprocessing cannot be fitted or applied (missing column, undeclared bounds...)."""


class EncoderError(TabularError):
    """An encoder configuration or input is invalid."""


class RegistryError(TabularError):
    """An unknown or duplicate name in a registry."""


class NotFittedError(TabularError, AttributeError):
    """An object was used before it was fitted."""


class PretrainingError(TabularError):
    """Pretraining cannot run with the given data or options (no outcome, too few rows...)."""


class BaselineError(TabularError):
    """A baseline model cannot be fitted or used with the given data or options."""
