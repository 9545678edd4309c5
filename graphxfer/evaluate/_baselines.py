"""The reference methods of a transfer curve: one registry of baseline fitters, by name.

Each entry says what the method is (the label tables and plots show) and how its held-out
probabilities are made; :data:`BASELINES` and the names :func:`~graphxfer.evaluate.transfer_curve`
accepts derive from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.cohort import Cohort
from graphxfer.encoder import Encoder
from graphxfer.exceptions import GraphxferError

__all__ = ["BASELINES", "BaselineData", "baseline_predictions"]


@dataclass(frozen=True)
class BaselineData:
    """What a baseline is fitted on and predicts, for one target split.

    Attributes
    ----------
    encoder : Encoder
        The pretrained encoder (its source head is the zero-shot model).
    source : Cohort
        The source cohort.
    X_train, y_train : DataFrame, ndarray
        The target training records and their outcomes.
    X_test : DataFrame
        The held-out target records.
    seed : int
        The split's seed.
    cache : dict
        Models that never see target records (source only, zero-shot), fitted once.
    """

    encoder: Encoder
    source: Cohort
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    seed: int
    cache: dict[str, Any]

    def pooled(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Source and target training records together (the data-sharing reference)."""
        names = list(self.X_train.columns)
        X = pd.concat([self.source.X[names], self.X_train], ignore_index=True)
        return X, np.concatenate([self.source.y, self.y_train])

    def source_Xy(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The source records in the target's columns, and their outcomes."""
        return self.source.X[list(self.X_train.columns)], self.source.y


_Predict = Callable[[BaselineData], np.ndarray | None]


@dataclass(frozen=True)
class _Baseline:
    label: str
    predict: _Predict


_REGISTRY: dict[str, _Baseline] = {}


def _baseline(name: str, label: str) -> Callable[[_Predict], _Predict]:
    """Register a fitter as the baseline ``name``; the registration order is the listing order."""

    def decorator(predict: _Predict) -> _Predict:
        if name in _REGISTRY:
            raise GraphxferError(f"baseline {name!r} is already registered")
        _REGISTRY[name] = _Baseline(label, predict)
        return predict

    return decorator


@_baseline("logistic-source", "logistic regression, source only")
def _logistic_source(d: BaselineData) -> np.ndarray:
    from tabular.baselines import LogisticBaseline

    if "logistic-source" not in d.cache:
        d.cache["logistic-source"] = LogisticBaseline().fit(*d.source_Xy())
    return d.cache["logistic-source"].predict_proba(d.X_test)[:, 1]


@_baseline("logistic", "logistic regression, target only")
def _logistic(d: BaselineData) -> np.ndarray:
    from tabular.baselines import LogisticBaseline

    return LogisticBaseline().fit(d.X_train, d.y_train).predict_proba(d.X_test)[:, 1]


@_baseline("xgboost", "XGBoost, target only")
def _xgboost(d: BaselineData) -> np.ndarray:
    from tabular.baselines import XGBoostBaseline

    model = XGBoostBaseline(n_estimators=100, max_depth=3, random_state=d.seed)
    return model.fit(d.X_train, d.y_train).predict_proba(d.X_test)[:, 1]


@_baseline("logistic-pooled", "logistic regression, pooled (source + target)")
def _logistic_pooled(d: BaselineData) -> np.ndarray:
    from tabular.baselines import LogisticBaseline

    return LogisticBaseline().fit(*d.pooled()).predict_proba(d.X_test)[:, 1]


@_baseline("xgboost-source", "XGBoost, source only")
def _xgboost_source(d: BaselineData) -> np.ndarray:
    from tabular.baselines import XGBoostBaseline

    if "xgboost-source" not in d.cache:
        d.cache["xgboost-source"] = XGBoostBaseline(random_state=0).fit(*d.source_Xy())
    return d.cache["xgboost-source"].predict_proba(d.X_test)[:, 1]


@_baseline("xgboost-pooled", "XGBoost, pooled (source + target)")
def _xgboost_pooled(d: BaselineData) -> np.ndarray:
    from tabular.baselines import XGBoostBaseline

    return XGBoostBaseline(random_state=d.seed).fit(*d.pooled()).predict_proba(d.X_test)[:, 1]


@_baseline("zero-shot", "zero-shot source model (not fine-tuned)")
def _zero_shot(d: BaselineData) -> np.ndarray | None:
    try:
        return d.encoder.predict_proba(d.X_test)
    except GraphxferError:  # no source outcome head (self-supervised pretraining)
        return None


BASELINES: dict[str, str] = {name: baseline.label for name, baseline in _REGISTRY.items()}
"""Reference methods, by name, and the label that tables and plots show for each. Logistic
regression is :class:`tabular.baselines.LogisticBaseline`, XGBoost
:class:`tabular.baselines.XGBoostBaseline`; *source only* is fitted on the source records,
*target only* on the ``n`` target training persons, *pooled* on both (which needs the
target's records shared: the non-private data-sharing reference). ``zero-shot`` is the
pretrained encoder with its source head, not fine-tuned (supervised pretraining only)."""


def baseline_predictions(name: str, data: BaselineData) -> np.ndarray | None:
    """Held-out probabilities of the baseline ``name``; None when the encoder cannot give it.

    Models that never see target records (source only, zero-shot) are fitted once and kept
    in ``data.cache``.
    """
    baseline = _REGISTRY.get(name)
    if baseline is None:
        raise GraphxferError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
    return baseline.predict(data)
