"""Tabular encoders and their pretraining: schema-driven preprocessing fitted on a source cohort,
feature-token transformers, residual MLPs and TabNet, self-supervised and supervised pretraining,
and target-only baselines. Usable on its own; it never imports ``graphxfer`` or ``privacy``."""

from __future__ import annotations

from tabular.exceptions import EncoderError, FeaturizerError, NotFittedError, TabularError
from tabular.featurizer import ColumnLike, FeatureBatch, Featurizer
from tabular.registry import ENCODERS, Registry

__all__ = [
    "ENCODERS",
    "ColumnLike",
    "EncoderError",
    "FeatureBatch",
    "Featurizer",
    "FeaturizerError",
    "NotFittedError",
    "Registry",
    "TabularError",
]
