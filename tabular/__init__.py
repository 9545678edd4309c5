"""Tabular encoders and their pretraining: schema-driven preprocessing fitted on a source cohort,
feature-token transformers, residual MLPs and TabNet, self-supervised and supervised pretraining,
and target-only baselines. Usable on its own; it never imports ``graphxfer`` or ``privacy``.

The names that need torch (encoders, pretraining) or xgboost (baselines) load on first use,
so ``import tabular`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from tabular.exceptions import (
    BaselineError,
    EncoderError,
    FeaturizerError,
    NotFittedError,
    PretrainingError,
    TabularError,
)
from tabular.featurizer import ColumnLike, FeatureBatch, Featurizer
from tabular.registry import Registry

_LAZY: dict[str, str] = {
    "ENCODERS": "tabular.encoders:ENCODERS",
    "OBJECTIVES": "tabular.objectives:OBJECTIVES",
    "EncoderClassifier": "tabular.classifier:EncoderClassifier",
    "EncoderNetwork": "tabular.encoders:EncoderNetwork",
    "FTTransformer": "tabular.encoders:FTTransformer",
    "LinearFeatures": "tabular.encoders:LinearFeatures",
    "ResidualMLP": "tabular.encoders:ResidualMLP",
    "TabNetNetwork": "tabular.encoders:TabNetNetwork",
    "TabularEncoder": "tabular.tabular_encoder:TabularEncoder",
    "network_from_config": "tabular.encoders:network_from_config",
    "pretrain": "tabular.pretraining:pretrain",
    "pretrain_stream": "tabular.streaming:pretrain_stream",
    "TableSource": "tabular.sources:TableSource",
    "baselines": "tabular.baselines",
    "LogisticBaseline": "tabular.baselines:LogisticBaseline",
    "XGBoostBaseline": "tabular.baselines:XGBoostBaseline",
    "fit_baseline": "tabular.baselines:fit_baseline",
}

__all__ = [
    "BaselineError",
    "ColumnLike",
    "EncoderError",
    "FeatureBatch",
    "Featurizer",
    "FeaturizerError",
    "NotFittedError",
    "PretrainingError",
    "Registry",
    "TabularError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'tabular' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
