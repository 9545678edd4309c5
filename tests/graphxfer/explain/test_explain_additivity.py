"""Additivity, the invariant every explanation method must keep, for every model kind:
base value + sum of attributions = the model's output on the stated scale."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from graphxfer.explain import LOG_ODDS, PROBABILITY, explain
from graphxfer.explain._model import to_scale
from graphxfer.explain._xgboost import find_booster
from graphxfer.explain.explain import explain_details

pytestmark = pytest.mark.filterwarnings(
    "ignore:The set_.* function will be deprecated:PendingDeprecationWarning"
)

TOL = 1e-6

# (model kind, method) pairs; "tree" applies to XGBoost models, "deep" to the torch model.
CASES = [
    (kind, method)
    for kind in ("sklearn", "torch", "xgboost", "xgboost_baseline", "logistic_baseline")
    for method in ("exact", "permutation")
] + [
    ("xgboost", "tree"),
    ("xgboost_baseline", "tree"),
    ("torch", "deep"),
]


def model_output(model: Any, X: Any, link: str) -> np.ndarray:
    return to_scale(model.predict_proba(X)[:, 1], link)


def assert_additive(explanation: Any, output: np.ndarray, tol: float) -> None:
    total = explanation.base_values + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, output, rtol=0, atol=tol)


@pytest.mark.parametrize(("kind", "method"), CASES)
def test_additive_on_the_stated_scale(models, small_cohort, kind, method):
    model = models[kind]
    X = small_cohort.X.iloc[:15]
    links = ("logit",) if method == "tree" else ("identity", "logit")
    for link in links:
        explanation, info = explain_details(
            model, X, method, link=link, random_state=0, progress=False
        )
        assert info.method == method
        assert explanation.output_names == (PROBABILITY if link == "identity" else LOG_ODDS)
        assert explanation.values.shape == (len(X), 5)
        if method == "tree":
            # XGBoost computes in float32: attributions add up to its own margin to float32
            # rounding, and to the log-odds of its (float32) probabilities slightly less tightly.
            from graphxfer.explain._codec import FeatureCodec, model_columns

            codec = FeatureCodec.build(model_columns(model, X), [X])
            booster = find_booster(model, codec, X)
            assert booster is not None
            assert_additive(explanation, booster.margin(X), TOL)
            assert_additive(explanation, model_output(model, X, "logit"), 1e-4)
        else:
            assert_additive(explanation, model_output(model, X, link), TOL)


def test_permutation_is_additive_with_many_features(wide_cohort):
    from tests.graphxfer.explain._models import SklearnModel

    model = SklearnModel(wide_cohort)
    X = wide_cohort.X.iloc[:10]
    explanation = explain(model, X, "permutation", random_state=1, progress=False)
    assert explanation.values.shape == (10, 12)
    assert_additive(explanation, model_output(model, X, "identity"), TOL)


def test_gradient_is_an_approximation(models, small_cohort):
    """Expected gradients run on the torch model; they are not exactly additive (documented)."""
    model = models["torch"]
    X = small_cohort.X.iloc[:5]
    explanation = explain(model, X, "gradient", max_evals=50, random_state=0, progress=False)
    assert explanation.values.shape == (5, 5)
    assert list(explanation.feature_names) == model.feature_schema_.feature_names
    assert np.isfinite(explanation.values).all()


@pytest.mark.parametrize("method", ["deep", "gradient"])
def test_weighted_summaries_reach_the_torch_methods(models, small_cohort, method):
    """With ``summary="kmeans"`` the base value is the weighted mean over the representatives
    (DeepLIFT is explained one reference at a time, so it stays additive)."""
    model = models["torch"]
    X = small_cohort.X.iloc[:6]
    explanation, info = explain_details(
        model, X, method, summary="kmeans", n_summary=4, random_state=0, progress=False
    )
    assert info.summary == f"4 weighted k-means representatives of {len(model.background_)} rows"
    if method == "deep":
        assert_additive(explanation, model_output(model, X, "identity"), TOL)
    else:
        assert np.isfinite(explanation.values).all()
    assert 0 < explanation.base_values[0] < 1
