"""privacy: differentially private fine-tuning of any torch module on per-record tensors.

The privacy unit is one person (one target record; all rows of a person when a person has
several). Everything released from a DP run - weights, metrics computed from them - carries a
person-level (epsilon, delta) guarantee, and every run is recorded in a :class:`PrivacyLedger`.

The package knows nothing about cohorts or graphs. Heavy dependencies (torch, Opacus, scipy,
pandas) load on first use, so ``import privacy`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from privacy.config import PrivacyConfig, TrainConfig, default_delta
from privacy.exceptions import (
    BatchSizeError,
    BudgetExceededError,
    DeltaTooLargeError,
    IncompatibleModuleError,
    InputDataError,
    LedgerFormatError,
    PrivacyConfigError,
    PrivacyError,
    RegistryError,
    StrategyError,
    TooFewRecordsError,
    UnreachableEpsilonError,
)
from privacy.ledger import BudgetSpent, LedgerEntry, PrivacyLedger, compose
from privacy.ledger_file import LedgerLock, LedgerWaitWarning

if TYPE_CHECKING:  # the lazily loaded names, for type checkers
    from privacy.accounting import calibrate_noise as calibrate_noise
    from privacy.accounting import compute_epsilon as compute_epsilon
    from privacy.anchor import Anchor as Anchor
    from privacy.anchor import AnchorGroup as AnchorGroup
    from privacy.audit import AuditResult as AuditResult
    from privacy.audit import canary_audit as canary_audit
    from privacy.audit import empirical_epsilon_lower_bound as empirical_epsilon_lower_bound
    from privacy.audit import membership_inference_audit as membership_inference_audit
    from privacy.losses import register_loss as register_loss
    from privacy.quantiles import DPBounds as DPBounds
    from privacy.quantiles import dp_bounds as dp_bounds
    from privacy.quantiles import dp_quantiles as dp_quantiles
    from privacy.selection import exponential_mechanism as exponential_mechanism
    from privacy.strategies import FineTunable as FineTunable
    from privacy.strategies import FineTuneResult as FineTuneResult
    from privacy.strategies import Strategy as Strategy
    from privacy.strategies import available_strategies as available_strategies
    from privacy.strategies import fine_tune as fine_tune
    from privacy.strategies import get_strategy as get_strategy
    from privacy.strategies import register_strategy as register_strategy
    from privacy.training import Phase as Phase
    from privacy.training import TrainResult as TrainResult
    from privacy.training import train_non_private as train_non_private
    from privacy.training import train_private as train_private
    from privacy.validation import check_module as check_module
    from privacy.validation import check_row_independence as check_row_independence

__version__ = "0.1.0"

# Loaded on first use: these modules import torch, Opacus or scipy.
_LAZY: dict[str, str] = {
    "Anchor": "privacy.anchor",
    "AnchorGroup": "privacy.anchor",
    "AuditResult": "privacy.audit",
    "exponential_mechanism": "privacy.selection",
    "DPBounds": "privacy.quantiles",
    "FineTunable": "privacy.strategies",
    "FineTuneResult": "privacy.strategies",
    "Phase": "privacy.training",
    "Strategy": "privacy.strategies",
    "TrainResult": "privacy.training",
    "available_strategies": "privacy.strategies",
    "calibrate_noise": "privacy.accounting",
    "canary_audit": "privacy.audit",
    "check_module": "privacy.validation",
    "check_row_independence": "privacy.validation",
    "compute_epsilon": "privacy.accounting",
    "dp_bounds": "privacy.quantiles",
    "dp_quantiles": "privacy.quantiles",
    "empirical_epsilon_lower_bound": "privacy.audit",
    "fine_tune": "privacy.strategies",
    "get_strategy": "privacy.strategies",
    "membership_inference_audit": "privacy.audit",
    "register_loss": "privacy.losses",
    "register_strategy": "privacy.strategies",
    "train_non_private": "privacy.training",
    "train_private": "privacy.training",
}

__all__ = [
    "BatchSizeError",
    "BudgetExceededError",
    "BudgetSpent",
    "DeltaTooLargeError",
    "IncompatibleModuleError",
    "InputDataError",
    "LedgerEntry",
    "LedgerFormatError",
    "LedgerLock",
    "LedgerWaitWarning",
    "PrivacyConfig",
    "PrivacyConfigError",
    "PrivacyError",
    "PrivacyLedger",
    "RegistryError",
    "StrategyError",
    "TooFewRecordsError",
    "TrainConfig",
    "UnreachableEpsilonError",
    "__version__",
    "compose",
    "default_delta",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'privacy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
