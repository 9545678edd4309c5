"""Exceptions raised by :mod:`privacy`.

Every message names the offending parameter (or module, or ledger entry) and says how to fix
it. All errors derive from :class:`PrivacyError`, which is also a :class:`ValueError` so that
generic ``except ValueError`` handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "BatchSizeError",
    "BudgetExceededError",
    "DeltaTooLargeError",
    "IncompatibleModuleError",
    "InputDataError",
    "LedgerFormatError",
    "PrivacyConfigError",
    "PrivacyError",
    "RegistryError",
    "StrategyError",
    "TooFewRecordsError",
    "UnreachableEpsilonError",
]


class PrivacyError(ValueError):
    """Base class of every error :mod:`privacy` raises."""


class PrivacyConfigError(PrivacyError):
    """A :class:`~privacy.PrivacyConfig` or training option has an invalid value."""


class InputDataError(PrivacyError):
    """Training tensors, labels or person ids are inconsistent (lengths, NaN, dtype...)."""


class TooFewRecordsError(PrivacyError):
    """The data holds fewer persons than ``PrivacyConfig.min_records``."""


class BatchSizeError(PrivacyError):
    """The expected batch size is larger than the number of persons."""


class DeltaTooLargeError(PrivacyError):
    """``delta`` is not well below ``1 / n_persons``."""


class UnreachableEpsilonError(PrivacyError):
    """No noise multiplier meets the requested epsilon with the requested number of steps."""


class BudgetExceededError(PrivacyError):
    """A run would push the total privacy spent on one data set above the allowed budget."""


class IncompatibleModuleError(PrivacyError):
    """The module contains layers that make per-record gradient clipping invalid or impossible."""


class LedgerFormatError(PrivacyError):
    """A serialized ledger or ledger entry is malformed."""


class RegistryError(PrivacyError):
    """A name is registered twice, or a requested name is not registered."""


class StrategyError(PrivacyError):
    """A fine-tuning strategy cannot be applied to the given model."""
