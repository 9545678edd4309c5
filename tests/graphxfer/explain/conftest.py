"""Fitted models of every kind, shared by the explanation tests."""

from __future__ import annotations

from typing import Any

import pytest

from graphxfer import Cohort
from tests.graphxfer.explain._models import SklearnModel, TorchModel, XGBoostModel, make_data


@pytest.fixture(scope="session")
def small_cohort() -> Cohort:
    """240 records, 5 features (3 numeric with missing values, 1 binary, 1 categorical)."""
    return make_data(240, n_numeric=3, seed=0)


@pytest.fixture(scope="session")
def wide_cohort() -> Cohort:
    """200 records, 12 features: more than the exact method's automatic limit of 10."""
    return make_data(200, n_numeric=10, seed=1)


def _baselines(cohort: Cohort) -> dict[str, Any]:
    from tabular.baselines import LogisticBaseline, XGBoostBaseline

    xgb = XGBoostBaseline(n_estimators=40, max_depth=3, random_state=0, n_jobs=1)
    xgb.fit(cohort.X, cohort.y)
    logistic = LogisticBaseline().fit(cohort.X, cohort.y)
    for model in (xgb, logistic):
        model.background_ = cohort.X.sample(50, random_state=3)
    return {"xgboost_baseline": xgb, "logistic_baseline": logistic}


@pytest.fixture(scope="session")
def models(small_cohort: Cohort) -> dict[str, Any]:
    """One fitted model per kind, all over the same original columns."""
    out: dict[str, Any] = {
        "sklearn": SklearnModel(small_cohort),
        "torch": TorchModel(small_cohort),
        "xgboost": XGBoostModel(small_cohort),
    }
    out.update(_baselines(small_cohort))
    return out
