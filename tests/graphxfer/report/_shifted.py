"""A small model reported on a site that records data differently from its source."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from graphxfer import Cohort
from graphxfer.encoder import source_summary
from tests.graphxfer.explain._models import XGBoostModel, make_data


def shifted_site(n_source: int = 300, n_target: int = 80) -> tuple[Any, Cohort, Cohort]:
    """``(model, source, target)``: an XGBoost model fitted on ``source``, whose encoder-like
    ``encoder_`` records the source's marginals, and a target site where ``x2`` is never
    recorded, ``x0`` is measured in another unit (far above the source's range, where the
    model predicts high risk) and only one record in ten has the outcome.

    The target's predictions are therefore miscalibrated and ``x0``, ``x2`` are shifted.
    """
    source = make_data(n_source, n_numeric=3, seed=0)
    model = XGBoostModel(source, n_estimators=20)
    model.encoder_ = SimpleNamespace(source_summary=source_summary(source))
    target = make_data(n_target, n_numeric=3, seed=7)
    data = target.data.copy()
    data["x2"] = np.nan  # not recorded at this site
    data["x0"] = data["x0"] * 10 + 40  # another unit
    data["outcome"] = (np.arange(n_target) % 10 == 0).astype(int)  # 10% positive
    return model, source, Cohort(data, target.schema, name="site-b", all_missing="keep")
