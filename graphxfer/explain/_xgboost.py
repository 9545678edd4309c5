"""Exact TreeSHAP for XGBoost models, computed by XGBoost itself (``pred_contribs=True``).

XGBoost's own TreeSHAP handles categorical splits (SHAP's TreeExplainer does not, with a
background). Its attributions are *path-dependent*: the reference distribution is the training
data as recorded in the trees' cover statistics, not a background sample, and the explained
output is the booster's margin (the log-odds of the positive class). XGBoost computes in
float32, so additivity holds to float32 rounding.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphxfer.explain._codec import FeatureCodec, labels_of
from graphxfer.explain._model import positive_proba

__all__ = ["BoosterView", "find_booster"]

# Attributes under which wrappers commonly keep a fitted XGBoost model.
_WRAPPED = ("booster_", "model_", "estimator_", "xgb_", "classifier_", "clf_", "_model")

# How far sigmoid(margin) may differ from model.predict_proba before the booster view is
# rejected as not being the model (float32 predictions agree to about 1e-7).
_AGREEMENT = 1e-5


@dataclass(frozen=True)
class BoosterView:
    """A fitted binary XGBoost booster and how to feed it the model's original columns."""

    booster: Any
    to_frame: Callable[[pd.DataFrame], pd.DataFrame]
    iteration_range: tuple[int, int]

    def _dmatrix(self, frame: pd.DataFrame) -> Any:
        import xgboost

        return xgboost.DMatrix(self.to_frame(frame), enable_categorical=True)

    def margin(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's raw output (log-odds), float64 of float32 values.  ``[n]``."""
        out = self.booster.predict(
            self._dmatrix(frame), output_margin=True, iteration_range=self.iteration_range
        )
        return np.asarray(out, dtype=np.float64).reshape(len(frame))

    def contributions(self, frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
        """TreeSHAP values in the order ``names``, bias last.  ``[n, len(names) + 1]``."""
        out = np.asarray(
            self.booster.predict(
                self._dmatrix(frame), pred_contribs=True, iteration_range=self.iteration_range
            ),
            dtype=np.float64,
        )
        order = [list(self.booster.feature_names).index(n) for n in names]
        return np.concatenate([out[:, order], out[:, -1:]], axis=1)


def find_booster(model: Any, codec: FeatureCodec, frame: pd.DataFrame) -> BoosterView | None:
    """The model's XGBoost booster, if it reproduces the model's predictions on ``frame``.

    The booster is found on the model itself (``get_booster()``) or on a wrapped estimator
    (``booster_``, ``model_``, ``estimator_``, ...). It must be a binary classifier over exactly
    the model's original columns, and ``sigmoid(margin)`` must match ``model.predict_proba`` on
    every row of ``frame``; otherwise the model is not treated as an XGBoost model.
    """
    xgboost = sys.modules.get("xgboost")
    if xgboost is None:  # the model cannot hold a booster if xgboost was never imported
        return None
    for owner in _candidates(model):
        booster = _booster_of(owner, xgboost)
        if booster is None:
            continue
        view = _view(booster, owner, codec)
        if view is not None and _agrees(view, model, frame):
            return view
    return None


def _candidates(model: Any) -> list[Any]:
    found = [model]
    for attr in _WRAPPED:
        try:
            value = getattr(model, attr, None)
        except Exception:  # a property that fails (e.g. not fitted) is not a booster
            value = None
        if value is not None and value is not model:
            found.append(value)
    return found


def _booster_of(owner: Any, xgboost: Any) -> Any:
    if isinstance(owner, xgboost.Booster):
        return owner
    get = getattr(owner, "get_booster", None)
    if not callable(get):
        return None
    try:
        booster = get()
    except Exception:  # an unfitted sklearn wrapper raises here
        return None
    return booster if isinstance(booster, xgboost.Booster) else None


def _view(booster: Any, owner: Any, codec: FeatureCodec) -> BoosterView | None:
    names = booster.feature_names
    types = booster.feature_types
    if names is None or sorted(names) != sorted(codec.names):
        return None
    try:
        n_classes = int(booster.attr("num_class") or 0)
    except Exception:
        n_classes = 0
    if n_classes > 2:
        return None
    kinds = dict(zip(names, types if types is not None else ["float"] * len(names)))
    vocab: dict[str, list[str]] = {}
    for name, labels in zip(codec.names, codec.vocabularies):
        if (kinds[name] == "c") != (labels is not None):
            return None  # the booster reads this column differently from its original kind
        if labels is not None:
            vocab[name] = list(labels)
    # Categories the booster was trained with: a label it never saw is missing to it.
    vocab.update(_trained_categories(booster))

    def to_frame(frame: pd.DataFrame) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for name in names:
            if kinds[name] == "c":
                columns[name] = pd.Categorical(labels_of(frame[name]), categories=vocab[name])
            else:
                columns[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        return pd.DataFrame(columns, index=frame.index)

    best = _best_iteration(owner)
    return BoosterView(booster, to_frame, (0, best + 1) if best is not None else (0, 0))


def _trained_categories(booster: Any) -> dict[str, list[str]]:
    """``{column: categories}`` stored in the booster (XGBoost >= 3.1), or ``{}``."""
    try:
        pairs = booster.get_categories(export_to_arrow=True).to_arrow()
    except Exception:  # older XGBoost, or a booster trained without categories
        return {}
    return {
        str(name): [str(v) for v in array.to_pylist()] for name, array in pairs if array is not None
    }


def _best_iteration(owner: Any) -> int | None:
    try:
        best = owner.best_iteration
    except Exception:  # no early stopping: XGBoost raises here
        return None
    return int(best) if best is not None else None


def _agrees(view: BoosterView, model: Any, frame: pd.DataFrame) -> bool:
    try:
        margin = view.margin(frame)
        proba = positive_proba(model, frame)
    except Exception:
        return False
    return bool(np.all(np.abs(1.0 / (1.0 + np.exp(-margin)) - proba) <= _AGREEMENT))
