"""The explained output: the model's probability of the positive class, or its log-odds."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from graphxfer.explain._codec import FeatureCodec
from graphxfer.explain.exceptions import ExplanationError

__all__ = [
    "LINKS",
    "LOG_ODDS",
    "PROBABILITY",
    "Link",
    "ModelFunction",
    "link_of",
    "positive_proba",
    "to_scale",
]

Link = Literal["identity", "logit"]

PROBABILITY = "probability of the positive class"
"""``output_names`` of explanations on the probability scale (``link="identity"``)."""

LOG_ODDS = "log-odds of the positive class"
"""``output_names`` of explanations on the log-odds scale (``link="logit"``)."""

LINKS: dict[str, str] = {"identity": PROBABILITY, "logit": LOG_ODDS}

# Probabilities are clipped to [_EPS, 1 - _EPS] before taking log-odds, so that a model that
# outputs exactly 0 or 1 still has a finite log-odds (about +-27.6).
_EPS = 1e-12


def positive_proba(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """``model.predict_proba(frame)[:, 1]`` as float64, after checking the output's shape."""
    # models that translate their input (renamed columns, converted units) take frames that
    # are already in their own columns through ``predict_proba_features``
    predict = getattr(model, "predict_proba_features", None) or model.predict_proba
    proba = np.asarray(predict(frame))
    if proba.ndim != 2 or proba.shape[0] != len(frame) or proba.shape[1] != 2:
        raise ExplanationError(
            f"model.predict_proba returned shape {proba.shape} for {len(frame)} rows; "
            "explanations need a binary classifier returning [n, 2] probabilities"
        )
    return proba[:, 1].astype(np.float64)


def to_scale(p: np.ndarray, link: str) -> np.ndarray:
    """Probabilities on the explained scale: as they are, or as (clipped) log-odds."""
    if link == "identity":
        return np.asarray(p, dtype=np.float64)
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def link_of(explanation: Any) -> str:
    """The link (``identity`` or ``logit``) an explanation's ``output_names`` states."""
    name = explanation.output_names
    for link, label in LINKS.items():
        if name == label:
            return link
    raise ExplanationError(
        f"this explanation's output_names {name!r} does not state its scale; expected "
        f"{PROBABILITY!r} or {LOG_ODDS!r} (explanations made by graphxfer.explain.explain)"
    )


class ModelFunction:
    """The model as SHAP sees it: a numeric matrix of original columns -> output on a scale.

    Each call decodes the matrix to a data frame of original values (categories as labels) and
    calls ``model.predict_proba`` on it.

    Shapes: ``[n, n_features]`` -> ``[n]``.
    """

    def __init__(self, model: Any, codec: FeatureCodec, link: str) -> None:
        self.model = model
        self.codec = codec
        self.link = link

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        frame = self.codec.decode(matrix)
        return to_scale(positive_proba(self.model, frame), self.link)
