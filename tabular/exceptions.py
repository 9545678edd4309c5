"""Errors raised by the ``tabular`` package."""

from __future__ import annotations

__all__ = ["EncoderError", "FeaturizerError", "NotFittedError", "RegistryError", "TabularError"]


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
